"""Jobs without Ray: inputs, segments at keyframes, the join, the manifest and resuming, in this process.

Segments are planned and joined here exactly as on Ray (:func:`stream.jobs.job.run_here` runs the
tasks one after another), so the join is compared with a conversion in one piece. Both encode
losslessly (``--crf 0``): decoded frames are then a function of the stylized frames alone, whatever
the encoder's threads did, and must be equal bit for bit.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from engines.errors import StylizeError
from stream.cli import main
from stream.jobs.job import Job, run_here
from stream.jobs.manifest import WORK_DIR
from stream.jobs.plan import FrameIndex, expand_inputs, plan_video, split_segments
from stream.jobs.report import JobProgress
from stream.jobs.worker import ConvertWorker


@pytest.fixture(scope="module")
def model_args(tiny_weights, style_image) -> list[str]:
    """Per-frame (``--no-temporal``): a segment's pixels then equal the whole file's exactly."""
    return ["--model", "adain-cd16x", "--weights", str(tiny_weights), "--style-size", "64",
            "--style", str(style_image), "--crf", "0", "--no-temporal"]  # fmt: skip


@pytest.fixture
def one_thread():
    """Torch on one thread, as a worker with one CPU runs it: the same sums in the same order."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def decoded(path: Path) -> list[tuple[int, np.ndarray]]:
    with av.open(str(path)) as c:
        return [(f.pts, f.to_ndarray(format="bgr24")) for f in c.decode(video=0)]


# --- planning ------------------------------------------------------------------------------------


