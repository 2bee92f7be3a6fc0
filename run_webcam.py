#!/usr/bin/env python3
"""Live webcam stylization: ``python run_webcam.py --style a.jpg,b.jpg``.

Opens the default camera and a window; every given style is preloaded, and keys switch between them
live. Optional outputs: a virtual camera (for video calls and streaming software) and a recording.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from engines.errors import StylizeError
from stream.cli import add_model_arguments, build_stylizer, check_model_arguments
from stream.controls import LiveControls, keys_help

EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="run_webcam.py",
        description="Stylize a webcam live. Several styles: --style a.jpg,b.jpg (or a.jpg b.jpg).",
        epilog="keys in the window:\n" + keys_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    c = p.add_argument_group("camera")
    c.add_argument("--camera", default="0", help="camera index or stream URL (default: %(default)s)")
    c.add_argument("--width", type=int, default=1280, help="requested capture width (default: %(default)s)")
    c.add_argument("--height", type=int, default=720, help="requested capture height (default: %(default)s)")
    c.add_argument("--fps", type=float, default=30, help="requested capture rate (default: %(default)s)")
    c.add_argument(
        "--mjpg", action="store_true", help="ask the camera for MJPG (high resolutions at full rate)"
    )
    c.add_argument("--max-side", type=int, metavar="PX", help="stylize at most PX on the longer side")
    o = p.add_argument_group("outputs")
    o.add_argument("--no-window", action="store_true", help="no window (e.g. virtual camera only)")
    o.add_argument("--fullscreen", action="store_true", help="start the window fullscreen")
    o.add_argument(
        "--vcam", action="store_true", help="also send to a virtual camera (pip install '.[vcam]')"
    )
    o.add_argument("--record", metavar="FILE.mp4", help="also record the stylized stream to a file")
    o.add_argument("--overwrite", action="store_true", help="replace an existing recording")
    o.add_argument(
        "--snapshot-dir", default=".", help="where the snapshot key saves PNGs (default: %(default)s)"
    )
    x = p.add_argument_group("live processing")
    x.add_argument("--smooth", action="store_true", help="start with flicker smoothing on")
    x.add_argument(
        "--cuda-graph", action="store_true", help="capture the network in a CUDA graph (torch, CUDA)"
    )
    x.add_argument(
        "--depth",
        type=int,
        help="batches in flight: 1 = lowest latency, 2 = overlap (default: 2 on CUDA, 1 on CPU)",
    )
    x.add_argument("--seconds", type=float, help="stop after this many seconds")
    add_model_arguments(p)
    p.add_argument("-v", "--verbose", action="store_true", help="log what is loaded and where it runs")
    return p


def run(args: argparse.Namespace) -> int:
    import threading

    from stream.cli import target_size
    from stream.display import DisplaySink
    from stream.live import LiveProcess
    from stream.pipeline import Pipeline
    from stream.webcam import WebcamSource

    args.style = [s for item in args.style for s in item.split(",") if s]
    check_model_arguments(args)
    if args.no_window and not (args.vcam or args.record):
        raise StylizeError("--no-window needs another output: --vcam or --record")
    if args.record:
        from stream.video_sink import check_target

        check_target(Path(args.record), args.overwrite)

    camera = WebcamSource(args.camera, width=args.width, height=args.height, fps=args.fps, mjpg=args.mjpg)
    sinks = []
    try:
        h, w = target_size(camera.height, camera.width, None, args.max_side, even=True)
        options = {"cuda_graph": True} if args.cuda_graph else {}
        weights, args.style_weights = args.style_weights, None
        stylizer, styles, engine = build_stylizer(args, resolution=(h, w), **options)
        if weights:  # a mix of all given styles becomes the first choice
            from engines.styles import mix

            styles.insert(0, mix(styles, weights))
            stylizer.stats = styles[0].stats
        controls = LiveControls(
            [s.name for s in styles],
            model_name=engines_label(engine),
            alpha=args.alpha,
            preserve_color=args.preserve_color,
            smoothing=args.smooth,
        )
        stylizer.size = (h, w)
        process = LiveProcess(stylizer, styles, controls, depth=args.depth)
        if args.smooth and not process.smoothing_supported:
            print(f"run_webcam: flicker smoothing needs --backend torch; it is off with {engine.backend}")
        print(
            f"camera {args.camera}: {camera.width}x{camera.height} @ {camera.fps or '?'} fps; "
            f"stylizing {w}x{h} with {engines_label(engine)}"
        )
        if not args.no_window:
            sinks.append(
                DisplaySink(
                    "adain-stream", controls, fullscreen=args.fullscreen, snapshot_dir=args.snapshot_dir
                )
            )
        if args.vcam:
            from stream.vcam import VirtualCameraSink

            sinks.append(VirtualCameraSink(w, h, camera.fps or args.fps))
        if args.record:
            from stream.video_sink import VideoFileSink

            sinks.append(
                VideoFileSink(
                    args.record,
                    width=w,
                    height=h,
                    fps=round(camera.fps or args.fps),
                    overwrite=args.overwrite,
                )
            )
    except BaseException:
        camera.close()
        for s in sinks:
            s.close()
        raise
    pipeline = Pipeline(camera, process, sinks, policy="live")
    if args.seconds:
        threading.Timer(args.seconds, pipeline.stop).start()
    stats = pipeline.run()
    print(
        f"{stats.frames_out} frames in {stats.seconds:.1f} s: {stats.fps:.1f} fps, "
        f"latency {stats.latency_mean_ms:.0f} ms mean / {stats.latency_p95_ms:.0f} ms p95, "
        f"{stats.dropped} stale frames dropped"
    )
    return EXIT_INTERRUPTED if stats.stop_reason == "interrupted" else 0


def engines_label(engine) -> str:
    return f"{engine.model_name} ({engine.backend} {engine.precision}, {engine.device})"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="run_webcam: %(message)s"
    )
    try:
        return run(args)
    except StylizeError as e:
        print(f"run_webcam: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
