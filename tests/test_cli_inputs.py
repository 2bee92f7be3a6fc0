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
def content(shared_media) -> Path:
    return shared_media / "content" / "chicago.jpg"


@pytest.fixture(scope="module")
def style(shared_media) -> Path:
    return shared_media / "style" / "la_muse.jpg"


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
    content, style, shared_weights, tmp_path, no_env_weights
):
    folder, marker = tmp_path / "weights", tmp_path / "MARKER"
    folder.mkdir()
    torch.save({"model": _CodeOnLoad(marker)}, folder / "4SE.pth")
    shutil.copy(shared_weights / "adain-cd16x" / "4SD.pth", folder / "4SD.pth")
    out = tmp_path / "out.png"
    done = stylize(
        "image", content, "-o", out, "--style", style, "--weights", folder, *FAST, env=no_env_weights
    )
    assert done.returncode == 1
    line = one_line(done.stderr)
    assert "4SE.pth: refused: not a plain state dict" in line
    assert "\x1b" not in line and "weights_only" not in line
    assert not marker.exists() and not out.exists()


def test_explicit_weights_folder_wins_over_stylize_weights(content, style, shared_weights, tmp_path):
    """With STYLIZE_WEIGHTS holding every model, a wrong --weights folder used to "work" silently."""
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "STYLIZE_WEIGHTS": str(shared_weights)}
    out = tmp_path / "out.png"
    wrong = shared_weights / "microast"
    done = stylize("image", content, "-o", out, "--style", style, "--weights", wrong, *FAST, env=env)
    assert done.returncode == 1
    line = one_line(done.stderr)
    assert f"--weights {wrong}: model 'adain-cd16x' needs 4SE.pth, 4SD.pth" in line
    assert "it holds model 'microast'" in line
    assert not out.exists()

    right = shared_weights / "adain-cd16x"
    done = stylize("image", content, "-o", out, "--style", style, "--weights", right, *FAST, "-v", env=env)
    assert done.returncode == 0, done.stderr
    assert f"model adain-cd16x: weights from {right}" in done.stderr
    assert out.is_file()
