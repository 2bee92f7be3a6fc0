"""Frames in, stylized frames out: uint8 BGR on one side, an Engine's float RGB on the other.

Everything between the two (colour order, uint8 ↔ float, padding to the network's multiple,
colour preservation) runs as tensor ops on the engine's device, so on CUDA no per-pixel work is
left to the CPU.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from engines.models.base import StyleStats, round_up
from engines.runtimes.base import Engine
from engines.temporal import Guide, TemporalFilter, resolve_flow_place

# BT.601 luma weights for (R, G, B); they sum to 1, and chroma (Cb, Cr) weights sum to 0.
_LUMA = (0.299, 0.587, 0.114)


def bgr_u8_to_rgb(frames: torch.Tensor) -> torch.Tensor:
    """N×H×W×3 uint8 BGR → N×3×H×W float32 RGB in [0, 1]."""
    return frames.flip(-1).permute(0, 3, 1, 2).float().div_(255)


def rgb_to_bgr_u8(images: torch.Tensor) -> torch.Tensor:
    """N×3×H×W float RGB in [0, 1] → N×H×W×3 uint8 BGR (rounded, contiguous)."""
    return images.flip(1).mul(255).round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad H and W (bottom/right) up to a multiple of ``multiple`` and at least two of them.

    Reflection avoids the dark borders zero padding gives; frames too small to reflect (a pad as
    large as the side) are replicated instead. The two-multiple floor keeps the deepest feature map at
    2×2 or more, which the networks' own reflection pads need.
    """
    h, w = x.shape[-2:]
    ph = max(round_up(h, multiple), 2 * multiple) - h
    pw = max(round_up(w, multiple), 2 * multiple) - w
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def target_size(
    height: int, width: int, size: int | None, max_side: int | None, even: bool = False
) -> tuple[int, int]:
    """Processing size (height, width) of a frame: ``size`` sets the shorter side, ``max_side`` caps the
    longer; ``even`` rounds down to even sides (4:2:0 video needs them)."""
    scale = 1.0
    if size:
        scale = size / min(height, width)
    if max_side and max(height, width) * scale > max_side:
        scale = max_side / max(height, width)
    h, w = max(1, round(height * scale)), max(1, round(width * scale))
    if even:
        h, w = max(2, h - h % 2), max(2, w - w % 2)
    return h, w


def preserve_color(stylized: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Keep the content's colours: take only the stylized luminance.

    Adding the same value to R, G and B changes Y by that value and leaves Cb and Cr untouched, so
    ``content + (Y_stylized − Y_content)`` is a luminance-only transfer in one fused op, per frame,
    without re-encoding the style.
    """
    dy = ((stylized - content) * _luma(stylized.device, stylized.dtype)).sum(dim=1, keepdim=True)
    return (content + dy).clamp_(0, 1)


@functools.cache
def _luma(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The luma weights on a device, made once (a host→device copy per frame would stall the stream)."""
    return torch.tensor(_LUMA, dtype=dtype).view(1, 3, 1, 1).to(device)


class Stylizer:
    """Applies a style to uint8 BGR frames with any :class:`Engine`.

    ``stats``, ``alpha`` and ``preserve_color`` are plain attributes so live controls can change them
    between frames; switching styles is just assigning other cached statistics. ``size`` (height,
    width), when set, is the processing and output size: frames are scaled to it on the device.

    ``temporal`` (a :class:`~engines.temporal.TemporalFilter`, or ``True`` for the default one) makes
    the frames one stream: each output is blended with the previous one along the optical flow, after
    the engine, so it works the same with every backend. Frames must then come in order. ``True``
    puts its optical flow on the engine's device on a GPU, on the host otherwise.
    """

    def __init__(
        self,
        engine: Engine,
        stats: StyleStats,
        alpha: float = 1.0,
        preserve_color: bool = False,
        size: tuple[int, int] | None = None,
        temporal: TemporalFilter | bool | None = None,
    ):
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.engine = engine
        self.stats = stats
        self.alpha = alpha
        self.preserve_color = preserve_color
        self.size = size
        if temporal is True:
            temporal = TemporalFilter(flow=resolve_flow_place("auto", engine.device))
        self.temporal = temporal or None

    def reset(self) -> None:
        """Forget the previous frames (a new clip or segment starts): the temporal filter's state."""
        if self.temporal is not None:
            self.temporal.reset()

    @torch.inference_mode()
    def stylize_tensor(
        self, frames: torch.Tensor, guides: Sequence[Guide | None] | None = None
    ) -> torch.Tensor:
        """N×H×W×3 uint8 BGR on the engine's device → the same layout, stylized.

        With :attr:`temporal` and its flow on the host, ``guides`` are what its ``prepare`` returned for
        these frames (the pipeline computes them from its host copy); without them they are computed
        here, which on CUDA costs a download of the frames. With its flow on the device none are needed.
        """
        temporal = self.temporal
        if temporal is not None and temporal.host_flow and guides is None:
            guides = [temporal.prepare(f) for f in frames.cpu().numpy()]
        content = bgr_u8_to_rgb(frames)
        if self.size is not None and tuple(content.shape[-2:]) != tuple(self.size):
            content = F.interpolate(
                content, size=self.size, mode="bilinear", antialias=True, align_corners=False
            )
        h, w = content.shape[-2:]
        out = self.engine.run(pad_to_multiple(content, self.engine.multiple), self.stats, self.alpha)
        out = out[..., :h, :w]
        if self.preserve_color:
            out = preserve_color(out, content)
        if temporal is not None:
            steady = [
                temporal.apply(out[k : k + 1], guides[k] if guides else None, content[k : k + 1])
                for k in range(out.shape[0])
            ]
            out = steady[0] if len(steady) == 1 else torch.cat(steady)
        return rgb_to_bgr_u8(out)

    def __call__(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Stylize H×W×3 uint8 BGR arrays (one batch per run of equal sizes)."""
        results: list[np.ndarray] = []
        i = 0
        while i < len(images):
            j = i + 1
            while j < len(images) and images[j].shape == images[i].shape:
                j += 1
            batch = np.stack([_check_frame(im) for im in images[i:j]])
            guides = None
            if self.temporal is not None and self.temporal.host_flow:
                guides = [self.temporal.prepare(im) for im in batch]
            out = self.stylize_tensor(torch.from_numpy(batch).to(self.engine.device), guides).cpu().numpy()
            results.extend(out)
            i = j
        return results


def _check_frame(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an H×W×3 uint8 BGR frame, got {image.dtype} array of shape {image.shape}")
    return image
