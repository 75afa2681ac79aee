"""The model registry, and the default AdaIN model built through it."""
from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import torch

from stylemix.models.io import from_dict, to_dict
from stylemix.models.pretrained import shipped_weights
from stylemix.models.registry import (create_model, list_models, model_config_cls, model_recipes, register_model,
                                      weights_help)


def test_adain_is_registered():
    assert "adain" in list_models()


@pytest.mark.parametrize("name", list_models())
def test_every_registered_name_builds_from_its_default_config(name):
    torch.manual_seed(0)
    model = create_model(name)
    assert isinstance(model, torch.nn.Module)
    n = sum(p.numel() for p in model.parameters())
    assert n > 0
    assert all(torch.isfinite(p).all() for p in model.parameters())
    cls = model_config_cls(name)  # the default config survives config.json
    assert from_dict(cls, json.loads(json.dumps(to_dict(cls())))) == cls()


def test_unknown_name_lists_the_options():
    with pytest.raises(ValueError, match="unknown model 'nope'") as err:
        create_model("nope")
    for name in list_models():
        assert name in str(err.value)


def test_duplicate_registration_is_refused():
    with pytest.raises(ValueError, match="'adain' is already registered"):
        register_model("adain", object)(lambda c: None)


def test_missing_weights_find_their_model_by_name():
    assert weights_help("adain-vgg16-v3", "W").startswith("no trained decoder is installed (looked for W)")
    assert "--export weights/adain-vgg16-v3'" in weights_help("adain-vgg16-v3", "W")
    assert weights_help("adain-fast-draft", "W").startswith("no adain-fast-draft weights")  # the longer name wins
    assert "weights convert stytr2" in weights_help("stytr2", "W")
    assert weights_help("adainx", "W") is None and weights_help("nope", "W") is None


@pytest.mark.parametrize("name", sorted(d.name for d in shipped_weights().iterdir() if (d / "config.json").is_file()))
def test_the_training_command_a_weights_help_suggests_runs_as_written(name, monkeypatch, capsys):
    """Each `stylemix train` command that a missing model's help suggests resolves to a config naming its image
    folders (they have no default), run from the project folder as the help's relative paths assume."""
    from stylemix.training.cli import main

    monkeypatch.chdir(Path(__file__).resolve().parent.parent)
    commands = [shlex.split(c)[2:] for c in re.findall(r"'(stylemix train [^']*)'", weights_help(name, "W") or "")]
    assert commands, f"the help for missing {name} weights suggests no training command"
    for argv in (a for a in commands if "--export" not in a):
        assert main([*argv, "--print-config"]) == 0, (argv, capsys.readouterr().err)
        data = json.loads(capsys.readouterr().out)["data"]
        assert data["content_dir"] and data["style_dir"], argv


def test_registry_entries_name_their_training_recipes():
    assert model_recipes("adain") == {"adain": "stylemix.training.cli:ADAIN_RECIPE",
                                      "adain-teacher": "stylemix.training.cli:TEACHER_RECIPE"}
    assert model_recipes("stytr2") == {"stytr2": "stylemix.training.stytr2_task:RECIPE"}
    assert list(model_recipes("adain-fast")) == ["adain-fast"]


def test_create_model_uses_a_given_config():
    from stylemix.models.adain import AdaINConfig
    from stylemix.models.decoder import DecoderConfig

    model = create_model("adain", AdaINConfig(decoder=DecoderConfig(width=0.25)))
    assert model.decoder.convs[0].out_channels == 64


# --- the default model --------------------------------------------------------------------------

def test_adain_forward_shape_range_and_stride(tiny_model):
    assert tiny_model.stride == 8 and tiny_model.mix_taps == ("relu4_1",)
    content, style = torch.rand(2, 3, 32, 48), torch.rand(1, 3, 40, 24)
    codes = tiny_model.style_code(style)
    assert len(codes) == 1 and codes[0].taps == ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
    assert codes[0].mean["relu4_1"].shape == (512,)
    with torch.no_grad():
        out = tiny_model(content, codes)
    assert out.shape == content.shape and torch.isfinite(out).all()
    assert float(out.min()) >= 0 and float(out.max()) <= 1


def test_adain_mix_targets_have_the_style_statistics(tiny_model):
    from stylemix.models import functional as Fn

    with torch.no_grad():
        feats = tiny_model.encode(torch.rand(1, 3, 64, 64))
        codes = tiny_model.style_code(torch.rand(2, 3, 32, 32))
        one = tiny_model.mix(feats, codes, Fn.validate_weights([1, 0], 2))["relu4_1"]
        single = tiny_model.mix(feats, codes[:1], torch.ones(1))["relu4_1"]
        content = tiny_model.mix(feats, codes, Fn.validate_weights(None, 2), alpha=0.0)["relu4_1"]
    assert torch.equal(one, single)
    assert torch.equal(content, feats["relu4_1"])
    mean, std = Fn.mean_std(one)
    live = feats["relu4_1"][0].flatten(1).std(1) > 1e-2  # dead ReLU channels cannot take a spread
    scale = float(codes[0].std["relu4_1"].max())
    torch.testing.assert_close(mean[0][live], codes[0].mean["relu4_1"][live], rtol=0, atol=1e-4 * scale)
    torch.testing.assert_close(std[0][live], codes[0].std["relu4_1"][live], rtol=0, atol=1e-3 * scale)


def test_adain_forward_rejects_bad_weights(tiny_model):
    codes = tiny_model.style_code(torch.rand(2, 3, 16, 16))
    with pytest.raises(ValueError, match="got 3 weights for 2 styles"):
        tiny_model(torch.rand(1, 3, 16, 16), codes, [1, 1, 1])


def test_encoder_and_decoder_archs_must_agree():
    from stylemix.models.adain import AdaINConfig, AdaINModel
    from stylemix.models.decoder import DecoderConfig

    with pytest.raises(ValueError, match="decoder mirrors vgg19 but the encoder is vgg16"):
        AdaINModel(AdaINConfig(decoder=DecoderConfig("vgg19")))
