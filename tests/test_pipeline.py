"""The threaded pipeline: ordering, back-pressure, dropping stale frames, and shutdown on every path.

Real threads and real timing, but the only wall-clock asserts are generous upper bounds (a stage
error must surface within seconds, not hang).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from media import CLIP_FRAMES, CLIP_SIZE
from stream.frames import Frame
from stream.pipeline import Pipeline, StopPipeline

DEADLINE = 5.0  # seconds within which any failure must have stopped everything


def _image(i: int) -> np.ndarray:
    return np.full((8, 8, 3), i % 256, np.uint8)


class ListSource:
    """Frames made on demand (fresh ``captured_at``), optionally at a camera-like rate, forever if n=None."""

    def __init__(self, n: int | None, interval: float = 0.0, fail_at: int | None = None) -> None:
        self.n, self.interval, self.fail_at = n, interval, fail_at
        self.produced = 0
        self.closed = 0

    def __iter__(self) -> Iterator[Frame]:
        i = 0
        while self.n is None or i < self.n:
            if i == self.fail_at:
                raise RuntimeError("boom in the source")
            if self.interval:
                time.sleep(self.interval)
            self.produced += 1
            yield Frame(_image(i), i)
            i += 1

    def close(self) -> None:
        self.closed += 1


class RecordingSink:
    def __init__(
        self,
        delay: float = 0.0,
        fail_at: int | None = None,
        stop_after: int | None = None,
        interrupt_after: int | None = None,
        main_thread: bool = False,
        log: list | None = None,
    ) -> None:
        self.delay, self.fail_at = delay, fail_at
        self.stop_after, self.interrupt_after = stop_after, interrupt_after
        self.needs_main_thread = main_thread
        self.log = log
        self.frames: list[Frame] = []
        self.latencies: list[float] = []
        self.closed = 0
        self.threads: set[str] = set()

    def write(self, frame: Frame) -> None:
        self.latencies.append(time.monotonic() - frame.captured_at)
        self.threads.add(threading.current_thread().name)
        if len(self.frames) == self.fail_at:
            raise ValueError("boom in the sink")
        if self.delay:
            time.sleep(self.delay)
        self.frames.append(frame)
        if self.log is not None:
            self.log.append((id(self), frame.index))
        if self.stop_after is not None and len(self.frames) >= self.stop_after:
            raise StopPipeline
        if self.interrupt_after is not None and len(self.frames) >= self.interrupt_after:
            raise KeyboardInterrupt  # what Ctrl-C looks like when it lands inside a main-thread sink

    def close(self) -> None:
        self.closed += 1


def invert(frames: list[Frame]) -> list[Frame]:
    return [f.with_image(255 - f.image) for f in frames]


def pipeline_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("pipeline-")]


@pytest.fixture(autouse=True)
def _no_leftover_threads():
    yield
    assert pipeline_threads() == [], "a pipeline thread outlived run()"


# -- file policy ----------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [1, 3])
def test_file_policy_keeps_every_frame_in_order(batch_size: int) -> None:
    source, sink = ListSource(50), RecordingSink()
    stats = Pipeline(source, invert, [sink], policy="file", batch_size=batch_size).run()

    assert [f.index for f in sink.frames] == list(range(50))
    assert all(np.array_equal(f.image, 255 - _image(f.index)) for f in sink.frames)
    assert (stats.frames_in, stats.frames_out, stats.dropped, stats.stop_reason) == (50, 50, 0, "end")
    assert stats.fps > 0 and stats.latency_mean_ms >= 0 and stats.latency_p95_ms >= 0
    assert (source.closed, sink.closed) == (1, 1)


def test_file_policy_applies_back_pressure() -> None:
    """A slow sink slows the source down instead of letting frames pile up in memory."""
    source = ListSource(40)
    backlog: list[int] = []

    class Slow(RecordingSink):
        def write(self, frame: Frame) -> None:
            backlog.append(source.produced - len(self.frames))
            super().write(frame)

    sink = Slow(delay=0.005)
    Pipeline(source, invert, [sink], policy="file", queue_size=2).run()
    assert len(sink.frames) == 40
    # two queues of 2, one frame in each stage's hands, one the generator has made but not handed over
    assert max(backlog) <= 2 + 2 + 3 + 1


def test_every_sink_gets_every_frame_in_sink_order() -> None:
    log: list = []
    a, b = RecordingSink(log=log), RecordingSink(log=log)
    Pipeline(ListSource(10), invert, [a, b]).run()
    assert log == [(id(s), i) for i in range(10) for s in (a, b)]
    assert (a.closed, b.closed) == (1, 1)


def test_file_policy_on_a_real_video(clip: Path) -> None:
    video_source = pytest.importorskip("stream.video_source")
    with video_source.VideoFileSource(clip) as probe:
        expected = [(f.index, f.pts) for f in probe]
    source, sink = video_source.VideoFileSource(clip), RecordingSink()
    stats = Pipeline(source, invert, [sink], policy="file", batch_size=4).run()
    assert [(f.index, f.pts) for f in sink.frames] == expected
    assert stats.frames_out == len(expected) == CLIP_FRAMES and stats.dropped == 0
    assert sink.frames[0].image.shape == (CLIP_SIZE[1], CLIP_SIZE[0], 3)


# -- live policy ----------------------------------------------------------------------------------


def test_live_policy_drops_stale_frames_and_keeps_latency_bounded() -> None:
    sink_interval = 0.05
    source = ListSource(None, interval=0.002)  # a ~500 fps "camera", ten times faster than the sink
    sink = RecordingSink(delay=sink_interval, stop_after=12)
    stats = Pipeline(source, invert, [sink], policy="live").run()

    assert stats.stop_reason == "stopped"
    assert stats.dropped > 0 and stats.frames_in > stats.frames_out
    indices = [f.index for f in sink.frames]
    assert indices == sorted(indices) and indices[-1] - indices[0] > len(indices)  # skipped, never reordered
    # What reaches the sink is recent: it waited at most about one sink write, not a growing backlog.
    assert max(sink.latencies[1:]) <= 2 * sink_interval + 0.05
    assert (source.closed, sink.closed) == (1, 1)


def test_live_policy_does_not_drop_when_everything_keeps_up() -> None:
    sink = RecordingSink()
    stats = Pipeline(ListSource(20, interval=0.005), invert, [sink], policy="live").run()
    assert [f.index for f in sink.frames] == list(range(20)) and stats.dropped == 0


# -- failures and stops ---------------------------------------------------------------------------


def _failing_process(frames: list[Frame]) -> list[Frame]:
    if frames[0].index >= 5:
        raise RuntimeError("boom in process")
    return frames


@pytest.mark.parametrize("policy", ["file", "live"])
@pytest.mark.parametrize(
    "stage, main_thread_sink",
    [("capture", False), ("process", False), ("output", False), ("output", True)],
)
def test_an_error_in_any_stage_surfaces_and_stops_everything(
    stage: str, main_thread_sink: bool, policy: str
) -> None:
    # An endless source: without error propagation this run would never end.
    source = ListSource(None, interval=0.001, fail_at=5 if stage == "capture" else None)
    process = _failing_process if stage == "process" else invert
    sink = RecordingSink(fail_at=3 if stage == "output" else None, main_thread=main_thread_sink)
    start = time.monotonic()
    with pytest.raises((RuntimeError, ValueError), match="boom") as info:
        Pipeline(source, process, [sink], policy=policy).run()

    assert time.monotonic() - start < DEADLINE
    assert info.value.pipeline_stage == stage
    assert any(stage in note for note in getattr(info.value, "__notes__", [stage]))
    assert pipeline_threads() == []
    assert (source.closed, sink.closed) == (1, 1)
    if main_thread_sink:
        assert sink.threads == {threading.main_thread().name}


def test_a_source_stuck_in_a_read_is_closed_to_unblock_it() -> None:
    """A camera waiting to reconnect blocks in next(); after the grace period run() closes it."""

    class StuckSource:
        def __init__(self) -> None:
            self.closed = threading.Event()

        def __iter__(self) -> Iterator[Frame]:
            yield Frame(_image(0), 0)
            self.closed.wait()  # stands in for a read that only close() interrupts

        def close(self) -> None:
            self.closed.set()

    def fail(frames: list[Frame]) -> list[Frame]:
        raise RuntimeError("boom in process")

    source = StuckSource()
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="boom"):
        Pipeline(source, fail, [RecordingSink()], join_timeout=0.3).run()
    assert time.monotonic() - start < DEADLINE
    assert source.closed.is_set()


def test_a_close_error_is_reported_after_closing_every_sink() -> None:
    class BadClose(RecordingSink):
        def close(self) -> None:
            super().close()
            raise OSError("disk full while finalizing")

    bad, good = BadClose(), RecordingSink()
    with pytest.raises(OSError, match="disk full"):
        Pipeline(ListSource(3), invert, [bad, good]).run()
    assert (bad.closed, good.closed) == (1, 1)


@pytest.mark.parametrize("main_thread_sink", [False, True])
def test_a_sink_can_stop_the_pipeline(main_thread_sink: bool) -> None:
    source, sink = ListSource(None, interval=0.001), RecordingSink(stop_after=4, main_thread=main_thread_sink)
    stats = Pipeline(source, invert, [sink], policy="live").run()
    assert stats.stop_reason == "stopped" and len(sink.frames) == 4
    assert (source.closed, sink.closed) == (1, 1)


def test_stop_from_another_thread() -> None:
    source, sink = ListSource(None, interval=0.001), RecordingSink()
    pipeline = Pipeline(source, invert, [sink], policy="file")
    timer = threading.Timer(0.2, pipeline.stop)
    timer.start()
    stats = pipeline.run()
    timer.join()
    assert stats.stop_reason == "stopped" and stats.frames_out > 0
    assert (source.closed, sink.closed) == (1, 1)


def test_ctrl_c_inside_a_main_thread_sink_is_a_clean_stop() -> None:
    source, sink = ListSource(None, interval=0.001), RecordingSink(interrupt_after=3, main_thread=True)
    stats = Pipeline(source, invert, [sink], policy="live").run()
    assert stats.stop_reason == "interrupted" and len(sink.frames) == 3
    assert (source.closed, sink.closed) == (1, 1)


def test_real_sigint_while_run_waits_is_a_clean_stop() -> None:
    """A real Ctrl-C: SIGINT to this process while the main thread waits in run()."""
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT is not Python's default KeyboardInterrupt handler here")
    source, sink = ListSource(None, interval=0.001), RecordingSink(delay=0.001)
    pipeline = Pipeline(source, invert, [sink], policy="file")
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        stats = pipeline.run()
    finally:
        timer.cancel()
    assert stats.stop_reason == "interrupted" and stats.frames_out > 0
    assert (source.closed, sink.closed) == (1, 1)


def test_a_pipeline_runs_once() -> None:
    pipeline = Pipeline(ListSource(1), invert, [RecordingSink()])
    pipeline.run()
    with pytest.raises(RuntimeError, match="once"):
        pipeline.run()
