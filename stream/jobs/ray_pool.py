"""A job's tasks on Ray: one actor per GPU, or per share of the CPUs, each loading the model once.

The only module that imports Ray (an optional extra). It starts a local Ray instance (``--workers
N``), joins a cluster (``--ray ADDRESS``), or uses the one this process is already connected to (a
test's, or a user's own script's), and leaves that one running.

Scheduling is Ray's placement plus a plain pull loop here: each actor runs one task at a time and
gets the next when it returns, so a slow file never holds back a queue of others behind it. Each
actor runs :class:`~stream.jobs.worker.ConvertWorker`: the model and the style statistics (the
style bank's disk cache) are loaded once per actor and reused for every task. A task whose actor
dies (killed, out of memory, its machine lost) is run again on another actor, up to ``retries``
times; Ray restarts the dead actor (``max_restarts``) so the pool keeps its size. A task that fails
on its own (a damaged file) is not retried: it would fail again. Progress comes from the workers
through a small tally actor, a few messages a second each.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable

from engines.errors import StylizeError
from engines.optional import require
from stream.jobs.job import Job
from stream.jobs.worker import ConvertWorker, Task, TaskResult

log = logging.getLogger(__name__)

_POLL = 0.25  # seconds between looks at finished tasks and progress


class _Tally:
    """Frames written by each running task, as the workers report them (a Ray actor)."""

    def __init__(self) -> None:
        self.frames: dict[str, int] = {}

    def set(self, key: str, frames: int) -> None:
        self.frames[key] = frames

    def take(self) -> dict[str, int]:
        frames, self.frames = self.frames, {}
        return frames


class _Reporter:
    """The ``report`` callable a task gets on an actor: sends its frame count to the tally."""

    def __init__(self, tally, key: str) -> None:
        self.tally, self.key = tally, key

    def __call__(self, frames: int) -> None:
        self.tally.set.remote(self.key, frames)


def connect(address: str | None = None, workers: int | None = None, verbose: bool = False) -> bool:
    """Join the cluster at ``address``, or start a local instance (at least ``workers`` CPUs), unless
    this process is connected already; True when it started or joined one now (the caller shuts it down).
    """
    ray = require("ray", "running on workers (--workers, --ray)")
    if ray.is_initialized():
        return False
    level = logging.INFO if verbose else logging.ERROR
    quiet = {"logging_level": level, "log_to_driver": verbose}
    if address and address != "auto":
        _check_reachable(address)
    main = threading.current_thread() is threading.main_thread()
    sigterm = signal.getsignal(signal.SIGTERM) if main else None
    try:
        if address:
            ray.init(address=address, **quiet)
        else:
            ray.init(num_cpus=max(os.cpu_count() or 1, workers or 1), include_dashboard=False, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise StylizeError(f"cannot start or join {where}: {str(e).splitlines()[0]}") from None
    finally:
        if main:  # ray.init makes SIGTERM a sys.exit(15): the command's own handler stops it cleanly
            signal.signal(signal.SIGTERM, sigterm)
    return True


def shutdown() -> None:
    """Leave Ray: a local instance stops, a cluster goes on (the counterpart of :func:`connect`)."""
    require("ray", "running on workers (--workers, --ray)").shutdown()


def _check_reachable(address: str) -> None:
    """Fail in one line when nothing listens at ``host:port`` (Ray itself would retry for minutes)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise StylizeError(f"--ray {address}: expected HOST:PORT, ray://HOST:PORT or auto")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as e:
        why = e.strerror or e
        raise StylizeError(f"nothing answers at --ray {address} ({why}); is the cluster running?") from None


