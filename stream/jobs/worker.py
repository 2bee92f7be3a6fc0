"""A worker: the model and the style loaded once, then any number of tasks (a whole file, or a segment).

The same class runs in this process (several inputs, no ``--workers``) and as a Ray actor, one per
GPU or per share of the CPUs (:mod:`stream.jobs.ray_pool`). A task runs the pipeline ``stylize
convert`` runs for one file (decode → stylize → encode), into its output or its segment file.

A task that fails (a damaged file, an output that cannot be written) returns its one-line reason
instead of raising, so the other tasks go on; only Ctrl-C propagates.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from engines.errors import StylizeError
from stream.frames import Frame
from stream.jobs.manifest import file_digest
from stream.jobs.plan import Segment, VideoPlan

#: ``report(frames_done)``: progress of the task running now
Report = Callable[[int], None]
_REPORT_EVERY = 0.25  # seconds between progress reports (each is a message to the driver on Ray)


@dataclass(frozen=True)
class Task:
    """Convert ``plan`` (or only its ``segment``) into ``target``, a file of the job's own folder."""

    key: str
    #: the output file this task is part of (its name in the manifest)
    file_key: str
    plan: VideoPlan
    target: Path
    segment: Segment | None = None


@dataclass(frozen=True)
class TaskResult:
    key: str
    ok: bool
    worker: str
    frames: int = 0
    seconds: float = 0.0
    reason: str | None = None
    #: what the user should hear (damaged packets skipped, a file cut short)
    notes: tuple[str, ...] = ()
    #: the written file's size and sha256 (see :func:`stream.jobs.manifest.file_digest`)
    digest: dict | None = None


class ConvertWorker:
    """Loads the model and the style statistics once (``make_stylizer``), then converts tasks.

    ``make_stylizer()`` returns ``(stylizer, engine)``; it is called here, in the worker's own process,
    so only the recipe travels to a Ray actor. ``make_process(stylizer)`` makes the processing stage
    of one task (default :class:`~stream.gpu_stage.GpuStage`; tests pass one that records frames): a
    fresh one per task, so a stateful stage starts over at every file and segment. ``threads`` sets
    torch's CPU threads (a CPU worker's share of the machine). A failure to load is kept in
    ``info()["error"]`` rather than raised, so the caller can say it in one line.
    """

    def __init__(
        self,
        make_stylizer: Callable[[], tuple],
        make_process: Callable | None = None,
        name: str = "local",
        threads: int | None = None,
        batch: int = 1,
    ) -> None:
        import torch

        if threads:
            torch.set_num_threads(threads)
        self.name = name
        self.batch = batch
        self.make_process = make_process
        self.error: str | None = None
        self.stylizer = self.engine = None
        try:
            self.stylizer, self.engine = make_stylizer()
        except StylizeError as e:
            self.error = str(e)
        except Exception as e:  # noqa: BLE001  a bug or a broken install: said once, by info()
            self.error = f"internal error: {type(e).__name__}: {e}"

    def info(self) -> dict:
        """Who this worker is (for the summary) and whether its model loaded."""
        engine = self.engine
        device = f"{engine.device} ({engine.backend}, {engine.precision})" if engine else None
        return {"name": self.name, "host": socket.gethostname(), "pid": os.getpid(), "device": device,
                "error": self.error}  # fmt: skip

    def convert(self, task: Task, report: Report | None = None) -> TaskResult:
        """Run ``task``; its failure comes back as a result with the reason (Ctrl-C propagates)."""
        t0 = time.monotonic()
        try:
            if self.error:
                raise StylizeError(self.error)
            frames, notes = self._run(task, report)
            digest = file_digest(task.target)
        except StylizeError as e:
            return TaskResult(task.key, False, self.name, seconds=time.monotonic() - t0, reason=str(e))
        except Exception as e:  # noqa: BLE001  one task's bug must not stop the others
            reason = f"internal error: {type(e).__name__}: {e}"
            return TaskResult(task.key, False, self.name, seconds=time.monotonic() - t0, reason=reason)
        return TaskResult(
            task.key, True, self.name, frames=frames, seconds=time.monotonic() - t0, notes=tuple(notes),
            digest=digest,
        )  # fmt: skip

    def _run(self, task: Task, report: Report | None) -> tuple[int, list[str]]:
        from stream.gpu_stage import GpuStage
        from stream.pipeline import Pipeline
        from stream.video_sink import VideoFileSink
        from stream.video_source import VideoFileSource

        plan, segment = task.plan, task.segment
        sink = VideoFileSink(
            task.target, width=plan.width, height=plan.height, fps=plan.fps, time_base=plan.time_base,
            codec=plan.codec, crf=plan.crf, audio_from=plan.input if plan.audio and segment is None else None,
            whole_audio=plan.whole_audio, overwrite=True, keep_partial=False,
        )  # fmt: skip
        try:
            source = VideoFileSource(
                plan.input,
                max_frames=plan.limit if segment is None else None,
                start_pts=segment.decode_from_pts if segment else None,
                end_pts=segment.end_pts if segment else None,
            )
        except BaseException:
            sink.abort()
            raise
        self.stylizer.size = (plan.height, plan.width)
        self.stylizer.reset()  # a stateful stylizer (--temporal) starts over at every file and segment
        process = (self.make_process or GpuStage)(self.stylizer)
        if segment is not None:
            process = SegmentStage(process, segment.start_pts)
        stats = Pipeline(
            source, process, [sink, _Counter(report)], policy="file", batch_size=self.batch
        ).run()
        if stats.stop_reason == "interrupted":
            raise KeyboardInterrupt
        notes = []
        if source.damaged_packets:
            notes.append(f"skipped {source.damaged_packets} damaged packet(s)")
        if segment is not None and stats.frames_out != segment.frames:
            notes.append(f"segment {segment.index}: {stats.frames_out} of {segment.frames} frames decoded")
        if segment is None and source.ended_early:
            notes.append(f"ended early: only {source.frames_decoded} of about {plan.frames} frames decoded")
        return stats.frames_out, notes


class SegmentStage:
    """The processing stage of one segment: warm-up frames go through it, their results are dropped.

    A stateful stage (temporal smoothing) is thereby settled when the segment's first frame comes; the
    frames kept are re-timed to start at 0 (the segment file's own start; the join adds it back).
    """

    def __init__(self, process: Callable[[list[Frame]], list[Frame]], start_pts: int) -> None:
        self.process = process
        self.start_pts = start_pts

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        return self._keep(self.process(frames))

    def flush(self) -> list[Frame]:
        flush = getattr(self.process, "flush", None)
        return self._keep(flush() if flush else [])

    def _keep(self, frames: list[Frame]) -> list[Frame]:
        return [replace(f, pts=f.pts - self.start_pts) for f in frames if f.pts >= self.start_pts]


class _Counter:
    """A sink that reports the frames written so far, a few times a second and once at the end."""

    def __init__(self, report: Report | None) -> None:
        self.report = report
        self.frames = 0
        self._last = 0.0

    def write(self, frame: Frame) -> None:
        self.frames += 1
        now = time.monotonic()
        if self.report is not None and now - self._last >= _REPORT_EVERY:
            self._last = now
            self.report(self.frames)

    def close(self) -> None:
        if self.report is not None:
            self.report(self.frames)
