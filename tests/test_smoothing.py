"""Flicker smoothing end to end: real models on a noisy still scene, and on a moving one."""

import cv2
import numpy as np
import pytest

from engines.flicker import StatsSmoother, flicker, relative_flicker
from engines.runtimes import make_engine
from engines.styles import StyleBank
from engines.stylizer import Stylizer
from engines.weights import load_model


def webcam_frames(photo: np.ndarray, n: int, seed: int = 1) -> list[np.ndarray]:
    """A still scene as a cheap camera delivers it: sensor noise (σ = 6) and ±3 % exposure jitter."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        noisy = photo.astype(np.float32) * (1 + rng.normal(0, 0.03)) + rng.normal(0, 6, photo.shape)
        frames.append(np.clip(noisy, 0, 255).astype(np.uint8))
    return frames


@pytest.fixture(scope="module", params=["microast", "adain-cd16x"])
def stylizer(request, shared_weights, shared_media):
    model = load_model(request.param, weights=shared_weights)
    style = StyleBank(model, style_size=128, cache_dir=False).add(
        "starry", cv2.imread(str(shared_media / "style" / "starry_night.jpg"))
    )
    return Stylizer(make_engine("torch", model, device="cpu"), style.stats)


@pytest.fixture(scope="module")
def photo(shared_media):
    return cv2.resize(cv2.imread(str(shared_media / "content" / "cornell.jpg")), (320, 240))


def run(stylizer: Stylizer, frames: list[np.ndarray], smoother: StatsSmoother | None) -> list[np.ndarray]:
    stylizer.engine.content_hook = smoother
    try:
        return [stylizer([f])[0] for f in frames]
    finally:
        stylizer.engine.content_hook = None


def test_smoothing_lowers_flicker_on_a_noisy_still_scene(stylizer, photo):
    frames = webcam_frames(cv2.resize(photo, (160, 120)), 8)
    smoother = StatsSmoother()
    before = relative_flicker(run(stylizer, frames, None), frames)
    after = relative_flicker(run(stylizer, frames, smoother), frames)
    assert after < 0.6 * before, (before, after)
    assert smoother.cuts == 0  # noise is not a scene cut


def test_smoothing_leaves_no_trails_behind_motion(stylizer, photo):
    """A 10 px/frame pan: the smoothed output stays close to the unsmoothed one."""
    frames = [np.ascontiguousarray(photo[40:160, 10 * i : 10 * i + 160]) for i in range(8)]
    plain = run(stylizer, frames, None)
    smoothed = run(stylizer, frames, StatsSmoother())
    lag = np.mean(
        [
            np.abs(a.astype(float) - b.astype(float)).mean()
            for a, b in zip(plain[1:], smoothed[1:], strict=True)
        ]
    )
    assert lag < 0.4 * flicker(plain), (lag, flicker(plain))


def test_a_scene_cut_is_not_smoothed(stylizer, photo, shared_media):
    other = cv2.resize(cv2.imread(str(shared_media / "content" / "sailboat.jpg")), (160, 120))
    frames = webcam_frames(cv2.resize(photo, (160, 120)), 4) + webcam_frames(other, 2)
    smoother = StatsSmoother()
    smoothed = run(stylizer, frames, smoother)
    plain = run(stylizer, frames, None)
    assert smoother.cuts >= 1
    # the first frame after the cut shows the new scene, not a blend with the old one
    assert np.abs(smoothed[4].astype(float) - plain[4].astype(float)).mean() < 3
