#!/usr/bin/env bash
# The GPU machine's one command: install the carried wheels, point the tests and the benchmark at the
# carried weights and media, then run benchmarks/device_check.py (about 7.5 minutes, each part under its
# own timeout). Device tool: carry [".whl", ".device"], command "bash benchmarks/device_check.sh",
# timeout_s 560.
# Fill .whl/ and .device/ first with benchmarks/prepare_device.sh. Extra arguments go to the script
# (--models A,B; --dry-run). Results land in $OUT (default ./device_out), which the script reads.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/device_out}
mkdir -p "$OUT"
export OUT PYTHONUNBUFFERED=1

if compgen -G ".whl/*.whl" >/dev/null; then
    timeout 120 python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || echo "device_check: wheel install failed; going on"
fi
export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"

# Weights and media: STYLIZE_SHARED, which the benchmark and the tests' shared fixture both read; the
# link is for anything that still looks at ../shared.
if [ -d .device ]; then
    export STYLIZE_SHARED="$PWD/.device"
    [ -e ../shared ] || ln -s "$PWD/.device" ../shared 2>/dev/null || echo "device_check: cannot link ../shared"
else
    echo "device_check: no .device/ (run benchmarks/prepare_device.sh and carry it); using ../shared"
fi

{
    echo "=== environment"
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 || true
    python3 -c 'import sys, torch, av; print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda,
        "gpu", torch.cuda.is_available() and torch.cuda.get_device_name(), "av", av.__version__)' 2>&1
    timeout 470 python3 benchmarks/device_check.py "$@" 2>&1
    echo "=== device_check.py exit code $?"
} | tee "$OUT/device_check.log"
