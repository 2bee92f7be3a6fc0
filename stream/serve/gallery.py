"""The styles a server offers: those it started with plus uploads, each encoded once.

Every style goes through the server's :class:`engines.styles.StyleBank`, so it is encoded once and
its statistics are cached in memory and on disk as for every other command; an upload of a picture
already in the gallery (same bytes) returns the existing entry. The gallery is shared by all clients
(each picks its own style from it) and bounded, so uploads cannot grow the server's memory forever.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from dataclasses import dataclass

import cv2
import numpy as np

from engines.errors import StylizeError
from engines.models.base import StyleStats
from engines.styles import Style, StyleBank, resize_short_side

THUMBNAIL_SIDE = 96  # px, the shorter side of a gallery thumbnail
MAX_STYLES = 64


@dataclass(frozen=True)
class GalleryStyle:
    id: str
    name: str
    stats: StyleStats
    thumbnail: str  # a data: URL (JPEG), so the page needs no extra request per thumbnail
    uploaded: bool

    def describe(self) -> dict:
        return {"id": self.id, "name": self.name, "thumbnail": self.thumbnail, "uploaded": self.uploaded}


class GalleryFull(StylizeError):
    pass


class Gallery:
    """Thread-safe: uploads are encoded on worker threads while sessions read styles."""

    def __init__(self, bank: StyleBank, max_styles: int = MAX_STYLES) -> None:
        self.bank = bank
        self.max_styles = max_styles
        self._styles: dict[str, GalleryStyle] = {}
        self._lock = threading.Lock()  # guards the dict
        self._bank_lock = threading.Lock()  # one encoder at a time (the bank's memory cache, its counter)

    def add_style(self, style: Style, image: np.ndarray | None, key: bytes) -> GalleryStyle:
        """A style encoded elsewhere (the command line's, a mix); ``key`` identifies it."""
        entry = GalleryStyle(_style_id(key), style.name, style.stats, _thumbnail(image), uploaded=False)
        with self._lock:
            return self._styles.setdefault(entry.id, entry)

    def add_image(self, name: str, image: np.ndarray, data: bytes, uploaded: bool = True) -> GalleryStyle:
        """Encode (or find in the cache) the style of a decoded picture whose file bytes are ``data``.

        Encoding holds only the bank's lock, so readers of the gallery never wait for an encoder.
        """
        style_id = _style_id(data)
        with self._bank_lock:
            with self._lock:
                if style_id in self._styles:
                    return self._styles[style_id]
                self._check_room()
            style = self.bank.add(name, image, data)
            entry = GalleryStyle(style_id, name, style.stats, _thumbnail(image), uploaded)
            with self._lock:
                self._check_room()
                self._styles[style_id] = entry
            return entry

    def _check_room(self) -> None:
        if len(self._styles) >= self.max_styles:
            raise GalleryFull(
                f"the gallery is full ({self.max_styles} styles); restart the server to clear it"
            )

    def get(self, style_id: str) -> GalleryStyle | None:
        with self._lock:
            return self._styles.get(style_id)

    def first(self) -> GalleryStyle:
        with self._lock:
            return next(iter(self._styles.values()))

    def list(self) -> list[GalleryStyle]:
        with self._lock:
            return list(self._styles.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._styles)


def _style_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:16]


def _thumbnail(image: np.ndarray | None) -> str:
    if image is None:
        return ""
    small = resize_short_side(image, THUMBNAIL_SIDE)
    h, w = small.shape[:2]
    if max(h, w) > 3 * THUMBNAIL_SIDE:  # a panorama: keep the thumbnail small
        y, x = (h - min(h, 3 * THUMBNAIL_SIDE)) // 2, (w - min(w, 3 * THUMBNAIL_SIDE)) // 2
        small = small[y : y + 3 * THUMBNAIL_SIDE, x : x + 3 * THUMBNAIL_SIDE]
    ok, jpeg = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return "data:image/jpeg;base64," + base64.b64encode(jpeg.tobytes()).decode() if ok else ""
