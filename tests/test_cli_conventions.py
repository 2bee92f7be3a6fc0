"""What users expect of any command line: --version, python -m, examples in every --help, -v/-q,
and one clear line for a misplaced option."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from stream.cli import COMMANDS, build_parser, main

REPO = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=60
    )


def test_version_and_python_dash_m():
    done = run("-m", "stream", "--version")
    assert done.returncode == 0 and done.stdout.startswith("stylize ")
    done = run("-m", "stream", "--help")
    assert done.returncode == 0
    for name in COMMANDS:
        assert name in done.stdout


def test_run_webcam_is_stylize_live():
    done = run("run_webcam.py", "--help")
    assert done.returncode == 0 and done.stdout.startswith("usage: run_webcam.py")
    ours = build_parser(command="live")
    wrapped = {a.dest for a in ours._actions}
    subparsers = next(a for a in build_parser()._actions if a.dest == "command")
    live = subparsers.choices["live"]
    assert wrapped == {a.dest for a in live._actions}  # the same options, one definition


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_has_examples_and_no_developer_text(name, capsys):
    with pytest.raises(SystemExit) as done:
        main([name, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text and f"stylize {name}" in text.split("examples:")[1]
    for marker in (":class:", ":func:", ":mod:", "``"):
        assert marker not in text
    assert "-v, --verbose" in text and "-q, --quiet" in text


def test_verbose_and_quiet_exclude_each_other(capsys):
    with pytest.raises(SystemExit):
        main(["export", "-v", "-q"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_an_option_of_another_backend_is_one_line(tmp_path, capsys):
    cv2.imwrite(str(tmp_path / "in.png"), np.zeros((32, 32, 3), np.uint8))
    code = main(
        ["image", str(tmp_path / "in.png"), "-o", str(tmp_path / "o.png"), "--style", "s.jpg",
         "--backend", "onnxruntime", "--cuda-graph", "--model", "microast", "--no-download"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert "onnxruntime backend has no option 'cuda_graph'" in err and "Traceback" not in err


ENCODE = """
import sys
import numpy as np
from stream.cli import configure_output
from stream.frames import Frame
from stream.video_sink import VideoFileSink
configure_output(verbose=sys.argv[1] == "-v", quiet=False, prog="stylize")
for codec in ("libx265", "libsvtav1"):
    with VideoFileSink(sys.argv[2] + codec + ".mkv", width=64, height=48, fps=24, codec=codec) as sink:
        for i in range(3):
            sink.write(Frame(np.full((48, 64, 3), 40 * i, np.uint8), i))
"""


def test_encoder_chatter_only_with_verbose(tmp_path):
    """x265 and SVT-AV1 print banners straight to stderr; without -v there must be none."""
    quiet = run("-c", ENCODE, "", str(tmp_path / "q"))
    assert quiet.returncode == 0 and quiet.stderr == ""
    loud = run("-c", ENCODE, "-v", str(tmp_path / "v"))
    assert loud.returncode == 0 and "x265 [info]" in loud.stderr
