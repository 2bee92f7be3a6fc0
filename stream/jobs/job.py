"""A job's files, their tasks, and what the manifest says of them: the bookkeeping both runners share.

:meth:`Job.plan_tasks` decides, per file: already done (its output still matches the manifest:
skipped), not convertible (its one-line reason; the other files go on), an existing output that is
not this job's (refused, as ``stylize convert`` refuses it, unless ``overwrite``), or the tasks left
to run: the whole file, or the segments not finished and verified yet (none: the file only waits
for its join, which the runners start first, :meth:`Job.join_ready`). Runners hand each result to
:meth:`Job.record`, which writes the manifest at once, so a job stopped anywhere (Ctrl-C, a crash,
a lost machine) loses at most the tasks that were running.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from engines.errors import StylizeError
from stream.jobs.manifest import Manifest, file_digest, input_identity, matches
from stream.jobs.plan import SEGMENT_SUFFIX, Segment, VideoPlan, can_split, scan_frames, split_segments
from stream.jobs.worker import ConvertWorker, Task, TaskResult

log = logging.getLogger(__name__)


@dataclass
class FileState:
    """One input → one output, through the job."""

    source: Path
    output: Path
    plan: VideoPlan | None = None
    #: pending → done | skipped (already done) | failed
    status: str = "pending"
    reason: str | None = None
    segments: list[Segment] = field(default_factory=list)
    #: finished segments: key → manifest record (file, frames, seconds, worker, size, sha256)
    parts: dict[str, dict] = field(default_factory=dict)
    frames: int = 0
    seconds: float = 0.0
    workers: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return self.output.name


class Job:
    """The files of one run. ``plans`` has, per input, its :class:`VideoPlan` or the StylizeError that
    stopped it being planned; ``settings`` fingerprints everything that changes the output's pixels."""

    def __init__(
        self,
        plans: Sequence[tuple[Path, Path, VideoPlan | StylizeError]],
        settings: str,
        overwrite: bool = False,
    ) -> None:
        self.settings = settings
        self.overwrite = overwrite
        self.files: dict[str, FileState] = {}
        self.manifests: dict[Path, Manifest] = {}
        for source, output, plan in plans:
            state = FileState(source, output)
            if isinstance(plan, StylizeError):
                state.reason = str(plan)  # failed (and said) by plan_tasks
            else:
                state.plan = plan
                state.notes += plan.notes
            if state.key in self.files:
                raise ValueError(f"two outputs named {state.key} in one job")
            self.files[state.key] = state
        self.tasks: list[Task] = []
        #: files whose segments were all finished before this run (stopped before their join, or the
        #: join failed): no task will call for their join, so the runners start it (:meth:`join_ready`)
        self.ready: list[FileState] = []

    def manifest(self, state: FileState) -> Manifest:
        folder = state.output.parent
        if folder not in self.manifests:
            self.manifests[folder] = Manifest(folder)
        return self.manifests[folder]

    # --- planning ----------------------------------------------------------------------------------

    def plan_tasks(self, segment_seconds: float = 0.0, warmup: int = 0) -> list[Task]:
        """Decide every file's fate and list the tasks to run (also kept in ``tasks``).

        ``segment_seconds`` > 0 splits videos into segments of that length or more (see
        :func:`stream.jobs.plan.split_segments`);
        ``warmup`` frames before each segment go through the processing stage and are dropped.
        """
        for state in self.files.values():
            if state.plan is None:
                self._fail(state, state.reason or "it could not be planned")
                continue
            entry = self.manifest(state).get(state.key) or {}
            same = entry.get("settings") == self.settings and entry.get("input") == self._identity(state)
            if same and entry.get("status") == "done" and matches(entry.get("output"), state.output):
                state.status, state.frames = "skipped", entry.get("frames", 0)
                continue
            if state.output.exists() and not self.overwrite:  # refused: its record stays as it was
                # only the wording: the recorded size tells our own output apart without hashing it
                recorded = entry.get("output") or {}
                made_here = not same and recorded.get("size") == state.output.stat().st_size
                why = ", made with other settings or from another version of the input," if made_here else ""
                reason = f"output file already exists: {state.output}{why} (use --overwrite to replace it)"
                self._fail(state, reason, record=False)
                continue
            tasks = self._file_tasks(state, entry if same else {}, segment_seconds, warmup)
            if not tasks:
                self.ready.append(state)
            self.tasks += tasks
        return self.tasks

    def _file_tasks(self, state: FileState, entry: dict, seconds: float, warmup: int) -> list[Task]:
        plan = state.plan
        assert plan is not None
        folder = self.manifest(state).work_dir(state.key)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob(".*.partial*"):  # left by a worker killed mid-task
            stale.unlink(missing_ok=True)
        long_enough = seconds > 0 and (plan.frames is None or plan.frames >= 1.5 * seconds * plan.fps)
        index = scan_frames(plan.input, plan.stream_index) if long_enough and can_split(plan) else None
        segments = split_segments(index, plan.fps, seconds, warmup, plan.limit) if index else []
        if len(segments) < 2:
            return [Task(state.key, state.key, plan, self._whole(state))]
        state.segments = segments
        tasks = []
        for segment in segments:
            record = entry.get("segments", {}).get(segment.key)
            if record and matches(record, folder / record["file"]):
                state.parts[segment.key] = record
                state.frames += record["frames"]
            else:
                target = folder / f"{segment.key}{SEGMENT_SUFFIX}"
                tasks.append(Task(f"{state.key}#{segment.index}", state.key, plan, target, segment))
        return tasks

    # --- results -----------------------------------------------------------------------------------

    def wanted(self, task: Task) -> bool:
        """False once the task's file has failed: its other segments would be wasted work."""
        return self.files[task.file_key].status == "pending"

    def record(self, task: Task, result: TaskResult) -> FileState | None:
        """Take a task's result into the file and the manifest; the file when its segments are all done."""
        state = self.files[task.file_key]
        state.seconds += result.seconds
        if result.worker and result.worker not in state.workers:
            state.workers.append(result.worker)
        state.notes += [n for n in result.notes if n not in state.notes]
        if not result.ok:
            where = f"segment {task.segment.index}: " if task.segment is not None else ""
            self._fail(state, f"{where}{result.reason}")
            return None
        state.frames += result.frames
        if task.segment is None:
            self._deliver(state, task.target, result.digest)
            return None
        state.parts[task.segment.key] = {
            "file": task.target.name, "frames": result.frames, "seconds": round(result.seconds, 3),
            "worker": result.worker, **(result.digest or {}),
        }  # fmt: skip
        self._save(state)
        if state.status == "pending" and len(state.parts) == len(state.segments):
            return state
        return None

    def retrying(self, task: Task, why: str) -> None:
        """A task is run again because its worker was lost (said in the summary)."""
        state = self.files[task.file_key]
        state.notes.append(f"{task.key} retried: {why}")

    def fail(self, task: Task, reason: str) -> None:
        """The task cannot run (its workers kept dying): its file fails with ``reason``."""
        self.record(task, TaskResult(task.key, False, "", reason=reason))

    def join_ready(self) -> None:
        """Join the files whose segments were all finished before this run (see ``ready``)."""
        while self.ready:
            self.join(self.ready.pop(0))

    def join(self, state: FileState) -> None:
        """Join a file's finished segments into its output (no re-encoding) and record it done."""
        from stream.jobs.join import join_segments

        folder = self.manifest(state).work_dir(state.key)
        parts = [(s, folder / state.parts[s.key]["file"]) for s in state.segments]
        whole = self._whole(state)
        try:
            frames = join_segments(state.plan, parts, whole)
        except Exception as e:  # a StylizeError, or a segment FFmpeg cannot read: this file fails, alone
            why = str(e) if isinstance(e, StylizeError) else f"{type(e).__name__}: {e}"
            self._fail(state, f"joining its segments failed: {why}")
            return
        if frames != state.frames:  # cannot happen unless a segment file changed under us
            self._fail(state, f"the joined file has {frames} frames, its segments {state.frames}")
            return
        self._deliver(state, whole, file_digest(whole))

    def _whole(self, state: FileState) -> Path:
        """Where the whole output is written before it is recorded and moved into place."""
        return self.manifest(state).work_dir(state.key) / f"whole{state.output.suffix}"

    def _deliver(self, state: FileState, made: Path, digest: dict | None) -> None:
        """Record the output done, then move it into place: a stop between the two leaves a record
        whose output is missing (redone next time), never an output without a record (refused)."""
        if state.output.exists() and not self.overwrite:
            self._fail(state, f"output file already exists: {state.output} (it appeared while converting; "
                              "use --overwrite to replace it)")  # fmt: skip
            made.unlink(missing_ok=True)
            return
        state.status, state.parts = "done", {}
        self._save(state, output=digest)
        os.replace(made, state.output)
        shutil.rmtree(self.manifest(state).work_dir(state.key), ignore_errors=True)

    # --- the manifest ------------------------------------------------------------------------------

    def _identity(self, state: FileState) -> dict | None:
        return input_identity(state.source) if state.source.is_file() else None

    def _save(self, state: FileState, output: dict | None = None) -> None:
        entry = {
            "input": self._identity(state), "settings": self.settings,
            "status": "incomplete" if state.status == "pending" else state.status,
            "frames": state.frames, "seconds": round(state.seconds, 3), "worker": ",".join(state.workers),
        }  # fmt: skip
        if state.parts:
            entry["segments"] = state.parts
        if state.status == "failed":
            entry["reason"] = state.reason
        if output is not None:
            entry["output"] = output
        self.manifest(state).put(state.key, entry)

    def _fail(self, state: FileState, reason: str, record: bool = True) -> None:
        if state.status == "failed":
            return
        state.status, state.reason = "failed", reason
        log.error("%s", reason if state.source.name in reason else f"{state.source.name}: {reason}")
        if record:
            self._save(state)

    # --- counts ------------------------------------------------------------------------------------

    def count(self, status: str) -> int:
        return sum(s.status == status for s in self.files.values())

    @property
    def failed(self) -> int:
        return self.count("failed")


def run_here(job: Job, worker: ConvertWorker, progress) -> None:
    """Run the job's tasks one after another in this process (no Ray); Ctrl-C propagates."""
    job.join_ready()
    progress.files()
    for task in job.tasks:
        if not job.wanted(task):
            continue
        result = worker.convert(task, report=lambda n, key=task.key: progress.running(key, n))
        progress.finished(task.key, result)
        ready = job.record(task, result)
        if ready is not None:
            job.join(ready)
        progress.files()
