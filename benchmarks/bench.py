"""``stylize bench``: frames per second of every model × backend × resolution, and how far that is from
the device's arithmetic ceiling.

Two measurements per cell:

- **model**: the engine alone on a frame already on the device (padded as the Stylizer pads it).
  Warm-up runs are discarded, then each timed run is bracketed by a pair of CUDA events (GPU time
  between the events on the stream, so a launch-bound engine shows its idle gaps) or by
  ``time.perf_counter`` on the CPU. Median FPS = 1 / median latency; p50/p95 latency in ms.
- **e2e**: decode → resize → stylize → encode of a real video through :class:`stream.pipeline.Pipeline`
  (with the double-buffered :class:`stream.gpu_stage.GpuStage` on CUDA) to a temporary file;
  FPS = frames written / wall time of the run (encoder flush included, model load and one warm-up
  frame excluded). Runs at the video's native size and at the video scaled (aspect kept) to the
  height of every matrix size of 720 rows or more; square test sizes make no sense for a video.

Each result is also given as a fraction of the device's peak (see :func:`device_peak`): achieved
FLOP/s = FLOPs per frame (:func:`engines.flops.count_flops`, convolutions only) × FPS. The peaks are
paper figures, so the fraction is an approximation meant for comparing backends and devices.

Results go to ``benchmarks/results/<machine>.json`` (one file per GPU model or CPU; re-running
replaces the rows of the same cells and keeps the others), and ``--plot`` draws every results file
in one chart so devices compare side by side.
"""

from __future__ import annotations

import itertools
import json
import os
import platform
import re
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata, util
from pathlib import Path

import numpy as np
import torch

from engines.errors import StylizeError

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEFAULT_PLOT = RESULTS_DIR / "fps.png"
SCHEMA = 1
SHARED_ENV = "STYLIZE_SHARED"  # a folder laid out like ../shared (the GPU check points it at .device/)
DEFAULT_CLIP = Path("media") / "video" / "big_buck_bunny_480p_30s.mp4"

NAMED_SIZES = {"720p": (1280, 720), "1080p": (1920, 1080), "4k": (3840, 2160)}
GPU_SIZES = ((256, 256), (512, 512), (1280, 720), (1920, 1080), (3840, 2160))  # (width, height)
CPU_SIZES = ((256, 256), (512, 512))
E2E_MIN_HEIGHT = 720


# --- what is measured ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """A named way to run a model: backend, precision and engine options."""

    name: str
    backend: str
    precision: str  # on the CPU every variant runs fp32
    cuda_only: bool = False
    cuda_graph: bool = False

    def options(self) -> dict:
        return {"cuda_graph": True} if self.cuda_graph else {}


VARIANTS = {
    v.name: v
    for v in (
        Variant("torch-fp32", "torch", "fp32"),
        Variant("torch-fp16", "torch", "fp16", cuda_only=True),
        Variant("torch-fp16-graph", "torch", "fp16", cuda_only=True, cuda_graph=True),
        Variant("onnxruntime", "onnxruntime", "fp16"),  # fp16 with the CUDA EP, fp32 on the CPU
        Variant("tensorrt-fp16", "tensorrt", "fp16", cuda_only=True),
    )
}


def variant_unavailable(variant: Variant, device: torch.device) -> str | None:
    """Why ``variant`` cannot run on ``device`` here, or None when it can."""
    cuda = device.type == "cuda"
    if variant.cuda_only and not cuda:
        return "needs CUDA"
    if variant.backend == "onnxruntime":
        if util.find_spec("onnxruntime") is None:
            return "onnxruntime is not installed"
        if cuda:
            import onnxruntime

            if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
                return "onnxruntime has no CUDA provider (onnxruntime-gpu not installed)"
    if variant.backend == "tensorrt" and util.find_spec("tensorrt") is None:
        return "tensorrt is not installed"
    return None


@dataclass(frozen=True)
class Cell:
    kind: str  # "model" | "e2e"
    model: str
    variant: Variant
    width: int
    height: int

    @property
    def label(self) -> str:
        return f"{self.model} · {self.variant.name} · {self.width}x{self.height} ({self.kind})"


