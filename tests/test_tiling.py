"""Tiled high-resolution stylisation: the tiles partition the image, the crossfade weights sum to one,
pass 1 recovers the whole image's statistics, and the tiled output matches the untiled one."""
from __future__ import annotations

import pytest
import torch

from stylemix.inference import tiling as T
from stylemix.inference.api import Stylizer
from stylemix.models.canvas import Frame
from stylemix.models import functional as Fn
from stylemix.models.adain import AdaINConfig, AdaINModel
from stylemix.models.decoder import DecoderConfig


def _image(seed: int, h: int, w: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, 3, h // 8, w // 8, generator=g)
    return torch.nn.functional.interpolate(low, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1)


@pytest.fixture
def shallow_model(make_calibrated_model) -> AdaINModel:
    """Encoder to relu2_1 and a decoder from relu2_1 with a relu1_1 skip: a receptive field of ~10 px, so a
    16 px halo covers it and tiling must reproduce the untiled output exactly (two mixing taps)."""
    return make_calibrated_model(AdaINConfig(style_taps=("relu1_1", "relu2_1"),
                                             decoder=DecoderConfig(from_tap="relu2_1", skips=("relu1_1",))))


def _codes(model, n=2):
    with torch.no_grad():
        return [model.style_code(_image(10 + i, 32, 32) * (0.4 + 0.3 * i))[0] for i in range(n)]


@pytest.mark.parametrize("length, tile, halo", [(64, 48, 16), (200, 64, 16), (8, 64, 16), (512, 512, 64), (1000, 512, 64)])
def test_spans_partition_and_fit(length, tile, halo):
    spans = T.spans(length, tile, halo, 8)
    assert spans[0].core0 == 0 and spans[-1].core1 == length
    for a, b in zip(spans, spans[1:]):
        assert a.core1 == b.core0
    for s in spans:
        assert s.win1 - s.win0 <= max(tile, 8) and s.core0 % 8 == 0 and s.win0 % 8 == 0
        assert s.win0 == max(0, s.core0 - halo) and s.win1 == min(length, s.core1 + halo)


def test_feather_weights_sum_to_one():
    spans = T.spans(200, 64, 16, 8)
    total = torch.zeros(200, dtype=torch.float64)
    for i, s in enumerate(spans):
        w = T.feather(s, i == 0, i == len(spans) - 1, 6)
        assert w[:16 - 6].abs().max() == 0 if i > 0 else True  # nothing from the halo's outer part
        total[s.win0:s.win1] += w.double()
    torch.testing.assert_close(total, torch.ones(200, dtype=torch.float64), atol=1e-6, rtol=0)


def test_bad_tiling_parameters(shallow_model):
    codes = _codes(shallow_model)
    for tile, halo, msg in [(41, 16, "multiples"), (32, 16, "too small"), (64, 0, "positive multiples"), (64, 2, "feather")]:
        with pytest.raises(ValueError, match=msg):
            T.stylize_tiled(shallow_model, _image(0, 32, 32), codes, torch.tensor([0.5, 0.5]), tile=tile, halo=halo,
                            width=4)


def test_global_stats_equal_untiled_stats(shallow_model):
    x = _image(1, 64, 56)
    stats = T.global_stats(shallow_model.encode, x, shallow_model.mix_taps, tile=32, halo=8, stride=2)
    with torch.no_grad():
        feats = shallow_model.encode(x)
    for t in shallow_model.mix_taps:
        mean, std = Fn.mean_std(feats[t])
        torch.testing.assert_close(stats[t][0], mean, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(stats[t][1], std, atol=1e-4, rtol=1e-4)


def test_adain_with_stats_is_adain_with_own_stats():
    x = torch.randn(2, 5, 7, 6) * 3 + 1
    mean, std = torch.randn(2, 5), torch.rand(2, 5) + 0.5
    torch.testing.assert_close(Fn.adain_with_stats(x, *Fn.mean_std(x), mean, std), Fn.adain(x, mean, std))
    torch.testing.assert_close(Fn.mix(x, mean[:1], std[:1], torch.ones(1), 0.7, Fn.mean_std(x)),
                               Fn.mix(x, mean[:1], std[:1], torch.ones(1), 0.7))


@pytest.mark.slow
def test_tiled_equals_untiled_when_the_halo_covers_the_receptive_field(shallow_model):
    s = Stylizer(shallow_model)
    x, codes = _image(2, 64, 56), _codes(shallow_model)
    full = s.stylize(x, codes, weights=[0.3, 0.7], alpha=0.8, return_tensor=True)
    assert full.std() > 0.02  # informative output, not a constant
    tiled = s.stylize_tiled(x, codes, weights=[0.3, 0.7], alpha=0.8, tile=40, halo=16, return_tensor=True)
    assert tiled.shape == full.shape
    assert (tiled - full).abs().max() < 1e-4  # 12 windows, yet the same image


@pytest.mark.slow
def test_tiled_masks_and_colour_match_untiled(shallow_model):
    s = Stylizer(shallow_model)
    x, codes = _image(3, 48, 64), _codes(shallow_model)
    mask = torch.zeros(48, 64)
    mask[:, :30] = 1.0
    kw = dict(masks=[mask, 1 - mask], preserve_color="match", return_tensor=True)
    full = s.stylize(x, codes, **kw)
    tiled = s.stylize_tiled(x, codes, tile=40, halo=16, **kw)
    assert (tiled - full).abs().max() < 1e-4


# Default architecture (relu4_1; encoder + decoder receptive radius ~66 px) on a 64 px image (a 128 px canvas
# with its 32 px reflected frame) with 48 px tiles and a 16 px halo: the halo cannot cover the receptive
# field, so tile edges differ somewhat (measured: max 0.154, mean 0.031 with the frame; 0.12 / 0.023 before
# it; with one window covering the canvas, 4e-7). Stated tolerances:
TOLERANCE_MAX, TOLERANCE_MEAN = 0.2, 0.04


@pytest.mark.slow
def test_tiny_tiles_stay_close_to_untiled_with_the_default_model(make_calibrated_model):
    model = make_calibrated_model()
    s = Stylizer(model)
    x, codes = _image(4, 64, 64), _codes(model, 2)
    full = s.stylize(x, codes, return_tensor=True)
    tiled = s.stylize_tiled(x, codes, tile=48, halo=16, return_tensor=True)  # 16 windows of 48 px
    per_tile = _per_tile_adain(s, x, codes)  # the naive way: each tile normalised with its own statistics
    err = (tiled - full).abs()
    assert err.max() < TOLERANCE_MAX and err.mean() < TOLERANCE_MEAN, (float(err.max()), float(err.mean()))
    # whole-image statistics beat stylising tiles on their own once the halo reaches further (the naive
    # quadrants each get the reflected frame, a fair amount of context on a 64 px image): measured 0.012 vs 0.025
    wider = (s.stylize_tiled(x, codes, tile=80, halo=24, return_tensor=True) - full).abs()
    assert wider.mean() < (per_tile - full).abs().mean()
    canvas = 64 + 2 * Frame((64, 64)).pad  # the image plus its reflected frame (models/canvas.py)
    one = s.stylize_tiled(x, codes, tile=canvas, halo=16, return_tensor=True)  # one window: same computation
    assert (one - full).abs().max() < 1e-5


def _per_tile_adain(s: Stylizer, x: torch.Tensor, codes) -> torch.Tensor:
    """Four independent 32 x 32 quadrants, each stylised on its own (visible seams)."""
    out = torch.zeros_like(x)
    for i in (0, 32):
        for j in (0, 32):
            out[..., i:i + 32, j:j + 32] = s.stylize(x[..., i:i + 32, j:j + 32], codes, return_tensor=True)
    return out


def test_tiling_refuses_models_without_the_tiling_capability():
    from stylemix.models.stytr2 import StyTr2Config, StyTr2Model

    model = StyTr2Model(StyTr2Config(width=32, heads=2, encoder_depth=1, decoder_depth=1, mlp_ratio=1.0)).eval()
    s = Stylizer(model)
    codes = s.encode_styles([_image(0, 32, 32)])
    msg = "StyTr2Model does not support tiled stylisation .*capabilities.tiling is False.*models that do: adain"
    with pytest.raises(ValueError, match=msg):
        s.stylize_tiled(_image(0, 32, 32), codes)
    with pytest.raises(ValueError, match=msg):
        T.stylize_tiled(model, _image(0, 32, 32), codes, torch.tensor([1.0]))
