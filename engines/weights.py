"""Named models: which files they need, where those come from, and how a valid file looks.

An explicit ``--weights DIR`` (the model's folder itself, or a root holding one sub-folder per model
name) is the only place looked at: it has the files or it is an error. Without it, weights are looked
for in the ``STYLIZE_WEIGHTS`` root, then the user cache directory; when neither has them they are
downloaded into the cache, each file written to a temporary name, checked
(sha256 where published, then its keys and shapes) and only then renamed into place.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from engines.atomic import atomic_path
from engines.errors import StylizeError
from engines.models.adain_vgg import AdaINNet
from engines.models.base import StyleModel
from engines.models.microast import MicroAST
from engines.userdirs import cache_dir as user_cache_dir

log = logging.getLogger(__name__)

ENV_VAR = "STYLIZE_WEIGHTS"

_ADAIN_RELEASE = "https://github.com/naoto0804/pytorch-AdaIN/releases/download/v0.0.0"
_CD_RAW = (
    "https://raw.githubusercontent.com/MingSun-Tse/Collaborative-Distillation/"
    "4a269dc90020721ef9b279b2926c62f5bcd6d209/trained_models"
)
_MICROAST_RAW = (
    "https://raw.githubusercontent.com/EndyWon/MicroAST/5a6c9050d8c408191cb9db12c697f3e4c7ebe137/models"
)


@dataclass(frozen=True)
class WeightFile:
    """One checkpoint file: its local name, where it is published, and its sha256 when known."""

    name: str
    url: str
    sha256: str | None = None
    #: lower bound on the size in bytes, to reject HTML error pages and truncated files early
    min_size: int = 1


@dataclass(frozen=True)
class TrainingLayout:
    """How ``stylize train`` reads a trainable model's encoder and writes the model's files.

    Writing in the layout ``ModelSpec.build`` reads is what makes a training output folder a model
    folder like a downloaded one: the same checks load it.
    """

    encoder_file: str
    #: the encoder file's contents → a paper-format encoder state dict
    encoder_state: Callable[[dict], dict]
    #: the network → the contents of each of the model's files, keyed by file name
    files: Callable[[AdaINNet], dict[str, dict]]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    files: tuple[WeightFile, ...]
    #: builds the network from the state dicts, keyed by file name; raises StylizeError on mismatch
    build: Callable[[dict[str, dict]], StyleModel]
    #: set for the models whose decoder ``stylize train`` can train (an AdaIN encoder–decoder)
    training: TrainingLayout | None = None


def _unwrap(sd: dict) -> dict:
    """Collaborative-Distillation files wrap the state dict as {"model": ..., "epoch": ...}."""
    return sd["model"] if isinstance(sd, dict) and isinstance(sd.get("model"), dict) else sd


def _named(names: tuple[str, ...], contents) -> dict[str, dict]:
    return dict(zip(names, contents, strict=True))


REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "adain",
            "the AdaIN paper's VGG-19 encoder and decoder (pytorch-AdaIN release files)",
            (
                WeightFile("vgg_normalised.pth", f"{_ADAIN_RELEASE}/vgg_normalised.pth", min_size=50_000_000),
                WeightFile("decoder.pth", f"{_ADAIN_RELEASE}/decoder.pth", min_size=10_000_000),
            ),
            lambda sd: AdaINNet.from_state_dicts(sd["vgg_normalised.pth"], sd["decoder.pth"], name="adain"),
            TrainingLayout(
                "vgg_normalised.pth",
                lambda sd: sd,
                lambda net: _named(("vgg_normalised.pth", "decoder.pth"), net.paper_state_dicts()),
            ),
        ),
        ModelSpec(
            "adain-cd16x",
            "16x-pruned AdaIN encoder/decoder (Collaborative Distillation); fast, mild stylization",
            (
                WeightFile(
                    "4SE.pth",
                    f"{_CD_RAW}/wct_se_16x_new/20191110-132643_E20.pth",
                    "d2f059cbcd6669556a43aadef58d20c8b280462c18b60a9e7424a14dd271cd6b",
                ),
                WeightFile(
                    "4SD.pth",
                    f"{_CD_RAW}/wct_se_16x_new_sd/20191111-092553_E20.pth",
                    "902f65e2c6033d803d02df552eb898e5985190a7ae67d155e384826eec6f04cb",
                ),
            ),
            lambda sd: AdaINNet.from_cd_state_dicts(
                _unwrap(sd["4SE.pth"]), _unwrap(sd["4SD.pth"]), name="adain-cd16x"
            ),
            TrainingLayout(
                "4SE.pth",
                lambda sd: AdaINNet.cd_encoder_to_paper(_unwrap(sd)),
                lambda net: _named(("4SE.pth", "4SD.pth"), ({"model": sd} for sd in net.cd_state_dicts())),
            ),
        ),
        ModelSpec(
            "microast",
            "MicroAST (AAAI 2023): 0.47 M parameters, strong stylization, the fastest model",
            tuple(
                WeightFile(f"{part}_iter_160000.pth.tar", f"{_MICROAST_RAW}/{part}_iter_160000.pth.tar", sha)
                for part, sha in (
                    ("content_encoder", "c8d895c0eec52507c157e102fab217c37f0c399ef3e168ef8b0b2677714660a4"),
                    ("style_encoder", "94f6b3fa386828692c20809a0af8bd0eba9c04e90a7d8842086976e4d223c5af"),
                    ("modulator", "8588055baf7d5ad8398d595d5518c6f030e3ff8dbb6007a7c1779776e11da28b"),
                    ("decoder", "32e04a46b953fd9f94ec9e20f351511305a5260e000c18f9aef6570d5f1e23d9"),
                )
            ),
            lambda sd: MicroAST.from_state_dicts(
                *(
                    sd[f"{p}_iter_160000.pth.tar"]
                    for p in ("content_encoder", "style_encoder", "modulator", "decoder")
                )
            ),
        ),
    )
}

DEFAULT_MODEL = "microast"
#: the models ``stylize train`` trains a decoder for
TRAINABLE = tuple(name for name, spec in REGISTRY.items() if spec.training is not None)


def spec_for(name: str) -> ModelSpec:
    if name not in REGISTRY:
        raise StylizeError(f"unknown model '{name}'; choose one of: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def cache_dir() -> Path:
    """Where downloaded weights live: the user cache directory."""
    return user_cache_dir("weights")


def candidate_dirs(name: str, weights: str | os.PathLike | None = None) -> list[Path]:
    """The folders searched for ``name``'s files, in resolution order.

    An explicit ``weights`` folder excludes the others: falling through to another copy would hide a
    wrong or incomplete folder the user chose.
    """
    if weights is not None:
        root = Path(weights).expanduser()
        return [root, root / name]
    dirs: list[Path] = []
    if os.environ.get(ENV_VAR):
        dirs.append(Path(os.environ[ENV_VAR]).expanduser() / name)
    dirs.append(cache_dir() / name)
    return dirs


def resolve(
    name: str,
    weights: str | os.PathLike | None = None,
    download: bool = True,
    progress: bool | None = None,
    only: tuple[str, ...] | None = None,
) -> dict[str, Path]:
    """Paths of ``name``'s files: the first folder holding all of them, else a fresh download.

    An explicit ``weights`` folder that lacks the files is an error rather than a silent download,
    since the user asked for that folder. ``only`` restricts the files to those names (training
    needs just the encoder).
    """
    spec = spec_for(name)
    files = tuple(f for f in spec.files if only is None or f.name in only)
    names = [f.name for f in files]
    for folder in candidate_dirs(name, weights):
        if all((folder / n).is_file() for n in names):
            return {n: folder / n for n in names}
    if weights is not None:
        root = Path(weights).expanduser()
        others = [
            other.name
            for other in REGISTRY.values()
            if other.name != name and all((root / f.name).is_file() for f in other.files)
        ]
        holds = f" (it holds model '{others[0]}'; choose it with --model)" if others else ""
        raise StylizeError(
            f"--weights {weights}: model '{name}' needs {', '.join(names)} "
            f"in that folder or in its '{name}/' sub-folder{holds}"
        )
    target = cache_dir() / name
    missing = [f for f in files if not (target / f.name).is_file()]
    if not download:
        raise StylizeError(_missing_message(spec, missing, "downloads are disabled"))
    for f in missing:
        try:
            download_file(f, target / f.name, progress=progress)
        except (urllib.error.URLError, TimeoutError, OSError) as e:
            raise StylizeError(_missing_message(spec, missing, f"download of {f.url} failed: {e}")) from None
    return {n: target / n for n in names}


def _missing_message(spec: ModelSpec, missing: list[WeightFile], why: str) -> str:
    return (
        f"weights for model '{spec.name}' not found ({why}); missing: {', '.join(f.name for f in missing)}. "
        f"Provide them with --weights DIR, or set {ENV_VAR}=ROOT (with a '{spec.name}/' sub-folder), "
        f"or put them in {cache_dir() / spec.name}"
    )


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def files_fingerprint(paths: dict[str, Path]) -> str:
    """The identity of a model's files: their names and contents hashed (``model.fingerprint``)."""
    h = hashlib.sha256()
    for p in paths.values():
        h.update(f"{p.name}:{sha256_file(p)}".encode())
    return h.hexdigest()[:16]


