"""Shared fixtures: made-here weights and media, the one door to ../shared, and a device list.

Plumbing tests use ``tiny_weights`` (random models in the published files' formats) and media made
at test time (``clip`` here; pictures from the ``media`` helpers, imported as ``from media import
...``). Only tests that judge the real weights or real media reach ``../shared``, through ``shared``.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2  # noqa: F401  before any test module imports av (see stream/__init__.py)
import pytest
import torch

import media
from media import CLIP_FPS, CLIP_FRAMES, CLIP_SIZE
from random_weights import write_random_weights

# fp32 as the CPU's "auto" precision for the whole suite (and its subprocesses), so results compare
# exactly across machines; bf16 has tests of its own that ask for it explicitly.
os.environ.setdefault("STYLIZE_CPU_BF16", "0")

#: ``../shared`` next to the repository; STYLIZE_SHARED points elsewhere (the GPU machine's copy).
SHARED = Path(os.environ.get("STYLIZE_SHARED") or Path(__file__).resolve().parents[1].parent / "shared")


@pytest.fixture(scope="session")
def shared() -> Path:
    """``../shared`` (weights and media that cannot be downloaded here); skips when absent."""
    if not (SHARED / "weights").is_dir() or not (SHARED / "media").is_dir():
        pytest.skip(f"{SHARED} (weights and media) is not present")
    return SHARED


@pytest.fixture(scope="session")
def shared_weights(shared: Path) -> Path:
    return shared / "weights"


@pytest.fixture(scope="session")
def shared_media(shared: Path) -> Path:
    return shared / "media"


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """A ``--weights`` root with random ``adain-cd16x`` and ``microast`` files (tests/random_weights.py)."""
    return write_random_weights(tmp_path_factory.mktemp("tiny-weights"))


@pytest.fixture(scope="session")
def style_image(tmp_path_factory) -> Path:
    """A generated painting as a JPEG file: a style for plumbing tests."""
    return media.write_image(tmp_path_factory.mktemp("style") / "painting.jpg", media.painting(160, 120))


@pytest.fixture(scope="session")
def photo_image(tmp_path_factory) -> Path:
    """A generated photo as a JPEG file: content for plumbing tests."""
    return media.write_image(tmp_path_factory.mktemp("photo") / "photo.jpg", media.photo(160, 120))


@pytest.fixture(scope="session")
def clip(tmp_path_factory) -> Path:
    """``media.CLIP_*``: 3 s, 24 fps, 192×108 H.264 MP4 with stereo 48 kHz AAC; copy before changing it."""
    folder = tmp_path_factory.mktemp("media")
    return media.make_clip(folder / "clip.mp4", frames=CLIP_FRAMES, size=CLIP_SIZE, fps=CLIP_FPS, audio="aac")


def pytest_collection_modifyitems(items) -> None:
    """A test that asks for ../shared carries the ``shared`` mark (``-m "not shared"`` leaves it out)."""
    for item in items:
        if "shared" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.shared)


def _devices() -> list:
    params = [pytest.param("cpu", id="cpu")]
    params.append(
        pytest.param(
            "cuda",
            id="cuda",
            marks=[
                pytest.mark.cuda,
                pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here"),
            ],
        )
    )
    return params


@pytest.fixture(params=_devices())
def device(request) -> torch.device:
    """Runs a test on the CPU, and on CUDA too where a GPU exists."""
    return torch.device(request.param)


@pytest.fixture(scope="session")
def short_clip(tmp_path_factory) -> Path:
    """A 1 s video made here (20 frames at 20 fps, 64×48): a camera stand-in that ends quickly."""
    import av
    import numpy as np

    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=20)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(20):
            image = np.full((48, 64, 3), 10 * i, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def _make_clip(
    path: Path, frames: int = 20, fps: int = 20, gop: int = 5, audio: bool = True, size=(64, 48)
) -> Path:
    """A small H.264 MP4 made here: moving noisy pictures, a keyframe every ``gop`` frames, AAC audio.

    Noise and motion make every stylized frame differ, so a frame lost, doubled or misplaced shows.
    """
    import av
    import numpy as np

    w, h = size
    rng = np.random.default_rng(frames * 1000 + gop)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = w, h, "yuv420p"
        video.codec_context.gop_size = gop
        video.codec_context.options = {"keyint_min": str(gop), "sc_threshold": "0"}
        sound = out.add_stream("aac", rate=44100, layout="mono") if audio else None
        samples = 0
        for i in range(frames):
            image = rng.integers(0, 40, (h, w, 3), dtype=np.uint8)
            image[..., 1] += np.uint8(8 * i % 200)
            image[:, (3 * i) % w] = 255
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts = i
            out.mux(video.encode(frame))
            if sound is not None:
                n = 44100 // fps
                wave = (0.3 * np.sin(2 * np.pi * 440 * (samples + np.arange(n)) / 44100)).astype(np.float32)
                chunk = av.AudioFrame.from_ndarray(wave[None], format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts = 44100, samples
                samples += n
                out.mux(sound.encode(chunk))
        out.mux(video.encode(None))
        if sound is not None:
            out.mux(sound.encode(None))
    return path


@pytest.fixture(scope="session")
def make_clip():
    """``make_clip(path, frames=20, fps=20, gop=5, audio=True, size=(64, 48))``: see :func:`_make_clip`."""
    return _make_clip


def _assert_same_video(a: Path, b: Path) -> None:
    """The same decoded frames (pixels and timestamps) and the same audio packets, audio not empty."""
    import av
    import numpy as np

    def content(path: Path) -> tuple[list, list[bytes]]:
        with av.open(str(path)) as c:
            frames = [(f.pts, f.to_ndarray(format="bgr24")) for f in c.decode(video=0)]
        with av.open(str(path)) as c:
            return frames, [bytes(p) for p in c.demux(audio=0) if p.size]

    (fa, aa), (fb, ab) = content(a), content(b)
    assert [pts for pts, _ in fa] == [pts for pts, _ in fb]
    assert all(np.array_equal(x, y) for (_, x), (_, y) in zip(fa, fb, strict=True))
    assert aa == ab and aa


@pytest.fixture(scope="session")
def same_video():
    """``same_video(a, b)`` asserts two video files hold the same frames, timestamps and audio bytes."""
    return _assert_same_video
