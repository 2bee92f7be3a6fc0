"""``stylize train``: train an AdaIN decoder on folders of content and style images (the paper's recipe)."""

from __future__ import annotations

import argparse
import logging
import signal
from pathlib import Path

from engines.errors import StylizeError
from stream.cli.options import show_progress

log = logging.getLogger("stylize")

NAME = "train"
HELP = "train a decoder (the AdaIN paper's losses) into a model folder"
DESCRIPTION = (
    "Train the decoder of an AdaIN model on a frozen encoder with the paper's objective: content loss at "
    "relu4_1 against the AdaIN target plus style-weight × the mean/std loss at relu1_1 to relu4_1. "
    "--out becomes a model folder that --weights loads; it also keeps the training state (for --resume), "
    "losses.csv and sample grids. Ctrl-C or SIGTERM saves a checkpoint and stops. For several GPUs: "
    "torchrun --nproc-per-node N -m stream train ... (--batch is per GPU)."
)
EXAMPLES = """examples:
  stylize train --content coco/ --style wikiart/ --out my-decoder/
  stylize train --content photos/ --style paintings/ --out tuned/ --model adain-cd16x --init model
  stylize train --out my-decoder/ --resume
  torchrun --nproc-per-node 8 -m stream train --content coco/ --style wikiart/ --out my-decoder/
  stylize image photo.jpg -o out.png --style a.jpg --model adain --weights my-decoder/"""

#: option → TrainConfig field, for the options whose default comes from the config (or the checkpoint)
_FIELDS = {
    "model": "model", "steps": "steps", "batch": "batch_size", "lr": "lr", "lr_decay": "lr_decay",
    "content_weight": "content_weight", "style_weight": "style_weight", "load_size": "load_size",
    "crop": "crop_size", "seed": "seed", "init": "init", "precision": "precision", "device": "device",
    "workers": "workers", "save_every": "save_every", "sample_every": "sample_every",
    "log_every": "log_every", "samples": "samples",
}  # fmt: skip


def add_arguments(p: argparse.ArgumentParser) -> None:
    from engines.device import PRECISION_CHOICES
    from engines.training.loop import TrainConfig
    from engines.weights import TRAINABLE

    d = TrainConfig()
    g = p.add_argument_group("data and output")
    g.add_argument("--content", metavar="DIR", help="folder of content images (the paper: MS-COCO)")
    g.add_argument("--style", metavar="DIR", help="folder of style images (the paper: WikiArt)")
    g.add_argument("--out", required=True, metavar="DIR", help="model folder to write (and resume from)")
    g.add_argument("--resume", action="store_true", help="continue the checkpoint in --out at its step")
    g.add_argument("--overwrite", action="store_true", help="start again in an --out holding a checkpoint")
    m = p.add_argument_group("model")
    m.add_argument("--model", choices=TRAINABLE, help=f"encoder–decoder to train (default: {d.model})")
    m.add_argument(
        "--weights", metavar="DIR", help="folder with the model's files (the encoder; --init model)"
    )
    m.add_argument(
        "--init", choices=("random", "model"),
        help="decoder to start from: random, or the model's own (fine-tuning) (default: random)",
    )  # fmt: skip
    m.add_argument("--no-download", action="store_true", help="never download weights")
    t = p.add_argument_group("training (defaults: the paper's)")
    t.add_argument("--steps", type=int, metavar="N", help=f"total iterations (default: {d.steps})")
    t.add_argument(
        "--batch", type=int, metavar="N", help=f"images per step and process (default: {d.batch_size})"
    )
    t.add_argument("--lr", type=float, help=f"Adam learning rate (default: {d.lr:g})")
    t.add_argument(
        "--lr-decay", type=float, metavar="D", help=f"lr / (1 + decay × step) (default: {d.lr_decay:g})"
    )
    t.add_argument(
        "--style-weight", type=float, metavar="λ", help=f"style loss weight (default: {d.style_weight:g})"
    )
    t.add_argument(
        "--content-weight",
        type=float,
        metavar="W",
        help=f"content loss weight (default: {d.content_weight:g})",
    )
    t.add_argument(
        "--load-size", type=int, metavar="PX",
        help=f"shorter side images are resized to before cropping (default: {d.load_size})",
    )  # fmt: skip
    t.add_argument(
        "--crop", type=int, metavar="PX", help=f"random square crop, multiple of 8 (default: {d.crop_size})"
    )
    t.add_argument("--seed", type=int, help=f"decoder init and data order (default: {d.seed})")
    r = p.add_argument_group("runtime (may change on --resume)")
    r.add_argument(
        "--precision", choices=PRECISION_CHOICES,
        help="autocast: auto = bf16 where native (GPU or CPU), else fp16 with a grad scaler (GPU) or fp32",
    )  # fmt: skip
    r.add_argument("--device", help="auto, cpu, cuda or cuda:N (default: auto)")
    r.add_argument("--workers", type=int, metavar="N", help=f"image loading processes (default: {d.workers})")
    r.add_argument(
        "--save-every", type=int, metavar="N", help=f"checkpoint every N steps (default: {d.save_every})"
    )
    r.add_argument(
        "--sample-every", type=int, metavar="N", help=f"sample grid every N steps (default: {d.sample_every})"
    )
    r.add_argument(
        "--log-every", type=int, metavar="N", help=f"losses.csv row every N steps (default: {d.log_every})"
    )
    r.add_argument(
        "--samples",
        type=int,
        metavar="N",
        help=f"content and style images in the grid (default: {d.samples})",
    )