def download_file(f: WeightFile, dest: Path, progress: bool | None = None, timeout: float = 30.0) -> None:
    """Download ``f`` to ``dest`` atomically: temp file in the same folder, verify, then rename."""
    from tqdm import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest) as tmp:
        with open(tmp, "wb") as out, urllib.request.urlopen(f.url, timeout=timeout) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                desc=f.name,
                disable=None if progress is None else not progress,
            ) as bar:
                for chunk in iter(lambda: resp.read(1 << 16), b""):
                    out.write(chunk)
                    bar.update(len(chunk))
        check_file(f, tmp)


def check_file(f: WeightFile, path: Path) -> None:
    """Reject a file that is too small, has the wrong sha256, or does not unpickle as a state dict."""
    size = path.stat().st_size
    if size < f.min_size:
        raise StylizeError(f"{f.name}: {size} bytes, expected at least {f.min_size} (truncated download?)")
    if f.sha256 and (digest := sha256_file(path)) != f.sha256:
        raise StylizeError(f"{f.name}: sha256 {digest[:12]}… does not match the published {f.sha256[:12]}…")
    load_state_dict(path)


def load_state_dict(path: Path) -> dict:
    """``torch.load(weights_only=True)`` with a one-line error for files that are not plain state dicts.

    A pickle that refers to code (a class, a function) is refused without running any of it: that is
    what ``weights_only=True`` guarantees, and the reason is said in one line instead of torch's advice
    to turn the guarantee off.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns in several lines about pickles it then refuses
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for bad pickles/zips
        raise StylizeError(_load_failure(path, e)) from None
    if not isinstance(sd, dict):
        raise StylizeError(f"{path}: expected a state dict, found {type(sd).__name__}")
    return sd


def _load_failure(path: Path, e: Exception) -> str:
    """One line, without torch's ANSI escapes and its multi-line advice, saying why ``path`` did not load."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))
    if found := re.search(r"Unsupported global: GLOBAL (\S+)", text):
        return (
            f"{path}: refused: not a plain state dict but a pickle that would call {found[1]} while loading "
            f"(code could run); only tensors and plain containers are loaded"
        )
    if found := re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", text):
        detail = found[1].strip()
    else:
        detail = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return f"{path}: not a loadable PyTorch checkpoint ({type(e).__name__}: {detail})"


