"""Stylizer facts on a small random model (tests/conftest.py: tiny_model_dir): blend weights behave as
documented, alpha=0 returns the content itself, any size round-trips, codes == images, masks."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import stylemix.inference
from stylemix.inference import Stylizer
from stylemix.models.canvas import Frame, crop_to, pad_to_multiple
from stylemix.models.io import WeightsError
from stylemix.models.mixing import StyleCode


@pytest.fixture(scope="module")
def stylizer(tiny_model_dir) -> Stylizer:
    # fp32: these tests check exact algebra (order, codes vs images); "auto" is bf16 on CPUs with native bf16,
    # whose rounding differs with the order of the styles (test_bf16_autocast_close_to_fp32 covers bf16)
    return Stylizer.from_pretrained(tiny_model_dir, dtype="fp32")


def _img(seed: int, h: int = 40, w: int = 48, scale: float = 1.0, shift: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(1, 3, h, w, generator=g) * scale + shift).clamp(0, 1)


CONTENT = _img(0)
STYLES = [_img(1, 32, 32), _img(2, 40, 24, 0.5), _img(3, 24, 40, 0.3, 0.6)]


def test_from_pretrained_gives_an_eval_model_and_its_stride(stylizer):
    assert stylizer.stride == 8
    assert not stylizer.model.training


@pytest.mark.slow
def test_stylizer_is_exported_lazily():
    """`import stylemix` / `stylemix.inference` load neither torch nor the API; `Stylizer` is loaded on first use."""
    code = ("import sys, stylemix, stylemix.inference; "
            "before = sorted(m for m in ('torch', 'stylemix.inference.api') if m in sys.modules); "
            "from stylemix import Stylizer; from stylemix.inference.api import Stylizer as api_stylizer; "
            "print(before, Stylizer is api_stylizer is stylemix.inference.Stylizer)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[] True"
    with pytest.raises(AttributeError):
        stylemix.inference.nothing_here  # noqa: B018


def test_no_decoder_installed_says_what_to_do(monkeypatch, tmp_path):
    from stylemix.models import pretrained

    monkeypatch.setattr(pretrained, "shipped_weights", lambda: tmp_path / "weights")
    with pytest.raises(WeightsError, match="no trained decoder is installed.*stylemix train.*weights convert adain"):
        Stylizer.from_pretrained()
    with pytest.raises(WeightsError, match="no weights directory 'missing-model'"):
        Stylizer.from_pretrained("missing-model")


def test_output_is_image_of_content_size(stylizer):
    out = stylizer.stylize(CONTENT, STYLES[0])
    assert isinstance(out, Image.Image) and out.size == (48, 40) and out.mode == "RGB"
    t = stylizer.stylize(CONTENT, STYLES[0], return_tensor=True)
    assert t.shape == (1, 3, 40, 48) and 0 <= t.min() and t.max() <= 1
    assert 0.05 < float(t.std())  # informative, not clamped flat
    assert torch.equal(torch.from_numpy(np.array(out)).permute(2, 0, 1)[None], (t * 255).round().to(torch.uint8))


@pytest.mark.parametrize("h,w", [(37, 45), (16, 61), (29, 16), (33, 33)])
def test_any_size_round_trips(stylizer, h, w):
    out = stylizer.stylize(_img(5, h, w), STYLES[:2], return_tensor=True)
    assert out.shape == (1, 3, h, w) and torch.isfinite(out).all()


def test_weights_one_zero_equal_single_style(stylizer):
    single = stylizer.stylize(CONTENT, STYLES[0], return_tensor=True)
    blend = stylizer.stylize(CONTENT, STYLES[:2], weights=[1, 0], return_tensor=True)
    other = stylizer.stylize(CONTENT, STYLES[1], return_tensor=True)
    assert torch.equal(single, blend)
    assert (single - other).abs().mean() > 1e-2  # the second style does change the result


def test_style_order_invariance(stylizer):
    a = stylizer.stylize(CONTENT, STYLES, weights=[0.5, 0.3, 0.2], return_tensor=True)
    b = stylizer.stylize(CONTENT, STYLES[::-1], weights=[0.2, 0.3, 0.5], return_tensor=True)
    c = stylizer.stylize(CONTENT, STYLES, weights=[5, 3, 2], return_tensor=True)  # normalised
    d = stylizer.stylize(CONTENT, STYLES, weights=[0.2, 0.3, 0.5], return_tensor=True)
    assert torch.allclose(a, b, atol=1e-5) and torch.allclose(a, c, atol=1e-5)
    assert (a - d).abs().max() > 1e-3


def test_alpha_zero_returns_the_content_exactly(stylizer):
    out = stylizer.stylize(CONTENT, STYLES[:2], alpha=0.0, return_tensor=True)
    assert torch.equal(out, CONTENT)  # the photo itself, not the decoder's reconstruction of it
    for kw in ({"preserve_color": "luminance"}, {"preserve_color": "match"}, {"weights": [0, 1]}):
        assert torch.equal(stylizer.stylize(CONTENT, STYLES[:2], alpha=0.0, return_tensor=True, **kw), CONTENT)
    assert torch.equal(stylizer.stylize_tiled(CONTENT, STYLES[:2], alpha=0.0, tile=32, halo=8, return_tensor=True),
                       CONTENT)
    cells, _ = stylizer.alpha_sweep(CONTENT, STYLES[:2], steps=3, preserve_color="luminance")
    assert torch.equal(cells[0], CONTENT[0]) and not torch.equal(cells[1], CONTENT[0])
    half = stylizer.stylize(CONTENT, STYLES[:2], alpha=0.5, return_tensor=True)
    assert (half - out).abs().mean() > 1e-3
    with pytest.raises(ValueError, match="3 weights for 2 styles"):  # inputs are still checked at alpha 0
        stylizer.stylize(CONTENT, STYLES[:2], weights=[1, 1, 1], alpha=0.0)


def test_the_model_at_alpha_zero_decodes_the_content_features(stylizer):
    m = stylizer.model
    with torch.no_grad():
        x, size = pad_to_multiple(CONTENT, m.stride)
        feats = m.encode(x)
        ref = crop_to(m.decode({t: feats[t] for t in m.mix_taps}).clamp(0, 1), size)
        got = crop_to(m.stylize(m.encode_content(x), stylizer.style_codes(STYLES[:2]), torch.tensor([0.5, 0.5]), 0.0),
                      size)
    assert torch.allclose(got.float().clamp(0, 1), ref, atol=1e-6)


def test_codes_and_images_give_identical_output(stylizer):
    codes = stylizer.encode_styles(STYLES)
    assert all(isinstance(c, StyleCode) for c in codes)
    from_images = stylizer.stylize(CONTENT, STYLES, weights=[1, 2, 3], return_tensor=True)
    from_codes = stylizer.stylize(CONTENT, codes, weights=[1, 2, 3], return_tensor=True)
    mixed = stylizer.stylize(CONTENT, [codes[0], STYLES[1], codes[2]], weights=[1, 2, 3], return_tensor=True)
    assert torch.equal(from_images, from_codes) and torch.equal(from_images, mixed)
    pil = Image.fromarray((STYLES[0][0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    assert torch.allclose(stylizer.encode_style(pil).mean["relu4_1"], codes[0].mean["relu4_1"], rtol=1e-2, atol=1e-3)


def test_k_cached_codes_cost_one_content_pass(stylizer, monkeypatch):
    codes = stylizer.encode_styles(STYLES)
    calls = []
    original = stylizer.model.encode
    monkeypatch.setattr(stylizer.model, "encode", lambda x: calls.append(x.shape) or original(x))
    stylizer.stylize(CONTENT, codes, weights=[1, 1, 1])
    pad = Frame((40, 48)).pad  # the reflected border around the content (models/canvas.py)
    assert calls == [(1, 3, 40 + 2 * pad, 48 + 2 * pad)]


def test_style_paths_and_missing_files(stylizer, tmp_path):
    arr = (STYLES[0][0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(arr).save(tmp_path / "s.png")
    a = stylizer.stylize(CONTENT, str(tmp_path / "s.png"), return_tensor=True)
    b = stylizer.stylize(CONTENT, arr, return_tensor=True)
    assert torch.equal(a, b)
    with pytest.raises(FileNotFoundError, match="style image not found"):
        stylizer.stylize(CONTENT, str(tmp_path / "nope.jpg"))


def test_bad_arguments(stylizer):
    with pytest.raises(ValueError, match="2 weights for 3 styles"):
        stylizer.stylize(CONTENT, STYLES, weights=[1, 2])
    with pytest.raises(ValueError, match="non-negative"):
        stylizer.stylize(CONTENT, STYLES[:2], weights=[1, -1])
    with pytest.raises(ValueError, match="all zero"):
        stylizer.stylize(CONTENT, STYLES[:2], weights=[0, 0])
    with pytest.raises(ValueError, match="alpha"):
        stylizer.stylize(CONTENT, STYLES[0], alpha=1.5)
    with pytest.raises(ValueError, match="preserve_color"):
        stylizer.stylize(CONTENT, STYLES[0], preserve_color="sepia")
    bad = StyleCode({"relu4_1": torch.zeros(7)}, {"relu4_1": torch.ones(7)})
    with pytest.raises(ValueError, match="7 channels at relu4_1"):
        stylizer.stylize(CONTENT, bad)
    with pytest.raises(ValueError, match="dtype"):
        Stylizer(stylizer.model, dtype="fp8")


def test_preserve_color_works_while_blending(stylizer):
    plain = stylizer.stylize(CONTENT, STYLES[:2], weights=[0.7, 0.3], return_tensor=True)
    lum = stylizer.stylize(CONTENT, STYLES[:2], weights=[0.7, 0.3], preserve_color="luminance", return_tensor=True)
    match = stylizer.stylize(CONTENT, STYLES[:2], weights=[0.7, 0.3], preserve_color="match", return_tensor=True)
    yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    to_yiq = lambda t: torch.einsum("ij,bjhw->bihw", yiq, t)  # noqa: E731
    inside = ((lum > 1e-4) & (lum < 1 - 1e-4)).all(1)  # pixels the final clamp did not touch
    assert torch.allclose(to_yiq(lum)[:, 0][inside], to_yiq(plain)[:, 0][inside], atol=1e-4)  # stylised luminance
    assert torch.allclose(to_yiq(lum)[:, 1:].permute(1, 0, 2, 3)[:, inside],
                          to_yiq(CONTENT)[:, 1:].permute(1, 0, 2, 3)[:, inside], atol=1e-4)  # content chroma
    # 'match': the output takes the content's channel means (up to the final clamp)
    assert torch.allclose(match.mean((2, 3)), CONTENT.mean((2, 3)), atol=0.02)
    assert (plain.mean((2, 3)) - CONTENT.mean((2, 3))).abs().max() > 0.02


def test_masks_select_styles_per_region(stylizer):
    h, w = 40, 48
    left = torch.zeros(h, w)
    left[:, : w // 2] = 1
    masks = [left, 1 - left]
    out = stylizer.stylize(CONTENT, STYLES[:2], masks=masks, return_tensor=True)
    assert out.shape == (1, 3, h, w)
    a = stylizer.stylize(CONTENT, STYLES[0], return_tensor=True)
    b = stylizer.stylize(CONTENT, STYLES[1], return_tensor=True)
    # Away from the seam (the decoder's receptive field mixes near it), each side follows its style.
    err_a, err_b = (out - a).abs()[..., :, :8].mean(), (out - b).abs()[..., :, :8].mean()
    assert err_a < 0.5 * err_b
    err_a, err_b = (out - a).abs()[..., :, -8:].mean(), (out - b).abs()[..., :, -8:].mean()
    assert err_b < 0.5 * err_a
    # Uniform masks are the global weights; masks at another resolution with the same aspect ratio resize.
    ones = [torch.ones(h, w), torch.ones(h, w)]
    uni = stylizer.stylize(CONTENT, STYLES[:2], weights=[0.3, 0.7], masks=ones, return_tensor=True)
    glob = stylizer.stylize(CONTENT, STYLES[:2], weights=[0.3, 0.7], return_tensor=True)
    assert torch.allclose(uni, glob, atol=1e-5)
    small = [torch.ones(20, 24), torch.ones(20, 24)]
    assert torch.allclose(stylizer.stylize(CONTENT, STYLES[:2], weights=[0.3, 0.7], masks=small, return_tensor=True),
                          glob, atol=1e-5)


def test_mask_errors(stylizer):
    with pytest.raises(ValueError, match="1 masks for 2 styles"):
        stylizer.stylize(CONTENT, STYLES[:2], masks=[torch.ones(40, 48)])
    with pytest.raises(ValueError, match="mask 2 is 30x30 px but the content is 48x40 px"):
        stylizer.stylize(CONTENT, STYLES[:2], masks=[torch.ones(40, 48), torch.ones(30, 30)])
    with pytest.raises(ValueError, match="all 2 masks are zero .*everywhere"):  # not silently "no masks"
        stylizer.stylize(CONTENT, STYLES[:2], masks=[torch.zeros(40, 48), np.zeros((40, 48), np.uint8)])
    with pytest.raises(ValueError, match="all 2 masks are zero"):
        stylizer.stylize_tiled(CONTENT, STYLES[:2], masks=[torch.zeros(40, 48)] * 2, tile=32, halo=8)
    half = torch.zeros(40, 48)
    half[:, :24] = 1  # one empty mask among others is fine: that style applies nowhere
    stylizer.stylize(CONTENT, STYLES[:2], masks=[half, torch.zeros(40, 48)])


def test_mask_aspect_ratios_are_compared_relatively(stylizer):
    content = _img(4, 48, 64)  # 64 x 48 (w x h): 4:3
    glob = stylizer.stylize(content, STYLES[:2], weights=[0.3, 0.7], return_tensor=True)
    for h, w in ((3, 3), (64, 64), (48, 66), (2, 2)):  # 1:1 and 11:8 are not 4:3, however small the mask
        with pytest.raises(ValueError, match=f"mask 1 is {w}x{h} px but the content is 64x48 px"):
            stylizer.stylize(content, STYLES[:2], masks=[torch.ones(h, w), torch.ones(48, 64)])
    for h, w in ((24, 32), (768, 1024), (3, 4), (2, 3)):  # 4:3, exactly or as the nearest rounding of 64 x 48
        out = stylizer.stylize(content, STYLES[:2], weights=[0.3, 0.7], masks=[torch.ones(h, w)] * 2,
                               return_tensor=True)
        assert torch.allclose(out, glob, atol=1e-5)  # uniform masks, resized: the global weights


@pytest.mark.parametrize("weights", ["ab", ["a", "b"], [None, 1]])
def test_weights_that_are_not_numbers_are_a_type_error(stylizer, weights):
    with pytest.raises(TypeError, match="style weights must be a sequence of 2 numbers"):
        stylizer.stylize(CONTENT, STYLES[:2], weights=weights)


def test_huge_finite_weights_blend_like_equal_weights(stylizer):
    equal = stylizer.stylize(CONTENT, STYLES[:2], return_tensor=True)
    huge = stylizer.stylize(CONTENT, STYLES[:2], weights=[1e308, 1e308], return_tensor=True)
    assert torch.equal(huge, equal) and huge.std() > 0.05  # not a flat grey image


def test_bf16_autocast_close_to_fp32(tiny_model_dir):
    fp32 = Stylizer.from_pretrained(tiny_model_dir, dtype="fp32").stylize(CONTENT, STYLES[:2], return_tensor=True)
    bf16 = Stylizer.from_pretrained(tiny_model_dir, dtype="bf16").stylize(CONTENT, STYLES[:2], return_tensor=True)
    assert bf16.dtype == torch.float32 and bf16.shape == fp32.shape
    assert (bf16 - fp32).abs().mean() < 0.05


def test_style_scale_paints_at_the_working_size_and_returns_full_size(stylizer, monkeypatch):
    import stylemix.inference.detail as detail

    monkeypatch.setattr(detail, "WORK_SIZE", 32)  # tiny images in tests: work at 32 px on the long side
    calls = []
    original = stylizer.model.encode
    monkeypatch.setattr(stylizer.model, "encode", lambda x: calls.append(tuple(x.shape[-2:])) or original(x))
    code = stylizer.encode_style(STYLES[0])
    calls.clear()
    out = stylizer.stylize(CONTENT, [code], return_tensor=True)  # 40 x 48 content
    pad = Frame((1, 1)).pad
    assert out.shape[-2:] == (40, 48)
    up8 = lambda v: -(-v // 8) * 8  # noqa: E731
    assert calls == [(up8(27 + 2 * pad), up8(32 + 2 * pad))]  # 27 x 32 working size + border, to multiples of 8
    calls.clear()
    full = stylizer.stylize(CONTENT, [code], return_tensor=True, style_scale=None)
    assert calls == [(40 + 2 * pad, 48 + 2 * pad)] and full.shape == out.shape
    with pytest.raises(ValueError, match="style_scale"):
        stylizer.stylize(CONTENT, [code], style_scale=0)
