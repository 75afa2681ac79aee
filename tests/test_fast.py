"""The fast model (models/fast.py) and its distillation (training/distill.py, training/fast_task.py).

The model: taps have the declared widths and strides, it costs a small fraction of the default's FLOPs, it mixes
exactly as the default does (weights (1, 0) are the single style, a 50/50 blend targets the mean statistics,
alpha 0 keeps the content features, masks are spatial weights), tiles reproduce the untiled image, and a weights
dir round-trips bit-exactly with its own codes for the built-in style names. The distillation: samples are pure
functions of their index, the teacher cache holds what the teacher paints and resumes without repainting, the
student is trained through the same mixing as inference, and one `stylemix train` command paints, trains and
exports a model the Stylizer loads.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from safetensors.torch import load_file

from stylemix.inference import Stylizer
from stylemix.models import functional as Fn
from stylemix.models import pretrained
from stylemix.models.contract import Capabilities, StatisticsModel
from stylemix.models.fast import FastConfig, FastModel, deepen
from stylemix.models.io import (ConfigError, WeightsError, load_codes, save_codes, save_model_dir, save_tensors)
from stylemix.models.mixing import StyleCode, stack_codes
from stylemix.models.registry import create_model, model_capabilities
from stylemix.training.data import DataConfig
from stylemix.models.canvas import pad_border, unpad_border
from stylemix.training.distill import TeacherCache, TeacherConfig
from stylemix.training.fast_task import FastLossConfig, FastTask, FastTrainConfig, bank_codes, build_model


def _image(seed: int, h: int, w: int) -> torch.Tensor:
    """A smooth random image (1, 3, h, w): low-frequency colour fields, like a photo more than noise is."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, 3, max(1, h // 8), max(1, w // 8), generator=g)
    return nn.functional.interpolate(low, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1)


def _calibrated(config: FastConfig | None = None, seed: int = 0) -> FastModel:
    """A random FastModel with informative outputs: He-initialised convs, the last conv rescaled so outputs sit
    around 0.5 +- 0.2 rather than clamped to a constant (as conftest's calibrated AdaIN model)."""
    torch.manual_seed(seed)
    model = FastModel(config or FastConfig()).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
        raw = model.decode(model.encode(_image(99, 32, 32)))
        last, k = model.decoder.to_rgb, 0.2 / raw.std()
        last.weight.mul_(k)
        last.bias.copy_((0.5 - raw.mean((0, 2, 3))) * k)  # the decoder adds 0.5 after this conv
    return model


@pytest.fixture(scope="module")
def fast() -> FastModel:
    return _calibrated()


def _codes(model, n: int = 2) -> list[StyleCode]:
    with torch.no_grad():
        return [model.style_code(_image(10 + i, 40, 48) * (0.3 + 0.35 * i))[0] for i in range(n)]


# --- the architecture -----------------------------------------------------------------------------------

