"""The one interface every backend (torch, onnxruntime, tensorrt) implements."""

from __future__ import annotations

from collections import OrderedDict
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
    """Styles' statistics as contiguous float32 tensors on a device, converted once per style.

    Engines call this every frame. The last ``capacity`` styles stay converted (least recently used
    evicted): ``serve``'s shared stage alternates between its clients' styles, and ``live`` switches
    back and forth, and re-converting from pageable host memory would sync the GPU on every launch.
    Styles are never mutated in place (:class:`engines.styles.Style` is frozen, mixing makes a new
    dict), so identity is the right test; each entry holds its source dict so its id cannot be reused.
    """

    def __init__(self, device: torch.device, capacity: int = 8):
        self.device = device
        self.capacity = capacity
        # id(source) → (source, on device, the CUDA streams it was recorded on); oldest first
        self._cache: OrderedDict[int, tuple[StyleStats, StyleStats, set]] = OrderedDict()

    def __call__(self, stats: StyleStats) -> StyleStats:
        key = id(stats)
        if key in self._cache:
            self._cache.move_to_end(key)
        else:
            converted = {k: v.to(self.device, torch.float32).contiguous() for k, v in stats.items()}
            self._cache[key] = (stats, converted, set())
            if len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
        _, converted, streams = self._cache[key]
        if self.device.type == "cuda":
            stream = torch.cuda.current_stream(self.device)
            if stream not in streams:
                # Used on this stream too: when evicted, the allocator must not hand the memory to the
                # stream it was made on before this stream's kernels have read it. Once per stream.
                for v in converted.values():
                    v.record_stream(stream)
                streams.add(stream)
        return converted
