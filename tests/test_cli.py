"""The `stylize` command end to end: real models, real files, real subprocesses."""

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
def bunny(shared_media) -> Path:
    return shared_media / "video" / "big_buck_bunny_480p_30s.mp4"


@pytest.fixture(scope="module")
def style(shared_media) -> str:
    return str(shared_media / "style" / "la_muse.jpg")


def test_convert_keeps_frames_rate_duration_and_audio(bunny, style, shared_weights, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    code = main(
        [
            "convert",
            str(bunny),
            str(out),
            "--style",
            style,
            "--weights",
            str(shared_weights),
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
    assert abs(frames - 48) <= 1  # 2 s at 24 fps
    assert fps == pytest.approx(24, abs=0.01)
    assert duration == pytest.approx(2.0, abs=1 / 24 + 1e-6)
    with av.open(str(out)) as c:
        assert c.streams.video[0].height == 96
    copied = audio_packets(out, until=2.0)
    assert len(copied) > 50
    assert copied == audio_packets(bunny, until=2.0)[: len(copied)]
    assert len(copied) >= len(audio_packets(bunny, until=2.0)) - 1


def test_image_command_mixes_styles_into_a_folder(shared_media, shared_weights, tmp_path, capsys):
    contents = tmp_path / "contents"
    contents.mkdir()
    for name in ("chicago.jpg", "cornell.jpg"):
        shutil.copy(shared_media / "content" / name, contents / name)
    styles = [str(shared_media / "style" / n) for n in ("la_muse.jpg", "mondrian.jpg")]
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
            str(shared_weights),
            "--max-side",
            "128",
            "--preserve-color",
        ]
    )
    assert code == 0, capsys.readouterr().err
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["chicago_stylized.png", "cornell_stylized.png"]


def test_interrupted_conversion_leaves_a_playable_file_or_none(bunny, style, shared_weights, tmp_path):
    out = tmp_path / "out.mp4"
    proc = stylize(
        "convert",
        str(bunny),
        str(out),
        "--style",
        style,
        "--weights",
        str(shared_weights),
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
        (lambda tmp, bunny: tmp / "missing.mp4", "video file not found"),
        (lambda tmp, bunny: _write(tmp / "notes.mp4", b"just text, not a video\n" * 20), "not a video file"),
        (lambda tmp, bunny: _write(tmp / "cut.mp4", bunny.read_bytes()[:1_200_000]), "cut.mp4"),
    ],
)
def test_bad_inputs_give_one_clear_line(make_input, message, bunny, style, tmp_path):
    src = make_input(tmp_path, bunny)
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
def test_bad_arguments_are_rejected_before_any_work(args, message, bunny, style, tmp_path, capsys):
    assert main(["convert", str(bunny), str(tmp_path / "o.mp4"), "--style", style, *args]) == 1
    assert message in capsys.readouterr().err


def test_output_equal_to_input_and_existing_output_are_refused(bunny, style, tmp_path, capsys):
    copy = tmp_path / "in.mp4"
    shutil.copy(bunny, copy)
    assert main(["convert", str(copy), str(copy), "--style", style]) == 1
    assert "is the input file" in capsys.readouterr().err
    existing = tmp_path / "mine.mp4"
    existing.write_bytes(b"precious")
    assert main(["convert", str(copy), str(existing), "--style", style]) == 1
    assert "already exists" in capsys.readouterr().err
    assert existing.read_bytes() == b"precious"


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
