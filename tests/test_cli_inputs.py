"""Awkward inputs to the stylizing commands: each works, or fails in one clear line. Real subprocesses
of ``python -m stream``, the real small model ``adain-cd16x`` and real files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
FAST = ["--model", "adain-cd16x", "--style-size", "64", "--max-side", "96"]


def stylize(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "stream", *map(str, args)],
        env=full_env,
        text=True,
        capture_output=True,
        timeout=timeout,
    )


def one_line(stderr: str) -> str:
    """The whole of stderr, checked to be a single line without a traceback."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr and "internal error" not in stderr
    return lines[0]


@pytest.fixture(scope="module")
def content(photo_image) -> Path:
    return photo_image


@pytest.fixture(scope="module")
def style(style_image) -> Path:
    return style_image


@pytest.fixture
def no_env_weights(tmp_path) -> dict:
    """A private user cache and no STYLIZE_WEIGHTS, so only --weights can provide the model."""
    return {"XDG_CACHE_HOME": str(tmp_path / "cache"), "STYLIZE_WEIGHTS": ""}


class _CodeOnLoad:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))  # plain unpickling would create the marker file


def test_weights_that_would_run_code_are_refused_in_one_line(
    content, style, tiny_weights, tmp_path, no_env_weights
):
    folder, marker = tmp_path / "weights", tmp_path / "MARKER"
    folder.mkdir()
    torch.save({"model": _CodeOnLoad(marker)}, folder / "4SE.pth")
    shutil.copy(tiny_weights / "adain-cd16x" / "4SD.pth", folder / "4SD.pth")
    out = tmp_path / "out.png"
    done = stylize(
        "image", content, "-o", out, "--style", style, "--weights", folder, *FAST, env=no_env_weights
    )
    assert done.returncode == 1
    line = one_line(done.stderr)
    assert "4SE.pth: refused: not a plain state dict" in line
    assert "\x1b" not in line and "weights_only" not in line
    assert not marker.exists() and not out.exists()


def test_explicit_weights_folder_wins_over_stylize_weights(content, style, tiny_weights, tmp_path):
    """With STYLIZE_WEIGHTS holding every model, a wrong --weights folder used to "work" silently."""
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "STYLIZE_WEIGHTS": str(tiny_weights)}
    out = tmp_path / "out.png"
    wrong = tiny_weights / "microast"
    done = stylize("image", content, "-o", out, "--style", style, "--weights", wrong, *FAST, env=env)
    assert done.returncode == 1
    line = one_line(done.stderr)
    assert f"--weights {wrong}: model 'adain-cd16x' needs 4SE.pth, 4SD.pth" in line
    assert "it holds model 'microast'" in line
    assert not out.exists()

    right = tiny_weights / "adain-cd16x"
    done = stylize("image", content, "-o", out, "--style", style, "--weights", right, *FAST, "-v", env=env)
    assert done.returncode == 0, done.stderr
    assert f"model adain-cd16x: weights from {right}" in done.stderr
    assert out.is_file()


def test_image_output_suffix_that_no_encoder_writes_is_an_error_not_a_folder(content, style, tmp_path):
    out = tmp_path / "out.txt"
    done = stylize("image", content, "-o", out, "--style", style, *FAST)
    assert done.returncode == 1
    line = one_line(done.stderr)
    assert "cannot write '.txt' images; use one of" in line and ".png" in line and ".jpg" in line
    assert not out.exists()


def test_image_output_gif_is_a_file_and_a_dotted_folder_takes_a_slash(content, style, tiny_weights, tmp_path):
    import cv2

    gif = tmp_path / "out.gif"
    done = stylize("image", content, "-o", gif, "--style", style, "--weights", tiny_weights, *FAST)
    if cv2.haveImageWriter("x.gif"):  # OpenCV 5 writes GIF; 4.x does not
        assert done.returncode == 0, done.stderr
        assert gif.is_file()
    else:
        assert done.returncode == 1 and "cannot write '.gif' images" in one_line(done.stderr)
        assert not gif.exists()

    folder = tmp_path / "results.v2"  # also: "--" ends the --style list, so the content may follow it
    done = stylize(
        "image", "-o", f"{folder}/", "--weights", tiny_weights, *FAST, "--style", style, "--", content
    )
    assert done.returncode == 0, done.stderr
    assert [p.name for p in folder.iterdir()] == [f"{Path(content).stem}_stylized.png"]


@pytest.mark.parametrize(
    "command, positionals, missing",
    [
        ("image", ["{content}"], "content"),
        ("convert", ["{video}", "{out}/o.mp4"], "input and output"),
    ],
)
def test_style_list_that_swallowed_the_positionals_says_so(
    command, positionals, missing, photo_image, style_image, clip, tmp_path
):
    names = {
        "content": photo_image,
        "video": clip,
        "out": tmp_path,
    }
    taken = [p.format(**names) for p in positionals]
    extra = ["-o", str(tmp_path / "o.png")] if command == "image" else []
    style = str(style_image)
    done = stylize(command, *extra, "--style", style, *taken)
    assert done.returncode == 2
    line = one_line(done.stderr)
    assert f"--style took {style} {' '.join(taken)}, leaving no {missing}" in line
    assert "put --style after them, or end its list with --" in line


@pytest.mark.parametrize("command", ["image", "convert", "live"])
def test_every_existing_output_refusal_names_overwrite(command, content, style, clip, tmp_path):
    mine = tmp_path / ("mine.png" if command == "image" else "mine.mp4")
    mine.write_bytes(b"precious")
    args = {
        "image": ["image", content, "-o", mine],
        "convert": ["convert", clip, mine],
        "live": ["live", "--no-window", "--record", mine],
    }[command]
    done = stylize(*args, "--style", style)
    assert done.returncode == 1
    line = one_line(done.stderr)
    assert f"output file already exists: {mine} (use --overwrite to replace it)" in line
    assert mine.read_bytes() == b"precious"