class RayPool:
    """``workers`` actors running :class:`ConvertWorker` (a context manager: actors end with it).

    ``device``: ``cpu`` gives CPU actors; ``auto`` or ``cuda`` gives one actor per GPU where the
    cluster has GPUs (``num_gpus=1`` each: Ray picks the GPU). ``workers`` None: one per GPU, or one
    per machine without GPUs. CPU actors share the CPUs evenly (torch threads set to their share).
    """

    def __init__(
        self,
        make_stylizer: Callable[[], tuple],
        *,
        workers: int | None = None,
        address: str | None = None,
        device: str = "auto",
        batch: int = 1,
        retries: int = 2,
        verbose: bool = False,
    ) -> None:
        if re.fullmatch(r"cuda:\d+", device):
            raise StylizeError(f"--device {device}: on Ray each worker gets its own GPU; use --device cuda")
        self.ray = require("ray", "running on workers (--workers, --ray)")
        self.make_stylizer = make_stylizer
        self.workers, self.address, self.device = workers, address, device
        self.batch, self.retries, self.verbose = batch, retries, verbose
        self.actors: list = []
        self.infos: list[dict] = []
        self.threads: int | None = None
        self._started_ray = False

    # --- start and stop ------------------------------------------------------------------------------

    def __enter__(self) -> RayPool:
        try:
            self._connect()
            self._start_actors()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _connect(self) -> None:
        self._started_ray = connect(self.address, self.workers, self.verbose)

    def _start_actors(self) -> None:
        ray = self.ray
        resources = ray.cluster_resources()
        gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 0))
        if self.device.startswith("cuda") and not gpus:
            raise StylizeError(f"--device {self.device}: the Ray cluster has no GPU")
        use_gpus = self.device != "cpu" and gpus > 0
        nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
        workers = self.workers or (gpus if use_gpus else max(1, nodes))
        if use_gpus and workers > gpus:
            raise StylizeError(f"--workers {workers}: the Ray cluster has {gpus} GPU(s), one worker per GPU")
        if not use_gpus and workers > cpus:
            raise StylizeError(f"--workers {workers}: the Ray cluster has {cpus} CPU(s)")
        share = 1 if use_gpus else max(1, cpus // workers)
        #: torch threads of each worker (CPU workers; None on GPUs)
        self.threads = None if use_gpus else share
        actor = ray.remote(ConvertWorker).options(
            num_cpus=share, num_gpus=1 if use_gpus else 0, max_restarts=self.retries, max_task_retries=0
        )
        self.actors = [
            actor.remote(self.make_stylizer, name=f"w{i + 1}", threads=self.threads, batch=self.batch)
            for i in range(workers)
        ]
        self.infos = ray.get([a.info.remote() for a in self.actors])
        for info in self.infos:
            if info["error"]:
                raise StylizeError(info["error"])
            log.info("worker %s: %s pid %d, %s", info["name"], info["host"], info["pid"], info["device"])

    def close(self) -> None:
        """End the actors, and the Ray instance when this pool started it."""
        ray = self.ray
        for a in self.actors:
            with contextlib.suppress(Exception):  # already dead, or Ray already down
                ray.kill(a, no_restart=True)
        self.actors = []
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False

    # --- running -------------------------------------------------------------------------------------

    def run(self, job: Job, progress, on_submit: Callable[[Task, dict], None] | None = None) -> None:
        """Run ``job.tasks`` on the actors until every one has a result; Ctrl-C propagates.

        ``on_submit(task, worker_info)`` is called as each task is handed to an actor (monitoring,
        and the test that kills a worker mid-task).
        """
        ray = self.ray
        tally = ray.remote(num_cpus=0)(_Tally).remote()
        pending: deque[Task] = deque(job.tasks)
        idle = list(range(len(self.actors)))
        running: dict = {}  # ObjectRef → (task, actor index, progress key)
        attempts: Counter[str] = Counter()
        lost_on: dict[str, int] = {}  # task key → the actor it was lost on (retried elsewhere if possible)
        deaths: Counter[int] = Counter()
        last_poll = 0.0

        def feed() -> None:
            while pending and idle:
                task = pending.popleft()
                if not job.wanted(task):
                    continue
                elsewhere = [a for a in idle if a != lost_on.get(task.key)]
                a = (elsewhere or idle)[0]
                idle.remove(a)
                key = f"{task.key}@{attempts[task.key]}"
                running[self.actors[a].convert.remote(task, _Reporter(tally, key))] = (task, a, key)
                if on_submit is not None:
                    on_submit(task, self.infos[a])

        try:
            feed()
            job.join_ready()  # segments all finished before this run: joined while the actors work
            progress.files()
            while pending or running:
                feed()
                if not running:
                    for task in pending:  # every actor is gone for good
                        job.fail(task, "every worker died")
                    break
                ready, _ = ray.wait(list(running), num_returns=len(running), timeout=_POLL)
                joins = []
                for ref in ready:
                    task, a, key = running.pop(ref)
                    name = self.infos[a]["name"]
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayTaskError as e:  # not a lost worker: it would fail again
                        result = TaskResult(task.key, False, name, reason=f"internal error: {_first_line(e)}")
                    except ray.exceptions.RayError as e:  # the actor died (killed, out of memory, node lost)
                        progress.finished(key, None)
                        deaths[a] += 1
                        if deaths[a] <= self.retries:
                            idle.append(a)  # Ray restarts it; calls wait until it is back
                        attempts[task.key] += 1
                        why = f"worker {name} died ({type(e).__name__})"
                        if attempts[task.key] <= self.retries:
                            job.retrying(task, why)
                            lost_on[task.key] = a
                            pending.appendleft(task)
                        else:
                            job.fail(task, f"{why}, {attempts[task.key]} times")
                        continue
                    idle.append(a)
                    progress.finished(key, result)
                    if (ready_file := job.record(task, result)) is not None:
                        joins.append(ready_file)
                feed()  # the actors work on while segments are joined here
                for ready_file in joins:
                    job.join(ready_file)
                progress.files()
                if time.monotonic() - last_poll >= _POLL:
                    last_poll = time.monotonic()
                    live = {key for _, _, key in running.values()}
                    for key, frames in ray.get(tally.take.remote()).items():
                        if key in live:
                            progress.running(key, frames)
        finally:
            ray.kill(tally)


def _first_line(error: Exception) -> str:
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__
