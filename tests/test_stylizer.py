"""uint8 BGR frames of any size through the Stylizer and the torch engine."""

import cv2
import numpy as np
import pytest
import torch

from engines.runtimes import make_engine
from engines.styles import StyleBank
from engines.stylizer import Stylizer, bgr_u8_to_rgb, pad_to_multiple, preserve_color, rgb_to_bgr_u8
from engines.weights import load_model
from media import painting
from media import photo as make_photo


@pytest.fixture(scope="module")
def stylizer(tiny_weights):
    model = load_model("adain-cd16x", weights=tiny_weights)
    style = StyleBank(model, style_size=96, cache_dir=False).add("painting", painting(120, 150))
    return Stylizer(make_engine("torch", model, device="cpu"), style.stats)


@pytest.fixture(scope="module")
def photo():
    return make_photo(101, 67)


def test_uint8_round_trip_is_exact():
    frames = torch.randint(0, 256, (2, 5, 7, 3), dtype=torch.uint8)
    assert torch.equal(rgb_to_bgr_u8(bgr_u8_to_rgb(frames)), frames)
    assert bgr_u8_to_rgb(frames)[0, 0, 0, 0] == frames[0, 0, 0, 2] / 255  # B,G,R → R first


@pytest.mark.parametrize("size", [(67, 101), (64, 64), (5, 3), (1, 1)])
def test_any_frame_size_is_padded_and_cropped_back(stylizer, photo, size):
    frame = np.ascontiguousarray(cv2.resize(photo, size[::-1]))
    (out,) = stylizer([frame])
    assert out.shape == frame.shape and out.dtype == np.uint8


def test_reflection_padding_mirrors_the_border():
    x = torch.arange(42.0).view(1, 1, 6, 7)
    padded = pad_to_multiple(x, 4)
    assert padded.shape == (1, 1, 8, 8)
    assert padded[0, 0, 0, 7] == x[0, 0, 0, 5]  # reflected, not repeated
    assert padded[0, 0, 7, 0] == x[0, 0, 3, 0]
    assert pad_to_multiple(torch.zeros(1, 1, 1, 1), 8).shape == (1, 1, 16, 16)  # replicated floor


def test_batch_equals_frame_by_frame(stylizer, photo):
    frames = [photo, np.ascontiguousarray(photo[::-1]), photo]
    batched = stylizer(frames)
    single = [stylizer([f])[0] for f in frames]
    for a, b in zip(batched, single, strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_alpha_zero_differs_from_full_style(stylizer, photo):
    full = stylizer([photo])[0]
    stylizer.alpha = 0.0
    try:
        none = stylizer([photo])[0]
    finally:
        stylizer.alpha = 1.0
    assert np.abs(full.astype(int) - none.astype(int)).mean() > 5


def test_preserve_color_keeps_the_content_chroma(stylizer, photo):
    stylizer.preserve_color = True
    try:
        (kept,) = stylizer([photo])
    finally:
        stylizer.preserve_color = False
    (styled,) = stylizer([photo])
    chroma = lambda im: cv2.cvtColor(im, cv2.COLOR_BGR2YCrCb)[..., 1:].astype(int)  # noqa: E731
    luma = lambda im: cv2.cvtColor(im, cv2.COLOR_BGR2YCrCb)[..., 0].astype(int)  # noqa: E731
    # chroma follows the content (up to rounding and clipping), luminance follows the stylization
    assert np.median(np.abs(chroma(kept) - chroma(photo))) <= 1
    assert np.abs(chroma(styled) - chroma(photo)).mean() > 2 * np.abs(chroma(kept) - chroma(photo)).mean()
    assert np.median(np.abs(luma(kept) - luma(styled))) <= 2


def test_preserve_color_formula_is_exact_on_floats():
    # values in [0.4, 0.6]: content + ΔY stays inside [0, 1], so the final clamp never acts
    g = torch.Generator().manual_seed(0)
    content, stylized = (torch.rand(2, 1, 3, 4, 4, generator=g) * 0.2 + 0.4).unbind(0)
    out = preserve_color(stylized, content)
    ycbcr = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
    to_ycc = lambda t: torch.einsum("ij,njhw->nihw", ycbcr, t)  # noqa: E731
    torch.testing.assert_close(to_ycc(out)[:, 1:], to_ycc(content)[:, 1:], atol=1e-5, rtol=0)
    torch.testing.assert_close(to_ycc(out)[:, :1], to_ycc(stylized)[:, :1], atol=1e-5, rtol=0)


def test_non_uint8_frame_is_rejected(stylizer):
    with pytest.raises(ValueError, match="uint8"):
        stylizer([np.zeros((8, 8, 3), np.float32)])
