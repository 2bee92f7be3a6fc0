"""Still images in and out, always as H×W×3 uint8 BGR, whatever the file held.

Files are read as bytes and decoded with ``cv2.imdecode`` (not ``cv2.imread``) so that paths with
non-ASCII characters work on every platform. Normalization:

- grayscale becomes 3 equal channels;
- transparency is composited over **white**: style images with transparent backgrounds (sketches,
  logos) then look as they do in a viewer, where black would inject large dark areas into the style;
- 16-bit files are scaled to 8 bits (65535 → 255, rounded), float files are clipped to [0, 1];
- JPEGs are decoded with their EXIF orientation applied, like phones and viewers show them.
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from engines.atomic import write_atomic
from engines.errors import StylizeError

IMAGE_SUFFIXES = frozenset(".jpg .jpeg .jpe .png .bmp .dib .webp .tif .tiff .pbm .pgm .ppm .pnm".split())
#: Suffixes this OpenCV build can write a colour picture as (.pbm/.pgm hold only black-and-white/grey).
WRITE_SUFFIXES = frozenset(
    s for s in (IMAGE_SUFFIXES - {".pbm", ".pgm"}) | {".gif", ".avif"} if cv2.haveImageWriter("x" + s)
)


def check_write_suffix(path: str | Path) -> None:
    """Refuse an output name whose suffix no image encoder here writes, naming those that work."""
    suffix = Path(path).suffix
    if suffix.lower() not in WRITE_SUFFIXES:
        kinds = ", ".join(sorted(WRITE_SUFFIXES))
        raise StylizeError(f"cannot write images as '{suffix}' ({Path(path).name}); use one of {kinds}")


def read_image_bytes(path: str | Path) -> bytes:
    """The file's raw bytes (callers hash them to key caches), with a clear error when unreadable."""
    path = Path(path)
    if not path.exists():
        raise StylizeError(f"image not found: {path}")
    if path.is_dir():
        raise StylizeError(f"expected an image file, got a folder: {path}")
    try:
        return path.read_bytes()
    except OSError as e:
        raise StylizeError(f"cannot read image {path}: {e.strerror}") from None


def read_image(path: str | Path) -> np.ndarray:
    """Decode any image OpenCV reads into H×W×3 uint8 BGR (see the module notes for the conversions)."""
    return decode_image(read_image_bytes(path), Path(path).name)


def decode_image(data: bytes, name: str) -> np.ndarray:
    """Decode an image file's bytes (a file, an upload) into H×W×3 uint8 BGR; ``name`` is for messages."""
    buffer = np.frombuffer(data, dtype=np.uint8)
    is_jpeg = buffer[:2].tobytes() == b"\xff\xd8"
    # UNCHANGED keeps alpha and 16 bits but skips EXIF rotation; JPEGs have neither, so they get COLOR.
    flags = cv2.IMREAD_COLOR if is_jpeg else cv2.IMREAD_UNCHANGED
    try:
        image = cv2.imdecode(buffer, flags) if buffer.size else None
    except cv2.error:  # some decoders raise on damaged data instead of returning None
        image = None
    if image is None:
        raise StylizeError(f"cannot read image {name}: not an image file, unsupported, or damaged")
    return _to_bgr8(image, name)


def _to_bgr8(image: np.ndarray, name: str) -> np.ndarray:
    if image.ndim == 2:
        image = image[:, :, None]
    alpha = None
    if image.shape[2] in (2, 4):  # gray+alpha or BGRA
        image, alpha = image[:, :, :-1], _unit(image[:, :, -1:], name)
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    if alpha is None:
        return image if image.dtype == np.uint8 else _to_uint8(_unit(image, name))
    return _to_uint8(_unit(image, name) * alpha + (1.0 - alpha))  # over white (1.0)


def _unit(channels: np.ndarray, name: str) -> np.ndarray:
    """Pixel values as float32 in [0, 1], whatever the integer depth."""
    if channels.dtype == np.uint8:
        return channels.astype(np.float32) / 255.0
    if channels.dtype == np.uint16:
        return channels.astype(np.float32) / 65535.0
    if channels.dtype in (np.float32, np.float64):
        return np.clip(channels, 0.0, 1.0).astype(np.float32)
    raise StylizeError(f"cannot use image {name}: unsupported pixel type {channels.dtype}")


