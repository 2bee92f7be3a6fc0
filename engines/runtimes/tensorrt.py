"""TensorRT backend: builds (or loads from :class:`~engines.engine_cache.EngineCache`) an engine for
a model's exported per-frame graph and runs it on torch CUDA tensors.

The ONNX graph has inputs ``content`` (N×3×H×W, dynamic N, H, W), ``alpha`` ([1] float32) and one
1×C×1×1 input per style statistic named as in the model's ``stats_names``, and one output
``stylized``. TensorRT is imported lazily (through :mod:`engines.runtimes.trt_compat`) so this
module imports without it.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from engines.engine_cache import EngineCache, EngineSettings, Shape
from engines.errors import StylizeError
from engines.models.base import StyleStats
from engines.runtimes import trt_compat
from engines.runtimes.base import DeviceStats

CONTENT, ALPHA, OUTPUT = "content", "alpha", "stylized"
PRECISIONS = ("fp32", "fp16")
DEFAULT_WORKSPACE = 2 << 30  # 2 GiB


def _round_up(x: int, m: int) -> int:
    return -(-x // m) * m


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
    opt_hw = (_round_up(height, multiple), _round_up(width, multiple))
    max_hw = opt_hw
    if max_size is not None:
        max_hw = (_round_up(max_size[0], multiple), _round_up(max_size[1], multiple))
        if max_hw[0] < opt_hw[0] or max_hw[1] < opt_hw[1]:
            raise StylizeError(
                f"max resolution {max_size[0]}x{max_size[1]} is smaller than the resolution {height}x{width}"
            )
    min_hw = tuple(max(multiple, (s // 4) // multiple * multiple) for s in opt_hw)
    return (1, 3, *min_hw), (batch, 3, *opt_hw), (batch, 3, *max_hw)


def onnx_uses_fp16(onnx_bytes: bytes) -> bool | None:
    """Whether the graph computes in float16 (fp16 inputs, initializers or casts); None if unknown.

    With strongly typed networks the graph's own types decide the engine's precision, so this is
    how we tell an fp16 request apart from an fp32 graph. None when the ``onnx`` package is missing
    or the bytes do not decode (the TensorRT parser then reports the problem).
    """
    try:
        import onnx
        from google.protobuf.message import DecodeError
    except ImportError:
        return None
    try:
        model = onnx.load_model_from_string(onnx_bytes)
    except (DecodeError, ValueError):
        return None
    fp16 = onnx.TensorProto.FLOAT16
    graph = model.graph
    if any(i.type.tensor_type.elem_type == fp16 for i in graph.input):
        return True
    if any(t.data_type == fp16 for t in graph.initializer):
        return True
    for node in graph.node:
        for attr in node.attribute:
            if node.op_type == "Cast" and attr.name == "to" and attr.i == fp16:
                return True
            if node.op_type == "Constant" and attr.name == "value" and attr.t.data_type == fp16:
                return True
    return False


def build_engine(
    onnx_bytes: bytes,
    settings: EngineSettings,
    timing_cache_path: Path | None = None,
    *,
    workspace_bytes: int = DEFAULT_WORKSPACE,
) -> bytes:
    """Parse the ONNX graph and build a serialized engine with one optimization profile.

    The timing cache at ``timing_cache_path`` is loaded first and saved back after the build, so
    rebuilding for another resolution or model on the same GPU skips most kernel timing.
    """
    trt = trt_compat.import_tensorrt()
    if settings.precision not in PRECISIONS:
        raise StylizeError(f"unknown precision '{settings.precision}' (choose from {', '.join(PRECISIONS)})")
    uses_fp16 = onnx_uses_fp16(onnx_bytes)
    if uses_fp16 is not None and uses_fp16 != (settings.precision == "fp16"):
        raise StylizeError(
            f"a {settings.precision} TensorRT engine needs an ONNX export in that precision, but this "
            f"graph is {'fp16' if uses_fp16 else 'fp32'}: "
            f"export the model with precision={settings.precision}"
        )

    logger = trt_compat.logger()
    builder = trt.Builder(logger)
    network = trt_compat.create_network(builder)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        errors = trt_compat.parser_errors(parser) or [trt_compat.recent_errors() or "no details"]
        raise StylizeError(f"TensorRT could not parse the ONNX model: {'; '.join(errors)}")
    inputs = {network.get_input(i).name for i in range(network.num_inputs)}
    if CONTENT not in inputs:
        raise StylizeError(f"the ONNX model has no '{CONTENT}' input (inputs: {', '.join(sorted(inputs))})")

    config = builder.create_builder_config()
    trt_compat.set_workspace_limit(config, workspace_bytes)
    profile = builder.create_optimization_profile()
    profile.set_shape(CONTENT, settings.min_shape, settings.opt_shape, settings.max_shape)
    config.add_optimization_profile(profile)
    trt_compat.load_timing_cache(config, timing_cache_path)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise StylizeError(
            f"TensorRT failed to build the engine: {trt_compat.recent_errors() or 'no details'}"
        )
    trt_compat.save_timing_cache(config, timing_cache_path)
    return bytes(memoryview(serialized))


def _fits(shape: Shape, engine_shape: Shape) -> bool:
    """Whether ``shape`` matches the engine's, where -1 (a dynamic dimension) matches anything."""
    return len(shape) == len(engine_shape) and all(
        e in (-1, s) for s, e in zip(shape, engine_shape, strict=True)
    )


