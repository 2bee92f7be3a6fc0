"""CPU precision and the OpenVINO backend: bf16 where the CPU computes it, parity with fp32 torch.

Bounds: bf16 changes a stylized frame by at most ``BF16_TOLERANCE`` (mean absolute difference on
[0, 1] pixels; measured 0.017 microast, 0.005 adain-cd16x); OpenVINO fp32 matches torch fp32 to 2e-4.
"""

from __future__ import annotations

import pytest
import torch

from engines import device as device_rules
from engines.device import BF16_TOLERANCE, resolve_precision
from engines.errors import StylizeError
from engines.export import export_onnx
from engines.runtimes import make_engine
from engines.runtimes.base import Engine
from engines.weights import load_model

pytestmark = pytest.mark.shared
MODELS = ("microast", "adain-cd16x")


@pytest.fixture(scope="module")
def models(shared_weights):
    return {name: load_model(name, weights=shared_weights) for name in MODELS}


def inputs(model, size=(64, 96)):
    g = torch.Generator().manual_seed(3)
    style = torch.nn.functional.interpolate(
        torch.rand(1, 3, 8, 8, generator=g), size=(64, 64), mode="bilinear"
    )
    content = torch.nn.functional.interpolate(
        torch.rand(1, 3, 8, 12, generator=g), size=size, mode="bilinear"
    )
    with torch.no_grad():
        return content, model.style_stats(style)


def test_auto_picks_bf16_only_where_native(monkeypatch):
    cpu = torch.device("cpu")
    for native, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(device_rules, "cpu_bf16_native", lambda native=native: native)
        assert resolve_precision("auto", cpu) == expected
        assert resolve_precision("auto", cpu, supported=("fp32", "fp16")) == "fp32"  # onnxruntime
    with pytest.raises(StylizeError, match="runs fp32 or fp16, not bf16"):
        resolve_precision("bf16", cpu, supported=("fp32", "fp16"), backend="the onnxruntime backend")


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("backend", ["torch", "openvino"])
def test_bf16_stays_within_tolerance_of_fp32(models, name, backend):
    model = models[name]
    content, stats = inputs(model)
    reference = make_engine("torch", model, device="cpu", precision="fp32").run(content, stats, 1.0)
    engine = make_engine(backend, model, device="cpu", precision="bf16")
    assert isinstance(engine, Engine) and engine.precision == "bf16"
    out = engine.run(content, stats, 1.0)
    assert out.dtype == torch.float32 and out.shape == reference.shape
    difference = (out - reference).abs().mean().item()
    assert 0 < difference <= BF16_TOLERANCE  # > 0: it really ran in bf16


@pytest.mark.parametrize("name", MODELS)
def test_openvino_fp32_matches_torch_at_two_sizes_and_styles(models, name):
    model = models[name]
    engine = make_engine("openvino", model, device="cpu", precision="fp32")
    torch_engine = make_engine("torch", model, device="cpu", precision="fp32")
    assert engine.backend == "openvino" and not engine.supports_content_hook
    for size, alpha in (((64, 96), 1.0), ((96, 64), 0.4)):
        content, stats = inputs(model, size)
        torch.testing.assert_close(engine.run(content, stats, alpha), torch_engine.run(content, stats, alpha),
                                   atol=2e-4, rtol=0)  # fmt: skip
    _, other = inputs(model)
    other = {k: v.flip(1) for k, v in other.items()}  # a different style on the same compiled shape
    content, _ = inputs(model)
    torch.testing.assert_close(engine.run(content, other, 1.0), torch_engine.run(content, other, 1.0),
                               atol=2e-4, rtol=0)  # fmt: skip


def test_openvino_refuses_what_it_cannot_run(models, tmp_path):
    model = models["microast"]
    with pytest.raises(StylizeError, match="runs fp32 or bf16, not fp16"):
        make_engine("openvino", model, device="cpu", precision="fp16")
    path = tmp_path / "cd16x.onnx"
    export_onnx(models["adain-cd16x"], path)
    with pytest.raises(StylizeError, match="another model"):
        make_engine("openvino", model, device="cpu", onnx_path=path)
    with pytest.raises(StylizeError, match="no option 'cuda_graph'"):
        make_engine("openvino", model, device="cpu", cuda_graph=True)
    with pytest.raises(ValueError, match="no content hook"):
        make_engine("openvino", model, device="cpu").content_hook = lambda *a: a[1:]