def test_taps_have_the_declared_widths_and_strides(fast):
    assert model_capabilities("adain-fast") == Capabilities(style_bank=True, tiling=True)
    assert isinstance(fast, StatisticsModel) and fast.stride == 8
    assert fast.mix_taps == ("s8", "s4", "s2", "s1") and fast.style_taps == ("s1", "s2", "s4", "s8")
    with torch.no_grad():
        feats = fast.encode(torch.rand(2, 3, 32, 48))
    for i, (tap, width) in enumerate(zip(("s1", "s2", "s4", "s8"), (8, 16, 48, 96))):
        assert feats[tap].shape == (2, width, 32 // 2 ** i, 48 // 2 ** i) and fast.tap_channels(tap) == width
        assert torch.isfinite(feats[tap]).all()


def _conv_flops(model: nn.Module, run) -> float:
    total = 0.0

    def hook(m, inputs, out):
        nonlocal total
        total += 2 * m.weight.numel() * out.shape[-2] * out.shape[-1]

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        run()
    for h in handles:
        h.remove()
    return total


def test_the_fast_model_costs_a_small_fraction_of_the_default():
    """Conv FLOPs of encode + decode at 64 px, scaled to 512 px (they grow with the pixel count)."""
    from stylemix.models.adain import AdaINConfig, AdaINModel
    from stylemix.models.decoder import DecoderConfig

    default = AdaINModel(AdaINConfig(decoder=DecoderConfig(skips=("relu3_1", "relu2_1", "relu1_1")))).eval()
    fast = FastModel(FastConfig()).eval()
    x = torch.rand(1, 3, 64, 64)
    g_default = _conv_flops(default, lambda: default.decode(default.encode(x))) * 64 / 1e9
    g_fast = _conv_flops(fast, lambda: fast.decode(fast.encode(x))) * 64 / 1e9
    assert 200 < g_default < 300  # ~235 GFLOP per 512 px image: VGG16 to relu4_1 + its mirror
    assert g_fast < 8 and g_default / g_fast > 30
    assert sum(p.numel() for p in fast.parameters()) < 600_000


def test_config_values_are_checked():
    with pytest.raises(ConfigError, match="widths must be at least two"):
        FastConfig(widths=(8,))
    with pytest.raises(ConfigError, match=r"skips must be taps among \['s1', 's2', 's4'\]"):
        FastConfig(skips=("s8",))
    with pytest.raises(ConfigError, match="padding must be 'zeros' or 'reflect'"):
        FastConfig(padding="circular")
    with pytest.raises(ConfigError, match=r"level_blocks must be \(\) or 3 integers >= 0"):
        FastConfig(level_blocks=(1, 1))


def test_deepening_adds_identity_blocks_that_then_learn(fast):
    """A grown model computes bit for bit what the trained one did, and its new blocks get gradients."""
    config = dataclasses.replace(fast.config, blocks=2, level_blocks=(0, 1, 1))
    grown = deepen(fast, config).eval()
    assert sum(p.numel() for p in grown.parameters()) > sum(p.numel() for p in fast.parameters())
    assert len(grown.encoder.level_blocks[2]) == len(grown.decoder.level_blocks[1]) == 1
    x = _image(3, 48, 64)
    code = _codes(fast, 1)
    with torch.no_grad():
        a, b = fast.encode(x), grown.encode(x)
        assert all(torch.equal(a[t], b[t]) for t in a)
        assert torch.equal(fast.decode(fast.mix(a, code, torch.ones(1), 0.7)),
                           grown.decode(grown.mix(b, code, torch.ones(1), 0.7)))
    out = grown.decode(grown.encode(x))
    out.mean().backward()
    new = grown.decoder.level_blocks[1][0].conv2.weight.grad
    assert new is not None and float(new.abs().sum()) > 0
    with pytest.raises(ValueError, match=r"only residual blocks and a style hint may be added"):
        deepen(fast, dataclasses.replace(fast.config, widths=(8, 16, 48, 128)))
    with pytest.raises(ValueError, match=r"blocks per tap \[0, 1, 1, 2\] and .* into .* blocks per tap \[0, 0, 0, 2\]"):
        deepen(grown, FastConfig(blocks=2))


# --- the style hint: VGG statistics of the style correct the student's code ------------------------------

HINT = ("relu1_1", "relu2_1")


def _vgg_taps(taps: tuple[str, ...], seed: int = 5):
    from stylemix.models.vgg import EncoderConfig, VGGEncoder

    torch.manual_seed(seed)
    return VGGEncoder(EncoderConfig(), taps)  # random weights: different styles still give different statistics


def _vgg(seed: int = 5):
    return _vgg_taps(HINT, seed)


def _hinted(fast, scale: float = 0.0) -> FastModel:
    """`fast` grown with a style hint on a random VGG; its maps random with std `scale` (0: fresh, the identity)."""
    model = deepen(fast, dataclasses.replace(fast.config, style_hint=HINT)).eval()
    model.attach_style_encoder(_vgg())
    torch.manual_seed(6)
    with torch.no_grad():
        for p in model.hint.parameters():
            p.normal_(0, scale)
    return model


def test_a_fresh_style_hint_is_the_identity_and_then_learns(fast):
    hinted = _hinted(fast)
    x, (a, b) = _image(3, 48, 64), _codes(hinted)
    assert a.taps == ("s1", "s2", "s4", "s8", *HINT) and a.mean["relu2_1"].shape == (128,)
    plain = [StyleCode({t: c.mean[t] for t in fast.style_taps}, {t: c.std[t] for t in fast.style_taps}) for c in (a, b)]
    w = Fn.validate_weights([0.3, 0.7], 2)
    with torch.no_grad():
        assert torch.equal(hinted.stylize(hinted.encode_content(x), [a, b], w),
                           fast.stylize(fast.encode_content(x), plain, w))
    hinted.stylize(hinted.encode_content(x), [a, b], w).mean().backward()
    assert all(float(m.weight.grad.abs().sum()) > 0 for m in hinted.hint.maps.values())
    assert set(hinted.hint.maps) == set(hinted.mix_taps)


def test_a_style_hint_corrects_each_code_before_the_blend(fast, hint_reference):
    """Blends, (1, 0) weights and masks behave as without a hint, on each code corrected by the documented
    formula; codes without the VGG statistics are refused."""
    hinted = _hinted(fast, scale=0.3)
    content, (a, b) = hinted.encode_content(_image(2, 48, 64)), _codes(hinted)
    with torch.no_grad():
        corrected = {t: [hint_reference(hinted.hint, c, t) for c in (a, b)] for t in hinted.mix_taps}
        assert float((corrected["s8"][0][0] - a.mean["s8"]).abs().max()) > 0.01  # it does change the code
        assert float((corrected["s4"][0][1] / a.std["s4"]).log().abs().max()) > 0.01
        one_zero = hinted.stylize(content, [a, b], Fn.validate_weights([1, 0], 2))
        single = hinted.stylize(content, [a], torch.ones(1))
        mixed = hinted.mix(content, [a, b], Fn.validate_weights([1, 1], 2))
        left = torch.zeros(1, 1, 1, 48, 64)
        left[..., :32] = 1
        split = hinted.mix(content, [a, b], torch.cat([left, 1 - left]))
    assert torch.equal(one_zero, single)
    eps = Fn.EPS
    for tap in hinted.mix_taps:  # the half-half target is the mean of the two corrected codes, means and stds
        mean, std = Fn.mean_std(mixed[tap], eps=0.0)
        want_m = (corrected[tap][0][0] + corrected[tap][1][0]) / 2
        want_s = (corrected[tap][0][1] + corrected[tap][1][1]) / 2
        var = content[tap][0].detach().flatten(1).var(1, unbiased=False)  # AdaIN's eps (as without a hint)
        want_s = want_s * (var / (var + eps)).sqrt()
        torch.testing.assert_close(mean[0], want_m, rtol=1e-4, atol=1e-5 * float(want_m.abs().max()))
        torch.testing.assert_close(std[0], want_s, rtol=1e-3, atol=1e-5 * float(want_s.max()))
    s8 = split["s8"][0]  # a mask: each half took its own style's corrected mean (4 x 8 cells at s8)
    got_left, got_right = s8[:, :, :4].mean((1, 2)), s8[:, :, 4:].mean((1, 2))
    assert float((got_left - got_right).abs().max()) > 0.05
    assert float((got_left - corrected["s8"][0][0]).abs().mean()) < float((got_left - corrected["s8"][1][0]).abs().mean())
    with pytest.raises(ValueError, match=r"style 2 has no statistics for relu1_1 .*re-encode it with this model"):
        hinted.check_codes([a, _codes(fast, 1)[0]])
    with pytest.raises(RuntimeError, match="has none attached"):
        deepen(fast, hinted.config).style_code(_image(1, 32, 32))
    with pytest.raises(ValueError, match="style hint \\['relu1_1', 'relu2_1'\\] on 'vgg16-hed' into .* style hint \\[\\]"):
        deepen(hinted, fast.config)  # a hint cannot be dropped
    with pytest.raises(ValueError, match="on 'vgg16-hed' into .* on 'vgg19-adain'"):  # nor read another VGG
        deepen(hinted, dataclasses.replace(hinted.config, style_hint_encoder="vgg19-adain"))
    with pytest.raises(ValueError, match=r"reads VGG taps \['relu1_1', 'relu2_1'\], but the encoder given returns "
                                         r"\['relu1_1'\]"):
        hinted.attach_style_encoder(_vgg_taps(("relu1_1",)))
    with pytest.raises(ValueError, match="distinct VGG taps"):
        FastConfig(style_hint=("relu1_1", "relu1_1"))


def test_a_hinted_model_in_bf16_autocast_corrects_codes_in_float32(fast):
    hinted = _hinted(fast, scale=0.3)
    stacked = stack_codes(_codes(hinted))
    with torch.no_grad():
        want = hinted.hint(*stacked)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = hinted.hint(*stacked)
    for tap in hinted.mix_taps:
        for g, w in ((got[0][tap], want[0][tap]), (got[1][tap], want[1][tap])):
            assert g.dtype == torch.float32 and torch.equal(g, w)


def test_a_hinted_weights_dir_loads_its_vgg_beside_it_not_inside_it(tmp_path, fast):
    from stylemix.models.io import save_json, to_dict

    vgg = _vgg()
    enc = tmp_path / "vgg"
    save_tensors(enc / "encoder.safetensors", vgg.state_dict())
    save_json(enc / "config.json", {"kind": "encoder", "encoder": to_dict(vgg.config)})
    config = dataclasses.replace(fast.config, style_hint=HINT, style_hint_encoder=str(enc), encoder_id="fast-hint")
    model = _hinted(fast, scale=0.3)
    model.config = config
    out = save_model_dir(model, "adain-fast", config, tmp_path / "w", encoder=config.encoder_id, with_encoder=True)
    assert set(model.state_dict()) == set(FastModel(config).state_dict())  # the attached VGG is not in it
    assert any(k.startswith("hint.maps.s8.") for k in load_file(str(out / "decoder.safetensors")))
    assert all(k.startswith(("downs.", "blocks.", "level_blocks.")) for k in load_file(str(out / "encoder.safetensors")))
    s = Stylizer.from_pretrained(out, dtype="fp32")
    x, styles = _image(5, 40, 56), torch.cat([_image(7, 32, 32), _image(8, 32, 32) * 0.6])
    with torch.no_grad():
        got, want = s.model.style_code(styles), model.style_code(styles)
        for a, b in zip(got, want):
            assert all(torch.equal(a.mean[t], b.mean[t]) and torch.equal(a.std[t], b.std[t]) for t in b.taps)
        torch.testing.assert_close(s.model(x, got, [0.6, 0.4]), model(x, want, [0.6, 0.4]), atol=0, rtol=0)
    y = s.stylize(x, [styles[:1], styles[1:]], weights=[0.6, 0.4], return_tensor=True)
    assert y.shape == (1, 3, 40, 56) and torch.isfinite(y).all()
    (out / "vgg").symlink_to(enc, target_is_directory=True)  # a relative path is read from the weights dir
    meta = json.loads((out / "config.json").read_text())
    meta["config"]["style_hint_encoder"] = "vgg"
    (out / "config.json").write_text(json.dumps(meta))
    assert isinstance(Stylizer.from_pretrained(out, dtype="fp32").model, FastModel)
    meta["config"]["style_hint_encoder"] = "nowhere"
    (out / "config.json").write_text(json.dumps(meta))
    with pytest.raises(WeightsError, match=r"config.json: the style hint's encoder \(config.style_hint_encoder "
                                           r"'nowhere'\) cannot be loaded: unknown encoder 'nowhere'"):
        Stylizer.from_pretrained(out, dtype="fp32")


# --- mixing, exactly as the default model -----------------------------------------------------------------

def test_weights_one_zero_are_the_single_style_and_alpha_zero_the_content(fast):
    content, codes = fast.encode_content(_image(1, 48, 64)), _codes(fast)
    with torch.no_grad():
        one_zero = fast.stylize(content, codes, Fn.validate_weights([1, 0], 2))
        single = fast.stylize(content, codes[:1], torch.ones(1))
        kept = fast.mix(content, codes, Fn.validate_weights(None, 2), alpha=0.0)
    assert torch.equal(one_zero, single)
    for tap in fast.mix_taps:
        assert torch.equal(kept[tap], content[tap].float())


def test_a_half_half_blend_targets_the_mean_statistics_and_sits_between(fast):
    content, (a, b) = fast.encode_content(_image(2, 48, 64)), _codes(fast)
    with torch.no_grad():
        mixed = fast.mix(content, [a, b], Fn.validate_weights([1, 1], 2))
        outs = [fast.stylize(content, [a, b], Fn.validate_weights(w, 2)) for w in ([1, 0], [1, 1], [0, 1])]
    eps = Fn.EPS
    for tap in fast.mix_taps:
        mean, std = Fn.mean_std(mixed[tap], eps=0.0)
        want_m, want_s = (a.mean[tap] + b.mean[tap]) / 2, (a.std[tap] + b.std[tap]) / 2
        var = content[tap][0].flatten(1).var(1, unbiased=False)  # AdaIN divides by sqrt(var + eps), so a channel
        want_s = want_s * (var / (var + eps)).sqrt()  # keeps the target spread times sqrt(var / (var + eps))
        torch.testing.assert_close(mean[0], want_m, rtol=1e-4, atol=1e-5 * float(want_m.abs().max().detach()))
        torch.testing.assert_close(std[0], want_s, rtol=1e-3, atol=1e-5 * float(want_s.max().detach()))
    first, half, last = (o.mean((0, 2, 3)) for o in outs)  # the image's mean colour moves with the blend
    assert float((first - last).abs().max()) > 0.02
    assert bool(((half - first) * (last - half) >= -1e-6).all())  # between the two, channel by channel


def test_a_mask_is_a_spatial_weight(fast):
    content, codes = fast.encode_content(_image(3, 48, 64)), _codes(fast)
    ones = torch.ones(1, 1, 1, 48, 64)
    with torch.no_grad():
        all_first = fast.stylize(content, codes, torch.cat([ones, 0 * ones]))
        first = fast.stylize(content, codes[:1], torch.ones(1))
        left = torch.zeros(1, 1, 1, 48, 64)
        left[..., :32] = 1
        split = fast.mix(content, codes, torch.cat([left, 1 - left]))
    torch.testing.assert_close(all_first, first, atol=1e-5, rtol=0)
    s8 = split["s8"][0]  # 4 x 8 cells: the left half took style 1's mean, the right half style 2's
    assert float((s8[:, :, :4].mean((1, 2)) - s8[:, :, 4:].mean((1, 2))).abs().max()) > 0.05


def test_codes_of_another_encoder_are_refused(fast, tiny_model):
    vgg_code = tiny_model.style_code(torch.rand(1, 3, 32, 32))[0]
    with pytest.raises(ValueError, match=r"style 1 has no statistics for s8 .*re-encode it with this model"):
        fast.check_codes([vgg_code])
    narrow = FastModel(FastConfig(widths=(8, 16, 32, 64))).style_code(torch.rand(1, 3, 32, 32))[0]
    with pytest.raises(ValueError, match="style 2 has 64 channels at s8, the model 96"):
        fast.check_codes([_codes(fast, 1)[0], narrow])
    with pytest.raises(ValueError, match="style 1 is a str; this FastModel needs style images or StyleCodes"):
        fast.check_codes(["baroque-01"])


def test_tiles_reproduce_the_untiled_image(fast):
    s = Stylizer(fast, dtype="fp32")
    x, codes = _image(4, 240, 200), _codes(fast)
    full = s.stylize(x, codes, weights=[0.3, 0.7], alpha=0.8, return_tensor=True)
    assert full.std() > 0.02  # informative output
    # receptive radius ~76 px: 8 to reach s8, 4 convs + a narrowing conv there (+-8 each), the bilinear and
    # convs on the way up (28); with whole-image statistics an 80 px halo covers it. 56 windows.
    tiled = s.stylize_tiled(x, codes, weights=[0.3, 0.7], alpha=0.8, tile=200, halo=80, style_scale=1.0,
                            return_tensor=True)
    assert tiled.shape == full.shape
    assert float((tiled - full).abs().max()) < 5e-4  # float rounding (kernels differ per window size): < 1/8 of 1/255


# --- weights dirs and the model's own codes for the built-in styles -----------------------------------------

@pytest.fixture
def fast_dir(tmp_path, fast) -> Path:
    """A fast model's weights dir with styles.safetensors holding two built-in names."""
    config = dataclasses.replace(fast.config, encoder_id="adain-fast-test")
    model = _calibrated(config)
    out = save_model_dir(model, "adain-fast", config, tmp_path / "fast", encoder=config.encoder_id, with_encoder=True)
    codes = dict(zip(("baroque-01", "symbolism-02"), _codes(model)))
    save_codes(out / "styles.safetensors", codes, {"encoder": config.encoder_id})
    return out


def test_a_weights_dir_round_trips_bit_exactly_with_its_own_codes(fast_dir):
    meta = json.loads((fast_dir / "config.json").read_text())
    del meta["config"]["level_blocks"]  # as in weights dirs written before the field existed
    (fast_dir / "config.json").write_text(json.dumps(meta))
    s = Stylizer.from_pretrained(fast_dir, dtype="fp32")
    assert isinstance(s.model, FastModel) and s.model.encoder_name == "adain-fast-test"
    model = _calibrated(dataclasses.replace(FastConfig(), encoder_id="adain-fast-test"))
    for k, v in model.state_dict().items():
        assert torch.equal(s.model.state_dict()[k], v), k
    saved = load_codes(fast_dir / "styles.safetensors")
    assert list(saved) == ["baroque-01", "symbolism-02"] and saved["baroque-01"].taps == ("s1", "s2", "s4", "s8")
    x = _image(5, 40, 56)
    by_name = s.stylize(x, ["baroque-01", "symbolism-02"], weights=[0.6, 0.4], return_tensor=True)
    by_code = s.stylize(x, [saved["baroque-01"], saved["symbolism-02"]], weights=[0.6, 0.4], return_tensor=True)
    assert torch.equal(by_name, by_code)
    with pytest.raises(ValueError, match="computed with encoder 'vgg16-hed', but this model uses 'adain-fast-test'"):
        s.stylize(x, "impressionism-01")  # in the shared (vgg16-hed) bank only


def test_a_broken_codes_file_is_refused_with_its_name(tmp_path):
    path = tmp_path / "styles.safetensors"
    save_tensors(path, {"a.mean.s1": torch.zeros(8), "a.std.s1": torch.zeros(8)})
    with pytest.raises(WeightsError, match="style 'a' needs a mean and a positive std"):
        load_codes(path)
    save_tensors(path, {"a.mean.s1": torch.zeros(8), "a.s1": torch.ones(8)})
    with pytest.raises(WeightsError, match="unexpected tensor 'a.s1'"):
        load_codes(path)


def test_missing_fast_weights_name_the_distillation_command(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrained, "shipped_weights", lambda: tmp_path)
    with pytest.raises(WeightsError, match=r"no adain-fast weights .*stylemix train --model adain-fast"):
        Stylizer.from_pretrained("adain-fast")


def test_the_shipped_fast_model_loads_by_name_and_blends_its_built_in_styles(random_cached_encoder):
    """weights/adain-fast as shipped: found by its name, it paints the bank's names with
    its own codes, weights (1, 0) give the first style exactly, and a 50/50 blend is neither end."""
    fast = Stylizer.from_pretrained("adain-fast", dtype="fp32")
    assert isinstance(fast.model, FastModel)
    assert fast.model.hint is not None and fast.model.hint.taps == ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
    names = sorted(pretrained.model_styles("adain-fast"))
    assert len(names) >= 30  # the bank's built-in names, encoded by the fast model's own encoder
    a, b = names[0], names[-1]
    x = _image(5, 96, 128)
    first, half, last = (fast.stylize(x, [a, b], weights=w, return_tensor=True) for w in ([1, 0], [1, 1], [0, 1]))
    assert torch.equal(first, fast.stylize(x, a, return_tensor=True))
    ends = float((first - last).abs().mean())
    assert ends > 0.02  # the two styles paint differently
    assert float((half - first).abs().mean()) > 0.2 * ends and float((half - last).abs().mean()) > 0.2 * ends


# --- distillation ---------------------------------------------------------------------------------------

def _folders(root: Path, n: int = 4) -> DataConfig:
    rng = np.random.default_rng(0)
    for kind in ("content", "style"):
        (root / kind).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            low = rng.random((6, 8, 3)) * (0.5 + 0.5 * (i % 2))
            img = Image.fromarray((low * 255).astype(np.uint8)).resize((56, 44), Image.BILINEAR)
            img.save(root / kind / f"{kind[0]}{i}.png")
    return DataConfig(content_dir=str(root / "content"), style_dir=str(root / "style"), crop=32,
                      content_short_side=(32, 44), style_short_side=(32, 40), batch_size=3)


def _teacher_config(tiny_model_dir, **kw) -> TeacherConfig:
    return TeacherConfig(**{"model": str(tiny_model_dir), "samples": 5, "shard_size": 2, "frame": 8, **kw})


def test_samples_are_pure_functions_of_their_index(tmp_path, tiny_model_dir):
    cache = TeacherCache(tmp_path / "t", _folders(tmp_path), _teacher_config(tiny_model_dir, alpha_one=0.5))
    again = TeacherCache(tmp_path / "t", _folders(tmp_path), _teacher_config(tiny_model_dir, alpha_one=0.5))
    draws = [cache.draw(i) for i in range(12)]
    for i in (0, 7):
        assert torch.equal(draws[i].content, again.draw(i).content) and torch.equal(draws[i].styles, again.draw(i).styles)
    assert {len(d.weights) for d in draws} == {1, 2}
    assert all(abs(float(d.weights.sum()) - 1) < 1e-6 and (d.weights > 0).all() for d in draws)
    assert any(d.alpha == 1.0 for d in draws) and any(0.3 <= d.alpha < 1.0 for d in draws)
    assert draws[0].content.shape == (3, 32, 32)


def test_style_augmentation_changes_styles_only_and_leaves_old_caches_valid(tmp_path, tiny_model_dir):
    """teacher.style_augment changes a share of the style crops, deterministically, and nothing else a sample
    draws; off, the cache's tag is the one caches had before the setting existed (they stay usable)."""
    data = _folders(tmp_path)
    plain = TeacherCache(tmp_path / "t", data, _teacher_config(tiny_model_dir))
    aug = TeacherCache(tmp_path / "a", data, _teacher_config(tiny_model_dir, style_augment=1.0))
    assert "style_augment" not in json.loads(plain.tag)["sampling"]
    assert json.loads(aug.tag)["sampling"]["style_augment"] == 1.0
    changed = 0
    for i in range(10):
        a, b = plain.draw(i), aug.draw(i)
        assert torch.equal(a.content, b.content) and torch.equal(a.weights, b.weights) and a.alpha == b.alpha
        assert b.styles.shape == a.styles.shape and 0 <= float(b.styles.min()) and float(b.styles.max()) <= 1
        assert torch.equal(b.styles, aug.draw(i).styles)  # a pure function of the index
        changed += sum(not torch.equal(x, y) for x, y in zip(a.styles, b.styles))
    assert changed >= 5  # each crop has a ~0.88 chance of at least one op (1 - 0.5 * 0.65 ** 3 * 0.85)
    ink = TeacherCache(tmp_path / "i", data, _teacher_config(tiny_model_dir, style_ink=1.0))
    assert "style_augment" not in json.loads(ink.tag)["sampling"] and json.loads(ink.tag)["sampling"]["style_ink"] == 1.0
    for i in range(3):  # every style is a drawing now: a light ground with dark marks, or the reverse
        a, b = plain.draw(i), ink.draw(i)
        assert torch.equal(a.content, b.content) and torch.equal(a.weights, b.weights) and a.alpha == b.alpha
        assert all(not torch.equal(x, y) for x, y in zip(a.styles, b.styles))
        assert torch.equal(b.styles, ink.draw(i).styles)
    for name in ("style_augment", "style_ink"):
        with pytest.raises(ConfigError, match=rf"teacher.{name} must be a number in \[0, 1\]"):
            TeacherConfig(**{name: 1.5})


def test_the_style_augmentation_ops_do_what_they_say(monkeypatch):
    import math
    import random

    from stylemix.training import augment
    x = _image(8, 40, 48)[0]
    turned = augment.rotate_hue(x, 2.0)
    torch.testing.assert_close(Fn.luma(turned), Fn.luma(x), atol=1e-5, rtol=0)  # the hue turns, the luma stays
    assert float((turned - x).abs().max()) > 0.05
    torch.testing.assert_close(augment.rotate_hue(x, 2 * math.pi), x, atol=1e-5, rtol=0)
    soft = augment.blur(x, 1.5)
    torch.testing.assert_close(soft.mean((1, 2)), x.mean((1, 2)), atol=2e-3, rtol=0)  # a blur keeps the mean
    assert float(soft.diff(dim=-1).abs().mean()) < float(x.diff(dim=-1).abs().mean())
    for op in augment.OPS:  # each op alone: it changes the crop and keeps the range
        monkeypatch.setattr(augment, "P_OP", {o: float(o == op) for o in augment.OPS})
        y = augment.augment_style(x, random.Random(3))
        assert y.shape == x.shape and 0 <= float(y.min()) and float(y.max()) <= 1
        assert float((y - x).abs().max()) > 0.02, op
        if op == "posterize":
            assert all(len(torch.unique(c)) <= 6 for c in y)
        if op == "sharpen":  # more local contrast
            assert float(y.diff(dim=-1).abs().mean()) > float(x.diff(dim=-1).abs().mean())


def test_an_ink_drawing_is_two_tone_with_the_marks_on_the_dark_lines():
    import random

    from stylemix.training import augment
    x = torch.full((3, 48, 64), 0.7)
    x[:, :, 30:33] = 0.1  # one dark stroke on a light field
    inverted = 0
    for seed in range(12):
        y = augment.ink_drawing(x, random.Random(seed))
        assert y.shape == x.shape and 0 <= float(y.min()) and float(y.max()) <= 1
        ground, stroke = Fn.luma(y)[0, :, :12], Fn.luma(y)[0, :, 30:33]
        assert float(ground.std()) < 0.01  # the plain paper (or dark ground) stays flat, far from the stroke
        assert abs(float(stroke.mean()) - float(ground.mean())) > 0.25  # the stroke is drawn
        inverted += float(stroke.mean()) > float(ground.mean())
    assert 0 < inverted < 12  # both kinds occur: ink on paper, chalk on a dark ground


def test_the_cache_holds_what_the_teacher_paints_and_resumes_without_repainting(tmp_path, tiny_model_dir):
    data = _folders(tmp_path)
    cache = TeacherCache(tmp_path / "t", data, _teacher_config(tiny_model_dir))
    assert cache.missing() == [0, 1, 2] and cache.shards == 3
    assert cache.build() > 0
    teacher, _ = pretrained.load_model(str(tiny_model_dir), log=lambda *_: None)
    for i in (0, 3, 4):
        drawn, stored = cache.draw(i), cache.read(i)
        with torch.no_grad():
            canvas = pad_border(drawn.content[None], 8)
            want = unpad_border(teacher.stylize(teacher.encode_content(canvas), teacher.style_code(drawn.styles),
                                           drawn.weights, drawn.alpha), 8)[0]
        assert float((stored.output - want).abs().max()) <= 0.5 / 255 + 1e-6  # one 8-bit rounding
        assert float((stored.content - drawn.content).abs().max()) <= 0.5 / 255 + 1e-6
        torch.testing.assert_close(stored.weights, drawn.weights)
        assert stored.alpha == pytest.approx(drawn.alpha)
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "t").iterdir()}
    assert cache.build() is None  # nothing missing: nothing painted, no file rewritten
    assert stamps == {p.name: p.stat().st_mtime_ns for p in (tmp_path / "t").iterdir()}
    more = TeacherCache(tmp_path / "t", data, _teacher_config(tiny_model_dir, samples=8))
    assert more.missing() == [2, 3]  # the short last shard is completed, one new shard added
    other = TeacherCache(tmp_path / "t", data, _teacher_config(tiny_model_dir, alpha_one=0.5))
    with pytest.raises(ValueError, match=r"shard-00000.safetensors was made with another sampling .*new --out"):
        other.missing()


