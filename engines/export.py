"""ONNX export of a model's per-frame path, the graph the onnxruntime and TensorRT backends run.

The graph contract (the TensorRT backend relies on it):

- inputs ``content`` (N×3×H×W; batch, height and width dynamic, named ``batch``/``height``/``width``;
  float32 in the fp32 graph, float16 in the fp16 graph), ``alpha`` (shape [1], float32), then one
  float32 1×C×1×1 input per style statistic, named and ordered as ``model.stats_names``;
- output ``stylized`` (N×3×H×W, the content's float type, in [0, 1]).

Style and α are inputs, not constants, so switching or mixing styles never rebuilds an engine.
In the fp16 graph the network runs in float16 but the AdaIN statistics stay float32 (the model's own
``.float()`` casts in :func:`engines.adain.adain` trace into Cast nodes); :func:`fp32_stats_violations`
checks that on the exported graph.

Every graph also carries metadata (``stylize.model``, ``stylize.multiple``, ``stylize.stats_names``,
``stylize.precision``, ``stylize.fingerprint``), so a runtime given only the file knows what it runs:
:class:`Graph` is that pair of bytes and metadata, the one thing the onnxruntime and TensorRT
backends consume.

The TorchScript exporter (``dynamo=False``) is used: it takes the models' positional ``*stats`` form
with plain ``dynamic_axes``, and exports ``nn.Upsample(scale_factor=2)`` as Resize with constant
*scales*, so one graph serves every frame size. Its only untidiness, reflection-pad amounts computed
by small int64 node chains, is folded into constants here.
"""

from __future__ import annotations

import copy
import hashlib
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from engines.atomic import write_atomic
from engines.device import GRAPH_PRECISIONS
from engines.errors import StylizeError
from engines.models.base import StyleModel, round_up
from engines.optional import require

if TYPE_CHECKING:
    import onnx

#: Opset 17: parsed by TensorRT 8.6 and 10 and run by every onnxruntime since 1.12, and late enough
#: for Resize-with-scales and Pad-with-input-pads. Newer opsets add nothing these networks use.
DEFAULT_OPSET = 17
#: Oldest opset accepted (Squeeze/Unsqueeze/Resize/Pad in their current forms).
MIN_OPSET = 13
#: Newest opset the TorchScript exporter emits.
MAX_OPSET = 20
INPUT_CONTENT, INPUT_ALPHA, OUTPUT = "content", "alpha", "stylized"
_META_PREFIX = "stylize."
DYNAMIC_AXES = {0: "batch", 2: "height", 3: "width"}

#: Shape-arithmetic ops safe to pre-evaluate (same semantics in every opset ≥ MIN_OPSET).
_FOLDABLE = frozenset(
    {"Constant", "ConstantOfShape", "Concat", "Reshape", "Slice", "Transpose", "Cast", "Unsqueeze",
     "Squeeze", "Gather", "Add", "Sub", "Mul", "Div", "Neg"}
)  # fmt: skip
#: Fold only small tensors: shape arithmetic, never weights.
_FOLD_MAX_ELEMENTS = 1024
#: Ops that compute the AdaIN statistics and normalization; they must see float32 in every graph.
STATS_OPS = frozenset({"ReduceMean", "Sqrt", "Div"})


def import_onnx():
    return require("onnx", "reading and writing ONNX graphs")


class _ExportForward(nn.Module):
    """The model's positional forward, with α cast to the network's float type.

    α arrives as a float32 [1] tensor; multiplying fp16 features by it would promote the blend to
    float32 and feed float32 into fp16 convolutions, so it is cast first (as a Python float would be).
    """

    def __init__(self, model: StyleModel):
        super().__init__()
        self.model = model

    def forward(self, content: torch.Tensor, alpha: torch.Tensor, *stats: torch.Tensor) -> torch.Tensor:
        return self.model(content, alpha.to(content.dtype), *stats)


