"""The AdaIN model's style hint (models/hint.py, AdaINConfig.style_hint): the documented formula (shifts in units of
the style's std) once trained, blends and (1, 0) weights as without it, ONNX. Identity when fresh, weights dirs and
training (grown onto weights trained without a hint): tests/test_modulation.py, with a decoder modulation in the same
model."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from stylemix.models import functional as Fn
from stylemix.models.adain import AdaINConfig, AdaINModel
from stylemix.models.decoder import DecoderConfig
from stylemix.models.io import ConfigError
from stylemix.models.mixing import StyleCode


TAPS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
CONFIG = AdaINConfig(decoder=DecoderConfig(width=0.25, skips=("relu3_1", "relu2_1", "relu1_1")))


def _pair(make_calibrated_model, scale: float = 0.0) -> tuple[AdaINModel, AdaINModel]:
    """(plain, hinted): the same calibrated weights, the hinted one reading all four taps; its hint's weights
    drawn at `scale` (0: the fresh identity)."""
    plain = make_calibrated_model(CONFIG)
    hinted = AdaINModel(dataclasses.replace(CONFIG, style_hint=TAPS)).eval()
    missing, unexpected = hinted.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("hint.") for k in missing)
    torch.manual_seed(5)
    with torch.no_grad():
        for p in hinted.hint.parameters():
            p.normal_(0, scale) if scale else p.zero_()
    return plain, hinted


def _styles(model: AdaINModel) -> list[StyleCode]:
    torch.manual_seed(9)
    with torch.no_grad():
        return model.style_code(torch.rand(2, 3, 48, 40))


def test_a_trained_hint_corrects_each_style_by_the_formula_before_the_blend(make_calibrated_model, hint_reference):
    _, hinted = _pair(make_calibrated_model, scale=0.5)
    assert hinted.hint.shift_by_std  # the default model's shifts are in units of the style's std
    content, (a, b) = hinted.encode(torch.rand(1, 3, 40, 48)), _styles(hinted)
    with torch.no_grad():
        want = {t: [tuple(x.double() for x in hint_reference(hinted.hint, c, t)) for c in (a, b)] for t in hinted.mix_taps}
        mixed = hinted.mix(content, [a, b], Fn.validate_weights([1, 1], 2))
        one_zero = hinted.stylize(content, [a, b], Fn.validate_weights([1, 0], 2))
        single = hinted.stylize(content, [a], torch.ones(1))
    assert torch.equal(one_zero, single)
    for tap in hinted.mix_taps:
        shift = (want[tap][0][0] - a.mean[tap].double()) / a.std[tap].double()
        assert float(shift.abs().max()) > 0.05  # it does move the code, by a fraction of the style's spread
        mean, std = Fn.mean_std(mixed[tap], eps=0.0)
        var = content[tap][0].flatten(1).var(1, unbiased=False)
        want_m = (want[tap][0][0] + want[tap][1][0]) / 2
        want_s = (want[tap][0][1] + want[tap][1][1]) / 2 * (var / (var + Fn.EPS)).sqrt().double()
        torch.testing.assert_close(mean[0].double(), want_m, rtol=1e-4, atol=1e-5 * float(want_m.abs().max()))
        torch.testing.assert_close(std[0].double(), want_s, rtol=1e-3, atol=1e-5 * float(want_s.max()))


def test_a_hint_reads_only_style_taps():
    with pytest.raises(ConfigError, match=r'style_hint must be distinct taps among style_taps .* got \["relu5_1"\]'):
        AdaINConfig(style_hint=("relu5_1",))
    with pytest.raises(ConfigError, match="style_hint"):
        AdaINConfig(style_hint=("relu1_1", "relu1_1"))


def test_a_hinted_model_exports_to_onnx_with_the_hint_in_the_graph(tmp_path, make_calibrated_model):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from stylemix.inference import Stylizer, onnx_export

    _, hinted = _pair(make_calibrated_model, scale=0.5)
    session = ort.InferenceSession(str(onnx_export.export_onnx(hinted, tmp_path / "hint.onnx")))
    assert sorted(i.name for i in session.get_inputs() if i.name.startswith("mean_")) == sorted(f"mean_{t}" for t in TAPS)
    stylizer, x, codes = Stylizer(hinted, dtype="fp32"), torch.rand(1, 3, 40, 56), _styles(hinted)
    ref = stylizer.stylize(x, codes, weights=[0.3, 0.7], max_size=None, return_tensor=True).numpy()
    plain = Stylizer(make_calibrated_model(CONFIG), dtype="fp32").stylize(x, codes, weights=[0.3, 0.7], max_size=None,
                                                                          return_tensor=True).numpy()
    feed = {"content": x.numpy(), "weights": np.asarray([0.3, 0.7], np.float32), "alpha": np.asarray(1.0, np.float32),
            **{f"{k}_{t}": np.stack([getattr(c, k)[t].numpy() for c in codes]) for k in ("mean", "std") for t in TAPS}}
    got = session.run(None, feed)[0]
    assert np.abs(got - ref).max() < 1 / 255 and np.abs(ref - plain).max() > 10 / 255  # the hint is in the graph
