"""The one interface every backend (torch, onnxruntime, tensorrt) implements."""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

import torch

from engines.models.base import ContentStatsHook, StyleStats


@runtime_checkable
class Engine(Protocol):
    """Runs a model's per-frame path.

    ``run`` takes N×3×H×W float32 RGB in [0, 1] on ``device`` with H and W multiples of
    ``multiple``, the style as cached statistics and the content–style trade-off ``alpha``, and
    returns the stylized batch in the same layout (float32, [0, 1], on ``device``). Padding, colour
    order and uint8 conversion are the caller's (see :class:`engines.stylizer.Stylizer`), so every
    backend sees the same tensors.

    Capability: an engine with ``supports_content_hook`` calls ``content_hook`` (when set) with the
    content statistics at each AdaIN layer, which is how the flicker smoother works. Exported graphs
    have no such hook: their ``content_hook`` stays None and setting it is refused.
    """

    backend: ClassVar[str]  # "torch" | "onnxruntime" | "tensorrt"
    supports_content_hook: ClassVar[bool]
    content_hook: ContentStatsHook | None
    model_name: str
    device: torch.device
    precision: str  # "fp32" | "fp16"
    multiple: int

    def run(self, content: torch.Tensor, stats: StyleStats, alpha: float) -> torch.Tensor: ...


class GraphEngine:
    """What the exported-graph backends share: no content hook, and a graph's contract."""

    supports_content_hook: ClassVar[bool] = False

    @property
    def content_hook(self) -> None:
        return None

    @content_hook.setter
    def content_hook(self, hook: ContentStatsHook | None) -> None:
        if hook is not None:
            raise ValueError(f"the {self.backend} backend runs an exported graph and has no content hook")


class DeviceStats:
    """A style's statistics as contiguous float32 tensors on a device, converted once per style.

    Engines call this every frame; only a different stats dict (another style, a new mix) costs a
    copy. Styles are never mutated in place (:class:`engines.styles.Style` is frozen, mixing makes a
    new dict), so identity is the right test; the source dict is held so its id cannot be reused.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self._source: StyleStats | None = None
        self._converted: StyleStats = {}

    def __call__(self, stats: StyleStats) -> StyleStats:
        if stats is not self._source:
            self._converted = {k: v.to(self.device, torch.float32).contiguous() for k, v in stats.items()}
            self._source = stats
        return self._converted
