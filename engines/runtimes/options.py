"""Typed options, one set per backend: what each backend can be asked beyond device and precision.

An option another backend has (``cuda_graph`` with onnxruntime) is a one-line error naming the
backend that has it, instead of a TypeError deep inside a constructor.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engines.errors import StylizeError


@dataclass(frozen=True)
class TorchOptions:
    cuda_graph: bool = False  # capture the network in a CUDA graph per frame shape (CUDA only)
    compile: bool = False  # torch.compile the per-frame path (Triton kernels on CUDA, C++ on the CPU)


@dataclass(frozen=True)
class OnnxRuntimeOptions:
    onnx_path: Path | None = None  # a file from `stylize export`; default: export in memory
    providers: tuple | None = None  # onnxruntime's provider list, passed as is


@dataclass(frozen=True)
class TensorRTOptions:
    onnx_path: Path | None = None  # a file from `stylize export`; default: export in memory
    max_resolution: tuple[int, int] | None = None  # (height, width) the engine must also accept
    batch: int = 1  # largest batch the engine accepts
    workspace_bytes: int = 2 << 30  # builder scratch memory
    cache_dir: Path | None = None  # engine cache folder; default: the user cache


@dataclass(frozen=True)
class OpenVINOOptions:
    onnx_path: Path | None = None  # an fp32 file from `stylize export`; default: export in memory
    threads: int | None = None  # inference threads; default: every CPU this process may use


OPTIONS: dict[str, type] = {
    "torch": TorchOptions,
    "onnxruntime": OnnxRuntimeOptions,
    "openvino": OpenVINOOptions,
    "tensorrt": TensorRTOptions,
}


def backend_options(backend: str, values: dict[str, Any]) -> Any:
    """The options object of ``backend`` from keyword ``values``; unknown names are a StylizeError."""
    cls = OPTIONS[backend]
    known = {f.name for f in dataclasses.fields(cls)}
    for name in values:
        if name not in known:
            owners = [b for b, c in OPTIONS.items() if name in {f.name for f in dataclasses.fields(c)}]
            where = f" (it is an option of --backend {' or '.join(owners)})" if owners else ""
            raise StylizeError(f"the {backend} backend has no option '{name}'{where}")
    return cls(**values)