def run(args: argparse.Namespace) -> int:
    from engines.training.checkpoint import check_output
    from engines.training.loop import StopSignals, TrainConfig, train
    from stream.images import read_image

    given = {
        field: getattr(args, option) for option, field in _FIELDS.items() if getattr(args, option) is not None
    }
    for option, field in (("content", "content_dir"), ("style", "style_dir")):
        if getattr(args, option) is not None:
            given[field] = str(Path(getattr(args, option)).resolve())
    out = Path(args.out)
    model = given.get("model") or (None if args.resume else TrainConfig.model)  # None: the checkpoint's
    state = check_output(out, model, args.resume, args.overwrite)
    config = TrainConfig.from_dict(state["config"]).resumed(given) if state else TrainConfig(**given)
    config.check()
    content = _images(config.content_dir, "--content")
    style = _images(config.style_dir, "--style")
    with StopSignals() as stop:
        result = train(
            config, content, style, out, read_image, weights=args.weights, state=state,
            progress=show_progress(args), download=not args.no_download, should_stop=stop,
        )  # fmt: skip
    if not result.main:
        return _exit_code(result.stopped_by)
    if result.skipped:
        log.warning("%d unreadable image(s) were skipped", result.skipped)
    losses = "" if result.first_loss is None else f", loss {result.first_loss:.4g} → {result.last_loss:.4g}"
    if result.stopped_by is not None:
        name = signal.Signals(result.stopped_by).name
        if result.step == 0:
            log.error("stopped by %s before the first step; nothing was written", name)
            return _exit_code(result.stopped_by)
        log.error(
            "stopped by %s at step %d; checkpoint saved in %s (continue with --resume)",
            name,
            result.step,
            out,
        )
    elif result.step == result.start_step:
        print(
            f"{out}: already at step {result.step} of {config.steps}; nothing to do (raise --steps to go on)"
        )
        return 0
    print(
        f"{out}: {config.model} decoder at step {result.step}/{config.steps}{losses} "
        f"({result.device}, {result.precision}, {result.processes}); "
        f"use it with --model {config.model} --weights {out}"
    )
    return _exit_code(result.stopped_by)


def _exit_code(stopped_by: int | None) -> int:
    """0, or 128 + the signal, as a shell reports a process that a signal ended (130 Ctrl-C, 143 SIGTERM)."""
    return 0 if stopped_by is None else 128 + int(stopped_by)


def _images(folder: str, option: str) -> list[Path]:
    """A folder's images, or one line saying why there are none."""
    from stream.images import list_images

    if not folder:
        raise StylizeError(f"{option} DIR is required (the folder of training images)")
    path = Path(folder)
    if not path.exists():
        raise StylizeError(f"{option} {folder}: folder not found")
    if not path.is_dir():
        raise StylizeError(f"{option} {folder} is a file; give the folder of training images")
    try:
        return list_images(path)
    except OSError as e:
        raise StylizeError(f"{option} {folder}: cannot list the folder ({e.strerror})") from None
