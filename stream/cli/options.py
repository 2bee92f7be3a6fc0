"""Options the stylizing commands share (image, convert, live), and what they build: a Stylizer."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from engines.errors import StylizeError

log = logging.getLogger("stylize")


def add_model_arguments(p: argparse.ArgumentParser, style_help: str = "style image(s)") -> None:
    """Model, weights, style and runtime options."""
    from engines.device import PRECISION_CHOICES
    from engines.runtimes import BACKENDS
    from engines.weights import DEFAULT_MODEL, REGISTRY

    g = p.add_argument_group("model and style")
    g.add_argument(
        "--model", default=DEFAULT_MODEL, choices=sorted(REGISTRY), help="network (default: %(default)s)"
    )
    g.add_argument(
        "--weights",
        metavar="DIR",
        help="folder with the model's files, used alone (without it: $STYLIZE_WEIGHTS, cache, download)",
    )
    g.add_argument("--style", nargs="+", required=True, metavar="IMAGE", help=style_help)
    g.add_argument(
        "--style-weights", nargs="+", type=float, metavar="W", help="mix several styles with these weights"
    )
    g.add_argument(
        "--style-size", type=int, default=512, metavar="PX",
        help="shorter side of the style image when encoded (default: %(default)s; 0 = as is)",
    )  # fmt: skip
    g.add_argument(
        "--alpha", type=float, default=1.0, help="content–style trade-off in [0, 1] (default: %(default)s)"
    )
    g.add_argument(
        "--preserve-color", action="store_true", help="keep the content's colours (luminance-only transfer)"
    )
    r = p.add_argument_group("runtime")
    r.add_argument(
        "--backend", default="torch", choices=BACKENDS, help="inference backend (default: %(default)s)"
    )
    r.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    r.add_argument(
        "--precision", default="auto", choices=PRECISION_CHOICES, help="auto = fp16 on CUDA, fp32 on the CPU"
    )
    r.add_argument(
        "--cuda-graph", action="store_true", help="capture the network in a CUDA graph (torch backend, CUDA)"
    )
    r.add_argument("--no-download", action="store_true", help="never download weights")


def add_size_arguments(p: argparse.ArgumentParser, size: bool = True) -> None:
    g = p.add_argument_group("processing size")
    if size:
        g.add_argument("--size", type=int, metavar="PX", help="scale content so its shorter side is PX")
    g.add_argument(
        "--max-side", type=int, metavar="PX", help="scale content down so its longer side is at most PX"
    )


def add_temporal_arguments(p: argparse.ArgumentParser, default: bool = False) -> None:
    """``--temporal`` / ``--no-temporal``: flow-guided temporal consistency (every backend)."""
    g = p.add_argument_group("temporal consistency")
    g.add_argument(
        "--temporal", action=argparse.BooleanOptionalAction, default=default,
        help="blend each frame with the previous output along the optical flow: steady strokes instead "
        "of boiling texture; scene cuts start afresh (default: %(default)s)",
    )  # fmt: skip
    g.add_argument(
        "--temporal-flow", choices=TEMPORAL_FLOW_CHOICES, default="auto",
        help="where --temporal's optical flow runs: device (tensor ops next to the network, in a CUDA "
        "graph) or host (OpenCV DIS on the CPU); auto: device on a GPU, host on the CPU "
        "(default: %(default)s)",
    )  # fmt: skip


#: engines.temporal.FLOW_PLACES and "auto", spelled out so that building the parser imports no torch.
TEMPORAL_FLOW_CHOICES = ("auto", "host", "device")


def temporal_flow_place(args: argparse.Namespace, device) -> str:
    """``--temporal-flow`` with ``auto`` resolved for the engine's device."""
    from engines.temporal import resolve_flow_place

    return resolve_flow_place(getattr(args, "temporal_flow", "auto"), device)


