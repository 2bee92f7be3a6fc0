"""The ``stylize`` command: stylize pictures and video files, export models, manage engines, benchmark.

Every problem the user can fix is reported as one line on stderr with a non-zero exit code; a
traceback is shown only with ``--debug``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from engines.errors import StylizeError

log = logging.getLogger("stylize")

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


# --- arguments shared by the stylizing commands -------------------------------------------------


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """Model, weights, style and runtime options (also used by run_webcam.py)."""
    from engines.runtimes import BACKENDS
    from engines.weights import DEFAULT_MODEL, REGISTRY

    g = p.add_argument_group("model and style")
    g.add_argument(
        "--model", default=DEFAULT_MODEL, choices=sorted(REGISTRY), help="network (default: %(default)s)"
    )
    g.add_argument(
        "--weights",
        metavar="DIR",
        help="folder with the model's files (else $STYLIZE_WEIGHTS, cache, download)",
    )
    g.add_argument("--style", nargs="+", required=True, metavar="IMAGE", help="style image(s)")
    g.add_argument(
        "--style-weights", nargs="+", type=float, metavar="W", help="mix several styles with these weights"
    )
    g.add_argument(
        "--style-size",
        type=int,
        default=512,
        metavar="PX",
        help="shorter side of the style image when encoded (default: %(default)s; 0 = as is)",
    )
    g.add_argument(
        "--alpha", type=float, default=1.0, help="content–style trade-off in [0, 1] (default: %(default)s)"
    )
    g.add_argument(
        "--preserve-color", action="store_true", help="keep the content's colours (luminance-only transfer)"
    )
    r = p.add_argument_group("runtime")
    r.add_argument(
        "--backend", default="torch", choices=BACKENDS, help="inference backend (default: %(default)s)"
    )
    r.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    r.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "fp32", "fp16"),
        help="auto = fp16 on CUDA, fp32 on CPU",
    )
    r.add_argument("--no-download", action="store_true", help="never download weights")  # fmt: skip


def add_size_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("content size")
    g.add_argument("--size", type=int, metavar="PX", help="scale content so its shorter side is PX")
    g.add_argument(
        "--max-side", type=int, metavar="PX", help="scale content down so its longer side is at most PX"
    )


def check_model_arguments(args: argparse.Namespace) -> None:
    if not 0.0 <= args.alpha <= 1.0:
        raise StylizeError(f"--alpha must be between 0 and 1, got {args.alpha}")
    if args.style_weights is not None:
        if len(args.style_weights) != len(args.style):
            raise StylizeError(
                f"--style-weights has {len(args.style_weights)} values for {len(args.style)} styles"
            )
        if any(w < 0 for w in args.style_weights) or sum(args.style_weights) <= 0:
            raise StylizeError("--style-weights must be non-negative and not all zero")
    for name in ("size", "max_side"):
        value = getattr(args, name, None)
        if value is not None and value < 16:
            raise StylizeError(f"--{name.replace('_', '-')} must be at least 16 pixels, got {value}")
    if args.style_size < 0:
        raise StylizeError(
            f"--style-size must be positive (or 0 for the original size), got {args.style_size}"
        )


def target_size(
    height: int, width: int, size: int | None, max_side: int | None, even: bool = False
) -> tuple[int, int]:
    """Processing size of a frame: ``--size`` sets the shorter side, ``--max-side`` caps the longer."""
    scale = 1.0
    if size:
        scale = size / min(height, width)
    if max_side and max(height, width) * scale > max_side:
        scale = max_side / max(height, width)
    h, w = max(1, round(height * scale)), max(1, round(width * scale))
    if even:  # yuv420p video needs even sides
        h, w = max(2, h - h % 2), max(2, w - w % 2)
    return h, w


def load_styles(bank, paths: list[str]) -> list:
    """Encode (or fetch from the cache) each style image."""
    from stream.images import read_image, read_image_bytes

    return [bank.add(Path(p).stem, read_image(p), read_image_bytes(p)) for p in paths]


def build_stylizer(args: argparse.Namespace, resolution: tuple[int, int] | None = None, **engine_options):
    """Model → style bank → engine → Stylizer from the shared arguments: (stylizer, styles, engine)."""
    from engines.runtimes import make_engine
    from engines.styles import StyleBank, mix
    from engines.stylizer import Stylizer
    from engines.weights import load_model

    model = load_model(args.model, args.weights, download=not args.no_download)
    bank = StyleBank(model, style_size=args.style_size or None)
    styles = load_styles(bank, args.style)
    engine = make_engine(
        args.backend,
        model,
        device=args.device,
        precision=args.precision,
        resolution=resolution,
        **engine_options,
    )
    style = mix(styles, args.style_weights) if len(styles) > 1 or args.style_weights else styles[0]
    log.info(
        "model %s on %s (%s, %s); style: %s",
        model.name,
        engine.device,
        engine.backend,
        engine.precision,
        style.name,
    )
    return Stylizer(engine, style.stats, alpha=args.alpha, preserve_color=args.preserve_color), styles, engine


# --- stylize image ------------------------------------------------------------------------------


def run_image(args: argparse.Namespace) -> int:
    from stream.images import IMAGE_SUFFIXES, list_images, read_image, write_image

    check_model_arguments(args)
    contents = [p for c in args.content for p in list_images(c)]
    out = Path(args.output)
    single_file = len(contents) == 1 and out.suffix.lower() in IMAGE_SUFFIXES
    if single_file:
        targets = [out]
    else:
        if out.suffix.lower() in IMAGE_SUFFIXES:
            raise StylizeError(f"{len(contents)} content images need an output folder, not the file {out}")
        targets = [out / f"{p.stem}_stylized.png" for p in contents]
    for src, dst in zip(contents, targets, strict=True):
        if dst.resolve() == src.resolve():
            raise StylizeError(f"output {dst} is the input file; choose another output name")
        if dst.exists() and not args.overwrite:
            raise StylizeError(f"output file already exists: {dst} (use --overwrite to replace it)")
    stylizer, _, _ = build_stylizer(args)
    if not single_file:
        out.mkdir(parents=True, exist_ok=True)
    for src, dst in zip(contents, targets, strict=True):
        image = read_image(src)
        stylizer.size = target_size(*image.shape[:2], args.size, args.max_side)
        (result,) = stylizer([image])
        write_image(dst, result, overwrite=args.overwrite)
        print(dst)
    return 0


# --- stylize convert ----------------------------------------------------------------------------


def run_convert(args: argparse.Namespace) -> int:
    from stream.gpu_stage import GpuStage
    from stream.pipeline import Pipeline
    from stream.progress import ProgressSink
    from stream.video_sink import VideoFileSink, check_target
    from stream.video_source import VideoFileSource

    check_model_arguments(args)
    check_target(Path(args.output), args.overwrite, args.input)
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
    progress = ProgressSink(total, desc=Path(args.output).name)
    try:
        stats = Pipeline(source, process, [sink, progress], policy="file", batch_size=args.batch).run()
    except StylizeError as e:
        raise StylizeError(f"{e}; {_saved(sink)}") from None
    if source.damaged_packets:
        log.warning("%s: skipped %d damaged packet(s)", args.input, source.damaged_packets)
    if stats.stop_reason == "interrupted":
        print(f"stylize: interrupted; {_saved(sink)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    where = f"{engine.device} ({engine.backend}, {engine.precision})"
    print(f"{args.output}: {stats.frames_out} frames, {stats.fps:.1f} fps on {where}")
    return 0


def _saved(sink) -> str:
    if sink.finalized and sink.frames_written:
        return f"the {sink.frames_written} frames done were saved to {sink.path}"
    return "no output file was written"


# --- entry point --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", help="log what is loaded and where it runs")
    common.add_argument("--debug", action="store_true", help="show tracebacks")
    parser = argparse.ArgumentParser(prog="stylize", description="Real-time arbitrary style transfer.")
    sub = _SubParsers(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"), common)

    p = sub.add_parser("image", help="stylize pictures", description="Stylize pictures (files or folders).")
    p.add_argument("content", nargs="+", help="content image(s) or folder(s)")
    p.add_argument("-o", "--output", required=True, help="output file (one content image) or folder")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    add_model_arguments(p)
    add_size_arguments(p)
    p.set_defaults(func=run_image)

    p = sub.add_parser(
        "convert", help="stylize a video file", description="Stylize a video file, keeping its audio."
    )
    p.add_argument("input", help="input video")
    p.add_argument("output", help="output video (.mp4, .mkv, .mov)")
    p.add_argument("--overwrite", action="store_true", help="replace the output file if it exists")
    p.add_argument(
        "--codec", default="libx264", help="video encoder, e.g. libx264 or h264_nvenc (default: %(default)s)"
    )
    p.add_argument(
        "--crf", type=int, default=18, help="constant quality, lower is better (default: %(default)s)"
    )
    p.add_argument("--no-audio", action="store_true", help="drop the input's audio")
    p.add_argument("--duration", type=float, metavar="SECONDS", help="convert only the first SECONDS")
    p.add_argument("--frames", type=int, metavar="N", help="convert only the first N frames")
    p.add_argument("--batch", type=int, default=1, help="frames per network call (default: %(default)s)")
    add_model_arguments(p)
    add_size_arguments(p)
    p.set_defaults(func=run_convert)

    for hook in _extra_commands():
        hook(sub)
    return parser


class _SubParsers:
    """``add_parser`` that gives every sub-command the common options (-v, --debug)."""

    def __init__(self, action, common: argparse.ArgumentParser):
        self._action, self._common = action, common

    def add_parser(self, name: str, **kwargs) -> argparse.ArgumentParser:
        return self._action.add_parser(name, parents=[self._common], **kwargs)


def _extra_commands():
    """Sub-commands that live next to the code they drive (export, engines, bench)."""
    import importlib

    hooks = []
    for module, name in (
        ("engines.export", "add_export_parser"),
        ("engines.engine_cache", "add_engines_parser"),
        ("benchmarks.bench", "add_bench_parser"),
    ):
        try:
            hooks.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            pass
    return hooks


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    verbose, debug = getattr(args, "verbose", False), getattr(args, "debug", False)
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="stylize: %(message)s")
    try:
        return args.func(args)
    except StylizeError as e:
        print(f"stylize: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("stylize: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:
        if debug:
            raise
        print(
            f"stylize: internal error: {type(e).__name__}: {e} (run with --debug for the traceback)",
            file=sys.stderr,
        )
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
