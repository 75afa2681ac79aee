"""Working resolution and guided upsampling (inference/detail.py): numerical facts."""
import pytest
import torch

from stylemix.inference.detail import box, guided_upsample, resize, working_size
from stylemix.models.canvas import pad_border, unpad_border
from stylemix.models import functional as Fn


def photo(h=96, w=128, seed=0):
    """A smooth random field with sharp edges: bilinear upsampling loses the edges."""
    g = torch.Generator().manual_seed(seed)
    base = resize(torch.rand(1, 3, h // 8, w // 8, generator=g), (h, w))
    edges = (torch.arange(w).view(1, 1, 1, w) % 24 < 12).float() * 0.4
    return (0.6 * base + edges).clamp(0, 1)


def test_working_size_keeps_small_images_and_aspect():
    assert working_size((300, 400), 512) == (300, 400)
    assert working_size((300, 400), None) == (300, 400)
    assert working_size((1080, 1920), 512) == (288, 512)
    assert working_size((2000, 1000), 500) == (500, 250)


def test_box_is_a_mean_and_keeps_constants():
    x = torch.full((1, 2, 9, 7), 0.25)
    assert torch.allclose(box(x, 2), x)
    y = torch.zeros(1, 1, 11, 11)
    y[0, 0, 5, 5] = 25.0
    assert box(y, 2)[0, 0, 5, 5].item() == pytest.approx(1.0)


def test_guided_upsample_restores_the_photo_when_the_stylisation_is_the_photo():
    full = photo()
    low = resize(full, (48, 64))
    out = guided_upsample(low, Fn.luma(low), Fn.luma(full))
    plain = resize(low, full.shape[-2:])
    err_guided = (out - full).abs().mean().item()
    err_plain = (plain - full).abs().mean().item()
    assert out.shape == full.shape
    assert err_guided < 0.5 * err_plain


def test_guided_upsample_adds_no_detail_where_the_stylisation_ignores_the_photo():
    full = photo()
    low_photo = resize(full, (48, 64))
    flat = torch.full((1, 3, 48, 64), 0.3)
    out = guided_upsample(flat, Fn.luma(low_photo), Fn.luma(full))
    assert torch.allclose(out, torch.full_like(out, 0.3), atol=1e-5)


def test_guided_upsample_same_size_is_nearly_identity():
    full = photo()
    out = guided_upsample(full, Fn.luma(full), Fn.luma(full))
    assert torch.allclose(out, full, atol=1e-5)


@pytest.mark.parametrize("pad", [0, 8, 16])
def test_pad_border_round_trip(pad):
    x = torch.rand(1, 3, 40, 56)
    y = pad_border(x, pad)
    assert y.shape[-2:] == (40 + 2 * pad, 56 + 2 * pad)
    assert torch.equal(unpad_border(y, pad, (40, 56)), x)
    if pad:
        assert torch.equal(y[..., pad - 1, pad:-pad], x[..., 1, :])  # reflected, not zero
