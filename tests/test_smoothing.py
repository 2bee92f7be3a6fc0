"""Flicker smoothing end to end: real models on a noisy still scene, and on a moving one.

How much the smoother helps is a property of the real weights (``../shared``); that it is wired in
(the engine hands it every AdaIN layer of every frame, and its output reaches the picture) holds
for any weights and is checked on random ones.
"""

import cv2
import numpy as np
import pytest

from engines.flicker import StatsSmoother, flicker, relative_flicker
from engines.runtimes import make_engine
from engines.styles import StyleBank
from engines.stylizer import Stylizer
from engines.weights import load_model
from media import painting
from media import photo as make_photo


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


class Spy:
    """Wraps a smoother and records which layer it was called for, with how many frames."""

    def __init__(self, smoother: StatsSmoother) -> None:
        self.smoother, self.calls = smoother, []

    def __call__(self, layer, mean, std):
        self.calls.append((layer, mean.shape[0]))
        return self.smoother(layer, mean, std)

    def features(self, layer, feat):
        return self.smoother.features(layer, feat)


@pytest.mark.parametrize("name, layers", [("microast", ["f2", "f1"]), ("adain-cd16x", ["relu4_1"])])
def test_the_engine_hands_the_smoother_every_adain_layer(tiny_weights, name, layers):
    model = load_model(name, weights=tiny_weights)
    style = StyleBank(model, style_size=64, cache_dir=False).add("painting", painting(64, 64))
    stylizer = Stylizer(make_engine("torch", model, device="cpu"), style.stats)
    frames = webcam_frames(make_photo(64, 48), 4)
    plain = run(stylizer, frames, None)
    spy = Spy(StatsSmoother())
    smoothed = run(stylizer, frames, spy)
    assert spy.calls == [(layer, 1) for _ in frames for layer in layers]
    assert np.array_equal(smoothed[0], plain[0])  # nothing to average with yet
    assert all(not np.array_equal(a, b) for a, b in zip(smoothed[1:], plain[1:], strict=True))
    assert stylizer.engine.content_hook is None  # run() took it out again