def row_key(row: dict) -> tuple:
    """Rows with the same key measure the same thing; a new run replaces them."""
    return row["kind"], row["model"], row["backend"], row["width"], row["height"]


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """``"256x256,1280x720"`` (width x height) or the names 720p, 1080p, 4k → [(width, height), ...]."""
    sizes = []
    for part in filter(None, (p.strip().lower() for p in text.split(","))):
        if part in NAMED_SIZES:
            sizes.append(NAMED_SIZES[part])
            continue
        m = re.fullmatch(r"(\d+)x(\d+)", part)
        if not m or min(int(m[1]), int(m[2])) < 16:
            raise StylizeError(f"--sizes: '{part}' is not WIDTHxHEIGHT (each at least 16) or 720p/1080p/4k")
        sizes.append((int(m[1]), int(m[2])))
    if not sizes:
        raise StylizeError("--sizes is empty")
    return sizes


def e2e_sizes(native: tuple[int, int], sizes: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The video's own (width, height), then scaled to each matrix height ≥ 720 (aspect kept, even sides)."""
    from engines.stylizer import target_size

    w0, h0 = native
    out = [native]
    for height in sorted({h for _, h in sizes if h >= E2E_MIN_HEIGHT}):
        h, w = target_size(h0, w0, height, None, even=True)  # the shorter side becomes ``height``
        if (w, h) not in out:
            out.append((w, h))
    return out


# --- statistics ------------------------------------------------------------------------------------


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


# --- the device and its ceiling --------------------------------------------------------------------

#: Dense (no 2:4 sparsity) FP16 tensor-core peak, TFLOP/s at boost clock, by GPU name; first match wins.
#: Sources: NVIDIA datasheets for H100 SXM/PCIe/NVL, H200 SXM/NVL, A100, L40S, L4, T4, V100 (which
#: quote "with sparsity" for Ampere and later: halved here), and the Ampere GA102 / Ada AD102
#: whitepapers for GeForce cards, whose "FP16 Tensor TFLOPS with FP32 Accumulate" row is used
#: (half their FP16-accumulate rate; cuDNN's fp16 convolutions accumulate in FP32). Ti/SUPER variants
#: get the base card's figure. Sustained clocks under a power cap are lower, so fractions are if
#: anything understated.
GPU_FP16_PEAKS: tuple[tuple[str, float], ...] = (
    (r"h100.*pcie", 756.5),  # 1513 with sparsity
    (r"h100.*nvl", 835.5),  # 1671 with sparsity
    (r"h100", 989.4),  # SXM5: 1979 with sparsity
    (r"h200.*nvl", 835.5),  # 1671 with sparsity
    (r"h200", 989.4),  # SXM: 1979 with sparsity
    (r"a100", 312.0),  # SXM and PCIe: 624 with sparsity
    (r"l40s", 362.05),
    (r"\bl4\b", 121.0),  # 242 with sparsity
    (r"rtx 4090", 165.2),  # 330.3 with FP16 accumulate
    (r"rtx 4080", 97.5),  # 194.9 with FP16 accumulate
    (r"rtx 3090", 71.0),  # 142 with FP16 accumulate
    (r"\bt4\b", 65.0),
    (r"v100.*pcie", 112.0),
    (r"v100", 125.0),  # SXM2
)

#: Two FMA pipes per core is what every x86 server core since Haswell/Zen has; the vector width
#: comes from the flags. Over-estimates single-FMA Xeon Silver/Bronze and AVX-512 on Zen 4 (which
#: runs it as two 256-bit halves) by 2×, ignores turbo: an upper bound, so fractions are lower bounds.
FMA_PIPES = 2


def gpu_peak_tflops(name: str) -> float | None:
    key = name.lower().replace("-", " ").replace("_", " ")
    return next((tflops for pattern, tflops in GPU_FP16_PEAKS if re.search(pattern, key)), None)


def cpu_peak_tflops(cores: int, ghz: float, flags: set[str]) -> tuple[float, str]:
    """fp32 peak = cores × GHz × FLOPs/cycle/core, with FLOPs/cycle = pipes × lanes × 2 (an FMA is 2)."""
    lanes = 16 if "avx512f" in flags else 8 if "avx" in flags else 4
    fma = 2 if ("fma" in flags or "avx512f" in flags) else 1
    per_cycle = FMA_PIPES * lanes * fma
    formula = (
        f"{cores} cores × {ghz:.2f} GHz × {per_cycle} fp32 FLOP/cycle "
        f"({FMA_PIPES} FMA pipes × {lanes} lanes × {fma} FLOP per lane)"
    )
    return cores * ghz * per_cycle / 1000, formula


def cpu_info() -> dict:
    """CPU model, usable physical cores, clock (max where the kernel tells, else current) and flags."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    fields: dict[str, str] = {}
    mhz = []
    for line in text.splitlines():
        k, _, v = line.partition(":")
        k, v = k.strip(), v.strip()
        fields.setdefault(k, v)
        if k == "cpu MHz":
            mhz.append(float(v))
    logical = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    siblings, per_core = int(fields.get("siblings", 0) or 0), int(fields.get("cpu cores", 0) or 0)
    smt = siblings // per_core if siblings and per_core else 1
    max_khz = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    ghz = int(max_khz.read_text()) / 1e6 if max_khz.exists() else (max(mhz) / 1000 if mhz else None)
    return {
        "name": fields.get("model name") or platform.processor() or platform.machine(),
        "cores": max(1, logical // max(smt, 1)),
        "logical_cpus": logical,
        "ghz": ghz,
        "flags": set(fields.get("flags", "").split()),
    }


def device_peak(device: torch.device, cpu: dict, override: float | None) -> dict:
    """The ceiling a fraction is taken of: GPU fp16 tensor-core peak or CPU fp32 peak, in TFLOP/s."""
    if override:
        return {"tflops": override, "basis": "--peak-tflops"}
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        tflops = gpu_peak_tflops(name)
        basis = "fp16 dense tensor-core peak (datasheet)" if tflops else f"unknown GPU '{name}'"
        return {"tflops": tflops, "basis": basis}
    if not cpu["ghz"]:
        return {"tflops": None, "basis": "CPU clock unknown"}
    tflops, formula = cpu_peak_tflops(cpu["cores"], cpu["ghz"], cpu["flags"])
    return {"tflops": tflops, "basis": f"fp32 peak = {formula}"}


def _version(*dists: str) -> str | None:
    for d in dists:
        try:
            return metadata.version(d)
        except metadata.PackageNotFoundError:
            continue
    return None


def _driver() -> str | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def machine_info(device: torch.device) -> dict:
    """Hardware and software of this run; ``id`` names the results file and holds no hostname."""
    cpu = cpu_info()
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {
        "id": slug(gpu) if gpu else f"{slug(cpu['name'])}-{cpu['cores']}c",
        "device": device.type,
        "gpu": gpu,
        "cpu": cpu["name"],
        "cpu_cores": cpu["cores"],
        "cpu_ghz": cpu["ghz"],
        "driver": _driver() if gpu else None,
        "cuda": torch.version.cuda if gpu else None,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "thread_env": {k: v for k, v in os.environ.items() if k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")},
        "onnxruntime": _version("onnxruntime", "onnxruntime-gpu"),
        "tensorrt": _version("tensorrt", "tensorrt-cu12", "tensorrt-cu13"),
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.machine()}",
        "load_average_at_start": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "date": now(),
    }


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# --- inputs ------------------------------------------------------------------------------------------


def shared_dir() -> Path:
    """``$STYLIZE_SHARED``, else ``../shared`` next to the repository (weights and media)."""
    env = os.environ.get(SHARED_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared"


def load_models(names: Sequence[str] | None, weights: str | None) -> tuple[dict, list[str]]:
    """Models whose weights resolve without a download (``--weights``, else the usual places, else the
    shared folder); the others become notes rather than failures."""
    from engines.weights import REGISTRY, load_model

    places = [weights] if weights else [None, *([shared_dir() / "weights"] if shared_dir().is_dir() else [])]
    models, notes = {}, []
    for name in names or REGISTRY:
        if name not in REGISTRY:
            raise StylizeError(f"--models: unknown model '{name}'; choose from {', '.join(REGISTRY)}")
        for place in places:
            try:
                models[name] = load_model(name, place, download=False, progress=False)
                break
            except StylizeError as e:
                why = str(e)
        else:
            notes.append(f"model {name} skipped: {why}")
    return models, notes


def synthetic_style(model) -> dict:
    """Style statistics of a fixed random image: the per-frame cost does not depend on the style."""
    g = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        return model.style_stats(torch.rand(1, 3, 256, 256, generator=g))


def probe_video(path: Path) -> dict:
    from stream.video_source import VideoFileSource

    with VideoFileSource(path) as src:
        return {
            "path": path,
            "width": src.width,
            "height": src.height,
            "fps": src.fps,
            "time_base": src.time_base,
        }


# --- measuring ---------------------------------------------------------------------------------------


def build_engine(model, variant: Variant, device: torch.device, size: tuple[int, int]):
    from engines.runtimes import make_engine

    precision = variant.precision if device.type == "cuda" else "fp32"
    w, h = size
    return make_engine(
        variant.backend,
        model,
        device=str(device),
        precision=precision,
        resolution=(h, w),
        **variant.options(),
    )


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


def _is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.cuda.OutOfMemoryError) or "out of memory" in str(e).lower()


def run_matrix(
    models: dict,
    variants: Sequence[Variant],
    sizes: Sequence[tuple[int, int]],
    device: torch.device,
    settings: dict,
    peak: dict,
    video: dict | None,
    progress: bool = True,
    on_row: Callable[[list[dict]], None] | None = None,
) -> list[dict]:
    """Every cell once, in an order that reuses one engine per model × variant (TensorRT: × size).

    A failing cell becomes a row with status "skipped" (out of memory) or "error"; the rest still run.
    ``on_row`` gets the rows so far after each cell (to save them: a killed run keeps what it measured).
    """
    from tqdm import tqdm

    from engines.flops import count_flops
    from engines.stylizer import Stylizer

    cells = []
    for name, variant in itertools.product(models, variants):
        cells += [Cell("model", name, variant, w, h) for w, h in sizes]
        if video is not None:
            native = (video["width"], video["height"])
            cells += [Cell("e2e", name, variant, w, h) for w, h in e2e_sizes(native, sizes)]
    styles = {name: synthetic_style(model) for name, model in models.items()}
    rows: list[dict] = []
    engine, engine_key = None, None
    bar = tqdm(cells, unit="cell", dynamic_ncols=True, disable=not progress)
    for cell in bar:
        bar.set_description(cell.label)
        model, stats, size = models[cell.model], styles[cell.model], (cell.width, cell.height)
        row = {
            "kind": cell.kind,
            "model": cell.model,
            "backend": cell.variant.name,
            "width": cell.width,
            "height": cell.height,
            "megapixels": round(cell.width * cell.height / 1e6, 4),
            "date": now(),
        }
        try:
            key = (cell.model, cell.variant.name, size if cell.variant.backend == "tensorrt" else None)
            if key != engine_key:
                engine = engine_key = None
                _free(device)
                engine = build_engine(model, cell.variant, device, size)
                engine_key = key
            row.update(device=str(engine.device), precision=engine.precision)
            if cell.kind == "model":
                row.update(bench_model(engine, stats, size, settings["warmup"], settings["repeats"]))
            else:
                row.update(
                    bench_e2e(Stylizer(engine, stats), video, size, settings["e2e_frames"], settings["codec"])
                )
            row["flops_per_frame"] = count_flops(model, cell.height, cell.width)
            row["tflops"] = row["flops_per_frame"] * row["fps"] / 1e12
            row["peak_fraction"] = row["tflops"] / peak["tflops"] if peak["tflops"] else None
            row["status"] = "ok"
        except Exception as e:  # one cell's failure must not lose the rest of the matrix
            row["status"] = "skipped" if _is_oom(e) else "error"
            row["note"] = "out of memory" if _is_oom(e) else f"{type(e).__name__}: {e}"[:300]
            engine = engine_key = None  # a failed engine (half-captured graph, OOM) is not reused
            bar.write(f"bench: {cell.label}: {row['status']}: {row['note']}")
        rows.append(row)
        if on_row:
            on_row(rows)
    bar.close()
    engine = None
    _free(device)
    return rows


def _free(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()


# --- results files -----------------------------------------------------------------------------------


def merge_results(old: dict | None, new: dict) -> dict:
    """``new`` with the rows of ``old`` whose cells it did not measure (same machine id only)."""
    if not old or old.get("machine", {}).get("id") != new["machine"]["id"]:
        return new
    measured = {row_key(r) for r in new["results"]}
    kept = [r for r in old.get("results", []) if row_key(r) not in measured]
    rows = sorted(kept + new["results"], key=lambda r: (r["kind"], r["model"], r["backend"], r["megapixels"]))
    return {**new, "results": rows}


def write_results(path: Path, doc: dict) -> dict:
    """Merge into ``path`` and write it atomically; returns what was written."""
    old = None
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError):
            old = None  # an unreadable file is replaced, not merged
    doc = merge_results(old, doc)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    os.replace(tmp, path)
    return doc


def plot_results(results_dir: Path, png: Path) -> int:
    """FPS vs megapixels (both log) of every results file: one line per device × backend × model, model
    timings solid, end-to-end dashed. Returns the number of lines drawn."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import FuncFormatter
    except ImportError:
        raise StylizeError(
            "--plot needs matplotlib: pip install matplotlib (or pip install -e '.[dev]')"
        ) from None
    lines: dict[tuple, list] = {}
    for path in sorted(results_dir.glob("*.json")):
        try:
            doc = json.loads(path.read_text())
            machine = doc["machine"]["gpu"] or doc["machine"]["id"]
            for r in doc["results"]:
                if r.get("status") == "ok":
                    lines.setdefault((machine, r["backend"], r["model"], r["kind"]), []).append(
                        (r["megapixels"], r["fps"])
                    )
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not a results file
    if not lines:
        raise StylizeError(f"no results to plot in {results_dir}")
    fig = Figure(figsize=(10, 6.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    colors: dict[tuple, str] = {}
    palette = itertools.cycle(f"C{i}" for i in range(10))
    for (machine, backend, model, kind), points in sorted(lines.items()):
        color = colors.setdefault((machine, backend, model), next(palette))
        xs, ys = zip(*sorted(points), strict=True)
        ax.plot(
            xs,
            ys,
            "-o" if kind == "model" else "--x",
            color=color,
            markersize=4,
            label=f"{machine} · {backend} · {model}" + (" (end-to-end)" if kind == "e2e" else ""),
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):  # plain numbers; minor ticks labelled at 2 and 5 only
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else ""))
    ax.set_xlabel("megapixels per frame")
    ax.set_ylabel("frames per second (median; end-to-end: frames / wall time)")
    ax.set_title("AdaIN stylization throughput")
    ax.grid(True, which="both", alpha=0.3)
    for fps in (30, 60):
        ax.axhline(fps, color="grey", linewidth=0.8, linestyle=":")
        ax.annotate(
            f"{fps} fps",
            (1, fps),
            xycoords=("axes fraction", "data"),
            ha="right",
            va="bottom",
            fontsize=7,
            color="grey",
        )
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=120)
    return len(lines)


_COLUMNS = (
    ("kind", 5),
    ("model", 12),
    ("backend", 17),
    ("size", 10),
    ("FPS", 9),
    ("p50 ms", 8),
    ("p95 ms", 8),
    ("% peak", 7),
)


def summary(rows: Sequence[dict]) -> str:
    """A plain-text table of the rows (also what the CLI prints)."""

    def line(values: Sequence) -> str:
        return " ".join(
            f"{v:<{w}}" if i < 3 else f"{v:>{w}}"
            for i, (v, (_, w)) in enumerate(zip(values, _COLUMNS, strict=False))
        )

    out = [line([name for name, _ in _COLUMNS])]
    for r in rows:
        values = [r["kind"], r["model"], r["backend"], f"{r['width']}x{r['height']}"]
        if r["status"] != "ok":
            out.append(line(values) + f"  {r['status']}: {r.get('note', '')}")
            continue
        frac = r.get("peak_fraction")
        values += [f"{r['fps']:.2f}", *(f"{r[k]:.2f}" if k in r else "-" for k in ("p50_ms", "p95_ms"))]
        out.append(line([*values, f"{100 * frac:.3f}" if frac is not None else "-"]))
    return "\n".join(out)
