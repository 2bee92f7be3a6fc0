"""aiortc's tracks ↔ a client's pipeline: the camera track feeds its mailbox, a track sends its output.

The outgoing frames keep the incoming frames' timestamps (aiortc's 90 kHz RTP clock, from 0), so
the browser plays them with the camera's timing; a dropped stale frame is a gap, not a slowdown.
"""

from __future__ import annotations

import asyncio
import fractions
import time

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from stream.serve.session import FrameMailbox, OutputSlot

_CLOCK = fractions.Fraction(1, 90_000)


def convert_frame(frame: av.VideoFrame):
    """A decoded WebRTC frame → (H×W×3 uint8 BGR, pts, time_base); runs on the pipeline's process thread."""
    return frame.to_ndarray(format="bgr24"), frame.pts, frame.time_base


async def pump(track: MediaStreamTrack, mailbox: FrameMailbox) -> None:
    """Move the camera track's frames into the mailbox until the track ends (the client went away)."""
    try:
        while True:
            frame = await track.recv()
            mailbox.put(frame, time.monotonic())
    except MediaStreamError:
        return


class StylizedTrack(MediaStreamTrack):
    """The outgoing video track: ``recv`` returns the newest stylized frame, waiting for one if needed."""

    kind = "video"

    def __init__(self, slot: OutputSlot, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._slot = slot
        self._loop = loop
        self._ready = asyncio.Event()
        self._t0: float | None = None
        slot.on_frame = self._wake

    def _wake(self) -> None:
        """Called from the pipeline's output thread."""
        try:
            self._loop.call_soon_threadsafe(self._ready.set)
        except RuntimeError:  # the loop is closed: the server is gone, nobody is waiting
            pass

    async def recv(self) -> av.VideoFrame:
        while True:
            if self.readyState != "live" or self._slot.closed:
                raise MediaStreamError
            frame = self._slot.take()
            if frame is not None:
                break
            self._ready.clear()
            frame = self._slot.take()  # written between take() and clear(): its wake-up was cleared
            if frame is not None:
                break
            await self._ready.wait()
        out = av.VideoFrame.from_ndarray(frame.image, format="bgr24")
        if frame.pts is not None and frame.time_base is not None:
            out.pts, out.time_base = frame.pts, frame.time_base
        else:  # a source without timestamps: time by arrival
            self._t0 = frame.captured_at if self._t0 is None else self._t0
            out.pts, out.time_base = round((frame.captured_at - self._t0) / _CLOCK), _CLOCK
        return out
