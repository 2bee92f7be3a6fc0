"""Image I/O: every kind of file comes back as H×W×3 uint8 BGR; writes are atomic and never clobber."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from engines.errors import StylizeError
from media import photo
from stream.images import list_images, read_image, read_image_bytes, write_image


def save(path: Path, image: np.ndarray) -> Path:
    ok, encoded = cv2.imencode(path.suffix, image)
    assert ok
    path.write_bytes(encoded.tobytes())
    return path


def test_color_png_round_trips_exactly(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    assert np.array_equal(read_image(save(tmp_path / "c.png", image)), image)


def test_grayscale_becomes_three_equal_channels(tmp_path):
    gray = np.arange(20, dtype=np.uint8).reshape(4, 5) * 10
    image = read_image(save(tmp_path / "g.png", gray))
    assert image.shape == (4, 5, 3) and image.dtype == np.uint8
    assert all(np.array_equal(image[:, :, c], gray) for c in range(3))


def test_rgba_is_composited_over_white(tmp_path):
    bgra = np.zeros((1, 3, 4), np.uint8)
    bgra[0, :, :3] = (255, 0, 0)  # blue
    bgra[0, :, 3] = (255, 0, 128)  # opaque, transparent, half
    image = read_image(save(tmp_path / "a.png", bgra))
    assert image.shape == (1, 3, 3)
    assert image[0, 0].tolist() == [255, 0, 0]
    assert image[0, 1].tolist() == [255, 255, 255]
    assert image[0, 2].tolist() == [255, 127, 127]


def test_16_bit_files_are_scaled_to_8_bit(tmp_path):
    levels = np.array([0, 257 * 100, 65535], np.uint16)
    color = np.stack([levels, levels[::-1], levels], axis=1)[None]  # 1×3×3
    image = read_image(save(tmp_path / "c16.png", color))
    assert image.dtype == np.uint8
    assert image[0].tolist() == [[0, 255, 0], [100, 100, 100], [255, 0, 255]]

    gray = read_image(save(tmp_path / "g16.png", levels[None]))
    assert gray.shape == (1, 3, 3) and gray[0, :, 0].tolist() == [0, 100, 255]


def test_jpeg_and_unicode_path(tmp_path):
    image = np.full((8, 8, 3), (40, 120, 200), np.uint8)
    path = save(tmp_path / "Straße_東京.jpg", image)
    back = read_image(path)
    assert back.shape == (8, 8, 3) and np.abs(back.astype(int) - image).max() <= 3
    assert read_image_bytes(path) == path.read_bytes()


def test_photo_sized_jpeg(tmp_path):
    original = photo(320, 240)
    path = tmp_path / "photo.jpg"
    assert cv2.imwrite(str(path), original, [cv2.IMWRITE_JPEG_QUALITY, 90, cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    image = read_image(path)
    assert image.shape == (240, 320, 3) and image.dtype == np.uint8
    assert np.abs(image.astype(int) - original).mean() < 3


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40])
def test_unreadable_files_are_clear_errors(tmp_path, content):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(StylizeError, match="cannot read image bad.png"):
        read_image(path)


def test_missing_file_and_folder_are_clear_errors(tmp_path):
    with pytest.raises(StylizeError, match="not found"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(StylizeError, match="folder"):
        read_image_bytes(tmp_path)


def test_write_image_is_atomic_and_refuses_to_overwrite(tmp_path):
    path = tmp_path / "out.png"
    first = np.full((4, 4, 3), 10, np.uint8)
    write_image(path, first)
    assert np.array_equal(read_image(path), first)
    with pytest.raises(StylizeError, match="already exists"):
        write_image(path, first + 1)
    assert np.array_equal(read_image(path), first)
    write_image(path, first + 1, overwrite=True)
    assert np.array_equal(read_image(path), first + 1)
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_write_image_rejects_unknown_format_and_missing_folder(tmp_path):
    with pytest.raises(StylizeError, match="cannot write images as '.xyz'"):
        write_image(tmp_path / "out.xyz", np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(StylizeError, match="folder does not exist"):
        write_image(tmp_path / "missing" / "out.png", np.zeros((2, 2, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_list_images_expands_folders_in_natural_order(tmp_path):
    for name in ["frame10.png", "frame2.PNG", "b.jpg", "notes.txt", ".hidden.png", "a.webp"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.png").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.webp", "b.jpg", "frame2.PNG", "frame10.png"]
    assert list_images(tmp_path / "b.jpg") == [tmp_path / "b.jpg"]


def test_list_images_errors(tmp_path):
    with pytest.raises(StylizeError, match="no images in folder"):
        list_images(tmp_path)
    with pytest.raises(StylizeError, match="not found"):
        list_images(tmp_path / "nope")
