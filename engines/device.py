"""Device and precision rules, for every backend in one place.

- ``auto`` device: CUDA when torch sees a GPU, else the CPU.
- ``auto`` precision: fp16 on CUDA (tensor cores); on the CPU bf16 where the CPU computes it natively
  (``avx512_bf16`` or AMX) and the backend runs it, else fp32. Measured on a 2-core EPYC with
  avx512_bf16 at 640×368: microast 13 → 16 FPS, adain-cd16x 23 → 33 FPS (torch, channels_last), with a
  mean absolute change of the output of 0.017 and 0.005 (tolerance :data:`BF16_TOLERANCE`). fp16 on
  the CPU is refused: its convolutions are slower there, not faster.
- An exported graph carries its own precision (:func:`engines.export.graph_precision`); ``auto``
  follows it.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import torch

from engines.errors import StylizeError

#: the precisions a network can run in
PRECISIONS = ("fp32", "fp16", "bf16")
#: what an exported ONNX graph can be (bf16 runs an fp32 graph with a bf16 hint, see the OpenVINO backend)
GRAPH_PRECISIONS = ("fp32", "fp16")
#: what users may ask for
PRECISION_CHOICES = ("auto", *PRECISIONS)
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
#: the most bf16 may change a stylized frame from fp32, mean absolute difference on [0, 1] pixels
BF16_TOLERANCE = 0.03
#: set to 0 to keep fp32 as the CPU's ``auto`` even where bf16 is native (1 forces bf16)
BF16_ENV = "STYLIZE_CPU_BF16"


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``auto``/None → CUDA when present, else CPU; an unavailable CUDA request is a clear error."""
    if device in (None, "auto"):
        return resolve_device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise StylizeError(f"unknown device '{device}': use auto, cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise StylizeError(f"unsupported device '{device}': use auto, cpu, cuda or cuda:N")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise StylizeError(
                f"device '{device}' requested but no CUDA GPU is available (torch {torch.__version__})"
            )
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        if index >= torch.cuda.device_count():
            raise StylizeError(f"device '{device}': this machine has {torch.cuda.device_count()} GPU(s)")
        dev = torch.device("cuda", index)  # explicit index: streams and graphs must not follow "current"
    return dev


def resolve_precision(
    precision: str,
    device: torch.device,
    graph_precision: str | None = None,
    supported: tuple[str, ...] = PRECISIONS,
    backend: str = "this backend",
) -> str:
    """The precision to run in.

    ``graph_precision`` is that of a given exported graph, if any; ``supported`` what the backend runs.
    """
    if precision not in PRECISION_CHOICES:
        raise StylizeError(f"unknown precision '{precision}': choose one of {', '.join(PRECISION_CHOICES)}")
    if precision == "auto":
        if graph_precision is not None:
            precision = graph_precision
        elif device.type == "cuda":
            precision = "fp16"
        else:
            precision = "bf16" if "bf16" in supported and cpu_bf16_native() else "fp32"
    if precision not in supported:
        raise StylizeError(f"{backend} runs {' or '.join(supported)}, not {precision}")
    if precision == "fp16" and device.type != "cuda":
        raise StylizeError("fp16 needs a CUDA device; use --precision fp32 (or bf16) on the CPU")
    if graph_precision is not None and graph_precision != precision:
        raise StylizeError(f"the ONNX graph is {graph_precision}, but precision {precision} was asked for")
    return precision


@functools.cache
def cpu_bf16_native() -> bool:
    """Whether this CPU computes bf16 natively (``avx512_bf16`` or AMX), unless STYLIZE_CPU_BF16 says."""
    forced = os.environ.get(BF16_ENV)
    if forced in ("0", "1"):
        return forced == "1"
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: stay with fp32 rather than guess
        return False
    flags = next(
        (line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []
    )
    return "avx512_bf16" in flags or "amx_bf16" in flags


def training_precision(precision: str, device: torch.device) -> str:
    """The autocast precision ``stylize train`` runs in (the weights and the optimizer stay float32).

    ``auto`` is bf16 on GPUs that have it (tensor-core speed without loss scaling), fp16 with a grad
    scaler on older GPUs; on the CPU the inference rule: bf16 where it is native (the paper's network
    trained 1.6× faster than in fp32 on a 2-core EPYC with avx512_bf16, see benchmarks/README.md),
    else fp32. fp16 on the CPU is refused.
    """
    if precision == "auto" and device.type == "cuda":
        precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise StylizeError(f"{torch.cuda.get_device_name(device)} has no bf16; use --precision fp16")
    return resolve_precision(precision, device)  # the choices, the CPU's auto and its fp16 refusal
