"""Numerical facts of the functional core (models/functional.py) and the mixing layers over it."""
from __future__ import annotations

import pytest
import torch

from stylemix.models import functional as Fn
from stylemix.models.mixing import StyleCode, stack_codes


def _feats(*shape: int, seed: int = 0, scale: float = 3.0, shift: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g) * scale + shift


def _stats(k: int, c: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(k, c, generator=g) * 2.0, torch.rand(k, c, generator=g) * 3.0 + 0.1


# --- statistics and AdaIN -------------------------------------------------------------------------

def test_mean_std_matches_torch():
    x = _feats(2, 5, 7, 9)
    mean, std = Fn.mean_std(x, eps=0.0)
    torch.testing.assert_close(mean, x.mean(dim=(2, 3)), rtol=0, atol=1e-5)
    torch.testing.assert_close(std, x.std(dim=(2, 3), unbiased=False), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match=r"\(5, 7, 9\)"):
        Fn.mean_std(x[0])


def test_adain_output_has_target_channel_stats():
    content = _feats(2, 8, 16, 16, scale=4.0, shift=-2.0)
    g = torch.Generator().manual_seed(3)
    mean = torch.randn(2, 8, generator=g) * 5.0
    std = torch.rand(2, 8, generator=g) * 4.0 + 0.5
    out = Fn.adain(content, mean, std)
    got_mean, got_std = Fn.mean_std(out, eps=0.0)
    scale = float(std.max())  # tolerance relative to the size of the statistics: 1e-4 of it
    torch.testing.assert_close(got_mean, mean, rtol=0, atol=1e-4 * scale)
    torch.testing.assert_close(got_std, std, rtol=0, atol=1e-4 * scale)


def test_instance_norm_is_zero_mean_unit_std():
    out = Fn.instance_norm(_feats(3, 4, 8, 8, scale=10.0, shift=5.0))
    mean, std = Fn.mean_std(out, eps=0.0)
    torch.testing.assert_close(mean, torch.zeros(3, 4), rtol=0, atol=1e-5)
    torch.testing.assert_close(std, torch.ones(3, 4), rtol=0, atol=1e-5)


# --- blend weights ---------------------------------------------------------------------------------

@pytest.mark.parametrize("weights, k, pattern", [
    ([1.0, -0.5], 2, r"non-negative.*-0\.5"),
    ([1.0, float("nan")], 2, r"finite.*nan"),
    ([float("inf"), 1.0], 2, r"finite.*inf"),
    ([0.0, 0.0, 0.0], 3, r"all zero"),
    ([0.5, 0.5, 1.0], 2, r"got 3 weights for 2 styles"),
    ([1.0], 2, r"got 1 weights for 2 styles"),
])
def test_validate_weights_rejects_bad_values_naming_them(weights, k, pattern):
    with pytest.raises(ValueError, match=pattern):
        Fn.validate_weights(weights, k)


def test_validate_weights_normalises_and_defaults_to_equal():
    assert torch.equal(Fn.validate_weights([1, 3], 2), torch.tensor([0.25, 0.75]))
    assert torch.equal(Fn.validate_weights(None, 4), torch.full((4,), 0.25))
    assert Fn.validate_weights(torch.tensor([2.0, 2.0]), 2).dtype == torch.float32
    with pytest.raises(ValueError, match="at least one style"):
        Fn.validate_weights(None, 0)


def test_validate_weights_does_not_overflow_for_huge_finite_weights():
    assert torch.equal(Fn.validate_weights([1e308, 1e308], 2), torch.tensor([0.5, 0.5]))
    assert torch.equal(Fn.validate_weights([1.7e308, 1e-300, 0.0], 3), torch.tensor([1.0, 0.0, 0.0]))
    w = Fn.validate_weights([3e307, 1e308], 2)
    assert torch.allclose(w, torch.tensor([3 / 13, 10 / 13])) and torch.isfinite(w).all()


@pytest.mark.parametrize("weights", ["ab", b"ab", ["a", "b"], [None, 1.0], {"a": 1}])
def test_validate_weights_rejects_non_numbers_with_a_type_error(weights):
    with pytest.raises(TypeError, match="style weights must be a sequence of 2 numbers"):
        Fn.validate_weights(weights, 2)


def test_blend_weights_one_zero_equal_the_single_style_exactly():
    means, stds = _stats(2, 16)
    w = Fn.validate_weights([1, 0], 2)
    mean, std = Fn.blend_stats(means, stds, w)
    assert torch.equal(mean, means[0]) and torch.equal(std, stds[0])
    # and the whole mixing layer: two styles weighted (1, 0) == that style alone
    content = _feats(2, 16, 8, 8)
    assert torch.equal(Fn.mix(content, means, stds, w), Fn.mix(content, means[:1], stds[:1], torch.ones(1)))


def test_blend_is_order_invariant():
    means, stds = _stats(3, 16)
    w = Fn.validate_weights([0.2, 0.5, 0.3], 3)
    perm = torch.tensor([2, 0, 1])
    a = Fn.blend_stats(means, stds, w)
    b = Fn.blend_stats(means[perm], stds[perm], w[perm])
    torch.testing.assert_close(a[0], b[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(a[1], b[1], rtol=0, atol=1e-6)
    content = _feats(1, 16, 8, 8)
    torch.testing.assert_close(Fn.mix(content, means, stds, w), Fn.mix(content, means[perm], stds[perm], w[perm]),
                               rtol=0, atol=1e-5)


def test_blend_is_the_weighted_mean_of_statistics():
    means, stds = _stats(2, 4)
    mean, std = Fn.blend_stats(means, stds, torch.tensor([0.25, 0.75]))
    torch.testing.assert_close(mean, 0.25 * means[0] + 0.75 * means[1], rtol=0, atol=1e-6)
    torch.testing.assert_close(std, 0.25 * stds[0] + 0.75 * stds[1], rtol=0, atol=1e-6)


@pytest.mark.parametrize("per_sample", [False, True])
def test_constant_spatial_weights_equal_vector_weights(per_sample):
    k, b, c, h, w = 3, 2, 8, 6, 10
    means, stds = _stats(k, c)
    if per_sample:  # (k, b, c) statistics
        means, stds = means[:, None].repeat(1, b, 1) + torch.arange(b)[None, :, None], stds[:, None].repeat(1, b, 1)
    weights = Fn.validate_weights([0.5, 0.2, 0.3], k)
    spatial = weights.view(k, 1, 1, 1, 1).expand(k, b, 1, h, w)
    content = _feats(b, c, h, w)
    torch.testing.assert_close(Fn.mix(content, means, stds, spatial), Fn.mix(content, means, stds, weights),
                               rtol=0, atol=1e-5)


def test_one_hot_masks_give_each_region_its_style():
    means, stds = _stats(2, 8)
    content = _feats(1, 8, 8, 8)
    mask = torch.zeros(2, 1, 1, 8, 8)
    mask[0, ..., :4], mask[1, ..., 4:] = 1, 1  # left half style 0, right half style 1
    out = Fn.mix(content, means, stds, mask)
    for s, cols in ((0, slice(0, 4)), (1, slice(4, 8))):
        ref = Fn.adain(content, means[s:s + 1], stds[s:s + 1])
        torch.testing.assert_close(out[..., cols], ref[..., cols], rtol=0, atol=1e-5)


def test_alpha_zero_returns_content_and_alpha_interpolates():
    means, stds = _stats(2, 8)
    content = _feats(2, 8, 8, 8)
    w = Fn.validate_weights([0.3, 0.7], 2)
    assert torch.equal(Fn.mix(content, means, stds, w, alpha=0.0), content)
    full = Fn.mix(content, means, stds, w, alpha=1.0)
    torch.testing.assert_close(Fn.mix(content, means, stds, w, alpha=0.25), 0.25 * full + 0.75 * content,
                               rtol=0, atol=1e-5)
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match=f"alpha must be in \\[0, 1\\], got {bad}"):
            Fn.mix(content, means, stds, w, alpha=bad)


def test_resize_weights_keeps_a_partition_of_unity():
    g = torch.Generator().manual_seed(0)
    w = torch.rand(3, 2, 1, 5, 7, generator=g)
    w = w / w.sum(0, keepdim=True)
    out = Fn.resize_weights(w, (10, 14))
    assert out.shape == (3, 2, 1, 10, 14)
    assert (out >= 0).all()
    torch.testing.assert_close(out.sum(0), torch.ones(2, 1, 10, 14), rtol=0, atol=1e-6)


# --- Gram, whitening/colouring, luminance ----------------------------------------------------------

def test_gram_is_symmetric_and_equals_hand_computation():
    x = _feats(2, 3, 4, 5)
    g = Fn.gram(x)
    assert g.shape == (2, 3, 3)
    b, c, h, w = x.shape
    hand = torch.zeros(b, c, c, dtype=torch.float64)
    xd = x.double()
    for n in range(b):
        for i in range(c):
            for j in range(c):
                hand[n, i, j] = sum(xd[n, i, p, q] * xd[n, j, p, q] for p in range(h) for q in range(w)) / (c * h * w)
    torch.testing.assert_close(g.double(), hand, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g, g.transpose(1, 2), rtol=0, atol=1e-6 * float(g.abs().max()))


def _cov(x: torch.Tensor) -> torch.Tensor:
    xc = x - x.mean(1, keepdim=True)
    return xc @ xc.T / (x.shape[1] - 1)


def test_whiten_color_gives_the_style_mean_and_covariance():
    g = torch.Generator().manual_seed(0)
    mix_c = torch.randn(4, 4, generator=g, dtype=torch.float64)
    mix_s = torch.randn(4, 4, generator=g, dtype=torch.float64) * 2
    content = mix_c @ torch.randn(4, 600, generator=g, dtype=torch.float64) + 1.0
    style = mix_s @ torch.randn(4, 500, generator=g, dtype=torch.float64) - 3.0
    out = Fn.whiten_color(content, style)
    assert out.shape == content.shape and out.dtype == torch.float64
    cov_s = _cov(style)
    scale = float(cov_s.abs().max())  # eps=1e-5 regularisation: agree to 1e-4 of the covariance scale
    torch.testing.assert_close(_cov(out), cov_s, rtol=0, atol=1e-4 * scale)
    torch.testing.assert_close(out.mean(1), style.mean(1), rtol=0, atol=1e-8)
    assert Fn.whiten_color(content.float(), style.float()).dtype == torch.float32


_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def test_keep_luminance_keeps_y_of_stylised_and_iq_of_content():
    g = torch.Generator().manual_seed(0)
    # values near mid-grey so the recombined RGB stays inside [0, 1] (no clamping)
    stylised = 0.5 + 0.1 * (torch.rand(2, 3, 8, 8, generator=g) - 0.5)
    content = 0.5 + 0.1 * (torch.rand(2, 3, 8, 8, generator=g) - 0.5)
    out = Fn.keep_luminance(stylised, content)
    assert 0 < float(out.min()) and float(out.max()) < 1
    yiq = lambda im: torch.einsum("ij,bjhw->bihw", _YIQ, im)  # noqa: E731
    torch.testing.assert_close(yiq(out)[:, 0], yiq(stylised)[:, 0], rtol=0, atol=1e-5)
    torch.testing.assert_close(yiq(out)[:, 1:], yiq(content)[:, 1:], rtol=0, atol=1e-5)


def test_match_color_moves_colour_statistics_to_the_reference():
    g = torch.Generator().manual_seed(0)
    image = 0.3 + 0.2 * torch.rand(1, 3, 16, 16, generator=g)
    reference = 0.5 + 0.1 * torch.rand(1, 3, 16, 16, generator=g)
    out = Fn.match_color(image, reference)
    flat = lambda t: t[0].reshape(3, -1).double()  # noqa: E731
    torch.testing.assert_close(flat(out).mean(1), flat(reference).mean(1), rtol=0, atol=1e-5)
    torch.testing.assert_close(_cov(flat(out)), _cov(flat(reference)), rtol=0, atol=1e-5)


# --- mixing layers over the core -------------------------------------------------------------------

def _code(seed: int, taps=("relu1_1", "relu4_1"), c=8) -> StyleCode:
    m, s = _stats(len(taps), c, seed)
    return StyleCode({t: m[i] for i, t in enumerate(taps)}, {t: s[i] for i, t in enumerate(taps)})


def test_stack_codes_and_average():
    a, b = _code(1), _code(2)
    means, stds = stack_codes([a, b])
    assert means["relu4_1"].shape == (2, 8) and torch.equal(stds["relu1_1"][1], b.std["relu1_1"])
    avg = StyleCode.average([a, b], [1, 3])
    torch.testing.assert_close(avg.mean["relu4_1"], 0.25 * a.mean["relu4_1"] + 0.75 * b.mean["relu4_1"],
                               rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="different taps"):
        stack_codes([a, _code(3, taps=("relu2_1",))])
