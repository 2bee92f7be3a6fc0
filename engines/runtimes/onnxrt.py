"""The onnxruntime backend: the exported graph (:mod:`engines.export`) in an InferenceSession.

On the CPU frames go through ``session.run`` as NumPy views of the torch tensors. On CUDA (needs
``onnxruntime-gpu``) nothing is copied through the host: inputs and the output are bound with
IOBinding straight to torch CUDA memory, and the session is told to run on torch's current CUDA
stream, so it is ordered after the kernels that produced the frame without a host sync. The CUDA
path cannot be exercised on CPU-only machines; the parity tests cover the CPU path.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from engines.errors import StylizeError
from engines.export import INPUT_ALPHA, INPUT_CONTENT, OUTPUT, export_onnx, import_onnx
from engines.models.base import StyleModel, StyleStats
from engines.runtimes.base import DeviceStats
from engines.runtimes.torch_rt import resolve_device, resolve_precision

_ORT_TYPES = {"tensor(float)": "fp32", "tensor(float16)": "fp16"}


def _import_ort():
    try:
        import onnxruntime
    except ImportError:
        raise StylizeError(
            "the onnxruntime backend needs onnxruntime: pip install onnxruntime (or onnxruntime-gpu for CUDA)"
        ) from None
    return onnxruntime


def cpu_threads() -> int:
    """CPUs this process may use (affinity-aware, so containers and taskset are respected)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def default_providers(ort, device: torch.device, precision: str) -> list:
    """CPU EP on the CPU; on CUDA the TensorRT EP (when built in), then CUDA, then CPU for leftovers.

    Both GPU providers run on torch's current stream (see the module docstring). The TensorRT EP
    builds an engine per new input shape, cached on disk, so only the first frame of a size is slow.
    """
    if device.type == "cpu":
        return ["CPUExecutionProvider"]
    available = ort.get_available_providers()
    if "CUDAExecutionProvider" not in available:
        raise StylizeError(
            f"onnxruntime {ort.__version__} has no CUDA provider (has {', '.join(available)}): "
            "pip install onnxruntime-gpu, or use --device cpu"
        )
    index = device.index if device.index is not None else torch.cuda.current_device()
    stream = str(torch.cuda.current_stream(index).cuda_stream)
    providers: list = []
    if "TensorrtExecutionProvider" in available:
        import platformdirs

        cache = Path(platformdirs.user_cache_dir("adain-stream")) / "ort-trt"
        cache.mkdir(parents=True, exist_ok=True)
        providers.append(
            (
                "TensorrtExecutionProvider",
                {
                    "device_id": index,
                    "user_compute_stream": stream,
                    "trt_fp16_enable": precision == "fp16",
                    "trt_engine_cache_enable": True,
                    "trt_engine_cache_path": str(cache),
                },
            )
        )
    providers.append(("CUDAExecutionProvider", {"device_id": index, "user_compute_stream": stream}))
    providers.append("CPUExecutionProvider")
    return providers


class OnnxRuntimeEngine:
    """Runs a :class:`StyleModel`'s per-frame path in onnxruntime (Engine protocol).

    The graph is exported in memory from ``model`` unless ``onnx_path`` names a previously exported
    file (its precision is then taken from the file when ``precision`` is ``auto``). ``providers``
    overrides the provider list passed to onnxruntime as is.
    """

    backend = "onnxruntime"

    def __init__(
        self,
        model: StyleModel,
        device: str | torch.device | None = "auto",
        precision: str = "auto",
        onnx_path: str | os.PathLike | None = None,
        providers: list | None = None,
    ):
        ort = _import_ort()
        self.device = resolve_device(device)
        self.model_name = model.name
        self.multiple = model.multiple
        self.stats_names = tuple(model.stats_names)
        if onnx_path is None:
            self.precision = resolve_precision(precision, self.device)
            graph = export_onnx(model, precision=self.precision)
        else:
            try:
                graph = Path(onnx_path).read_bytes()
            except OSError as e:
                raise StylizeError(f"cannot read ONNX file {onnx_path}: {e}") from None
            wanted = _file_precision(graph) if precision == "auto" else precision
            self.precision = resolve_precision(wanted, self.device)
        self.dtype = torch.float16 if self.precision == "fp16" else torch.float32

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # GPU runs leave the CPU only shape arithmetic; a CPU run gets every core this process may use.
        options.intra_op_num_threads = cpu_threads() if self.device.type == "cpu" else 1
        options.log_severity_level = 3  # errors only; fallbacks are checked below instead
        self.providers = providers or default_providers(ort, self.device, self.precision)
        where = f" ({onnx_path})" if onnx_path is not None else ""
        try:
            self.session = ort.InferenceSession(graph, options, providers=self.providers)
        except Exception as e:  # onnxruntime raises its own exception types
            raise StylizeError(f"onnxruntime cannot load the '{model.name}' graph{where}: {e}") from None
        self._check_graph(where, getattr(model, "fingerprint", ""))
        self._on_gpu = self.device.type == "cuda"
        if self._on_gpu and self.session.get_providers()[0] == "CPUExecutionProvider":
            raise StylizeError(
                "onnxruntime fell back to the CPU (CUDA or cuDNN libraries not found?); "
                "check the onnxruntime-gpu install or use --device cpu"
            )
        self._device_stats = DeviceStats(self.device)
        self._alpha_value: float | None = None
        self._alpha = torch.ones(1)

    def _check_graph(self, where: str, fingerprint: str) -> None:
        """The graph must come from this model (and weights, when both are known) at this precision."""
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("stylize.model", self.model_name) != self.model_name:
            raise StylizeError(
                f"ONNX graph{where} was exported from model '{meta['stylize.model']}', "
                f"not '{self.model_name}' (exported from another model?)"
            )
        if fingerprint and meta.get("stylize.fingerprint") not in (None, "", fingerprint):
            raise StylizeError(f"ONNX graph{where} was exported from other '{self.model_name}' weights")
        inputs = self.session.get_inputs()
        names = tuple(i.name for i in inputs)
        expected = (INPUT_CONTENT, INPUT_ALPHA, *self.stats_names)
        if names != expected:
            raise StylizeError(
                f"ONNX graph{where} has inputs {', '.join(names)}; model '{self.model_name}' needs "
                f"{', '.join(expected)} (exported from another model?)"
            )
        found = _ORT_TYPES.get(inputs[0].type, inputs[0].type)
        if found != self.precision:
            raise StylizeError(f"ONNX graph{where} is {found}, but precision {self.precision} was asked for")

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
            bind(name, "cuda", x.device.index or 0, dtype, tuple(t.shape), t.data_ptr())
        self.session.run_with_iobinding(binding)
        return out.float()


def _file_precision(graph: bytes) -> str:
    """Precision of an exported graph, read from its ``content`` input's element type."""
    onnx = import_onnx()
    try:
        inputs = onnx.load_from_string(graph).graph.input
    except Exception as e:  # protobuf raises DecodeError and others for files that are not ONNX
        raise StylizeError(f"not an ONNX graph: {e}") from None
    fp16 = bool(inputs) and inputs[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    return "fp16" if fp16 else "fp32"
