"""How one measurement is taken.

- **model** (:func:`bench_model`): the engine alone on a frame already on the device (padded as the
  Stylizer pads it). Warm-up runs are discarded, then each timed run is bracketed by a pair of CUDA
  events (GPU time between the events on the stream, so a launch-bound engine shows its idle gaps) or
  by ``time.perf_counter`` on the CPU. Median FPS = 1 / median latency; p50/p95 latency in ms.
- **e2e** (:func:`bench_e2e`): decode → resize → stylize → encode of a real video through
  :class:`stream.pipeline.Pipeline` (with the double-buffered :class:`stream.gpu_stage.GpuStage` on
  CUDA) to a temporary file; FPS = frames written / wall time of the run (encoder flush included,
  model load and one warm-up frame excluded).
- **serial** and **pipeline** (:func:`serial_fps`, :func:`pipeline_fps`): the same pre-decoded frames
  through a synchronous loop and through Pipeline + GpuStage, no decode or encode, so what the stage
  gains over the loop is all that differs (the GPU check reports both).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch


def latency_stats(seconds: Sequence[float]) -> dict:
    """Median FPS and p50/p95/mean latency (ms) of per-frame times; percentiles interpolate linearly."""
    ms = np.asarray(seconds, dtype=np.float64) * 1000
    if ms.size == 0 or not np.all(ms > 0):
        raise ValueError("need at least one positive timing")
    p50, p95 = np.percentile(ms, [50, 95])
    return {"fps": 1000 / p50, "p50_ms": float(p50), "p95_ms": float(p95), "mean_ms": float(ms.mean())}


def time_runs(fn, warmup: int, repeats: int, cuda: bool) -> list[float]:
    """Seconds per call of ``fn`` over ``repeats`` timed calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    if not cuda:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return times
    torch.cuda.synchronize()
    events = [
        (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(repeats)
    ]
    for start, end in events:
        start.record()
        fn()
        end.record()
    torch.cuda.synchronize()
    return [start.elapsed_time(end) / 1000 for start, end in events]


def bench_model(engine, stats: dict, size: tuple[int, int], warmup: int, repeats: int) -> dict:
    """Model-only latency of one frame of ``size`` already on the engine's device."""
    from engines.stylizer import pad_to_multiple

    w, h = size
    g = torch.Generator().manual_seed(1)
    content = pad_to_multiple(torch.rand(1, 3, h, w, generator=g), engine.multiple).to(engine.device)
    cuda = engine.device.type == "cuda"
    times = time_runs(lambda: engine.run(content, stats, 1.0), warmup, repeats, cuda)
    return {**latency_stats(times), "repeats": repeats, "warmup": warmup}


def make_process(stylizer, depth: int | None = None):
    """The CLI's stage: GpuStage (double-buffered on CUDA, synchronous on the CPU unless ``depth``)."""
    from stream.gpu_stage import GpuStage

    return GpuStage(stylizer, depth=depth)


def bench_e2e(stylizer, video: dict, size: tuple[int, int], frames: int, codec: str) -> dict:
    """Decode → stylize → encode ``frames`` frames at ``size`` through the real Pipeline; wall-clock FPS."""
    from stream.pipeline import Pipeline
    from stream.video_sink import VideoFileSink
    from stream.video_source import VideoFileSource

    w, h = size
    stylizer.size = (h, w)
    stylizer([np.zeros((video["height"], video["width"], 3), np.uint8)])  # first-frame costs excluded
    with tempfile.TemporaryDirectory(prefix="stylize-bench-") as tmp:
        sink = VideoFileSink(
            Path(tmp) / "out.mp4",
            width=w,
            height=h,
            fps=video["fps"],
            time_base=video["time_base"],
            codec=codec,
            crf=18,
        )
        source = VideoFileSource(video["path"], max_frames=frames)  # scaled on the device, as in the CLI
        pipeline = Pipeline(source, make_process(stylizer), [sink])
        t0 = time.perf_counter()
        stats = pipeline.run()
        seconds = time.perf_counter() - t0
    written = sink.frames_written
    return {
        "fps": written / seconds,
        "frames": written,
        "seconds": seconds,
        "latency_p95_ms": stats.latency_p95_ms,
        "codec": codec,
    }


class _ListSource:
    """Pre-decoded images as frames, each stamped when it enters the pipeline."""

    def __init__(self, images: Sequence[np.ndarray]):
        self.images = images

    def __iter__(self) -> Iterator:
        from stream.frames import Frame

        return (Frame(image, i) for i, image in enumerate(self.images))

    def close(self) -> None:
        pass


class _NullSink:
    """Discards frames: the Pipeline counts them."""

    def write(self, frame) -> None:
        pass

    def close(self) -> None:
        pass


def serial_fps(stylizer, images: Sequence[np.ndarray]) -> dict:
    """A synchronous loop (frame → Stylizer → uint8 result on the host): the baseline the stage beats."""
    stylizer([images[0]])
    t0 = time.perf_counter()
    for image in images:
        stylizer([image])
    seconds = time.perf_counter() - t0
    return {"fps": len(images) / seconds, "frames": len(images), "seconds": seconds}


def pipeline_fps(stylizer, images: Sequence[np.ndarray], depth: int | None = None) -> dict:
    """The same frames through Pipeline + GpuStage(depth) into a counting sink (no decode, no encode).

    Timed by the pipeline itself, start to last frame out: its thread start-up and shutdown are
    fixed costs that say nothing about the stage's throughput.
    """
    from stream.pipeline import Pipeline

    stylizer([images[0]])
    stage = make_process(stylizer, depth)
    stats = Pipeline(_ListSource(images), stage, [_NullSink()]).run()
    return {
        "fps": stats.fps,
        "frames": stats.frames_out,
        "seconds": stats.seconds,
        "latency_p95_ms": stats.latency_p95_ms,
        "depth": stage.depth,
    }


def pick_codec(cuda: bool) -> str:
    """The encoder an end-to-end run uses: NVENC on a GPU machine where it really opens, else libx264.

    NVENC keeps encoding off the CPU, which is what a GPU user runs; it needs the driver's encode
    library, so it is tried, not assumed.
    """
    if not cuda:
        return "libx264"
    import av

    try:
        ctx = av.CodecContext.create("h264_nvenc", "w")
        ctx.width, ctx.height, ctx.pix_fmt, ctx.time_base = 256, 256, "yuv420p", Fraction(1, 30)
        ctx.open()
    except (av.FFmpegError, ValueError):  # not built in, or no NVIDIA encoder/driver here
        return "libx264"
    return "h264_nvenc"
