"""The onnxruntime backend: runs an exported :class:`~engines.export.Graph` in an InferenceSession.

On the CPU frames go through ``session.run`` as NumPy views of the torch tensors. On CUDA (needs
``onnxruntime-gpu``) nothing is copied through the host: inputs and the output are bound with
IOBinding straight to torch CUDA memory. onnxruntime runs on a stream of its own (the one it was
given at session build is not the one the caller's frame was produced on), so the producing stream is
synchronized before the run: without that it could read a half-written frame. The CUDA path cannot
be exercised on CPU-only machines; the parity tests cover the CPU path.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from engines.device import DTYPES
from engines.errors import StylizeError
from engines.export import INPUT_ALPHA, INPUT_CONTENT, OUTPUT, Graph
from engines.models.base import StyleStats
from engines.optional import require
from engines.runtimes.base import DeviceStats, GraphEngine
from engines.userdirs import cache_dir


def import_onnxruntime():
    return require("onnxruntime", "the onnxruntime backend")


def cpu_threads() -> int:
    """CPUs this process may use (affinity-aware, so containers and taskset are respected)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def default_providers(ort, device: torch.device) -> list:
    """CPU EP on the CPU; on CUDA the TensorRT EP (when built in), then CUDA, then CPU for leftovers.

    The TensorRT EP builds an engine per new input shape, cached on disk, so only the first frame of
    a size is slow. It gets no fp16 flag: that would build weakly typed, free to run the AdaIN
    statistics the fp16 graph keeps in float32 in float16; the graph's own types decide.
    """
    if device.type == "cpu":
        return ["CPUExecutionProvider"]
    available = ort.get_available_providers()
    if "CUDAExecutionProvider" not in available:
        raise StylizeError(
            f"onnxruntime {ort.__version__} has no CUDA provider (has {', '.join(available)}): "
            "pip install onnxruntime-gpu, or use --device cpu"
        )
    providers: list = []
    if "TensorrtExecutionProvider" in available:
        cache = cache_dir("ort-trt")
        cache.mkdir(parents=True, exist_ok=True)
        providers.append(
            (
                "TensorrtExecutionProvider",
                {
                    "device_id": device.index,
                    "trt_engine_cache_enable": True,
                    "trt_engine_cache_path": str(cache),
                },
            )
        )
    providers.append(("CUDAExecutionProvider", {"device_id": device.index}))
    providers.append("CPUExecutionProvider")
    return providers


class OnnxRuntimeEngine(GraphEngine):
    """Runs an exported graph in onnxruntime (Engine protocol); precision is the graph's.

    ``providers`` overrides the provider list passed to onnxruntime as is.
    """

    backend = "onnxruntime"

    def __init__(self, graph: Graph, device: torch.device, providers: list | tuple | None = None):
        ort = import_onnxruntime()
        self.device = device
        self.model_name = graph.model_name
        self.multiple = graph.multiple
        self.stats_names = graph.stats_names
        self.precision = graph.precision
        self.dtype = DTYPES[self.precision]

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # GPU runs leave the CPU only shape arithmetic; a CPU run gets every core this process may use.
        options.intra_op_num_threads = cpu_threads() if self.device.type == "cpu" else 1
        options.log_severity_level = 3  # errors only; fallbacks are checked below instead
        self.providers = list(providers) if providers else default_providers(ort, self.device)
        try:
            self.session = ort.InferenceSession(graph.data, options, providers=self.providers)
        except Exception as e:  # onnxruntime raises its own exception types
            raise StylizeError(f"onnxruntime cannot load {graph.source}: {e}") from None
        self._on_gpu = self.device.type == "cuda"
        if self._on_gpu and self.session.get_providers()[0] == "CPUExecutionProvider":
            raise StylizeError(
                "onnxruntime fell back to the CPU (CUDA or cuDNN libraries not found?); "
                "check the onnxruntime-gpu install or use --device cpu"
            )
        self._device_stats = DeviceStats(self.device)
        self._alpha_value: float | None = None
        self._alpha = torch.ones(1)

    @torch.inference_mode()
    def run(self, content: torch.Tensor, stats: StyleStats, alpha: float) -> torch.Tensor:
        x = content.to(self.device, self.dtype).contiguous()
        inputs = {INPUT_CONTENT: x, INPUT_ALPHA: self._alpha_tensor(alpha), **self._device_stats(stats)}
        if self._on_gpu:
            return self._run_bound(inputs)
        (out,) = self.session.run([OUTPUT], {k: v.numpy() for k, v in inputs.items()})
        return torch.from_numpy(out).float()

    def _alpha_tensor(self, alpha: float) -> torch.Tensor:
        """α as the graph's [1] float32 input on the device, rebuilt only when it changes."""
        if alpha != self._alpha_value:
            self._alpha = torch.tensor([float(alpha)], dtype=torch.float32, device=self.device)
            self._alpha_value = alpha
        return self._alpha

    def _run_bound(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """CUDA: bind torch memory directly; the output has the content's shape and dtype."""
        x = inputs[INPUT_CONTENT]
        out = torch.empty_like(x)
        binding = self.session.io_binding()
        for name, t in [*inputs.items(), (OUTPUT, out)]:
            dtype = np.float16 if t.dtype == torch.float16 else np.float32
            bind = binding.bind_output if name == OUTPUT else binding.bind_input
            bind(name, "cuda", self.device.index, dtype, tuple(t.shape), t.data_ptr())
        # The frame was written on the caller's stream; onnxruntime reads it on its own (see the top).
        torch.cuda.current_stream(self.device).synchronize()
        self.session.run_with_iobinding(binding)
        return out.float()
