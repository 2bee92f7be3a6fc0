"""Live frames from a camera (or a stream URL) through ``cv2.VideoCapture``.

A grabber thread reads the camera continuously and keeps only the newest frame. Iterating returns
that newest frame, never a backlog: when the stylizer is slower than the camera, the frames it could
not take are skipped here, which keeps the latency at one frame instead of growing without bound.

Cameras disappear (USB unplugged, driver hiccup, a network stream stalls): failed reads re-open the
capture with exponential back-off, and give up with :class:`StylizeError` after ``max_retries``
attempts in a row without a frame.

A local video file may stand in for the camera. It is read at its own frame rate, as a camera
delivers (a file otherwise decodes as fast as the CPU allows), and ends the iteration at its end,
or starts over with ``loop=True``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np

from engines.errors import StylizeError
from stream.frames import Frame

#: Makes a capture for a device index or URL/path; injectable so tests can simulate a failing camera.
CaptureFactory = Callable[[int | str], cv2.VideoCapture]

_POLL = 0.1  # seconds between looks at the closed flag while waiting for a frame


class WebcamSource:
    """Iterates the newest camera frames as BGR :class:`Frame` objects (``pts`` is None).

    ``device`` is a camera index (``0`` or ``"0"``) or a URL/path. ``width``/``height``/``fps`` and
    ``mjpg`` (MJPG FOURCC, which USB cameras need for high resolutions at full frame rate) are requests;
    cameras may pick something else, and ``self.width``/``self.height``/``self.fps`` tell what they
    picked. ``Frame.index`` counts every frame the camera delivered, so gaps show skipped frames.
    ``open_timeout`` bounds the wait for the first frame. :meth:`close` may be called from any thread
    and ends an iteration that is waiting. A ``device`` that is a video file is paced at its frame
    rate and played once (``loop=True``: over and over); see the module notes.
    """

    def __init__(
        self,
        device: int | str,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        mjpg: bool = False,
        loop: bool = False,
        reconnect: bool = True,
        open_timeout: float = 10.0,
        max_retries: int = 8,
        retry_delay: float = 0.25,
        max_retry_delay: float = 4.0,
        capture_factory: CaptureFactory = cv2.VideoCapture,
    ) -> None:
        self.device: int | str = int(device) if isinstance(device, str) and device.isdigit() else device
        self.requested = (width, height, fps, mjpg)
        self.is_file = isinstance(self.device, str) and Path(self.device).is_file()
        self.loop = loop
        self.reconnect = reconnect
        self.max_retries = max_retries
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.reconnects = 0  # re-open attempts so far
        self.width, self.height, self.fps = width, height, fps  # until the camera says what it picked
        self._factory = capture_factory
        self._cond = threading.Condition()
        self._closed = threading.Event()
        self._latest: tuple[np.ndarray, float] | None = None
        self._seq = 0  # frames delivered by the camera so far
        self._error: StylizeError | None = None
        self._ended = False  # a video file standing in for the camera reached its end
        # A file waits after its first frame until it is iterated: it must not play, unseen, while
        # the caller still loads a model (a camera keeps running, and only its newest frame counts).
        self._playing = threading.Event()
        self._play_start = 0.0

        cap, why = self._open()
        if cap is None:
            raise StylizeError(f"could not open camera {self.device!r}: {why}")
        self._thread = threading.Thread(target=self._grab, args=(cap,), name="webcam-grabber", daemon=True)
        self._thread.start()
        with self._cond:
            self._cond.wait_for(
                lambda: self._seq > 0 or self._error is not None or self._ended, timeout=open_timeout
            )
            error, got_frame = self._error, self._seq > 0
        if not got_frame:
            self.close()
            if error is None and self._ended:
                error = StylizeError(f"video file {self.device!r} has no frame OpenCV can read")
            raise error or StylizeError(
                f"camera {self.device!r} opened but sent no frame within {open_timeout:g} s"
            )

    @property
    def frames_grabbed(self) -> int:
        return self._seq

    def _open(self) -> tuple[cv2.VideoCapture | None, str]:
        """A configured, opened capture, or None and the reason."""
        try:
            cap = self._factory(self.device)
        except Exception as e:  # a factory (or a backend) may raise instead of returning a closed capture
            return None, str(e) or type(e).__name__
        if cap is None or not cap.isOpened():
            if cap is not None:
                cap.release()
            return None, "no such device, or it is in use by another program"
        width, height, fps, mjpg = self.requested
        if mjpg:  # before the size: V4L2 picks the resolutions it offers from the pixel format
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*"MJPG"))
        if width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        if height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        if fps:
            cap.set(cv2.CAP_PROP_FPS, fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # no driver-side queue of old frames (where supported)
        self.width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) or width
        self.height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) or height
        self.fps = cap.get(cv2.CAP_PROP_FPS) or fps
        return cap, ""

    def _grab(self, cap: cv2.VideoCapture | None) -> None:
        """Grabber thread: read forever, keep the newest frame, re-open with back-off on failures."""
        failures, delay = 0, self.retry_delay
        # A file is paced against the clock (frame n due n/fps after the first), so decoding time
        # does not add up; a camera paces itself.
        interval = 1.0 / self.fps if self.is_file and self.fps and self.fps > 0 else 0.0
        start = time.monotonic()
        pass_start = 0  # frames read before the file's current pass
        try:
            while not self._closed.is_set():
                if interval and self._seq == 1 and not self._playing.is_set():
                    while not self._playing.wait(_POLL):
                        if self._closed.is_set():
                            return
                    start = self._play_start
                if interval and self._closed.wait(max(0.0, start + self._seq * interval - time.monotonic())):
                    return
                ok, image = cap.read() if cap is not None else (False, None)
                if ok and image is not None:
                    failures, delay = 0, self.retry_delay
                    with self._cond:
                        self._latest = (image, time.monotonic())
                        self._seq += 1
                        self._cond.notify_all()
                    continue
                if self.is_file:  # the end of the file (or a frame it cannot decode)
                    if cap is not None:
                        cap.release()
                        cap = None
                    if self.loop and self._seq > pass_start:  # a pass without frames would spin forever
                        pass_start = self._seq
                        cap, why = self._open()
                        if cap is None:
                            raise StylizeError(f"could not reopen {self.device!r} to loop it: {why}")
                        continue
                    with self._cond:
                        self._ended = True
                    return
                if not self.reconnect:
                    raise StylizeError(f"camera {self.device!r} stopped sending frames")
                failures += 1
                if failures > self.max_retries:
                    raise StylizeError(
                        f"camera {self.device!r} stopped sending frames and did not come back "
                        f"after {self.max_retries} attempts to reconnect"
                    )
                if cap is not None:
                    cap.release()
                    cap = None
                if self._closed.wait(delay):
                    return
                delay = min(2 * delay, self.max_retry_delay)
                self.reconnects += 1
                cap, _ = self._open()
        except StylizeError as e:
            with self._cond:
                self._error = e
        except Exception as e:  # a backend crash must reach the reader, not vanish with the thread
            with self._cond:
                self._error = StylizeError(f"camera {self.device!r} failed: {e}")
        finally:
            if cap is not None:
                cap.release()
            with self._cond:
                self._cond.notify_all()

    def __iter__(self) -> Iterator[Frame]:
        if self.is_file and not self._playing.is_set():
            with self._cond:  # the file starts playing now: its first frame is shown now
                self._play_start = time.monotonic()
                if self._latest is not None:
                    self._latest = (self._latest[0], self._play_start)
            self._playing.set()
        seen = 0
        while True:
            with self._cond:
                while self._seq == seen and not (self._error or self._ended or self._closed.is_set()):
                    self._cond.wait(_POLL)
                if self._closed.is_set():
                    return
                if self._seq == seen:  # no newer frame: the file ended, or the grabber gave up
                    if self._error is None:
                        return
                    raise self._error
                image, captured_at = self._latest  # type: ignore[misc]
                seen = self._seq
            yield Frame(image=image, index=seen - 1, captured_at=captured_at)

    def close(self) -> None:
        """Stop the grabber and release the camera (idempotent, any thread)."""
        self._closed.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)  # a read blocked in the driver finishes on its own later

    def __enter__(self) -> WebcamSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
