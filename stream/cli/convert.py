"""``stylize convert``: stylize a video file, keeping its audio and timing."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from engines.errors import StylizeError
from stream.cli.options import (
    add_model_arguments,
    add_size_arguments,
    build_stylizer,
    check_model_arguments,
    check_video_output,
    show_progress,
)

log = logging.getLogger("stylize")

NAME = "convert"
HELP = "stylize a video file"
DESCRIPTION = (
    "Stylize a video file: same frame count and timing, audio copied unchanged. The output is written "
    "to a temporary file and renamed when complete; Ctrl-C keeps the frames done so far."
)
EXAMPLES = """examples:
  stylize convert in.mp4 out.mp4 --style la_muse.jpg
  stylize convert in.mp4 out.mp4 --style a.jpg --alpha 0.8 --max-side 1280 --device cuda
  stylize convert in.mov out.mkv --style a.jpg b.jpg --duration 10 --codec libx265 --crf 22"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="input video")
    p.add_argument("output", help="output video (.mp4, .mkv, .mov)")
    p.add_argument("--overwrite", action="store_true", help="replace the output file if it exists")
    v = p.add_argument_group("video output")
    v.add_argument(
        "--codec", default="libx264", help="video encoder, e.g. libx264 or h264_nvenc (default: %(default)s)"
    )
    v.add_argument(
        "--crf", type=int, default=18, help="constant quality, lower is better (default: %(default)s)"
    )
    v.add_argument("--no-audio", action="store_true", help="drop the input's audio")
    v.add_argument("--duration", type=float, metavar="SECONDS", help="convert only the first SECONDS")
    v.add_argument("--frames", type=int, metavar="N", help="convert only the first N frames")
    v.add_argument("--batch", type=int, default=1, help="frames per network call (default: %(default)s)")
    add_model_arguments(p)
    add_size_arguments(p)


def run(args: argparse.Namespace) -> int:
    from engines.stylizer import target_size
    from stream.gpu_stage import GpuStage
    from stream.pipeline import Pipeline
    from stream.progress import ProgressSink
    from stream.video_sink import VideoFileSink
    from stream.video_source import VideoFileSource

    check_model_arguments(args)
    check_video_output(args.output, args.overwrite, args.input)
    if args.batch < 1:
        raise StylizeError(f"--batch must be at least 1, got {args.batch}")
    with VideoFileSource(args.input) as probe:  # fail on a bad input before loading any model
        h, w = target_size(probe.height, probe.width, args.size, args.max_side, even=True)
        fps, time_base, total, has_audio = probe.fps, probe.time_base, probe.frame_count, probe.has_audio
    limit = None
    if args.duration is not None:
        limit = max(1, round(args.duration * fps))
    if args.frames is not None:
        limit = min(limit or args.frames, args.frames)
    total = min(total, limit) if total and limit else (limit or total)

    stylizer, _, engine = build_stylizer(args, resolution=(h, w))
    sink = VideoFileSink(
        args.output, width=w, height=h, fps=fps, time_base=time_base, codec=args.codec, crf=args.crf,
        audio_from=args.input if has_audio and not args.no_audio else None, overwrite=args.overwrite,
    )  # fmt: skip
    source = VideoFileSource(args.input, max_frames=limit)

    stylizer.size = (h, w)
    process = GpuStage(stylizer)
    progress = ProgressSink(total, desc=Path(args.output).name, enabled=show_progress(args))
    try:
        stats = Pipeline(source, process, [sink, progress], policy="file", batch_size=args.batch).run()
    except StylizeError as e:
        raise StylizeError(f"{e}; {saved(sink)}") from None
    if source.damaged_packets:
        log.warning("%s: skipped %d damaged packet(s)", args.input, source.damaged_packets)
    if stats.stop_reason == "interrupted":
        log.error("interrupted; %s", saved(sink))
        return 130
    where = f"{engine.device} ({engine.backend}, {engine.precision})"
    print(f"{args.output}: {stats.frames_out} frames, {stats.fps:.1f} fps on {where}")
    return 0


def saved(sink) -> str:
    """What an interrupted or failed run left: the playable prefix, or nothing."""
    if sink.finalized and sink.frames_written:
        return f"the {sink.frames_written} frames done were saved to {sink.path}"
    return "no output file was written"
