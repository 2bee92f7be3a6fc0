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

from media import CLIP_FPS, CLIP_FRAMES, CLIP_SIZE, make_clip
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
def clip(tmp_path_factory) -> Path:
    """``media.CLIP_*``: 3 s, 24 fps, 192×108 H.264 MP4 with stereo 48 kHz AAC; copy before changing it."""
    folder = tmp_path_factory.mktemp("media")
    return make_clip(folder / "clip.mp4", frames=CLIP_FRAMES, size=CLIP_SIZE, fps=CLIP_FPS, audio="aac")


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
