"""The paper's objective: L = L_c + λ·L_s, measured with the frozen encoder.

- content loss L_c: MSE between the encoding of the decoder's output and the AdaIN target t at relu4_1
  (not the content image's features: the decoder is asked to invert AdaIN, not to reconstruct);
- style loss L_s: Σ over relu1_1, relu2_1, relu3_1, relu4_1 of MSE(μ(output), μ(style)) +
  MSE(σ(output), σ(style)), since AdaIN transfers exactly these statistics.

Statistics use :func:`engines.adain.mean_std` (float32 even under autocast); both MSEs are taken in
float32 too, so fp16/bf16 training changes the speed of the convolutions, not the loss.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from engines.adain import adain, mean_std
from engines.models.adain_vgg import AdaINNet

#: the layers whose statistics define a style, as named in the paper
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
#: encoder module indices where those layers end (pytorch-AdaIN's enc_1 … enc_4 slices)
LAYER_ENDS = (4, 11, 18, 31)


def encode_layers(encoder: nn.Sequential, image: torch.Tensor) -> list[torch.Tensor]:
    """[relu1_1, relu2_1, relu3_1, relu4_1] of ``image``, in one pass through the encoder."""
    feats, x, start = [], image, 0
    for end in LAYER_ENDS:
        for module in encoder[start:end]:
            x = module(x)
        feats.append(x)
        start = end
    return feats


def content_loss(output_feat: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE between the output's relu4_1 and the AdaIN target, in float32."""
    return F.mse_loss(output_feat.float(), target.float())


def style_loss(output_feats: list[torch.Tensor], style_feats: list[torch.Tensor]) -> torch.Tensor:
    """Σ over layers of MSE of the per-channel means plus MSE of the standard deviations (float32)."""
    total = torch.zeros((), device=output_feats[0].device)
    for out, style in zip(output_feats, style_feats, strict=True):
        out_mean, out_std = mean_std(out)
        style_mean, style_std = mean_std(style)
        total = total + F.mse_loss(out_mean, style_mean) + F.mse_loss(out_std, style_std)
    return total


class DecoderLoss(nn.Module):
    """Decoder + frozen encoder → (content loss, style loss) for a batch of content and style images.

    The module a training step calls (and DistributedDataParallel wraps): only the decoder has
    parameters that train; the encoder runs without building a graph for the images' own features,
    and with one for the output's (the gradient reaches the decoder through it).
    """

    def __init__(self, net: AdaINNet):
        super().__init__()
        self.encoder = net.encoder.requires_grad_(False).eval()
        self.decoder = net.decoder.requires_grad_(True).train()

    def forward(self, content: torch.Tensor, style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            style_feats = encode_layers(self.encoder, style)
            content_feat = self.encoder(content)
            target = adain(content_feat, *mean_std(style_feats[-1]))
        output = self.decoder(target)
        output_feats = encode_layers(self.encoder, output)
        return content_loss(output_feats[-1], target), style_loss(output_feats, style_feats)

    def train(self, mode: bool = True) -> DecoderLoss:
        """Only the decoder changes mode: the encoder is a fixed measuring instrument."""
        super().train(mode)
        self.encoder.eval()
        return self
