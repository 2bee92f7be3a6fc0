"""Randomly initialised models, written in the exact files the registry loads (engines/weights.py).

``write_random_weights(root)`` makes ``root/adain-cd16x/{4SE,4SD}.pth`` (``{"model": state_dict,
"epoch": 20}`` with the Collaborative-Distillation key names, ``*_aux`` keys included) and
``root/microast/*_iter_160000.pth.tar`` (four plain state dicts), so ``load_model(name,
weights=root)`` and ``--weights root`` go through the same resolve → load → build path as with the
published files (sha256 is checked only on download, so these load as they are).

The networks are random (fixed seed, Kaiming-normal convolutions), then the last convolution is
rescaled so the output of a test picture is mid-grey with some contrast (mean 0.5, std 0.2 per
channel before the clamp): stylized frames are neither black nor saturated, differ between styles
and between α values, and stay within fp16's comfortable range. They are not stylizations worth
looking at: tests of quality and of measured numbers use the real weights in ``../shared``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from engines.models.adain_vgg import CD_DECODER_KEYS, CD_ENCODER_KEYS, AdaINNet
from engines.models.microast import MicroAST
from media import painting, photo

#: adain-cd16x's widths (a quarter of the AdaIN paper's VGG-19 channels, see shared/weights/README.md)
CD16X_ENCODER = (16, 16, 32, 32, 64, 64, 64, 64, 128)
CD16X_DECODER = (128, 64, 64, 64, 64, 32, 32, 16, 16, 3)
#: the distillation-only 1×1 convs stored in the real 4SE.pth (ignored at inference): input → output width
CD16X_AUX = {"conv11_aux": (16, 64), "conv21_aux": (32, 128), "conv31_aux": (64, 256),
             "conv41_aux": (128, 512)}  # fmt: skip
MICROAST_FILES = ("content_encoder", "style_encoder", "modulator", "decoder")


def _bgr_tensor(image) -> torch.Tensor:
    return torch.from_numpy(image[:, :, ::-1].copy()).permute(2, 0, 1)[None].float() / 255


def _init(net: nn.Module) -> None:
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            nn.init.normal_(module.bias, 0.0, 0.01)


def _calibrate(net: AdaINNet | MicroAST, last: nn.Conv2d) -> None:
    """Rescale ``last`` (the output conv) so a test photo styled by a test painting has mean 0.5, std 0.2."""
    captured = []
    handle = last.register_forward_hook(lambda module, args, out: captured.append(out))
    try:
        with torch.no_grad():
            stats = net.style_stats(_bgr_tensor(painting(96, 96, seed=0)))
            net.stylize(_bgr_tensor(photo(96, 64, seed=0)), stats)
    finally:
        handle.remove()
    out = captured[-1]
    mean, std = out.mean(dim=(0, 2, 3)), out.std(dim=(0, 2, 3))
    with torch.no_grad():
        gain = 0.2 / std
        last.weight.mul_(gain[:, None, None, None])
        last.bias.copy_((last.bias - mean) * gain + 0.5)


#: Caffe's BGR means: the input 1×1 conv of the VGG encoders maps RGB in [0, 1] to BGR·255 − mean.
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)


def random_adain_cd16x(seed: int = 0) -> AdaINNet:
    """adain-cd16x's network (same class and widths as the published files) with random weights.

    The input 1×1 conv is not random but what it is in the real file (RGB [0, 1] → Caffe's BGR 0–255
    minus the mean), so the features have the real network's magnitudes (this matters for fp16).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = AdaINNet(CD16X_ENCODER, CD16X_DECODER, name="adain-cd16x").eval()
        _init(net)
    with torch.no_grad():
        net.encoder[0].weight.copy_(255 * torch.eye(3).flip(0)[:, :, None, None])
        net.encoder[0].bias.copy_(-torch.tensor(CAFFE_BGR_MEAN))
    _calibrate(net, net.decoder[-1])
    return net


def random_microast(seed: int = 0) -> MicroAST:
    """MicroAST with random weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = MicroAST().eval()
        _init(net)
    _calibrate(net, net.decoder.dec3[-1].conv_layer)
    return net


def _cd_names(state_dict: dict[str, torch.Tensor], names: dict[str, int]) -> dict[str, torch.Tensor]:
    """Paper indices (``"29.weight"``) → Collaborative-Distillation names (``"conv41.weight"``)."""
    by_index = {index: name for name, index in names.items()}
    out = {}
    for key, value in state_dict.items():
        index, _, param = key.partition(".")
        out[f"{by_index[int(index)]}.{param}"] = value.clone()
    return out


def write_random_weights(root: str | Path, seed: int = 0) -> Path:
    """Write random adain-cd16x and microast files under ``root`` (a ``--weights`` root); returns it."""
    root = Path(root)
    cd = random_adain_cd16x(seed)
    encoder = _cd_names(cd.encoder.state_dict(), CD_ENCODER_KEYS)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        for name, (cin, cout) in CD16X_AUX.items():
            encoder[f"{name}.weight"] = torch.randn(cout, cin, 1, 1) * (2 / cin) ** 0.5
            encoder[f"{name}.bias"] = torch.zeros(cout)
    folder = root / "adain-cd16x"
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"model": encoder, "epoch": 20}, folder / "4SE.pth")
    decoder = _cd_names(cd.decoder.state_dict(), CD_DECODER_KEYS)
    torch.save({"epoch": 20, "model": decoder}, folder / "4SD.pth")

    micro = random_microast(seed)
    folder = root / "microast"
    folder.mkdir(parents=True, exist_ok=True)
    for part in MICROAST_FILES:
        torch.save(getattr(micro, part).state_dict(), folder / f"{part}_iter_160000.pth.tar")
    return root
