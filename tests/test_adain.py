import pytest
import torch

from engines.adain import AdaIN, adain, blend, mean_std, mix_stats


def _reference(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """AdaIN written straight from the paper's formula, in float64."""
    x, y = x.double(), y.double()
    mx, my = x.mean(dim=(2, 3), keepdim=True), y.mean(dim=(2, 3), keepdim=True)
    sx = (x.var(dim=(2, 3), keepdim=True, unbiased=True) + 1e-5).sqrt()
    sy = (y.var(dim=(2, 3), keepdim=True, unbiased=True) + 1e-5).sqrt()
    return sy * (x - mx) / sx + my


@pytest.mark.parametrize("shape", [(1, 3, 5, 7), (2, 16, 9, 4), (3, 64, 16, 16), (1, 8, 1, 2)])
def test_adain_matches_formula(shape):
    g = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(shape, generator=g) * 3 + 1
    y = torch.randn((shape[0], shape[1], 6, 11), generator=g) * 0.5 - 2
    my, sy = mean_std(y)
    out = adain(x, my, sy)
    torch.testing.assert_close(out.double(), _reference(x, y), rtol=1e-4, atol=1e-4)
    # the result carries the style's statistics
    mo, so = mean_std(out)
    torch.testing.assert_close(mo, my, rtol=1e-3, atol=1e-3)


def test_module_form_equals_functional():
    x, y = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 5, 5)
    torch.testing.assert_close(AdaIN()(x, *mean_std(y)), adain(x, *mean_std(y)))


def test_alpha_zero_returns_content_features():
    x, y = torch.randn(1, 8, 6, 6), torch.randn(1, 8, 6, 6)
    t = adain(x, *mean_std(y))
    assert torch.equal(blend(t, x, 0.0), x)
    assert torch.equal(blend(t, x, 1.0), t)


def test_fp16_features_get_fp32_statistics():
    x = (torch.randn(1, 4, 32, 32) * 300).half()  # fp16 squares of these overflow
    mean, std = mean_std(x)
    assert mean.dtype == std.dtype == torch.float32
    assert torch.isfinite(std).all()
    out = adain(x, torch.zeros(1, 4, 1, 1), torch.ones(1, 4, 1, 1))
    assert out.dtype == torch.float16 and torch.isfinite(out).all()


def test_one_hot_interpolation_equals_single_style():
    styles = [{"mean": torch.randn(1, 8, 1, 1), "std": torch.rand(1, 8, 1, 1)} for _ in range(3)]
    for i in range(3):
        weights = [1.0 if j == i else 0.0 for j in range(3)]
        mixed = mix_stats(styles, weights)
        for k in ("mean", "std"):
            assert torch.equal(mixed[k], styles[i][k])


def test_interpolation_is_the_papers_weighted_sum_of_adain_outputs():
    x = torch.randn(1, 8, 6, 6)
    s1, s2 = (torch.randn(1, 8, 9, 9) * k for k in (1.0, 3.0))
    (m1, d1), (m2, d2) = mean_std(s1), mean_std(s2)
    mixed = mix_stats([{"mean": m1, "std": d1}, {"mean": m2, "std": d2}], [0.25, 0.75])
    expected = 0.25 * adain(x, m1, d1) + 0.75 * adain(x, m2, d2)
    torch.testing.assert_close(adain(x, mixed["mean"], mixed["std"]), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("weights", [[1.0], [-1.0, 2.0], [0.0, 0.0]])
def test_bad_interpolation_weights_are_rejected(weights):
    styles = [{"mean": torch.zeros(1, 2, 1, 1)}] * 2
    with pytest.raises(ValueError):
        mix_stats(styles, weights)


def test_channel_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="channels"):
        adain(torch.randn(1, 8, 4, 4), torch.zeros(1, 4, 1, 1), torch.ones(1, 4, 1, 1))
