"""The onnxruntime backend through make_engine: Engine protocol, parity with TorchEngine, file loading.

Bound: max |onnxruntime − torch| ≤ 2e-4 on [0, 1] outputs in fp32 (measured on the CPU ≤ 5e-6 with
the random models used here, ≤ 3e-5 with the real weights), 2e-2 for the fp16 graph on CUDA against
the fp32 torch engine.
"""

from __future__ import annotations

import sys

import pytest
import torch

from engines.errors import StylizeError
from engines.export import export_onnx
from engines.runtimes import make_engine
from engines.runtimes.base import Engine
from engines.runtimes.torch_rt import TorchEngine
from engines.weights import load_model

ATOL_FP32 = 2e-4
ATOL_FP16 = 2e-2
ATOL_CUDA_FP32 = 5e-3  # cuDNN runs fp32 convolutions in TF32 (torch and onnxruntime's use_tf32 alike)
MODELS = ("microast", "adain-cd16x")


@pytest.fixture(scope="module")
def models(tiny_weights):
    """Random microast and adain-cd16x: the backend must match torch whatever the weights."""
    return {name: load_model(name, weights=tiny_weights) for name in MODELS}


def style(model, seed: int):
    """Statistics of a smooth random 'painting' (fast, and far from the saturating extremes)."""
    g = torch.Generator().manual_seed(seed)
    image = torch.nn.functional.interpolate(
        torch.rand(1, 3, 8, 8, generator=g), size=(64, 64), mode="bilinear"
    )
    with torch.no_grad():
        return model.style_stats(image)


def frames(size=(64, 96), n: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    small = torch.rand(n, 3, size[0] // 8, size[1] // 8, generator=g)
    return torch.nn.functional.interpolate(small, size=size, mode="bilinear")


@pytest.mark.parametrize("name", MODELS)
def test_matches_the_torch_engine(models, name):
    model = models[name]
    engine = make_engine("onnxruntime", model, device="cpu")
    assert isinstance(engine, Engine)
    assert (engine.backend, engine.model_name, engine.precision) == ("onnxruntime", name, "fp32")
    assert engine.device == torch.device("cpu") and engine.multiple == model.multiple
    reference = TorchEngine(model, device="cpu")
    x = frames()
    for stats, alpha in ((style(model, 0), 1.0), (style(model, 1), 1.0), (style(model, 0), 0.5)):
        out = engine.run(x, stats, alpha)
        assert out.dtype == torch.float32 and out.device.type == "cpu" and out.shape == x.shape
        assert (out - reference.run(x, stats, alpha)).abs().max().item() <= ATOL_FP32


def test_loads_an_exported_file(models, tmp_path):
    model = models["adain-cd16x"]
    path = tmp_path / "cd16x.onnx"
    export_onnx(model, path, example_size=(64, 64))
    engine = make_engine("onnxruntime", model, device="cpu", onnx_path=path)
    assert engine.precision == "fp32"
    x, stats = frames((72, 128)), style(model, 2)
    ref = TorchEngine(model, device="cpu").run(x, stats, 1.0)
    assert (engine.run(x, stats, 1.0) - ref).abs().max().item() <= ATOL_FP32


def test_rejects_a_file_of_another_model(models, tmp_path):
    path = tmp_path / "cd16x.onnx"
    export_onnx(models["adain-cd16x"], path, example_size=(64, 64))
    with pytest.raises(StylizeError, match="another model"):
        make_engine("onnxruntime", models["microast"], device="cpu", onnx_path=path)
    (tmp_path / "junk.onnx").write_bytes(b"not a graph")
    with pytest.raises(StylizeError, match="not an ONNX graph"):
        make_engine("onnxruntime", models["microast"], device="cpu", onnx_path=tmp_path / "junk.onnx")


def test_fp16_needs_cuda(models):
    with pytest.raises(StylizeError, match="CUDA"):
        make_engine("onnxruntime", models["microast"], device="cpu", precision="fp16")


def test_missing_onnxruntime_is_a_clear_error(models, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    with pytest.raises(StylizeError, match=r"needs onnxruntime: pip install -e \"\.\[onnx\]\""):
        make_engine("onnxruntime", models["microast"], device="cpu")


@pytest.mark.cuda
@pytest.mark.parametrize("precision, atol", [("fp32", ATOL_CUDA_FP32), ("fp16", ATOL_FP16)])
def test_cuda_iobinding_matches_torch(models, precision, atol):
    ort = pytest.importorskip("onnxruntime")
    if not torch.cuda.is_available() or "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("needs a CUDA GPU and onnxruntime-gpu")
    model = models["microast"]
    engine = make_engine(
        "onnxruntime", model, device="cuda", precision=precision, providers=["CUDAExecutionProvider"]
    )
    x, stats = frames().cuda(), style(model, 0)
    out = engine.run(x, stats, 1.0)
    assert out.device.type == "cuda" and out.dtype == torch.float32
    ref = TorchEngine(model, device="cuda", precision="fp32").run(x, stats, 1.0)
    assert (out - ref).abs().max().item() <= atol
