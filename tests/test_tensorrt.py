"""TensorRT backend: profile shapes and precision checks everywhere; real builds where TensorRT and a
GPU exist (marked ``tensorrt``; they build tiny engines from an ONNX graph exported here)."""

from __future__ import annotations

import dataclasses
import importlib.util
import io
import warnings

import pytest
import torch
from torch import nn

from engines.engine_cache import EngineCache
from engines.errors import StylizeError
from engines.export import Graph, graph_precision, read_graph
from engines.runtimes import trt_build, trt_compat
from engines.runtimes.base import Engine
from engines.runtimes.options import TensorRTOptions
from engines.runtimes.tensorrt import TensorRTEngine
from engines.runtimes.trt_build import profile_shapes

STATS = ("mean", "std")


class Tiny(nn.Module):
    """The exported graph's interface (content, alpha, one input per statistic -> stylized) on a conv."""

    def __init__(self, half: bool = False):
        super().__init__()
        with torch.random.fork_rng(devices=[]):  # same weights every time, global RNG untouched
            torch.manual_seed(0)
            self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.use_half = half
        if half:
            self.conv.half()

    def forward(self, content, alpha, mean, std):
        y = self.conv(content.half() if self.use_half else content).float()
        return (alpha * (y * std + mean) + (1 - alpha) * y).clamp(0, 1)


def export(module: nn.Module) -> bytes:
    args = (torch.rand(1, 3, 32, 48), torch.tensor([0.5]), torch.rand(1, 3, 1, 1), torch.rand(1, 3, 1, 1))
    dynamic = {0: "batch", 2: "height", 3: "width"}
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            module.eval(),
            args,
            buf,
            input_names=["content", "alpha", *STATS],
            output_names=["stylized"],
            dynamic_axes={"content": dynamic, "stylized": dynamic},
            opset_version=17,
            dynamo=False,
        )
    return buf.getvalue()


def graph(module: nn.Module, stats_names=STATS) -> Graph:
    """The graph contract of a module exported without our metadata: named and sized here."""
    g = read_graph(export(module), "tiny graph")
    return dataclasses.replace(g, model_name="tiny", multiple=8, stats_names=tuple(stats_names))


def build(g: Graph, cache: EngineCache, batch: int = 1, precision: str | None = None) -> TensorRTEngine:
    """The loader's steps (settings → cached plan → runner) for a 64×96 stream on the current GPU."""
    device = torch.device("cuda", torch.cuda.current_device())
    settings = trt_build.plan_settings(g, device, (64, 96), TensorRTOptions(batch=batch))
    if precision is not None:
        settings = dataclasses.replace(settings, precision=precision)
    plan = trt_build.load_or_build(g, settings, cache, device, 1 << 28)
    return TensorRTEngine(plan, g, device, settings)


def stats(device="cpu") -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {name: torch.rand(1, 3, 1, 1, generator=g).to(device) for name in STATS}


# --- no TensorRT needed ----------------------------------------------------------------------------


def test_profile_shapes_default():
    assert profile_shapes(720, 1280, 8) == ((1, 3, 176, 320), (1, 3, 720, 1280), (1, 3, 720, 1280))


def test_profile_shapes_round_to_multiple():
    lo, opt, hi = profile_shapes(721, 1279, 16)
    assert opt == hi == (1, 3, 736, 1280)
    assert lo == (1, 3, 176, 320)
    assert all(s % 16 == 0 for shape in (lo, opt, hi) for s in shape[2:])


def test_profile_shapes_user_max_and_batch():
    lo, opt, hi = profile_shapes(480, 640, 8, max_size=(1080, 1918), batch=2)
    assert (lo, opt, hi) == ((1, 3, 120, 160), (2, 3, 480, 640), (2, 3, 1080, 1920))


def test_profile_shapes_tiny_resolution_keeps_min_positive():
    assert profile_shapes(10, 10, 8)[0] == (1, 3, 8, 8)


def test_profile_shapes_rejects_max_below_resolution():
    with pytest.raises(StylizeError, match="smaller than the resolution"):
        profile_shapes(1080, 1920, 8, max_size=(720, 1280))


def test_onnx_precision_detection():
    assert graph_precision(export(Tiny())) == "fp32"
    assert graph_precision(export(Tiny(half=True))) == "fp16"
    assert graph(Tiny(half=True)).precision == "fp16"
    with pytest.raises(StylizeError, match="not an ONNX graph"):
        read_graph(b"not an onnx model", "junk.onnx")


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_missing_tensorrt_is_a_clear_error():
    with pytest.raises(StylizeError, match=r'needs tensorrt: pip install -e "\.\[trt\]"'):
        trt_compat.import_tensorrt()


# --- real TensorRT on a real GPU -------------------------------------------------------------------