@pytest.mark.slow
def test_the_student_trains_through_the_mixing_it_runs_at_inference(tmp_path, tiny_model_dir):
    from stylemix.models.vgg import EncoderConfig, VGGEncoder

    cache = TeacherCache(tmp_path / "t", _folders(tmp_path), _teacher_config(tiny_model_dir, samples=4))
    cache.build()
    student = _calibrated(FastConfig(widths=(8, 16, 24, 32)))
    torch.manual_seed(0)
    vgg = VGGEncoder(EncoderConfig(), ("relu1_1", "relu2_1"))  # random weights: the loss's code path only
    task = FastTask(student, cache, cache.data, FastLossConfig(), vgg)
    batch = task.batch(0)
    assert [s.content.shape for s in batch] == [(3, 32, 32)] * 3 and task.batch(0)[1].alpha == batch[1].alpha
    with torch.no_grad():
        got = task.student(batch)
        for i, s in enumerate(batch):  # each sample, as the Stylizer's model call would paint it
            feats = student.encode_content(pad_border(s.content[None], 8))
            want = unpad_border(student.decode(student.mix(feats, student.style_code(s.styles), s.weights, s.alpha)), 8)
            torch.testing.assert_close(got[i:i + 1], want, atol=1e-5, rtol=0)
    student.train()
    opt = torch.optim.Adam(student.parameters(), lr=1e-3)
    first, _ = task.loss(0)
    for _ in range(25):  # one fixed batch: the loss must fall
        loss, logs = task.loss(0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert set(logs) == {"pixel", "feature", "stats", "batch"}
    assert float(task.loss(0)[0].detach()) < 0.7 * float(first.detach())


@pytest.mark.slow
def test_a_hinted_student_trains_on_each_samples_vgg_statistics_computed_once(tmp_path, tiny_model_dir, fast):
    cache = TeacherCache(tmp_path / "t", _folders(tmp_path), _teacher_config(tiny_model_dir, samples=4))
    cache.build()
    student = _hinted(fast)
    task = FastTask(student, cache, cache.data, FastLossConfig(feature_weight=0.0, stats_weight=0.0))
    batch = task.batch(0)
    with torch.no_grad():
        got = task.student(batch)
        for i, s in enumerate(batch):  # as the model paints each sample at inference, VGG pass included
            feats = student.encode_content(pad_border(s.content[None], 8))
            want = unpad_border(student.decode(student.mix(feats, student.style_code(s.styles), s.weights, s.alpha)), 8)
            torch.testing.assert_close(got[i:i + 1], want, atol=1e-5, rtol=0)
    assert task._hint_seen == set(task.indices(0))
    calls = []
    student._hint_vgg[0].register_forward_hook(lambda *a: calls.append(1))
    task.student(batch)
    assert not calls  # the second visit reads the kept statistics
    student.train()
    opt = torch.optim.Adam(student.hint.parameters(), lr=1e-2)
    first, _ = task.loss(0)
    for _ in range(20):  # the hint alone can fit one batch's pixels better
        loss, _ = task.loss(0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(task.loss(0)[0].detach()) < 0.95 * float(first.detach())


def test_the_style_term_pulls_alpha_one_samples_towards_their_styles_blend(tmp_path, tiny_model_dir):
    from stylemix.models.vgg import EncoderConfig, VGGEncoder
    from stylemix.training.losses import mean_std_loss

    cache = TeacherCache(tmp_path / "t", _folders(tmp_path), _teacher_config(tiny_model_dir, samples=16, alpha_one=0.5))
    cache.build()
    torch.manual_seed(0)
    vgg = VGGEncoder(EncoderConfig(), ("relu1_1", "relu2_1")).eval()  # random weights
    task = FastTask(_calibrated(FastConfig(widths=(8, 16, 24, 32))), cache, cache.data,
                    FastLossConfig(pixel_weight=0, feature_weight=0, stats_weight=0, style_weight=2.0), vgg)
    step = next(t for t in range(200) if len({s.alpha == 1.0 for s in task.batch(t)}) == 2
                and any(len(s.weights) == 2 for s in task.batch(t) if s.alpha == 1.0))
    loss, logs = task.loss(step)
    batch, want = task.batch(step), 0.0
    full = [i for i, s in enumerate(batch) if s.alpha == 1.0]
    with torch.no_grad():
        out = vgg(task.student(batch)[full])
        for tap in ("relu1_1", "relu2_1"):  # each style on its own through VGG, then the weighted blend
            stats = [[Fn.mean_std(vgg(st[None])[tap]) for st in batch[i].styles] for i in full]
            weights = [batch[i].weights for i in full]
            mean = torch.stack([sum(w * m[0] for w, (m, _) in zip(ws, ms)) for ws, ms in zip(weights, stats)])
            std = torch.stack([sum(w * s[0] for w, (_, s) in zip(ws, ms)) for ws, ms in zip(weights, stats)])
            want = want + mean_std_loss(out[tap], mean, std, relative=True)
    assert logs["style"] == pytest.approx(float(want), rel=1e-4)
    assert float(loss.detach()) == pytest.approx(2 * float(want), rel=1e-4)
    index = task.indices(step)[full[0]]
    assert task.style_stats(index) is task.style_stats(index)  # computed once per sample
    no_full = next(t for t in range(200) if all(s.alpha < 1 for s in task.batch(t)))
    assert task.loss(no_full)[1]["style"] == 0.0  # logged on every step, so data-parallel ranks agree on the keys


def test_the_feature_losses_see_the_same_window_of_output_and_teacher(tmp_path, tiny_model_dir):
    cache = TeacherCache(tmp_path / "t", _folders(tmp_path), _teacher_config(tiny_model_dir, samples=2))
    task = FastTask(_calibrated(), cache, cache.data, FastLossConfig(feature_crop=12))
    out, target = torch.rand(3, 3, 32, 32), torch.rand(3, 3, 32, 32)
    a, b = task.windows(5, out, target)
    assert a.shape == b.shape == (3, 3, 12, 12)
    for i in range(3):  # each window is a crop of its own sample, at one place in both images
        hits = [(y, x) for y in range(21) for x in range(21) if torch.equal(out[i, :, y:y + 12, x:x + 12], a[i])]
        assert len(hits) == 1 and torch.equal(target[i, :, hits[0][0]:hits[0][0] + 12, hits[0][1]:hits[0][1] + 12], b[i])
    assert torch.equal(task.windows(5, out)[0], a) and not torch.equal(task.windows(6, out)[0], a)  # set by the step
    whole = FastTask(_calibrated(), cache, cache.data, FastLossConfig(feature_crop=0)).windows(5, out, target)
    assert whole[0] is out and whole[1] is target


def test_one_command_paints_trains_and_exports_a_model_the_stylizer_loads(tmp_path, tiny_model_dir):
    from stylemix.training.cli import main

    data = _folders(tmp_path / "data")
    config = {"teacher": dataclasses.asdict(_teacher_config(tiny_model_dir, samples=4)),
              "data": {k: v for k, v in dataclasses.asdict(data).items()},
              "model": {"widths": [8, 16, 24, 32]},
              "loss": {"feature_weight": 0.0, "stats_weight": 0.0},  # no VGG: tests have no encoder cache
              "loop": {"steps": 3, "checkpoint_every": 2, "log_every": 1}, "bank_data": str(tmp_path / "none")}
    (tmp_path / "c.json").write_text(json.dumps(config))
    run, out = tmp_path / "run", tmp_path / "weights"
    assert main(["--model", "adain-fast", "--config", str(tmp_path / "c.json"), "--out", str(run)]) == 0
    assert len(list((run / "teacher").glob("shard-*.safetensors"))) == 2
    assert [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()] == [1, 2, 3]
    assert main(["--out", str(run), "--export", str(out)]) == 0  # the checkpoint says which recipe
    meta = json.loads((out / "config.json").read_text())
    assert meta["model"] == "adain-fast" and meta["steps"] == "3"
    assert meta["encoder_id"].startswith("adain-fast-") and meta["config"]["encoder_id"] == meta["encoder_id"]
    assert json.loads(meta["teacher"])["model"] == str(tiny_model_dir)
    assert not (out / "styles.safetensors").exists()  # bank_data has no sources: no codes, and it says so
    s = Stylizer.from_pretrained(out, dtype="fp32")
    y = s.stylize(_image(6, 40, 48), [_image(7, 32, 32), _image(8, 32, 32)], weights=[0.5, 0.5], return_tensor=True)
    assert y.shape == (1, 3, 40, 48) and torch.isfinite(y).all()


def test_a_distillation_without_bank_data_stops_before_painting(tmp_path, tiny_model_dir, capsys):
    from stylemix.training.cli import main
    from stylemix.training.fast_task import require_bank_data

    config = {"teacher": dataclasses.asdict(_teacher_config(tiny_model_dir, samples=4)),
              "data": dataclasses.asdict(_folders(tmp_path / "data")), "model": {"widths": [8, 16, 24, 32]},
              "loss": {"feature_weight": 0.0, "stats_weight": 0.0}, "loop": {"steps": 1}}  # no bank_data
    (tmp_path / "c.json").write_text(json.dumps(config))
    assert FastTrainConfig().bank_data == ""  # no folder is assumed
    assert main(["--model", "adain-fast", "--config", str(tmp_path / "c.json"), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "config field bank_data not given" in err and "--set bank_data=DIR" in err and "Traceback" not in err
    assert not (tmp_path / "run" / "teacher").exists() and not (tmp_path / "run" / "checkpoint.safetensors").exists()
    with pytest.raises(ValueError, match="bank_data not given"):
        require_bank_data("")
    assert require_bank_data(tmp_path) == tmp_path


def test_training_can_start_from_a_shallower_students_weights(fast_dir):
    """init= a weights dir of fewer blocks: the student is grown from it, computing what it computed."""
    cfg = FastTrainConfig(model=FastConfig(blocks=2, level_blocks=(0, 0, 1)), init=str(fast_dir))
    logged = []
    student = build_model(cfg, log=logged.append).eval()
    assert student.config.blocks_per_tap() == (0, 0, 1, 2) and "grown from blocks per tap [0, 0, 0, 1]" in logged[-1]
    shipped = Stylizer.from_pretrained(fast_dir, dtype="fp32").model
    x = _image(4, 40, 48)
    with torch.no_grad():
        torch.testing.assert_close(student.decode(student.encode(x)), shipped.decode(shipped.encode(x)), rtol=0, atol=0)
    with pytest.raises(ValueError, match="only residual blocks and a style hint may be added"):
        build_model(FastTrainConfig(model=FastConfig(widths=(8, 16, 48, 128)), init=str(fast_dir)))


def test_the_export_encodes_the_built_in_styles_with_the_model(tmp_path, monkeypatch, fast):
    shipped, data = tmp_path / "shipped", tmp_path / "data"
    (shipped / "styles").mkdir(parents=True)
    (data / "train" / "style" / "m").mkdir(parents=True)
    for i in range(2):
        arr = (np.asarray(_image(20 + i, 30, 45)[0].permute(1, 2, 0)) * 255).astype(np.uint8)
        Image.fromarray(arr).save(data / "train" / "style" / "m" / f"s{i}.png")
    index = {"short_side": 24, "styles": [{"name": f"m-0{i + 1}", "source": f"train/style/m/s{i}.png"} for i in range(2)]}
    (shipped / "styles" / "index.json").write_text(json.dumps(index))
    monkeypatch.setattr(pretrained, "shipped_weights", lambda: shipped)
    codes, meta = bank_codes(fast, data)
    assert list(codes) == ["m-01", "m-02"] and meta["short_side"] == "24"
    img = torch.from_numpy(np.array(Image.open(data / "train/style/m/s1.png").resize((36, 24), Image.BICUBIC,
                                                                                    reducing_gap=2.0)))
    with torch.no_grad():
        want = fast.style_code(img.permute(2, 0, 1)[None].float() / 255)[0]
    for tap in fast.style_taps:
        torch.testing.assert_close(codes["m-02"].mean[tap], want.mean[tap])
        torch.testing.assert_close(codes["m-02"].std[tap], want.std[tap])
    os.remove(data / "train" / "style" / "m" / "s0.png")
    assert bank_codes(fast, data) == ({}, {})  # a missing source: no partial bank
    assert create_model("adain-fast").config == FastConfig()
