"""The style bank encodes each style once, caches it on disk, and reads every kind of image."""

import cv2
import numpy as np
import pytest
import torch

from engines.styles import StyleBank, mix
from engines.weights import load_model
from media import painting, write_image
from stream.images import read_image, read_image_bytes


@pytest.fixture(scope="module")
def model(tiny_weights):
    return load_model("microast", weights=tiny_weights)


@pytest.fixture(scope="module")
def style_files(tmp_path_factory):
    """Two style pictures on disk (the bank keys its cache on the file's bytes)."""
    folder = tmp_path_factory.mktemp("styles")
    return [write_image(folder / f"painting-{seed}.jpg", painting(160, 120, seed)) for seed in (0, 1)]


def test_second_use_of_a_style_hits_the_cache(model, style_files, tmp_path):
    path = style_files[0]
    bank = StyleBank(model, style_size=128, cache_dir=tmp_path)
    first = bank.add("painting", read_image(path), read_image_bytes(path))
    again = bank.add("painting", read_image(path), read_image_bytes(path))
    assert bank.encoder_calls == 1
    assert again.stats is first.stats

    # a second run (new bank, same disk cache) encodes nothing either
    next_run = StyleBank(model, style_size=128, cache_dir=tmp_path)
    restored = next_run.add("painting", read_image(path), read_image_bytes(path))
    assert next_run.encoder_calls == 0
    for k in model.stats_names:
        assert torch.equal(restored.stats[k], first.stats[k])


def test_cache_key_separates_image_model_and_size(model, style_files, tmp_path):
    a, b = style_files
    bank = StyleBank(model, style_size=128, cache_dir=tmp_path)
    bank.add("a", read_image(a), read_image_bytes(a))
    bank.add("b", read_image(b), read_image_bytes(b))
    StyleBank(model, style_size=96, cache_dir=tmp_path).add("a", read_image(a), read_image_bytes(a))
    assert bank.encoder_calls == 2
    assert len(list(tmp_path.glob("*.pt"))) == 3


def test_damaged_cache_entry_is_re_encoded(model, style_files, tmp_path):
    path = style_files[1]
    bank = StyleBank(model, style_size=64, cache_dir=tmp_path)
    bank.add("m", read_image(path), read_image_bytes(path))
    (entry,) = tmp_path.glob("*.pt")
    entry.write_bytes(entry.read_bytes()[:40])
    fresh = StyleBank(model, style_size=64, cache_dir=tmp_path)
    fresh.add("m", read_image(path), read_image_bytes(path))
    assert fresh.encoder_calls == 1


@pytest.mark.parametrize("kind", ["gray", "rgba", "16bit"])
def test_styles_from_grayscale_rgba_and_16_bit_files(model, tmp_path, kind):
    bgr = painting(96, 120, seed=2)
    image = {
        "gray": cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY),
        "rgba": np.dstack([bgr, np.full(bgr.shape[:2], 255, np.uint8)]),
        "16bit": bgr.astype(np.uint16) * 257,
    }[kind]
    path = tmp_path / f"style-{kind}.png"
    cv2.imwrite(str(path), image)
    bank = StyleBank(model, style_size=64, cache_dir=False)
    style = bank.add(kind, read_image(path), read_image_bytes(path))
    assert all(torch.isfinite(v).all() for v in style.stats.values())
    if kind != "gray":  # same pixels as the 8-bit colour image → same statistics
        ref = StyleBank(model, style_size=64, cache_dir=False).add("ref", bgr)
        for k in model.stats_names:
            torch.testing.assert_close(style.stats[k], ref.stats[k], rtol=1e-4, atol=1e-4)


def test_mixing_styles_uses_cached_statistics_only(model, style_files):
    bank = StyleBank(model, style_size=64, cache_dir=False)
    styles = [bank.add(p.stem, read_image(p)) for p in style_files]
    calls = bank.encoder_calls
    blended = mix(styles, [0.3, 0.7])
    assert bank.encoder_calls == calls
    torch.testing.assert_close(blended.stats["w1"], 0.3 * styles[0].stats["w1"] + 0.7 * styles[1].stats["w1"])
    assert mix(styles, [0, 1]).stats["mean1"].equal(styles[1].stats["mean1"])
