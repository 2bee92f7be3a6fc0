"""The model classes load checkpoints in the published layouts (random files, the real ones, the paper's)."""

import pytest
import torch

from engines.errors import StylizeError
from engines.models.adain_vgg import AdaINNet
from engines.styles import StyleBank
from engines.weights import load_model
from host_traffic import HostTraffic
from media import painting

# The paper's vgg_normalised.pth: 53 nn.Sequential modules, convs at these indices.
PAPER_VGG_CONVS = {0: (3, 3, 1), 2: (64, 3, 3), 5: (64, 64, 3), 9: (128, 64, 3), 12: (128, 128, 3),
                   16: (256, 128, 3), 19: (256, 256, 3), 22: (256, 256, 3), 25: (256, 256, 3),
                   29: (512, 256, 3), 32: (512, 512, 3), 35: (512, 512, 3), 38: (512, 512, 3),
                   42: (512, 512, 3), 45: (512, 512, 3), 48: (512, 512, 3), 51: (512, 512, 3)}  # fmt: skip
# The paper's decoder.pth.
PAPER_DECODER_CONVS = {1: (256, 512), 5: (256, 256), 8: (256, 256), 11: (256, 256), 14: (128, 256),
                       18: (128, 128), 21: (64, 128), 25: (64, 64), 28: (3, 64)}  # fmt: skip


def paper_state_dicts(seed: int = 0) -> tuple[dict, dict]:
    """State dicts with exactly the keys and shapes of pytorch-AdaIN's release files."""
    g = torch.Generator().manual_seed(seed)
    vgg = {}
    for i, (cout, cin, k) in PAPER_VGG_CONVS.items():
        vgg[f"{i}.weight"] = torch.randn(cout, cin, k, k, generator=g) * (2 / (cin * k * k)) ** 0.5
        vgg[f"{i}.bias"] = torch.zeros(cout)
    dec = {}
    for i, (cout, cin) in PAPER_DECODER_CONVS.items():
        dec[f"{i}.weight"] = torch.randn(cout, cin, 3, 3, generator=g) * (2 / (cin * 9)) ** 0.5
        dec[f"{i}.bias"] = torch.zeros(cout)
    return vgg, dec


@pytest.fixture(scope="module")
def paper_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("adain")
    vgg, dec = paper_state_dicts()
    torch.save(vgg, folder / "vgg_normalised.pth")
    torch.save(dec, folder / "decoder.pth")
    return folder


def test_paper_files_load_unchanged_through_the_registry(paper_files):
    model = load_model("adain", weights=paper_files)
    assert isinstance(model, AdaINNet)
    vgg, dec = paper_state_dicts()
    # every used encoder weight landed at its paper index; relu4_2…relu5_4 (index > 30) are ignored
    for key, value in model.encoder.state_dict().items():
        assert torch.equal(value, vgg[key])
    for key, value in model.decoder.state_dict().items():
        assert torch.equal(value, dec[key])
    stats = model.style_stats(torch.rand(1, 3, 40, 48))
    assert stats["mean"].shape == (1, 512, 1, 1)
    out = model.stylize(torch.rand(2, 3, 32, 48), stats)
    assert out.shape == (2, 3, 32, 48) and out.min() >= 0 and out.max() <= 1


@pytest.fixture(params=["random", pytest.param("published", marks=pytest.mark.shared)])
def weights_root(request):
    """A weights root in the published layout: random files (always), and the real ones (../shared)."""
    return request.getfixturevalue("tiny_weights" if request.param == "random" else "shared_weights")


def test_cd16x_files_load_into_the_same_class(weights_root):
    model = load_model("adain-cd16x", weights=weights_root)
    assert type(model) is AdaINNet
    assert model.encoder[29].out_channels == 128 and model.decoder[1].in_channels == 128
    assert model.style_stats(torch.rand(1, 3, 64, 64))["std"].shape == (1, 128, 1, 1)


def test_microast_loads_and_caches_eight_64_vectors(weights_root):
    model = load_model("microast", weights=weights_root)
    stats = model.style_stats(torch.rand(1, 3, 64, 80))
    assert tuple(stats) == model.stats_names
    assert all(v.shape == (1, 64, 1, 1) and v.dtype == torch.float32 for v in stats.values())
    assert model.stylize(torch.rand(1, 3, 32, 44), stats).shape == (1, 3, 32, 44)


def test_alpha_zero_reconstructs_without_style(tiny_weights):
    """α = 0 feeds the content features straight to the decoder, whatever the style."""
    model = load_model("adain-cd16x", weights=tiny_weights)
    x = torch.rand(1, 3, 32, 32)
    a = model.stylize(x, model.style_stats(torch.rand(1, 3, 32, 32)), alpha=0.0)
    b = model.stylize(x, model.style_stats(torch.rand(1, 3, 48, 48) * 0.2), alpha=0.0)
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda vgg, dec: vgg.pop("16.weight"), "'16.weight'"),
        (lambda vgg, dec: dec.__setitem__("8.weight", torch.zeros(256, 128, 3, 3)), "'8.weight' has shape"),
        (lambda vgg, dec: dec.__setitem__("99.weight", torch.zeros(1)), "unexpected key '99.weight'"),
    ],
)
def test_mismatched_checkpoint_names_the_first_mismatch(change, message):
    vgg, dec = paper_state_dicts()
    change(vgg, dec)
    with pytest.raises(StylizeError, match=message):
        AdaINNet.from_state_dicts(vgg, dec)


@pytest.mark.parametrize("name", ["microast", "adain-cd16x"])
def test_the_per_frame_path_is_capturable_in_a_cuda_graph(name, tiny_weights):
    """What ``--cuda-graph`` captures (``model.stylize`` with α as a tensor) copies nothing from the host
    and reads nothing back, checked without a GPU (tests/host_traffic.py) after a warm-up call."""
    model = load_model(name, weights=tiny_weights)
    stats = StyleBank(model, style_size=32, cache_dir=False).add("p", painting(48, 32)).stats
    content, alpha = torch.rand(1, 3, 32, 48), torch.ones(())
    with torch.inference_mode():
        model.stylize(content, stats, alpha)
        with HostTraffic() as traffic:
            model.stylize(content, stats, alpha)
    assert traffic.found == []
