"""What a job shows: one progress bar for all its files, and a table of every file at the end."""

from __future__ import annotations

from tqdm import tqdm

from stream.jobs.worker import TaskResult


class JobProgress:
    """One bar for the whole job: frames done over all files, files done, frames per second.

    Frames of a running task count as they are reported; a task whose worker was lost takes its
    frames back, so the bar never counts a frame twice.
    """

    def __init__(self, job, enabled: bool) -> None:
        self._todo = [s for s in job.files.values() if s.status == "pending"]
        total = sum((s.plan.frames or 0) for s in self._todo if s.plan)
        self._done = sum(s.frames for s in self._todo)  # segments finished in an earlier run
        self._running: dict[str, int] = {}
        self._bar = tqdm(
            total=total or None, initial=self._done, unit="frame", dynamic_ncols=True, disable=not enabled,
            desc=f"0/{len(self._todo)} files",
        )  # fmt: skip

    def running(self, key: str, frames: int) -> None:
        """``key``'s task has written ``frames`` so far."""
        self._running[key] = frames
        self._refresh()

    def finished(self, key: str, result: TaskResult | None) -> None:
        """``key``'s task ended (None: its worker was lost, and it will run again)."""
        self._running.pop(key, None)
        if result is not None and result.ok:
            self._done += result.frames
        self._refresh()

    def files(self) -> None:
        """Say how many of the files to convert are finished (converted or failed)."""
        finished = sum(s.status != "pending" for s in self._todo)
        self._bar.set_description(f"{finished}/{len(self._todo)} files", refresh=False)

    def _refresh(self) -> None:
        n = self._done + sum(self._running.values())
        self._bar.update(n - self._bar.n)

    def close(self) -> None:
        self._bar.close()


def summary(job, seconds: float, workers: int) -> str:
    """The table printed at the end: per file its frames, seconds, worker(s) and what came of it."""
    rows = [("file", "frames", "seconds", "worker", "result")]
    for state in job.files.values():
        if state.status == "skipped":
            result = "already done"
        elif state.status == "failed":
            result = f"failed: {state.reason}"
        elif state.status == "pending":  # no output yet (a segment never ran, or the join did not)
            result = "not finished"
        else:
            result = f"converted ({len(state.segments)} segments)" if state.segments else "converted"
        if state.notes and state.status != "skipped":
            result += "; " + "; ".join(state.notes)
        seconds_text = f"{state.seconds:.1f}" if state.status in ("done", "failed") and state.seconds else "-"
        frames_text = str(state.frames) if state.frames else "-"
        rows.append((state.source.name, frames_text, seconds_text, ",".join(state.workers) or "-", result))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    align = (str.ljust, str.rjust, str.rjust, str.ljust)
    lines = ["  ".join([*(fit(r[i], widths[i]) for i, fit in enumerate(align)), r[4]]) for r in rows]
    converted = [s for s in job.files.values() if s.status == "done"]
    skipped = job.count("skipped")
    line = f"{len(job.files)} files: {len(converted)} converted, {skipped} already done, {job.failed} failed"
    if workers:
        frames = sum(s.frames for s in converted)
        fps = f" ({frames / seconds:.1f} fps)" if seconds > 0 and frames else ""
        line += f"; {frames} frames in {seconds:.1f} s{fps} on {workers} worker{'s' if workers != 1 else ''}"
    lines.append(line)
    return "\n".join(lines)
