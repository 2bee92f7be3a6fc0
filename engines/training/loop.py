"""The training loop: Adam on the decoder, the paper's learning-rate decay, checkpoints, signals.

One step: lr = lr₀ / (1 + decay · step) (pytorch-AdaIN's schedule, recomputed from the step so a
resume continues it exactly), a batch of (content, style) crops, the loss under autocast when the
precision is fp16/bf16 (statistics and losses stay float32), backward through a grad scaler when fp16.
Checkpoints every ``save_every`` steps, at the end, and when SIGINT/SIGTERM asks the loop to stop
(after the step in progress: the signal only sets a flag). Under torchrun the decoder is wrapped in
DistributedDataParallel, the processes agree on the step to stop at, and rank 0 alone writes.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

from engines.device import DTYPES, training_precision
from engines.errors import StylizeError
from engines.models.adain_vgg import AdaINNet
from engines.models.base import load_exact
from engines.training import checkpoint, distributed, samples
from engines.training.data import PairBatches, PairDataset, Reader, make_loader
from engines.training.losses import DecoderLoss
from engines.weights import load_encoder, load_model, spec_for

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Everything a run is made of. Defaults are the paper's (pytorch-AdaIN's train.py)."""

    model: str = "adain"
    steps: int = 160_000
    batch_size: int = 8
    lr: float = 1e-4
    lr_decay: float = 5e-5
    content_weight: float = 1.0
    style_weight: float = 10.0
    load_size: int = 512
    crop_size: int = 256
    seed: int = 0
    #: "random" (a decoder from scratch) or "model" (start from the model's published decoder)
    init: str = "random"
    precision: str = "auto"
    device: str = "auto"
    workers: int = 4
    save_every: int = 1000
    sample_every: int = 500
    log_every: int = 10
    #: content and style images in the sample grid
    samples: int = 4
    content_dir: str = ""
    style_dir: str = ""

    #: what defines the run's result: a resume keeps these (the others say how it runs)
    DEFINING = (
        "model", "batch_size", "lr", "lr_decay", "content_weight", "style_weight", "load_size", "crop_size",
        "seed", "init",
    )  # fmt: skip

    def check(self) -> None:
        """One line for the first value that cannot work."""
        for name in (
            "steps",
            "batch_size",
            "load_size",
            "crop_size",
            "save_every",
            "sample_every",
            "log_every",
        ):
            if getattr(self, name) < 1:
                raise StylizeError(f"--{_flag(name)} must be at least 1, got {getattr(self, name)}")
        for name in ("lr", "lr_decay", "content_weight", "style_weight", "workers", "samples"):
            if getattr(self, name) < 0:
                raise StylizeError(f"--{_flag(name)} must not be negative, got {getattr(self, name)}")
        if self.lr == 0:
            raise StylizeError("--lr must be positive")
        if self.crop_size % 8 or self.crop_size < 16:
            raise StylizeError(f"--crop must be a multiple of 8 and at least 16, got {self.crop_size}")
        if self.load_size < self.crop_size:
            raise StylizeError(f"--load-size ({self.load_size}) must be at least --crop ({self.crop_size})")
        if self.init not in ("random", "model"):
            raise StylizeError(f"--init must be random or model, got {self.init}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def resumed(self, given: dict) -> TrainConfig:
        """This saved config with the values a resume was given; a defining value that differs is refused."""
        for name, value in given.items():
            if name in self.DEFINING and value != getattr(self, name):
                raise StylizeError(
                    f"--{_flag(name)} {value} differs from the checkpoint's {getattr(self, name)}; "
                    "a resume continues the same run (start a new one in another --out to change it)"
                )
        return dataclasses.replace(self, **given)


def _flag(name: str) -> str:
    return {"batch_size": "batch", "crop_size": "crop"}.get(name, name).replace("_", "-")


@dataclass
class TrainResult:
    start_step: int
    step: int
    #: the signal that stopped the run early (SIGINT or SIGTERM), or None when it ran to the end
    stopped_by: int | None
    first_loss: float | None
    last_loss: float | None
    #: unreadable images skipped
    skipped: int
    precision: str
    device: str
    #: how the run was spread: '1 process', or 'N processes (DDP over nccl)'
    processes: str
    main: bool


class StopSignals:
    """SIGINT and SIGTERM ask the loop to stop after the current step and save; a second Ctrl-C aborts.

    Installed only in the main thread (Python delivers signals there); elsewhere it never fires.
    """

    def __init__(self):
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def __call__(self) -> int | None:
        return self.received

    def _handle(self, signum, _frame) -> None:
        if self.received == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signum

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def build_network(
    config: TrainConfig,
    out: Path,
    weights: str | Path | None,
    state: dict | None,
    download: bool = True,
    progress: bool | None = None,
) -> AdaINNet:
    """Encoder and decoder to train: the checkpoint's, the model's own decoder, or a fresh one.

    A resume reads the encoder from ``out`` (the first checkpoint wrote it there) and the decoder from
    the state file; ``weights`` is only where a new run finds the model's files.
    """
    if state is not None:
        net = load_encoder(config.model, out, download=False)
        load_exact(net.decoder, state["decoder"], f"{out / checkpoint.STATE_FILE} decoder")
        return net
    if config.init == "model":
        net = load_model(config.model, weights, download=download, progress=progress)
        if not isinstance(net, AdaINNet):
            raise StylizeError(f"model '{config.model}' has no AdaIN decoder to train")
        return net
    torch.manual_seed(config.seed)  # the fresh decoder's initialization is part of the run
    return load_encoder(config.model, weights, download=download, progress=progress)


class Trainer:
    """One process's part of a run (see the module notes); ``run`` trains until the end or a signal."""

    def __init__(
        self,
        net: AdaINNet,
        config: TrainConfig,
        content: Sequence[Path],
        style: Sequence[Path],
        out: Path,
        reader: Reader,
        processes: distributed.Processes,
        state: dict | None = None,
        progress: bool = False,
    ):
        config.check()
        self.config, self.out, self.reader, self.processes = config, Path(out), reader, processes
        self.content, self.style = list(content), list(style)
        self.progress = progress and processes.main
        device = processes.device
        self.precision = training_precision(config.precision, device)
        layout = spec_for(config.model).training
        if layout is None:
            raise StylizeError(f"model '{config.model}' cannot be trained")
        self.files = layout.files
        self.net = net.to(device, memory_format=torch.channels_last)
        self.loss = DecoderLoss(self.net)
        self.model = (
            DistributedDataParallel(self.loss, device_ids=[device.index] if device.type == "cuda" else None)
            if processes.distributed
            else self.loss
        )
        self.optimizer = torch.optim.Adam(self.net.decoder.parameters(), lr=config.lr)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.precision == "fp16")
        self.step = 0
        self.rows: list[dict] = []
        self.bad: set[str] = set()
        if state is not None:
            self.optimizer.load_state_dict(state["optimizer"])
            if state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])
            rng = state.get("rng", {})
            if "torch" in rng:
                torch.set_rng_state(rng["torch"])
            if device.type == "cuda" and rng.get("cuda"):
                torch.cuda.set_rng_state_all(rng["cuda"])
            self.step = int(state["step"])
            self.rows = checkpoint.read_losses(self.out, self.step) if processes.main else []
        self.saved_step = self.step
        if processes.main:
            log.info(
                "training the %s decoder on %s (%s, %s) from step %d: %d content, "
                "%d style images, batch %d, %d px crops",
                config.model, device, self.precision, processes.describe(), self.step, len(self.content),
                len(self.style), config.batch_size, config.crop_size,
            )  # fmt: skip
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # one crop size: the fastest kernels are found once

    def state(self) -> dict:
        rng = {"torch": torch.get_rng_state()}
        if self.processes.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {
            "model": self.config.model,
            "step": self.step,
            "config": self.config.to_dict(),
            "decoder": self.net.paper_state_dicts()[1],
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
            "rng": rng,
        }

    def save(self) -> None:
        """Checkpoint (rank 0 only): model files in the registry layout, state, losses."""
        if self.processes.main:
            checkpoint.save(self.out, self.files(self.net), self.state())
            checkpoint.write_losses(self.out, self.rows)
            log.info("step %d: checkpoint written to %s", self.step, self.out)
        self.saved_step = self.step

    def train_step(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """One optimizer step on uint8 N×3×H×W batches; returns [content, style, total] losses (detached)."""
        cfg, device = self.config, self.processes.device
        c, s = (x.to(device, non_blocking=True).float().div_(255) for x in (content, style))
        c, s = (x.contiguous(memory_format=torch.channels_last) for x in (c, s))
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr()
        amp = self.precision != "fp32"
        with torch.autocast(device.type, dtype=DTYPES[self.precision], enabled=amp):
            loss_c, loss_s = self.model(c, s)
            total = cfg.content_weight * loss_c + cfg.style_weight * loss_s
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.step += 1
        return torch.stack([loss_c.detach(), loss_s.detach(), total.detach()]).float()

    def lr(self, step: int | None = None) -> float:
        """The learning rate of iteration ``step`` (0-based; default: the next one)."""
        step = self.step if step is None else step
        return self.config.lr / (1.0 + self.config.lr_decay * step)

    def run(self, should_stop: Callable[[], int | None] = lambda: None) -> TrainResult:
        cfg, processes = self.config, self.processes
        start = self.step
        result = TrainResult(
            start, start, None, None, None, 0, self.precision, str(processes.device), processes.describe(),
            processes.main,
        )  # fmt: skip
        if self.step >= cfg.steps:
            return result
        if processes.main and self.step == 0:
            checkpoint.clear_samples(self.out)
        fixed = self._fixed_samples() if processes.main and cfg.samples else None
        batches = PairBatches(
            len(self.content),
            len(self.style),
            cfg.batch_size,
            cfg.seed,
            self.step,
            processes.rank,
            processes.world,
        )
        dataset = PairDataset(self.content, self.style, self.reader, cfg.load_size, cfg.crop_size, cfg.seed)
        loader = make_loader(dataset, batches, cfg.workers, pin_memory=processes.device.type == "cuda")
        from tqdm import tqdm

        bar = tqdm(
            total=cfg.steps, initial=self.step, desc="training", unit="it", dynamic_ncols=True,
            disable=not self.progress,
        )  # fmt: skip
        summed = torch.zeros(3, device=processes.device)
        counted, since = 0, time.perf_counter()
        batches_iter = iter(loader)
        try:
            while self.step < cfg.steps:
                # Under DDP, agreeing on a stop is an all-reduce and a host sync: only at the logging
                # steps (a signal then waits at most log_every steps); alone, it is a free check.
                check = not processes.distributed or self.step % cfg.log_every == 0
                if check and distributed.any_process(processes, should_stop() is not None):
                    result.stopped_by = should_stop() or signal.SIGTERM
                    break
                content, style, bad = next(batches_iter)
                self._note_unreadable(bad, content is None)
                summed += self.train_step(content, style)
                counted += 1
                bar.update(1)
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    means = (summed / counted).tolist()
                    now = time.perf_counter()
                    self._log(means, counted / (now - since), bar)
                    result.first_loss = means[2] if result.first_loss is None else result.first_loss
                    result.last_loss = means[2]
                    summed.zero_()
                    counted, since = 0, now
                if fixed is not None and self.step % cfg.sample_every == 0:
                    self._sample(fixed)
                if self.step % cfg.save_every == 0:
                    self.save()
        finally:
            bar.close()
            del batches_iter  # stops the workers
        if fixed is not None and self.step % cfg.sample_every and self.step > start:
            self._sample(fixed)
        if self.saved_step != self.step:
            self.save()
        distributed.barrier(processes)
        result.step, result.skipped = self.step, len(self.bad)
        return result

    def _log(self, means: list[float], rate: float, bar) -> None:
        row = {
            "step": self.step, "content": f"{means[0]:.6g}", "style": f"{means[1]:.6g}",
            "total": f"{means[2]:.6g}", "lr": f"{self.lr(self.step - 1):.6g}", "it_per_s": f"{rate:.4g}",
        }  # fmt: skip
        self.rows.append(row)
        bar.set_postfix(
            content=f"{means[0]:.3g}", style=f"{means[1]:.3g}", total=f"{means[2]:.3g}", refresh=False
        )
        if self.processes.main and not self.progress:
            log.info(
                "step %d/%d: content %.4g, style %.4g, total %.4g (%.2f it/s)",
                self.step, self.config.steps, *means, rate,
            )  # fmt: skip

    def _note_unreadable(self, bad: list[str], hopeless: bool) -> None:
        """Count (and warn once about) each unreadable image; a folder with none readable is the error."""
        if hopeless:
            unreadable = self.bad | set(bad)
            which, paths = ("content", self.content)
            if not all(str(p) in unreadable for p in self.content):
                which, paths = ("style", self.style)
            raise StylizeError(f"none of the {len(paths)} {which} images in {paths[0].parent} could be read")
        for path in bad:
            if path not in self.bad:
                self.bad.add(path)
                if self.processes.main:
                    log.warning("skipped an unreadable image: %s", path)

    def _fixed_samples(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        size = min(self.config.crop_size, 256)
        c = samples.pick(self.content, self.reader, self.config.samples, size)
        s = samples.pick(self.style, self.reader, self.config.samples, size)
        return None if c is None or s is None else (c, s)

    def _sample(self, fixed: tuple[torch.Tensor, torch.Tensor]) -> None:
        image = samples.grid(self.net, *fixed, self.processes.device)
        samples.write_png(self.out / checkpoint.SAMPLES_DIR / f"step_{self.step:07d}.png", image)


def train(
    config: TrainConfig,
    content: Sequence[Path],
    style: Sequence[Path],
    out: str | Path,
    reader: Reader,
    *,
    weights: str | Path | None = None,
    state: dict | None = None,
    progress: bool = False,
    download: bool = True,
    should_stop: Callable[[], int | None] = lambda: None,
    net: AdaINNet | None = None,
) -> TrainResult:
    """Train ``config.model``'s decoder into ``out`` (check it first with :func:`checkpoint.check_output`).

    ``state`` is the checkpoint to resume; ``net`` replaces the network that ``config`` names (tests
    use random weights). Under torchrun this is one process of the group. Image workers are spawned
    processes, so a script calling this needs the usual ``if __name__ == "__main__":`` guard.
    """
    config.check()
    processes = distributed.start(config.device)
    try:
        if net is None:
            net = build_network(config, Path(out), weights, state, download, progress and processes.main)
        elif state is not None:
            load_exact(net.decoder, state["decoder"], "checkpoint decoder")
        trainer = Trainer(net, config, content, style, Path(out), reader, processes, state, progress)
        return trainer.run(should_stop)
    finally:
        distributed.stop(processes)