def check_model_arguments(args: argparse.Namespace) -> None:
    if not 0.0 <= args.alpha <= 1.0:
        raise StylizeError(f"--alpha must be between 0 and 1, got {args.alpha}")
    if args.style_weights is not None:
        if len(args.style_weights) != len(args.style):
            raise StylizeError(
                f"--style-weights has {len(args.style_weights)} values for {len(args.style)} styles"
            )
        if any(w < 0 for w in args.style_weights) or sum(args.style_weights) <= 0:
            raise StylizeError("--style-weights must be non-negative and not all zero")
    for name in ("size", "max_side"):
        value = getattr(args, name, None)
        if value is not None and value < 16:
            raise StylizeError(f"--{name.replace('_', '-')} must be at least 16 pixels, got {value}")
    if args.style_size < 0:
        raise StylizeError(
            f"--style-size must be positive (or 0 for the original size), got {args.style_size}"
        )


def refuse_existing(path: str | Path, overwrite: bool) -> None:
    """Nothing the user owns is replaced unless they said so; the message names the flag that says so."""
    if Path(path).exists() and not overwrite:
        raise StylizeError(f"output file already exists: {path} (use --overwrite to replace it)")


def check_video_output(path: str | Path, overwrite: bool, input_path: str | None = None) -> None:
    """The video sink's checks of an output name, before any slow setup, in the CLI's words."""
    from stream.video_sink import check_target

    check_target(Path(path), True, input_path)  # every check but the existing file, refused here
    refuse_existing(path, overwrite)


def engine_options(args: argparse.Namespace) -> dict:
    """The backend options the flags asked for (the backend refuses those it does not have)."""
    return {"cuda_graph": True} if args.cuda_graph else {}


def show_progress(args: argparse.Namespace) -> bool:
    """Progress bars only on a terminal, and not with -q."""
    return not args.quiet and sys.stderr.isatty()


def load_styles(bank, paths: list[str]) -> list:
    """Encode (or fetch from the cache) each style image."""
    from stream.images import read_image, read_image_bytes

    return [bank.add(Path(p).stem, read_image(p), read_image_bytes(p)) for p in paths]


def load_model_and_bank(args: argparse.Namespace):
    """The model named by the shared arguments and a style bank over it: (model, bank)."""
    from engines.runtimes.options import backend_options
    from engines.styles import StyleBank
    from engines.weights import load_model

    backend_options(args.backend, engine_options(args))  # a foreign option fails before any loading
    model = load_model(args.model, args.weights, download=not args.no_download, progress=show_progress(args))
    return model, StyleBank(model, style_size=args.style_size or None)


def build_engine(args: argparse.Namespace, model, resolution: tuple[int, int] | None = None):
    """The engine the shared runtime arguments ask for, running ``model``."""
    from engines.runtimes import make_engine

    return make_engine(
        args.backend, model, device=args.device, precision=args.precision, resolution=resolution,
        **engine_options(args),
    )  # fmt: skip


def build_stylizer(
    args: argparse.Namespace, resolution: tuple[int, int] | None = None, mix_styles: bool = True
):
    """Model → style bank → engine → Stylizer from the shared arguments: (stylizer, styles, engine).

    With ``mix_styles`` several styles (or ``--style-weights``) become one mixed style; without, the
    Stylizer starts on the first and ``styles`` lists them all (live switching).
    """
    from engines.styles import mix
    from engines.stylizer import Stylizer
    from engines.temporal import TemporalFilter

    model, bank = load_model_and_bank(args)
    styles = load_styles(bank, args.style)
    engine = build_engine(args, model, resolution)
    mixed = len(styles) > 1 or args.style_weights
    style = mix(styles, args.style_weights) if mix_styles and mixed else styles[0]
    log.info("model %s on %s (%s, %s); style: %s", model.name, engine.device, engine.backend,
             engine.precision, style.name)  # fmt: skip
    temporal = None
    if getattr(args, "temporal", False):
        temporal = TemporalFilter(flow=temporal_flow_place(args, engine.device))
    stylizer = Stylizer(
        engine, style.stats, alpha=args.alpha, preserve_color=args.preserve_color, temporal=temporal
    )
    if temporal is not None:
        where = "the CPU (DIS)" if temporal.host_flow else str(engine.device)
        log.info("temporal consistency: optical flow on %s, blending on %s", where, engine.device)
    return stylizer, styles, engine


def engine_label(engine) -> str:
    return f"{engine.model_name} ({engine.backend} {engine.precision}, {engine.device})"