def export_onnx(
    model: StyleModel,
    path: str | os.PathLike | None = None,
    precision: str = "fp32",
    opset: int = DEFAULT_OPSET,
    example_size: tuple[int, int] | None = None,
) -> bytes:
    """Export ``model``'s per-frame path as a validated ONNX graph; returns its bytes.

    ``path``, when given, is written atomically (temporary file in the same folder, then renamed), so
    a reader never sees half a graph. ``example_size`` (H, W; multiples of ``model.multiple``) is only
    the size traced; the graph accepts any size. The default is small on purpose: fp16 convolutions
    on the CPU are so slow that tracing the paper's VGG at 256×256 takes minutes, at 32×32 under a
    second.
    """
    onnx = import_onnx()
    if precision not in GRAPH_PRECISIONS:
        raise StylizeError(
            f"unknown export precision '{precision}': choose one of {', '.join(GRAPH_PRECISIONS)}"
        )
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise StylizeError(
            f"opset {opset} is not supported: choose {MIN_OPSET}–{MAX_OPSET} (default {DEFAULT_OPSET})"
        )
    h, w = example_size or (_default_trace_side(model.multiple),) * 2
    if h <= 0 or w <= 0 or h % model.multiple or w % model.multiple:
        raise StylizeError(f"example_size {h}×{w} must be positive multiples of {model.multiple}")

    dtype = torch.float16 if precision == "fp16" else torch.float32
    src = copy.deepcopy(model).cpu().float().eval().requires_grad_(False)
    g = torch.Generator().manual_seed(0)  # example values do not shape the graph; leave the global RNG be
    with torch.no_grad():
        stats = src.style_stats(torch.rand(1, 3, h, w, generator=g))
    net = _ExportForward(src.to(dtype))
    content = torch.rand(1, 3, h, w, generator=g).to(dtype)
    args = (content, torch.ones(1), *(stats[k] for k in model.stats_names))
    buf = io.BytesIO()
    try:
        # The legacy exporter's deprecation and tracer warnings are not actionable here; the graph is
        # validated below and by the parity tests instead.
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                net,
                args,
                buf,
                dynamo=False,
                opset_version=opset,
                input_names=[INPUT_CONTENT, INPUT_ALPHA, *model.stats_names],
                output_names=[OUTPUT],
                dynamic_axes={INPUT_CONTENT: DYNAMIC_AXES, OUTPUT: DYNAMIC_AXES},
                do_constant_folding=True,
            )
        proto = drop_identity_casts(fold_constants(onnx.load_from_string(buf.getvalue())))
        onnx.helper.set_model_props(
            proto,
            {
                f"{_META_PREFIX}model": model.name,
                f"{_META_PREFIX}precision": precision,
                f"{_META_PREFIX}multiple": str(model.multiple),
                f"{_META_PREFIX}stats_names": ",".join(model.stats_names),
                f"{_META_PREFIX}fingerprint": str(getattr(model, "fingerprint", "")),
            },
        )
        proto.producer_name = "adain-stream"
        onnx.checker.check_model(proto, full_check=True)
    except StylizeError:
        raise
    except Exception as e:  # exporter, folding and checker raise many types
        raise StylizeError(
            f"ONNX export of '{model.name}' ({precision}) failed: {type(e).__name__}: {e}"
        ) from e
    data = proto.SerializeToString()
    if path is not None:
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, data)
        except OSError as e:
            raise StylizeError(f"cannot write {path}: {e}") from None
    return data


def _default_trace_side(multiple: int) -> int:
    """32 px rounded up to the multiple, and ≥ 4 multiples so the deepest features are not 1×1."""
    return max(4 * multiple, round_up(32, multiple))


def onnx_sha256(data: bytes) -> str:
    """Hex sha256 of an exported graph: identifies it in engine caches and logs."""
    return hashlib.sha256(data).hexdigest()


def fold_constants(model: onnx.ModelProto) -> onnx.ModelProto:
    """Pre-evaluate small shape-arithmetic nodes whose inputs are all constants; drop what is unused.

    The exporter computes each reflection pad's amounts with a ConstantOfShape/Concat/Slice(step −1)
    chain that torch's own folding skips; folding them leaves Pad nodes with constant pads, which is
    what TensorRT's reflect-pad path wants.
    """
    import numpy as np
    from onnx import numpy_helper
    from onnx.reference import ReferenceEvaluator

    graph = model.graph
    known = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    small = {n for n, v in known.items() if v.size <= _FOLD_MAX_ELEMENTS}
    kept, folded = [], []
    for node in graph.node:
        inputs = [i for i in node.input if i]
        if node.domain in ("", "ai.onnx") and node.op_type in _FOLDABLE and all(i in small for i in inputs):
            values = ReferenceEvaluator(node).run(None, {i: known[i] for i in inputs})
            outputs = [np.asarray(v) for v in values]
            if all(v.size <= _FOLD_MAX_ELEMENTS for v in outputs):
                for name, value in zip(node.output, outputs, strict=True):
                    known[name] = value
                    small.add(name)
                    folded.append(numpy_helper.from_array(value, name))
                continue
        kept.append(node)
    used = {i for n in kept for i in n.input} | {o.name for o in graph.output}
    initializers = [t for t in [*graph.initializer, *folded] if t.name in used]
    del graph.node[:]
    graph.node.extend(kept)
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    return model


def drop_identity_casts(model: onnx.ModelProto) -> onnx.ModelProto:
    """Remove Casts to the type their input already has (the models' ``.float()`` calls in fp32)."""
    onnx = import_onnx()
    types = _elem_types(onnx.shape_inference.infer_shapes(model))
    outputs = {o.name for o in model.graph.output}
    rename: dict[str, str] = {}
    kept = []
    for node in model.graph.node:
        inputs = [rename.get(i, i) for i in node.input]
        del node.input[:]
        node.input.extend(inputs)
        to = next((a.i for a in node.attribute if a.name == "to"), None)
        if node.op_type == "Cast" and node.output[0] not in outputs and types.get(inputs[0]) == to:
            rename[node.output[0]] = inputs[0]
            continue
        kept.append(node)
    del model.graph.node[:]
    model.graph.node.extend(kept)
    return model


