"""VGG encoders: declared tap channels/strides, truncation at the deepest tap, preprocessing."""
from __future__ import annotations

import pytest
import torch

from stylemix.models.convert import ENCODER_PRESETS
from stylemix.models.io import load_into, save_tensors
from stylemix.models.vgg import (VGG_CFGS, EncoderConfig, InputSpec, VGGEncoder, conv_shapes, layer_names, tap_channels,
                        tap_stride)


def _relu_taps(arch: str) -> list[str]:
    return [n for n in layer_names(arch) if n.startswith("relu")]


def test_declared_channels_and_strides():
    assert [tap_channels("vgg16", t) for t in ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")] == \
        [64, 128, 256, 512, 512]
    assert [tap_stride(t) for t in ("relu1_2", "relu2_1", "relu3_3", "relu4_1", "relu5_4")] == [1, 2, 4, 8, 16]
    assert len(conv_shapes("vgg16")) == 13 and len(conv_shapes("vgg19")) == 16
    assert conv_shapes("vgg19")[-1] == ("conv5_4", 512, 512)


@pytest.mark.parametrize("arch", ["vgg16", "vgg19"])
def test_every_tap_has_declared_channels_and_stride(arch):
    torch.manual_seed(0)
    taps = _relu_taps(arch)
    enc = VGGEncoder(EncoderConfig(arch), tuple(reversed(taps)))  # order given does not matter
    assert enc.taps == tuple(taps)
    h, w = 32, 48
    feats = enc(torch.rand(1, 3, h, w))
    assert list(feats) == taps
    for tap, f in feats.items():
        s = tap_stride(tap)
        assert f.shape == (1, tap_channels(arch, tap), h // s, w // s), tap
        assert torch.isfinite(f).all() and (f >= 0).all()  # ReLU outputs


@pytest.mark.parametrize("arch, deepest, last_conv", [("vgg16", "relu3_1", "conv3_1"), ("vgg19", "relu4_1", "conv4_1")])
def test_encoder_stops_at_the_deepest_tap(arch, deepest, last_conv):
    enc = VGGEncoder(EncoderConfig(arch), ("relu1_1", deepest))
    names = list(enc.layers)
    assert names[-1] == deepest
    assert names == layer_names(arch)[: layer_names(arch).index(deepest) + 1]
    built = {n for n in names if n.startswith("conv")}
    expected = [n for n, _, _ in conv_shapes(arch)]
    assert built == set(expected[: expected.index(last_conv) + 1])
    n_params = sum(p.numel() for p in enc.parameters())
    assert n_params == sum(o * i * 9 + o for n, i, o in conv_shapes(arch) if n in built)
    assert not any(p.requires_grad for p in enc.parameters())


def test_truncated_encoder_loads_a_full_file_and_agrees(tmp_path):
    torch.manual_seed(0)
    full = VGGEncoder(EncoderConfig("vgg16"), tuple(_relu_taps("vgg16")))
    path = tmp_path / "encoder.safetensors"
    save_tensors(path, full.state_dict())
    short = VGGEncoder(EncoderConfig("vgg16"), ("relu2_1", "relu3_1"))
    load_into(short, path)  # deeper weights in the file are filtered, not an error
    x = torch.rand(2, 3, 24, 40)
    a, b = full(x), short(x)
    assert torch.equal(a["relu3_1"], b["relu3_1"]) and torch.equal(a["relu2_1"], b["relu2_1"])


def test_unknown_tap_and_arch_are_named():
    with pytest.raises(ValueError, match="relu6_1"):
        VGGEncoder(EncoderConfig("vgg16"), ("relu6_1",))
    with pytest.raises(ValueError, match="relu3_4"):  # exists in vgg19 only
        VGGEncoder(EncoderConfig("vgg16"), ("relu3_4",))
    with pytest.raises(ValueError, match="conv1_1"):  # taps are ReLU outputs
        VGGEncoder(EncoderConfig("vgg16"), ("conv1_1",))
    with pytest.raises(ValueError, match="'vgg11'"):
        VGGEncoder(EncoderConfig("vgg11"))


def test_preprocessing_bgr_scale_mean_std_matches_manual():
    spec = InputSpec("bgr", 255.0, (104.0, 117.0, 123.0), (2.0, 3.0, 4.0))
    enc = VGGEncoder(EncoderConfig("vgg16", input=spec), ("relu1_1",))
    img = torch.rand(2, 3, 5, 6)
    manual = torch.empty_like(img)
    for out_c, (src_c, m, s) in enumerate(zip((2, 1, 0), spec.mean, spec.std)):  # B, G, R
        manual[:, out_c] = (img[:, src_c] * 255.0 - m) / s
    torch.testing.assert_close(enc.preprocess(img), manual, rtol=0, atol=1e-4)
    rgb = VGGEncoder(EncoderConfig("vgg16"), ("relu1_1",))  # default: identity
    assert torch.equal(rgb.preprocess(img), img)


def test_preset_preprocessing_hed_is_caffe_bgr():
    enc = VGGEncoder(ENCODER_PRESETS["vgg16-hed"], ("relu1_1",))
    img = torch.rand(1, 3, 4, 4)
    mean_bgr = torch.tensor([104.00699, 116.66877, 122.67892]).view(1, 3, 1, 1)
    torch.testing.assert_close(enc.preprocess(img), img[:, [2, 1, 0]] * 255 - mean_bgr, rtol=0, atol=1e-4)


def test_input_conv_runs_after_preprocessing():
    torch.manual_seed(0)
    enc = VGGEncoder(EncoderConfig("vgg19", "reflect", input=InputSpec(input_conv=True)), ("relu1_1",))
    img = torch.rand(1, 3, 8, 8)
    torch.testing.assert_close(enc.preprocess(img), enc.input_conv(img), rtol=0, atol=0)
    assert enc.layers["conv1_1"].padding_mode == "reflect"


@pytest.mark.parametrize("ceil_mode, size", [(True, 5), (False, 4)])
def test_pool_rounding_on_odd_sizes(ceil_mode, size):
    enc = VGGEncoder(EncoderConfig("vgg16", ceil_mode=ceil_mode), ("relu4_1",))
    assert enc(torch.rand(1, 3, 36, 36))["relu4_1"].shape[-2:] == (size, size)  # 36 -> 18 -> 9 -> 5 or 4


def test_archs_are_data():
    assert VGG_CFGS["vgg16"].count("M") == VGG_CFGS["vgg19"].count("M") == 4
    assert layer_names("vgg16")[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