@pytest.fixture(scope="module")
def trt_cache(tmp_path_factory) -> EngineCache:
    """A cache shared by this module's TensorRT tests, so each tiny engine is built once."""
    pytest.importorskip("tensorrt")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU here")
    return EngineCache(tmp_path_factory.mktemp("engines"))


@pytest.fixture(scope="module")
def fp32_engine(trt_cache) -> TensorRTEngine:
    return build(graph(Tiny()), trt_cache, batch=2)


@pytest.mark.tensorrt
@pytest.mark.parametrize("shape", [(1, 3, 64, 96), (2, 3, 32, 48), (1, 3, 16, 24)])
def test_fp32_engine_matches_torch(fp32_engine, shape):
    assert isinstance(fp32_engine, Engine) and fp32_engine.backend == "tensorrt"
    content = torch.rand(shape, device="cuda")
    s = stats("cuda")
    out = fp32_engine.run(content, s, 0.7)
    ref = Tiny().cuda()(content, torch.tensor([0.7], device="cuda"), *s.values())
    assert out.dtype == torch.float32 and out.shape == shape and out.device == content.device
    torch.testing.assert_close(out, ref, atol=5e-3, rtol=5e-3)  # TF32 convolutions


@pytest.mark.tensorrt
def test_fp16_engine_from_fp16_graph(trt_cache):
    engine = build(graph(Tiny(half=True)), trt_cache)
    assert engine.precision == "fp16"
    content = torch.rand(1, 3, 64, 96, device="cuda")
    s = stats("cuda")
    out = engine.run(content, s, 1.0)
    ref = Tiny().cuda()(content, torch.tensor([1.0], device="cuda"), *s.values())
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref, atol=2e-2, rtol=2e-2)


@pytest.mark.tensorrt
def test_precision_must_match_the_graph(trt_cache):
    with pytest.raises(StylizeError, match="needs an ONNX export in that precision"):
        build(graph(Tiny()), trt_cache, precision="fp16")


@pytest.mark.tensorrt
def test_second_construction_reuses_the_cached_engine(fp32_engine, trt_cache, monkeypatch):
    assert trt_cache.load(fp32_engine.settings) is not None
    assert trt_cache.timing_cache_path(fp32_engine.settings).is_file()

    def no_build(*args, **kwargs):
        raise AssertionError("engine rebuilt although it is cached")

    monkeypatch.setattr(trt_build, "build_plan", no_build)
    again = build(graph(Tiny()), trt_cache, batch=2)
    assert again.settings == fp32_engine.settings
    content = torch.rand(1, 3, 64, 96, device="cuda")
    torch.testing.assert_close(
        again.run(content, stats("cuda"), 0.5), fp32_engine.run(content, stats("cuda"), 0.5)
    )


@pytest.mark.tensorrt
def test_runs_on_the_callers_stream(fp32_engine):
    content = torch.rand(1, 3, 64, 96, device="cuda")
    s = stats("cuda")
    expected = fp32_engine.run(content, s, 0.3)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        out = fp32_engine.run(content, s, 0.3)
    torch.cuda.current_stream().wait_stream(side)
    torch.testing.assert_close(out, expected)


@pytest.mark.tensorrt
def test_resolution_above_profile_max_is_a_clear_error(fp32_engine):
    with pytest.raises(StylizeError, match="outside the TensorRT engine's range"):
        fp32_engine.run(torch.rand(1, 3, 128, 128, device="cuda"), stats("cuda"), 1.0)


@pytest.mark.tensorrt
def test_wrong_stats_names_are_a_clear_error(fp32_engine, trt_cache):
    with pytest.raises(StylizeError, match="expected inputs"):
        build(graph(Tiny(), stats_names=("mu", "sigma")), trt_cache, batch=2)


@pytest.mark.tensorrt
def test_unparsable_onnx_lists_parser_errors(trt_cache):
    broken = dataclasses.replace(graph(Tiny()), data=b"not an onnx model", source="broken.onnx")
    with pytest.raises(StylizeError, match="TensorRT could not parse broken.onnx"):
        build(broken, trt_cache)


@pytest.mark.tensorrt
def test_misaligned_views_and_the_default_stream(fp32_engine):
    """A view off a 256-byte boundary is cloned; the legacy default stream runs on a private one."""
    batch = torch.rand(3, 3, 64, 96, device="cuda")
    view = batch[1:2]  # offset 3*64*96*4 bytes: aligned by chance? make it odd below
    odd = torch.rand(3 * 64 * 96 + 1, device="cuda")[1:].view(1, 3, 64, 96)
    assert odd.data_ptr() % 256 != 0
    s = stats("cuda")
    torch.testing.assert_close(fp32_engine.run(odd, s, 1.0), fp32_engine.run(odd.clone(), s, 1.0))
    with torch.cuda.stream(torch.cuda.default_stream()):
        out = fp32_engine.run(view, s, 1.0)
    torch.testing.assert_close(out, fp32_engine.run(view.clone(), s, 1.0))
