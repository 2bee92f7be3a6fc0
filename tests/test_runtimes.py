"""The runtime layer's rules, without weights: backend options, device and precision, optional imports."""

from __future__ import annotations

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
