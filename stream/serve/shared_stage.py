"""One engine for every client: a worker thread that runs the clients' frames through one GpuStage.

Clients differ in style, α, colour preservation, processing size and smoothing, but a GPU holds one
copy of the network, and an engine's state (its CUDA graphs, its content hook, its device copy of
the style statistics) is not safe to drive from several threads. So each client's pipeline hands
its newest frame to :meth:`SharedStage.submit`, which blocks until the result is back, and one
thread runs every request in arrival order with that client's settings applied just before the
launch. Arrival order is fair: a client whose result came back queues behind the others.

With ``depth`` 2 (CUDA) the stage returns a request's result one launch later, so another client's
upload and compute overlap it; when no other request is waiting the worker flushes, so a lone
client never waits for a frame that is not coming.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from engines.models.base import ContentStatsHook, StyleStats
from engines.stylizer import Stylizer
from stream.frames import Frame
from stream.gpu_stage import GpuStage

log = logging.getLogger(__name__)

_POLL = 0.1  # seconds: the longest a wait goes without looking at the stop flags


class StageClosed(Exception):
    """The shared stage was closed (server shutdown) or the request's client went away."""


@dataclass(frozen=True)
class StageSettings:
    """What one client's frames are stylized with (read once per request)."""

    stats: StyleStats
    alpha: float
    preserve_color: bool
    size: tuple[int, int] | None = None
    hook: ContentStatsHook | None = None  # the client's smoother, or None


class _Request:
    def __init__(self, settings: StageSettings, frames: list[Frame], cancelled: Callable[[], bool]) -> None:
        self.settings = settings
        self.frames = frames
        self.cancelled = cancelled
        self.results: list[Frame] = []
        self.error: BaseException | None = None
        self.done = threading.Event()

    def finish(self, error: BaseException | None = None) -> None:
        self.error = error
        self.done.set()


class SharedStage:
    """Serializes every client's use of one :class:`Stylizer` (and its engine) on one worker thread."""

    def __init__(self, stylizer: Stylizer, depth: int | None = None) -> None:
        self.stylizer = stylizer
        self.engine = stylizer.engine
        self.depth = depth
        self.stage = GpuStage(stylizer, depth=depth)
        self.frames_done = 0
        self._queue: deque[_Request] = deque()
        self._in_flight: deque[_Request] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._work, name="shared-stage", daemon=True)
        self._thread.start()

    def submit(
        self, settings: StageSettings, frames: list[Frame], cancelled: Callable[[], bool] = lambda: False
    ) -> list[Frame]:
        """Stylize ``frames`` with ``settings``, blocking until done; StageClosed once ``cancelled()``.

        ``cancelled`` is polled while waiting, so a client that goes away never waits for its result.
        """
        request = _Request(settings, frames, cancelled)
        with self._cond:
            if self._closed:
                raise StageClosed("the server is shutting down")
            self._queue.append(request)
            self._cond.notify_all()
        while not request.done.wait(_POLL):
            if cancelled() or self._closed:
                with self._cond:
                    if request in self._queue:
                        self._queue.remove(request)
                raise StageClosed("the client went away")
        if request.error is not None:
            raise request.error
        return request.results

    def pending(self) -> int:
        """Requests waiting or in flight (0 once every client is gone: nothing is held for them)."""
        with self._cond:
            return len(self._queue) + len(self._in_flight)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(5)

    # -- the worker --------------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._in_flight and not self._closed:
                    self._cond.wait(_POLL)
                if self._closed:
                    break
                request = self._queue.popleft() if self._queue else None
            try:
                if request is None:  # nobody else is waiting: hand back what is still in flight
                    self._deliver(self.stage.flush())
                elif request.cancelled():
                    request.finish(StageClosed("the client went away"))
                elif self._launch(request):
                    self._deliver(self.stage.ready())
            except BaseException as e:  # collecting results failed: nobody knows whose, all in flight fail
                log.warning("stylizing failed: %s", e)
                self._fail_in_flight(e)
                self.stage = GpuStage(self.stylizer, depth=self.depth)  # no half-finished slots kept
        self._fail_in_flight(StageClosed("the server is shutting down"))
        with self._cond:
            for request in self._queue:
                request.finish(StageClosed("the server is shutting down"))
            self._queue.clear()

    def _launch(self, request: _Request) -> bool:
        """Start ``request`` on the stage; False when that failed, which fails this request alone.

        A launch that raises (this client's frame size, settings, or the engine on them) puts nothing
        in flight, so the other clients' requests already there go on. Errors that surface later, when
        a result is collected (an asynchronous CUDA error), cannot be traced to a request: ``_work``
        fails every request in flight then.
        """
        self._in_flight.append(request)
        try:
            self._apply(request.settings)
            self.stage.launch(request.frames)
        except Exception as e:
            log.warning("stylizing failed: %s", e)
            self._in_flight.pop()
            request.finish(e)
            return False
        return True

    def _apply(self, settings: StageSettings) -> None:
        """A client's settings on the shared stylizer; read by the launch that follows, on this thread."""
        self.stylizer.stats = settings.stats
        self.stylizer.alpha = settings.alpha
        self.stylizer.preserve_color = settings.preserve_color
        self.stylizer.size = settings.size
        if self.engine.supports_content_hook:
            self.engine.content_hook = settings.hook

    def _deliver(self, results: list[Frame]) -> None:
        """Results come out in launch order: hand them to the oldest requests in flight."""
        for frame in results:
            request = self._in_flight[0]
            request.results.append(frame)
            self.frames_done += 1
            if len(request.results) == len(request.frames):
                self._in_flight.popleft()
                request.finish()

    def _fail_in_flight(self, error: BaseException) -> None:
        while self._in_flight:
            self._in_flight.popleft().finish(error)
