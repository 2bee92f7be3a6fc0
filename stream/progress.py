"""A sink that shows progress: frames done/total, frames per second and time left."""

from __future__ import annotations

import sys

from tqdm import tqdm

from stream.frames import Frame


class ProgressSink:
    """Counts frames as they are finished; add it after the real sinks so it counts written frames."""

    def __init__(self, total: int | None, desc: str = "stylizing", enabled: bool | None = None):
        disable = (not sys.stderr.isatty()) if enabled is None else not enabled
        self._bar = tqdm(total=total, desc=desc, unit="frame", dynamic_ncols=True, disable=disable)
        self.frames = 0

    def write(self, frame: Frame) -> None:
        self.frames += 1
        self._bar.update(1)

    def close(self) -> None:
        self._bar.close()
