"""``stylize export``: write a model's per-frame network as an ONNX graph."""

from __future__ import annotations

import argparse
from pathlib import Path

from engines.errors import StylizeError

NAME = "export"
HELP = "write a model's per-frame network as ONNX (for TensorRT or onnxruntime)"
DESCRIPTION = (
    "Export the per-frame path (content → stylized) with dynamic batch, height and width, and the style "
    "statistics and alpha as inputs, so one file serves every style and frame size."
)
EXAMPLES = """examples:
  stylize export --model microast --precision fp16 -o microast-fp16.onnx
  stylize convert in.mp4 out.mp4 --style a.jpg --backend onnxruntime   (exports in memory by itself)"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from engines.device import GRAPH_PRECISIONS
    from engines.export import DEFAULT_OPSET
    from engines.weights import DEFAULT_MODEL, REGISTRY

    p.add_argument(
        "--model", default=DEFAULT_MODEL, choices=sorted(REGISTRY), help="network (default: %(default)s)"
    )
    p.add_argument("--weights", metavar="DIR", help="folder holding the model's weights")
    p.add_argument(
        "--precision", choices=GRAPH_PRECISIONS, default="fp32",
        help="fp16: network in float16, AdaIN statistics kept in float32 (default: %(default)s)",
    )  # fmt: skip
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help="ONNX opset (default: %(default)s)")
    p.add_argument("-o", "--output", metavar="OUT.onnx", help="default: MODEL-PRECISION.onnx")
    p.add_argument("--overwrite", action="store_true", help="replace OUT.onnx if it exists")
    p.add_argument("--no-download", action="store_true", help="never download weights")


def run(args: argparse.Namespace) -> int:
    from engines.export import export_onnx, onnx_sha256
    from engines.weights import load_model

    out = Path(args.output or f"{args.model}-{args.precision}.onnx")
    if out.exists() and not args.overwrite:
        raise StylizeError(f"output file already exists: {out} (use --overwrite to replace it)")
    model = load_model(args.model, weights=args.weights, download=not args.no_download)
    data = export_onnx(model, out, precision=args.precision, opset=args.opset)
    print(
        f"wrote {out}: {args.model} {args.precision}, opset {args.opset}, "
        f"{len(data) / 1e6:.1f} MB, sha256 {onnx_sha256(data)[:16]}"
    )
    return 0