@dataclass
class _Slot:
    """Per-CUDA-stream state: TensorRT forbids one execution context running on two streams at once."""

    context: Any
    alpha: torch.Tensor


class TensorRTEngine:
    """The :class:`~engines.runtimes.base.Engine` for TensorRT.

    Construction gets the engine for (ONNX, TensorRT version, GPU, profile, precision) from the
    cache, building it on a miss (seconds to minutes, once per machine). :meth:`run` enqueues on
    whatever CUDA stream is current, so the caller's double-buffered pipeline decides the overlap;
    each stream gets its own execution context.
    """

    backend = "tensorrt"

    def __init__(
        self,
        onnx: bytes | str | Path,
        model_name: str,
        multiple: int,
        stats_names: Sequence[str],
        precision: str = "fp16",
        resolution: tuple[int, int] = (720, 1280),
        cache: EngineCache | None = None,
        *,
        max_resolution: tuple[int, int] | None = None,
        batch: int = 1,
        device: torch.device | str | int = "cuda",
        workspace_bytes: int = DEFAULT_WORKSPACE,
    ) -> None:
        trt = trt_compat.import_tensorrt()  # first, so a missing TensorRT is the error the user sees
        if not torch.cuda.is_available():
            raise StylizeError("the TensorRT backend needs a CUDA GPU, and PyTorch sees none")
        if precision not in PRECISIONS:
            raise StylizeError(f"unknown precision '{precision}' (choose from {', '.join(PRECISIONS)})")
        device = torch.device(device)
        self.device = torch.device(
            "cuda", device.index if device.index is not None else torch.cuda.current_device()
        )
        self.model_name = model_name
        self.multiple = multiple
        self.precision = precision
        self.stats_names = tuple(stats_names)

        onnx_bytes = onnx if isinstance(onnx, bytes) else Path(onnx).read_bytes()
        min_shape, opt_shape, max_shape = profile_shapes(
            *resolution, multiple, max_size=max_resolution, batch=batch
        )
        props = torch.cuda.get_device_properties(self.device)
        self.settings = EngineSettings(
            onnx_sha256=hashlib.sha256(onnx_bytes).hexdigest(),
            trt_version=trt.__version__,
            gpu_name=props.name,
            compute_capability=(props.major, props.minor),
            min_shape=min_shape,
            opt_shape=opt_shape,
            max_shape=max_shape,
            precision=precision,
        )
        cache = cache if cache is not None else EngineCache()
        timing_cache = cache.timing_cache_path(self.settings)
        with torch.cuda.device(self.device):
            plan = cache.get_or_build(
                self.settings,
                lambda: build_engine(
                    onnx_bytes, self.settings, timing_cache, workspace_bytes=workspace_bytes
                ),
            )
            self._runtime = trt.Runtime(trt_compat.logger())
            self._engine = self._runtime.deserialize_cuda_engine(plan)
        if self._engine is None:
            raise StylizeError(
                f"TensorRT could not load the cached engine {cache.path_for(self.settings)}: "
                f"{trt_compat.recent_errors() or 'no details'} (delete it to rebuild)"
            )
        self._inspect_io(trt)
        self._slots: dict[int, _Slot] = {}
        self._device_stats = DeviceStats(self.device)
        self._lock = threading.Lock()

    def _inspect_io(self, trt: Any) -> None:
        """Record each I/O tensor's dtype and static shape; check the names match the model."""
        engine = self._engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        expected = {CONTENT, ALPHA, *self.stats_names}
        if set(inputs) != expected or OUTPUT not in names:
            raise StylizeError(
                f"the TensorRT engine for '{self.model_name}' has inputs {sorted(inputs)} and outputs "
                f"{sorted(set(names) - set(inputs))}, expected inputs {sorted(expected)} "
                f"and output '{OUTPUT}'"
            )
        self._dtypes = {n: trt_compat.torch_dtype(engine.get_tensor_dtype(n)) for n in (*inputs, OUTPUT)}
        self._shapes = {n: tuple(engine.get_tensor_shape(n)) for n in inputs}
        self._dynamic = [n for n in inputs if -1 in self._shapes[n]]

    def _slot(self, stream: torch.cuda.Stream) -> _Slot:
        with self._lock:
            slot = self._slots.get(stream.cuda_stream)
            if slot is None:
                context = self._engine.create_execution_context()
                if context is None:
                    raise StylizeError(
                        f"TensorRT could not create an execution context: {trt_compat.recent_errors()}"
                    )
                shape = tuple(max(d, 1) for d in self._shapes[ALPHA])  # [1] in our exports
                alpha = torch.empty(shape, dtype=self._dtypes[ALPHA], device=self.device)
                slot = self._slots[stream.cuda_stream] = _Slot(context, alpha)
            return slot

    def _check_content(self, content: torch.Tensor) -> None:
        if content.device != self.device:
            raise StylizeError(f"the TensorRT engine runs on {self.device}, got a frame on {content.device}")
        if content.dim() != 4 or content.shape[1] != 3:
            raise StylizeError(f"expected N×3×H×W frames, got shape {tuple(content.shape)}")
        lo, hi = self.settings.min_shape, self.settings.max_shape
        n, _, h, w = content.shape
        if not (lo[0] <= n <= hi[0] and lo[2] <= h <= hi[2] and lo[3] <= w <= hi[3]):
            raise StylizeError(
                f"frame batch {n} at {h}x{w} is outside the TensorRT engine's range "
                f"(batch {lo[0]}-{hi[0]}, {lo[2]}x{lo[3]} to {hi[2]}x{hi[3]}); "
                "create the engine with a larger resolution or max_resolution"
            )

    def run(self, content: torch.Tensor, stats: StyleStats, alpha: float) -> torch.Tensor:
        """Stylize ``content`` on the current CUDA stream; returns a new float32 tensor (no sync)."""
        self._check_content(content)
        tensors = {CONTENT: content.to(self._dtypes[CONTENT]).contiguous()}
        on_device = self._device_stats(stats)
        for name in self.stats_names:
            if name not in on_device:
                raise StylizeError(f"style statistics lack '{name}' needed by '{self.model_name}'")
            t = on_device[name].to(self._dtypes[name])  # a no-op for our exports' float32 inputs
            if not _fits(tuple(t.shape), self._shapes[name]):
                raise StylizeError(
                    f"style statistic '{name}' has shape {tuple(t.shape)}, "
                    f"the engine expects {self._shapes[name]}"
                )
            tensors[name] = t

        with torch.cuda.device(self.device):
            stream = torch.cuda.current_stream(self.device)
            slot = self._slot(stream)
            ctx = slot.context
            tensors[ALPHA] = slot.alpha.fill_(float(alpha))
            for name in self._dynamic:
                if not ctx.set_input_shape(name, tuple(tensors[name].shape)):
                    raise StylizeError(
                        f"TensorRT rejected input shape {tuple(tensors[name].shape)} for '{name}'"
                    )
            # A fresh output from torch's caching allocator (no cudaMalloc after warm-up): a reused
            # buffer would be overwritten by the next frame while the caller still reads this one.
            out = torch.empty(
                tuple(ctx.get_tensor_shape(OUTPUT)), dtype=self._dtypes[OUTPUT], device=self.device
            )
            for name, t in tensors.items():
                ctx.set_tensor_address(name, t.data_ptr())
            ctx.set_tensor_address(OUTPUT, out.data_ptr())
            if not ctx.execute_async_v3(stream.cuda_stream):
                raise StylizeError(f"TensorRT inference failed: {trt_compat.recent_errors() or 'no details'}")
        return out.float()
