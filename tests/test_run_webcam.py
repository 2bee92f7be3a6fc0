"""run_webcam.py end to end. No test machine has a camera, so a video file opened by the same
cv2.VideoCapture stands in for one (read at its frame rate, as a camera delivers); the window is left
out (tests/test_display.py covers it)."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest

from media import painting, write_image
from stream.frames import Frame
from stream.live import CaptureTimedSink
from stream.video_sink import VideoFileSink

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
        (["--loop"], "--loop is for a video file given as --camera"),
    ],
)
def test_bad_setups_give_one_clear_line(args, message, tmp_path):
    style = write_image(tmp_path / "style.jpg", painting(64, 64))
    done = run_webcam("--style", str(style), *args, timeout=60)
    assert done.returncode == 1
    assert message in done.stderr and "Traceback" not in done.stderr


def recording_seconds(path: Path) -> float:
    with av.open(str(path)) as c:
        return c.duration / av.time_base


def session(stdout: str) -> tuple[int, float]:
    """(frames, seconds) from the closing line "N frames in S s: ..."."""
    found = re.search(r"(\d+) frames in ([\d.]+) s", stdout)
    assert found, stdout
    return int(found[1]), float(found[2])


def live_on_clip(
    clip: Path, weights: Path, style: Path, record: Path, *args: str
) -> subprocess.CompletedProcess:
    return run_webcam(
        "--camera", str(clip), "--style", str(style), "--model", "adain-cd16x", "--weights", str(weights),
        "--style-size", "64", "--no-window", "--record", str(record), *args, timeout=45,
    )  # fmt: skip


def test_a_video_file_camera_plays_once_and_the_recording_lasts_the_session(
    short_clip, tiny_weights, style_image, tmp_path
):
    """The 1 s clip ends the session long before --seconds 60: no timer may hold the process open."""
    out = tmp_path / "session.mp4"
    start = time.monotonic()
    done = live_on_clip(short_clip, tiny_weights, style_image, out, "--seconds", "60")
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - start < 40
    frames, seconds = session(done.stdout)
    assert 0.8 <= seconds <= 1.5  # paced at 20 fps, once (a file read unpaced takes ~0.1 s)
    assert frames <= 20
    assert recording_seconds(out) == pytest.approx(seconds, abs=0.25)


def test_a_looped_video_file_camera_runs_until_seconds(short_clip, tiny_weights, style_image, tmp_path):
    out = tmp_path / "session.mp4"
    done = live_on_clip(short_clip, tiny_weights, style_image, out, "--loop", "--seconds", "2.5")
    assert done.returncode == 0, done.stderr
    frames, seconds = session(done.stdout)
    assert seconds == pytest.approx(2.5, abs=0.4) and frames > 20  # more than one pass of the clip
    assert recording_seconds(out) == pytest.approx(seconds, abs=0.3)


def test_a_missing_camera_is_one_line_on_stderr(style_image):
    """OpenCV prints a dozen lines of its own for a missing camera unless -v asks for them."""
    if Path("/dev/video9").exists():
        pytest.skip("this machine has a camera 9")
    done = run_webcam("--camera", "9", "--style", str(style_image), timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "run_webcam: error: could not open camera 9: no such device, or it is in use by another program"
    ]


def test_a_live_recording_is_timed_by_capture_not_by_frame_index(tmp_path):
    """Live frames skip indices (stale ones dropped): 6 frames captured 0.1 s apart make 0.5 s plus the
    last frame's 1/30 s, where timing by index at 30 fps would make 151 frames = 5 s."""
    out = tmp_path / "rec.mp4"
    sink = CaptureTimedSink(VideoFileSink(out, width=64, height=48, fps=30))
    t0 = time.monotonic()
    for i in range(6):
        image = np.full((48, 64, 3), 40 * i, dtype=np.uint8)
        sink.write(Frame(image=image, index=30 * i, captured_at=t0 + 0.1 * i))
    sink.close()
    assert recording_seconds(out) == pytest.approx(0.5 + 1 / 30, abs=0.02)


def test_the_seconds_timer_thread_has_ended_when_the_session_returns(
    short_clip, tiny_weights, style_image, tmp_path, monkeypatch
):
    """``--seconds`` arms a timer that holds the pipeline (and so the model's tensors). Its thread must
    be over when the command returns: a thread that drops the last reference to a tensor while the
    interpreter shuts down aborts the process. The timer is slowed down here, as a loaded machine
    would, so that a command which only cancels it (without joining) leaves it running."""
    import threading

    from stream.cli import main

    class SlowTimer(threading.Timer):
        def run(self):
            super().run()
            time.sleep(0.5)

    monkeypatch.setattr(threading, "Timer", SlowTimer)
    before = set(threading.enumerate())
    code = main(
        ["live", "--camera", str(short_clip), "--style", str(style_image), "--model", "adain-cd16x",
         "--weights", str(tiny_weights), "--style-size", "64", "--no-window", "--seconds", "60", "-q",
         "--record", str(tmp_path / "session.mp4")]
    )  # fmt: skip
    assert code == 0
    assert [t for t in threading.enumerate() if t not in before and isinstance(t, SlowTimer)] == []
