"""The shipped weights directories (weights/, the package data `stylemix.weights`): each config builds its
model, every shipped tensor loads strictly into it (names and shapes), the loaded model runs, the index
(weights/README.md) links every model's card, and each card (weights/<name>/README.md) states its files' sha256
and its training steps as they are. The encoder is a random stand-in with the real preset's layout (no
download, no ../shared)."""
from __future__ import annotations

import hashlib
import re

import pytest
import torch

from stylemix.models.io import load_json
from stylemix.models.pretrained import DEFAULT_MODEL, load_model, shipped_weights

SHIPPED = sorted(p.parent.name for p in shipped_weights().glob("*/config.json")
                 if load_json(p).get("kind") == "model")


def test_the_default_model_is_shipped_and_the_index_says_so():
    assert DEFAULT_MODEL in SHIPPED
    index = (shipped_weights() / "README.md").read_text()
    rows = [line for line in index.splitlines() if line.startswith(f"| `{DEFAULT_MODEL}`")]
    assert len(rows) == 1 and "default" in rows[0], f"weights/README.md must mark `{DEFAULT_MODEL}` as the default"


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
def test_the_index_has_a_row_linking_each_shipped_models_card(name):
    index = (shipped_weights() / "README.md").read_text()
    rows = [line for line in index.splitlines() if line.startswith(f"| `{name}`")]
    assert len(rows) == 1, f"weights/README.md needs one table row for `{name}`, found {len(rows)}"
    assert f"]({name}/README.md)" in rows[0], f"the index row of `{name}` must link {name}/README.md"
    assert (shipped_weights() / name / "README.md").is_file(), f"weights/{name}/README.md (its card) is missing"


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_file_hashes_to_its_card(name):
    card = (shipped_weights() / name / "README.md").read_text()
    for f in sorted((shipped_weights() / name).glob("*.safetensors")):
        rows = [line for line in card.splitlines() if line.startswith(f"| `{f.name}`")]
        assert len(rows) == 1, f"weights/{name}/README.md needs one table row for `{f.name}`, found {len(rows)}"
        digest = hashlib.sha256(f.read_bytes()).hexdigest()
        assert re.findall(r"`([0-9a-f]{64})`", rows[0]) == [digest], f"{name}/{f.name} does not hash to its card"


@pytest.mark.parametrize("name", SHIPPED)
def test_a_card_states_the_training_steps_in_its_config(name):
    """The card's training figures belong to the weights beside it: `steps` in config.json (the cumulative
    total a run exports) appears in the card, written as 5,104."""
    steps = int(load_json(shipped_weights() / name / "config.json")["steps"])
    card = (shipped_weights() / name / "README.md").read_text()
    assert f"{steps:,} steps" in card, f"weights/{name}/README.md does not state its {steps:,} training steps"


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