def _to_uint8(unit: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.rint(unit * 255.0).astype(np.uint8))


def write_image(path: str | Path, bgr: np.ndarray, overwrite: bool = False) -> None:
    """Encode by the file extension and write atomically (temp file + rename): never a half-written file."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise StylizeError(f"output file already exists: {path} (use --overwrite to replace it)")
    if not path.parent.is_dir():
        raise StylizeError(f"output folder does not exist: {path.parent}")
    check_write_suffix(path)
    try:
        ok, encoded = cv2.imencode(path.suffix, bgr)
    except cv2.error:
        ok = False
    if not ok:
        raise StylizeError(f"could not encode {path.name} as '{path.suffix}'; try .png or .jpg")
    try:
        write_atomic(path, encoded.tobytes())
    except OSError as e:
        raise StylizeError(f"cannot write {path}: {e.strerror}") from None


def list_images(path_or_dir: str | Path) -> list[Path]:
    """A file as a one-item list, or a folder's images (not recursive, hidden skipped) in natural order."""
    path = Path(path_or_dir)
    if not path.exists():
        raise StylizeError(f"not found: {path}")
    if not path.is_dir():
        return [path]
    return files_in(path, IMAGE_SUFFIXES, "images")


def files_in(folder: Path, suffixes: frozenset[str], kind: str) -> list[Path]:
    """A folder's files with one of ``suffixes`` (not recursive, hidden skipped) in natural order;
    StylizeError naming ``kind`` when there is none."""
    found = [p for p in folder.iterdir() if p.suffix.lower() in suffixes and not p.name.startswith(".")]
    found = [p for p in found if p.is_file()]
    if not found:
        raise StylizeError(f"no {kind} in folder {folder} (looked for {', '.join(sorted(suffixes))})")
    return sorted(found, key=natural_key)


def natural_key(path: Path) -> list:
    """'frame2' before 'frame10', as people number files."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


#: Formats :func:`image_header` reads, by the file's first bytes; uploads are limited to these.
_MAGIC = ((b"\xff\xd8\xff", "jpeg"), (b"\x89PNG\r\n\x1a\n", "png"), (b"BM", "bmp"))


def image_header(data: bytes) -> tuple[str, int, int] | None:
    """(format, width, height) read from an image file's header without decoding it, or None.

    A few kilobytes can claim a picture of gigapixels; reading the size first lets a server refuse
    such a file before the decoder allocates it. JPEG, PNG, WebP and BMP only.
    """
    kind = next((k for magic, k in _MAGIC if data.startswith(magic)), None)
    if kind is None and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        kind = "webp"
    try:
        size = {"jpeg": _jpeg_size, "png": _png_size, "bmp": _bmp_size, "webp": _webp_size}[kind](data)
    except (KeyError, IndexError, ValueError):
        return None
    if size is None or min(size) <= 0:
        return None
    return kind, size[0], size[1]


def _png_size(data: bytes) -> tuple[int, int] | None:
    if data[12:16] != b"IHDR":
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _bmp_size(data: bytes) -> tuple[int, int] | None:
    if len(data) < 26:
        return None
    return int.from_bytes(data[18:22], "little", signed=True), abs(
        int.from_bytes(data[22:26], "little", signed=True)
    )


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        return int.from_bytes(data[26:28], "little") & 0x3FFF, int.from_bytes(data[28:30], "little") & 0x3FFF
    if chunk == b"VP8L" and data[20:21] == b"\x2f":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Walk the markers to the first start-of-frame (SOF0–SOF15 but DHT, JPG and DAC)."""
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
            i += 2
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if i + 9 > len(data):
                return None
            return int.from_bytes(data[i + 7 : i + 9], "big"), int.from_bytes(data[i + 5 : i + 7], "big")
        if marker == 0xDA or length < 2:  # image data before any frame header: not a valid JPEG
            return None
        i += 2 + length
    return None