def test_inputs_are_files_folders_and_patterns_each_once(tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    for name in ("b10.mp4", "b2.mkv", ".hidden.mp4", "notes.txt"):
        (clips / name).write_bytes(b"x")
    (tmp_path / "a.mov").write_bytes(b"x")
    found = expand_inputs([str(clips), str(tmp_path / "*.mov"), str(clips / "b2.mkv"), "missing.mp4"])
    assert [p.name for p in found] == ["b2.mkv", "b10.mp4", "a.mov", "missing.mp4"]
    with pytest.raises(StylizeError, match="no files match"):
        expand_inputs([str(tmp_path / "*.avi")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(StylizeError, match="no videos in folder"):
        expand_inputs([str(tmp_path / "empty")])


def test_segments_start_at_keyframes_and_cover_every_frame_once():
    pts = [512 * i for i in range(100)]
    index = FrameIndex(pts, frozenset(pts[::10]))  # a keyframe every 10 frames, 20 fps
    segments = split_segments(index, Fraction(20), seconds=1.2, warmup=3)  # 24 frames or more each
    assert [s.start_pts for s in segments] == [0, 512 * 30, 512 * 60]  # frame 90 would leave 10 alone
    assert [s.frames for s in segments] == [30, 30, 40]
    assert [s.end_pts for s in segments] == [512 * 30, 512 * 60, None]
    assert segments[0].decode_from_pts == 0
    assert all(s.decode_from_pts == s.start_pts - 3 * 512 for s in segments[1:])
    limited = split_segments(index, Fraction(20), seconds=1.2, limit=55)
    assert sum(s.frames for s in limited) == 55 and limited[-1].end_pts == 512 * 55
    assert len(split_segments(index, Fraction(20), seconds=4)) == 1  # shorter than two segments
    assert len(split_segments(FrameIndex(pts, frozenset([0])), Fraction(20), seconds=1)) == 1


# --- segments joined = one piece ----------------------------------------------------------------


def test_segments_joined_equal_the_file_converted_in_one_piece(
    make_clip, model_args, tiny_weights, one_thread, same_video, tmp_path, capsys
):
    clip = make_clip(tmp_path / "clip.mp4", frames=40, gop=5)
    whole = tmp_path / "whole.mp4"
    assert main(["convert", str(clip), str(whole), *model_args]) == 0

    job = _job(clip, tmp_path / "out" / "clip.mp4", model_args)
    tasks = job.plan_tasks(segment_seconds=0.5, warmup=0)
    assert len(tasks) == 4 and all(t.segment is not None for t in tasks)
    run_here(job, _worker(model_args), JobProgress(job, enabled=False))
    state = job.files["clip.mp4"]
    assert state.status == "done", state.reason
    same_video(whole, state.output)
    assert not job.manifest(state).work_dir("clip.mp4").exists()  # joined, then removed


def test_segments_all_finished_before_a_stop_are_joined_on_the_re_run(
    make_clip, model_args, one_thread, same_video, tmp_path
):
    """Ctrl-C after the last segment but before the join: the re-run has no task left, yet joins them."""
    from stream.jobs.report import summary

    clip = make_clip(tmp_path / "clip.mp4", frames=40, gop=5)
    whole = tmp_path / "whole.mp4"
    assert main(["convert", str(clip), str(whole), *model_args]) == 0
    output = tmp_path / "out" / "clip.mp4"
    worker = _worker(model_args)

    job = _job(clip, output, model_args)
    job.plan_tasks(segment_seconds=0.5)

    def stop(state):
        raise KeyboardInterrupt

    job.join = stop
    with pytest.raises(KeyboardInterrupt):
        run_here(job, worker, JobProgress(job, enabled=False))
    assert len(job.files["clip.mp4"].parts) == 4 and not output.exists()

    again = _job(clip, output, model_args)
    assert again.plan_tasks(segment_seconds=0.5) == []
    assert "not finished" in summary(again, 0.0, 0)  # not "converted" before it is joined
    run_here(again, worker, JobProgress(again, enabled=False))
    state = again.files["clip.mp4"]
    assert state.status == "done", state.reason
    same_video(whole, output)
    assert "converted (4 segments)" in summary(again, 1.0, 1)


def test_warmup_frames_go_through_the_stage_and_are_dropped(make_clip, model_args, tmp_path):
    """A stateful stage sees the frames before each segment; the output has each frame once."""
    clip = make_clip(tmp_path / "clip.mp4", frames=30, gop=5)
    seen: list[list[int]] = []

    class Recorder:  # the processing stage of one task: passes frames through, remembers their pts
        def __init__(self, stylizer):
            seen.append([])

        def __call__(self, frames):
            seen[-1].extend(f.pts for f in frames)
            return frames

    job = _job(clip, tmp_path / "out" / "clip.mp4", model_args)
    tasks = job.plan_tasks(segment_seconds=0.5, warmup=4)
    run_here(job, _worker(model_args, make_process=Recorder), JobProgress(job, enabled=False))
    assert job.files["clip.mp4"].status == "done"
    for task, pts in zip(tasks[1:], seen[1:], strict=True):
        warm = [p for p in pts if p < task.segment.start_pts]
        assert len(warm) == 4 and pts[0] == task.segment.decode_from_pts
    assert [p for p, _ in decoded(job.files["clip.mp4"].output)] == [p for p, _ in decoded(clip)]


def test_temporal_segments_start_afresh_and_warm_up_to_the_whole_files_pixels(
    make_clip, model_args, one_thread, same_video, tmp_path
):
    """``--temporal`` carries state from frame to frame: a segment converted alone starts afresh (the
    worker resets the stylizer), so it differs from the whole file; warm-up frames reaching back to the
    file's start rebuild that state exactly."""
    from stream.cli.convert_many import WARMUP_FRAMES, warmup_frames

    temporal_args = [a for a in model_args if a != "--no-temporal"] + ["--temporal"]
    assert warmup_frames(_arguments(temporal_args)) == WARMUP_FRAMES >= 24
    clip = make_clip(tmp_path / "clip.mp4", frames=24, gop=5)
    whole = tmp_path / "whole.mp4"
    assert main(["convert", str(clip), str(whole), *temporal_args]) == 0
    worker = _worker(temporal_args)
    assert worker.stylizer.temporal is not None
    outputs = {}
    for warmup in (0, WARMUP_FRAMES):
        job = _job(clip, tmp_path / f"warmup{warmup}" / "clip.mp4", model_args)
        tasks = job.plan_tasks(segment_seconds=0.5, warmup=warmup)
        assert len(tasks) == 2
        run_here(job, worker, JobProgress(job, enabled=False))
        assert job.files["clip.mp4"].status == "done"
        outputs[warmup] = job.files["clip.mp4"].output
    same_video(whole, outputs[WARMUP_FRAMES])
    plain, fresh = decoded(whole), decoded(outputs[0])
    assert [p for p, _ in plain] == [p for p, _ in fresh]
    start = tasks[1].segment.start_pts
    differ = [p for (p, a), (_, b) in zip(plain, fresh, strict=True) if not np.array_equal(a, b)]
    assert differ and min(differ) == start  # the first segment is the same; the second starts afresh


# --- many files in this process: resume, failures -------------------------------------------------


def test_many_files_run_here_resume_and_a_bad_file_fails_alone(
    make_clip, model_args, tmp_path, capsys, monkeypatch
):
    from stream.cli import convert_many

    loads = []
    load = convert_many.load_stylizer
    monkeypatch.setattr(convert_many, "load_stylizer", lambda *a: loads.append(1) or load(*a))
    clips = tmp_path / "clips"
    clips.mkdir()
    for name in ("a", "b", "c"):
        make_clip(clips / f"{name}.mp4", frames=10)
    (clips / "bad.mp4").write_bytes(b"not a video at all\n" * 50)
    out = tmp_path / "out"
    assert main(["convert", str(clips), str(out) + "/", *model_args]) == 1  # bad.mp4 failed
    assert len(loads) == 1  # the model and the style, loaded once for the three files
    captured = capsys.readouterr()
    table = captured.out.splitlines()
    assert table[0].split() == ["file", "frames", "seconds", "worker", "result"]
    assert [line.split()[0] for line in table[1:5]] == ["a.mp4", "b.mp4", "bad.mp4", "c.mp4"]
    assert "failed: cannot open bad.mp4" in table[3] and table[-1].startswith("4 files: 3 converted")
    assert captured.err.count("bad.mp4") == 1 and "Traceback" not in captured.err
    manifest = json.loads((out / WORK_DIR / "manifest.json").read_text())["files"]
    assert (
        manifest["a_stylized.mp4"]["status"] == "done" and manifest["bad_stylized.mp4"]["status"] == "failed"
    )

    # a re-run skips what is done and verified; a damaged output is not taken for done
    (out / "b_stylized.mp4").write_bytes(b"half a file")
    (clips / "bad.mp4").unlink()
    assert main(["convert", str(clips), "-o", str(out), *model_args]) == 1
    table = capsys.readouterr().out.splitlines()
    assert "already done" in table[1] and "already done" in table[3]
    assert "output file already exists" in table[2] and "use --overwrite" in table[2]
    assert main(["convert", str(clips), "-o", str(out), *model_args, "--overwrite"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert "already done" in table[1] and "converted" in table[2] and "already done" in table[3]
    assert len(decoded(out / "b_stylized.mp4")) == 10


def test_an_interrupted_job_keeps_what_was_finished(make_clip, model_args, tmp_path):
    """Ctrl-C during the second file: the first is recorded, the second leaves nothing behind."""
    sources = [make_clip(tmp_path / f"{n}.mp4", frames=10) for n in ("a", "b")]
    out = tmp_path / "out"
    job = Job(
        [(s, out / s.name, plan_video(s, out / s.name, crf=0)) for s in sources], "settings", overwrite=False
    )
    out.mkdir()
    job.plan_tasks()
    worker = _worker(model_args)

    def stop_in_b(key, frames):
        if key == "b.mp4" and frames:
            raise KeyboardInterrupt

    progress = JobProgress(job, enabled=False)
    progress.running = stop_in_b
    with pytest.raises(KeyboardInterrupt):
        run_here(job, worker, progress)
    assert sorted(p.name for p in out.iterdir()) == [WORK_DIR, "a.mp4"]
    again = Job([(s, out / s.name, plan_video(s, out / s.name, crf=0)) for s in sources], "settings")
    tasks = again.plan_tasks()
    assert [t.key for t in tasks] == ["b.mp4"] and again.files["a.mp4"].status == "skipped"


def test_an_existing_output_is_refused_without_hashing_it(make_clip, tmp_path, monkeypatch):
    """The reason says 'other settings' for our own output only; telling needs no read of the file."""
    from stream.jobs import manifest

    clip = make_clip(tmp_path / "clip.mp4", frames=5)
    output = tmp_path / "out" / "clip.mp4"
    output.parent.mkdir()
    output.write_bytes(b"converted before")
    digest = manifest.file_digest(output)
    monkeypatch.setattr(manifest, "file_digest", lambda path: pytest.fail(f"{path} was hashed"))
    for settings, size, other in (("old", digest["size"], True), ("new", digest["size"] + 1, False)):
        record = {"input": manifest.input_identity(clip), "settings": settings, "status": "done",
                  "output": {**digest, "size": size}}  # fmt: skip
        manifest.Manifest(output.parent).put(output.name, record)
        job = _job(clip, output, [])
        job.settings = "new"
        assert job.plan_tasks() == []
        reason = job.files[output.name].reason
        assert "output file already exists" in reason and ("other settings" in reason) == other


def test_weights_retrained_into_the_same_folder_are_other_settings(tiny_weights, style_image, tmp_path):
    """A re-run after retraining must redo the files: the weights count by contents, not by path."""
    import shutil

    from stream.cli.convert_many import fingerprint

    folder = tmp_path / "weights"
    shutil.copytree(tiny_weights / "adain-cd16x", folder)
    args = _arguments(["--model", "adain-cd16x", "--weights", str(folder), "--style", str(style_image)])
    before = fingerprint(args)
    shutil.copytree(folder, tmp_path / "moved")
    assert fingerprint(_arguments(["--model", "adain-cd16x", "--weights", str(tmp_path / "moved"),
                                   "--style", str(style_image)])) == before  # fmt: skip
    with open(folder / "4SD.pth", "ab") as f:  # only hashed here, never loaded
        f.write(b"retrained")
    assert fingerprint(args) != before


# --- the command line's paths -------------------------------------------------------------------


@pytest.mark.parametrize(
    "paths, message",
    [
        (["{clip}"], "no output given"),
        (["{clip}", "{clip}", "{tmp}/out.mp4"], "several inputs need an output folder"),
        (["{clip}", "{tmp}/other/../clip.mp4"], "is the input file"),
    ],
)
def test_paths_that_cannot_work_are_one_line(paths, message, make_clip, model_args, tmp_path, capsys):
    clip = make_clip(tmp_path / "clip.mp4", frames=5)
    (tmp_path / "other").mkdir()
    args = [p.format(clip=clip, tmp=tmp_path) for p in paths]
    assert main(["convert", *args, *model_args]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_two_inputs_with_one_name_are_refused_before_any_work(make_clip, model_args, tmp_path, capsys):
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    a = make_clip(tmp_path / "x" / "clip.mp4", frames=5)
    b = make_clip(tmp_path / "y" / "clip.mp4", frames=5)
    assert main(["convert", str(a), str(b), "-o", str(tmp_path / "out"), *model_args]) == 1
    assert "would both be written to" in capsys.readouterr().err
    assert not (tmp_path / "out" / "clip_stylized.mp4").exists()


def test_workers_without_ray_installed_is_a_one_line_hint(
    make_clip, model_args, tmp_path, capsys, monkeypatch
):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    clip = make_clip(tmp_path / "clip.mp4", frames=5)
    assert main(["convert", str(clip), str(tmp_path / "o.mp4"), "--workers", "2", *model_args]) == 1
    err = capsys.readouterr().err
    assert '(--workers, --ray) needs ray: pip install -e ".[ray]"' in err and err.count("\n") == 1


# --- helpers -------------------------------------------------------------------------------------


def _arguments(model_args: list[str]):
    from stream.cli import build_parser
    from stream.cli.convert_many import worker_arguments

    args = build_parser().parse_args(["convert", "in.mp4", "out.mp4", *model_args])
    return worker_arguments(args)


def _worker(model_args: list[str], make_process=None) -> ConvertWorker:
    import functools

    from stream.cli.convert_many import load_stylizer

    worker = ConvertWorker(functools.partial(load_stylizer, _arguments(model_args), None), make_process)
    assert worker.error is None, worker.error
    return worker


def _job(clip: Path, output: Path, model_args: list[str]) -> Job:
    output.parent.mkdir(parents=True, exist_ok=True)
    return Job([(clip, output, plan_video(clip, output, crf=0))], "settings")


def test_a_ray_address_where_nothing_listens_is_one_line(make_clip, model_args, tmp_path, capsys):
    pytest.importorskip("ray")
    clip = make_clip(tmp_path / "clip.mp4", frames=5)
    assert main(["convert", str(clip), str(tmp_path / "o.mp4"), "--ray", "127.0.0.1:9", *model_args]) == 1
    err = capsys.readouterr().err
    assert "nothing answers at --ray 127.0.0.1:9" in err and err.count("\n") == 1


def test_ctrl_c_stops_a_job_cleanly_and_the_same_command_resumes_it(make_clip, model_args, tmp_path):
    """A real SIGINT to the command: exit 130, finished files kept and recorded, nothing half-written."""
    import os
    import signal
    import subprocess
    import sys
    import time

    clips = tmp_path / "clips"
    clips.mkdir()
    for name in "abcdef":
        make_clip(clips / f"{name}.mp4", frames=120)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "stream", "convert", str(clips), "-o", str(out), *model_args]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (out / "a_stylized.mp4").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "(run the same command again to resume)" in err
    done = sorted(p.name for p in out.iterdir() if p.name != WORK_DIR)
    assert 1 <= len(done) < 6, done
    assert all(len(decoded(out / name)) == 120 for name in done)

    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    results = [line.split(maxsplit=4)[-1] for line in again.stdout.splitlines()[1:-1]]
    assert results.count("already done") == len(done) and results.count("converted") == 6 - len(done)
    assert sorted(p.name for p in out.iterdir()) == [WORK_DIR, *(f"{n}_stylized.mp4" for n in "abcdef")]
