"""On-disk cache of built TensorRT engines, safe to share between processes.

A TensorRT build takes seconds to minutes and its result is only valid for one ONNX file, TensorRT
version, GPU, shape profile and precision, so engines are stored under a key derived from exactly
those (:class:`EngineSettings`). Each engine has a JSON sidecar with its size and SHA-256, so a
truncated or corrupted file (a crash mid-write, a full disk) is detected and rebuilt instead of
being handed to TensorRT. A per-key file lock makes a second process wait for the first one's
build rather than build the same engine again. This module does not import TensorRT.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from engines.atomic import write_atomic
from engines.errors import StylizeError
from engines.userdirs import cache_dir

Shape = tuple[int, ...]


@dataclass(frozen=True)
class EngineSettings:
    """Everything a built engine depends on; two equal settings may share one engine file."""

    onnx_sha256: str
    trt_version: str
    gpu_name: str
    compute_capability: tuple[int, int]
    #: optimization profile of the ``content`` input: full N×3×H×W shapes
    min_shape: Shape
    opt_shape: Shape
    max_shape: Shape
    precision: str  # "fp32" | "fp16"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EngineSettings:
        """Inverse of :meth:`to_dict`."""
        return cls(**{f.name: _tuples(data[f.name]) for f in dataclasses.fields(cls)})

    def key(self) -> str:
        """Hex SHA-256 of all fields as named, canonical JSON (no collisions by concatenation)."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def default_root() -> Path:
    """``<user cache dir>/adain-stream/engines`` (see :func:`engines.userdirs.cache_dir`)."""
    return cache_dir("engines")


class EngineCache:
    """Engines as ``<key>.engine`` plus ``<key>.json`` sidecars (and ``<key>.lock``) under ``root``."""

    def __init__(self, root: str | Path | None = None, lock_timeout: float = -1) -> None:
        """``lock_timeout`` in seconds bounds the wait for another process's build (-1: forever)."""
        self.root = Path(root) if root is not None else default_root()
        self.lock_timeout = lock_timeout

    def path_for(self, settings: EngineSettings) -> Path:
        return self.root / f"{settings.key()}.engine"

    def sidecar_for(self, settings: EngineSettings) -> Path:
        return self.root / f"{settings.key()}.json"

    def timing_cache_path(self, settings: EngineSettings) -> Path:
        """The timing cache shared by all builds for this TensorRT version and GPU.

        Timing caches are only valid for one TensorRT version and device, so those (and nothing
        model-specific) name the file.
        """
        device = f"{settings.trt_version}|{settings.gpu_name}|{settings.compute_capability}"
        return self.root / f"timing-{hashlib.sha256(device.encode()).hexdigest()[:16]}.cache"

    def timing_cache_lock(self, settings: EngineSettings) -> FileLock:
        """Held while a build merges its timings into the shared file (read, combine, write)."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.timing_cache_path(settings)
        return FileLock(path.with_name(path.name + ".lock"), timeout=self.lock_timeout)

    def load(self, settings: EngineSettings) -> bytes | None:
        """The cached engine if present and intact (size and SHA-256 match its sidecar), else None."""
        try:
            meta = json.loads(self.sidecar_for(settings).read_text())
            data = self.path_for(settings).read_bytes()
        except (OSError, ValueError):
            return None
        if (
            not isinstance(meta, dict)
            or meta.get("settings") != settings.to_dict()
            or meta.get("size") != len(data)
            or meta.get("sha256") != hashlib.sha256(data).hexdigest()
        ):
            return None
        return data

    def get_or_build(self, settings: EngineSettings, build_fn: Callable[[], bytes]) -> bytes:
        """The cached engine, or ``build_fn()``'s result stored first; one build per key across processes."""
        data = self.load(settings)
        if data is not None:
            return data
        self.root.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.root / f"{settings.key()}.lock", timeout=self.lock_timeout)
        try:
            with lock:
                data = self.load(settings)  # another process may have built it while we waited
                if data is None:
                    data = bytes(build_fn())
                    self._store(settings, data)
                return data
        except Timeout:
            raise StylizeError(
                f"timed out after {self.lock_timeout:g} s waiting for another process to build "
                f"the TensorRT engine (lock {lock.lock_file})"
            ) from None

    def _store(self, settings: EngineSettings, data: bytes) -> None:
        """Engine first, sidecar last: a reader never sees a sidecar vouching for a partial engine."""
        write_atomic(self.path_for(settings), data)
        meta = {
            "key": settings.key(),
            "settings": settings.to_dict(),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        write_atomic(self.sidecar_for(settings), json.dumps(meta, indent=2).encode())

    def list(self) -> list[dict[str, Any]]:
        """Sidecar contents of every cached engine, oldest first (unreadable sidecars skipped)."""
        entries = []
        for sidecar in self.root.glob("*.json"):
            try:
                meta = json.loads(sidecar.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(meta, dict) and "settings" in meta:
                entries.append(meta)
        return sorted(entries, key=lambda m: (str(m.get("created", "")), str(m.get("key", ""))))

    def clear(self) -> int:
        """Delete all engines, sidecars and timing caches; returns the number of engines removed."""
        removed = 0
        for pattern in ("*.engine", "*.json", "timing-*.cache"):
            for path in self.root.glob(pattern):
                path.unlink(missing_ok=True)
                removed += path.suffix == ".engine"
        return removed
