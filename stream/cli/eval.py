"""``stylize eval``: how steady and how stylized a stylized video is (warping error, style distance)."""

from __future__ import annotations

import argparse
from pathlib import Path

from engines.errors import StylizeError

NAME = "eval"
HELP = "measure a stylized video: warping error (temporal consistency) and style distance"
DESCRIPTION = (
    "Compare a stylized video with its input: the warping error of Lai et al. (ECCV 2018) — the previous "
    "output frame warped along the input's optical flow onto the next, squared RGB distance averaged over "
    "the pixels not occluded; lower is steadier — next to the input's own (the floor: flow errors alone), "
    "and with --style the VGG-16 style distance of the frames to the style image (lower is more stylized)."
)
EXAMPLES = """examples:
  stylize eval in.mp4 out.mp4
  stylize eval in.mp4 out.mp4 --style starry.jpg --frames 96
  stylize eval in.mp4 out.mp4 --flow farneback          (a second flow estimator, as a cross-check)"""

#: Frames the style distance samples (evenly spread): VGG-16 costs about a second per 480p frame on a CPU.
STYLE_SAMPLES = 12


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="the video that was stylized")
    p.add_argument("output", help="the stylized video (any size: the input is scaled to it)")
    p.add_argument("--style", metavar="IMAGE", help="the style image: also report the style distance")
    p.add_argument("--frames", type=int, metavar="N", help="only the first N frames")
    p.add_argument(
        "--flow", default="dis", choices=("dis", "farneback"),
        help="the metric's optical flow: OpenCV DIS 'medium' at full size, or Farneback "
        "(default: %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--metric-weights", metavar="PATH",
        help="VGG-16 metric weights (file or folder; default: $STYLIZE_WEIGHTS or the cache, "
        "under vgg16-imagenet/)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    import cv2

    from engines.metrics import StyleMeter, VGG16Features, find_vgg16
    from engines.warping import WarpingError
    from stream.images import read_image
    from stream.video_source import VideoFileSource

    if args.frames is not None and args.frames < 2:
        raise StylizeError(f"--frames must be at least 2 (the error is over pairs), got {args.frames}")
    sources = []
    try:
        for path in (args.input, args.output):
            source = VideoFileSource(path, max_frames=args.frames)
            sources.append(source)
            if source.still_image:
                raise StylizeError(f"{Path(path).name} is a still image, not a video")
        src_in, src_out = sources
        style_meter = None
        if args.style:
            style = read_image(args.style)
            style_meter = StyleMeter(VGG16Features.load(find_vgg16(args.metric_weights)), style)
            input_meter = StyleMeter(style_meter.net, style)
        total = min(n for n in (src_in.frame_count, src_out.frame_count, args.frames) if n) or 0
        every = max(1, total // STYLE_SAMPLES) if total else 8
        meter = WarpingError(args.flow)
        size = (src_out.width, src_out.height)
        n = 0
        for f_in, f_out in zip(src_in, src_out, strict=False):
            image = f_in.image
            if image.shape[1::-1] != size:
                image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            meter.add(image, image, f_out.image)
            if style_meter is not None and n % every == every // 2:
                style_meter.add(f_out.image)
                input_meter.add(image)
            n += 1
    finally:
        for source in sources:
            source.close()
    if n < 2:
        raise StylizeError("the warping error needs at least two frames in both videos")
    result = meter.result()
    floor, error = result.errors
    counts = (src_in.frame_count, src_out.frame_count)
    differ = args.frames is None and all(counts) and counts[0] != counts[1]
    note = f" (the input has {counts[0]}, the output {counts[1]}: the first {n} compared)" if differ else ""
    print(f"{args.output} vs {args.input}: {n} frames{note}, {size[0]}x{size[1]}, flow {args.flow}")
    times = f"{error / floor:.1f}× the input's" if floor > 0 else "the input's is 0"
    print(f"  warping error   {error:.5f}   ({times}: {floor:.5f}; {result.coverage:.0%} of pixels scored)")
    if style_meter is not None and style_meter.distances:
        print(
            f"  style distance  {style_meter.mean:.4g}   (to {Path(args.style).name}, VGG-16, "
            f"{len(style_meter.distances)} frames; the input's: {input_meter.mean:.4g})"
        )
    return 0
