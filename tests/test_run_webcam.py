"""run_webcam.py end to end. No test machine has a camera, so a video file opened by the same
cv2.VideoCapture stands in for one; the window is left out (tests/test_display.py covers it)."""

import os
import subprocess
import sys
from pathlib import Path

import av
import pytest

from media import painting, write_image

REPO = Path(__file__).resolve().parents[1]


def run_webcam(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, str(REPO / "run_webcam.py"), *args],
        env=env,
        text=True,
        capture_output=True,
        timeout=timeout,
    )


def test_records_the_live_stream_and_reports_what_it_ran(clip, tiny_weights, tmp_path):
    out = tmp_path / "session.mp4"
    styles = ",".join(str(write_image(tmp_path / f"style-{i}.jpg", painting(128, 96, i))) for i in (0, 1))
    done = run_webcam(
        "--camera",
        str(clip),  # 192×108
        "--style",
        styles,
        "--model",
        "adain-cd16x",
        "--weights",
        str(tiny_weights),
        "--style-size",
        "64",
        "--max-side",
        "160",
        "--no-window",
        "--record",
        str(out),
        "--seconds",
        "3",
    )
    assert done.returncode == 0, done.stderr
    assert "adain-cd16x" in done.stdout and "cpu" in done.stdout
    assert "fps" in done.stdout and "stale frames dropped" in done.stdout
    with av.open(str(out)) as c:
        v = c.streams.video[0]
        assert (v.codec_context.width, v.codec_context.height) == (160, 90)
        assert sum(1 for _ in c.decode(v)) > 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--camera", "/nonexistent/camera.mp4"], "could not open camera"),
        (["--no-window"], "--no-window needs another output"),
        (["--alpha", "-1"], "--alpha must be between 0 and 1"),
    ],
)
def test_bad_setups_give_one_clear_line(args, message, tmp_path):
    style = write_image(tmp_path / "style.jpg", painting(64, 64))
    done = run_webcam("--style", str(style), *args, timeout=60)
    assert done.returncode == 1
    assert message in done.stderr and "Traceback" not in done.stderr
