"""Backends behind one :class:`~engines.runtimes.base.Engine` interface, chosen by name.

:func:`make_engine` is the loader: it resolves device and precision (:mod:`engines.device`), checks
the backend's typed options (:mod:`engines.runtimes.options`), gets the graph an exported backend
runs (:func:`engines.export.graph_for`), builds a TensorRT plan through the cache
(:mod:`engines.runtimes.trt_build`), and hands the result to the backend's runner. Runners only run.
Each backend module is imported only when chosen, so the package imports without onnxruntime or
TensorRT installed.
"""

from __future__ import annotations

from engines.device import resolve_device, resolve_precision
from engines.errors import StylizeError
from engines.models.base import StyleModel
from engines.runtimes.base import Engine
from engines.runtimes.options import OPTIONS, backend_options

BACKENDS = tuple(OPTIONS)
#: the frame size a TensorRT plan is tuned for when the caller does not say (height, width)
DEFAULT_RESOLUTION = (720, 1280)


def make_engine(
    backend: str,
    model: StyleModel,
    device: str | None = "auto",
    precision: str = "auto",
    resolution: tuple[int, int] | None = None,
    **options,
) -> Engine:
    """The per-frame engine for ``model`` on the named backend.

    ``resolution`` (height, width) is the frame size the caller expects; the TensorRT backend tunes
    its plan for it, the others ignore it. ``options`` are the backend's (see
    :mod:`engines.runtimes.options`); one the backend does not have is a StylizeError.
    """
    if backend not in BACKENDS:
        raise StylizeError(f"unknown backend '{backend}': choose one of {', '.join(BACKENDS)}")
    opts = backend_options(backend, options)
    if backend == "tensorrt":
        from engines.runtimes import trt_compat

        trt_compat.import_tensorrt()  # the clear "not installed" error before a slow export
    dev = resolve_device(device)

    if backend == "torch":
        from engines.runtimes.torch_rt import TorchEngine

        return TorchEngine(model, dev, precision, cuda_graph=opts.cuda_graph, compile=opts.compile)

    if backend == "onnxruntime":
        from engines.runtimes.onnxrt import OnnxRuntimeEngine

        graph = _graph(model, precision, dev, opts.onnx_path, backend)
        return OnnxRuntimeEngine(graph, dev, providers=opts.providers)

    if backend == "openvino":
        from engines.export import graph_for
        from engines.runtimes.openvino import OpenVINOEngine

        if dev.type != "cpu":
            raise StylizeError(f"the OpenVINO backend runs on the CPU, not {dev}: use --device cpu")
        run_precision = resolve_precision(precision, dev, supported=("fp32", "bf16"), backend="OpenVINO")
        graph = graph_for(model, "fp32", opts.onnx_path)
        return OpenVINOEngine(graph, run_precision, threads=opts.threads)

    from engines.engine_cache import EngineCache
    from engines.runtimes import trt_build
    from engines.runtimes.tensorrt import TensorRTEngine

    if dev.type != "cuda":
        raise StylizeError(f"the TensorRT backend needs a CUDA GPU, not {dev}")
    graph = _graph(model, precision, dev, opts.onnx_path, backend)
    settings = trt_build.plan_settings(graph, dev, resolution or DEFAULT_RESOLUTION, opts)
    cache = EngineCache(opts.cache_dir)
    plan = trt_build.load_or_build(graph, settings, cache, dev, opts.workspace_bytes)
    return TensorRTEngine(plan, graph, dev, settings)


def _graph(model: StyleModel, precision: str, device, onnx_path, backend: str):
    """The graph to run: a given file's (its precision unless one is asked), else a fresh export."""
    from engines.device import GRAPH_PRECISIONS
    from engines.export import graph_for

    def resolve(p: str) -> str:
        return resolve_precision(p, device, supported=GRAPH_PRECISIONS, backend=f"the {backend} backend")

    if onnx_path is None:
        return graph_for(model, resolve(precision))
    graph = graph_for(model, None if precision == "auto" else resolve(precision), onnx_path)
    resolve(graph.precision)  # an fp16 file on the CPU is refused here
    return graph
