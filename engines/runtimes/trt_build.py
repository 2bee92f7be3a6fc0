"""Building TensorRT plans: the step before running, apart from the runner (Polygraphy's loader/runner split).

A plan is valid for one ONNX graph, TensorRT version, GPU, shape profile and precision, so
:func:`plan_settings` gathers exactly those into an :class:`~engines.engine_cache.EngineSettings` (the
cache key) and :func:`load_or_build` returns the cached plan or builds and stores it. Builds share one
timing cache per TensorRT version and GPU, merged under a lock so parallel builds add to it rather than
overwrite each other. TensorRT is imported lazily (through :mod:`engines.runtimes.trt_compat`).
"""

from __future__ import annotations

import torch

from engines.engine_cache import EngineCache, EngineSettings, Shape
from engines.errors import StylizeError
from engines.export import INPUT_CONTENT, Graph
from engines.models.base import round_up
from engines.runtimes import trt_compat
from engines.runtimes.options import TensorRTOptions


def profile_shapes(
    height: int,
    width: int,
    multiple: int,
    *,
    max_size: tuple[int, int] | None = None,
    batch: int = 1,
) -> tuple[Shape, Shape, Shape]:
    """min/opt/max N×3×H×W shapes of ``content`` for a stream of ``height``×``width`` frames.

    Frames reach the engine padded up to ``multiple``, so opt (the shape kernels are tuned for) and
    the default max are the padded resolution. min is a quarter of it (at least one ``multiple``)
    so previews and smaller inputs still run. ``max_size`` raises max for streams whose size may
    grow. Batch ranges over 1..``batch``.
    """
    if min(height, width, multiple, batch) < 1:
        raise StylizeError(f"invalid engine profile: {height}x{width}, multiple {multiple}, batch {batch}")
    opt_hw = (round_up(height, multiple), round_up(width, multiple))
    max_hw = opt_hw
    if max_size is not None:
        max_hw = (round_up(max_size[0], multiple), round_up(max_size[1], multiple))
        if max_hw[0] < opt_hw[0] or max_hw[1] < opt_hw[1]:
            raise StylizeError(
                f"max resolution {max_size[0]}x{max_size[1]} is smaller than the resolution {height}x{width}"
            )
    min_hw = tuple(max(multiple, (s // 4) // multiple * multiple) for s in opt_hw)
    return (1, 3, *min_hw), (batch, 3, *opt_hw), (batch, 3, *max_hw)


def plan_settings(
    graph: Graph, device: torch.device, resolution: tuple[int, int], options: TensorRTOptions
) -> EngineSettings:
    """Everything the plan for ``graph`` at ``resolution`` (height, width) on ``device`` depends on."""
    trt = trt_compat.import_tensorrt()
    min_shape, opt_shape, max_shape = profile_shapes(
        *resolution, graph.multiple, max_size=options.max_resolution, batch=options.batch
    )
    props = torch.cuda.get_device_properties(device)
    return EngineSettings(
        onnx_sha256=graph.sha256,
        trt_version=trt.__version__,
        gpu_name=props.name,
        compute_capability=(props.major, props.minor),
        min_shape=min_shape,
        opt_shape=opt_shape,
        max_shape=max_shape,
        precision=graph.precision,
    )


def load_or_build(
    graph: Graph, settings: EngineSettings, cache: EngineCache, device: torch.device, workspace_bytes: int
) -> bytes:
    """The cached plan for ``settings``, or a new one built on ``device`` and stored (once per machine)."""

    def build() -> bytes:
        with torch.cuda.device(device):
            return build_plan(graph, settings, cache, workspace_bytes=workspace_bytes)

    return cache.get_or_build(settings, build)


def build_plan(
    graph: Graph,
    settings: EngineSettings,
    cache: EngineCache | None = None,
    *,
    workspace_bytes: int = 2 << 30,
) -> bytes:
    """Parse the graph and build a serialized plan with one optimization profile.

    The graph's own types decide the precision (a strongly typed network, see trt_compat), so
    ``settings.precision`` must be the graph's. With a ``cache``, its timing cache for this TensorRT
    version and GPU is used and merged back, so rebuilding for another resolution or model on the same
    GPU skips most kernel timing.
    """
    trt = trt_compat.import_tensorrt()
    if settings.precision != graph.precision:
        raise StylizeError(
            f"a {settings.precision} TensorRT engine needs an ONNX export in that precision, but "
            f"{graph.source} is {graph.precision}: export the model with precision={settings.precision}"
        )
    logger = trt_compat.logger()
    builder = trt.Builder(logger)
    network = trt_compat.create_network(builder)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(graph.data):
        errors = trt_compat.parser_errors(parser) or [trt_compat.recent_errors() or "no details"]
        raise StylizeError(f"TensorRT could not parse {graph.source}: {'; '.join(errors)}")

    config = builder.create_builder_config()
    trt_compat.set_workspace_limit(config, workspace_bytes)
    profile = builder.create_optimization_profile()
    profile.set_shape(INPUT_CONTENT, settings.min_shape, settings.opt_shape, settings.max_shape)
    config.add_optimization_profile(profile)
    timing_path = cache.timing_cache_path(settings) if cache is not None else None
    trt_compat.load_timing_cache(config, timing_path)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise StylizeError(
            f"TensorRT failed to build the engine: {trt_compat.recent_errors() or 'no details'}"
        )
    if cache is not None:
        with cache.timing_cache_lock(settings):
            trt_compat.merge_timing_cache(config, timing_path)
    return bytes(memoryview(serialized))
