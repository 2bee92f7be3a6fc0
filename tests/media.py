"""Test media made at test time: still pictures, "paintings" and short clips with or without sound.

Plain functions, deterministic for a given seed, small enough to make in milliseconds. Tests import
them as ``from media import make_clip, photo, painting, write_image``; tests/conftest.py builds the
session's common files from them. Real photos and films (``../shared``) are only for tests that judge
what the real weights do with them.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

#: The session's common clip (tests/conftest.py ``clip``): 16:9 like a camera, 3 s, with sound.
CLIP_SIZE, CLIP_FPS, CLIP_FRAMES = (192, 108), 24, 72


def photo(width: int, height: int, seed: int = 0) -> np.ndarray:
    """An H×W×3 uint8 BGR "photo": a smooth colour gradient, filled shapes with sharp edges, fine grain.

    Edges, flat areas and texture all occur, and no channel is saturated, so stylization, colour
    preservation and video encoding have real work to do.
    """
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    u, v = x / max(width - 1, 1), y / max(height - 1, 1)
    low, high = rng.uniform(30, 110, 3), rng.uniform(140, 225, 3)
    ramps = (u, v, (u + v) / 2)
    image = np.stack([low[c] + (high[c] - low[c]) * ramps[(c + seed) % 3] for c in range(3)], axis=-1)
    scale = min(width, height)
    for _ in range(6):
        colour = tuple(float(c) for c in rng.uniform(20, 235, 3))
        cx, cy = int(rng.uniform(0, width)), int(rng.uniform(0, height))
        if rng.random() < 0.5:
            radius = int(rng.uniform(0.08, 0.25) * scale) + 1
            cv2.circle(image, (cx, cy), radius, colour, -1, cv2.LINE_AA)
        else:
            w, h = (int(rng.uniform(0.1, 0.4) * d) + 1 for d in (width, height))
            cv2.rectangle(image, (cx - w // 2, cy - h // 2), (cx + w // 2, cy + h // 2), colour, -1)
    grain = cv2.GaussianBlur(rng.normal(0, 10, (height, width, 3)).astype(np.float32), (0, 0), 1.0)
    return np.clip(image + grain, 0, 255).astype(np.uint8)


def painting(width: int, height: int, seed: int = 0) -> np.ndarray:
    """An H×W×3 uint8 BGR "painting" to take a style from: bold brush strokes of a few colours.

    Different seeds give different palettes and stroke directions, hence different style statistics.
    """
    rng = np.random.default_rng(1000 + seed)
    palette = rng.uniform(0, 255, (5, 3))
    image = np.empty((height, width, 3), np.float32)
    image[:] = palette[0]
    angle = rng.uniform(0, np.pi)
    scale = min(width, height)
    for _ in range(40 + width * height // 400):
        colour = tuple(float(c) for c in palette[rng.integers(1, len(palette))])
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        a = angle + rng.normal(0, 0.3)
        length = rng.uniform(0.1, 0.35) * scale
        dx, dy = np.cos(a) * length / 2, np.sin(a) * length / 2
        thickness = max(1, int(rng.uniform(0.01, 0.05) * scale))
        cv2.line(image, (int(cx - dx), int(cy - dy)), (int(cx + dx), int(cy + dy)), colour, thickness)
    return np.clip(image + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8)


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """Write with cv2 (format from the suffix); returns the path."""
    path = Path(path)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"cv2 could not write {path}")
    return path


def clip_frame(index: int, width: int, height: int, seed: int = 0, background: np.ndarray | None = None):
    """Frame ``index`` of :func:`make_clip`'s picture: a photo panning sideways, a disc crossing it."""
    if background is None:
        background = photo(width + 64, height, seed)
    pan = index % 64 if (index // 64) % 2 == 0 else 63 - index % 64  # 1 px/frame, back and forth
    image = np.ascontiguousarray(background[:, pan : pan + width])
    r = max(2, min(width, height) // 6)
    x = r + (5 * index) % max(1, width - 2 * r)
    y = height // 2 + int((height // 2 - r) * np.sin(index / 5))
    cv2.circle(image, (x, y), r, (40, 200, 240), -1, cv2.LINE_AA)
    return image


def make_clip(
    path: str | Path,
    frames: int = 24,
    size: tuple[int, int] = (96, 64),
    fps: int = 24,
    audio: str | None = "aac",
    seed: int = 0,
    codec: str = "libx264",
    faststart: bool = False,
) -> Path:
    """Write an MP4 (or whatever the suffix says) of ``frames`` moving frames of ``size`` = (W, H).

    ``audio`` is an audio encoder name (``"aac"``: stereo 48 kHz, a tone per channel, as long as the
    video) or None for a silent file. Video and audio packets are interleaved in time order, as a
    camera or ffmpeg writes them. ``faststart`` moves the MP4 index to the front (default: at the
    end, so a file cut short has lost it). Returns the path.
    """
    path = Path(path)
    width, height = size
    background = photo(width + 64, height, seed)
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as out:
        video = out.add_stream(codec, rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"preset": "veryfast"} if codec == "libx264" else {}
        sound = None
        if audio:
            sound = out.add_stream(audio, rate=48000, layout="stereo")
            samples_per_frame = sound.codec_context.frame_size or 1024
        total_samples = round(frames * 48000 / fps)
        written = 0  # audio samples so far
        for i in range(frames):
            while sound is not None and written < min(total_samples, (i + 1) * 48000 / fps):
                n = min(samples_per_frame, total_samples - written)
                t = (written + np.arange(n)) / 48000
                tone = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)]) * 0.3
                frame = av.AudioFrame.from_ndarray(tone.astype(np.float32), format="fltp", layout="stereo")
                frame.sample_rate, frame.pts, frame.time_base = 48000, written, Fraction(1, 48000)
                out.mux(sound.encode(frame))
                written += n
            frame = av.VideoFrame.from_ndarray(clip_frame(i, width, height, background=background), "bgr24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if sound is not None:
            out.mux(sound.encode(None))
    return path
