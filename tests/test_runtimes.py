"""The runtime layer's rules, without weights: backend options, device and precision, optional imports."""

from __future__ import annotations

import shutil
import sys

import pytest
import torch

from engines.device import resolve_device, resolve_precision
from engines.errors import StylizeError
from engines.optional import install_hint, require
from engines.runtimes import BACKENDS, make_engine
from engines.runtimes.options import OnnxRuntimeOptions, TorchOptions, backend_options


def test_backend_options_are_typed_and_name_their_owner():
    assert backend_options("torch", {"cuda_graph": True}) == TorchOptions(cuda_graph=True)
    assert backend_options("onnxruntime", {}) == OnnxRuntimeOptions()
    with pytest.raises(StylizeError, match=r"onnxruntime backend has no option 'cuda_graph' .*backend torch"):
        backend_options("onnxruntime", {"cuda_graph": True})
    with pytest.raises(StylizeError, match="has no option 'turbo'$"):
        backend_options("torch", {"turbo": 1})


def test_make_engine_refuses_a_foreign_option_before_any_work():
    # model=None: the option check must come before the model is touched
    with pytest.raises(StylizeError, match="cuda_graph"):
        make_engine("onnxruntime", None, cuda_graph=True)
    with pytest.raises(StylizeError, match="unknown backend 'jax'"):
        make_engine("jax", None)
    assert BACKENDS == ("torch", "onnxruntime", "openvino", "tensorrt")


def test_device_rules():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    for bad in ("tpu", "gpu0", "cuda:x"):
        with pytest.raises(StylizeError, match="device"):
            resolve_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(StylizeError, match="no CUDA GPU"):
            resolve_device("cuda:0")


def test_precision_rules():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == "fp32"
    assert resolve_precision("auto", torch.device("cuda", 0)) == "fp16"
    assert resolve_precision("auto", cpu, graph_precision="fp32") == "fp32"
    with pytest.raises(StylizeError, match="fp16 needs a CUDA device"):
        resolve_precision("fp16", cpu)
    with pytest.raises(StylizeError, match="unknown precision 'int4'"):
        resolve_precision("int4", cpu)
    with pytest.raises(StylizeError, match="graph is fp16, but precision fp32"):
        resolve_precision("fp32", torch.device("cuda", 0), graph_precision="fp16")


def test_optional_imports_hint_the_readme_extra(monkeypatch):
    assert install_hint("onnxruntime") == 'pip install -e ".[onnx]"'
    assert install_hint("tensorrt") == 'pip install -e ".[trt]"'
    assert require("json", "testing") is sys.modules["json"]
    monkeypatch.setitem(sys.modules, "pyvirtualcam", None)
    with pytest.raises(StylizeError) as err:
        require("pyvirtualcam", "virtual camera output")
    assert str(err.value) == 'virtual camera output needs pyvirtualcam: pip install -e ".[vcam]"'


def tiny_adain():
    from engines.models.adain_vgg import AdaINNet

    torch.manual_seed(0)
    return AdaINNet((8, 8, 8, 8, 8, 8, 8, 8, 16), (16, 8, 8, 8, 8, 8, 8, 8, 8, 3), name="tiny").eval()


@pytest.mark.skipif(shutil.which("g++") is None, reason="torch.compile on the CPU needs a C++ compiler")
def test_torch_compile_matches_eager_and_alpha_does_not_recompile():
    model = tiny_adain()
    stats = model.style_stats(torch.rand(1, 3, 32, 32))
    x = torch.rand(1, 3, 32, 48)
    eager = make_engine("torch", model, device="cpu", precision="fp32")
    compiled = make_engine("torch", model, device="cpu", precision="fp32", compile=True)
    torch._dynamo.reset()
    for alpha in (1.0, 0.5, 0.25):
        torch.testing.assert_close(
            compiled.run(x, stats, alpha), eager.run(x, stats, alpha), atol=1e-4, rtol=0
        )
    frames = torch._dynamo.utils.counters["frames"]
    assert frames["ok"] == 1  # one graph for every α: α is a tensor input, not a constant


def test_paper_shaped_network_has_the_papers_cost():
    from benchmarks.inputs import PAPER_SHAPED, load_models
    from engines.flops import count_flops

    models, notes = load_models([PAPER_SHAPED], None)
    assert 1.99e12 < count_flops(models[PAPER_SHAPED], 1080, 1920) < 2.01e12  # the 2.0 TFLOP
    assert any("random weights" in n for n in notes)


def test_cuda_graph_and_compile_together_are_refused():
    from engines.models.microast import MicroAST

    with pytest.raises(StylizeError, match="alternatives: choose one"):
        make_engine("torch", MicroAST(), device="cpu", cuda_graph=True, compile=True)


def test_device_stats_keeps_recent_styles_converted():
    from engines.runtimes.base import DeviceStats

    def style():
        return {"mean": torch.rand(1, 8, 1, 1, dtype=torch.float64)}

    device_stats = DeviceStats(torch.device("cpu"))
    a, b = style(), style()
    first_a, first_b = device_stats(a), device_stats(b)
    for _ in range(3):  # two clients on different styles, alternating: each converted once
        assert device_stats(a) is first_a and device_stats(b) is first_b
    assert first_a["mean"].dtype == torch.float32
    for _ in range(7):  # seven more styles after b: a is the least recently used and goes
        device_stats(style())
    assert device_stats(b) is first_b and device_stats(a) is not first_a