def load_model(
    name: str = DEFAULT_MODEL,
    weights: str | os.PathLike | None = None,
    download: bool = True,
    progress: bool | None = None,
) -> StyleModel:
    """Resolve, load and build a named model (float32, eval mode, on the CPU).

    ``model.fingerprint`` identifies the exact weights (used in style-cache keys).
    """
    paths = resolve(name, weights, download=download, progress=progress)
    log.info("model %s: weights from %s", name, next(iter(paths.values())).parent)
    sds = {n: load_state_dict(p) for n, p in paths.items()}
    try:
        model = spec_for(name).build(sds)
    except StylizeError as e:
        raise StylizeError(f"model '{name}' from {next(iter(paths.values())).parent}: {e}") from None
    model.fingerprint = files_fingerprint(paths)
    return model.requires_grad_(False)


def load_encoder(
    name: str, weights: str | os.PathLike | None = None, download: bool = True, progress: bool | None = None
) -> AdaINNet:
    """A trainable model's encoder (resolved like :func:`load_model`) with a freshly initialized decoder.

    Only the encoder file is needed: a decoder is what training makes.
    """
    spec = spec_for(name)
    if spec.training is None:
        raise StylizeError(f"model '{name}' cannot be trained; trainable models: {', '.join(TRAINABLE)}")
    path = resolve(name, weights, download=download, progress=progress, only=(spec.training.encoder_file,))
    path = path[spec.training.encoder_file]
    log.info("model %s: encoder from %s", name, path.parent)
    try:
        return AdaINNet.from_encoder_state_dict(spec.training.encoder_state(load_state_dict(path)), name=name)
    except StylizeError as e:
        raise StylizeError(f"model '{name}' from {path.parent}: {e}") from None
