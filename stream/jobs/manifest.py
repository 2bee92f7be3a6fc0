"""The job's record, kept in the output folder, so that a job stopped anywhere resumes where it was.

``<output folder>/.stylize-job/manifest.json`` has one entry per output file: the input it came from
(path, size, modification time), the settings it was made with (a fingerprint), its state (``done``,
``incomplete``: some segments finished, ``failed`` with the reason) and, once done, the output's size
and sha256. A finished segment is recorded the same way. A re-run skips an output only when all of
that still matches: a file that merely exists (half-copied, edited, made with another style) is not
taken for done.

Only the machine that runs the command writes the manifest (workers return their results to it).
Each write re-reads the file under a lock and replaces only this job's entries, atomically, so two
jobs writing different files into one folder do not erase each other's records.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from filelock import FileLock

from engines.atomic import write_atomic
from engines.weights import sha256_file

log = logging.getLogger(__name__)

#: The job's hidden folder inside the output folder: the manifest, its lock, segments in progress.
WORK_DIR = ".stylize-job"
VERSION = 1


def file_digest(path: Path) -> dict:
    """``{"size": bytes, "sha256": hex}`` of a file."""
    return {"size": path.stat().st_size, "sha256": sha256_file(path)}


def matches(record: dict | None, path: Path) -> bool:
    """Whether ``path`` is still the file ``record`` describes (size first: a mismatch costs no read)."""
    if not record or not record.get("sha256") or not path.is_file():
        return False
    if path.stat().st_size != record.get("size"):
        return False
    return file_digest(path)["sha256"] == record["sha256"]


def input_identity(path: Path) -> dict:
    """What tells a changed input apart: resolved path, size and modification time."""
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


class Manifest:
    """The entries of ``<folder>/.stylize-job/manifest.json``, keyed by output file name."""

    def __init__(self, folder: Path) -> None:
        self.dir = Path(folder) / WORK_DIR
        self.path = self.dir / "manifest.json"
        self._lock = FileLock(str(self.dir / "manifest.lock"))
        self.entries: dict[str, dict] = self._read() if self.path.exists() else {}
        self._ours: set[str] = set()

    def get(self, name: str) -> dict | None:
        return self.entries.get(name)

    def put(self, name: str, entry: dict) -> None:
        """Record ``entry`` for output ``name`` and write the manifest now."""
        self.entries[name] = entry
        self._ours.add(name)
        self.save()

    def work_dir(self, name: str) -> Path:
        """Where output ``name`` is made: its segments, then the whole file until it is recorded done."""
        return self.dir / f"{name}.work"

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        with self._lock:
            entries = self._read() if self.path.exists() else {}
            entries.update({name: self.entries[name] for name in self._ours})
            data = json.dumps({"version": VERSION, "files": entries}, indent=1, sort_keys=True)
            write_atomic(self.path, data.encode() + b"\n")
            self.entries = entries

    def _read(self) -> dict[str, dict]:
        try:
            data = json.loads(self.path.read_text())
            if data.get("version") != VERSION or not isinstance(data.get("files"), dict):
                raise ValueError(f"version {data.get('version')!r}")
            return data["files"]
        except (OSError, ValueError, AttributeError) as e:  # unreadable: nothing counts as done
            log.warning("%s cannot be read (%s); every file is converted again", self.path, e)
            return {}
