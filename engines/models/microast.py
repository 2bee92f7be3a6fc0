"""MicroAST (Wang et al., AAAI 2023): a 0.47 M-parameter AdaIN-based arbitrary style transfer model.

Two tiny encoders (content, style), a modulator that turns style features into per-channel filter
weights and biases, and a decoder that applies AdaIN twice plus that filter modulation. Everything
the decoder needs from a style is eight 64-vectors (μ, σ of both style feature maps, and w1, b1,
w2, b2), which is what the style path returns and the style bank caches.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn
from torch.nn import functional as F

from engines.adain import adain, blend, mean_std
from engines.models.base import ContentStatsHook, StyleModel, StyleStats, load_exact


class ConvLayer(nn.Module):
    """Reflection pad k//2, then conv (keys ``conv_layer.*`` as in the released files)."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1):
        super().__init__()
        self.pad = nn.ReflectionPad2d(k // 2)
        self.conv_layer = nn.Conv2d(cin, cout, k, stride, groups=groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_layer(self.pad(x))


class Residual(nn.Module):
    """x + conv2(relu(conv1(x))), or its filter-modulated form when w and b are given."""

    def __init__(self, channels: int = 64):
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, 3)
        self.conv2 = ConvLayer(channels, channels, 3)

    def forward(
        self, x: torch.Tensor, w: torch.Tensor | None = None, b: torch.Tensor | None = None
    ) -> torch.Tensor:
        if w is None or b is None:
            return x + self.conv2(F.relu(self.conv1(x)))
        x2 = F.relu(w * self.conv1(x) + b * x)
        return x + w * self.conv2(x2) + b * x2


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc1 = nn.Sequential(
            ConvLayer(3, 16, 9), nn.ReLU(),
            ConvLayer(16, 32, 3, 2, groups=16), nn.ReLU(),
            ConvLayer(32, 32, 1), nn.ReLU(),
            ConvLayer(32, 64, 3, 2, groups=32), nn.ReLU(),
            ConvLayer(64, 64, 1), nn.ReLU(),
            Residual(64),
        )  # fmt: skip
        self.enc2 = nn.Sequential(Residual(64))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f1 = self.enc1(x)
        return f1, self.enc2(f1)


def _pooled_depthwise() -> nn.Sequential:
    return nn.Sequential(ConvLayer(64, 64, 3, groups=64), nn.AdaptiveAvgPool2d(1))


class Modulator(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight1, self.bias1 = _pooled_depthwise(), _pooled_depthwise()
        self.weight2, self.bias2 = _pooled_depthwise(), _pooled_depthwise()


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.dec1 = Residual(64)
        self.dec2 = Residual(64)
        self.dec3 = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            ConvLayer(64, 32, 3, groups=32), nn.ReLU(),
            ConvLayer(32, 32, 1), nn.ReLU(),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            ConvLayer(32, 16, 3, groups=16), nn.ReLU(),
            ConvLayer(16, 16, 1), nn.ReLU(),
            ConvLayer(16, 3, 9),
        )  # fmt: skip


class MicroAST(StyleModel):
    multiple = 4  # two stride-2 convs in, two 2× upsamples out
    stats_names = ("mean1", "std1", "mean2", "std2", "w1", "b1", "w2", "b2")

    def __init__(self, name: str = "microast"):
        super().__init__()
        self.name = name
        self.content_encoder = Encoder()
        self.style_encoder = Encoder()
        self.modulator = Modulator()
        self.decoder = Decoder()

    @classmethod
    def from_state_dicts(
        cls,
        content_encoder: Mapping[str, torch.Tensor],
        style_encoder: Mapping[str, torch.Tensor],
        modulator: Mapping[str, torch.Tensor],
        decoder: Mapping[str, torch.Tensor],
        name: str = "microast",
    ) -> MicroAST:
        net = cls(name=name)
        load_exact(net.content_encoder, content_encoder, "content encoder")
        load_exact(net.style_encoder, style_encoder, "style encoder")
        load_exact(net.modulator, modulator, "modulator")
        load_exact(net.decoder, decoder, "decoder")
        return net.eval()

    def style_stats(self, style: torch.Tensor) -> StyleStats:
        s1, s2 = self.style_encoder(style)
        m = self.modulator
        mean1, std1 = mean_std(s1)
        mean2, std2 = mean_std(s2)
        stats = {"mean1": mean1, "std1": std1, "mean2": mean2, "std2": std2,
                 "w1": m.weight1(s1), "b1": m.bias1(s1), "w2": m.weight2(s2), "b2": m.bias2(s2)}  # fmt: skip
        return {k: v.float() for k, v in stats.items()}

    def stylize(
        self,
        content: torch.Tensor,
        stats: StyleStats,
        alpha: float | torch.Tensor = 1.0,
        content_hook: ContentStatsHook | None = None,
    ) -> torch.Tensor:
        c1, c2 = self.content_encoder(content)
        dt = c2.dtype
        x1 = adain(c2, stats["mean2"], stats["std2"], content_hook, layer="f2")
        x2 = self.decoder.dec1(x1, stats["w2"].to(dt), stats["b2"].to(dt))
        x3 = adain(x2, stats["mean1"], stats["std1"], content_hook, layer="f1")
        x4 = self.decoder.dec2(x3, stats["w1"].to(dt), stats["b1"].to(dt))
        out = self.decoder.dec3(x4).clamp(0, 1)
        # α in image space: the released decoder was trained at α = 1 only, and the reference code's
        # feature-level blend saturates to flat colours for 0 < α < 1 (measured on the shared photos).
        return blend(out, content.to(out.dtype), alpha).clamp(0, 1)
