"""One atomic-write helper: readers see the old file or the new one; permissions follow the umask."""

from __future__ import annotations

import os
import stat

import pytest

from engines.atomic import atomic_path, write_atomic


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_atomic_replaces_and_respects_the_umask(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    old = os.umask(0o027)
    try:
        write_atomic(target, b"new")
    finally:
        os.umask(old)
    assert target.read_bytes() == b"new"
    assert mode(target) == 0o640  # mkstemp alone would give 0600
    assert os.listdir(tmp_path) == ["out.bin"]


def test_default_umask_gives_0644(tmp_path):
    old = os.umask(0o022)
    try:
        write_atomic(tmp_path / "a.png", b"x")
    finally:
        os.umask(old)
    assert mode(tmp_path / "a.png") == 0o644


def test_a_failed_writer_leaves_the_target_and_no_temporary(tmp_path):
    target = tmp_path / "clip.mp4"
    target.write_bytes(b"keep")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".mp4" and tmp.name.startswith(".")
        tmp.write_bytes(b"half")
        raise RuntimeError("writer failed")
    assert target.read_bytes() == b"keep"
    assert os.listdir(tmp_path) == ["clip.mp4"]


def test_ctrl_c_inside_the_block_removes_the_temporary(tmp_path):
    with pytest.raises(KeyboardInterrupt), atomic_path(tmp_path / "x.json") as tmp:
        tmp.write_text("{")
        raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []
