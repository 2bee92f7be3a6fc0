"""ONNX export: the graph contract, parity with PyTorch in onnxruntime (CPU), the fp16 graph, the CLI.

The models are the random ones of ``tiny_weights`` (the export is the same graph whatever the
weights), fed generated photos and paintings. Error bounds, max |onnx − torch| on [0, 1] outputs, CPU:
- fp32 graph: bound 2e-4; measured ≤ 1e-5 with the random models at every size and α here
  (≤ 3e-5 and ≤ 1.4e-5 for the real microast and adain-cd16x on real photos).
- fp16 graph (onnxruntime CPU fp16 kernels) against the float32 torch model: bound 2e-2;
  measured ≤ 6.7e-3 (random models; ≤ 4.2e-3 with the real ones).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from engines.errors import StylizeError
from engines.export import DEFAULT_OPSET, export_onnx, fp32_stats_violations, graph_precision, onnx_sha256
from engines.models.base import StyleModel, StyleStats
from engines.stylizer import bgr_u8_to_rgb
from engines.weights import load_model
from media import painting, photo
from stream.cli import main

ATOL_FP32 = 2e-4
ATOL_FP16 = 2e-2
MODELS = ("microast", "adain-cd16x")
# Multiples of each model's `multiple`: square, non-square, and one that is not a multiple of twice it.
SIZES = {"microast": [(64, 64), (96, 160), (132, 196)], "adain-cd16x": [(64, 64), (96, 160), (136, 200)]}
CASES = [
    pytest.param(name, size, id=f"{name}-{size[0]}x{size[1]}") for name in MODELS for size in SIZES[name]
]


def to_rgb(bgr: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """1×3×H×W float RGB in [0, 1], resized to exactly ``size``."""
    bgr = cv2.resize(bgr, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return bgr_u8_to_rgb(torch.from_numpy(bgr)[None])


@dataclass
class Built:
    model: StyleModel
    styles: list[StyleStats]
    graph: bytes
    session: ort.InferenceSession


@pytest.fixture(scope="module")
def built(tiny_weights):
    """Per model, built once: the model, two styles, the fp32 graph and one onnxruntime session."""
    cache: dict[str, Built] = {}

    def get(name: str) -> Built:
        if name not in cache:
            model = load_model(name, weights=tiny_weights)
            with torch.no_grad():
                styles = [model.style_stats(to_rgb(painting(160, 128, seed), (128, 128))) for seed in (0, 1)]
            graph = export_onnx(model, example_size=(64, 64))
            session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
            cache[name] = Built(model, styles, graph, session)
        return cache[name]

    return get


def contents(size: tuple[int, int]) -> torch.Tensor:
    """A batch of two photos at ``size``."""
    return torch.cat([to_rgb(photo(240, 160, seed), size) for seed in (0, 1)])


def run_onnx(
    session: ort.InferenceSession, content: torch.Tensor, stats: StyleStats, alpha: float, names
) -> torch.Tensor:
    dtype = np.float16 if session.get_inputs()[0].type == "tensor(float16)" else np.float32
    feed = {"content": content.numpy().astype(dtype), "alpha": np.array([alpha], np.float32)}
    feed.update({k: stats[k].numpy() for k in names})
    return torch.from_numpy(session.run(["stylized"], feed)[0]).float()


def torch_ref(model: StyleModel, content: torch.Tensor, stats: StyleStats, alpha: float) -> torch.Tensor:
    with torch.no_grad():
        return model.stylize(content, stats, alpha)


def dims(value_info) -> list:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


@pytest.mark.parametrize("name", MODELS)
def test_graph_follows_the_contract(built, name):
    b = built(name)
    proto = onnx.load_from_string(b.graph)
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version == DEFAULT_OPSET
    inputs = {i.name: i for i in proto.graph.input}
    assert [i.name for i in proto.graph.input] == ["content", "alpha", *b.model.stats_names]
    assert dims(inputs["content"]) == ["batch", 3, "height", "width"]
    assert dims(inputs["alpha"]) == [1]
    for k in b.model.stats_names:
        assert dims(inputs[k]) == list(b.styles[0][k].shape)
    assert all(i.type.tensor_type.elem_type == TensorProto.FLOAT for i in proto.graph.input)
    (out,) = proto.graph.output
    assert out.name == "stylized" and dims(out) == ["batch", 3, "height", "width"]
    assert out.type.tensor_type.elem_type == TensorProto.FLOAT
    # upsampling is Resize by constant scales (any frame size), and no pad amount is left to compute
    ops = [n.op_type for n in proto.graph.node]
    assert "Resize" in ops and all(
        n.input[2] and not n.input[3:] for n in proto.graph.node if n.op_type == "Resize"
    )
    assert "ConstantOfShape" not in ops
    assert {p.key: p.value for p in proto.metadata_props}["stylize.model"] == name


@pytest.mark.parametrize("name, size", CASES)
def test_fp32_parity_across_frame_sizes(built, name, size):
    b = built(name)
    x = contents(size)  # batch of two
    out = run_onnx(b.session, x, b.styles[0], 1.0, b.model.stats_names)
    ref = torch_ref(b.model, x, b.styles[0], 1.0)
    assert out.shape == ref.shape == x.shape
    assert (out - ref).abs().max().item() <= ATOL_FP32


@pytest.mark.parametrize("name", MODELS)
def test_alpha_is_a_graph_input(built, name):
    b = built(name)
    x = contents((64, 96))
    outs = []
    for alpha in (0.0, 0.5):
        out = run_onnx(b.session, x, b.styles[0], alpha, b.model.stats_names)
        assert (out - torch_ref(b.model, x, b.styles[0], alpha)).abs().max().item() <= ATOL_FP32
        outs.append(out)
    assert (outs[0] - outs[1]).abs().mean().item() > 0.01


@pytest.mark.parametrize("name", MODELS)
def test_two_styles_through_one_session(built, name):
    b = built(name)
    x = contents((64, 96))
    a, c = (run_onnx(b.session, x, s, 1.0, b.model.stats_names) for s in b.styles)
    for out, stats in ((a, b.styles[0]), (c, b.styles[1])):
        assert (out - torch_ref(b.model, x, stats, 1.0)).abs().max().item() <= ATOL_FP32
    assert (a - c).abs().mean().item() > 0.02


@pytest.mark.parametrize("name", MODELS)
def test_fp16_graph_keeps_statistics_in_fp32(built, name):
    b = built(name)
    graph = export_onnx(b.model, precision="fp16", example_size=(64, 64))
    proto = onnx.load_from_string(graph)
    types = {i.name: i.type.tensor_type.elem_type for i in [*proto.graph.input, *proto.graph.output]}
    assert types["content"] == types["stylized"] == TensorProto.FLOAT16
    assert types["alpha"] == TensorProto.FLOAT
    assert all(types[k] == TensorProto.FLOAT for k in b.model.stats_names)
    inits = {t.name: t.data_type for t in proto.graph.initializer}
    conv_weights = [inits[n.input[1]] for n in proto.graph.node if n.op_type == "Conv"]
    assert conv_weights and set(conv_weights) == {TensorProto.FLOAT16}  # the network really is fp16
    assert sum(n.op_type == "ReduceMean" for n in proto.graph.node) >= 2
    assert fp32_stats_violations(graph) == []

    try:
        session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    except Exception as e:  # builds without CPU fp16 kernels raise NOT_IMPLEMENTED
        pytest.skip(f"this onnxruntime's CPU provider cannot run the fp16 graph: {e}")
    x = contents((64, 96))
    out = run_onnx(session, x, b.styles[0], 1.0, b.model.stats_names)
    assert (out - torch_ref(b.model, x, b.styles[0], 1.0)).abs().max().item() <= ATOL_FP16


def test_stats_check_flags_fp16_statistics():
    """The fp32-statistics check is not vacuous: a ReduceMean on float16 is reported."""
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["x"], ["m"], axes=[2, 3], keepdims=1)],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("m", TensorProto.FLOAT16, [1, 4, 1, 1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert len(fp32_stats_violations(model)) == 1


def test_export_writes_atomically_and_is_deterministic(built, tmp_path):
    b = built("microast")
    path = tmp_path / "sub" / "m.onnx"
    data = export_onnx(b.model, path, example_size=(64, 64))
    assert path.read_bytes() == data == b.graph  # same bytes as the fixture's in-memory export
    assert [p.name for p in path.parent.iterdir()] == ["m.onnx"]  # no temporary left behind
    assert onnx_sha256(data) == hashlib.sha256(data).hexdigest()


def test_export_rejects_bad_arguments(built):
    model = built("microast").model
    with pytest.raises(StylizeError, match="precision"):
        export_onnx(model, precision="int8")
    with pytest.raises(StylizeError, match="multiples of 4"):
        export_onnx(model, example_size=(66, 64))
    with pytest.raises(StylizeError, match="opset"):
        export_onnx(model, opset=9)


def test_cli_export_refuses_to_overwrite(tiny_weights, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    argv = ["export", "--model", "microast", "--weights", str(tiny_weights), "-o", str(out)]
    assert main(argv) == 0
    assert str(out) in capsys.readouterr().out
    first = out.read_bytes()
    onnx.checker.check_model(onnx.load_from_string(first))
    assert graph_precision(first) == "fp32"
    assert main(argv) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert out.read_bytes() == first
    assert main([*argv, "--overwrite", "--precision", "fp16"]) == 0
    assert out.read_bytes() != first and graph_precision(out.read_bytes()) == "fp16"
