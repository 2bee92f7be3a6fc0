"""The output folder of a training run: a model folder, plus what resuming needs.

``--out DIR`` holds the model's files under the registry's names and layout (so ``--weights DIR``
loads it with the same checks as downloaded weights) and, beside them, files the registry ignores:

- ``train_state.pth``: step, config, decoder, optimizer, grad scaler and RNG state: the truth a
  resume starts from (the decoder file beside it may be one checkpoint newer after a crash between
  the two renames; the next checkpoint rewrites it);
- ``losses.csv``: one row per logged step up to the last checkpoint;
- ``samples/step_NNNNNNN.png``: fixed content × style grids.

Every file is written atomically, model files first, so whenever a state file exists the encoder file
it pairs with does too.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import torch

from engines.atomic import write_atomic
from engines.errors import StylizeError
from engines.weights import REGISTRY, load_state_dict, spec_for

STATE_FILE = "train_state.pth"
CSV_FILE = "losses.csv"
SAMPLES_DIR = "samples"
#: marks a state file as ours, and its layout's version
FORMAT = "adain-stream-train/1"
CSV_FIELDS = ("step", "content", "style", "total", "lr", "it_per_s")


def check_output(out: Path, model: str | None, resume: bool, overwrite: bool) -> dict | None:
    """The saved state to resume from (``resume``), or None to start afresh in ``out``. ``model`` None
    (with ``resume``): the checkpoint's own.

    Refuses, in one line each: a file where the folder should be; another model's checkpoint or
    files (training would mix two models in one folder); a checkpoint of this model without
    ``--resume``/``--overwrite``; this model's files not written by training (e.g. downloaded weights),
    which the first checkpoint would replace.
    """
    if out.exists() and not out.is_dir():
        raise StylizeError(f"--out {out} is a file; training writes a folder")
    state = read_state(out / STATE_FILE) if (out / STATE_FILE).is_file() else None
    if model is None:
        if state is None:
            raise StylizeError(f"--resume: no checkpoint in {out} (no {STATE_FILE})")
        model = state["model"]
    if state is not None and state["model"] != model:
        raise StylizeError(
            f"--out {out} holds a training checkpoint of model '{state['model']}' (step {state['step']}), "
            f"not '{model}'; choose another --out (or --model {state['model']} --resume to continue it)"
        )
    for spec in REGISTRY.values():
        found = [f.name for f in spec.files if (out / f.name).is_file()]
        if spec.name != model and found:
            raise StylizeError(
                f"--out {out} holds files of model '{spec.name}' ({', '.join(found)}); choose another --out"
            )
    if resume:
        if state is None:
            raise StylizeError(f"--resume: no checkpoint in {out} (no {STATE_FILE})")
        return state
    if state is not None and not overwrite:
        raise StylizeError(
            f"--out {out} already holds a checkpoint of '{model}' at step {state['step']}; "
            "--resume continues it, --overwrite starts again"
        )
    own = [f.name for f in spec_for(model).files if (out / f.name).is_file()]
    if own and state is None and not overwrite:
        raise StylizeError(
            f"--out {out} holds '{model}' weights not written by training ({', '.join(own)}); "
            "choose an empty folder (or --overwrite to replace them)"
        )
    return None


def read_state(path: Path) -> dict:
    state = load_state_dict(path)  # weights_only, one-line errors
    if state.get("format") != FORMAT:
        raise StylizeError(
            f"{path}: not a training checkpoint of this program (format {state.get('format')!r})"
        )
    return state


def save(out: Path, model_files: dict[str, dict], state: dict) -> None:
    """Model files (registry layout), then the state file; each atomically."""
    out.mkdir(parents=True, exist_ok=True)
    for name, contents in model_files.items():
        write_atomic(out / name, _serialize(contents))
    write_atomic(out / STATE_FILE, _serialize({"format": FORMAT, **state}))


def _serialize(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def clear_samples(out: Path) -> None:
    """Remove an earlier run's sample grids (``--overwrite``), so the folder shows one run."""
    for old in (out / SAMPLES_DIR).glob("step_*.png"):
        old.unlink(missing_ok=True)


def read_losses(out: Path, until_step: int) -> list[dict]:
    """The logged rows up to ``until_step`` (rows past a resumed checkpoint are dropped)."""
    path = out / CSV_FILE
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return [
            row
            for row in csv.DictReader(fh)
            if row.get("step", "").isdigit() and int(row["step"]) <= until_step
        ]


def write_losses(out: Path, rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(out / CSV_FILE, buffer.getvalue().encode())
