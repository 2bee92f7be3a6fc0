"""``stylize convert`` over many inputs or many workers: the job's options and its run.

``stylize convert IN OUT`` (one file, no ``--workers``/``--ray``) stays the plain conversion in
:mod:`stream.cli.convert`. Anything else is a job (:mod:`stream.jobs`): several inputs, a folder or
a pattern as input, a folder as output, or workers. A job runs in this process one file after
another, or on Ray (``--workers N``: a local instance; ``--ray ADDRESS``: a cluster), keeps a
manifest in the output folder so that running the same command again resumes it, shows one
progress bar for all files and ends with a table of every file.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import glob
import hashlib
import json
import logging
import os
import time
from pathlib import Path

from engines.errors import StylizeError
from stream import interrupt
from stream.cli.options import build_stylizer, check_model_arguments, show_progress

log = logging.getLogger("stylize")

USAGE = """%(prog)s INPUT OUTPUT --style IMAGE [options]
       %(prog)s INPUT [INPUT ...] FOLDER/ --style IMAGE [options]
       %(prog)s INPUT [INPUT ...] -o FOLDER --style IMAGE [--workers N | --ray ADDRESS] [options]"""

#: Frames run before each segment, their results dropped, when the processing is stateful
#: (``--temporal``): the filter blends 0.9 of the warped history at most, so after 30 frames what the
#: segment's start left in it weighs 0.9^30 ≈ 4 % or less.
WARMUP_FRAMES = 30


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group('many files, many workers (Ray: pip install -e ".[ray]")')
    g.add_argument(
        "--workers", type=int, metavar="N",
        help="run on N workers of a local Ray instance: one per GPU, or an equal share of the CPUs each",
    )  # fmt: skip
    g.add_argument(
        "--ray", metavar="ADDRESS",
        help="run on the Ray cluster at ADDRESS (auto: the cluster this machine is part of); "
        "inputs and output must be at the same path on every machine",
    )  # fmt: skip
    g.add_argument(
        "--segment-seconds", type=float, default=60.0, metavar="S",
        help="on several workers, split videos at keyframes into segments of S seconds or more, the "
        "last at least S/2 (0: never; default: %(default)s)",
    )  # fmt: skip
    g.add_argument(
        "--retries", type=int, default=2, metavar="N",
        help="run a task again up to N times when its worker dies (default: %(default)s)",
    )  # fmt: skip


def is_job(args: argparse.Namespace) -> bool:
    """Split the positionals into inputs and output; True when this is a job, not one plain file.

    One plain file sets ``args.input`` and ``args.output`` (what the single-file path reads); a job
    sets ``args.inputs``, ``args.output`` and ``args.folder`` (whether the output is a folder).
    """
    paths = list(args.paths)
    if args.output is None:
        if len(paths) < 2:
            raise StylizeError(f"no output given for {paths[0]}: stylize convert INPUT OUTPUT, or -o FOLDER")
        args.output = paths.pop()
    out = Path(args.output)
    folder = out.is_dir() or args.output.endswith(("/", os.sep)) or not out.suffix
    one = Path(paths[0])
    single = len(paths) == 1 and not one.is_dir() and (one.exists() or not glob.has_magic(paths[0]))
    if single and not folder and args.workers is None and args.ray is None:
        args.input = paths[0]
        return False
    if not folder and not single:
        raise StylizeError(
            f"several inputs need an output folder, not the file {out} (end a folder's name with /)"
        )
    if out.exists() and not out.is_dir() and folder:
        raise StylizeError(f"{out} is a file without a video suffix; name a video file or a folder")
    args.inputs, args.folder = paths, folder
    return True


def run(args: argparse.Namespace) -> int:
    from engines.optional import require
    from stream.jobs.job import Job
    from stream.jobs.plan import expand_inputs, output_for, plan_video
    from stream.jobs.report import JobProgress, summary

    check_model_arguments(args)
    distributed = args.workers is not None or args.ray is not None
    for name, least in (("batch", 1), ("workers", 1), ("retries", 0), ("segment_seconds", 0)):
        value = getattr(args, name)
        if value is not None and value < least:
            raise StylizeError(f"--{name.replace('_', '-')} must be at least {least}, got {value}")
    if distributed:
        require("ray", "running on workers (--workers, --ray)")  # before any file is probed
    sources = expand_inputs(args.inputs)
    out = Path(args.output)
    targets = [output_for(s, out) for s in sources] if args.folder else [out]
    _check_targets(sources, targets)
    settings = fingerprint(args)  # reads the weights and the styles: a missing one fails before any work

    plans = []
    for source, target in zip(sources, targets, strict=True):
        try:
            plan = plan_video(
                source, target, codec=args.codec, crf=args.crf, size=args.size, max_side=args.max_side,
                duration=args.duration, frames=args.frames, audio=not args.no_audio,
            )  # fmt: skip
        except StylizeError as e:
            plan = e
        else:
            for note in plan.notes:
                log.warning("%s", note)
        plans.append((source, target, plan))
    job = Job(plans, settings, overwrite=args.overwrite)
    job.plan_tasks(segment_seconds=args.segment_seconds if distributed else 0.0, warmup=warmup_frames(args))

    sizes = [p for _, _, p in plans if not isinstance(p, StylizeError)]
    resolution = (max(p.height for p in sizes), max(p.width for p in sizes)) if sizes else None
    make_stylizer = functools.partial(load_stylizer, worker_arguments(args), resolution)
    progress = JobProgress(job, enabled=show_progress(args))
    workers = 0
    t0 = time.monotonic()
    try:
        with _bar_safe_logging(show_progress(args)):
            if job.tasks and distributed:
                from stream.jobs.ray_pool import RayPool

                with RayPool(
                    make_stylizer, workers=args.workers, address=args.ray, device=args.device,
                    batch=args.batch, retries=args.retries, verbose=args.verbose,
                ) as pool:  # fmt: skip
                    workers = len(pool.actors)
                    pool.run(job, progress)
            elif job.tasks:
                from stream.jobs.job import run_here
                from stream.jobs.worker import ConvertWorker

                worker = ConvertWorker(make_stylizer, name="here", batch=args.batch)
                if worker.error:
                    raise StylizeError(worker.error)
                workers = 1
                run_here(job, worker, progress)
            else:  # nothing to convert; segments finished before may still need their join (no worker)
                job.join_ready()
    except KeyboardInterrupt:
        progress.close()
        finished = job.count("done") + job.count("skipped")
        log.error(
            "%s; %d of %d files done (run the same command again to resume)",
            interrupt.reason(), finished, len(job.files),
        )  # fmt: skip
        return interrupt.exit_code()
    finally:
        progress.close()
    print(summary(job, time.monotonic() - t0, workers))
    return 1 if job.failed else 0


def _check_targets(sources: list[Path], targets: list[Path]) -> None:
    """One output per input, none of them an input, the folder made and writable: before any work."""
    seen: dict[Path, Path] = {}
    for source, target in zip(sources, targets, strict=True):
        if target.resolve() in seen:
            raise StylizeError(
                f"{seen[target.resolve()]} and {source} would both be written to {target}; convert them apart"
            )
        seen[target.resolve()] = source
        if target.resolve() == source.resolve():
            raise StylizeError(f"output {target} is the input file; choose another output name")
    from stream.jobs.manifest import WORK_DIR

    folder = targets[0].parent
    try:
        (folder / WORK_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StylizeError(f"cannot write to the output folder {folder}: {e.strerror}") from None


def fingerprint(args: argparse.Namespace) -> str:
    """What the output's pixels depend on, hashed: a re-run with other settings redoes every file.

    The weights count by their contents, as this machine resolves them (downloaded now if need be):
    retrained into the same folder, they make other pixels; the same files moved elsewhere, the same.
    The device is left out on purpose, and with it where ``--temporal``'s optical flow runs
    (``--temporal-flow``): resuming on other hardware is the same conversion.
    """
    from engines.weights import files_fingerprint, resolve
    from stream.images import read_image_bytes

    names = ("model", "style_weights", "style_size", "alpha", "preserve_color", "size",
             "max_side", "backend", "precision", "codec", "crf", "no_audio", "duration", "frames",
             "temporal")  # fmt: skip
    fields = {name: getattr(args, name, None) for name in names}
    paths = resolve(args.model, args.weights, download=not args.no_download, progress=show_progress(args))
    fields["weights"] = files_fingerprint(paths)
    fields["styles"] = [hashlib.sha256(read_image_bytes(p)).hexdigest() for p in args.style]
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:16]


def worker_arguments(args: argparse.Namespace) -> argparse.Namespace:
    """The options a worker builds its stylizer from: plain values (they travel to Ray actors), no bars."""
    values = {k: v for k, v in vars(args).items() if not callable(v)}
    return argparse.Namespace(**{**values, "quiet": True})


def load_stylizer(args: argparse.Namespace, resolution: tuple[int, int] | None) -> tuple:
    """Model → style bank → engine → Stylizer, in the worker's process: ``(stylizer, engine)``."""
    stylizer, _, engine = build_stylizer(args, resolution=resolution)
    return stylizer, engine


def warmup_frames(args: argparse.Namespace) -> int:
    """Only ``--temporal`` keeps state from frame to frame; the worker resets it at each segment."""
    return WARMUP_FRAMES if args.temporal else 0


@contextlib.contextmanager
def _bar_safe_logging(bar: bool):
    """Log lines above the progress bar instead of through it."""
    if not bar:
        yield
        return
    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm(loggers=[logging.getLogger()]):
        yield
