"""The PyTorch backend: CPU, or CUDA in float16 with channels_last."""

from __future__ import annotations

import copy

import torch

from engines.errors import StylizeError
from engines.models.base import ContentStatsHook, StyleModel, StyleStats

PRECISIONS = ("auto", "fp32", "fp16")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``auto``/None → CUDA when present, else CPU; an unavailable CUDA request is a clear error."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise StylizeError(
            f"device '{device}' requested but no CUDA GPU is available (torch {torch.__version__})"
        )
    if dev.type not in ("cpu", "cuda"):
        raise StylizeError(f"unsupported device '{device}': use cpu, cuda or cuda:N")
    return dev


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` → fp16 on CUDA, fp32 on the CPU (CPU fp16 convolutions are slower, not faster)."""
    if precision not in PRECISIONS:
        raise StylizeError(f"unknown precision '{precision}': choose one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "fp16" if device.type == "cuda" else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise StylizeError("fp16 needs a CUDA device; use --precision fp32 on the CPU")
    return precision


class TorchEngine:
    """Runs a :class:`StyleModel`'s per-frame path in PyTorch (inference mode).

    The model is copied, so the caller's float32 model stays available for the style path.
    ``content_hook`` (e.g. the flicker smoother) sees the content statistics at each AdaIN layer.
    """

    backend = "torch"

    def __init__(
        self,
        model: StyleModel,
        device: str | torch.device | None = "auto",
        precision: str = "auto",
        content_hook: ContentStatsHook | None = None,
    ):
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.dtype = torch.float16 if self.precision == "fp16" else torch.float32
        self.model_name = model.name
        self.multiple = model.multiple
        self.channels_last = self.device.type == "cuda"
        net = copy.deepcopy(model).to(self.device, self.dtype).eval().requires_grad_(False)
        self.model = net.to(memory_format=torch.channels_last) if self.channels_last else net
        self.content_hook = content_hook
        self._stats_src: StyleStats | None = None  # held, so identity stays meaningful
        self._stats: StyleStats = {}

    def _device_stats(self, stats: StyleStats) -> StyleStats:
        """Stats on the device, copied once per style rather than once per frame."""
        if stats is not self._stats_src:
            self._stats = {k: v.to(self.device, torch.float32) for k, v in stats.items()}
            self._stats_src = stats
        return self._stats

    @torch.inference_mode()
    def run(self, content: torch.Tensor, stats: StyleStats, alpha: float) -> torch.Tensor:
        x = content.to(self.device, self.dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out = self.model.stylize(x, self._device_stats(stats), alpha, self.content_hook)
        return out.float()
