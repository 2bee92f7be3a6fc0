"""The device-side optical flow (engines.flow.DenseInverseSearch): known motions found, whatever the
contrast, and nothing in it that a CUDA graph cannot capture. Tiny grey images; the flow's effect on
stylized video is in test_temporal."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from engines.flow import DenseInverseSearch, warp
from engines.temporal import DeviceFlowGuide
from host_traffic import HostTraffic


def smooth_noise(seed: int, shape=(200, 260), sigma: float = 2.0, contrast: float = 1.0) -> np.ndarray:
    t = cv2.GaussianBlur(np.random.default_rng(seed).uniform(0, 255, shape).astype(np.float32), (0, 0), sigma)
    return (t - t.mean()) * contrast + 128


def grey(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[None, None]


@pytest.mark.parametrize(
    "sigma, contrast",
    [(2.0, 1.0), (1.0, 1.0), (4.0, 3.0), (2.0, 0.3)],
    ids=["texture", "fine texture", "coarse texture", "low contrast (std 3 grey levels)"],
)
def test_a_translation_is_found_to_a_fraction_of_a_pixel(sigma, contrast):
    """The whole picture moved by (5.5, −2.25) px. A flow whose data term is weighted by the squared
    gradient found the low-contrast texture to move 0.3 px; without blur before each halving of the
    pyramid, the fine texture was 5 px off in places (aliasing)."""
    big = grey(smooth_noise(7, sigma=sigma, contrast=contrast))
    shift = torch.tensor([5.5, -2.25]).view(1, 2, 1, 1)
    current = big[..., 40:160, 40:200]
    # previous(x + shift) = current(x)
    previous = warp(big, -shift.expand(1, 2, 200, 260))[..., 40:160, 40:200]
    flow = DenseInverseSearch()(current, previous)
    inside = flow[..., 16:-16, 16:-16]
    assert float((inside - shift).abs().max()) < 0.35, inside.mean(dim=(2, 3))


def test_a_moving_object_on_a_still_background():
    """A square moves by (4, 2) px on a still background: found on the square, not spread around it (a
    smoothness-driven flow found 2.8 px: the background's stillness leaked in; OpenCV's DIS 3.8 px)."""
    background, square = smooth_noise(1, (120, 160)), smooth_noise(2, (120, 160)) + 40

    def frame(dx: int, dy: int) -> torch.Tensor:
        f = background.copy()
        f[30 + dy : 90 + dy, 40 + dx : 100 + dx] = square[30:90, 40:100]
        return grey(f)

    flow = DenseInverseSearch()(
        frame(4, 2), frame(0, 0)
    )  # the square moved by (4, 2): backward flow (−4, −2)
    on_square = flow[..., 44:80, 56:92].mean(dim=(2, 3))[0]
    assert torch.allclose(on_square, torch.tensor([-4.0, -2.0]), atol=0.25), on_square
    assert float(flow[..., 4:24, 4:156].abs().mean()) < 0.5  # the background far from it stays still


def test_no_motion_and_bad_input():
    current = grey(smooth_noise(5, (64, 80)))
    assert float(DenseInverseSearch()(current, current).abs().max()) < 1e-3
    with pytest.raises(ValueError, match="grey images"):
        DenseInverseSearch()(current, current[..., :-1, :])
    with pytest.raises(ValueError, match="at least 1"):
        DenseInverseSearch(iterations=0)


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_the_estimate_is_capturable_in_a_cuda_graph(device):
    """No GPU here: the estimate runs after a warm-up call, as the CUDA graph's capture does, on the meta
    device (shapes only: a copy from the CPU shows) and on the CPU (a tensor made from Python data shows),
    and nothing in it may copy from the host or read a value back: a capture would fail, and in eager
    mode it would make the host wait for the GPU every frame."""
    guide = DeviceFlowGuide()
    current = torch.empty(1, 1, 68, 120, device=device)
    guide.estimate(current, current)  # the warm-up: constants (blur kernels) made on the device once
    with HostTraffic() as traffic:
        flow, confidence, cut = guide.estimate(current, current)
    assert traffic.found == []
    assert flow.shape == (1, 2, 68, 120) and confidence.shape == (1, 1, 68, 120) and cut.shape == ()
    with HostTraffic() as traffic:  # the recorder itself works: each kind of host traffic is seen
        torch.tensor([1.0]).to("meta")
        torch.rand(4)[:, None][(0, 1),]
        torch.rand(1).item()
        x = torch.rand(4)
        x[x > 0.5]
        x.nonzero()
    assert len(traffic.found) >= 5, traffic.found
    assert any("index.Tensor" in f for f in traffic.found) and any("nonzero" in f for f in traffic.found)
