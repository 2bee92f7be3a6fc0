"""``stylize bench``: frames per second of models × backends × resolutions, and the chart.

Everything it writes goes to ``./bench-results/`` of the current folder, or to ``--out``: never into
the installed package. The project's committed results (``benchmarks/results/``) change only when
named explicitly, e.g. ``--out benchmarks/results`` in a source checkout.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from benchmarks.inputs import DEFAULT_CLIP, load_models, probe_video, shared_dir
from benchmarks.machine import cpu_info, device_peak, machine_info
from benchmarks.matrix import CPU_SIZES, GPU_SIZES, VARIANTS, parse_sizes, run_matrix, variant_unavailable
from benchmarks.results import PLOT_NAME, SCHEMA, now, plot_results, summary, write_results
from benchmarks.timing import pick_codec
from engines.errors import StylizeError
from stream.cli.options import TEMPORAL_FLOW_CHOICES, show_progress

NAME = "bench"
HELP = "benchmark models × backends × resolutions"
DESCRIPTION = (
    "Measure FPS (model-only and end-to-end), write ./bench-results/<machine>.json (or --out), "
    "optionally chart every results file of a folder."
)
#: Relative, so it lands in the folder the command runs from.
DEFAULT_OUT = Path("bench-results")
EXAMPLES = """examples:
  stylize bench
  stylize bench --temporal --models microast,adain-cd16x      (warping error, style and FPS of --temporal)
  stylize bench --models microast --sizes 720p,1080p,4k --backends torch-fp16,torch-fp16-graph
  stylize bench --no-run --plot                  (chart ./bench-results/*.json)
  stylize bench --no-run --plot --results-dir benchmarks/results --out benchmarks/results
  stylize bench --workers 1,2 --models adain-cd16x      (batch conversion on Ray: FPS per worker count)"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--models",
        help="comma-separated (default: every registered model whose weights resolve); adain-random is "
        "the paper's network shape with random weights, for timing without its files",
    )
    p.add_argument("--backends", help=f"comma-separated from {', '.join(VARIANTS)} (default: all available)")
    p.add_argument(
        "--sizes",
        help="WxH list, e.g. 256x256,1280x720 or 720p,1080p,4k "
        "(default: 256², 512², 720p, 1080p, 4K on CUDA; 256², 512² on the CPU)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    p.add_argument(
        "--weights", metavar="DIR", help="weights root (default: usual places, then ../shared/weights)"
    )
    p.add_argument("--repeats", type=int, help="timed runs per cell (default: 100 CUDA, 10 CPU)")
    p.add_argument("--warmup", type=int, help="untimed runs first (default: 10 CUDA, 2 CPU)")
    p.add_argument("--video", help="clip for end-to-end runs (default: the shared Big Buck Bunny clip)")
    p.add_argument("--e2e-frames", type=int, help="frames per end-to-end run (default: 240 CUDA, 48 CPU)")
    p.add_argument("--no-e2e", action="store_true", help="model-only timings")
    p.add_argument(
        "--codec", default="auto",
        help="end-to-end encoder (default: auto = h264_nvenc on CUDA where it opens, else libx264)",
    )  # fmt: skip
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--peak-tflops", type=float, help="override the device ceiling (TFLOP/s)")
    p.add_argument("--note", action="append", default=[], help="caveat stored with the results (repeatable)")
    p.add_argument(
        "--out",
        metavar="PATH",
        help=f"folder for <machine>.json, or a .json file (default: ./{DEFAULT_OUT}/ in the current folder)",
    )
    p.add_argument(
        "--plot",
        nargs="?",
        const="",
        metavar="PNG",
        help=f"then chart every results file's FPS vs megapixels (default: {PLOT_NAME} in the output folder)",
    )
    p.add_argument("--results-dir", metavar="DIR", help="results files to chart (default: the output folder)")
    p.add_argument("--no-run", action="store_true", help="measure nothing (with --plot: redraw only)")
    p.add_argument(
        "--workers", metavar="N,N",
        help="instead of the matrix, convert on Ray with each number of workers (e.g. 1,2): FPS side by side "
        "for the first of --models at the first of --sizes' height, --e2e-frames frames of --video, "
        "median of --repeats rounds (default 3)",
    )  # fmt: skip
    t = p.add_argument_group("temporal consistency (instead of the FPS matrix)")
    t.add_argument(
        "--temporal", action="store_true",
        help="measure --temporal against per-frame: warping error, style distance, FPS side by side, a "
        "hard cut (default backend: torch at the automatic precision, as convert runs)",
    )  # fmt: skip
    t.add_argument("--style", help="style image (default: the shared starry_night.jpg)")
    t.add_argument(
        "--temporal-flow", default="auto", metavar="WHERE[,WHERE]",
        help="where the method's optical flow runs, one row each: host, device, or auto (device on a GPU, "
        "host on the CPU, as convert) (default: %(default)s)",
    )  # fmt: skip
    t.add_argument(
        "--metric-weights", metavar="PATH",
        help="VGG-16 metric weights (default: $STYLIZE_WEIGHTS, the cache, ../shared/weights)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Run the matrix, write/merge the results file, print a table; 1 if any cell failed (not OOM)."""
    status = 0
    if args.workers is not None:
        return _scaling(args)
    if not args.no_run:
        status = _measure_temporal(args) if args.temporal else _measure(args)
    if args.plot is not None:
        results_dir = Path(args.results_dir) if args.results_dir else output_dir(args.out)
        png = Path(args.plot) if args.plot else output_dir(args.out) / PLOT_NAME
        n = plot_results(results_dir, png)
        print(f"{png}: {n} lines from {results_dir}")
    return status


def _names_file(out: Path) -> bool:
    return out.suffix.lower() == ".json" or out.is_file()


def output_dir(out: str | None) -> Path:
    """The folder results go to: ``--out`` itself, its folder when it names a file, else ./bench-results."""
    path = Path(out) if out else DEFAULT_OUT
    return path.parent if _names_file(path) else path


def results_file(out: str | None, machine_id: str) -> Path:
    """``--out`` when it names a file (ends in .json, or exists as one), else <machine>.json in its folder."""
    path = Path(out) if out else DEFAULT_OUT
    return path if _names_file(path) else path / f"{machine_id}.json"


def _measure(args: argparse.Namespace) -> int:
    from engines.runtimes.torch_rt import resolve_device

    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    if cuda and device.index is not None:
        torch.cuda.set_device(device)
    if args.threads:
        torch.set_num_threads(args.threads)
    for name in ("repeats", "warmup", "e2e_frames"):
        value = getattr(args, name)
        if value is not None and value < (0 if name == "warmup" else 1):
            raise StylizeError(f"--{name.replace('_', '-')} must be at least {0 if name == 'warmup' else 1}")
    settings = {
        "repeats": args.repeats or (100 if cuda else 10),
        "warmup": args.warmup if args.warmup is not None else (10 if cuda else 2),
        "e2e_frames": args.e2e_frames or (240 if cuda else 48),
        "codec": pick_codec(cuda) if args.codec == "auto" else args.codec,
    }
    sizes = parse_sizes(args.sizes) if args.sizes else list(GPU_SIZES if cuda else CPU_SIZES)
    notes = list(args.note)
    variants = []
    for name in args.backends.split(",") if args.backends else VARIANTS:
        name = name.strip()
        if name not in VARIANTS:
            raise StylizeError(f"--backends: unknown '{name}'; choose from {', '.join(VARIANTS)}")
        why = variant_unavailable(VARIANTS[name], device)
        if why:
            notes.append(f"backend {name} skipped: {why}")
        else:
            variants.append(VARIANTS[name])
    models, model_notes = load_models(args.models.split(",") if args.models else None, args.weights)
    notes += model_notes
    video = None
    if not args.no_e2e:
        path = Path(args.video) if args.video else shared_dir() / DEFAULT_CLIP
        if path.is_file():
            video = probe_video(path)
            settings["video"] = f"{path.name} ({video['width']}x{video['height']})"
        else:
            notes.append(f"end-to-end skipped: no video at {path} (--video)")
    for n in notes:
        print(f"bench: {n}", file=sys.stderr)
    if not models or not variants:
        raise StylizeError("nothing to measure: " + "; ".join(notes))

    machine = machine_info(device)
    peak = device_peak(device, cpu_info(), args.peak_tflops)
    out = results_file(args.out, machine["id"])
    doc = {"schema": SCHEMA, "machine": machine, "peak": peak, "settings": settings, "notes": notes}

    def save(rows: list[dict]) -> None:
        write_results(out, {**doc, "results": rows})

    rows = run_matrix(models, variants, sizes, device, settings, peak, video, show_progress(args), save)
    print(summary(rows))
    print(f"{out}: {len(rows)} rows ({machine['id']})")
    return 1 if any(r["status"] == "error" for r in rows) else 0


def _measure_temporal(args: argparse.Namespace) -> int:
    """``--temporal``: one row per model × backend (see :mod:`benchmarks.temporal`)."""
    from benchmarks.matrix import Variant, build_engine
    from benchmarks.temporal import CUT_CLIP, DEFAULT_STYLE, measure_model
    from benchmarks.temporal import summary as temporal_summary
    from engines.metrics import VGG16Features, find_vgg16
    from engines.runtimes.torch_rt import resolve_device
    from engines.temporal import resolve_flow_place

    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    for name in ("repeats", "e2e_frames"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise StylizeError(f"--{name.replace('_', '-')} must be at least 1")
    flows = [f.strip() for f in args.temporal_flow.split(",")]
    for f in flows:
        if f not in TEMPORAL_FLOW_CHOICES:
            choices = ", ".join(TEMPORAL_FLOW_CHOICES)
            raise StylizeError(f"--temporal-flow: unknown '{f}'; choose from {choices}")
    flows = list(dict.fromkeys(resolve_flow_place(f, device) for f in flows))
    variants = [Variant("torch", "torch", "auto")]
    if args.backends:
        variants = []
        for name in args.backends.split(","):
            if name.strip() not in VARIANTS:
                raise StylizeError(f"--backends: unknown '{name.strip()}'; choose from {', '.join(VARIANTS)}")
            variants.append(VARIANTS[name.strip()])
    path = Path(args.video) if args.video else shared_dir() / DEFAULT_CLIP
    style = Path(args.style) if args.style else shared_dir() / DEFAULT_STYLE
    for what, file in (("video", path), ("style", style)):
        if not file.is_file():
            raise StylizeError(f"--temporal: no {what} at {file} (--{what})")
    try:
        metric = find_vgg16(args.metric_weights)
    except StylizeError:
        metric = shared_dir() / "weights" / "vgg16-imagenet"
        if args.metric_weights or not metric.is_dir():
            raise
        metric = find_vgg16(metric)
    video = probe_video(path)
    frames = args.e2e_frames or round(4 * video["fps"])
    repeats = args.repeats or 3
    models, notes = load_models(args.models.split(",") if args.models else None, args.weights)
    notes += list(args.note)
    for n in notes:
        print(f"bench: {n}", file=sys.stderr)
    if not models:
        raise StylizeError("nothing to measure: " + "; ".join(notes))
    net = VGG16Features.load(metric)
    machine = machine_info(device)
    out = results_file(args.out, machine["id"])
    settings = {"temporal_frames": frames, "repeats": repeats, "video": f"{path.name} ({video['width']}x"
                f"{video['height']})", "style": style.name, "codec": "libx264"}  # fmt: skip
    doc = {"schema": SCHEMA, "machine": machine, "peak": device_peak(device, cpu_info(), args.peak_tflops),
           "settings": {}, "notes": [], **_kept_settings(out, machine["id"]), "temporal_settings": settings,
           "temporal_notes": notes}  # fmt: skip
    rows, built = [], {}  # one engine per model and backend, whatever the flows
    for (name, model), variant, flow in ((m, v, f) for m in models.items() for v in variants for f in flows):
        size = (video["width"], video["height"])
        why = variant_unavailable(variant, device) if variant.name in VARIANTS else None
        base = {"kind": "temporal", "model": name, "backend": variant.name, "temporal_flow": flow,
                "width": size[0], "height": size[1],
                "megapixels": round(size[0] * size[1] / 1e6, 4)}  # fmt: skip
        base["date"] = now()
        if why:
            rows.append({**base, "status": "skipped", "note": why})
            continue
        try:
            if (name, variant.name) not in built:
                built[name, variant.name] = build_engine(model, variant, device, size)
            row = measure_model(
                name, model, built[name, variant.name], video, style, frames, repeats, net,
                shared_dir() / CUT_CLIP, flow=flow,
                log=lambda m: print(m, file=sys.stderr) if show_progress(args) else None,
            )  # fmt: skip
            rows.append({**row, "backend": variant.name})
        except Exception as e:  # one model's failure must not lose the others
            rows.append({**base, "status": "error", "note": f"{type(e).__name__}: {e}"[:300]})
        write_results(out, {**doc, "results": rows})
    print(temporal_summary(rows))
    print(f"{out}: {len(rows)} temporal rows ({machine['id']})")
    return 1 if any(r["status"] == "error" for r in rows) else 0


def _kept_settings(path: Path, machine_id: str) -> dict:
    """The FPS matrix's settings and notes already in a results file of this machine (a temporal run
    adds its rows and its own settings, and leaves those alone)."""
    import json

    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if old.get("machine", {}).get("id") != machine_id:
        return {}
    return {k: old[k] for k in ("settings", "notes") if k in old}


def _scaling(args: argparse.Namespace) -> int:
    """``--workers 1,2``: the same conversion job on each number of Ray workers, printed side by side."""
    from benchmarks.scaling import measure, stylizer_recipe, table
    from engines.atomic import write_atomic
    from engines.runtimes.torch_rt import resolve_device
    from engines.weights import DEFAULT_MODEL

    try:
        counts = [int(n) for n in args.workers.split(",")]
    except ValueError:
        raise StylizeError(f"--workers takes numbers such as 1,2, not {args.workers!r}") from None
    if not counts or min(counts) < 1:
        raise StylizeError("--workers numbers must be at least 1")
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    model = args.models.split(",")[0].strip() if args.models else DEFAULT_MODEL
    size = parse_sizes(args.sizes)[0][1] if args.sizes else (720 if cuda else 144)
    frames = args.e2e_frames or (960 if cuda else 240)
    video = Path(args.video) if args.video else shared_dir() / DEFAULT_CLIP
    if not video.is_file():
        raise StylizeError(f"no video at {video} (--video)")
    recipe = stylizer_recipe(model, args.weights, "cuda" if cuda else "cpu")
    rounds = 3 if args.repeats is None else args.repeats
    if rounds < 1:
        raise StylizeError("--repeats must be at least 1")
    codec = pick_codec(cuda) if args.codec == "auto" else args.codec
    rows = measure(video, counts, recipe, frames=frames, size=size, rounds=rounds,
                   device="cuda" if cuda else "cpu", codec=codec)  # fmt: skip
    settings = {"model": model, "height": size, "frames": frames, "rounds": rounds, "video": video.name,
                "codec": codec}  # fmt: skip
    machine = machine_info(device)
    out = output_dir(args.out) / f"{machine['id']}-scaling.json"
    doc = {"schema": SCHEMA, "machine": machine, "settings": settings, "notes": args.note, "scaling": rows}
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, (json.dumps(doc, indent=1, default=str) + "\n").encode())
    print(table(rows))
    print(f"{out}: {len(rows)} rows ({machine['id']}; {model}, {size} px high, {frames} frames)")
    return 0
