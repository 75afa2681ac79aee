"""The default model's decoder modulation (models/hint.StyleModulation, AdaINConfig.decoder_modulation): identity
when fresh (with a style hint too); once trained, each hidden conv of the decoder is scaled and shifted per channel
by the documented formula; blends (by weights, masks, alpha) act on the modulation as on the statistics; weights dirs,
ONNX and training (grown onto weights trained without it and a hint)."""
from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pytest
import torch

from stylemix.models import functional as Fn
from stylemix.models.adain import AdaINConfig, AdaINModel
from stylemix.models.decoder import DecoderConfig
from stylemix.models.io import ConfigError, load_tensors, save_model_dir
from stylemix.models.mixing import StyleCode
from stylemix.models.pretrained import load_model
from stylemix.training import cli

import test_training

run_setup = test_training.run_setup  # the tiny-run fixture, shared
train = test_training.train
TAPS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
CONFIG = AdaINConfig(decoder=DecoderConfig(width=0.25, skips=("relu3_1", "relu2_1", "relu1_1"), upsample="bilinear"))


def _pair(make_calibrated_model, scale: float = 0.0) -> tuple[AdaINModel, AdaINModel]:
    """(plain, modulated): the same calibrated weights, the modulated one reading all four taps; its maps drawn at
    `scale` (0: the fresh identity)."""
    plain = make_calibrated_model(CONFIG)
    modulated = AdaINModel(dataclasses.replace(CONFIG, decoder_modulation=TAPS)).eval()
    missing, unexpected = modulated.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("modulation.") for k in missing)
    if scale:
        torch.manual_seed(5)
        with torch.no_grad():
            for p in modulated.modulation.maps.parameters():
                p.normal_(0, scale)
    return plain, modulated


def _styles(model: AdaINModel) -> list[StyleCode]:
    torch.manual_seed(9)
    with torch.no_grad():
        return model.style_code(torch.rand(2, 3, 48, 40))


