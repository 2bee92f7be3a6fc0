"""Temporal smoothing of AdaIN's content statistics, and the flicker measure it is judged by.

Per-frame AdaIN re-normalizes each frame with its own content μ/σ. Content changes move those
statistics from frame to frame, which shifts the colours of the whole stylized picture; smoothing
μ/σ over time (an exponential moving average per AdaIN layer) steadies that at no cost.

Measured on a still scene with camera noise (microast, tests/test_smoothing.py), statistics alone
are not enough: the noise moves the AdaIN *features* at every position and the decoder turns that
into texture that boils, while μ/σ barely move (relative flicker 0.457 without, 0.456 with μ/σ
smoothing; with ±3 % exposure jitter μ/σ smoothing alone even raises it, 0.39 → 0.61, because
per-frame normalization had cancelled the exposure change). So the smoother also averages the AdaIN
output features over time, per position, and only where the picture is still: a position that changes
by ``motion_threshold`` of the map's mean magnitude or more takes the new frame as is, so moving
objects leave no trails. Both together: 0.42 → 0.06 (microast), 0.31 → 0.14 (adain-cd16x).

A scene cut must not be smoothed (the old scene would bleed into the new one for a second), so a
large jump of the statistics resets both averages.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

#: Relative change of a layer's (μ, σ) that counts as a scene cut. Measured with the cd16x encoder
#: at relu4_1: camera noise and ±3 % exposure jitter move the statistics 0.5–6 % from frame to frame,
#: ordinary motion in a film under 3 %, while a cut or a different photo moves them 12–45 %.
DEFAULT_CUT_THRESHOLD = 0.1
#: Per-position change (relative to the feature map's mean magnitude) from which a position counts as
#: moving and is not averaged at all; smaller changes are averaged less the larger they are. 0.1 is
#: the measured balance: a 10 px/frame pan keeps within ~1/3 of its frame-to-frame change of the
#: unsmoothed output (0.3 leaves visible trails), noise on still areas is still averaged away.
DEFAULT_MOTION_THRESHOLD = 0.1

Stats = tuple[torch.Tensor, torch.Tensor]  # per-channel (mean, std), each N×C×1×1


class StatsSmoother:
    """A :data:`~engines.models.base.ContentStatsHook`: EMA of per-channel μ and σ for each layer.

    ``momentum`` is the weight of the past (0.9: about the last 10 frames count). Frames of a batch
    are taken in order. The decision to reset is made on the device (``torch.where``), so the hook
    never forces a GPU→CPU sync per frame. Call :meth:`reset` when the stream changes (new source,
    smoothing switched back on).
    """

    def __init__(
        self,
        momentum: float = 0.9,
        cut_threshold: float = DEFAULT_CUT_THRESHOLD,
        feature_momentum: float = 0.8,
        motion_threshold: float = DEFAULT_MOTION_THRESHOLD,
    ) -> None:
        for name, m in (("momentum", momentum), ("feature_momentum", feature_momentum)):
            if not 0.0 <= m < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {m}")
        self.momentum = momentum
        self.cut_threshold = cut_threshold
        self.feature_momentum = feature_momentum
        self.motion_threshold = motion_threshold
        self._state: dict[str, Stats] = {}
        self._features: dict[str, torch.Tensor] = {}
        self._last_cut: dict[str, dict[int, torch.Tensor]] = {}  # layer → batch index → cut flag
        self._order: list[str] = []  # AdaIN layers in the order a frame meets them
        self._carry: list[torch.Tensor] = []  # per batch index: a cut seen earlier in this frame
        self._cuts: torch.Tensor | int = 0

    @property
    def cuts(self) -> int:
        """Scene cuts detected since the last :meth:`reset` (summed over layers)."""
        return int(self._cuts)

    def reset(self) -> None:
        self._state.clear()
        self._features.clear()
        self._last_cut.clear()
        self._carry = []
        self._cuts = 0

    def __call__(self, layer: str, mean: torch.Tensor, std: torch.Tensor) -> Stats:
        if not self._order or layer == self._order[0]:
            self._carry = []  # a new frame (batch) starts at the first AdaIN layer
        if layer not in self._order:
            self._order.append(layer)
        steps = [self._step(layer, i, mean[i : i + 1], std[i : i + 1]) for i in range(mean.shape[0])]
        if len(steps) == 1:
            return steps[0]
        return torch.cat([m for m, _ in steps]), torch.cat([s for _, s in steps])

    def _step(self, layer: str, i: int, mean: torch.Tensor, std: torch.Tensor) -> Stats:
        mean, std = mean.detach(), std.detach()
        prev = self._state.get(layer)
        if prev is None or prev[0].shape != mean.shape or prev[0].device != mean.device:
            self._state[layer] = (mean, std)
            self._remember_cut(layer, i, torch.ones((), dtype=torch.bool, device=mean.device))
            return mean, std
        p_mean, p_std = prev
        change = ((mean - p_mean).abs().sum() + (std - p_std).abs().sum()) / (
            p_mean.abs().sum() + p_std.abs().sum() + 1e-6
        )
        own = change > self.cut_threshold
        self._cuts = self._cuts + own.long()
        # a cut seen at an earlier layer of this frame is a cut here too, whatever this layer says
        cut = self._remember_cut(layer, i, own)
        m = self.momentum
        new_mean = torch.where(cut, mean, m * p_mean + (1 - m) * mean)
        new_std = torch.where(cut, std, m * p_std + (1 - m) * std)
        self._state[layer] = (new_mean, new_std)
        return new_mean, new_std

    def _remember_cut(self, layer: str, i: int, cut: torch.Tensor) -> torch.Tensor:
        if i < len(self._carry):
            cut = cut | self._carry[i]
            self._carry[i] = cut
        else:
            self._carry.append(cut)
        self._last_cut.setdefault(layer, {})[i] = cut
        return cut

    def features(self, layer: str, feat: torch.Tensor) -> torch.Tensor:
        """Motion-adaptive temporal average of a layer's AdaIN output (N×C×H×W, frames in order)."""
        if self.feature_momentum == 0:
            return feat
        return torch.cat([self._feature_step(layer, i, feat[i : i + 1]) for i in range(feat.shape[0])])

    def _feature_step(self, layer: str, i: int, feat: torch.Tensor) -> torch.Tensor:
        prev = self._features.get(layer)
        if prev is None or prev.shape != feat.shape or prev.device != feat.device:
            self._features[layer] = feat.detach()
            return feat
        x, p = feat.float(), prev.float()
        change = (x - p).abs().mean(dim=1, keepdim=True) / (p.abs().mean() + 1e-6)
        keep = self.feature_momentum * (1 - change / self.motion_threshold).clamp(0, 1)
        cut = self._last_cut.get(layer, {}).get(i)
        if cut is not None:
            keep = torch.where(cut, torch.zeros_like(keep), keep)
        out = (keep * p + (1 - keep) * x).to(feat.dtype)
        self._features[layer] = out.detach()
        return out


def flicker(frames: Sequence[np.ndarray]) -> float:
    """Mean absolute difference between consecutive frames (in pixel units of the frames' dtype)."""
    if len(frames) < 2:
        raise ValueError("flicker needs at least two frames")
    total = 0.0
    for a, b in zip(frames[:-1], frames[1:], strict=True):
        total += float(np.abs(b.astype(np.float32) - a.astype(np.float32)).mean())
    return total / (len(frames) - 1)


def relative_flicker(outputs: Sequence[np.ndarray], inputs: Sequence[np.ndarray]) -> float:
    """Flicker the stylization adds: flicker(outputs) / flicker(inputs) (1 = as steady as the input)."""
    base = flicker(inputs)
    if base == 0:
        raise ValueError("the input frames are identical: relative flicker is undefined")
    return flicker(outputs) / base
