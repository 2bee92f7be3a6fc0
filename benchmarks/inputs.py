"""What a benchmark runs on: model weights, a style, a video clip.

Nothing is downloaded: a benchmark measures what is already here (``--weights``, the usual places,
else the shared folder of weights and media next to the repository), and says what it skipped.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from engines.errors import StylizeError

#: not a registered model: the paper's VGG-19 network with random weights, for timing it without its files
PAPER_SHAPED = "adain-random"
SHARED_ENV = "STYLIZE_SHARED"  # a folder laid out like ../shared (the GPU check points it at .device/)
DEFAULT_CLIP = Path("media") / "video" / "big_buck_bunny_480p_30s.mp4"


def shared_dir() -> Path:
    """``$STYLIZE_SHARED``, else ``../shared`` next to the repository (weights and media)."""
    env = os.environ.get(SHARED_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared"


def load_models(names: Sequence[str] | None, weights: str | None) -> tuple[dict, list[str]]:
    """Models whose weights resolve without a download (``--weights``, else the usual places, else the
    shared folder); the others become notes rather than failures."""
    from engines.weights import REGISTRY, load_model

    places = [weights] if weights else [None, *([shared_dir() / "weights"] if shared_dir().is_dir() else [])]
    models, notes = {}, []
    for name in names or REGISTRY:
        if name == PAPER_SHAPED:
            from engines.models.adain_vgg import AdaINNet

            models[name] = AdaINNet.paper_shaped(PAPER_SHAPED).requires_grad_(False)
            notes.append(f"{PAPER_SHAPED}: the paper's network shape with random weights (timings only)")
            continue
        if name not in REGISTRY:
            choices = ", ".join([*REGISTRY, PAPER_SHAPED])
            raise StylizeError(f"--models: unknown model '{name}'; choose from {choices}")
        for place in places:
            try:
                models[name] = load_model(name, place, download=False, progress=False)
                break
            except StylizeError as e:
                why = str(e)
        else:
            notes.append(f"model {name} skipped: {why}")
    return models, notes


def synthetic_style(model) -> dict:
    """Style statistics of a fixed random image: the per-frame cost does not depend on the style."""
    g = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        return model.style_stats(torch.rand(1, 3, 256, 256, generator=g))


def probe_video(path: Path) -> dict:
    """Path, size, frame rate and time base of a clip: what an end-to-end run needs to encode it again."""
    from stream.video_source import VideoFileSource

    with VideoFileSource(path) as src:
        return {
            "path": path,
            "width": src.width,
            "height": src.height,
            "fps": src.fps,
            "time_base": src.time_base,
        }
