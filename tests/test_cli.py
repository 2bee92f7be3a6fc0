"""The `stylize` command end to end: real (randomly initialised) models, real files, real subprocesses."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest

from media import CLIP_FPS, make_clip, painting, photo, write_image
from stream.cli import main

REPO = Path(__file__).resolve().parents[1]


def stylize(*args: str, cwd: Path | None = None, **popen) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "stream.cli", *args],
        cwd=cwd,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **popen,
    )


def audio_packets(path: Path, until: float) -> list[bytes]:
    with av.open(str(path)) as c:
        s = c.streams.audio[0]
        return [
            bytes(p)
            for p in c.demux(s)
            if p.size and p.pts is not None and float(p.pts * s.time_base) < until
        ]


def video_summary(path: Path) -> tuple[int, float, float]:
    """(decoded frame count, average fps, duration of the video stream in seconds)."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = sum(1 for _ in c.decode(s))
        return frames, float(s.average_rate), float(s.duration * s.time_base)


@pytest.fixture(scope="module")
def video(clip) -> Path:
    """The input video: the session clip (3 s at 24 fps, 192×108, AAC)."""
    return clip


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    """Long enough (1500 frames, with sound) that a conversion is still running when it is interrupted."""
    return make_clip(tmp_path_factory.mktemp("long") / "long.mp4", frames=1500, size=(128, 72), seed=3)


@pytest.fixture(scope="module")
def style(tmp_path_factory) -> str:
    return str(write_image(tmp_path_factory.mktemp("style") / "style.jpg", painting(128, 128)))


def test_convert_keeps_frames_rate_duration_and_audio(video, style, tiny_weights, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    code = main(
        [
            "convert",
            str(video),
            str(out),
            "--style",
            style,
            "--weights",
            str(tiny_weights),
            "--model",
            "adain-cd16x",
            "--duration",
            "2",
            "--size",
            "96",
            "--style-size",
            "128",
        ]
    )
    assert code == 0, capsys.readouterr().err
    frames, fps, duration = video_summary(out)
    assert abs(frames - 2 * CLIP_FPS) <= 1  # 2 s at 24 fps
    assert fps == pytest.approx(CLIP_FPS, abs=0.01)
    assert duration == pytest.approx(2.0, abs=1 / CLIP_FPS + 1e-6)
    with av.open(str(out)) as c:
        assert c.streams.video[0].height == 96
    copied = audio_packets(out, until=2.0)
    assert len(copied) > 50
    assert copied == audio_packets(video, until=2.0)[: len(copied)]
    assert len(copied) >= len(audio_packets(video, until=2.0)) - 1


def test_image_command_mixes_styles_into_a_folder(tiny_weights, tmp_path, capsys):
    contents = tmp_path / "contents"
    contents.mkdir()
    for seed in (0, 1):
        write_image(contents / f"photo-{seed}.jpg", photo(200, 150, seed))
    styles = [str(write_image(tmp_path / f"style-{seed}.jpg", painting(96, 96, seed))) for seed in (0, 1)]
    code = main(
        [
            "image",
            str(contents),
            "-o",
            str(tmp_path / "out"),
            "--style",
            *styles,
            "--style-weights",
            "3",
            "1",
            "--weights",
            str(tiny_weights),
            "--max-side",
            "128",
            "--preserve-color",
        ]
    )
    assert code == 0, capsys.readouterr().err
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["photo-0_stylized.png", "photo-1_stylized.png"]


def test_interrupted_conversion_leaves_a_playable_file_or_none(long_clip, style, tiny_weights, tmp_path):
    out = tmp_path / "out.mp4"
    proc = stylize(
        "convert",
        str(long_clip),
        str(out),
        "--style",
        style,
        "--weights",
        str(tiny_weights),
        "--model",
        "adain-cd16x",
        "--size",
        "64",
        "--style-size",
        "64",
        "-v",
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None and not list(tmp_path.glob(".*partial*")):
        time.sleep(0.05)
    time.sleep(1.0)  # let some frames be encoded
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert not list(tmp_path.glob(".*partial*"))
    if out.exists():
        frames, _, _ = video_summary(out)
        assert frames > 0 and f"the {frames} frames done were saved" in err
    else:
        assert "no output file was written" in err


@pytest.mark.parametrize(
    "make_input, message",
    [
        (lambda tmp, video: tmp / "missing.mp4", "video file not found"),
        (lambda tmp, video: _write(tmp / "notes.mp4", b"just text, not a video\n" * 20), "not a video file"),
        (lambda tmp, video: _write(tmp / "cut.mp4", _head(video, 0.3)), "cut.mp4"),  # index lost
    ],
)
def test_bad_inputs_give_one_clear_line(make_input, message, video, style, tmp_path):
    src = make_input(tmp_path, video)
    proc = stylize("convert", str(src), str(tmp_path / "o.mp4"), "--style", style)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--alpha", "1.5"], "--alpha must be between 0 and 1"),
        (["--style-weights", "1", "2"], "--style-weights has 2 values for 1 styles"),
        (["--size", "4"], "--size must be at least 16"),
    ],
)
def test_bad_arguments_are_rejected_before_any_work(args, message, video, style, tmp_path, capsys):
    assert main(["convert", str(video), str(tmp_path / "o.mp4"), "--style", style, *args]) == 1
    assert message in capsys.readouterr().err


def test_output_equal_to_input_and_existing_output_are_refused(video, style, tmp_path, capsys):
    copy = tmp_path / "in.mp4"
    shutil.copy(video, copy)
    assert main(["convert", str(copy), str(copy), "--style", style]) == 1
    assert "is the input file" in capsys.readouterr().err
    existing = tmp_path / "mine.mp4"
    existing.write_bytes(b"precious")
    assert main(["convert", str(copy), str(existing), "--style", style]) == 1
    assert "already exists" in capsys.readouterr().err
    assert existing.read_bytes() == b"precious"


def _head(path: Path, fraction: float) -> bytes:
    """The first ``fraction`` of a file (of an MP4 written without faststart: its index is lost)."""
    data = path.read_bytes()
    return data[: int(len(data) * fraction)]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
