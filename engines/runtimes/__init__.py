"""Backends behind one :class:`~engines.runtimes.base.Engine` interface, chosen by name.

Each backend module is imported only when chosen, so the package imports without onnxruntime or
TensorRT installed.
"""

from __future__ import annotations

from engines.errors import StylizeError
from engines.models.base import StyleModel
from engines.runtimes.base import Engine

BACKENDS = ("torch", "onnxruntime", "tensorrt")


def make_engine(
    backend: str,
    model: StyleModel,
    device: str | None = "auto",
    precision: str = "auto",
    resolution: tuple[int, int] | None = None,
    **options,
) -> Engine:
    """Build the per-frame engine for ``model`` on the named backend.

    ``resolution`` (height, width) is the frame size the caller expects; the TensorRT backend derives
    its optimization profile from it, the others ignore it.
    """
    if backend == "torch":
        from engines.runtimes.torch_rt import TorchEngine

        return TorchEngine(model, device=device, precision=precision, **options)
    if backend == "onnxruntime":
        from engines.runtimes.onnxrt import OnnxRuntimeEngine

        return OnnxRuntimeEngine(model, device=device, precision=precision, **options)
    if backend == "tensorrt":
        from engines.runtimes.tensorrt import TensorRTEngine

        return TensorRTEngine.from_model(model, precision=precision, resolution=resolution, **options)
    raise StylizeError(f"unknown backend '{backend}': choose one of {', '.join(BACKENDS)}")
