"""The one object that flows through the stream: a picture plus where it belongs in time."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One video frame.

    ``image`` is H×W×3 uint8 BGR. ``pts``/``time_base`` are the source's timestamp (None for
    live cameras); sinks that encode reuse them so timing survives stylization unchanged.
    ``captured_at`` is ``time.monotonic()`` when the frame entered the stream, for latency.
    """

    image: np.ndarray
    index: int
    pts: int | None = None
    time_base: Fraction | None = None
    captured_at: float = field(default_factory=time.monotonic)

    @property
    def time(self) -> float | None:
        """Presentation time in seconds, when the source knows it."""
        if self.pts is None or self.time_base is None:
            return None
        return float(self.pts * self.time_base)

    def with_image(self, image: np.ndarray) -> Frame:
        """The same frame (index, timestamps, capture time) carrying other pixels."""
        return replace(self, image=image)


@runtime_checkable
class Source(Protocol):
    """Yields frames in order; ``close()`` releases the device or file. Usable as a context manager."""

    def __iter__(self): ...

    def close(self) -> None: ...


@runtime_checkable
class Sink(Protocol):
    """Consumes frames. ``close()`` finalizes the output (a file becomes playable, a window closes)."""

    def write(self, frame: Frame) -> None: ...

    def close(self) -> None: ...
