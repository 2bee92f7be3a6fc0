"""Temporal smoothing of AdaIN's content statistics, and the flicker measure it is judged by.

Per-frame AdaIN re-normalizes each frame with its own content μ/σ. Camera noise and exposure
jitter move those statistics a little every frame, and the decoder amplifies that into visible
flicker of the whole stylized picture. Smoothing μ/σ over time (an exponential moving average per
AdaIN layer) removes most of it at no cost. A scene cut must not be smoothed (the old scene's
statistics would bleed into the new one for a second), so a large jump resets the average.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

#: Relative change of a layer's (μ, σ) that counts as a scene cut. Measured with the cd16x encoder
#: at relu4_1: camera noise and ±3 % exposure jitter move the statistics 0.5–6 % from frame to frame,
#: ordinary motion in a film under 3 %, while a cut or a different photo moves them 12–45 %.
DEFAULT_CUT_THRESHOLD = 0.1

Stats = tuple[torch.Tensor, torch.Tensor]  # per-channel (mean, std), each N×C×1×1


class StatsSmoother:
    """A :data:`~engines.models.base.ContentStatsHook`: EMA of per-channel μ and σ for each layer.

    ``momentum`` is the weight of the past (0.9: about the last 10 frames count). Frames of a batch
    are taken in order. The decision to reset is made on the device (``torch.where``), so the hook
    never forces a GPU→CPU sync per frame. Call :meth:`reset` when the stream changes (new source,
    smoothing switched back on).
    """

    def __init__(self, momentum: float = 0.9, cut_threshold: float = DEFAULT_CUT_THRESHOLD) -> None:
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.momentum = momentum
        self.cut_threshold = cut_threshold
        self._state: dict[str, Stats] = {}
        self._cuts: torch.Tensor | int = 0

    @property
    def cuts(self) -> int:
        """Scene cuts detected since the last :meth:`reset` (summed over layers)."""
        return int(self._cuts)

    def reset(self) -> None:
        self._state.clear()
        self._cuts = 0

    def __call__(self, layer: str, mean: torch.Tensor, std: torch.Tensor) -> Stats:
        if mean.shape[0] == 1:
            return self._step(layer, mean, std)
        steps = [self._step(layer, mean[i : i + 1], std[i : i + 1]) for i in range(mean.shape[0])]
        return torch.cat([m for m, _ in steps]), torch.cat([s for _, s in steps])

    def _step(self, layer: str, mean: torch.Tensor, std: torch.Tensor) -> Stats:
        mean, std = mean.detach(), std.detach()
        prev = self._state.get(layer)
        if prev is None or prev[0].shape != mean.shape or prev[0].device != mean.device:
            self._state[layer] = (mean, std)
            return mean, std
        p_mean, p_std = prev
        change = ((mean - p_mean).abs().sum() + (std - p_std).abs().sum()) / (
            p_mean.abs().sum() + p_std.abs().sum() + 1e-6
        )
        cut = change > self.cut_threshold
        m = self.momentum
        new_mean = torch.where(cut, mean, m * p_mean + (1 - m) * mean)
        new_std = torch.where(cut, std, m * p_std + (1 - m) * std)
        self._cuts = self._cuts + cut.long()
        self._state[layer] = (new_mean, new_std)
        return new_mean, new_std


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
