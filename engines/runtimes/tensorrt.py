"""TensorRT backend, the runner: deserializes a built plan and runs it on torch CUDA tensors.

Building is a step apart (:mod:`engines.runtimes.trt_build`); this module only loads and runs, so a
plan built ahead of time (``stylize engines build``) is used as is. The plan's inputs are the graph
contract of :mod:`engines.export`. TensorRT is imported lazily (through
:mod:`engines.runtimes.trt_compat`) so this module imports without it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import torch

from engines.engine_cache import EngineSettings, Shape
from engines.errors import StylizeError
from engines.export import INPUT_ALPHA, INPUT_CONTENT, OUTPUT, Graph
from engines.models.base import StyleStats
from engines.runtimes import trt_compat
from engines.runtimes.base import DeviceStats, GraphEngine

#: TensorRT requires I/O addresses aligned to 256 bytes; a caller's view (``batch[1:]``) may not be.
ALIGNMENT = 256


def _fits(shape: Shape, engine_shape: Shape) -> bool:
    """Whether ``shape`` matches the engine's, where -1 (a dynamic dimension) matches anything."""
    return len(shape) == len(engine_shape) and all(
        e in (-1, s) for s, e in zip(shape, engine_shape, strict=True)
    )


def _aligned(t: torch.Tensor) -> torch.Tensor:
    return t if t.data_ptr() % ALIGNMENT == 0 else t.clone()


@dataclass
class _Context:
    """Per-CUDA-stream state: TensorRT forbids one execution context running on two streams at once."""

    context: Any
    alpha: torch.Tensor


class TensorRTEngine(GraphEngine):
    """The :class:`~engines.runtimes.base.Engine` for TensorRT, over a serialized ``plan`` of ``graph``.

    :meth:`run` enqueues on the current CUDA stream, so the caller's double-buffered pipeline decides
    the overlap; each stream gets its own execution context. On the legacy default stream (which
    synchronizes with every other stream, and which TensorRT warns costs extra syncs) it runs on a
    private stream ordered after it instead. ``settings`` only names the plan in messages.
    """

    backend = "tensorrt"

    def __init__(
        self, plan: bytes, graph: Graph, device: torch.device, settings: EngineSettings | None = None
    ) -> None:
        trt = trt_compat.import_tensorrt()
        self.device = device
        self.model_name = graph.model_name
        self.multiple = graph.multiple
        self.precision = graph.precision
        self.stats_names = graph.stats_names
        self.settings = settings
        with torch.cuda.device(self.device):
            self._runtime = trt.Runtime(trt_compat.logger())
            self._engine = self._runtime.deserialize_cuda_engine(plan)
        if self._engine is None:
            raise StylizeError(
                f"TensorRT could not load the engine for {graph.source}: "
                f"{trt_compat.recent_errors() or 'no details'} (stylize engines clear, then rebuild)"
            )
        self._inspect_io(trt)
        self._contexts: dict[int, _Context] = {}
        self._device_stats = DeviceStats(self.device)
        self._lock = threading.Lock()
        self._private_stream = torch.cuda.Stream(self.device)

    def _inspect_io(self, trt: Any) -> None:
        """Record each I/O tensor's dtype, static shape and the profile's range; check the names."""
        engine = self._engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        expected = {INPUT_CONTENT, INPUT_ALPHA, *self.stats_names}
        if set(inputs) != expected or OUTPUT not in names:
            raise StylizeError(
                f"the TensorRT engine for '{self.model_name}' has inputs {sorted(inputs)} and outputs "
                f"{sorted(set(names) - set(inputs))}, expected inputs {sorted(expected)} "
                f"and output '{OUTPUT}'"
            )
        self._dtypes = {n: trt_compat.torch_dtype(engine.get_tensor_dtype(n)) for n in (*inputs, OUTPUT)}
        self._shapes = {n: tuple(engine.get_tensor_shape(n)) for n in inputs}
        self._dynamic = [n for n in inputs if -1 in self._shapes[n]]
        lo, _, hi = engine.get_tensor_profile_shape(INPUT_CONTENT, 0)
        self.min_shape, self.max_shape = tuple(lo), tuple(hi)

    def _context(self, stream: torch.cuda.Stream) -> _Context:
        with self._lock:
            slot = self._contexts.get(stream.cuda_stream)
            if slot is None:
                context = self._engine.create_execution_context()
                if context is None:
                    raise StylizeError(
                        f"TensorRT could not create an execution context: {trt_compat.recent_errors()}"
                    )
                shape = tuple(max(d, 1) for d in self._shapes[INPUT_ALPHA])  # [1] in our exports
                alpha = torch.empty(shape, dtype=self._dtypes[INPUT_ALPHA], device=self.device)
                slot = self._contexts[stream.cuda_stream] = _Context(context, alpha)
            return slot

    def _check_content(self, content: torch.Tensor) -> None:
        if content.device != self.device:
            raise StylizeError(f"the TensorRT engine runs on {self.device}, got a frame on {content.device}")
        if content.dim() != 4 or content.shape[1] != 3:
            raise StylizeError(f"expected N×3×H×W frames, got shape {tuple(content.shape)}")
        lo, hi = self.min_shape, self.max_shape
        n, _, h, w = content.shape
        if not (lo[0] <= n <= hi[0] and lo[2] <= h <= hi[2] and lo[3] <= w <= hi[3]):
            raise StylizeError(
                f"frame batch {n} at {h}x{w} is outside the TensorRT engine's range "
                f"(batch {lo[0]}-{hi[0]}, {lo[2]}x{lo[3]} to {hi[2]}x{hi[3]}); "
                "build the engine for a larger resolution or max_resolution"
            )

    def run(self, content: torch.Tensor, stats: StyleStats, alpha: float) -> torch.Tensor:
        """Stylize ``content`` on the current CUDA stream; returns a new float32 tensor (no host sync)."""
        self._check_content(content)
        tensors = {INPUT_CONTENT: _aligned(content.to(self._dtypes[INPUT_CONTENT]).contiguous())}
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
            tensors[name] = _aligned(t)

        with torch.cuda.device(self.device):
            caller = torch.cuda.current_stream(self.device)
            stream = caller
            if caller.cuda_stream == 0:  # legacy default stream: run on ours, ordered after it (below)
                stream = self._private_stream
            ctx = self._context(stream)
            tensors[INPUT_ALPHA] = ctx.alpha.fill_(float(alpha))  # on the caller's stream: ordered before
            for name in self._dynamic:
                if not ctx.context.set_input_shape(name, tuple(tensors[name].shape)):
                    raise StylizeError(
                        f"TensorRT rejected input shape {tuple(tensors[name].shape)} for '{name}'"
                    )
            # A fresh output from torch's caching allocator (no cudaMalloc after warm-up): a reused
            # buffer would be overwritten by the next frame while the caller still reads this one.
            out = torch.empty(
                tuple(ctx.context.get_tensor_shape(OUTPUT)), dtype=self._dtypes[OUTPUT], device=self.device
            )
            for name, t in tensors.items():
                ctx.context.set_tensor_address(name, t.data_ptr())
            ctx.context.set_tensor_address(OUTPUT, out.data_ptr())
            if stream is not caller:
                stream.wait_stream(caller)  # after everything above that the caller's stream wrote
                for t in (*tensors.values(), out):
                    t.record_stream(stream)
            if not ctx.context.execute_async_v3(stream.cuda_stream):
                raise StylizeError(f"TensorRT inference failed: {trt_compat.recent_errors() or 'no details'}")
            if stream is not caller:
                caller.wait_stream(stream)
        return out.float()
