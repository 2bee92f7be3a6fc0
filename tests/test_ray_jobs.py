"""Jobs on Ray: one local instance for the module (2 CPUs), tiny clips made here, the real small model.

Outputs are compared with ``stylize convert IN OUT`` in this process: lossless encoding (``--crf 0``)
and one torch thread on both sides (a worker's share of 2 CPUs between 2 workers), so the decoded
frames must be equal bit for bit, with the same timestamps and the same audio packets.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

import pytest
import torch

from stream.cli import build_parser, main
from stream.jobs.job import Job
from stream.jobs.plan import plan_video
from stream.jobs.report import JobProgress

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_instance():
    """A local Ray instance for the module; afterwards, no process it started may be left, and the
    SIGTERM handler ray.init installs in this process is put back."""
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    before = set(_descendants(os.getpid()))
    sigterm = signal.getsignal(signal.SIGTERM)
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False,
             _temp_dir=temp)  # fmt: skip
    signal.signal(signal.SIGTERM, sigterm)
    yield
    started = set(_descendants(os.getpid())) - before
    ray.shutdown()
    _assert_gone(started)
    shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def model_args(tiny_weights, style_image) -> list[str]:
    """Per-frame (``--no-temporal``), so that workers and segments give the very pixels of one process;
    ``--temporal`` across segments is tested in test_jobs.py."""
    return ["--model", "adain-cd16x", "--weights", str(tiny_weights), "--style-size", "64",
            "--style", str(style_image), "--crf", "0", "--no-temporal"]  # fmt: skip


@pytest.fixture(scope="module")
def clips(tmp_path_factory, make_clip, model_args) -> dict[str, Path]:
    """Three short clips and one long enough for 6 segments of 0.5 s, each with its reference output."""
    folder = tmp_path_factory.mktemp("clips")
    made = {name: make_clip(folder / f"{name}.mp4", frames=n, gop=5) for name, n in
            (("a", 12), ("b", 20), ("c", 16), ("long", 60))}  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name, clip in made.items():
            assert main(["convert", str(clip), str(folder / f"{name}.reference.mp4"), "-q", *model_args]) == 0
    finally:
        torch.set_num_threads(threads)
    return made


def reference(clip: Path) -> Path:
    return clip.with_name(f"{clip.stem}.reference.mp4")


def test_files_and_segments_on_two_workers_equal_one_process(
    ray_instance, clips, model_args, same_video, tmp_path, capsys
):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(clips["a"].read_bytes()[:400])  # cut inside the header: cannot be opened
    out = tmp_path / "out"
    inputs = [str(clips[n]) for n in ("a", "b", "c", "long")] + [str(bad)]
    code = main(
        ["convert", *inputs, "-o", str(out), "--workers", "2", "--segment-seconds", "0.5", *model_args]
    )
    captured = capsys.readouterr()
    assert code == 1, captured.err  # bad.mp4 failed, alone
    rows = {line.split()[0]: line for line in captured.out.splitlines()[1:-1]}
    assert "converted (6 segments)" in rows["long.mp4"]
    assert "failed: cannot open bad.mp4" in rows["bad.mp4"]
    assert captured.out.splitlines()[-1].startswith(
        "5 files: 4 converted, 0 already done, 1 failed; 108 frames"
    )
    assert "on 2 workers" in captured.out and "Traceback" not in captured.err
    for name in ("a", "b", "c", "long"):
        same_video(reference(clips[name]), out / f"{name}_stylized.mp4")
    assert sorted(p.name for p in (out / ".stylize-job").iterdir()) == ["manifest.json", "manifest.lock"]


def test_a_killed_worker_has_its_task_run_again(ray_instance, clips, model_args, same_video, tmp_path):
    from stream.jobs.ray_pool import RayPool

    job = _job(clips["long"], tmp_path / "long.mp4", model_args)
    tasks = job.plan_tasks(segment_seconds=1.0)
    assert len(tasks) == 3
    killed: list[str] = []

    def kill_the_first(task, worker):  # SIGKILL, a moment after the task was handed over
        if not killed:
            killed.append(worker["name"])
            threading.Timer(0.2, os.kill, (worker["pid"], signal.SIGKILL)).start()

    with RayPool(_recipe(model_args), workers=2, retries=2) as pool:
        pool.run(job, JobProgress(job, enabled=False), on_submit=kill_the_first)
    state = job.files["long.mp4"]
    assert state.status == "done", state.reason
    assert any(f"retried: worker {killed[0]} died" in note for note in state.notes), state.notes
    same_video(reference(clips["long"]), state.output)


def test_an_interrupted_job_resumes_with_its_finished_segments(
    ray_instance, clips, model_args, same_video, tmp_path, capsys
):
    from stream.jobs.ray_pool import RayPool

    out = tmp_path / "long_stylized.mp4"
    job = _job(clips["long"], out, model_args)
    job.plan_tasks(segment_seconds=0.5)
    submitted = []

    def stop_at_the_fifth(task, worker):  # Ctrl-C, when at least 3 segments have finished
        submitted.append(task.key)
        if len(submitted) == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), RayPool(_recipe(model_args), workers=2) as pool:
        pool.run(job, JobProgress(job, enabled=False), on_submit=stop_at_the_fifth)
    assert not out.exists()
    finished = len(job.files[out.name].parts)
    assert finished >= 3

    code = main(["convert", str(clips["long"]), str(out), "--workers", "2", "--segment-seconds", "0.5",
                 "--retries", "0", *model_args])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "converted (6 segments)" in captured.out
    same_video(reference(clips["long"]), out)
    again = _job(clips["long"], out, model_args)  # now done: nothing left to run
    assert again.plan_tasks(segment_seconds=0.5) == [] and again.files[out.name].status == "skipped"


def test_sigterm_stops_a_ray_job_like_ctrl_c_and_leaves_no_ray_process(make_clip, model_args, tmp_path):
    """The command's own Ray instance: SIGTERM (a service manager stopping it) exits 143 with the
    usual line, finished segments stay recorded, and every process of that instance is gone."""
    import json
    import subprocess
    import sys

    clip = make_clip(tmp_path / "film.mp4", frames=400, gop=10)
    out = tmp_path / "film_stylized.mp4"
    ray_tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "RAY_TMPDIR": ray_tmp}
    command = [sys.executable, "-m", "stream", "convert", str(clip), str(out), "--workers", "2",
               "--segment-seconds", "1", *model_args]  # fmt: skip
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    manifest = tmp_path / ".stylize-job" / "manifest.json"  # written once a first segment is recorded
    deadline = time.monotonic() + 90
    while proc.poll() is None and time.monotonic() < deadline and not manifest.exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    try:
        assert proc.returncode == 143, err
        assert "terminated (SIGTERM); 0 of 1 files done (run the same command again to resume)" in err
        assert "Traceback" not in err and not out.exists()
        entry = json.loads(manifest.read_text())["files"][out.name]
        assert entry["status"] == "incomplete" and entry["segments"]
        _assert_gone(_with_env("RAY_TMPDIR", ray_tmp))
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


# --- helpers -------------------------------------------------------------------------------------


def _settings(model_args: list[str]) -> str:
    from stream.cli.convert_many import fingerprint

    return fingerprint(build_parser().parse_args(["convert", "in.mp4", "out.mp4", *model_args]))


def _recipe(model_args: list[str]):
    from stream.cli.convert_many import load_stylizer, worker_arguments

    args = build_parser().parse_args(["convert", "in.mp4", "out.mp4", *model_args])
    return functools.partial(load_stylizer, worker_arguments(args), None)


def _job(clip: Path, output: Path, model_args: list[str]) -> Job:
    """The job ``stylize convert CLIP OUTPUT`` with ``model_args`` makes (the same settings fingerprint)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    return Job([(clip, output, plan_video(clip, output, crf=0))], _settings(model_args))


