"""``stylize engines build|list|clear``: the cache of built TensorRT engines."""

from __future__ import annotations

import argparse

from engines.errors import StylizeError

NAME = "engines"
HELP = "manage cached TensorRT engines"
DESCRIPTION = (
    "TensorRT engines are built once per model, resolution, GPU and TensorRT version, and cached. "
    "Build one ahead of time, list what is cached, or clear the cache."
)
EXAMPLES = """examples:
  stylize engines build --model microast --size 1920x1080
  stylize engines list
  stylize engines clear"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from engines.device import GRAPH_PRECISIONS
    from engines.engine_cache import default_root
    from engines.weights import DEFAULT_MODEL, REGISTRY

    p.add_argument("--cache", metavar="DIR", help=f"engine cache folder (default: {default_root()})")
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    b = verbs.add_parser("build", help="build (or find) the engine for a model and resolution")
    b.add_argument("--model", default=DEFAULT_MODEL, choices=sorted(REGISTRY), help="(default: %(default)s)")
    b.add_argument("--weights", metavar="DIR", help="folder holding the model's weights")
    b.add_argument("--precision", default="fp16", choices=GRAPH_PRECISIONS, help="(default: %(default)s)")
    b.add_argument(
        "--size", default="1280x720", metavar="WxH", help="resolution to optimize for (default: %(default)s)"
    )
    b.add_argument("--device", default="cuda", help="cuda or cuda:N (default: %(default)s)")
    b.add_argument(
        "--onnx", metavar="FILE", help="build from this `stylize export` file instead of exporting"
    )
    b.add_argument("--no-download", action="store_true", help="never download weights")
    verbs.add_parser("list", help="list cached engines")
    verbs.add_parser("clear", help="delete every cached engine")


def run(args: argparse.Namespace) -> int:
    from engines.engine_cache import EngineCache

    cache = EngineCache(args.cache)
    if args.verb == "list":
        entries = cache.list()
        for e in entries:
            s = e.get("settings", {})
            print(
                f"{e.get('key', '?')[:16]}  {s.get('gpu_name', '?')}  TRT {s.get('trt_version', '?')}  "
                f"{s.get('precision', '?')}  max {s.get('max_shape', '?')}  {e.get('size', 0) / 1e6:.1f} MB"
            )
        print(f"{len(entries)} engine(s) in {cache.root}")
        return 0
    if args.verb == "clear":
        print(f"removed {cache.clear()} engine(s) from {cache.root}")
        return 0
    return _build(args, cache)


def _build(args: argparse.Namespace, cache) -> int:
    from engines.runtimes import make_engine
    from engines.weights import load_model

    try:
        w, h = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise StylizeError(f"--size must look like 1280x720, got '{args.size}'") from None
    model = load_model(args.model, args.weights, download=not args.no_download)
    engine = make_engine(
        "tensorrt", model, device=args.device, precision=args.precision, resolution=(h, w),
        onnx_path=args.onnx, cache_dir=cache.root,
    )  # fmt: skip
    print(f"engine ready: {cache.path_for(engine.settings)}")
    return 0