def _reference(modulation, code: StyleCode, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(gain, bias) of layer `name` for one code by the docstring's formula, float64 and independent of the module."""
    def standard(x):
        y = torch.log1p(x.double())
        return (y - y.mean()) / y.std()
    z = torch.cat([standard(code.mean[t]) for t in modulation.taps] + [standard(code.std[t]) for t in modulation.taps])
    e_w = modulation.embed.weight.double()
    e = e_w @ z / (len(z) * e_w.shape[0]) ** 0.5
    m = modulation.maps[name]
    out = m.weight.double() @ e + m.bias.double()
    return out.chunk(2)


def test_a_fresh_hint_and_modulation_are_the_plain_model_bit_for_bit_and_get_gradients(make_calibrated_model):
    plain = make_calibrated_model(CONFIG)
    both = AdaINModel(dataclasses.replace(CONFIG, style_hint=TAPS, decoder_modulation=TAPS)).eval()
    missing, unexpected = both.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all(k.startswith(("hint.", "modulation.")) for k in missing)
    x, codes = torch.rand(1, 3, 40, 48), _styles(plain)
    w = Fn.validate_weights([0.3, 0.7], 2)
    with torch.no_grad():
        assert torch.equal(both.stylize(both.encode(x), codes, w), plain.stylize(plain.encode(x), codes, w))
    both.stylize(both.encode(x), codes, w).mean().backward()
    assert set(both.hint.maps) == set(both.mix_taps)
    for part in (both.hint.maps, both.modulation.maps):
        assert all(float(m.weight.grad.abs().sum()) > 0 for m in part.values())
    assert both.code_taps == plain.code_taps == TAPS  # they read the code the model makes: no new inputs
    layers = both.decoder.hidden_layers()
    assert [i for i, _, _ in layers] == list(range(len(both.decoder.convs) - 1))  # every conv before the RGB one
    assert [s for _, _, s in layers] == [8, 4, 4, 4, 2, 2, 1]  # VGG16 to relu4_1: 1 + 3 + 2 + 1 hidden convs


def test_a_trained_modulation_scales_and_shifts_each_hidden_conv_by_the_formula(make_calibrated_model):
    """One style: the modulated model equals the plain one with each hidden conv's weights and bias folded by the
    reference (gain, bias): conv'(x) = conv(x) * (1 + g) + b."""
    plain, modulated = _pair(make_calibrated_model, scale=0.05)
    x, (a, _) = torch.rand(1, 3, 40, 48), _styles(plain)
    folded = _folded(plain, modulated, a)
    with torch.no_grad():
        got = modulated.stylize(modulated.encode(x), [a], torch.ones(1))
        want = folded.stylize(folded.encode(x), [a], torch.ones(1))
        unmodulated = plain.stylize(plain.encode(x), [a], torch.ones(1))
    assert float((want - unmodulated).abs().max()) > 0.05  # the modulation changes the picture ...
    torch.testing.assert_close(got, want, rtol=0, atol=2e-5)  # ... exactly as the formula says


def _folded(plain: AdaINModel, modulated: AdaINModel, code: StyleCode) -> AdaINModel:
    """The plain model with each hidden conv's weights and bias folded by `code`'s reference (gain, bias):
    conv'(x) = conv(x) * (1 + g) + b, what the modulation should compute for that one style."""
    folded = copy.deepcopy(plain)
    with torch.no_grad():
        for i, _, _ in modulated.decoder.hidden_layers():
            g, b = _reference(modulated.modulation, code, str(i))
            conv = folded.decoder.convs[i]
            conv.weight.copy_((conv.weight.double() * (1 + g)[:, None, None, None]).float())
            conv.bias.copy_((conv.bias.double() * (1 + g) + b).float())
    return folded


def test_multimodal_transfer_carries_the_modulation(make_calibrated_model):
    pytest.importorskip("maxflow")
    from stylemix.models import multimodal as MM

    plain, modulated = _pair(make_calibrated_model, scale=0.05)
    torch.manual_seed(3)
    content, style = torch.rand(1, 3, 40, 48), torch.rand(1, 3, 48, 56)
    with torch.no_grad():
        folded = _folded(plain, modulated, modulated.style_code(style)[0])
        cfg = MM.MultimodalConfig(modes=2)
        got, labels = MM.stylize_modes(modulated, content, [style], torch.ones(1), cfg)
        want, want_labels = MM.stylize_modes(folded, content, [style], torch.ones(1), cfg)
        bare, _ = MM.stylize_modes(plain, content, [style], torch.ones(1), cfg)
    assert torch.equal(labels, want_labels) and float((want - bare).abs().max()) > 0.05
    torch.testing.assert_close(got, want, rtol=0, atol=2e-5)


def test_blends_masks_and_alpha_act_on_the_modulation_as_on_the_statistics(make_calibrated_model):
    _, modulated = _pair(make_calibrated_model, scale=0.05)
    m = modulated
    x, codes = torch.rand(1, 3, 40, 48), _styles(m)
    feats = m.encode(x)
    with torch.no_grad():
        # weights (1, 0): the first style alone, bit for bit
        assert torch.equal(m.stylize(feats, codes, Fn.validate_weights([1, 0], 2)), m.stylize(feats, codes[:1], torch.ones(1)))
        # a blend's modulation is the weighted sum of the styles' (linear in the code's features)
        targets = m.mix(feats, codes, Fn.validate_weights([0.25, 0.75], 2), alpha=0.5)
        for i, _, _ in m.decoder.hidden_layers():
            want = 0.5 * torch.cat([0.25 * ga + 0.75 * gb for ga, gb in zip(_reference(m.modulation, codes[0], str(i)),
                                                                           _reference(m.modulation, codes[1], str(i)))])
            torch.testing.assert_close(targets[f"mod{i}"].double().flatten(), want, rtol=1e-4, atol=1e-6)
        # constant masks equal the same weights; a half/half mask gives each half its style's modulation
        flat = m.stylize(feats, codes, Fn.validate_weights([0.3, 0.7], 2))
        const = torch.stack([torch.full((1, 1, 40, 48), 0.3), torch.full((1, 1, 40, 48), 0.7)])
        torch.testing.assert_close(m.stylize(feats, codes, const), flat, rtol=0, atol=1e-5)
        halves = torch.zeros(2, 1, 1, 40, 48)
        halves[0, ..., :24], halves[1, ..., 24:] = 1, 1
        mods = m.mix(feats, codes, halves)
        for i, c, stride in m.decoder.hidden_layers():
            got = mods[f"mod{i}"]
            assert got.shape == (1, 2 * c, 40 // stride, 48 // stride)
            left = torch.cat(_reference(m.modulation, codes[0], str(i))).float()
            right = torch.cat(_reference(m.modulation, codes[1], str(i))).float()
            torch.testing.assert_close(got[0, :, :, 0], left[:, None].expand_as(got[0, :, :, 0]), rtol=1e-4, atol=1e-6)
            torch.testing.assert_close(got[0, :, :, -1], right[:, None].expand_as(got[0, :, :, -1]), rtol=1e-4, atol=1e-6)
        # alpha 0: no modulation at all, the plain decoder of the content's own features
        zero = m.mix(feats, codes, Fn.validate_weights([0.3, 0.7], 2), alpha=0.0)
        assert all(float(v.abs().max()) == 0 for k, v in zero.items() if k.startswith("mod"))


def test_the_modulation_reads_only_style_taps_in_their_order_and_they_join_the_code():
    with pytest.raises(ConfigError, match=r'decoder_modulation must be distinct taps among style_taps .* got \["relu5_1"\]'):
        AdaINConfig(decoder_modulation=("relu5_1",))
    with pytest.raises(ConfigError, match="in that order"):  # the order fixes what each learned input means
        AdaINConfig(decoder_modulation=("relu2_1", "relu1_1"))
    with pytest.raises(ConfigError, match="modulation_rank"):
        AdaINConfig(decoder_modulation=("relu1_1",), modulation_rank=0)
    bare = AdaINModel(AdaINConfig(decoder=DecoderConfig(width=0.25), decoder_modulation=("relu1_1", "relu2_1")))
    assert bare.mix_taps == ("relu4_1",) and bare.code_taps == ("relu4_1", "relu1_1", "relu2_1")
    assert bare.modulation_taps == ("relu1_1", "relu2_1")


def test_gains_are_not_quantised_under_bf16_autocast(make_calibrated_model):
    """Under bf16 autocast 1 + 0.012 is 1.0078 (bf16 spacing near 1 is 2^-7): the modulation must not round the
    gain itself, only each value (x + x * gain), so the mean change it makes to the output is the fp32 one."""
    plain, modulated = _pair(make_calibrated_model)
    x, (a, _) = torch.rand(1, 3, 64, 64), _styles(plain)
    with torch.no_grad():
        for m in modulated.modulation.maps.values():
            m.bias[: m.bias.numel() // 2] = 0.012  # every gain 0.012, no shift
        feats = modulated.encode(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = [modulated.stylize(feats, [a], torch.ones(1)), plain.stylize(feats, [a], torch.ones(1))]
        high = [modulated.stylize(feats, [a], torch.ones(1)), plain.stylize(feats, [a], torch.ones(1))]
    want = float((high[0] - high[1]).abs().mean())
    assert want > 1e-3
    ratio = float((low[0] - low[1]).float().abs().mean()) / want  # bf16 rounding adds ~5 %; x * (1 + gain): 30 %
    assert 0.85 < ratio < 1.15


def test_a_weights_dir_with_a_hint_and_a_modulation_round_trips(tmp_path, make_calibrated_model):
    plain = make_calibrated_model(CONFIG)
    both = AdaINModel(dataclasses.replace(CONFIG, style_hint=TAPS, decoder_modulation=TAPS)).eval()
    both.load_state_dict(plain.state_dict(), strict=False)
    torch.manual_seed(5)
    with torch.no_grad():
        for p in (*both.hint.parameters(), *both.modulation.maps.parameters()):
            p.normal_(0, 0.05)
    out = save_model_dir(both, "adain", both.config, tmp_path / "w", encoder="vgg16-hed", with_encoder=True,
                         dtype=torch.float32)
    held = load_tensors(out / "decoder.safetensors")
    assert "modulation.maps.0.weight" in held and "hint.maps.relu4_1.weight" in held
    loaded, _ = load_model(str(out), device="cpu", log=lambda *a: None)
    x, codes = torch.rand(1, 3, 40, 48), _styles(both)
    with torch.no_grad():
        assert torch.equal(loaded(x, codes, [0.5, 0.5]), both(x, codes, [0.5, 0.5]))


def test_a_hint_and_a_modulation_grow_onto_weights_trained_without_them_and_train(run_setup):
    config, root = run_setup
    assert train(config, root / "plain", "loop.steps=2") == 0
    assert train(config, root / "plain", extra=("--export", str(root / "w"))) == 0
    parts = ['model.style_hint=["relu1_1","relu2_1"]', 'model.decoder_modulation=["relu1_1","relu2_1"]',
             "model.modulation_rank=8"]
    model = cli.build_model(cli.build_config(str(config), [*parts, f"init={root / 'w'}"]), log=lambda *a: None)
    plain = load_tensors(root / "w" / "decoder.safetensors")
    state = model.state_dict()
    assert all(torch.equal(state[k].to(v.dtype), v) for k, v in plain.items())  # the init's weights, exactly
    fresh = [k for k in state if k.startswith(("hint.", "modulation.maps."))]
    assert fresh and all(float(state[k].abs().max()) == 0 for k in fresh)  # and both parts the identity
    assert train(config, root / "grown", "loop.steps=2", *parts, f"init={root / 'w'}") == 0
    assert train(config, root / "grown", *parts, f"init={root / 'w'}", extra=("--export", str(root / "w2"))) == 0
    trained = load_tensors(root / "w2" / "decoder.safetensors")
    for key in ("hint.maps.relu2_1.weight", "modulation.maps.0.weight"):
        assert float(trained[key].abs().max()) > 0, key  # the training steps reached both
    meta = json.loads((root / "w2" / "config.json").read_text())
    assert meta["config"]["decoder_modulation"] == ["relu1_1", "relu2_1"] and meta["steps"] == "4"
    # and a run from those weights loads both strictly
    again = cli.build_model(cli.build_config(str(config), [*parts, f"init={root / 'w2'}"]), log=lambda *a: None)
    for key in ("hint.maps.relu2_1.weight", "modulation.maps.0.weight"):
        assert torch.equal(again.state_dict()[key], trained[key].float())


def test_a_modulated_model_exports_to_onnx_with_the_modulation_in_the_graph(tmp_path, make_calibrated_model):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from stylemix.inference import Stylizer, onnx_export

    plain, modulated = _pair(make_calibrated_model, scale=0.05)
    session = ort.InferenceSession(str(onnx_export.export_onnx(modulated, tmp_path / "mod.onnx")))
    stylizer, x, codes = Stylizer(modulated, dtype="fp32"), torch.rand(1, 3, 40, 56), _styles(modulated)
    ref = stylizer.stylize(x, codes, weights=[0.3, 0.7], max_size=None, return_tensor=True).numpy()
    unmodulated = Stylizer(plain, dtype="fp32").stylize(x, codes, weights=[0.3, 0.7], max_size=None,
                                                        return_tensor=True).numpy()
    feed = {"content": x.numpy(), "weights": np.asarray([0.3, 0.7], np.float32), "alpha": np.asarray(1.0, np.float32),
            **{f"{k}_{t}": np.stack([getattr(c, k)[t].numpy() for c in codes]) for k in ("mean", "std") for t in TAPS}}
    got = session.run(None, feed)[0]
    assert np.abs(got - ref).max() < 1 / 255 and np.abs(ref - unmodulated).max() > 10 / 255