def _descendants(pid: int) -> list[int]:
    """Every process under ``pid`` (Linux /proc; elsewhere none are checked)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _assert_gone(pids, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while (left := [p for p in pids if _alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"Ray processes left: {[_cmdline(p) for p in left]}"


def _cmdline(pid: int) -> str:
    try:
        return f"{pid} " + Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:200]
    except OSError:
        return str(pid)


def _with_env(name: str, value: str) -> list[int]:
    """The processes whose environment has ``name=value``: every process of a Ray instance started
    with it (its workers rename themselves, their environment stays)."""
    needle = f"{name}={value}".encode()
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if needle in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
        except OSError:
            continue
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_bench_workers_measures_each_worker_count_side_by_side(
    ray_instance, clips, tiny_weights, tmp_path, capsys
):
    """``stylize bench --workers 1,2``: both workloads on each worker count, in a table and a file."""
    import json

    code = main(["bench", "--workers", "1,2", "--models", "adain-cd16x", "--weights", str(tiny_weights),
                 "--video", str(clips["long"]), "--e2e-frames", "16", "--sizes", "64x48", "--repeats", "1",
                 "--device", "cpu", "--out", str(tmp_path)])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    (results,) = tmp_path.glob("*-scaling.json")
    rows = json.loads(results.read_text())["scaling"]
    assert [(r["workload"], r["workers"]) for r in rows] == [("files", 1), ("segments", 1), ("files", 2),
                                                             ("segments", 2)]  # fmt: skip
    assert all(r["frames"] == 16 and r["tasks"] == 4 and r["fps"] > 0 for r in rows)
    assert [r["threads_per_worker"] for r in rows] == [2, 2, 1, 1]
    assert out.splitlines()[0].split()[:3] == ["workload", "workers", "threads"]
