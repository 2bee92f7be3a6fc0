"""StatsSmoother on real content statistics (and its reset on made-up ones), and the flicker measures.

The scene is a real photo with what a webcam adds to a still scene: per-pixel sensor noise and a
small frame-to-frame exposure jitter. The statistics come from the real (pruned) AdaIN encoder,
through ``engines.adain.adain``'s ``content_hook``, the call the models make at every AdaIN layer
(one encoder pass over a batch of frames keeps this fast on a loaded CPU).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from engines.adain import adain
from engines.flicker import StatsSmoother, flicker, relative_flicker
from engines.models.adain_vgg import AdaINNet

SIZE = (256, 192)  # W×H: small enough for the CPU, large enough for stable statistics


@pytest.fixture(scope="module")
def net(shared_weights: Path) -> AdaINNet:
    folder = shared_weights / "adain-cd16x"
    enc = torch.load(folder / "4SE.pth", map_location="cpu", weights_only=True)["model"]
    dec = torch.load(folder / "4SD.pth", map_location="cpu", weights_only=True)["model"]
    return AdaINNet.from_cd_state_dicts(enc, dec)


def _photo(shared_media: Path, name: str) -> np.ndarray:
    return cv2.resize(cv2.imread(str(shared_media / "content" / name)), SIZE, interpolation=cv2.INTER_AREA)


def _webcam_frames(photo: np.ndarray, n: int, seed: int = 0) -> list[np.ndarray]:
    """A still scene as a camera sees it: Gaussian sensor noise (σ=6) and ±3 % exposure jitter."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        gain = 1 + rng.normal(0, 0.03)
        noisy = photo.astype(np.float32) * gain + rng.normal(0, 6, photo.shape)
        out.append(np.clip(noisy, 0, 255).astype(np.uint8))
    return out


def _tensor(bgr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(bgr[:, :, ::-1])).permute(2, 0, 1)[None].float() / 255


class Recorder:
    """Wraps a hook and keeps, per frame, the statistics that went in and those that came out."""

    def __init__(self, smoother: StatsSmoother) -> None:
        self.smoother = smoother
        self.raw: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.smoothed: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __call__(self, layer: str, mean: torch.Tensor, std: torch.Tensor):
        out = self.smoother(layer, mean, std)
        self.raw += [(mean[i : i + 1].clone(), std[i : i + 1]) for i in range(len(mean))]
        self.smoothed += [(out[0][i : i + 1], out[1][i : i + 1]) for i in range(len(mean))]
        return out


def _run(net: AdaINNet, frames: list[np.ndarray], hook: Recorder, style: dict) -> None:
    """The content side of one AdaIN stylization of ``frames`` (a batch, taken in order)."""
    with torch.no_grad():
        features = net.encode(torch.cat([_tensor(image) for image in frames]))
        adain(features, style["mean"], style["std"], hook, layer="relu4_1")


