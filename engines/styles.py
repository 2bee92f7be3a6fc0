"""The style bank: each style image is encoded once, and its statistics are reused for every frame.

Statistics are cached in memory and on disk, keyed by (sha256 of the image file's bytes, model name
and weights fingerprint, style size), so a second run encodes no style it has already seen.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from engines.adain import mix_stats
from engines.atomic import write_atomic
from engines.models.base import StyleModel, StyleStats
from engines.userdirs import cache_dir


def default_cache_dir() -> Path:
    return cache_dir("styles")


@dataclass(frozen=True)
class Style:
    """A named style as the per-frame path needs it (float32 CPU tensors)."""

    name: str
    stats: StyleStats


def bgr_to_tensor(image: np.ndarray) -> torch.Tensor:
    """H×W×3 uint8 BGR → 1×3×H×W float32 RGB in [0, 1]."""
    rgb = np.ascontiguousarray(image[..., ::-1])
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].float().div_(255)


def resize_short_side(image: np.ndarray, size: int | None) -> np.ndarray:
    """Scale so the shorter side is ``size`` (the paper's style_size); None keeps the original."""
    if not size:
        return image
    h, w = image.shape[:2]
    scale = size / min(h, w)
    if scale == 1:
        return image
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=interp)


class StyleBank:
    """Encodes styles with ``model``'s style path, at most once per (image, model, size).

    ``cache_dir=None`` uses the user cache directory; ``cache_dir=False`` keeps the cache in memory.
    ``encoder_calls`` counts real encoder passes (tests and logs use it to prove cache hits).
    """

    def __init__(
        self,
        model: StyleModel,
        style_size: int | None = 512,
        cache_dir: Path | str | None | bool = None,
        device: torch.device | str = "cpu",
    ):
        self.model = model
        self.style_size = style_size
        self.device = torch.device(device)
        if cache_dir is False:
            self.cache_dir = None
        else:
            self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.encoder_calls = 0
        self._memory: dict[str, StyleStats] = {}

    def key(self, source_bytes: bytes) -> str:
        digest = hashlib.sha256(source_bytes).hexdigest()[:32]
        fingerprint = getattr(self.model, "fingerprint", "unversioned")
        return f"{self.model.name}-{fingerprint}-{digest}-{self.style_size or 'orig'}"

    def add(self, name: str, image: np.ndarray, source_bytes: bytes | None = None) -> Style:
        """The style of a decoded H×W×3 uint8 BGR image.

        ``source_bytes`` (the file's bytes) is the cache identity; without it the pixels are.
        """
        key = self.key(source_bytes if source_bytes is not None else _array_identity(image))
        stats = self._memory.get(key) or self._load(key)
        if stats is None:
            stats = self._encode(image)
            self._save(key, stats)
        self._memory[key] = stats
        return Style(name, stats)

    @torch.inference_mode()
    def _encode(self, image: np.ndarray) -> StyleStats:
        self.encoder_calls += 1
        x = bgr_to_tensor(resize_short_side(image, self.style_size)).to(self.device)
        stats = self.model.style_stats(x)
        return {k: v.detach().float().cpu() for k, v in stats.items()}

    def _path(self, key: str) -> Path | None:
        return self.cache_dir / f"{key}.pt" if self.cache_dir else None

    def _load(self, key: str) -> StyleStats | None:
        path = self._path(key)
        if path is None or not path.is_file():
            return None
        try:
            stats = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:
            return None  # a damaged cache entry is re-encoded and overwritten
        if not isinstance(stats, dict) or set(stats) != set(self.model.stats_names):
            return None
        return stats

    def _save(self, key: str, stats: StyleStats) -> None:
        path = self._path(key)
        if path is None:
            return
        buffer = io.BytesIO()
        torch.save(stats, buffer)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, buffer.getvalue())
        except OSError:
            pass  # an unwritable cache only costs a re-encode next run


def mix(styles: Sequence[Style], weights: Sequence[float] | None = None) -> Style:
    """Interpolate styles on their cached statistics (equal weights by default)."""
    if len(styles) == 1 and weights is None:
        return styles[0]
    weights = weights if weights is not None else [1.0] * len(styles)
    name = " + ".join(f"{w:g}×{s.name}" for s, w in zip(styles, weights, strict=False))
    return Style(name, mix_stats([s.stats for s in styles], weights))


def _array_identity(image: np.ndarray) -> bytes:
    return f"{image.shape}{image.dtype}".encode() + np.ascontiguousarray(image).tobytes()
