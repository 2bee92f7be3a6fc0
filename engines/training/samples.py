"""A picture of what the decoder has learnt: fixed content images × fixed style images, every K steps.

The first readable images of each folder (sorted), centre-cropped, so the grids of one run (and of its
resumed continuation) show the same cells and can be compared step by step. Layout: the style images
along the top, the content images down the left, each cell the content in that style.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from engines.atomic import write_atomic
from engines.errors import StylizeError
from engines.models.adain_vgg import AdaINNet
from engines.training.data import Reader, resize_and_crop, to_tensor


def pick(paths: Sequence[Path], reader: Reader, count: int, size: int) -> torch.Tensor | None:
    """Up to ``count`` readable images as an N×3×size×size uint8 tensor (None when none reads)."""
    found = []
    for path in paths:
        if len(found) == count:
            break
        try:
            found.append(to_tensor(resize_and_crop(reader(path), size, size, None)))
        except (StylizeError, OSError, cv2.error, ValueError):
            continue
    return torch.stack(found) if found else None


@torch.no_grad()
def grid(net: AdaINNet, contents: torch.Tensor, styles: torch.Tensor, device: torch.device) -> np.ndarray:
    """The grid as H×W×3 uint8 BGR; ``contents``/``styles`` are uint8 N×3×S×S tensors."""
    c = contents.to(device).float() / 255
    s = styles.to(device).float() / 255
    columns = [torch.ones_like(c[:1]), *s.split(1)]  # a white corner, then the styles
    rows = [torch.cat(columns, dim=3)]
    cells = [net.stylize(c, net.style_stats(style)).float() for style in s.split(1)]
    for i in range(c.shape[0]):
        rows.append(torch.cat([c[i : i + 1], *(cell[i : i + 1] for cell in cells)], dim=3))
    image = torch.cat(rows, dim=2)[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
    return np.ascontiguousarray(image[..., ::-1])


def write_png(path: Path, bgr: np.ndarray) -> None:
    ok, encoded = cv2.imencode(".png", bgr)
    if not ok:
        raise StylizeError(f"could not encode the sample grid {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, encoded.tobytes())
