"""``stylize convert``: stylize a video file, keeping its audio and timing."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from engines.errors import StylizeError
from stream import interrupt
from stream.cli import convert_many
from stream.cli.options import (
    add_model_arguments,
    add_size_arguments,
    add_temporal_arguments,
    build_stylizer,
    check_model_arguments,
    check_video_output,
    show_progress,
)

log = logging.getLogger("stylize")

NAME = "convert"
HELP = "stylize video files"
DESCRIPTION = (
    "Stylize a video file: same frame count, timing and size, audio copied unchanged. The output is "
    "written to a temporary file and renamed when complete; Ctrl-C (or SIGTERM, SIGHUP) keeps the "
    "frames done so far. Strokes are kept steady from frame to frame (--no-temporal: each frame alone). "
    "Several inputs (files, folders, patterns) go to an output folder, one after another or on Ray "
    "workers (--workers, --ray), and a re-run resumes where the last one stopped."
)
#: ``--temporal`` unless ``--no-temporal``: on Big Buck Bunny it left 0.29× (microast) and 0.19×
#: (adain-cd16x) of the per-frame warping error, style distance ≤ 1.08×, at 0.94× of the FPS (README).
TEMPORAL_DEFAULT = True
EXAMPLES = """examples:
  stylize convert in.mp4 out.mp4 --style la_muse.jpg
  stylize convert in.mp4 out.mp4 --style a.jpg --alpha 0.8 --max-side 1280 --device cuda
  stylize convert in.mov out.mkv --style a.jpg b.jpg --duration 10 --codec libx265 --crf 22
  stylize convert in.mp4 out.mp4 --style a.jpg --no-temporal      (each frame on its own)
  stylize convert clips/ 'more/*.mov' -o stylized/ --style a.jpg --workers 4
  stylize convert film.mp4 film_stylized.mp4 --style a.jpg --ray auto"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.usage = convert_many.USAGE
    p.add_argument(
        "paths", nargs="+", metavar="input and output",
        help="input video(s), folder(s) or patterns, then the output: a video file, or a folder "
        "(several inputs, or a name ending with /); -o gives the output instead",
    )  # fmt: skip
    p.add_argument("-o", "--output", metavar="PATH", help="output file or folder (positionals: all inputs)")
    p.add_argument("--overwrite", action="store_true", help="replace the output file if it exists")
    v = p.add_argument_group("video output")
    v.add_argument(
        "--codec",
        help="video encoder, e.g. libx264, h264_nvenc, libvpx-vp9 (default: libx264; VP9 for .webm)",
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
    add_temporal_arguments(p, default=TEMPORAL_DEFAULT)
    convert_many.add_arguments(p)


def run(args: argparse.Namespace) -> int:
    from stream.gpu_stage import GpuStage
    from stream.jobs.plan import plan_video
    from stream.pipeline import Pipeline
    from stream.progress import ProgressSink
    from stream.video_sink import VideoFileSink
    from stream.video_source import VideoFileSource

    if convert_many.is_job(args):  # many inputs, an output folder, or workers: a resumable job
        return convert_many.run(args)
    check_model_arguments(args)
    output = Path(args.output)
    check_video_output(output, args.overwrite, args.input)
    if args.batch < 1:
        raise StylizeError(f"--batch must be at least 1, got {args.batch}")
    plan = plan_video(  # fails on a bad input before any model loads
        Path(args.input), output, codec=args.codec, crf=args.crf, size=args.size, max_side=args.max_side,
        duration=args.duration, frames=args.frames, audio=not args.no_audio,
    )  # fmt: skip
    for note in plan.notes:
        log.warning("%s", note)
    h, w, limit, total = plan.height, plan.width, plan.limit, plan.frames

    # The output opens before the model loads: container, codec, size, audio and folder fail fast.
    sink = VideoFileSink(
        output, width=w, height=h, fps=plan.fps, time_base=plan.time_base, codec=plan.codec, crf=plan.crf,
        audio_from=args.input if plan.audio else None, whole_audio=plan.whole_audio, overwrite=args.overwrite,
    )  # fmt: skip
    try:
        for source_codec, new_codec in sink.audio_reencoded:
            log.warning(
                "%s files cannot hold %s audio: it is re-encoded to %s",
                output.suffix,
                source_codec,
                new_codec,
            )
        stylizer, _, engine = build_stylizer(args, resolution=(h, w))
        source = VideoFileSource(args.input, max_frames=limit)
    except KeyboardInterrupt:
        sink.abort()
        log.error("%s; no output file was written", interrupt.reason())
        return interrupt.exit_code()
    except BaseException:
        sink.abort()
        raise

    stylizer.size = (h, w)
    process = GpuStage(stylizer)
    progress = ProgressSink(total, desc=output.name, enabled=show_progress(args))
    try:
        stats = Pipeline(source, process, [sink, progress], policy="file", batch_size=args.batch).run()
    except StylizeError as e:
        raise StylizeError(f"{e}; {saved(sink)}") from None
    if source.damaged_packets:
        log.warning("%s: skipped %d damaged packet(s)", args.input, source.damaged_packets)
    if stats.stop_reason == "interrupted":
        log.error("%s; %s", interrupt.reason(), saved(sink))
        return interrupt.exit_code()
    if source.ended_early:
        log.warning(
            "%s ended early: only %d of %s frames could be decoded (cut short or damaged?)",
            args.input, source.frames_decoded, f"about {total}" if total else "the announced",
        )  # fmt: skip
    where = f"{engine.device} ({engine.backend}, {engine.precision})"
    if stylizer.temporal is not None:
        log.info("temporal consistency: %d scene cut(s) started afresh", stylizer.temporal.cuts)
    print(f"{args.output}: {stats.frames_out} frames, {stats.fps:.1f} fps on {where}")
    return 0


def saved(sink) -> str:
    """What an interrupted or failed run left: the playable prefix, or nothing."""
    if sink.finalized and sink.frames_written:
        return f"the {sink.frames_written} frames done were saved to {sink.path}"
    return "no output file was written"
