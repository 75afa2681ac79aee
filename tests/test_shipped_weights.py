"""The shipped weights directories (weights/, the package data `stylemix.weights`): each config builds its
model, every shipped tensor loads strictly into it (names and shapes), the files hash to what
weights/README.md states, and the loaded model runs. The encoder is a random stand-in with the real
preset's layout (no download, no ../shared)."""
from __future__ import annotations

import hashlib
import re

import pytest
import torch

from stylemix.models.io import load_json
from stylemix.models.pretrained import load_model, shipped_weights

SHIPPED = sorted(p.parent.name for p in shipped_weights().glob("*/config.json")
                 if load_json(p).get("kind") == "model")


def test_the_default_model_is_shipped():
    assert "adain-vgg16" in SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_model_loads_strictly_and_runs(name, random_cached_encoder):
    model, meta = load_model(name, log=lambda *_: None)
    own = (shipped_weights() / name / "encoder.safetensors").is_file()  # a distilled model brings its own encoder
    assert meta["encoder"] == (load_json(shipped_weights() / name / "config.json")["config"]["encoder_id"] if own
                               else "vgg16-hed")
    content, style = torch.rand(1, 3, 40, 48), torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        out = model(content, model.style_code(style))
    assert out.shape == (1, 3, 40, 48) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_decoder_hashes_to_the_model_card(name):
    card = (shipped_weights() / "README.md").read_text()
    digest = hashlib.sha256((shipped_weights() / name / "decoder.safetensors").read_bytes()).hexdigest()
    rows = [line for line in card.splitlines() if f"`weights/{name}/`" in line]
    assert rows, f"weights/README.md has no table row for weights/{name}/"
    assert re.findall(r"`([0-9a-f]{64})`", rows[0]) == [digest]


@pytest.mark.parametrize("name", [n for n in SHIPPED if (shipped_weights() / n / "styles.safetensors").is_file()])
def test_a_shipped_models_own_style_codes_fit_it_and_cover_the_bank(name, random_cached_encoder):
    """A model with its own encoder ships its codes for every built-in style name; they fit the model and
    tell the styles apart (two different paintings do not share statistics)."""
    from stylemix.models.io import load_codes
    model, _ = load_model(name, log=lambda *_: None)
    codes = load_codes(shipped_weights() / name / "styles.safetensors")
    bank = [e["name"] for e in load_json(shipped_weights() / "styles" / "index.json")["styles"]]
    assert sorted(codes) == sorted(bank)
    model.check_codes(list(codes.values()))
    a, b = codes[bank[0]], codes[bank[1]]
    assert not torch.allclose(a.mean[model.mix_taps[0]], b.mean[model.mix_taps[0]])
