"""SharedStage: one engine for several clients, each request with its own settings, results to their owner.

A stub engine (the output is the input blended towards the style's colour) makes every result say
which settings it was made with. ``depth=2`` runs the CUDA bookkeeping (a result comes out one
launch later, possibly during another client's request) on the CPU.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from engines.stylizer import Stylizer
from stream.frames import Frame
from stream.serve.shared_stage import SharedStage, StageClosed, StageSettings


class ColourEngine:
    backend, model_name, precision, multiple = "stub", "stub", "fp32", 8
    supports_content_hook = True

    def __init__(self, fail_on: float | None = None) -> None:
        self.device = torch.device("cpu")
        self.content_hook = None
        self.hooks_seen: list = []
        self.fail_on = fail_on

    def run(self, content: torch.Tensor, stats: dict, alpha: float) -> torch.Tensor:
        if self.fail_on is not None and alpha == self.fail_on:
            raise RuntimeError("engine failure")
        self.hooks_seen.append(self.content_hook)
        return content * (1 - alpha) + alpha * stats["colour"]


def colour(rgb) -> StageSettings:
    return StageSettings(
        stats={"colour": torch.tensor(rgb, dtype=torch.float32).view(1, 3, 1, 1)},
        alpha=1.0,
        preserve_color=False,
    )


def frame(i: int, value: int = 0, shape=(16, 24)) -> Frame:
    return Frame(np.full((*shape, 3), value, np.uint8), i)


@pytest.mark.parametrize("depth", [1, 2])
def test_concurrent_clients_get_their_own_results(depth):
    engine = ColourEngine()
    stage = SharedStage(Stylizer(engine, colour((0, 0, 0)).stats), depth=depth)
    wanted = {"red": (1.0, 0.0, 0.0), "green": (0.0, 1.0, 0.0), "blue": (0.0, 0.0, 1.0)}
    results: dict[str, list] = {name: [] for name in wanted}

    def client(name: str) -> None:
        shape = (16, 24) if name != "blue" else (24, 16)  # another size too
        for i in range(20):
            out = stage.submit(colour(wanted[name]), [frame(i, shape=shape)])
            results[name].extend(out)

    threads = [threading.Thread(target=client, args=(name,)) for name in wanted]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    stage.close()
    for name, rgb in wanted.items():
        frames = results[name]
        assert [f.index for f in frames] == list(range(20))  # each result to its owner, in order
        bgr = np.array(rgb[::-1]) * 255
        assert all(np.array_equal(f.image[0, 0], bgr) for f in frames), name
    assert stage.frames_done == 60 and stage.pending() == 0


def test_settings_apply_per_request_including_size_and_hook():
    engine = ColourEngine()
    stage = SharedStage(Stylizer(engine, colour((0, 0, 0)).stats))
    hook = object()
    half = StageSettings(colour((1, 1, 1)).stats, alpha=0.5, preserve_color=False, size=(8, 12), hook=hook)
    out = stage.submit(half, [frame(0, value=0)])[0]
    assert out.image.shape == (8, 12, 3) and out.image[0, 0, 0] in (127, 128)
    assert engine.hooks_seen[-1] is hook
    stage.submit(colour((1, 1, 1)), [frame(1)])
    assert engine.hooks_seen[-1] is None  # the next client's request has no smoother
    stage.close()


def test_a_cancelled_request_returns_at_once_and_an_engine_error_reaches_its_client():
    engine = ColourEngine(fail_on=0.25)
    stage = SharedStage(Stylizer(engine, colour((0, 0, 0)).stats))
    with pytest.raises(StageClosed):
        stage.submit(colour((1, 0, 0)), [frame(0)], cancelled=lambda: True)
    bad = StageSettings(colour((1, 0, 0)).stats, alpha=0.25, preserve_color=False)
    with pytest.raises(RuntimeError, match="engine failure"):
        stage.submit(bad, [frame(0)])
    assert len(stage.submit(colour((1, 0, 0)), [frame(1)])) == 1  # the stage goes on for the others
    stage.close()
    with pytest.raises(StageClosed):
        stage.submit(colour((1, 0, 0)), [frame(2)])


def test_close_wakes_a_waiting_client():
    engine = ColourEngine()
    slow = threading.Event()
    original = engine.run

    def run(*args):
        slow.wait(5)
        return original(*args)

    engine.run = run
    stage = SharedStage(Stylizer(engine, colour((0, 0, 0)).stats))
    errors = []

    def client() -> None:
        try:
            stage.submit(colour((1, 0, 0)), [frame(0)])
            stage.submit(colour((1, 0, 0)), [frame(1)])
        except StageClosed as e:
            errors.append(e)

    t = threading.Thread(target=client)
    t.start()
    time.sleep(0.2)
    closer = threading.Thread(target=stage.close)
    closer.start()
    slow.set()
    t.join(10)
    closer.join(10)
    assert not t.is_alive() and errors


@pytest.mark.parametrize("depth", [1, 2])
def test_a_request_that_fails_to_launch_fails_alone(depth):
    engine = ColourEngine()
    run = engine.run
    first = threading.Event()
    release = threading.Event()

    def run_or_fail(content, stats, alpha):
        if content.shape[-1] == 16:  # the bad client's frame size
            raise RuntimeError("engine failure")
        if not first.is_set():
            first.set()
            release.wait(5)  # hold the good client's first launch until the bad request waits behind it
        return run(content, stats, alpha)

    engine.run = run_or_fail
    stage = SharedStage(Stylizer(engine, colour((0, 0, 0)).stats), depth=depth)
    good: list[Frame] = []
    errors: list[BaseException] = []

    def good_client() -> None:
        for i in range(10):
            good.extend(stage.submit(colour((1, 0, 0)), [frame(i)]))

    def bad_client() -> None:
        for i in range(5):
            try:
                stage.submit(colour((0, 0, 1)), [frame(i, shape=(24, 16))])
            except RuntimeError as e:
                errors.append(e)

    threads = [threading.Thread(target=good_client), threading.Thread(target=bad_client)]
    threads[0].start()
    assert first.wait(5)
    threads[1].start()
    deadline = time.monotonic() + 5
    while stage.pending() < 2 and time.monotonic() < deadline:  # good in flight, bad queued
        time.sleep(0.01)
    release.set()
    for t in threads:
        t.join(10)
    stage.close()
    assert [f.index for f in good] == list(range(10))  # the good client lost nothing
    assert all(np.array_equal(f.image[0, 0], (0, 0, 255)) for f in good)
    assert len(errors) == 5 and stage.pending() == 0
