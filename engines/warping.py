"""Temporal consistency as the field measures it: the warping error of Lai et al. ("Learning Blind Video
Temporal Consistency", ECCV 2018).

For each pair of consecutive frames: optical flow backward (current → previous) on the *input* frames,
the previous *output* warped to the current one along it, and the squared RGB distance (values in
[0, 1], summed over the three channels as Lai et al.'s evaluation code sums them) averaged over the
pixels that are not occluded; then the mean over pairs. Occlusions are found by the forward–backward
check of Sundaram et al. (ECCV 2010): |f_b(x) + f_f(x + f_b(x))|² > 0.01 (|f_b|² + |f_f|²) + 0.5,
plus pixels whose flow leaves the frame.

The flow is OpenCV DIS with its "medium" preset at full resolution (no learned weights), a different
estimator from the one :mod:`engines.temporal` blends with (DIS "fast" on frames of at most 480 px), so
a method is not judged by its own flow; ``flow="farneback"`` is a second, unrelated estimator for a
cross-check. Scoring the input video as its own output gives the floor (flow and interpolation errors
alone): 0.00033 on the first 60 frames of cutBunny, against 0.0058 for microast per frame.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

FLOWS = ("dis", "farneback")


def _grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


class _Flow:
    def __init__(self, method: str) -> None:
        if method not in FLOWS:
            raise ValueError(f"unknown flow {method!r}: choose one of {', '.join(FLOWS)}")
        self.method = method
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM) if method == "dis" else None

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Flow from grey ``a`` to grey ``b``: a(x) ≈ b(x + flow(x))."""
        if self._dis is not None:
            return self._dis.calc(a, b, None)
        return cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 5, 15, 3, 5, 1.2, 0)


@functools.cache
def pixel_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """x and y of every pixel, H×W float32 each; cached per size (read-only: never write into them)."""
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    gx.flags.writeable = gy.flags.writeable = False
    return gx, gy


def warp_image(image: np.ndarray, flow: np.ndarray, margin: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``image`` sampled at x + flow(x) (bilinear, edges replicated), and the mask of pixels whose source
    is inside: between the outer pixel centres, widened by ``margin`` pixels (the temporal method,
    :mod:`engines.temporal`, counts the outer pixels' whole area: 0.5)."""
    h, w = flow.shape[:2]
    gx, gy = pixel_grid(h, w)
    mx, my = gx + flow[..., 0], gy + flow[..., 1]
    lo = -margin
    inside = (mx >= lo) & (mx <= w - 1 - lo) & (my >= lo) & (my <= h - 1 - lo)
    return cv2.remap(image, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE), inside


def non_occluded(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Pixels of the current frame seen in the previous one (forward–backward consistent, inside)."""
    forward_at, inside = warp_image(forward, backward)
    mismatch = np.square(backward + forward_at).sum(-1)
    bound = 0.01 * (np.square(backward).sum(-1) + np.square(forward_at).sum(-1)) + 0.5
    return (mismatch <= bound) & inside


def pair_error(previous: np.ndarray, current: np.ndarray, backward: np.ndarray, mask: np.ndarray) -> float:
    """Warping error of one pair of output frames (uint8 BGR) given the inputs' flow and mask."""
    warped, _ = warp_image(previous.astype(np.float32) / 255, backward)
    diff = np.square(current.astype(np.float32) / 255 - warped).sum(-1)
    n = int(mask.sum())
    return float(diff[mask].sum() / n) if n else float(diff.mean())


@dataclass(frozen=True)
class WarpingResult:
    """Mean warping error of each output, the pairs it is over, and the share of pixels scored."""

    errors: tuple[float, ...]
    pairs: int
    coverage: float


class WarpingError:
    """Streams frames in: ``add(input, *outputs)`` per frame; :meth:`result` gives each output's error.

    Several outputs of one input (e.g. the input itself for the floor, per-frame and temporal results)
    share the flow, the costly part. Frames are H×W×3 uint8 BGR of one size.
    """

    def __init__(self, flow: str = "dis") -> None:
        self._flow = _Flow(flow)
        self._previous: tuple[np.ndarray, tuple[np.ndarray, ...]] | None = None
        self._sums: list[float] = []
        self._pairs = 0
        self._covered = 0.0

    def add(self, image: np.ndarray, *outputs: np.ndarray) -> None:
        g = _grey(image)
        if self._previous is not None:
            prev_g, prev_outs = self._previous
            if len(prev_outs) != len(outputs):
                raise ValueError("every frame needs the same number of outputs")
            backward = self._flow(g, prev_g)
            mask = non_occluded(backward, self._flow(prev_g, g))
            errors = [pair_error(p, c, backward, mask) for p, c in zip(prev_outs, outputs, strict=True)]
            self._sums = [a + b for a, b in zip(self._sums, errors, strict=True)] if self._sums else errors
            self._pairs += 1
            self._covered += float(mask.mean())
        self._previous = (g, outputs)

    def result(self) -> WarpingResult:
        if not self._pairs:
            raise ValueError("the warping error needs at least two frames")
        errors = tuple(s / self._pairs for s in self._sums)
        return WarpingResult(errors, self._pairs, self._covered / self._pairs)


def warping_error(inputs: Iterable[np.ndarray], outputs: Iterable[np.ndarray], flow: str = "dis") -> float:
    """Mean warping error of ``outputs`` (the stylized frames of ``inputs``), both uint8 BGR sequences."""
    meter = WarpingError(flow)
    for image, output in zip(inputs, outputs, strict=True):
        meter.add(image, output)
    return meter.result().errors[0]
