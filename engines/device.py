"""Device and precision rules, for every backend in one place.

- ``auto`` device: CUDA when torch sees a GPU, else the CPU.
- ``auto`` precision: fp16 on CUDA (tensor cores), fp32 on the CPU, where fp16 convolutions are slower,
  not faster; fp16 on the CPU is refused. An exported graph carries its own precision
  (:func:`engines.export.graph_precision`), which ``auto`` then follows.
"""

from __future__ import annotations

import torch

from engines.errors import StylizeError

#: the precisions a network can run (and be exported) in
PRECISIONS = ("fp32", "fp16")
#: what users may ask for
PRECISION_CHOICES = ("auto", *PRECISIONS)
DTYPES = {"fp32": torch.float32, "fp16": torch.float16}


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``auto``/None → CUDA when present, else CPU; an unavailable CUDA request is a clear error."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
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


def resolve_precision(precision: str, device: torch.device, graph_precision: str | None = None) -> str:
    """The precision to run in; ``graph_precision`` is that of a given exported graph, if any."""
    if precision not in PRECISION_CHOICES:
        raise StylizeError(f"unknown precision '{precision}': choose one of {', '.join(PRECISION_CHOICES)}")
    if precision == "auto":
        precision = graph_precision or ("fp16" if device.type == "cuda" else "fp32")
    if precision == "fp16" and device.type != "cuda":
        raise StylizeError("fp16 needs a CUDA device; use --precision fp32 on the CPU")
    if graph_precision is not None and graph_precision != precision:
        raise StylizeError(f"the ONNX graph is {graph_precision}, but precision {precision} was asked for")
    return precision
