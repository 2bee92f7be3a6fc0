"""Batch conversion on Ray: frames per second with 1, 2, … workers on this machine, side by side.

Two workloads of the same frames, each as four equal tasks, so the worker counts compare fairly:
``files`` (four clips, each a whole-file task) and ``segments`` (one clip split into four segments
at keyframes, then joined). The clip is the first ``frames`` frames of the video, re-encoded with
keyframes often enough for four equal segments. Every worker count runs in one Ray instance; CPU
workers share the CPUs evenly (2 workers on 2 cores: one thread each), GPU workers take a GPU each.

FPS is frames over the time from the first task handed out to the last output in place (the median
of a few rounds); the start (actors started, model loaded) is reported apart, since a long job pays
it once.
"""

from __future__ import annotations

import functools
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import av

from engines.errors import StylizeError

WORKLOADS = ("files", "segments")
TASKS = 4


def stylizer_recipe(model: str, weights: str | None, device: str, precision: str = "auto"):
    """What each worker builds its stylizer from (a picklable callable, run in the worker)."""
    return functools.partial(_build_stylizer, model, weights, device, precision)


def _build_stylizer(model_name: str, weights: str | None, device: str, precision: str) -> tuple:
    from benchmarks.inputs import load_models, synthetic_style
    from engines.runtimes import make_engine
    from engines.stylizer import Stylizer

    models, notes = load_models([model_name], weights)
    if model_name not in models:
        raise StylizeError(notes[0])
    model = models[model_name]
    engine = make_engine("torch", model, device=device, precision=precision)
    return Stylizer(engine, synthetic_style(model)), engine


def prepare_clip(video: Path, frames: int, folder: Path) -> Path:
    """The first ``frames`` frames of ``video`` as H.264 with a keyframe every ``frames / 16`` frames,
    so the ``segments`` workload splits into four equal segments; no audio."""
    from stream.video_source import VideoFileSource

    path = folder / "clip.mp4"
    with VideoFileSource(video, max_frames=frames) as source, av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=source.fps)
        stream.width, stream.height = source.width - source.width % 2, source.height - source.height % 2
        stream.pix_fmt, stream.time_base = "yuv420p", source.time_base
        stream.codec_context.gop_size = max(1, frames // (4 * TASKS))
        stream.codec_context.options = {"sc_threshold": "0", "crf": "18"}
        for frame in source:
            picture = av.VideoFrame.from_ndarray(frame.image[: stream.height, : stream.width], format="bgr24")
            picture.pts, picture.time_base = frame.pts, frame.time_base
            out.mux(stream.encode(picture))
        out.mux(stream.encode(None))
    return path


def measure(
    video: Path,
    workers: Sequence[int],
    recipe,
    *,
    frames: int,
    size: int | None,
    rounds: int = 3,
    device: str = "auto",
    codec: str = "libx264",
) -> list[dict]:
    """One row per worker count × workload: frames, start seconds, median run seconds of ``rounds``
    runs (the workloads alternate, so a busy moment of a shared machine hits both), FPS, and the
    speed-up over the first worker count."""
    from stream.jobs import ray_pool

    if frames < 4 * TASKS:
        raise StylizeError(f"a scaling run needs at least {4 * TASKS} frames, got {frames}")
    rows = []
    started = ray_pool.connect(workers=max(workers))
    try:
        with tempfile.TemporaryDirectory(prefix="stylize-scaling-") as tmp:
            clip = prepare_clip(video, frames, Path(tmp))
            for count in workers:
                t0 = time.perf_counter()
                with ray_pool.RayPool(recipe, workers=count, device=device, retries=0) as pool:
                    start = time.perf_counter() - t0
                    runs: dict[str, list[tuple[float, int, int]]] = {w: [] for w in WORKLOADS}
                    for r in range(rounds):
                        for workload in WORKLOADS:
                            folder = Path(tmp) / f"{workload}-{count}-{r}"
                            runs[workload].append(_run(pool, clip, workload, frames, size, codec, folder))
                for workload, results in runs.items():
                    seconds, done, tasks = sorted(results)[len(results) // 2]
                    rows.append({"workload": workload, "workers": count, "threads_per_worker": pool.threads,
                                 "tasks": tasks, "frames": done, "rounds": rounds, "start_s": round(start, 2),
                                 "run_s": round(seconds, 2), "fps": round(done / seconds, 2)})  # fmt: skip
    finally:
        if started:
            ray_pool.shutdown()
    for workload in WORKLOADS:
        base = next(r["fps"] for r in rows if r["workload"] == workload)
        for r in rows:
            if r["workload"] == workload:
                r["speedup"] = round(r["fps"] / base, 2)
    return rows


def _run(pool, clip: Path, workload: str, frames: int, size: int | None, codec: str, out: Path) -> tuple:
    """One job of four equal tasks on ``pool``: (seconds, frames, tasks)."""
    from stream.jobs.job import Job
    from stream.jobs.plan import plan_video
    from stream.jobs.report import JobProgress

    out.mkdir()
    n = frames // TASKS if workload == "files" else frames
    targets = [out / f"part{i}.mp4" for i in range(TASKS)] if workload == "files" else [out / "all.mp4"]
    job = Job([(clip, t, plan_video(clip, t, codec=codec, size=size, frames=n)) for t in targets], "scaling")
    fps = job.files[targets[0].name].plan.fps
    job.plan_tasks(segment_seconds=float(n / fps / TASKS) if workload == "segments" else 0.0)
    t0 = time.perf_counter()
    pool.run(job, JobProgress(job, enabled=False))
    seconds = time.perf_counter() - t0
    failed = [s.reason or "" for s in job.files.values() if s.status == "failed"]
    if failed:
        raise StylizeError(f"the scaling run on {len(pool.actors)} workers failed: {'; '.join(failed)}")
    return seconds, sum(s.frames for s in job.files.values()), len(job.tasks)


def table(rows: Sequence[dict]) -> str:
    """The rows side by side, as ``stylize bench --workers`` prints them."""
    columns = (("workload", "workload"), ("workers", "workers"), ("threads", "threads_per_worker"),
               ("tasks", "tasks"), ("frames", "frames"), ("start s", "start_s"), ("run s", "run_s"),
               ("FPS", "fps"), ("speed-up", "speedup"))  # fmt: skip
    cells = [[head for head, _ in columns]]
    cells += [["-" if r.get(key) is None else str(r[key]) for _, key in columns] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join(
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in cells
    )
