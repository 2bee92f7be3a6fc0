"""Temporal consistency benchmark (``stylize bench --temporal``): what ``--temporal`` buys and costs.

Per model, on the first ``frames`` frames of a clip at its own size (default: Big Buck Bunny 480p,
4 s), with the style image given (default: starry_night):

- **speed**: decode → stylize → encode (libx264) through the real Pipeline + GpuStage, as ``stylize
  convert`` runs, without and with the temporal filter, alternately, ``repeats`` times each; FPS =
  frames / wall time, the median of each, and their ratio. Model loading and a first frame at the
  clip's size are excluded (warm-up).
- **quality**, on the frames the first pair of runs produced (before encoding): the warping error
  (:mod:`engines.warping`, DIS "medium" at full size) of the input (its floor), the per-frame and the
  temporal output, and the same with Farneback flow as a cross-check that the method is not judged by
  a flow like its own; the VGG-16 style distance to the style image on 12 frames spread over the clip.
- **cut**: the frames of a clip around a hard cut (cutBunny, frames 225–240, cut at 235), per-frame and
  temporal: the first frame after the cut must equal the per-frame result exactly (no ghost).

Each model gives one row of kind ``temporal`` in the results file.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.results import now

DEFAULT_STYLE = Path("media") / "style" / "starry_night.jpg"
CUT_CLIP = Path("media") / "video" / "cutBunny.mp4"
CUT_FRAMES = (225, 240)  # a window of cutBunny around its hard cut (the first frame of the new shot: 235)
STYLE_SAMPLES = 12


class _Collect:
    """A sink that keeps the frames it is given (the stylizer's exact output, before any encoder)."""

    def __init__(self, keep: bool) -> None:
        self.keep = keep
        self.images: list[np.ndarray] = []

    def write(self, frame) -> None:
        if self.keep:
            self.images.append(frame.image)

    def close(self) -> None:
        pass


def _read(path: Path, first: int, last: int) -> list[np.ndarray]:
    from stream.video_source import VideoFileSource

    with VideoFileSource(path, max_frames=last) as source:
        return [f.image for f in source][first:]


def _convert(stylizer, video: dict, frames: int, keep: bool) -> tuple[float, list[np.ndarray]]:
    """One ``stylize convert``-like run of the first ``frames`` frames; (FPS, the frames if ``keep``)."""
    from stream.gpu_stage import GpuStage
    from stream.pipeline import Pipeline
    from stream.video_sink import VideoFileSink
    from stream.video_source import VideoFileSource

    if stylizer.temporal is not None:
        stylizer.temporal.reset()
    collect = _Collect(keep)
    with tempfile.TemporaryDirectory(prefix="stylize-bench-") as tmp:
        sink = VideoFileSink(
            Path(tmp) / "out.mp4", width=video["width"], height=video["height"], fps=video["fps"],
            time_base=video["time_base"], codec="libx264", crf=18,
        )  # fmt: skip
        source = VideoFileSource(video["path"], max_frames=frames)
        t0 = time.perf_counter()
        Pipeline(source, GpuStage(stylizer), [sink, collect], policy="file").run()
        seconds = time.perf_counter() - t0
    return sink.frames_written / seconds, collect.images


def measure_model(
    name: str,
    model,
    engine,
    video: dict,
    style_path: Path,
    frames: int,
    repeats: int,
    metric_net,
    cut_clip: Path | None,
    log=print,
    flow: str = "host",
) -> dict:
    """The ``temporal`` row of one model on one engine, its flow where ``flow`` says (see the module
    docstring)."""
    from engines.metrics import StyleMeter
    from engines.styles import StyleBank
    from engines.stylizer import Stylizer
    from engines.temporal import TemporalFilter
    from engines.warping import WarpingError
    from stream.images import read_image

    style_image = read_image(style_path)
    stats = StyleBank(model, cache_dir=False).add(style_path.stem, style_image).stats
    plain = Stylizer(engine, stats)
    steady = Stylizer(engine, stats, temporal=TemporalFilter(flow=flow))
    warm = np.zeros((video["height"], video["width"], 3), np.uint8)
    plain([warm])
    steady([warm])
    steady([warm])  # first-frame costs (allocations, the first flow, its CUDA graph capture) excluded

    fps = {"per_frame": [], "temporal": []}
    outputs = {}
    for r in range(repeats):
        for key, stylizer in (("per_frame", plain), ("temporal", steady)):
            value, images = _convert(stylizer, video, frames, keep=r == 0)
            fps[key].append(value)
            if r == 0:
                outputs[key] = images
            log(f"bench: temporal · {name} · {key} run {r + 1}/{repeats}: {value:.2f} fps")
    fps_pf, fps_t = statistics.median(fps["per_frame"]), statistics.median(fps["temporal"])

    inputs = _read(video["path"], 0, frames)
    n = min(len(inputs), len(outputs["per_frame"]), len(outputs["temporal"]))
    errors = {}
    for estimator in ("dis", "farneback"):
        meter = WarpingError(estimator)
        for i in range(n):
            meter.add(inputs[i], inputs[i], outputs["per_frame"][i], outputs["temporal"][i])
        errors[estimator] = dict(zip(("input", "per_frame", "temporal"), meter.result().errors, strict=True))
    every = max(1, n // STYLE_SAMPLES)
    style = {}
    for key in ("per_frame", "temporal"):
        meter = StyleMeter(metric_net, style_image)
        for i in range(every // 2, n, every):
            meter.add(outputs[key][i])
        style[key] = meter.mean

    row = {
        "kind": "temporal",
        "model": name,
        "width": video["width"],
        "height": video["height"],
        "megapixels": round(video["width"] * video["height"] / 1e6, 4),
        "date": now(),
        "device": str(engine.device),
        "precision": engine.precision,
        "temporal_flow": flow,
        "frames": n,
        "style": style_path.name,
        "fps": fps_t,
        "fps_per_frame": fps_pf,
        "fps_ratio": _ratio(fps_t, fps_pf),
        "fps_runs": fps,
        "warping_error": errors["dis"],
        "warping_ratio": _ratio(errors["dis"]["temporal"], errors["dis"]["per_frame"]),
        "warping_error_farneback": errors["farneback"],
        "warping_ratio_farneback": _ratio(errors["farneback"]["temporal"], errors["farneback"]["per_frame"]),
        "style_distance": style,
        "style_ratio": _ratio(style["temporal"], style["per_frame"]),
        "status": "ok",
    }
    if cut_clip is not None and cut_clip.is_file():
        row["cut"] = cut_check(plain, steady, cut_clip)
    return row


def _ratio(a: float, b: float) -> float | None:
    """a / b; None where b is 0 (frames that are all one colour, such as a fade from black, have no
    warping error to reduce)."""
    return a / b if b else None


def _x(value: float | None, width: int, digits: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"


def cut_check(plain, steady, clip: Path, window: tuple[int, int] = CUT_FRAMES) -> dict:
    """Stylize ``window`` of ``clip`` with and without the filter; where it saw a cut, the output must be
    the per-frame output exactly (nothing of the old shot left)."""
    images = _read(clip, *window)
    steady.temporal.reset()
    per_frame = [plain([im])[0] for im in images]
    temporal = [steady([im])[0] for im in images]
    hard = [i for i in range(1, len(images)) if _is_cut(images, i)]
    at = hard[0] if hard else None
    return {
        "clip": clip.name,
        "frames": list(window),
        "cuts_detected": steady.temporal.cuts,
        "first_frame_of_new_shot": window[0] + at if at is not None else None,
        "equal_to_per_frame": bool(at is not None and np.array_equal(temporal[at], per_frame[at])),
        "blended_before": bool(at and not np.array_equal(temporal[at - 1], per_frame[at - 1])),
    }


def _is_cut(images: list[np.ndarray], i: int) -> bool:
    """Where the picture changes wholesale (mean absolute difference over 40 grey levels)."""
    return float(np.abs(images[i].astype(np.float32) - images[i - 1]).mean()) > 40


def summary(rows: list[dict]) -> str:
    """The temporal rows as a table: ratios of --temporal to per-frame."""
    head = (
        f"{'model':<12} {'backend':<18} {'flow':<6} {'size':>8} {'frames':>6}  "
        f"{'warping error: input / per-frame / temporal':>44}  "
        f"{'ratio':>5} {'(farneback)':>11}  {'style ratio':>11}  {'FPS per-frame / temporal':>24} "
        f"{'ratio':>5}  cut"
    )
    out = [head]
    for r in rows:
        if r.get("status") != "ok":
            out.append(f"{r['model']:<12} {r['backend']:<18} {r.get('status')}: {r.get('note', '')}")
            continue
        e = r["warping_error"]
        cut = r.get("cut", {})
        cut_text = "-" if not cut else ("no ghost" if cut["equal_to_per_frame"] else "GHOST")
        out.append(
            f"{r['model']:<12} {r['backend'] + ' ' + r['precision']:<18} {r.get('temporal_flow', 'host'):<6} "
            f"{r['width']}x{r['height']:<4} "
            f"{r['frames']:>6}  "
            f"{e['input']:>14.5f} / {e['per_frame']:.5f} / {e['temporal']:.5f}  "
            f"{_x(r['warping_ratio'], 5, 2)} {_x(r['warping_ratio_farneback'], 11, 2)}  "
            f"{_x(r['style_ratio'], 11, 3)}  {r['fps_per_frame']:>11.2f} / {r['fps']:>10.2f} "
            f"{_x(r['fps_ratio'], 5, 2)}  {cut_text}"
        )
    return "\n".join(out)
