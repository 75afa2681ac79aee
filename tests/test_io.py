"""Configs through JSON, weights directories through safetensors: exact round trips, loud failures."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from stylemix.models.adain import AdaINConfig, AdaINModel
from stylemix.models.convert import ENCODER_PRESETS
from stylemix.models.decoder import DecoderConfig
from stylemix.models.io import (ConfigError, RetiredField, WeightsError, atomic_write, check_state, from_dict,
                                load_json, load_tensors, save_json, save_model_dir, to_dict)
from stylemix.models.pretrained import load_model
from stylemix.models.stytr2 import StyTr2Config


def _json_round_trip(config):
    return from_dict(type(config), json.loads(json.dumps(to_dict(config))))


def _custom_config() -> AdaINConfig:
    return AdaINConfig(
        encoder=dataclasses.replace(ENCODER_PRESETS["vgg19-adain"]),
        decoder=DecoderConfig("vgg19", "relu4_1", skips=("relu3_1", "relu1_1"), width=0.5,
                              feature_scale={"relu4_1": 0.09, "relu3_1": 0.04}),
        style_taps=("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
    )


@pytest.mark.parametrize("config", [AdaINConfig(), _custom_config(), ENCODER_PRESETS["vgg16-hed"]])
def test_config_json_round_trip_equals_the_dataclass(config):
    back = _json_round_trip(config)
    assert back == config
    if isinstance(config, AdaINConfig):
        assert isinstance(back.style_taps, tuple) and isinstance(back.decoder.skips, tuple)
        assert isinstance(back.encoder.input.mean, tuple)


def test_unknown_config_field_is_an_error_naming_it():
    data = to_dict(AdaINConfig())
    with pytest.raises(WeightsError, match="bogus"):
        from_dict(AdaINConfig, {**data, "bogus": 1})
    data["decoder"]["widht"] = 0.5  # nested typo
    with pytest.raises(WeightsError, match="DecoderConfig.*widht"):
        from_dict(AdaINConfig, data)
    with pytest.raises(WeightsError, match="must be a JSON object"):
        from_dict(AdaINConfig, [1, 2])


def _state_equal(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), k


def test_model_dir_with_own_encoder_round_trip_is_bit_identical(tiny_model, tmp_path):
    out = save_model_dir(tiny_model, "adain", tiny_model.config, tmp_path / "m", encoder="vgg16-hed",
                         metadata={"steps": "0"}, with_encoder=True)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "decoder.safetensors", "encoder.safetensors"]
    loaded, meta = load_model(str(out), log=lambda *_: None)
    assert meta["model"] == "adain" and meta["steps"] == "0"
    assert loaded.config == tiny_model.config
    _state_equal(loaded, tiny_model)
    x = torch.rand(1, 3, 32, 32)
    code = tiny_model.style_code(torch.rand(1, 3, 32, 32))
    with torch.no_grad():
        assert torch.equal(loaded(x, code), tiny_model(x, code))


def test_model_dir_with_cached_encoder_round_trip_is_bit_identical(tiny_model, tmp_path, stylemix_cache):
    enc_dir = stylemix_cache / "encoders" / "vgg16-hed"
    save_json(enc_dir / "config.json", {"kind": "encoder", "encoder": to_dict(tiny_model.config.encoder)})
    save_file({k: v.contiguous() for k, v in tiny_model.encoder.state_dict().items()},
              str(enc_dir / "encoder.safetensors"))
    out = save_model_dir(tiny_model, "adain", tiny_model.config, tmp_path / "m", encoder="vgg16-hed")
    assert not (out / "encoder.safetensors").exists()
    loaded, _ = load_model(str(out), log=lambda *_: None)
    _state_equal(loaded, tiny_model)


def test_bf16_model_dir_loads_as_the_rounded_weights(tiny_model, tmp_path):
    out = save_model_dir(tiny_model, "adain", tiny_model.config, tmp_path / "m", encoder="vgg16-hed",
                         dtype=torch.bfloat16, with_encoder=True)
    assert all(v.dtype == torch.bfloat16 for v in load_file(str(out / "decoder.safetensors")).values())
    loaded, _ = load_model(str(out), log=lambda *_: None)
    for k, v in tiny_model.decoder.state_dict().items():
        assert torch.equal(loaded.decoder.state_dict()[k], v.to(torch.bfloat16).float()), k


def _saved(tiny_model, tmp_path) -> Path:
    return save_model_dir(tiny_model, "adain", tiny_model.config, tmp_path / "m", encoder="vgg16-hed",
                          with_encoder=True)


def test_load_with_wrong_key_names_the_keys(tiny_model, tmp_path):
    out = _saved(tiny_model, tmp_path)
    state = load_file(str(out / "decoder.safetensors"))
    state["decoder.convs.99.weight"] = state.pop("decoder.convs.3.weight")
    save_file(state, str(out / "decoder.safetensors"))
    with pytest.raises(WeightsError, match=r"missing keys \['decoder\.convs\.3\.weight'\].*decoder\.convs\.99\.weight"):
        load_model(str(out), log=lambda *_: None)


def test_load_with_wrong_shape_names_the_key_and_shapes(tiny_model, tmp_path):
    out = _saved(tiny_model, tmp_path)
    state = load_file(str(out / "encoder.safetensors"))
    state["layers.conv2_1.weight"] = torch.zeros(128, 32, 3, 3)
    save_file(state, str(out / "encoder.safetensors"))
    with pytest.raises(WeightsError, match=r"layers\.conv2_1\.weight: file \(128, 32, 3, 3\) vs model \(128, 64, 3, 3\)"):
        load_model(str(out), log=lambda *_: None)


def test_missing_or_corrupt_files_are_named(tiny_model, tmp_path):
    out = _saved(tiny_model, tmp_path)
    (out / "decoder.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsError, match="decoder.safetensors is not a readable safetensors file"):
        load_model(str(out), log=lambda *_: None)
    (out / "decoder.safetensors").unlink()
    with pytest.raises(WeightsError, match="missing weights file.*decoder.safetensors"):
        load_model(str(out), log=lambda *_: None)
    (out / "config.json").write_text("{ not json")
    with pytest.raises(WeightsError, match="config.json is not valid JSON"):
        load_json(out / "config.json")
    with pytest.raises(WeightsError, match="missing config file"):
        load_json(tmp_path / "nowhere.json")
    with pytest.raises(WeightsError, match="is a folder, not a JSON config file"):
        load_json(tmp_path)


def test_unknown_field_in_a_model_config_json_fails_the_load(tiny_model, tmp_path):
    out = _saved(tiny_model, tmp_path)
    meta = json.loads((out / "config.json").read_text())
    meta["config"]["decoder"]["skip"] = ["relu3_1"]
    (out / "config.json").write_text(json.dumps(meta))
    with pytest.raises(WeightsError, match="skip"):
        load_model(str(out), log=lambda *_: None)
    meta["kind"] = "encoder"
    (out / "config.json").write_text(json.dumps(meta))
    with pytest.raises(WeightsError, match="does not describe a model"):
        load_model(str(out), log=lambda *_: None)


def test_a_retired_field_loads_while_off_and_fails_naming_it_while_on(tiny_model, tmp_path):
    """models/io.RETIRED: weights dirs and checkpoints record every field of their config, retired ones too."""
    out = _saved(tiny_model, tmp_path)
    meta = json.loads((out / "config.json").read_text())
    meta["config"].update(style_hint=[], decoder_modulation=[], modulation_rank=128)
    (out / "config.json").write_text(json.dumps(meta))
    model, _ = load_model(str(out), log=lambda *_: None)
    assert model.config == tiny_model.config
    meta["config"]["decoder_modulation"] = ["relu1_1"]
    (out / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match=r'config field config.decoder_modulation was removed, and only its off value '
                                           r'\[\] still loads; got \["relu1_1"\] \(a list\)'):
        load_model(str(out), log=lambda *_: None)
    with pytest.raises(RetiredField, match=r"config field blend was removed, .* off value \"normalised\" .* got \"logit\""):
        from_dict(StyTr2Config, {"blend": "logit"})
    assert from_dict(StyTr2Config, {"blend": "normalised"}) == StyTr2Config()
    with pytest.raises(ConfigError, match="unknown AdaINConfig config field"):  # a field never known is still unknown
        from_dict(AdaINConfig, {"style_hints": []})


def test_check_state_lists_every_problem():
    module = torch.nn.Linear(3, 2)
    check_state(module, {"weight": torch.zeros(2, 3), "bias": torch.zeros(2)}, "ok")
    with pytest.raises(WeightsError, match=r"x\.pt does not fit.*missing keys \['bias'\].*unexpected keys \['b'\]"
                                             r".*weight: file \(3, 3\) vs model \(2, 3\)"):
        check_state(module, {"weight": torch.zeros(3, 3), "b": torch.zeros(2)}, "x.pt")


def test_atomic_write_keeps_the_old_file_when_the_writer_raises(tmp_path):
    path = tmp_path / "out.json"
    path.write_text("old")

    def failing(tmp: str) -> None:
        Path(tmp).write_text("half-writ")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, failing)
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]  # no temporary left behind
    atomic_write(path, lambda tmp: Path(tmp).write_text("new"))
    assert path.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_save_tensors_and_json_write_into_new_folders(tmp_path):
    from stylemix.models.io import save_tensors

    t = {"a": torch.arange(6.0).view(2, 3).t()}  # non-contiguous is fine
    save_tensors(tmp_path / "x" / "t.safetensors", t, {"source": "test"})
    assert torch.equal(load_tensors(tmp_path / "x" / "t.safetensors")["a"], t["a"])
    save_json(tmp_path / "y" / "c.json", {"k": [1, 2]})
    assert load_json(tmp_path / "y" / "c.json") == {"k": [1, 2]}


def test_model_built_from_round_tripped_config_has_the_same_shapes():
    config = _json_round_trip(_custom_config())
    a, b = AdaINModel(_custom_config()), AdaINModel(config)
    assert {k: v.shape for k, v in a.state_dict().items()} == {k: v.shape for k, v in b.state_dict().items()}


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["decoder"].update(width="1.0"), 'config field decoder.width must be a number, got "1.0" (a string)'),
    (lambda d: d["decoder"].update(width=True), "config field decoder.width must be a number, got true"),
    (lambda d: d["decoder"].update(skips="relu3_1"), "config field decoder.skips must be a list of strings"),
    (lambda d: d["decoder"].update(skips=["relu3_1", 3]), "config field decoder.skips[1] must be a string, got 3"),
    (lambda d: d["decoder"].update(feature_scale={"relu4_1": "x"}), "config field decoder.feature_scale.relu4_1 must"),
    (lambda d: d["encoder"]["input"].update(mean=[0.1, 0.2]), "config field encoder.input.mean must be a list of 3"),
    (lambda d: d["encoder"].update(ceil_mode=1), "config field encoder.ceil_mode must be true or false, got 1"),
    (lambda d: d["encoder"].update(arch=16), "config field encoder.arch must be a string, got 16 (an integer)"),
    (lambda d: d.update(decoder=[]), "config field decoder must be a JSON object (DecoderConfig), got [] (a list)"),
    (lambda d: d.update(style_taps=None), "config field style_taps must be a list of strings, got null"),
])
def test_config_values_are_checked_against_the_annotations(edit, message):
    data = json.loads(json.dumps(to_dict(AdaINConfig())))
    edit(data)
    with pytest.raises(ConfigError) as e:
        from_dict(AdaINConfig, data)
    assert message in str(e.value)
    assert isinstance(e.value, WeightsError)  # every caller that reports a bad weights dir reports this too


def test_ints_are_numbers_but_bools_are_not():
    data = to_dict(AdaINConfig())
    data["decoder"]["width"] = 1  # JSON has no 1.0 vs 1 for a person writing a config by hand
    back = from_dict(AdaINConfig, data)
    assert back.decoder.width == 1.0 and isinstance(back.decoder.width, float)
    data["encoder"]["input"]["scale"] = False
    with pytest.raises(ConfigError, match="encoder.input.scale must be a number, got false"):
        from_dict(AdaINConfig, data)


def test_non_finite_tensors_are_refused_naming_them(tmp_path):
    save_file({"ok": torch.ones(3), "bad": torch.tensor([1.0, float("nan"), float("inf")]),
               "steps": torch.tensor([7])}, str(tmp_path / "w.safetensors"))
    with pytest.raises(WeightsError, match=r"w\.safetensors holds NaN or inf values in 1 tensor\(s\): bad \(2 of 3"):
        load_tensors(tmp_path / "w.safetensors")
    save_file({"half": torch.tensor([65504.0, float("-inf")], dtype=torch.float16)}, str(tmp_path / "h.safetensors"))
    with pytest.raises(WeightsError, match="half"):
        load_tensors(tmp_path / "h.safetensors")
