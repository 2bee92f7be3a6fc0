"""``stylize live`` (and ``run_webcam.py``): stylize a webcam live, in a window, a virtual camera, a file."""

from __future__ import annotations

import argparse
import logging
import threading
from pathlib import Path

from engines.errors import StylizeError
from stream import interrupt
from stream.cli.options import (
    add_model_arguments,
    add_size_arguments,
    add_temporal_arguments,
    build_stylizer,
    check_model_arguments,
    check_video_output,
    engine_label,
)
from stream.controls import keys_help

log = logging.getLogger("stylize")

NAME = "live"
HELP = "stylize a webcam live"
DESCRIPTION = (
    "Stylize a webcam live. Every style given is preloaded; keys switch between them. "
    "Several styles: --style a.jpg,b.jpg (or a.jpg b.jpg)."
)
EXAMPLES = f"""examples:
  stylize live --style starry.jpg,la_muse.jpg,mondrian.jpg
  stylize live --style a.jpg --camera 1 --width 1920 --height 1080 --mjpg --max-side 1280
  stylize live --style a.jpg,b.jpg --vcam --record session.mp4
  stylize live --style a.jpg --temporal --backend onnxruntime

keys in the window:
{keys_help()}"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    c = p.add_argument_group("camera")
    c.add_argument("--camera", default="0", help="camera index or stream URL (default: %(default)s)")
    c.add_argument("--width", type=int, default=1280, help="requested capture width (default: %(default)s)")
    c.add_argument("--height", type=int, default=720, help="requested capture height (default: %(default)s)")
    c.add_argument("--fps", type=float, default=30, help="requested capture rate (default: %(default)s)")
    c.add_argument(
        "--mjpg", action="store_true", help="ask the camera for MJPG (high resolutions at full rate)"
    )
    c.add_argument(
        "--loop", action="store_true",
        help="with a video file as --camera: play it over and over (default: once, then stop)",
    )  # fmt: skip
    o = p.add_argument_group("outputs")
    o.add_argument("--no-window", action="store_true", help="no window (e.g. virtual camera only)")
    o.add_argument("--fullscreen", action="store_true", help="start the window fullscreen")
    o.add_argument(
        "--vcam", action="store_true", help='also send to a virtual camera (pip install -e ".[vcam]")'
    )
    o.add_argument("--record", metavar="FILE.mp4", help="also record the stylized stream to a file")
    o.add_argument("--overwrite", action="store_true", help="replace an existing recording")
    o.add_argument(
        "--snapshot-dir", default=".", help="where the snapshot key saves PNGs (default: %(default)s)"
    )
    x = p.add_argument_group("live processing")
    x.add_argument("--smooth", action="store_true", help="start with flicker smoothing on")
    x.add_argument(
        "--depth", type=int,
        help="batches in flight: 1 = lowest latency, 2 = overlap (default: 2 on CUDA, 1 on CPU)",
    )  # fmt: skip
    x.add_argument("--seconds", type=float, help="stop after this many seconds")
    add_model_arguments(p, style_help="style image(s); a.jpg,b.jpg also works")
    add_size_arguments(p, size=False)
    add_temporal_arguments(p)


def run(args: argparse.Namespace) -> int:
    from engines.styles import mix
    from engines.stylizer import target_size
    from stream.controls import LiveControls
    from stream.display import DisplaySink
    from stream.live import CaptureTimedSink, LiveProcess
    from stream.pipeline import Pipeline
    from stream.webcam import WebcamSource

    args.style = [s for item in args.style for s in item.split(",") if s]
    check_model_arguments(args)
    if args.no_window and not (args.vcam or args.record):
        raise StylizeError("--no-window needs another output: --vcam or --record")
    if args.record:
        check_video_output(args.record, args.overwrite)
    if args.loop and not Path(args.camera).is_file():
        raise StylizeError(f"--loop is for a video file given as --camera; {args.camera!r} is not a file")

    camera = WebcamSource(
        args.camera, width=args.width, height=args.height, fps=args.fps, mjpg=args.mjpg, loop=args.loop
    )
    sinks = []
    try:
        h, w = target_size(camera.height, camera.width, None, args.max_side, even=True)
        stylizer, styles, engine = build_stylizer(args, resolution=(h, w), mix_styles=False)
        if args.style_weights:  # a mix of all given styles becomes the first choice
            styles.insert(0, mix(styles, args.style_weights))
            stylizer.stats = styles[0].stats
        controls = LiveControls(
            [s.name for s in styles],
            model_name=engine_label(engine),
            alpha=args.alpha,
            preserve_color=args.preserve_color,
            smoothing=args.smooth,
            temporal=args.temporal,
        )
        stylizer.size = (h, w)
        process = LiveProcess(stylizer, styles, controls, depth=args.depth, temporal_flow=args.temporal_flow)
        if args.smooth and not engine.supports_content_hook:
            log.warning("flicker smoothing needs --backend torch; it is off with %s", engine.backend)
        print(
            f"camera {args.camera}: {camera.width}x{camera.height} @ {camera.fps or '?'} fps; "
            f"stylizing {w}x{h} with {engine_label(engine)}"
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

            rate = round(camera.fps or args.fps)
            recording = VideoFileSink(args.record, width=w, height=h, fps=rate, overwrite=args.overwrite)
            sinks.append(CaptureTimedSink(recording))
    except BaseException:
        camera.close()
        for s in sinks:
            s.close()
        raise
    pipeline = Pipeline(camera, process, sinks, policy="live")
    timer = None
    if args.seconds:
        timer = threading.Timer(args.seconds, pipeline.stop)
        timer.daemon = True  # an early quit must not wait for it
        timer.start()
    try:
        stats = pipeline.run()
    finally:
        if timer is not None:
            # Wait for its thread to end: else, holding the pipeline through pipeline.stop, it can drop
            # the last reference to the model's tensors while the interpreter shuts down, and freeing a
            # tensor there aborts the process ("terminate called without an active exception").
            timer.cancel()
            timer.join()
    print(
        f"{stats.frames_out} frames in {stats.seconds:.1f} s: {stats.fps:.1f} fps, "
        f"latency {stats.latency_mean_ms:.0f} ms mean / {stats.latency_p95_ms:.0f} ms p95, "
        f"{stats.dropped} stale frames dropped"
    )
    return interrupt.exit_code() if stats.stop_reason == "interrupted" else 0
