"""Mirror decoder: the plan as data, output shapes, skips and feature scaling."""
from __future__ import annotations

import pytest
import torch

from stylemix.models.decoder import Decoder, DecoderConfig, decoder_plan, drop_skips
from stylemix.models.vgg import EncoderConfig, VGGEncoder

UP = ("up", 0, 0)

# Huang & Belongie's AdaIN decoder (the mirror of VGG19 up to relu4_1), layer by layer.
ADAIN_VGG19_DECODER = [
    ("conv", 512, 256), UP,
    ("conv", 256, 256), ("conv", 256, 256), ("conv", 256, 256), ("conv", 256, 128), UP,
    ("conv", 128, 128), ("conv", 128, 64), UP,
    ("conv", 64, 64), ("conv", 64, 3),
]


def test_vgg19_plan_is_the_original_adain_decoder():
    assert decoder_plan(DecoderConfig("vgg19", "relu4_1")) == ADAIN_VGG19_DECODER


def test_vgg16_plan_mirrors_vgg16():
    assert decoder_plan(DecoderConfig("vgg16", "relu4_1")) == [
        ("conv", 512, 256), UP, ("conv", 256, 256), ("conv", 256, 256), ("conv", 256, 128), UP,
        ("conv", 128, 128), ("conv", 128, 64), UP, ("conv", 64, 64), ("conv", 64, 3)]
    assert decoder_plan(DecoderConfig("vgg16", "relu3_1")) == [
        ("conv", 256, 128), UP, ("conv", 128, 128), ("conv", 128, 64), UP, ("conv", 64, 64), ("conv", 64, 3)]


def test_skips_widen_the_first_conv_after_each_upsample():
    plain = decoder_plan(DecoderConfig("vgg19", "relu4_1"))
    plan = decoder_plan(DecoderConfig("vgg19", "relu4_1", skips=("relu1_1", "relu3_1", "relu2_1")))
    widened = {2: 256, 7: 128, 10: 64}  # index in the plan -> channels of the concatenated skip
    for i, (step, base) in enumerate(zip(plan, plain)):
        extra = widened.get(i, 0)
        assert step == (base[0], base[1] + extra, base[2]), (i, step)
    dec = Decoder(DecoderConfig("vgg19", "relu4_1", skips=("relu3_1",)))
    assert [c.in_channels for c in dec.convs][:3] == [512, 256 + 256, 256]


def test_width_scales_hidden_channels_only():
    plan = decoder_plan(DecoderConfig("vgg16", "relu4_1", width=0.5))
    convs = [(i, o) for kind, i, o in plan if kind == "conv"]
    assert convs[0] == (512, 128) and convs[-1] == (32, 3)
    assert convs == [(512, 128), (128, 128), (128, 128), (128, 64), (64, 64), (64, 32), (32, 32), (32, 3)]


@pytest.mark.parametrize("arch", ["vgg16", "vgg19"])
@pytest.mark.parametrize("skips", [(), ("relu3_1", "relu2_1", "relu1_1")])
def test_output_shape_equals_input_shape(arch, skips):
    torch.manual_seed(0)
    enc = VGGEncoder(EncoderConfig(arch), ("relu4_1", *skips))
    dec = Decoder(DecoderConfig(arch, "relu4_1", skips=skips, width=0.25))
    for h, w in ((16, 16), (32, 48), (56, 24)):
        img = torch.rand(2, 3, h, w)
        feats = enc(img)
        out = dec(feats["relu4_1"], {t: feats[t] for t in skips})
        assert out.shape == img.shape, (h, w)
        assert torch.isfinite(out).all()


def test_feature_scale_multiplies_inputs():
    torch.manual_seed(0)
    scale = {"relu4_1": 0.09, "relu2_1": 4.0}
    scaled = Decoder(DecoderConfig("vgg16", "relu4_1", skips=("relu2_1",), width=0.25, feature_scale=scale))
    plain = Decoder(DecoderConfig("vgg16", "relu4_1", skips=("relu2_1",), width=0.25))
    plain.load_state_dict(scaled.state_dict())
    feat, skip = torch.randn(1, 512, 2, 3), torch.randn(1, 128, 8, 12)
    out = scaled(feat, {"relu2_1": skip})
    assert torch.equal(out, plain(feat * 0.09, {"relu2_1": skip * 4.0}))
    assert not torch.allclose(out, plain(feat, {"relu2_1": skip}))


def test_missing_skip_features_are_named():
    dec = Decoder(DecoderConfig("vgg16", "relu4_1", skips=("relu2_1",), width=0.25))
    with pytest.raises(ValueError, match="relu2_1"):
        dec(torch.randn(1, 512, 2, 2))


@pytest.mark.parametrize("skips, named", [
    (("relu5_1", "relu3_1"), "relu5_1"),  # deeper than from_tap: never reached on the way up
    (("relu4_1",), "relu4_1"),  # the from_tap's own block
    (("relu3_2",), "relu3_2"),  # only relu{b}_1 taps sit right after an upsample
])
def test_bad_skips_are_rejected_at_construction(skips, named):
    with pytest.raises(ValueError, match=named):
        Decoder(DecoderConfig("vgg16", "relu4_1", skips=skips))


def test_unknown_from_tap_is_named():
    for tap in ("relu3_4", "conv4_1", "pool3"):
        with pytest.raises(ValueError, match=tap):
            decoder_plan(DecoderConfig("vgg16", tap))


def test_dropping_skips_keeps_the_decoder_as_if_they_were_zero():
    torch.manual_seed(0)
    old_cfg = DecoderConfig("vgg16", "relu4_1", skips=("relu3_1", "relu2_1", "relu1_1"), width=0.25)
    new_cfg = DecoderConfig("vgg16", "relu4_1", skips=("relu3_1",), width=0.25)
    old, new = Decoder(old_cfg), Decoder(new_cfg)
    new.load_state_dict(drop_skips(old.state_dict(), old_cfg, new_cfg))
    feat, s3 = torch.randn(1, 512, 2, 3), torch.randn(1, 256, 4, 6)
    zeros = {"relu2_1": torch.zeros(1, 128, 8, 12), "relu1_1": torch.zeros(1, 64, 16, 24)}
    torch.testing.assert_close(new(feat, {"relu3_1": s3}), old(feat, {"relu3_1": s3, **zeros}))
    live = {"relu2_1": torch.randn(1, 128, 8, 12), "relu1_1": torch.randn(1, 64, 16, 24)}
    assert not torch.allclose(new(feat, {"relu3_1": s3}), old(feat, {"relu3_1": s3, **live}))
    with pytest.raises(ValueError, match="drops skips"):
        drop_skips(new.state_dict(), new_cfg, old_cfg)
