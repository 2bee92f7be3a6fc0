"""The interface every style-transfer network implements."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn

from engines.errors import StylizeError

#: A style, as the per-frame path needs it: named float32 tensors of shape 1×C×1×1.
StyleStats = dict[str, torch.Tensor]

#: Optional per-frame hook on the content statistics at each AdaIN layer:
#: ``hook(layer, mean, std) -> (mean, std)``. The flicker smoother plugs in here.
ContentStatsHook = Callable[[str, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class StyleModel(nn.Module):
    """A network with a separate style path and content path.

    Images are N×3×H×W RGB float in [0, 1]. ``multiple`` is what H and W must be divisible by
    (callers pad; see :func:`engines.stylizer.pad_to_multiple`).
    """

    name: str = ""
    multiple: int = 1
    #: names (and order, for export) of the tensors that ``style_stats`` returns
    stats_names: tuple[str, ...] = ()

    def style_stats(self, style: torch.Tensor) -> StyleStats:
        """Encode one style image (1×3×H×W) into the tensors the decoder needs; float32."""
        raise NotImplementedError

    def stylize(
        self,
        content: torch.Tensor,
        stats: StyleStats,
        alpha: float | torch.Tensor = 1.0,
        content_hook: ContentStatsHook | None = None,
    ) -> torch.Tensor:
        """Stylize a batch of content images with cached style statistics. Output clamped to [0, 1]."""
        raise NotImplementedError

    def forward(self, content: torch.Tensor, alpha: torch.Tensor, *stats: torch.Tensor) -> torch.Tensor:
        """Positional form of :meth:`stylize` (stats in ``stats_names`` order), used for ONNX export."""
        return self.stylize(content, dict(zip(self.stats_names, stats, strict=True)), alpha)


def round_up(x: int, multiple: int) -> int:
    """The smallest multiple of ``multiple`` that is at least ``x`` (sizes a network accepts)."""
    return -(-x // multiple) * multiple


def load_exact(module: nn.Module, sd: Mapping[str, torch.Tensor], what: str) -> None:
    """load_state_dict(strict) with a one-line error naming the first mismatching key or shape."""
    expected = module.state_dict()
    for key, ref in expected.items():
        if key not in sd:
            raise StylizeError(f"{what} checkpoint is missing '{key}' (expected shape {tuple(ref.shape)})")
        if tuple(sd[key].shape) != tuple(ref.shape):
            raise StylizeError(
                f"{what} checkpoint '{key}' has shape {tuple(sd[key].shape)}, expected {tuple(ref.shape)}"
            )
    extra = [k for k in sd if k not in expected]
    if extra:
        raise StylizeError(f"{what} checkpoint has unexpected key '{extra[0]}'")
    module.load_state_dict({k: sd[k].float() for k in expected})
