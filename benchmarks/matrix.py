"""What ``stylize bench`` measures: every model × backend variant × resolution, one cell at a time.

A cell is a model-only timing at a matrix size, or an end-to-end run of a real video (see
:mod:`benchmarks.timing` for how each is taken). End-to-end runs use the video's native size and
the video scaled (aspect kept) to the height of every matrix size of 720 rows or more: square test
sizes make no sense for a video. Each row gets FLOPs per frame and the fraction of the device's peak
(:mod:`benchmarks.machine`).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import util

import torch

from benchmarks.inputs import synthetic_style
from benchmarks.results import now
from benchmarks.timing import bench_e2e, bench_model
from engines.device import cpu_bf16_native
from engines.errors import StylizeError

NAMED_SIZES = {"720p": (1280, 720), "1080p": (1920, 1080), "4k": (3840, 2160)}
GPU_SIZES = ((256, 256), (512, 512), (1280, 720), (1920, 1080), (3840, 2160))  # (width, height)
CPU_SIZES = ((256, 256), (512, 512))
#: how far (relative) a matrix size's aspect may be from the video's to be used as is end to end
ASPECT_TOLERANCE = 0.01
E2E_MIN_HEIGHT = 720


@dataclass(frozen=True)
class Variant:
    """A named way to run a model: backend, precision and engine options."""

    name: str
    backend: str
    precision: str  # an fp16 variant runs fp32 on the CPU (onnxruntime: one name for both devices)
    cuda_only: bool = False
    cpu_only: bool = False
    cuda_graph: bool = False
    compile: bool = False

    def options(self) -> dict:
        return {name: True for name in ("cuda_graph", "compile") if getattr(self, name)}


VARIANTS = {
    v.name: v
    for v in (
        Variant("torch-fp32", "torch", "fp32"),
        Variant("torch-fp16", "torch", "fp16", cuda_only=True),
        Variant("torch-fp16-graph", "torch", "fp16", cuda_only=True, cuda_graph=True),
        Variant("torch-fp16-compile", "torch", "fp16", cuda_only=True, compile=True),
        Variant("torch-bf16", "torch", "bf16", cpu_only=True),
        Variant("onnxruntime", "onnxruntime", "fp16"),  # fp16 with the CUDA EP, fp32 on the CPU
        Variant("openvino-fp32", "openvino", "fp32", cpu_only=True),
        Variant("openvino-bf16", "openvino", "bf16", cpu_only=True),
        Variant("tensorrt-fp16", "tensorrt", "fp16", cuda_only=True),
    )
}


def variant_unavailable(variant: Variant, device: torch.device) -> str | None:
    """Why ``variant`` cannot run on ``device`` here, or None when it can."""
    cuda = device.type == "cuda"
    if variant.cuda_only and not cuda:
        return "needs CUDA"
    if variant.cpu_only and cuda:
        return "runs on the CPU"
    if variant.precision == "bf16" and not cpu_bf16_native():
        return "this CPU has no native bf16 (avx512_bf16 or AMX)"
    if variant.backend == "openvino" and util.find_spec("openvino") is None:
        return "openvino is not installed"
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
    """One row of the results: a model × variant at one size, model-only or end-to-end."""

    kind: str  # "model" | "e2e"
    model: str
    variant: Variant
    width: int
    height: int

    @property
    def label(self) -> str:
        return f"{self.model} · {self.variant.name} · {self.width}x{self.height} ({self.kind})"


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
    """The video's own (width, height), then each matrix size of height ≥ 720.

    A matrix size of (nearly) the video's shape is used as is, so the end-to-end row of 1080p compares
    with the model-only row of the same pixels; another shape keeps the video's, its shorter side scaled
    to the size's height (even sides).
    """
    from engines.stylizer import target_size

    w0, h0 = native
    out = [native]
    for w, h in sorted({s for s in sizes if s[1] >= E2E_MIN_HEIGHT}, key=lambda s: s[1]):
        if abs(w / h - w0 / h0) > ASPECT_TOLERANCE * w0 / h0:
            h, w = target_size(h0, w0, h, None, even=True)  # the shorter side becomes the size's height
        if (w, h) not in out:
            out.append((w, h))
    return out


def build_engine(model, variant: Variant, device: torch.device, size: tuple[int, int]):
    """The engine of ``variant`` for frames of ``size``; an fp16 variant runs fp32 on the CPU."""
    from engines.runtimes import make_engine

    precision = "fp32" if variant.precision == "fp16" and device.type != "cuda" else variant.precision
    w, h = size
    return make_engine(
        variant.backend,
        model,
        device=str(device),
        precision=precision,
        resolution=(h, w),
        **variant.options(),
    )


def _cells(models: dict, variants: Sequence[Variant], sizes, video: dict | None) -> list[Cell]:
    """Grouped by model × variant, so one engine serves all of its cells (TensorRT: one per size)."""
    cells = []
    for name, variant in itertools.product(models, variants):
        cells += [Cell("model", name, variant, w, h) for w, h in sizes]
        if video is not None:
            native = (video["width"], video["height"])
            cells += [Cell("e2e", name, variant, w, h) for w, h in e2e_sizes(native, sizes)]
    return cells


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

    styles = {name: synthetic_style(model) for name, model in models.items()}
    rows: list[dict] = []
    engine, engine_key = None, None
    bar = tqdm(_cells(models, variants, sizes, video), unit="cell", dynamic_ncols=True, disable=not progress)
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


def _is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.cuda.OutOfMemoryError) or "out of memory" in str(e).lower()


def _free(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
