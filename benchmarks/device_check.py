"""One prepared run for a lent GPU machine (H100/H200), sized to about 7.5 minutes.

Parts, each in its own subprocess with its own timeout, so a failure or a hang in one loses nothing
of the others:

1. ``pytest -m "cuda or tensorrt"`` → ``pytest.log``;
2. per model at 720p and 1080p, torch fp16 with and without CUDA graphs (and compiled, at 1080p only,
   after every other row): model-only FPS, a serial loop (frame → Stylizer → uint8 result on the host,
   synchronous) and Pipeline + GpuStage at depth 1 and 2 over the same pre-decoded frames (no decode
   or encode, so the stage is what is compared) → ``measure.json``, rewritten after every row, and
   rows of kind ``stage`` in ``<machine>.json``;
3. the ``stylize bench`` matrix at 720p, 1080p and 4K (model-only and end-to-end through the real
   pipeline) → ``<machine>.json`` (merged with the committed results of that machine, ready to be
   committed to benchmarks/results/), and ``fps.png`` drawn with every committed results file;
4. ``stylize bench --temporal`` (issue #11) on CUDA: warping error, style distance and the FPS of
   ``--temporal`` against per-frame on Big Buck Bunny 480p, 4 s, microast, with the optical flow on
   the host (DIS) and on the device (the CUDA graph of engines/flow.py), side by side, into the same
   ``<machine>.json`` (rows of kind ``temporal``): which flow costs the GPU less.

``device_check.json`` says how each part ended. It and ``<machine>.json`` are copied to ``$OUT`` after
every part, so a run killed from outside keeps what its finished parts measured. Every output goes to
``$OUT`` (default ``device_out/`` in the repository). Inputs: weights and the clip from
``$STYLIZE_SHARED`` (``.device/`` on the GPU machine, see ``device_check.sh``), else ``../shared``.

    [OUT=DIR] python benchmarks/device_check.py [--dry-run] [--models A,B]

``--dry-run`` runs the same parts on the CPU at a tiny size, to check the script where there is no
GPU; ``--models`` limits the models (default: every model whose weights resolve). The command line
is read by hand (:func:`read_options`): only the commands layer, ``stream/cli/``, uses argparse.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TIMEOUTS = {"pytest": 80, "measure": 150, "bench": 130, "temporal": 75, "plot": 15}  # 7.5 minutes in all
#: the models timed by default: the two with weights, and the paper's network shape (random weights)
DEFAULT_MODELS = "microast,adain-cd16x,adain-random"


def _now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _write_json(path: Path, doc: dict) -> None:
    from engines.atomic import write_atomic  # after main() has put this checkout first on sys.path

    write_atomic(path, (json.dumps(doc, indent=1, default=str) + "\n").encode())


# --- part 2: the real-time numbers ---------------------------------------------------------------


def measure(out: Path, dry_run: bool, models: str | None) -> int:
    """Model-only, serial-loop and pipeline FPS per model × size × (graph or not); one JSON row each."""
    import cv2
    import torch

    from benchmarks.inputs import DEFAULT_CLIP, load_models, shared_dir, synthetic_style
    from benchmarks.machine import machine_info
    from benchmarks.matrix import VARIANTS, build_engine
    from benchmarks.timing import bench_model, pipeline_fps, serial_fps
    from engines.stylizer import Stylizer
    from stream.video_source import VideoFileSource

    cuda = torch.cuda.is_available() and not dry_run
    device = torch.device("cuda" if cuda else "cpu")
    sizes = [(1280, 720), (1920, 1080)] if not dry_run else [(128, 72)]
    variants = ["torch-fp16", "torch-fp16-graph", "torch-fp16-compile"] if cuda else ["torch-fp32"]
    n_frames, warmup, repeats = (120, 10, 50) if not dry_run else (4, 1, 2)
    loaded, notes = load_models(models.split(",") if models else None, None)
    doc = {"machine": machine_info(device), "notes": notes, "frames": n_frames, "rows": []}
    path = out / "measure.json"
    clip = shared_dir() / DEFAULT_CLIP
    with VideoFileSource(clip) as src:
        decoded = [f.image for _, f in zip(range(n_frames), src, strict=False)]
    # Compiling takes a while: only at 1080p, the size that decides, and last, so that a timeout there
    # loses no other row.
    plain = [(size, m, v) for size in sizes for m in loaded for v in variants if not v.endswith("compile")]
    compiled = [(sizes[-1], m, v) for m in loaded for v in variants if v.endswith("compile")]
    images, images_size = [], None
    for (w, h), name, variant in plain + compiled:
        model = loaded[name]
        if images_size != (w, h):
            images = [cv2.resize(im, (w, h), interpolation=cv2.INTER_LINEAR) for im in decoded]
            images_size = (w, h)
        stats = synthetic_style(model)
        row: dict = {"model": name, "backend": variant, "width": w, "height": h}
        print(f"measure: {name} {variant} {w}x{h}", flush=True)
        try:
            engine = build_engine(model, VARIANTS[variant], device, (w, h))
            stylizer = Stylizer(engine, stats)
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            row["model_only"] = bench_model(engine, stats, (w, h), warmup, repeats)
            row["serial_loop"] = serial_fps(stylizer, images)
            row["pipeline_depth1"] = pipeline_fps(stylizer, images, depth=1)
            row["pipeline_depth2"] = pipeline_fps(stylizer, images, depth=2)
            if cuda:
                row["peak_memory_mib"] = torch.cuda.max_memory_allocated() / 2**20
        except Exception as e:  # keep measuring the other rows
            row["error"] = f"{type(e).__name__}: {e}"[:500]
        print("measure:", json.dumps(row, default=str), flush=True)
        doc["rows"].append(row)
        _write_json(path, doc)
        engine = stylizer = None
        if cuda:
            torch.cuda.empty_cache()
    _write_json(path, doc)
    return 1 if any("error" in r for r in doc["rows"]) else 0


# --- the orchestrator ------------------------------------------------------------------------------


def _run(name: str, cmd: list[str], log: Path | None, env: dict) -> dict:
    """One part as a subprocess under its timeout; output to ``log`` (and its tail to ours) or ours."""
    print(f"\n=== {name}: {' '.join(cmd)} (timeout {TIMEOUTS[name]} s)", flush=True)
    t0 = time.monotonic()
    result = {"command": " ".join(cmd), "timeout_s": TIMEOUTS[name]}
    fh = open(log, "w") if log else None
    try:
        proc = subprocess.run(
            cmd, cwd=REPO, env=env, timeout=TIMEOUTS[name], stdout=fh, stderr=fh and subprocess.STDOUT
        )
        result["rc"] = proc.returncode
    except subprocess.TimeoutExpired:
        result["rc"], result["timed_out"] = None, True
    except OSError as e:
        result["rc"], result["error"] = None, str(e)
    finally:
        if fh:
            fh.close()
    result["seconds"] = round(time.monotonic() - t0, 1)
    if log and log.exists():
        print("".join(log.read_text(errors="replace").splitlines(keepends=True)[-15:]), flush=True)
    print(f"=== {name}: {result}", flush=True)
    return result


def stage_rows(measure_doc: dict) -> list[dict]:
    """``measure.json``'s rows as results rows of kind ``stage``: FPS of the serial loop and of Pipeline +
    GpuStage at depth 1 and 2 over the same pre-decoded frames, beside the model-only FPS."""
    from benchmarks.results import now

    rows = []
    for r in measure_doc.get("rows", []):
        w, h = r["width"], r["height"]
        row = {"kind": "stage", "model": r["model"], "backend": r["backend"], "width": w, "height": h,
               "megapixels": round(w * h / 1e6, 4), "date": now()}  # fmt: skip
        if "error" in r:
            rows.append({**row, "status": "error", "note": r["error"]})
            continue
        fps = {k: r[k]["fps"] for k in ("model_only", "serial_loop", "pipeline_depth1", "pipeline_depth2")}
        by_name = {f"{k}_fps": v for k, v in fps.items()}
        rows.append({**row, "status": "ok", "fps": fps["pipeline_depth2"], **by_name})
    return rows


def _add_stage_rows(out: Path, results_dir: Path) -> None:
    """Merge part 2's rows into the machine's results file, so the committed file holds them too."""
    from benchmarks.results import SCHEMA, write_results

    try:
        doc = json.loads((out / "measure.json").read_text())
    except (OSError, ValueError):
        return
    rows = stage_rows(doc)
    if not rows:
        return
    path = results_dir / f"{doc['machine']['id']}.json"
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        old = {"schema": SCHEMA}
    write_results(path, {**old, "machine": doc["machine"], "results": rows})


def orchestrate(out: Path, dry_run: bool, models: str | None) -> int:
    from benchmarks.results import COMMITTED_DIR

    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OUT": str(out)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    py = sys.executable
    summary: dict = {"started": _now(), "dry_run": dry_run, "parts": {}}
    model_args = ["--models", models or DEFAULT_MODELS]
    parts = summary["parts"]

    # Results merge into a copy of the committed ones, so the chart shows every device and the returned
    # <machine>.json can be committed as is. Whatever changed is copied to $OUT after every part, and
    # device_check.json rewritten: a run killed from outside keeps what its finished parts measured.
    tmp = Path(tempfile.mkdtemp(prefix="bench-results-"))
    for f in COMMITTED_DIR.glob("*.json"):
        shutil.copy2(f, tmp)
    before = {p.name: p.stat().st_mtime for p in tmp.glob("*.json")}

    def collect() -> None:
        for p in tmp.glob("*.json"):
            if before.get(p.name) != p.stat().st_mtime:
                shutil.copy2(p, out / p.name)
                summary["results_file"] = p.name
        _write_json(out / "device_check.json", summary)

    def run(name: str, cmd: list[str], log: Path | None = None) -> None:
        parts[name] = _run(name, cmd, log, env)
        collect()

    pytest = [py, "-m", "pytest", "-m", "cuda or tensorrt", "-q", "-rs", "-p", "no:cacheprovider"]
    if importlib.util.find_spec("pytest_timeout"):
        pytest.append("--timeout=60")
    run("pytest", pytest, out / "pytest.log")

    measure = [py, "-m", "benchmarks.device_check", "measure", *model_args]
    run("measure", measure + (["--dry-run"] if dry_run else []))
    _add_stage_rows(out, tmp)
    collect()

    matrix = "--sizes 720p,1080p,4k --repeats 50 --warmup 10 --e2e-frames 96"
    matrix += " --backends torch-fp16,torch-fp16-graph,onnxruntime,tensorrt-fp16"
    if dry_run:
        matrix = "--sizes 64x64 --device cpu --repeats 2 --warmup 1 --e2e-frames 3 --backends torch-fp32"
    # no --quiet: a warning such as a failed CUDA graph capture must reach the log
    run("bench", [py, "-m", "stream.cli", "bench", *matrix.split(), *model_args, "--out", str(tmp)])
    # The flow's place is decided where its cost shows most: the fastest model.
    temporal = "--temporal --models microast --repeats 2 --device cuda"
    if dry_run:
        temporal = "--temporal --models microast --repeats 1 --e2e-frames 4 --device cpu"
    temporal += " --temporal-flow host,device"
    run("temporal", [py, "-m", "stream.cli", "bench", *temporal.split(), "--out", str(tmp)])
    plot = f"--no-run --results-dir {tmp} --plot {out / 'fps.png'}"
    run("plot", [py, "-m", "stream.cli", "bench", *plot.split()])
    shutil.rmtree(tmp, ignore_errors=True)
    summary["finished"] = _now()
    _write_json(out / "device_check.json", summary)
    print(json.dumps(summary, indent=1), flush=True)
    return 0 if all(p.get("rc") == 0 for p in parts.values()) else 1


@dataclass(frozen=True)
class Options:
    """What one run does: its output folder, CPU dry run or not, which models, which part."""

    out: Path
    dry_run: bool = False
    models: str | None = None
    part: str | None = None  # "measure": the subprocess that runs part 2


USAGE = "usage: [OUT=DIR] python benchmarks/device_check.py [--dry-run] [--models A,B]"


def read_options(argv: list[str], environ: Mapping[str, str]) -> Options:
    """``[measure] [--dry-run] [--models A,B]`` and ``$OUT``: the few words device_check.sh passes on.

    ``measure`` is how the orchestrator starts part 2 in its own process. Anything else is an error.
    """
    words = list(argv)
    part = words.pop(0) if words[:1] == ["measure"] else None
    dry_run, models = False, None
    while words:
        word = words.pop(0)
        if word == "--dry-run":
            dry_run = True
        elif word == "--models" and words:
            models = words.pop(0)
        elif word.startswith("--models="):
            models = word.partition("=")[2]
        elif word in ("-h", "--help"):
            print(f"{USAGE}\n\n{__doc__}")
            sys.exit(0)
        else:
            sys.exit(f"device_check.py: unexpected argument '{word}'\n{USAGE}")
    out = Path(environ.get("OUT") or REPO / "device_out")
    return Options(out=out, dry_run=dry_run, models=models or None, part=part)


def main(argv: list[str] | None = None) -> int:
    opts = read_options(sys.argv[1:] if argv is None else argv, os.environ)
    opts.out.mkdir(parents=True, exist_ok=True)
    if str(REPO) not in sys.path:  # run as a file: make this checkout importable
        sys.path.insert(0, str(REPO))
    if opts.part == "measure":
        return measure(opts.out, opts.dry_run, opts.models)
    return orchestrate(opts.out, opts.dry_run, opts.models)


if __name__ == "__main__":
    sys.exit(main())
