"""Writing a file so that readers see the old file or the new one, never half of one.

Every output of the project goes through here: images, videos, ONNX graphs, TensorRT plans and their
sidecars, timing caches, style caches, downloaded weights, benchmark results. The temporary file is
hidden, next to the target (same filesystem, so the rename is atomic), and gets the permissions a
plain ``open(path, "w")`` would have given (0666 less the umask): ``mkstemp`` alone makes it 0600.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path next to ``path`` for a writer to fill; renamed onto ``path`` when the block ends.

    The temporary name keeps ``path``'s suffix, so writers that pick a format by extension (FFmpeg,
    OpenCV) see the right one. On any exception (Ctrl-C included) the temporary file is deleted and
    ``path`` is left as it was.
    """
    path = Path(path)
    tmp = temporary_path(path)
    try:
        yield tmp
        commit(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def temporary_path(path: Path) -> Path:
    """A hidden, unique name next to ``path`` that keeps its suffix: ``.name.<random>.partial.ext``."""
    return path.with_name(f".{path.stem}.{secrets.token_hex(4)}.partial{path.suffix}")


def commit(tmp: Path, path: Path) -> None:
    """Flush ``tmp`` to disk, give it the umask's permissions and rename it onto ``path``."""
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`); OSError propagates."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _umask() -> int:
    """The process umask, read without changing it where the OS allows (os.umask is racy in threads)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(Path("/proc/self/status").read_text().split("Umask:")[1].split()[0], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
