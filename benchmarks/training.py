"""Training throughput: iterations per second of ``stylize train``'s step, and a GPU's FLOP ceiling.

    python -m benchmarks.training                          # adain and adain-cd16x, batch 8, 256² crops
    python -m benchmarks.training adain-cd16x:bf16 adain   # MODEL[:PRECISION]: bf16 on CUDA, else fp32

Each measurement is the real step (:meth:`engines.training.loop.Trainer.train_step`: channels_last,
autocast where asked, Adam, the lr schedule) on synthetic uint8 batches, so it times the network, not
image decoding (which the DataLoader's workers overlap with it). A model whose encoder file is not
here runs with random encoder weights: the FLOPs, and so the time, are the same. Warm-up steps are
dropped; the result is the median over several timed runs. FLOPs per iteration are counted on meta
tensors (forward and backward, convolutions only, see :mod:`engines.flops`) and turned into a
ceiling: peak FLOP/s ÷ FLOPs per iteration, an upper bound no real run reaches.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.machine import GPU_FP16_PEAKS
from engines.errors import StylizeError
from engines.models.adain_vgg import ENCODER_CONVS, PAPER_ENCODER_WIDTHS, AdaINNet, mirror_widths
from engines.training.distributed import Processes
from engines.training.loop import TrainConfig, Trainer
from engines.training.losses import DecoderLoss
from engines.weights import load_encoder

#: encoder widths when the model's encoder file is not here
WIDTHS = {
    "adain": PAPER_ENCODER_WIDTHS,
    "adain-cd16x": tuple(w // 4 for w in PAPER_ENCODER_WIDTHS),
}


def network(name: str) -> tuple[AdaINNet, str]:
    """The model's encoder with a fresh decoder, and where the encoder came from."""
    try:
        return load_encoder(name, download=False), "weights"
    except StylizeError:
        torch.manual_seed(0)
        return AdaINNet(WIDTHS[name], mirror_widths(WIDTHS[name]), name=name), "random weights"


def flops_per_iteration(net: AdaINNet, batch: int, size: int) -> int:
    """Convolution FLOPs of one training iteration (forward and backward), counted on meta tensors."""
    widths = tuple(net.encoder[i].out_channels for i in ENCODER_CONVS)
    with torch.device("meta"):  # shapes only: no weights are made
        meta = AdaINNet(widths, mirror_widths(widths))
    images = torch.empty(batch, 3, size, size, device="meta")
    with FlopCounterMode(display=False) as counter:
        loss_c, loss_s = DecoderLoss(meta)(images, images)
        (loss_c + loss_s).backward()
    return int(counter.get_total_flops())


def iterations_per_second(
    net: AdaINNet,
    batch: int = 8,
    size: int = 256,
    precision: str = "fp32",
    device: str = "cpu",
    warmup: int = 2,
    runs: int = 5,
    steps: int = 2,
) -> list[float]:
    """it/s of each of ``runs`` timed runs of ``steps`` steps, after ``warmup`` steps."""
    config = TrainConfig(
        model=net.name, batch_size=batch, crop_size=size, load_size=size, precision=precision
    )
    processes = Processes(device=torch.device(device))
    trainer = Trainer(net, config, [], [], Path(os.devnull), lambda p: None, processes)
    gen = torch.Generator().manual_seed(0)
    content = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, generator=gen)
    style = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, generator=gen)

    def step() -> None:
        trainer.train_step(content, style)
        if processes.device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(warmup):
        step()
    rates = []
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        rates.append(steps / (time.perf_counter() - start))
    return rates


def ceilings(flops: int) -> dict[str, float]:
    """it/s at the datasheet dense fp16/bf16 tensor-core peak of a few GPUs (an upper bound)."""
    names = {"h100": "H100 SXM", "h200": "H200 SXM", "a100": "A100", r"\bl4\b": "L4", "rtx 4090": "RTX 4090"}
    return {names[p]: tflops * 1e12 / flops for p, tflops in GPU_FP16_PEAKS if p in names}


def main(cells: list[str]) -> int:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    for cell in cells or ["adain", "adain-cd16x"]:
        name, _, precision = cell.partition(":")
        precision = precision or ("bf16" if device == "cuda" else "fp32")
        net, source = network(name)
        flops = flops_per_iteration(net, 8, 256)
        slow = name == "adain" and device == "cpu"  # about a minute per iteration on two cores
        warmup, runs, steps = (1, 3, 1) if slow else (2, 5, 3)
        rates = iterations_per_second(
            net, precision=precision, device=device, warmup=warmup, runs=runs, steps=steps
        )
        row = {
            "model": name, "encoder": source, "device": device, "precision": precision,
            "batch": 8, "size": 256, "torch_threads": torch.get_num_threads(),
            "it_per_s_median": round(statistics.median(rates), 4),
            "it_per_s_runs": [round(r, 4) for r in rates],
            "tflop_per_iteration": round(flops / 1e12, 4),
            "achieved_tflops": round(statistics.median(rates) * flops / 1e12, 4),
            "gpu_ceiling_it_per_s": {k: round(v, 1) for k, v in ceilings(flops).items()},
            "load_average": round(os.getloadavg()[0], 2),
        }  # fmt: skip
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