def _variance(stats: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Total per-channel variance of μ and σ across frames."""
    means = torch.cat([m.flatten()[None] for m, _ in stats])
    stds = torch.cat([s.flatten()[None] for _, s in stats])
    return float(means.var(dim=0).sum() + stds.var(dim=0).sum())


@pytest.fixture(scope="module")
def style(net: AdaINNet, shared_media: Path) -> dict:
    image = cv2.resize(cv2.imread(str(shared_media / "style" / "starry_night.jpg")), SIZE)
    with torch.no_grad():
        return net.style_stats(_tensor(image))


def test_smoothing_reduces_stat_variance_on_a_noisy_still_scene(
    net: AdaINNet, style: dict, shared_media: Path
) -> None:
    hook = Recorder(StatsSmoother(momentum=0.9))
    _run(net, _webcam_frames(_photo(shared_media, "chicago.jpg"), 40), hook, style)

    warm = 10  # the average needs a few frames to settle
    raw, smoothed = _variance(hook.raw[warm:]), _variance(hook.smoothed[warm:])
    assert raw > 0
    assert smoothed < 0.3 * raw  # an EMA with momentum 0.9 passes ~5 % of white noise's variance
    assert hook.smoother.cuts == 0  # noise and exposure jitter are not scene cuts


def _assert_one_cut_at(hook: Recorder, cut: int) -> None:
    """One cut, at frame ``cut``: that frame passes through unblended, and smoothing resumes from it,
    not from the old scene."""
    assert hook.smoother.cuts == 1
    assert torch.equal(hook.smoothed[cut][0], hook.raw[cut][0])
    assert torch.equal(hook.smoothed[cut][1], hook.raw[cut][1])
    assert not torch.equal(hook.smoothed[cut + 1][0], hook.raw[cut + 1][0])
    new_scene, old_scene = hook.raw[cut][0], hook.smoothed[cut - 1][0]
    assert (hook.smoothed[cut + 1][0] - new_scene).abs().sum() < (old_scene - new_scene).abs().sum()


def test_a_scene_cut_resets_the_average(net: AdaINNet, style: dict, shared_media: Path) -> None:
    hook = Recorder(StatsSmoother(momentum=0.9))
    _run(net, _webcam_frames(_photo(shared_media, "chicago.jpg"), 15), hook, style)
    _run(net, _webcam_frames(_photo(shared_media, "golden_gate.jpg"), 3, seed=1), hook, style)

    _assert_one_cut_at(hook, 15)


def test_a_jump_of_made_up_statistics_is_a_cut_that_resets_the_average() -> None:
    """The reset itself, on statistics made here: ±1 % jitter is averaged, a 40 % jump is a cut.

    (Whether real scenes and real camera noise fall on the right sides of the threshold is the test
    above, on the real encoder.)
    """
    gen = torch.Generator().manual_seed(0)
    scene = 1 + torch.rand(1, 16, 1, 1, generator=gen), 0.5 + torch.rand(1, 16, 1, 1, generator=gen)

    def frame(level: float) -> tuple[torch.Tensor, torch.Tensor]:
        return tuple(level * s * (1 + 0.01 * torch.randn(s.shape, generator=gen)) for s in scene)

    hook = Recorder(StatsSmoother(momentum=0.9))
    for level in [1.0] * 15 + [1.4] * 3:
        hook("relu4_1", *frame(level))

    _assert_one_cut_at(hook, 15)
    assert not torch.equal(hook.smoothed[14][0], hook.raw[14][0])  # before the cut: averaged


def test_reset_forgets_the_history() -> None:
    smoother = StatsSmoother(momentum=0.5)
    one, two = torch.ones(1, 4, 1, 1), torch.full((1, 4, 1, 1), 1.05)
    smoother("f1", one, one)
    assert torch.allclose(smoother("f1", two, two)[0], torch.full((1, 4, 1, 1), 1.025))
    smoother.reset()
    assert torch.equal(smoother("f1", two, two)[0], two)


def test_layers_are_smoothed_independently_and_a_batch_is_taken_in_order() -> None:
    gen = torch.Generator().manual_seed(0)
    means = 1 + 0.02 * torch.randn(6, 8, 1, 1, generator=gen)
    stds = 2 + 0.02 * torch.randn(6, 8, 1, 1, generator=gen)

    one_by_one = StatsSmoother()
    expected = [one_by_one("f2", means[i : i + 1], stds[i : i + 1]) for i in range(6)]
    one_by_one("f1", 10 * means[:1], stds[:1])  # another layer, another scale: no cut, no mixing

    batched = StatsSmoother()
    got_mean, got_std = batched("f2", means, stds)
    assert torch.allclose(got_mean, torch.cat([m for m, _ in expected]))
    assert torch.allclose(got_std, torch.cat([s for _, s in expected]))
    assert one_by_one.cuts == 0


def test_flicker_measures() -> None:
    a = np.zeros((4, 4, 3), np.uint8)
    b = np.full((4, 4, 3), 10, np.uint8)
    assert flicker([a, a, a]) == 0
    assert flicker([a, b, a]) == pytest.approx(10)  # uint8 differences do not wrap around
    assert relative_flicker([a, b // 2, a], [a, b, a]) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        flicker([a])
    with pytest.raises(ValueError, match="identical"):
        relative_flicker([a, b], [a, a])
