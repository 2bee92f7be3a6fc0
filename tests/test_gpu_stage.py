"""The double-buffered stage and the live stage give exactly what a plain serial loop gives."""

import numpy as np
import pytest
import torch

from engines.runtimes import make_engine
from engines.styles import StyleBank
from engines.stylizer import Stylizer
from engines.weights import load_model
from media import painting, photo
from stream.controls import LiveControls
from stream.frames import Frame
from stream.gpu_stage import GpuStage
from stream.live import LiveProcess
from stream.pipeline import Pipeline


@pytest.fixture(scope="module")
def model(tiny_weights):
    return load_model("microast", weights=tiny_weights)


@pytest.fixture(scope="module")
def styles(model):
    bank = StyleBank(model, style_size=64, cache_dir=False)
    return [bank.add(f"painting-{seed}", painting(96, 80, seed)) for seed in (0, 1)]


@pytest.fixture(scope="module")
def frames():
    still = photo(60, 44)
    rng = np.random.default_rng(0)
    return [
        Frame(
            image=np.clip(still + rng.normal(0, 8, still.shape), 0, 255).astype(np.uint8), index=i, pts=3 * i
        )
        for i in range(7)
    ]


def serial(stylizer: Stylizer, frames: list[Frame]) -> list[np.ndarray]:
    return [stylizer([f.image])[0] for f in frames]


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_stage_output_equals_the_serial_loop_bit_exactly(model, styles, frames, device, depth):
    stylizer = Stylizer(make_engine("torch", model, device=str(device), precision="fp32"), styles[0].stats)
    expected = serial(stylizer, frames)
    stage = GpuStage(stylizer, depth=depth)
    out = []
    for f in frames:
        got = stage([f])
        assert len(got) == (1 if f.index >= depth - 1 else 0)  # results come out depth-1 calls later
        out += got
    out += stage.flush()
    assert [f.index for f in out] == [f.index for f in frames]
    assert [f.pts for f in out] == [f.pts for f in frames]
    for a, b in zip(out, expected, strict=True):
        assert np.array_equal(a.image, b)


class ListSink:
    def __init__(self):
        self.frames, self.closed = [], 0

    def write(self, frame):
        self.frames.append(frame)

    def close(self):
        self.closed += 1


@pytest.mark.parametrize("depth", [1, 2])
def test_pipeline_with_the_stage_equals_the_serial_loop(model, styles, frames, depth):
    """Real threads: capture → double-buffered stage → sink, flushed at the end; nothing lost or reordered."""
    stylizer = Stylizer(make_engine("torch", model, device="cpu"), styles[1].stats, size=(40, 56))
    expected = serial(stylizer, frames)
    sink = ListSink()
    stats = Pipeline(list(frames), GpuStage(stylizer, depth=depth), [sink], policy="file").run()
    assert stats.frames_out == len(frames) and sink.closed == 1
    assert [f.index for f in sink.frames] == list(range(len(frames)))
    for got, want in zip(sink.frames, expected, strict=True):
        assert got.image.shape == (40, 56, 3) and np.array_equal(got.image, want)


def test_stage_buffers_are_not_shared_with_results(model, styles, frames):
    stage = GpuStage(Stylizer(make_engine("torch", model, device="cpu"), styles[0].stats), depth=2)
    out = [r for f in frames for r in stage([f])] + stage.flush()
    assert len({id(f.image) for f in out}) == len(out)
    assert not np.array_equal(out[0].image, out[1].image)  # noise differs, so would stale reuse not


def test_live_stage_switches_style_alpha_and_colour_between_frames(model, styles, frames):
    engine = make_engine("torch", model, device="cpu")
    controls = LiveControls([s.name for s in styles])
    live = LiveProcess(Stylizer(engine, styles[0].stats), styles, controls, depth=1)
    reference = Stylizer(
        make_engine("torch", model, device="cpu"), styles[1].stats, alpha=0.5, preserve_color=True
    )

    first = live([frames[0]])[0].image
    controls.next_style()
    controls.set_alpha(0.5)
    controls.toggle_preserve_color()
    second = live([frames[0]])[0].image
    assert not np.array_equal(first, second)
    assert np.array_equal(second, reference([frames[0].image])[0])


def test_live_smoothing_toggle_installs_and_resets_the_hook(model, styles, frames):
    engine = make_engine("torch", model, device="cpu")
    controls = LiveControls([s.name for s in styles])
    live = LiveProcess(Stylizer(engine, styles[0].stats), styles, controls, depth=1)
    live([frames[0]])
    assert engine.content_hook is None
    controls.toggle_smoothing()
    live([frames[1]])
    assert engine.content_hook is live.smoother
    controls.toggle_smoothing()
    live([frames[2]])
    assert engine.content_hook is None


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_graph_matches_eager(model, styles, frames):
    eager = Stylizer(make_engine("torch", model, device="cuda"), styles[0].stats)
    graphed = Stylizer(make_engine("torch", model, device="cuda", cuda_graph=True), styles[0].stats)
    for f in frames[:3]:
        a, b = eager([f.image])[0], graphed([f.image])[0]
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    graphed.stats = styles[1].stats  # new style: refilled, not re-captured
    graphed.alpha = 0.5
    eager.stats, eager.alpha = styles[1].stats, 0.5
    a, b = eager([frames[0].image])[0], graphed([frames[0].image])[0]
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    assert len(graphed.engine._graphs) == 1


def test_smoothing_toggle_is_disabled_where_the_engine_has_no_hook(model, styles, frames):
    engine = make_engine("onnxruntime", model, device="cpu")
    controls = LiveControls([s.name for s in styles], smoothing=True)
    live = LiveProcess(Stylizer(engine, styles[0].stats), styles, controls, depth=1)
    assert not live.smoothing_supported
    assert not controls.snapshot().smoothing
    controls.toggle_smoothing()
    assert not controls.snapshot().smoothing  # the overlay does not claim smoothing it cannot do
    assert live([frames[0]])[0].image.shape == frames[0].image.shape


def test_a_failed_launch_leaves_the_batches_in_flight_alone():
    class Engine:
        backend, model_name, precision, multiple = "stub", "stub", "fp32", 8
        supports_content_hook, content_hook, device = False, None, torch.device("cpu")

        def run(self, content, stats, alpha):
            if (content[:, :, 0, 0] == 1).all():  # a white frame: this engine fails on it
                raise RuntimeError("engine failure")
            return content

    stage = GpuStage(Stylizer(Engine(), {}), depth=2)
    image = np.zeros((8, 8, 3), np.uint8)
    assert stage([Frame(image, 0)]) == []  # in flight
    for i in (1, 2):  # as many failures as the ring has free slots
        with pytest.raises(RuntimeError):
            stage([Frame(np.full_like(image, 255), i)])
    out = stage([Frame(image + 7, 3)]) + stage.flush()
    assert [f.index for f in out] == [0, 3]  # frame 0's slot was not reused by frame 3
    assert [int(f.image[0, 0, 0]) for f in out] == [0, 7]
