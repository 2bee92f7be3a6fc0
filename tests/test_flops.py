"""count_flops: the hand count of a tiny known network, and linear scaling with pixels for the models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from engines.adain import adain, blend, mean_std
from engines.flops import count_flops
from engines.models.base import StyleModel
from engines.weights import load_model


class TinyNet(StyleModel):
    """conv 3→8 (3×3), AdaIN, 2× average pool, conv 8→3 (1×1), 2× upsample; multiple 2."""

    name = "tiny"
    multiple = 2
    stats_names = ("mean", "std")

    def __init__(self):
        super().__init__()
        self.enc = nn.Conv2d(3, 8, 3, padding=1)
        self.pool = nn.AvgPool2d(2)
        self.dec = nn.Conv2d(8, 3, 1)
        self.up = nn.Upsample(scale_factor=2)

    def style_stats(self, style):
        mean, std = mean_std(self.enc(style))
        return {"mean": mean, "std": std}

    def stylize(self, content, stats, alpha=1.0, content_hook=None):
        f = self.enc(content)
        t = blend(adain(f, stats["mean"], stats["std"], content_hook), f, alpha)
        return self.up(self.dec(self.pool(t))).clamp(0, 1)


def tiny_hand_count(h: int, w: int) -> int:
    """2 FLOPs per multiply–accumulate: 3·8·3·3 MACs per pixel, then 8·3 MACs per pooled pixel."""
    return 2 * (h * w * 3 * 8 * 9 + (h // 2) * (w // 2) * 8 * 3)


def test_tiny_network_matches_the_hand_count():
    net = TinyNet().eval()
    assert count_flops(net, 16, 24) == tiny_hand_count(16, 24)
    assert count_flops(net, 15, 23) == tiny_hand_count(16, 24)  # padded up to the multiple, as engines run


@pytest.mark.parametrize("name", ["microast", "adain-cd16x"])
def test_model_counts_scale_with_pixels(tiny_weights, name):
    model = load_model(name, weights=tiny_weights)  # random weights: the count depends on shapes only
    base = count_flops(model, 64, 64)
    assert base > 0
    for h, w in [(128, 128), (96, 160), (480, 848)]:
        assert count_flops(model, h, w) / base == pytest.approx(h * w / (64 * 64), rel=0.01)


def test_counting_leaves_the_model_untouched():
    net = TinyNet().eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    count_flops(net, 32, 32)
    assert all(v.device.type == "cpu" and torch.equal(v, before[k]) for k, v in net.state_dict().items())
