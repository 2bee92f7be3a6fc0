"""Three stages on their own threads: capture (iterate the source) -> process (the GPU) -> output (sinks).

Stages are joined by small bounded queues, so a slow stage never makes memory grow. Two policies:

- ``"file"``: nothing is ever dropped; a full queue blocks the stage before it (back-pressure), so a
  slow encoder slows decoding instead of piling frames up.
- ``"live"``: a camera must never wait. Each queue holds one frame and a put on a full queue drops
  the oldest (stale) frame, so a frame waits at most one frame time per queue and the picture on
  screen stays current even when the sink or the network is slower than the camera.

Shutdown is the point of this module: an exception in any stage, a stop requested by a sink
(:class:`StopPipeline` or :meth:`Pipeline.stop`) or Ctrl-C stops every stage promptly (queue
operations wait with timeouts and watch a stop event), all threads are joined, the source and every
sink are closed exactly once, and the first error is re-raised in the caller of :meth:`Pipeline.run`
as the original exception, tagged with the stage it came from.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from stream.frames import Frame, Sink, Source

log = logging.getLogger(__name__)

#: The processing stage: stylize a batch of frames (in capture order), return the results in order.
#: Usually one output per input, but returning fewer (or none) is allowed; a stage that keeps frames
#: in flight (:class:`stream.gpu_stage.GpuStage`) has a ``flush()`` that returns them at the end.
Process = Callable[[list[Frame]], list[Frame]]
Policy = Literal["file", "live"]

_POLL = 0.1  # seconds; the longest any wait goes without looking at the stop event
_END = object()  # end-of-stream marker, travels through the queues after the last frame
_EMPTY = object()  # a non-blocking get found nothing
_LATENCY_WINDOW = 10_000  # latencies kept for the p95 (a live session may run for hours)


class StopPipeline(Exception):
    """Raised by a source, the process callable or a sink to end the run cleanly (e.g. the quit key)."""


@dataclass(frozen=True)
class PipelineStats:
    """What :meth:`Pipeline.run` returns. Latency is ``frame.captured_at`` → written to every sink."""

    frames_in: int
    frames_out: int
    dropped: int
    seconds: float
    fps: float
    latency_mean_ms: float
    latency_p95_ms: float
    #: "end" (source exhausted), "stopped" (StopPipeline / stop()), "interrupted" (Ctrl-C), "error"
    stop_reason: str


class _Channel:
    """A bounded FIFO between two stages whose waits give up as soon as the pipeline stops."""

    def __init__(self, capacity: int, drop_oldest: bool, stopped: threading.Event) -> None:
        self._items: deque = deque()
        self._capacity = capacity
        self._drop_oldest = drop_oldest
        self._stopped = stopped
        self._cond = threading.Condition()
        self.dropped = 0

    def put(self, item: object) -> bool:
        """Queue ``item``; blocks while full unless dropping the oldest. False once the pipeline stopped.

        The end marker never displaces a frame: it waits, so a finite live source loses no last frame.
        """
        with self._cond:
            while len(self._items) >= self._capacity:
                if self._drop_oldest and item is not _END:
                    self._items.popleft()
                    self.dropped += 1
                    break
                if self._stopped.is_set():
                    return False
                self._cond.wait(_POLL)
            if self._stopped.is_set():
                return False
            self._items.append(item)
            self._cond.notify_all()
            return True

    def get(self, block: bool = True) -> object:
        """The next item, ``_EMPTY`` when not blocking and none is there, ``_END`` once stopped."""
        with self._cond:
            while not self._items:
                if self._stopped.is_set():
                    return _END
                if not block:
                    return _EMPTY
                self._cond.wait(_POLL)
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()


class Pipeline:
    """Runs ``source`` → ``process`` → ``sinks`` until the source ends, a stop is requested or a stage fails.

    ``process`` gets lists of up to ``batch_size`` frames (``"file"`` waits to fill a batch, ``"live"``
    takes what is already there). ``queue_size`` defaults to 2 for ``"file"`` and 1 for ``"live"``.

    The output stage normally has its own thread. A sink with ``needs_main_thread = True`` (the OpenCV
    window: Qt and macOS want GUI calls on the main thread) makes it run in the thread that calls
    :meth:`run` instead. A pipeline runs once.
    """

    def __init__(
        self,
        source: Source | Iterable[Frame],
        process: Process,
        sinks: Sequence[Sink],
        policy: Policy = "file",
        queue_size: int | None = None,
        batch_size: int = 1,
        join_timeout: float = 5.0,
    ) -> None:
        if policy not in ("file", "live"):
            raise ValueError(f"policy must be 'file' or 'live', got {policy!r}")
        if batch_size < 1 or (queue_size is not None and queue_size < 1):
            raise ValueError("batch_size and queue_size must be at least 1")
        self.source = source
        self.process = process
        self.sinks = list(sinks)
        self.policy = policy
        self.batch_size = batch_size
        self.join_timeout = join_timeout
        size = queue_size or (2 if policy == "file" else 1)
        self._stopped = threading.Event()
        self._decoded = _Channel(size, policy == "live", self._stopped)
        self._processed = _Channel(size, policy == "live", self._stopped)
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        self._stop_reason = "end"
        self._started = False
        self._source_closed = False
        self._t0 = self._t_last = 0.0
        self._frames_in = self._frames_out = 0
        self._latency_sum = 0.0
        self._latencies: deque[float] = deque(maxlen=_LATENCY_WINDOW)

    # -- control ----------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask every stage to stop (thread-safe, idempotent); :meth:`run` then returns its stats."""
        self._halt("stopped")

    def _halt(self, reason: str) -> None:
        with self._lock:
            if not self._stopped.is_set() and self._stop_reason == "end":
                self._stop_reason = reason
            self._stopped.set()
        self._decoded.wake()
        self._processed.wake()

    def _fail(self, stage: str, exc: BaseException, where: str = "") -> None:
        """Keep the first error (the cause; later ones are usually its consequences) and stop everything."""
        if isinstance(exc, StopPipeline):
            self._halt("stopped")
            return
        if isinstance(exc, KeyboardInterrupt):  # Ctrl-C inside a main-thread sink, or raised on purpose
            self._halt("interrupted")
            return
        with self._lock:
            first = self._error is None
            if first:
                self._error = exc
        if first:
            try:
                exc.pipeline_stage = stage  # type: ignore[attr-defined]
            except AttributeError:
                pass
            if hasattr(exc, "add_note"):  # Python 3.11+
                exc.add_note(f"(in the pipeline's {stage} stage{', ' + where if where else ''})")
        self._halt("error")

    # -- stages -----------------------------------------------------------------------------------

    def _capture(self) -> None:
        try:
            for frame in self.source:
                with self._lock:
                    self._frames_in += 1
                if not self._decoded.put(frame) or self._stopped.is_set():
                    return
            self._decoded.put(_END)
        except BaseException as e:  # any failure must reach run(), not die with the thread
            self._fail("capture", e)
        finally:
            self._close_source("capture")

    def _process(self) -> None:
        try:
            while True:
                item = self._decoded.get()
                if item is _END:
                    self._end_process()
                    return
                batch = [item]
                ended = False
                while len(batch) < self.batch_size:
                    nxt = self._decoded.get(block=self.policy == "file")
                    if nxt is _EMPTY:
                        break
                    if nxt is _END:
                        ended = True
                        break
                    batch.append(nxt)
                for result in self.process(batch):
                    if not self._processed.put(result):
                        return
                if ended:
                    self._end_process()
                    return
        except BaseException as e:
            self._fail("process", e)

    def _end_process(self) -> None:
        """At the end of the stream, collect what a pipelined ``process`` still holds (``flush()``)."""
        flush = getattr(self.process, "flush", None)
        if flush is not None and not self._stopped.is_set():
            for result in flush():
                if not self._processed.put(result):
                    return
        self._processed.put(_END)

    def _output(self) -> None:
        sink: Sink | None = None
        try:
            while True:
                frame = self._processed.get()
                if frame is _END or self._stopped.is_set():
                    return
                for sink in self.sinks:
                    sink.write(frame)
                done = time.monotonic()
                with self._lock:
                    self._frames_out += 1
                    self._t_last = done
                    self._latency_sum += done - frame.captured_at
                    self._latencies.append(done - frame.captured_at)
        except BaseException as e:
            self._fail("output", e, f"{type(sink).__name__}.write" if sink is not None else "")

    # -- running ----------------------------------------------------------------------------------

    def run(self) -> PipelineStats:
        """Run to the end; returns stats, or re-raises the first stage's exception after a clean shutdown."""
        if self._started:
            raise RuntimeError("a Pipeline runs only once; build a new one")
        self._started = True
        on_caller = any(getattr(s, "needs_main_thread", False) for s in self.sinks)
        stages = [("capture", self._capture), ("process", self._process)]
        if not on_caller:
            stages.append(("output", self._output))
        threads = [threading.Thread(target=fn, name=f"pipeline-{name}", daemon=True) for name, fn in stages]
        self._t0 = self._t_last = time.monotonic()
        try:
            for t in threads:
                t.start()
            if on_caller:
                self._output()
            while any(t.is_alive() for t in threads) and not self._stopped.wait(_POLL):
                pass  # short waits keep Ctrl-C deliverable; once stopped, _join bounds the wait
        except KeyboardInterrupt:
            self._halt("interrupted")
        finally:
            self._halt("end")  # no-op for the reason when one is set already
            try:
                self._join(threads)
            finally:
                self._close_sinks()
        if self._error is not None:
            raise self._error
        return self.stats()

    def _join(self, threads: list[threading.Thread]) -> None:
        for t in threads:
            t.join(self.join_timeout)
        capture = threads[0] if threads else None
        if capture is not None and capture.is_alive():
            # The source is stuck in a read (a camera reconnecting): closing it is what unblocks it.
            self._close_source("shutdown")
            capture.join(self.join_timeout)
        for t in threads:
            if t.is_alive():
                log.warning("pipeline thread %s did not stop within %.1f s", t.name, self.join_timeout)

    def _close_source(self, stage: str) -> None:
        """Close the source once: from the capture thread, or from run() if that thread is stuck."""
        with self._lock:
            if self._source_closed:
                return
            self._source_closed = True
        close = getattr(self.source, "close", None)
        if close is None:
            return
        try:
            close()
        except BaseException as e:
            self._fail(stage, e, f"{type(self.source).__name__}.close")

    def _close_sinks(self) -> None:
        """Close every sink once, in order, even when one of them fails; the first failure is reported.

        When the stream did not reach its end (Ctrl-C, a stop, an error), a sink with ``close_early()``
        gets that instead: a video file then keeps only the audio of the frames it got, and one that
        got no frames is removed without an error of its own.
        """
        early = self._stop_reason != "end"
        for sink in self.sinks:
            try:
                close = getattr(sink, "close_early", None) if early else None
                (close or sink.close)()
            except Exception as e:
                if self._error is None:
                    self._fail("output", e, f"{type(sink).__name__}.close")
                else:
                    log.warning("%s.close failed after an earlier error: %s", type(sink).__name__, e)

    def stats(self) -> PipelineStats:
        """Counters so far (thread-safe; callable while running, e.g. for a status line)."""
        with self._lock:
            seconds = max(self._t_last - self._t0, 1e-9)
            lat = sorted(self._latencies)
            out = self._frames_out
            return PipelineStats(
                frames_in=self._frames_in,
                frames_out=out,
                dropped=self._decoded.dropped + self._processed.dropped,
                seconds=seconds if out else 0.0,
                fps=out / seconds if out else 0.0,
                latency_mean_ms=1000 * self._latency_sum / out if out else 0.0,
                latency_p95_ms=1000 * lat[min(len(lat) - 1, int(0.95 * len(lat)))] if lat else 0.0,
                stop_reason=self._stop_reason,
            )
