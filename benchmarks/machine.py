"""The machine a benchmark ran on, and its arithmetic ceiling.

Each result is also given as a fraction of the device's peak (see :func:`device_peak`): achieved
FLOP/s = FLOPs per frame (:func:`engines.flops.count_flops`, convolutions only) × FPS. The peaks are
paper figures, so the fraction is an approximation meant for comparing backends and devices.

:func:`machine_info` records hardware and software with the results; its ``id`` names the results
file and holds no hostname, so files can be committed.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path

import torch

from benchmarks.results import now

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
    """The datasheet fp16 peak of the GPU called ``name`` (see ``GPU_FP16_PEAKS``), None if unknown."""
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
    """``"NVIDIA H100 80GB HBM3"`` → ``"nvidia-h100-80gb-hbm3"``: safe as a file name."""
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
