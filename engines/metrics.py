"""Quality metrics on ImageNet VGG-16 features: how much an output looks like its style and content.

Style distance between images a and b = Σ over relu1_1, relu2_1, relu3_1, relu4_1 of
‖μ(a) − μ(b)‖² + ‖σ(a) − σ(b)‖²; content distance = MSE at relu4_1. The metric network is a
different network from the ones being measured, so a model cannot score well by matching its own
encoder. Temporal consistency (the warping error) is in :mod:`engines.warping`.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from engines.adain import mean_std
from engines.errors import StylizeError
from engines.models.base import load_exact

_BLOCKS = (
    ("block1_conv1", "block1_conv2"),
    ("block2_conv1", "block2_conv2"),
    ("block3_conv1", "block3_conv2", "block3_conv3"),
    ("block4_conv1",),
)
_WIDTHS = {"block1": 64, "block2": 128, "block3": 256, "block4": 512}
_BGR_MEAN = (103.939, 116.779, 123.68)
#: The metric network's file, and the folder name it is looked for under a weights root.
VGG16_FILE = "vgg16_conv1_1_to_conv4_1_bgr255.pth"
VGG16_FOLDER = "vgg16-imagenet"


class VGG16Features(nn.Module):
    """VGG-16 conv layers up to conv4_1 (zero padding, as trained); returns relu{1,2,3,4}_1."""

    def __init__(self):
        super().__init__()
        cin = 3
        for block in _BLOCKS:
            for name in block:
                cout = _WIDTHS[name[:6]]
                self.add_module(name, nn.Conv2d(cin, cout, 3, padding=1))
                cin = cout
        self.register_buffer("mean", torch.tensor(_BGR_MEAN).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def load(cls, path: str | Path) -> VGG16Features:
        net = cls()
        load_exact(net, torch.load(path, map_location="cpu", weights_only=True), "VGG-16 metric")
        return net.eval().requires_grad_(False)

    def forward(self, rgb: torch.Tensor) -> list[torch.Tensor]:
        """``rgb``: N×3×H×W in [0, 1] → [relu1_1, relu2_1, relu3_1, relu4_1]."""
        x = rgb.flip(1) * 255 - self.mean  # Caffe convention: BGR, 0–255, mean-subtracted
        feats = []
        for i, block in enumerate(_BLOCKS):
            if i:
                x = F.max_pool2d(x, 2)
            for j, name in enumerate(block):
                x = F.relu(getattr(self, name)(x))
                if j == 0:
                    feats.append(x)
        return feats


@torch.inference_mode()
def style_statistics(net: VGG16Features, image: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per-channel mean and std of each of the metric's layers."""
    return [mean_std(f) for f in net(image)]


def statistics_distance(a: list, b: list) -> float:
    """The style distance of two images from their :func:`style_statistics`."""
    return sum(
        float(((ma - mb) ** 2).sum() + ((sa - sb) ** 2).sum())
        for (ma, sa), (mb, sb) in zip(a, b, strict=True)
    )


def style_distance(net: VGG16Features, a: torch.Tensor, b: torch.Tensor) -> float:
    return statistics_distance(style_statistics(net, a), style_statistics(net, b))


@torch.inference_mode()
def content_distance(net: VGG16Features, a: torch.Tensor, b: torch.Tensor) -> float:
    return float(F.mse_loss(net(a)[-1], net(b)[-1]))


def find_vgg16(path: str | os.PathLike | None = None) -> Path:
    """The VGG-16 metric weights: ``path`` (the file, or a folder holding it) when given, and only that;
    else ``$STYLIZE_WEIGHTS/vgg16-imagenet/``, then the user cache's ``weights/vgg16-imagenet/``.
    Never downloaded (there is no published copy of this conversion)."""
    from engines.weights import candidate_dirs

    if path is not None:
        candidates = [Path(path) / VGG16_FILE if Path(path).is_dir() else Path(path)]
    else:
        candidates = [d / VGG16_FILE for d in candidate_dirs(VGG16_FOLDER)]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise StylizeError(
        f"the style distance needs the VGG-16 metric weights {VGG16_FILE}: not found at "
        + ", ".join(str(c) for c in candidates)
        + "; give it with --metric-weights, or leave out --style"
    )


class StyleMeter:
    """Mean style distance of frames (uint8 BGR) to one style image (uint8 BGR).

    The style image is scaled so its shorter side is the frames' shorter side (the first frame's), so
    its strokes are compared at the scale they have in the frames.
    """

    def __init__(self, net: VGG16Features, style: np.ndarray) -> None:
        self.net = net
        self.style = style
        self._style_stats: list | None = None  # computed once, at the first frame's scale
        self.distances: list[float] = []

    def add(self, frame: np.ndarray) -> float:
        from engines.styles import bgr_to_tensor

        if self._style_stats is None:
            h, w = self.style.shape[:2]
            scale = min(frame.shape[:2]) / min(h, w)
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            style = bgr_to_tensor(cv2.resize(self.style, size, interpolation=cv2.INTER_AREA))
            self._style_stats = style_statistics(self.net, style)
        d = statistics_distance(style_statistics(self.net, bgr_to_tensor(frame)), self._style_stats)
        self.distances.append(d)
        return d

    @property
    def mean(self) -> float:
        if not self.distances:
            raise ValueError("no frames were measured")
        return float(np.mean(self.distances))
