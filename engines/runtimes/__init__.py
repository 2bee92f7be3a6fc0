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
        from engines.runtimes import trt_compat

        trt_compat.import_tensorrt()  # the clear "not installed" error before a slow export
        from engines.export import export_onnx
        from engines.runtimes.tensorrt import TensorRTEngine

        precision = "fp16" if precision == "auto" else precision
        onnx = export_onnx(model, precision=precision)
        dev = "cuda" if device in (None, "auto") else device
        return TensorRTEngine(
            onnx,
            model.name,
            model.multiple,
            model.stats_names,
            precision=precision,
            resolution=resolution or (720, 1280),
            device=dev,
            **options,
        )
    raise StylizeError(f"unknown backend '{backend}': choose one of {', '.join(BACKENDS)}")
