"""Style codes on disk, the built-in bank (weights/styles) and the user bank, and `stylemix styles`."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from stylemix.inference import styles as S
from stylemix.inference.cli import main
from stylemix.models.io import WeightsError, save_json, save_tensors, to_dict
from stylemix.models.mixing import StyleCode

CHANNELS = {"relu1_1": 64, "relu2_1": 128, "relu3_1": 256, "relu4_1": 512}


def _code(seed: int, channels: dict[str, int] | None = None) -> StyleCode:
    g = torch.Generator().manual_seed(seed)
    ch = channels or {"relu1_1": 4, "relu2_1": 6}
    return StyleCode({t: torch.randn(c, generator=g) for t, c in ch.items()},
                     {t: torch.rand(c, generator=g) + 0.1 for t, c in ch.items()})


# --- one file -----------------------------------------------------------------------------------------

def test_save_load_roundtrip_is_bit_identical(tmp_path):
    code = _code(0, {"relu4_1": 5, "relu1_1": 3, "relu2_1": 4})  # non-alphabetical taps keep their order
    path = S.save_style(code, tmp_path / "a.safetensors", {"name": "a", "encoder": "vgg16-hed", "source": "x.jpg"})
    back = S.load_style(path)
    assert back.taps == code.taps
    for t in code.taps:
        assert torch.equal(back.mean[t], code.mean[t]) and torch.equal(back.std[t], code.std[t])
    meta = S.read_metadata(path)
    assert meta["encoder"] == "vgg16-hed" and meta["source"] == "x.jpg" and meta["taps"] == "relu4_1,relu1_1,relu2_1"


def test_load_rejects_files_that_are_not_codes(tmp_path):
    save_tensors(tmp_path / "w.safetensors", {"conv.weight": torch.ones(2)})
    with pytest.raises(WeightsError, match="not a style code"):
        S.load_style(tmp_path / "w.safetensors")
    save_tensors(tmp_path / "neg.safetensors", {"mean.relu1_1": torch.zeros(3), "std.relu1_1": -torch.ones(3)})
    with pytest.raises(WeightsError, match="non-positive std"):
        S.load_style(tmp_path / "neg.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not safetensors at all")
    with pytest.raises(WeightsError, match="junk.safetensors"):
        S.load_style(tmp_path / "junk.safetensors")
    with pytest.raises(FileNotFoundError):
        S.load_style(tmp_path / "missing.safetensors")


# --- the built-in bank (files shipped in the repository) ----------------------------------------------

def test_builtin_bank_has_30_named_styles_matching_the_index():
    names = list(S.builtin_styles())
    assert len(names) >= 30
    index = S.builtin_index()
    assert sorted(e["name"] for e in index) == sorted(names)
    movements = {e["movement"] for e in index}
    assert len(movements) == 7
    for e in index:
        path = S.builtin_dir() / e["file"]
        assert S.sha256(path) == e["sha256"], f"{path} changed since index.json was written"
        assert not e["source"].lower().endswith(".safetensors") and e["source"].startswith("train/style/")
        code = S.load_style(path)
        assert {t: code.mean[t].numel() for t in code.taps} == CHANNELS
        assert S.read_metadata(path)["encoder"] == "vgg16-hed"
    # image files never live in the bank
    assert not [p for p in S.builtin_dir().iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp")]


def test_builtin_codes_differ_from_each_other():
    codes = [S.resolve_style(n) for n in S.list_styles()[:10]]
    vecs = torch.stack([torch.cat([c.mean["relu4_1"], c.std["relu4_1"]]) for c in codes])
    dist = torch.cdist(vecs, vecs) + torch.eye(len(codes)) * 1e9
    assert float(dist.min()) > 1e-3


def test_unknown_name_suggests_the_closest():
    name = S.list_styles()[0]
    typo = name[:-2] + ("9" if name[-1] != "9" else "8") + name[-1]  # e.g. impressionism-01 -> impressionism-91
    with pytest.raises(ValueError, match=rf"unknown style .*did you mean .*{name[:-3]}"):
        S.resolve_style(typo)
    with pytest.raises(ValueError, match="unknown style 'zzzzzz'"):
        S.resolve_style("zzzzzz")


def test_encoder_mismatch_is_refused():
    name = S.list_styles()[0]
    with pytest.raises(ValueError, match="computed with encoder 'vgg16-hed'"):
        S.resolve_style(name, encoder="vgg19-adain")
    assert S.resolve_style(name, encoder="vgg16-hed").taps == tuple(CHANNELS)


# --- the user bank --------------------------------------------------------------------------------------

def test_add_averages_and_remove(stylemix_cache):
    a, b = _code(1), _code(2)
    path = S.add_style("my-ink", [a, b], {"source": "a.jpg, b.jpg"})
    assert path.parent == stylemix_cache / "styles"
    got = S.resolve_style("my-ink")
    for t in a.taps:
        torch.testing.assert_close(got.mean[t], (a.mean[t] + b.mean[t]) / 2)
        torch.testing.assert_close(got.std[t], (a.std[t] + b.std[t]) / 2)
    assert "my-ink" in S.list_styles() and S.style_info("my-ink")["bank"] == "user"
    with pytest.raises(ValueError, match="already exists"):
        S.add_style("my-ink", [a])
    S.remove_style("my-ink")
    assert "my-ink" not in S.list_styles()
    with pytest.raises(ValueError, match="unknown style"):
        S.remove_style("my-ink")


def test_names_are_checked_and_builtins_protected():
    builtin = S.list_styles()[0]
    for bad in ("", "Upper", "a:b", "x/y", "a.b", "-lead", "x" * 65, "ink\n", "ink\r", "in\tk", "..", "a\\b", "ink\x00"):
        with pytest.raises(ValueError, match="invalid style name"):
            S.add_style(bad, [_code(0)])
    with pytest.raises(ValueError, match="built-in"):
        S.add_style(builtin, [_code(0)])
    with pytest.raises(ValueError, match="built-in style and cannot be removed"):
        S.remove_style(builtin)


# --- CLI --------------------------------------------------------------------------------------------------

def _encoder_dir(tmp_path, tiny_model):
    """A (random) encoder directory like the cached vgg16-hed one."""
    d = tmp_path / "enc"
    save_tensors(d / "encoder.safetensors", tiny_model.encoder.state_dict())
    save_json(d / "config.json", {"kind": "encoder", "encoder": to_dict(tiny_model.config.encoder)})
    return d


def test_cli_add_list_remove(tmp_path, tiny_model, capsys):
    imgs = []
    for i in range(2):
        arr = (np.random.default_rng(i).random((40, 48, 3)) * 255).astype(np.uint8)
        imgs.append(tmp_path / f"s{i}.png")
        Image.fromarray(arr).save(imgs[-1])
    enc = _encoder_dir(tmp_path, tiny_model)
    assert main(["styles", "add", "my-two", *map(str, imgs), "--encoder", str(enc)]) == 0
    code = S.resolve_style("my-two")
    with torch.no_grad():
        want = StyleCode.average([tiny_model.style_code(torch.from_numpy(np.asarray(Image.open(p), dtype=np.float32)
                                                                         / 255).permute(2, 0, 1)[None])[0]
                                  for p in imgs])
    for t in code.taps:
        torch.testing.assert_close(code.mean[t], want.mean[t], atol=1e-4, rtol=1e-4)
    assert S.read_metadata(S.style_path("my-two"))["source"] == "s0.png, s1.png"
    capsys.readouterr()
    assert main(["styles"]) == 0
    out = capsys.readouterr().out
    assert "my-two" in out and "user" in out and S.list_styles()[0] in out
    assert main(["styles", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {"name": "my-two", "bank": "user"}.items() <= rows[-1].items()
    assert main(["styles", "add", "my-two", str(imgs[0]), "--encoder", str(enc)]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["styles", "remove", "my-two"]) == 0
    assert main(["styles", "remove", "my-two"]) == 2
    assert "unknown style" in capsys.readouterr().err


def test_cli_add_bad_inputs(tmp_path, capsys):
    assert main(["styles", "add", "Bad:Name", "x.jpg"]) == 2
    assert "invalid style name" in capsys.readouterr().err
    assert main(["styles", "add", "ink\n", "x.jpg"]) == 2  # '$' in a regex would let the newline through
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "invalid style name 'ink\\n'" in err
    assert main(["styles", "add", "ok-name", str(tmp_path / "missing.jpg")]) == 2
    assert "missing.jpg" in capsys.readouterr().err


def test_cli_list_skips_a_corrupt_user_style_with_a_warning(stylemix_cache, capsys):
    S.add_style("good-one", [_code(0)])
    S.add_style("zz-last", [_code(1)])
    (S.user_dir() / "broken.safetensors").write_bytes(b"\x00" * 40)  # a torn download, a disk error
    save_tensors(S.user_dir() / "nan-style.safetensors", {"mean.relu4_1": torch.full((512,), float("nan")),
                                                          "std.relu4_1": torch.ones(512)}, {"taps": "relu4_1"})
    for argv in (["styles"], ["styles", "--json"]):
        assert main(argv) == 0
        out, err = capsys.readouterr()
        assert "good-one" in out and "zz-last" in out and "broken" not in out and "nan-style" not in out
        warnings = err.strip().splitlines()
        assert len(warnings) == 2 and all(w.startswith("stylemix styles: warning: skipped style") for w in warnings)
        assert "'broken'" in err and "'nan-style'" in err and "NaN" in err
    assert "2 user styles" in (main(["styles"]), capsys.readouterr().out)[1]
