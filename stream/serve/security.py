"""What keeps a camera server safe by default: who may connect, from where, and what may be uploaded.

A server on the loopback interface is reachable only from this machine, so it needs no token; any
other address puts the cameras of whoever connects (and the GPU) on the network, so it needs one.
Without a token the server still answers only requests addressed to a loopback name: a web page on
another site that rebinds its DNS name to 127.0.0.1 would otherwise reach it from the visitor's
browser. Uploads are checked on their bytes, not their names: size, format from the magic bytes,
pixel count from the header (before any decoding), then decoded by the same code that reads files.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
import secrets

import numpy as np

from engines.errors import StylizeError
from stream.images import decode_image, image_header

#: Uploaded style images: at most this many bytes …
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
#: … and pixels (a 20 MB PNG can claim gigapixels; style images are encoded at 512 px anyway).
MAX_UPLOAD_PIXELS = 32_000_000
#: The formats accepted, as their MIME types.
UPLOAD_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp", "bmp": "image/bmp"}

LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})


class Refused(StylizeError):
    """A request the server refuses, with the HTTP status that says why (the message is one line)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def is_loopback(host: str) -> bool:
    """True for a name or address that only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    host = host.strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_token(host: str, token: str | None) -> tuple[str | None, bool]:
    """The token the server checks, and whether it was generated here: ``(token, generated)``.

    ``token`` is the user's (None: not asked for, "": generate one). A non-loopback ``host`` without
    a token is refused: the server would hand the GPU and the viewers' streams to the network.
    """
    if token == "":
        return secrets.token_urlsafe(24), True
    if token is not None:
        if len(token) < 16:
            raise StylizeError(
                "--token must be at least 16 characters (or give --token alone to generate one)"
            )
        return token, False
    if not is_loopback(host):
        raise StylizeError(
            f"binding to {host} opens the server to the network: give --token SECRET "
            "(or --token alone to generate one), or bind to 127.0.0.1"
        )
    return None, False


def token_matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison (a timing difference must not reveal how much of a guess was right)."""
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


def host_header_allowed(host_header: str | None) -> bool:
    """For a server without a token: is the request addressed to a loopback name (no DNS rebinding)?"""
    if not host_header:
        return False
    if host_header.startswith("["):  # [::1]:8080
        name = host_header[1:].partition("]")[0]
    else:
        name = host_header.rpartition(":")[0] if host_header.count(":") == 1 else host_header
    return is_loopback(name)


def style_name(filename: str | None) -> str:
    """A display name from an uploaded file's name: its stem, printable, at most 40 characters."""
    stem = (filename or "").replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    stem = re.sub(r"[^\w .+-]+", "_", stem).strip()[:40]
    return stem or "upload"


def check_upload(data: bytes, content_type: str | None, name: str) -> np.ndarray:
    """The decoded H×W×3 uint8 BGR picture of an upload, or :class:`Refused` (413, 415 or 400)."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise Refused(413, f"{name} is {len(data) / 2**20:.1f} MB; style images may be at most 20 MB")
    if not data:
        raise Refused(400, "the upload is empty")
    declared = (content_type or "").split(";")[0].strip().lower()
    if declared and not declared.startswith("image/") and declared != "application/octet-stream":
        raise Refused(415, f"{name} was sent as {declared}; upload an image (JPEG, PNG, WebP or BMP)")
    header = image_header(data)
    if header is None:
        raise Refused(415, f"{name} is not a JPEG, PNG, WebP or BMP image")
    _, width, height = header
    if width * height > MAX_UPLOAD_PIXELS:
        limit = MAX_UPLOAD_PIXELS // 10**6
        raise Refused(413, f"{name} is {width}x{height} pixels; style images may have at most {limit} MP")
    try:
        return decode_image(data, name)
    except StylizeError as e:
        raise Refused(400, str(e)) from None
