"""The benchmark harness: statistics, ceilings, results files and the chart. No timing is asserted."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from benchmarks.device_check import REPO, _add_stage_rows, read_options
from benchmarks.machine import cpu_peak_tflops, gpu_peak_tflops
from benchmarks.matrix import e2e_sizes, parse_sizes
from benchmarks.results import COMMITTED_DIR, PLOT_NAME, SCHEMA, merge_results, plot_results
from benchmarks.timing import latency_stats
from engines.errors import StylizeError
from media import CLIP_SIZE
from stream.cli import main


def test_latency_stats_from_known_timings() -> None:
    ms = list(range(1, 21))  # 1..20 ms
    random.Random(0).shuffle(ms)
    stats = latency_stats([m / 1000 for m in ms])
    # linear interpolation: p50 halfway between 10 and 11, p95 at rank 0.95·19 = 18.05 → 19.05 ms
    assert stats["p50_ms"] == pytest.approx(10.5)
    assert stats["p95_ms"] == pytest.approx(19.05)
    assert stats["mean_ms"] == pytest.approx(10.5)
    assert stats["fps"] == pytest.approx(1000 / 10.5)
    assert latency_stats([0.004])["p95_ms"] == pytest.approx(4.0)
    with pytest.raises(ValueError):
        latency_stats([])


def test_peaks_formula_and_gpu_table() -> None:
    tflops, formula = cpu_peak_tflops(2, 2.5, {"avx", "avx2", "fma", "avx512f"})
    assert tflops == pytest.approx(2 * 2.5 * 64 / 1000) and "64 fp32 FLOP/cycle" in formula
    assert cpu_peak_tflops(4, 3.0, {"avx", "avx2", "fma"})[0] == pytest.approx(4 * 3.0 * 32 / 1000)
    assert gpu_peak_tflops("NVIDIA H100 80GB HBM3") == 989.4
    assert gpu_peak_tflops("NVIDIA H100 PCIe") == 756.5
    assert gpu_peak_tflops("NVIDIA H200") == 989.4
    assert gpu_peak_tflops("NVIDIA L40S") == 362.05  # not mistaken for an L4
    assert gpu_peak_tflops("Tesla V100-PCIE-16GB") == 112.0
    assert gpu_peak_tflops("Some Future GPU") is None


def test_sizes_and_end_to_end_sizes() -> None:
    assert parse_sizes("256x256, 1280x720,1080p") == [(256, 256), (1280, 720), (1920, 1080)]
    with pytest.raises(StylizeError):
        parse_sizes("720")
    # native first, then each HD size: as is where the video's shape is 16:9 to within 1 % (854:480 is
    # 0.1 % wider), so end-to-end and model-only rows of 1080p have the same pixels; tiny sizes add nothing
    got = e2e_sizes((854, 480), [(256, 256), (1920, 1080), (1280, 720)])
    assert got == [(854, 480), (1280, 720), (1920, 1080)]
    # another shape keeps the video's: its shorter side becomes the size's height, even sides
    assert e2e_sizes((640, 480), [(1920, 1080)]) == [(640, 480), (1440, 1080)]
    assert e2e_sizes((480, 854), [(1920, 1080)]) == [(480, 854), (1080, 1922)]


def test_merge_replaces_measured_cells_and_keeps_the_rest() -> None:
    def row(backend: str, fps: float) -> dict:
        return {
            "kind": "model",
            "model": "m",
            "backend": backend,
            "width": 8,
            "height": 8,
            "megapixels": 0.0001,
            "fps": fps,
        }

    old = {"machine": {"id": "a"}, "results": [row("torch-fp32", 1), row("onnxruntime", 2)]}
    new = {"machine": {"id": "a"}, "results": [row("torch-fp32", 3)]}
    merged = merge_results(old, new)
    assert sorted((r["backend"], r["fps"]) for r in merged["results"]) == [
        ("onnxruntime", 2),
        ("torch-fp32", 3),
    ]
    assert merge_results({**old, "machine": {"id": "b"}}, new) == new  # another machine: replaced


def test_merge_keeps_temporal_rows_of_the_other_flow() -> None:
    """A ``bench --temporal --temporal-flow device`` run replaces the device row, not the host one (an
    old row without ``temporal_flow`` was measured with the host's flow)."""
    row = {
        "kind": "temporal",
        "model": "m",
        "backend": "torch",
        "width": 8,
        "height": 8,
        "megapixels": 0.0001,
    }
    old = {
        "machine": {"id": "a"},
        "results": [{**row, "fps": 1}, {**row, "temporal_flow": "device", "fps": 2}],
    }
    new = {"machine": {"id": "a"}, "results": [{**row, "temporal_flow": "device", "fps": 3}]}
    assert sorted(r["fps"] for r in merge_results(old, new)["results"]) == [1, 3]


def test_bench_command_writes_documented_json(tiny_weights: Path, clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "cpu.json"
    video = clip
    args = [
        "bench",
        "--models",
        "microast",
        "--backends",
        "torch-fp32",
        "--sizes",
        "64x64",
        "--device",
        "cpu",
        "--repeats",
        "2",
        "--warmup",
        "1",
        "--e2e-frames",
        "2",
        "--video",
        str(video),
        "--weights",
        str(tiny_weights),
        "--out",
        str(out),
        "--quiet",
        "--note",
        "test run",
    ]
    assert main(args) == 0
    doc = json.loads(out.read_text())
    assert doc["schema"] == SCHEMA and doc["notes"] == ["test run"]
    machine = doc["machine"]
    for key in (
        "id",
        "device",
        "gpu",
        "cpu",
        "driver",
        "cuda",
        "torch",
        "onnxruntime",
        "tensorrt",
        "python",
        "date",
    ):
        assert key in machine
    assert machine["device"] == "cpu" and machine["id"].endswith("c")
    assert doc["peak"]["tflops"] > 0 and "FLOP/cycle" in doc["peak"]["basis"]
    rows = {r["kind"]: r for r in doc["results"]}
    assert set(rows) == {"model", "e2e"}
    model, e2e = rows["model"], rows["e2e"]
    assert model["status"] == "ok" and (model["width"], model["height"]) == (64, 64)
    assert model["fps"] > 0 and 0 < model["p50_ms"] <= model["p95_ms"] and model["repeats"] == 2
    assert model["flops_per_frame"] > 0 and 0 < model["peak_fraction"] < 1
    assert e2e["status"] == "ok" and (e2e["width"], e2e["height"]) == CLIP_SIZE  # the clip's own size
    assert e2e["frames"] == 2 and e2e["fps"] > 0 and 0 < e2e["peak_fraction"] < 1


def test_plot_draws_every_results_file(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    for machine, gpu, fps in (("cpu-2c", None, 5.0), ("nvidia-h100", "NVIDIA H100", 500.0)):
        rows = [
            {
                "kind": "model",
                "model": "microast",
                "backend": "torch-fp32",
                "width": s,
                "height": s,
                "megapixels": s * s / 1e6,
                "fps": fps / s,
                "status": "ok",
            }
            for s in (256, 512)
        ]
        doc = {"machine": {"id": machine, "gpu": gpu}, "results": rows}
        (tmp_path / f"{machine}.json").write_text(json.dumps(doc))
    png = tmp_path / "fps.png"
    assert plot_results(tmp_path, png) == 2
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _listing(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} if folder.is_dir() else {}


def test_bench_writes_to_the_current_folder_not_the_package(
    tiny_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    committed = _listing(COMMITTED_DIR)
    monkeypatch.chdir(tmp_path)
    args = ["bench", "--models", "microast", "--backends", "torch-fp32", "--sizes", "32x32"]
    args += ["--device", "cpu", "--repeats", "1", "--warmup", "0", "--no-e2e"]
    assert main([*args, "--weights", str(tiny_weights), "--quiet"]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["bench-results"]
    written = list((tmp_path / "bench-results").iterdir())
    assert len(written) == 1
    doc = json.loads(written[0].read_text())
    assert written[0].name == f"{doc['machine']['id']}.json" and len(doc["results"]) == 1
    assert _listing(COMMITTED_DIR) == committed


def test_plot_charts_the_output_folder_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("matplotlib")
    rows = [
        {"kind": "model", "model": "m", "backend": "torch-fp32", "width": s, "height": s}
        | {"megapixels": s * s / 1e6, "fps": 100 / s, "status": "ok"}
        for s in (256, 512)
    ]
    out = tmp_path / "bench-results"
    out.mkdir()
    (out / "cpu-2c.json").write_text(json.dumps({"machine": {"id": "cpu-2c", "gpu": None}, "results": rows}))
    committed = _listing(COMMITTED_DIR)
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "--no-run", "--plot", "--quiet"]) == 0
    assert (out / PLOT_NAME).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    other = tmp_path / "elsewhere"  # --out names the folder of both the results and the chart
    assert main(["bench", "--no-run", "--plot", "--results-dir", str(out), "--out", str(other)]) == 0
    assert (other / PLOT_NAME).is_file()
    assert _listing(COMMITTED_DIR) == committed


def test_device_check_reads_its_few_options_by_hand() -> None:
    opts = read_options(["--dry-run", "--models", "microast"], {"OUT": "/tmp/out"})
    assert (opts.out, opts.dry_run, opts.models, opts.part) == (Path("/tmp/out"), True, "microast", None)
    opts = read_options(["measure", "--models=a,b"], {})
    assert (opts.out, opts.dry_run, opts.models, opts.part) == (REPO / "device_out", False, "a,b", "measure")
    with pytest.raises(SystemExit, match="unexpected argument '--out'"):
        read_options(["--out", "x"], {})


def test_device_check_puts_the_stage_comparison_into_the_machines_results(tmp_path: Path) -> None:
    """Part 2's serial-vs-pipelined rows land in <machine>.json beside the matrix's, which stay."""
    machine = {"id": "nvidia-h200", "name": "NVIDIA H200"}
    cell = {"model": "microast", "width": 1920, "height": 1080}
    fps = {
        k: {"fps": v} for k, v in (("model_only", 400.0), ("serial_loop", 90.0), ("pipeline_depth1", 200.0))
    }
    measured = {
        "machine": machine,
        "rows": [
            {**cell, "backend": "torch-fp16", **fps, "pipeline_depth2": {"fps": 380.0}},
            {**cell, "backend": "torch-fp16-compile", "error": "boom"},
        ],
    }
    (tmp_path / "measure.json").write_text(json.dumps(measured))
    results = tmp_path / "results"
    results.mkdir()
    matrix_row = {
        "kind": "model",
        **cell,
        "backend": "torch-fp16",
        "megapixels": 2.0736,
        "status": "ok",
        "fps": 1.0,
    }
    doc = {"schema": SCHEMA, "machine": machine, "peak": {"tflops": 989}, "results": [matrix_row]}
    (results / "nvidia-h200.json").write_text(json.dumps(doc))

    _add_stage_rows(tmp_path, results)

    merged = json.loads((results / "nvidia-h200.json").read_text())
    assert merged["peak"] == {"tflops": 989} and matrix_row in merged["results"]
    stage = {r["backend"]: r for r in merged["results"] if r["kind"] == "stage"}
    ok = stage["torch-fp16"]
    assert (ok["status"], ok["fps"], ok["serial_loop_fps"], ok["pipeline_depth1_fps"]) == (
        "ok",
        380.0,
        90.0,
        200.0,
    )
    assert ok["model_only_fps"] == 400.0 and ok["megapixels"] == 2.0736
    assert (stage["torch-fp16-compile"]["status"], stage["torch-fp16-compile"]["note"]) == ("error", "boom")
