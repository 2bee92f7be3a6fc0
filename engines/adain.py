"""Adaptive Instance Normalization (Huang & Belongie, ICCV 2017).

AdaIN(x, y) = σ(y)·(x − μ(x))/σ(x) + μ(y), with μ and σ per channel over H×W. Statistics follow the
paper's code: mean over H×W and σ = sqrt(unbiased variance + 1e-5). They are always computed in
float32, also when the network runs in float16, because fp16 variance of large activations overflows
and loses the precision the style depends on.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from engines.models.base import ContentStatsHook, StyleStats

EPS = 1e-5


def mean_std(feat: torch.Tensor, eps: float = EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of an N×C×H×W feature map, as float32 N×C×1×1 tensors."""
    if feat.dim() != 4:
        raise ValueError(f"expected an N×C×H×W feature map, got shape {tuple(feat.shape)}")
    f = feat.float().flatten(2)
    var = f.var(dim=2, unbiased=True) + eps
    return f.mean(dim=2)[..., None, None], var.sqrt()[..., None, None]


def adain(
    content: torch.Tensor,
    style_mean: torch.Tensor,
    style_std: torch.Tensor,
    content_hook: ContentStatsHook | None = None,
    layer: str = "",
) -> torch.Tensor:
    """Re-normalize ``content`` to the style's per-channel statistics.

    ``style_mean``/``style_std`` are N×C×1×1 (or 1×C×1×1, broadcast over the batch).
    ``content_hook`` may replace the content statistics; if it also has a ``features(layer, t)``
    method, that sees the result (the flicker smoother averages it over time).
    The result has the dtype of ``content``; the arithmetic is float32.
    """
    if style_mean.shape[-3] != content.shape[1] or style_std.shape[-3] != content.shape[1]:
        raise ValueError(
            f"style statistics have {style_mean.shape[-3]} channels, content features have {content.shape[1]}"
        )
    c_mean, c_std = mean_std(content)
    if content_hook is not None:
        c_mean, c_std = content_hook(layer, c_mean, c_std)
    normalized = (content.float() - c_mean) / c_std
    out = (normalized * style_std.float() + style_mean.float()).to(content.dtype)
    smooth_features = getattr(content_hook, "features", None)
    return out if smooth_features is None else smooth_features(layer, out)


def blend(stylized: torch.Tensor, content: torch.Tensor, alpha: float | torch.Tensor) -> torch.Tensor:
    """Content–style trade-off at the feature level: α·stylized + (1 − α)·content."""
    return alpha * stylized + (1 - alpha) * content


def mix_stats(stats: Sequence[StyleStats], weights: Sequence[float]) -> StyleStats:
    """Interpolate k styles on their cached statistics.

    For AdaIN this is exactly the paper's interpolation, Σ wₖ·AdaIN(x, yₖ) = AdaIN with
    μ = Σ wₖμₖ and σ = Σ wₖσₖ, so mixing costs no extra encoder pass per frame. Weights are
    normalized to sum to 1.
    """
    if not stats:
        raise ValueError("mix_stats needs at least one style")
    if len(stats) != len(weights):
        raise ValueError(f"{len(stats)} styles but {len(weights)} weights")
    w = torch.tensor([float(x) for x in weights], dtype=torch.float64)
    if (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"style weights must be non-negative and not all zero, got {list(weights)}")
    w = (w / w.sum()).tolist()
    names = stats[0].keys()
    if any(s.keys() != names for s in stats):
        raise ValueError("cannot mix statistics from different models")
    return {k: sum(wi * s[k].float() for wi, s in zip(w, stats, strict=True)) for k in names}


class AdaIN(nn.Module):
    """Module form of :func:`adain` (no parameters)."""

    def forward(
        self, content: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor
    ) -> torch.Tensor:
        return adain(content, style_mean, style_std)