def _elem_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every named tensor of a shape-inferred graph."""
    g = model.graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*g.input, *g.value_info, *g.output]}
    types.update({t.name: t.data_type for t in g.initializer})
    return types


def fp32_stats_violations(data: bytes | onnx.ModelProto) -> list[str]:
    """Nodes of the AdaIN statistics (ReduceMean, Sqrt, Div) whose inputs are not float32.

    Empty for a correct graph of either precision. Types come from ONNX shape inference, so this
    checks the exported graph itself rather than the PyTorch code that produced it.
    """
    onnx = import_onnx()
    proto = onnx.load_from_string(data) if isinstance(data, bytes) else data
    inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=True)
    types = _elem_types(inferred)
    bad = []
    for node in inferred.graph.node:
        if node.op_type in STATS_OPS:
            found = [onnx.TensorProto.DataType.Name(types.get(i, 0)) for i in node.input if i]
            if any(t != "FLOAT" for t in found):
                bad.append(f"{node.op_type} {node.name}: {found}")
    return bad


# ------------------------------------------------------------------------- reading graphs back


@dataclass(frozen=True)
class Graph:
    """An exported graph's bytes and what a runtime needs to know of it (from the graph itself)."""

    data: bytes
    model_name: str
    multiple: int
    stats_names: tuple[str, ...]
    precision: str  # "fp32" | "fp16": the element type of the ``content`` input
    fingerprint: str = ""  # of the weights it was exported from; "" when unknown
    source: str = "the exported graph"  # for messages: a file name, or where it was made

    @property
    def sha256(self) -> str:
        return onnx_sha256(self.data)


def read_graph(data: bytes, source: str = "the ONNX graph") -> Graph:
    """Parse ``data`` and read its contract: precision from the inputs, the rest from the metadata."""
    onnx = import_onnx()
    try:
        proto = onnx.load_from_string(data)
    except Exception as e:  # protobuf raises DecodeError and others for files that are not ONNX
        raise StylizeError(f"{source} is not an ONNX graph: {type(e).__name__}") from None
    meta = {p.key.removeprefix(_META_PREFIX): p.value for p in proto.metadata_props}
    names = [i.name for i in proto.graph.input]
    if names[:2] != [INPUT_CONTENT, INPUT_ALPHA] or OUTPUT not in [o.name for o in proto.graph.output]:
        raise StylizeError(
            f"{source} has inputs {', '.join(names) or 'none'}; a style graph takes "
            f"'{INPUT_CONTENT}', '{INPUT_ALPHA}' and statistics and returns '{OUTPUT}' (see stylize export)"
        )
    try:
        multiple = int(meta.get("multiple", "1"))
    except ValueError:
        multiple = 1
    return Graph(
        data=data,
        model_name=meta.get("model", ""),
        multiple=max(1, multiple),
        stats_names=tuple(names[2:]),
        precision=graph_precision(proto),
        fingerprint=meta.get("fingerprint", ""),
        source=source,
    )


def graph_precision(data: bytes | onnx.ModelProto) -> str:
    """``fp16`` when the graph computes in float16 (inputs, weights, casts or constants), else ``fp32``."""
    onnx = import_onnx()
    proto = onnx.load_from_string(data) if isinstance(data, bytes) else data
    fp16 = onnx.TensorProto.FLOAT16
    graph = proto.graph
    if any(i.type.tensor_type.elem_type == fp16 for i in graph.input):
        return "fp16"
    if any(t.data_type == fp16 for t in graph.initializer):
        return "fp16"
    for node in graph.node:
        for attr in node.attribute:
            if node.op_type == "Cast" and attr.name == "to" and attr.i == fp16:
                return "fp16"
            if node.op_type == "Constant" and attr.name == "value" and attr.t.data_type == fp16:
                return "fp16"
    return "fp32"


def graph_for(model: StyleModel, precision: str | None, path: str | os.PathLike | None = None) -> Graph:
    """The graph a runtime runs for ``model``: exported now, or read from ``path`` and checked.

    A file must come from the same model (and weights, when both are known); ``precision`` is the
    resolved one the caller wants, or None to take the file's.
    """
    if path is None:
        precision = precision or "fp32"
        data = export_onnx(model, precision=precision)
        return read_graph(data, f"the '{model.name}' {precision} export")
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise StylizeError(f"cannot read ONNX file {path}: {e.strerror or e}") from None
    graph = read_graph(data, f"ONNX file {Path(path).name}")
    if graph.model_name and graph.model_name != model.name:
        raise StylizeError(
            f"{graph.source} was exported from another model ('{graph.model_name}', not '{model.name}')"
        )
    fingerprint = str(getattr(model, "fingerprint", ""))
    if fingerprint and graph.fingerprint and graph.fingerprint != fingerprint:
        raise StylizeError(f"{graph.source} was exported from other '{model.name}' weights")
    if graph.stats_names != tuple(model.stats_names):
        raise StylizeError(
            f"{graph.source} takes statistics {', '.join(graph.stats_names)}; model '{model.name}' "
            f"has {', '.join(model.stats_names)} (exported from another model?)"
        )
    if precision is not None and graph.precision != precision:
        raise StylizeError(f"{graph.source} is {graph.precision}, but precision {precision} was asked for")
    return graph
