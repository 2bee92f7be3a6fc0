"""The AdaIN paper's network: VGG-19 encoder up to relu4_1, AdaIN, mirror decoder.

The modules are laid out as ``nn.Sequential`` with exactly the paper code's indices, so the
pytorch-AdaIN files (``vgg_normalised.pth``, ``decoder.pth``) load unchanged. Channel widths are read
from the checkpoint, so the 16×-pruned Collaborative-Distillation pair (same layout, 1/4 of the
channels) loads into the same class after renaming its keys (:func:`from_cd_state_dicts`).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from engines.adain import adain, blend, mean_std
from engines.errors import StylizeError
from engines.models.base import ContentStatsHook, StyleModel, StyleStats, load_exact

#: Paper indices of the encoder's 3×3 convs up to relu4_1 (index 0 is the 1×1 input conv).
ENCODER_CONVS = (2, 5, 9, 12, 16, 19, 22, 25, 29)
#: Max-pools come right after these encoder convs' ReLUs (relu1_2, relu2_2, relu3_4).
_POOL_AFTER = {5, 12, 25}
#: Paper indices of the decoder's convs; an upsample follows the ReLU of those in ``_UPSAMPLE_AFTER``.
DECODER_CONVS = (1, 5, 8, 11, 14, 18, 21, 25, 28)
#: the paper's encoder widths (VGG-19 to relu4_1), for a network of that shape without its weights
PAPER_ENCODER_WIDTHS = (64, 64, 128, 128, 256, 256, 256, 256, 512)
_UPSAMPLE_AFTER = {1, 14, 21}
#: Last encoder index used (module 30 is relu4_1).
ENCODER_DEPTH = 31

#: Collaborative-Distillation key names → paper indices.
CD_ENCODER_KEYS = {
    "conv0": 0, "conv11": 2, "conv12": 5, "conv21": 9, "conv22": 12,
    "conv31": 16, "conv32": 19, "conv33": 22, "conv34": 25, "conv41": 29,
}  # fmt: skip
CD_DECODER_KEYS = {
    "conv41": 1, "conv34": 5, "conv33": 8, "conv32": 11, "conv31": 14,
    "conv22": 18, "conv21": 21, "conv12": 25, "conv11": 28,
}  # fmt: skip


def build_encoder(widths: tuple[int, ...]) -> nn.Sequential:
    """Encoder modules 0–30 of the paper for the 9 conv widths (64,64,128,128,256,256,256,256,512)."""
    layers: list[nn.Module] = [nn.Conv2d(3, 3, 1)]
    cin = 3
    for idx, cout in zip(ENCODER_CONVS, widths, strict=True):
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3), nn.ReLU()]
        assert len(layers) - 2 == idx, "layout drifted from the paper's indices"
        if idx in _POOL_AFTER:
            layers.append(nn.MaxPool2d(2, 2, 0, ceil_mode=True))
        cin = cout
    return nn.Sequential(*layers)


def mirror_widths(encoder_widths: tuple[int, ...]) -> tuple[int, ...]:
    """The decoder widths that mirror an encoder's: relu4_1's width in, then the encoder's in reverse, then 3.

    (64,64,128,128,256,256,256,256,512) → (512, 256,256,256,256,128,128,64,64,3), the paper's decoder;
    the same rule gives the CD-16x decoder from its encoder. Used to start a decoder from scratch.
    """
    return (encoder_widths[-1], *reversed(encoder_widths[:-1]), 3)


def build_decoder(widths: tuple[int, ...]) -> nn.Sequential:
    """Decoder modules 0–28: input width, then the 9 conv output widths (256,256,256,256,128,128,64,64,3)."""
    cin, outs = widths[0], widths[1:]
    layers: list[nn.Module] = []
    for idx, cout in zip(DECODER_CONVS, outs, strict=True):
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3)]
        assert len(layers) - 1 == idx, "layout drifted from the paper's indices"
        if idx != DECODER_CONVS[-1]:
            layers.append(nn.ReLU())
        if idx in _UPSAMPLE_AFTER:
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
        cin = cout
    return nn.Sequential(*layers)


class AdaINNet(StyleModel):
    """Encoder–AdaIN–decoder with widths taken from the checkpoint."""

    multiple = 8  # three 2× pools in, three 2× upsamples out
    stats_names = ("mean", "std")

    def __init__(self, encoder_widths: tuple[int, ...], decoder_widths: tuple[int, ...], name: str = "adain"):
        super().__init__()
        self.name = name
        self.encoder = build_encoder(encoder_widths)
        self.decoder = build_decoder(decoder_widths)

    @classmethod
    def from_state_dicts(
        cls, encoder: Mapping[str, torch.Tensor], decoder: Mapping[str, torch.Tensor], name: str = "adain"
    ) -> AdaINNet:
        """Build from paper-format state dicts (keys ``"<index>.weight"``/``".bias"``).

        Encoder keys past relu4_1 (the paper file has modules up to relu5_4) are ignored. Anything
        else that does not match raises :class:`StylizeError` naming the first mismatch.
        """
        enc = {k: v for k, v in encoder.items() if _index(k) is None or _index(k) < ENCODER_DEPTH}
        enc_widths = tuple(_require(enc, f"{i}.weight", "encoder").shape[0] for i in ENCODER_CONVS)
        dec_in = _require(decoder, f"{DECODER_CONVS[0]}.weight", "decoder").shape[1]
        dec_widths = (dec_in,) + tuple(
            _require(decoder, f"{i}.weight", "decoder").shape[0] for i in DECODER_CONVS
        )
        net = cls(enc_widths, dec_widths, name=name)
        load_exact(net.encoder, enc, "encoder")
        load_exact(net.decoder, dict(decoder), "decoder")
        return net.eval()

    @classmethod
    def paper_shaped(cls, name: str = "adain-random", seed: int = 0) -> AdaINNet:
        """The paper's network with random weights: same FLOPs and timings, meaningless pictures."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return cls(PAPER_ENCODER_WIDTHS, mirror_widths(PAPER_ENCODER_WIDTHS), name=name).eval()

    @classmethod
    def from_encoder_state_dict(cls, encoder: Mapping[str, torch.Tensor], name: str = "adain") -> AdaINNet:
        """An encoder from a paper-format state dict and a fresh mirror decoder (where training starts)."""
        enc = {k: v for k, v in encoder.items() if _index(k) is None or _index(k) < ENCODER_DEPTH}
        enc_widths = tuple(_require(enc, f"{i}.weight", "encoder").shape[0] for i in ENCODER_CONVS)
        net = cls(enc_widths, mirror_widths(enc_widths), name=name)
        load_exact(net.encoder, enc, "encoder")
        return net

    @classmethod
    def from_cd_state_dicts(
        cls,
        encoder: Mapping[str, torch.Tensor],
        decoder: Mapping[str, torch.Tensor],
        name: str = "adain-cd16x",
    ) -> AdaINNet:
        """Build from the Collaborative-Distillation files (``conv11`` … names; ``*_aux`` keys ignored)."""
        return cls.from_state_dicts(
            _rename(encoder, CD_ENCODER_KEYS, "encoder"),
            _rename(decoder, CD_DECODER_KEYS, "decoder"),
            name=name,
        )

    @staticmethod
    def cd_encoder_to_paper(encoder: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A Collaborative-Distillation encoder state dict with the paper's indices as keys."""
        return _rename(encoder, CD_ENCODER_KEYS, "encoder")

    def paper_state_dicts(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """(encoder, decoder) state dicts in the pytorch-AdaIN layout (encoder up to relu4_1), on the CPU."""
        return _cpu(self.encoder.state_dict()), _cpu(self.decoder.state_dict())

    def cd_state_dicts(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """(encoder, decoder) state dicts with the Collaborative-Distillation names (no ``_aux`` convs)."""
        enc, dec = self.paper_state_dicts()
        return _unrename(enc, CD_ENCODER_KEYS), _unrename(dec, CD_DECODER_KEYS)

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        return self.encoder(image)

    def style_stats(self, style: torch.Tensor) -> StyleStats:
        mean, std = mean_std(self.encoder(style))
        return {"mean": mean, "std": std}

    def stylize(
        self,
        content: torch.Tensor,
        stats: StyleStats,
        alpha: float | torch.Tensor = 1.0,
        content_hook: ContentStatsHook | None = None,
    ) -> torch.Tensor:
        feat = self.encoder(content)
        t = adain(feat, stats["mean"], stats["std"], content_hook, layer="relu4_1")
        return self.decoder(blend(t, feat, alpha)).clamp(0, 1)


def _index(key: str) -> int | None:
    head = key.split(".", 1)[0]
    return int(head) if head.isdigit() else None


def _require(sd: Mapping[str, torch.Tensor], key: str, what: str) -> torch.Tensor:
    if key not in sd:
        raise StylizeError(f"{what} checkpoint has no key '{key}' (not an AdaIN {what} state dict?)")
    return sd[key]


def _cpu(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached CPU copies in the default memory layout (a channels_last network writes plain files)."""
    return {k: v.detach().to("cpu", copy=True, memory_format=torch.contiguous_format) for k, v in sd.items()}


def _unrename(sd: Mapping[str, torch.Tensor], names: dict[str, int]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`_rename`: paper indices → CD layer names."""
    layer_of = {index: layer for layer, index in names.items()}
    out = {}
    for key, value in sd.items():
        index, _, param = key.partition(".")
        out[f"{layer_of[int(index)]}.{param}"] = value
    return out


def _rename(sd: Mapping[str, torch.Tensor], names: dict[str, int], what: str) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in sd.items():
        layer, _, param = key.partition(".")
        if layer.endswith("_aux"):
            continue  # distillation-only 1×1 convs, unused at inference
        if layer not in names:
            raise StylizeError(f"{what} checkpoint has unexpected key '{key}'")
        out[f"{names[layer]}.{param}"] = value
    return out
