"""A model from outside the package, added as a plug-in would add one: its class and config in this file and one
`register_model` call (its registry entry: the message for missing weights, its training recipe). With nothing
else edited it runs through `Stylizer`, the grids, the `stylemix` command, weights save/load and `stylemix train`.

The model ("tint"): a 3x3 conv encoder at half resolution; a style's code is the mean of its features; stylising
moves the content features' mean to the blended style means (by alpha); a 1x1 conv decodes to RGB at full size
through a sigmoid. So before the sigmoid the output is affine in the blended code: the tests can check blends
exactly. Letters: k - styles, n - outputs, b - batch, c - channels, h/w - height/width.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from stylemix.inference import grid as G
from stylemix.inference.api import Stylizer
from stylemix.inference.cli import main as stylemix
from stylemix.inference.images import load_image
from stylemix.models import pretrained
from stylemix.models.contract import Capabilities
from stylemix.models.io import WeightsError, load_tensors, save_model_dir
from stylemix.models.registry import create_model, list_models, model_recipes, register_model, unregister_model
from stylemix.training import cli as train_cli
from stylemix.training.checkpoint import read_metadata
from stylemix.training.data import DataConfig
from stylemix.training.recipe import Recipe, build_config
from stylemix.training.trainer import LoopConfig

NAME = "tint"
HELP = "no {name} weights are installed (looked for {where}); write them with models.io.save_model_dir"


@dataclass
class TintConfig:
    channels: int = 8  # feature channels


@dataclass
class TintCode:
    """A style as this model needs it: the mean of its features, (c,)."""

    mean: torch.Tensor

    def to(self, device) -> "TintCode":
        return TintCode(self.mean.to(device))

    def cpu_copy(self) -> "TintCode":
        return TintCode(self.mean.detach().float().cpu().clone())


class TintModel(nn.Module):
    capabilities = Capabilities()  # the core contract only
    stride = 2

    def __init__(self, config: TintConfig):
        super().__init__()
        self.config = config
        self.encoder = nn.Sequential(nn.Conv2d(3, config.channels, 3, padding=1), nn.AvgPool2d(2))
        self.decoder = nn.Conv2d(config.channels, 3, 1)

    def encode_content(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(images)  # (b, c, h/2, w/2)

    def style_code(self, images: torch.Tensor) -> list[TintCode]:
        return [TintCode(m) for m in self.encoder(images).mean((2, 3))]

    def check_codes(self, codes) -> None:
        for i, code in enumerate(codes):
            if not isinstance(code, TintCode) or code.mean.shape != (self.config.channels,):
                raise ValueError(f"style {i + 1} is not a {self.config.channels}-channel TintCode")

    def stylize(self, content: torch.Tensor, codes, weights: torch.Tensor, alpha=1.0) -> torch.Tensor:
        means = torch.stack([c.mean.to(content) for c in codes])  # (k, c)
        w = weights.to(content)
        if w.dim() == 1:  # one blend
            target = torch.einsum("k,kc->c", w, means)[None, :, None, None]
        elif w.dim() == 2:  # one blend per output: (k, n)
            target = torch.einsum("kn,kc->nc", w, means)[:, :, None, None]
        else:  # per pixel: (k, b, 1, h, w)
            k, b, size = w.shape[0], w.shape[1], content.shape[-2:]
            w = F.interpolate(w.flatten(0, 1), size=size, mode="bilinear").view(k, b, 1, *size)
            target = torch.einsum("kbxhw,kc->bchw", w, means)
        a = torch.as_tensor(alpha, dtype=content.dtype, device=content.device).view(-1, 1, 1, 1)
        feats = content + a * (target - content.mean((2, 3), keepdim=True))
        return torch.sigmoid(F.interpolate(self.decoder(feats), scale_factor=2, mode="nearest"))


# --- its training recipe ---------------------------------------------------------------------------------

@dataclass
class TintTrainConfig:
    model: TintConfig = field(default_factory=TintConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loop: LoopConfig = field(default_factory=lambda: LoopConfig(steps=2, lr=1e-2, precision="fp32",
                                                                channels_last=False, checkpoint_every=1,
                                                                sample_every=0, log_every=1, tensorboard=False))


class TintTask:
    """Random images (a function of the step); the output's mean colour should be the style's."""

    def __init__(self, model: TintModel):
        self.model = model

    def loss(self, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        content, style = torch.rand(2, 1, 3, 16, 16, generator=torch.Generator().manual_seed(step))
        out = self.model.stylize(self.model.encode_content(content), self.model.style_code(style), torch.ones(1))
        return F.l1_loss(out.mean((2, 3)), style.mean((2, 3))), {}


def _export(cfg: TintTrainConfig, run_dir: Path, out_dir: Path) -> Path:
    model = TintModel(cfg.model)
    ckpt = run_dir / "checkpoint.safetensors"
    model.load_state_dict({k[len("model."):]: v for k, v in load_tensors(ckpt).items() if k.startswith("model.")})
    return save_model_dir(model, NAME, cfg.model, out_dir, NAME, {"steps": read_metadata(ckpt)["step"]},
                          with_encoder=True)


RECIPE = Recipe(f"stylemix train --model {NAME}", TintTrainConfig,
                lambda config_file, overrides: build_config(config_file, overrides, TintTrainConfig),
                lambda cfg, log=print: TintModel(cfg.model), lambda cfg, model, device, run: TintTask(model), _export)


# --- fixtures ---------------------------------------------------------------------------------------------

@pytest.fixture
def registered():
    """The tint model in the registry for one test, with its missing-weights message and its recipe."""
    register_model(NAME, TintConfig, weights_help=HELP, recipes={NAME: f"{__name__}:RECIPE"})(TintModel)
    yield NAME
    unregister_model(NAME)


@pytest.fixture
def images(tmp_path: Path) -> dict[str, Path]:
    """A 40 x 48 content photo and four 32 x 32 style images (smooth random colours), as PNG files."""
    rng = np.random.default_rng(0)
    out = {}
    for name, (h, w) in {"content": (40, 48), "a": (32, 32), "b": (32, 32), "c": (32, 32), "d": (32, 32)}.items():
        low = rng.random((4, 4, 3)) * rng.random()  # each style its own brightness
        out[name] = tmp_path / f"{name}.png"
        Image.fromarray((low * 255).astype(np.uint8)).resize((w, h), Image.BILINEAR).save(out[name])
    return out


@pytest.fixture
def stylizer(registered) -> Stylizer:
    torch.manual_seed(0)
    return Stylizer(create_model(NAME), dtype="fp32")


def _styles(images, keys="ab") -> list[Path]:
    return [images[k] for k in keys]


# --- the registry ---------------------------------------------------------------------------------------

def test_registering_and_unregistering_leaves_the_registry_as_it_was():
    before = list_models()
    register_model(NAME, TintConfig)(TintModel)
    try:
        assert list_models() == sorted([*before, NAME]) and isinstance(create_model(NAME), TintModel)
        assert model_recipes(NAME) == {} and NAME not in train_cli.recipe_names()
    finally:
        unregister_model(NAME)
    assert list_models() == before
    with pytest.raises(ValueError, match="unknown model 'tint'"):
        create_model(NAME)
    with pytest.raises(ValueError, match="'adain' is a built-in model"):
        unregister_model("adain")
    with pytest.raises(ValueError, match="recipes name a 'module:ATTRIBUTE' each"):
        register_model(NAME, TintConfig, recipes={NAME: "no-attribute"})(TintModel)
    assert NAME not in list_models()


def test_missing_weights_say_what_the_registry_entry_says(registered, monkeypatch, tmp_path):
    monkeypatch.setattr(pretrained, "shipped_weights", lambda: tmp_path / "weights")
    for asked in (NAME, f"{NAME}-v2"):  # the model's name, or its name and a variant
        with pytest.raises(WeightsError) as e:
            Stylizer.from_pretrained(asked)
        assert str(e.value) == HELP.format(name=asked, where=tmp_path / "weights" / asked)
    with pytest.raises(WeightsError, match="no weights directory 'tinted'"):  # not its name: the general message
        Stylizer.from_pretrained("tinted")


# --- Stylizer ---------------------------------------------------------------------------------------------

def test_the_stylizer_blends_two_weighted_styles(stylizer, images):
    content, (a, b) = images["content"], _styles(images)
    blend = stylizer.stylize(content, [a, b], weights=[0.7, 0.3], return_tensor=True)
    assert blend.shape == (1, 3, 40, 48) and torch.isfinite(blend).all() and 0 < blend.min() and blend.max() < 1
    only_a = stylizer.stylize(content, [a], return_tensor=True)
    one_zero = stylizer.stylize(content, [a, b], weights=[1, 0], return_tensor=True)
    only_b = stylizer.stylize(content, [a, b], weights=[0, 1], return_tensor=True)
    torch.testing.assert_close(one_zero, only_a, rtol=0, atol=1e-6)  # weight 0 is no style at all
    assert (blend - only_a).abs().max() > 1e-3 and (blend - only_b).abs().max() > 1e-3  # the weights change it
    # before the sigmoid the output is affine in the blended code: the blend is the 0.7 / 0.3 mix of the two
    torch.testing.assert_close(torch.logit(blend), 0.7 * torch.logit(only_a) + 0.3 * torch.logit(only_b),
                               rtol=0, atol=1e-4)
    half = stylizer.stylize(content, [a, b], weights=[0.7, 0.3], alpha=0.5, return_tensor=True)
    assert (half - blend).abs().max() > 1e-3
    assert torch.equal(stylizer.stylize(content, [a, b], alpha=0.0, return_tensor=True), load_image(content))


def test_masks_reach_the_model_as_spatial_weights(stylizer, images, tmp_path):
    white, black = tmp_path / "white.png", tmp_path / "black.png"
    Image.new("L", (48, 40), 255).save(white)
    Image.new("L", (48, 40), 0).save(black)
    content, (a, b) = images["content"], _styles(images)
    masked = stylizer.stylize(content, [a, b], masks=[white, black], return_tensor=True)
    torch.testing.assert_close(masked, stylizer.stylize(content, [a], return_tensor=True), rtol=0, atol=1e-6)


# --- grids --------------------------------------------------------------------------------------------------

def test_a_grid_of_four_corner_styles_holds_each_cells_blend(stylizer, images):
    content, styles = images["content"], _styles(images, "abcd")
    cells, picture = stylizer.grid(content, styles, steps=3)
    assert cells.shape == (9, 3, 40, 48) and isinstance(picture, Image.Image)
    assert picture.size[0] >= 3 * 48 and picture.size[1] >= 3 * 40
    for i, w in enumerate(G.bilinear_grid(3).tolist()):  # row-major; corners A, B, C, D
        want = stylizer.stylize(content, styles, weights=w, return_tensor=True)[0]
        torch.testing.assert_close(cells[i], want, rtol=0, atol=1e-5)
    assert (cells[0] - cells[8]).abs().max() > 1e-3
    sweep, _ = stylizer.sweep(content, styles[:2], steps=3)
    torch.testing.assert_close(sweep[1], stylizer.stylize(content, styles[:2], return_tensor=True)[0], rtol=0, atol=1e-5)


# --- the stylemix command -----------------------------------------------------------------------------------

def test_the_stylemix_command_writes_what_the_api_paints(stylizer, images, tmp_path, capsys):
    model_dir = save_model_dir(stylizer.model, NAME, stylizer.model.config, tmp_path / "tint", NAME,
                               with_encoder=True)
    out = tmp_path / "out.png"
    a, b = _styles(images)
    assert stylemix(["stylize", images["content"], "-s", f"{a}:0.7", "-s", f"{b}:0.3", "--model", model_dir,
                     "-o", out]) == 0
    assert f"wrote {out} (48x40" in capsys.readouterr().out
    want = Stylizer.from_pretrained(model_dir, dtype="fp32").stylize(images["content"], [a, b], weights=[0.7, 0.3])
    got = np.asarray(Image.open(out).convert("RGB"))
    assert got.shape == (40, 48, 3) and np.array_equal(got, np.asarray(want))


# --- weights: save, load ------------------------------------------------------------------------------------

def test_saved_weights_load_back_bit_identical(stylizer, images, tmp_path):
    model_dir = save_model_dir(stylizer.model, NAME, stylizer.model.config, tmp_path / "tint", NAME,
                               with_encoder=True)
    loaded = Stylizer.from_pretrained(model_dir, dtype="fp32")
    assert type(loaded.model) is TintModel and loaded.model.config == stylizer.model.config
    a, b = stylizer.model.state_dict(), loaded.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    content, styles = images["content"], _styles(images)
    before = stylizer.stylize(content, styles, weights=[0.7, 0.3], return_tensor=True)
    assert torch.equal(loaded.stylize(content, styles, weights=[0.7, 0.3], return_tensor=True), before)


# --- training: the recipe its registry entry names ----------------------------------------------------------

def test_stylemix_train_finds_the_recipe_in_the_registry_entry(registered, tmp_path):
    assert NAME in train_cli.recipe_names() and train_cli.recipe_for(NAME) is RECIPE
    assert train_cli.recipe_model(NAME) == NAME
    for folder in ("content", "style"):  # the recipe's task draws its own images, but a run names its data
        (tmp_path / folder).mkdir()
    run, out = tmp_path / "run", tmp_path / "exported"
    assert stylemix(["train", "--model", NAME, "--out", run, "--set", f"data.content_dir={tmp_path / 'content'}",
                     "--set", f"data.style_dir={tmp_path / 'style'}"]) == 0
    ckpt = run / "checkpoint.safetensors"
    meta = read_metadata(ckpt)
    assert (meta["recipe"], meta["model"], meta["step"]) == (NAME, NAME, "2")
    assert train_cli.checkpoint_recipe(ckpt)[0] is RECIPE
    assert stylemix(["train", "--out", run, "--export", out]) == 0  # the checkpoint names its recipe
    trained = Stylizer.from_pretrained(out, dtype="fp32").model.state_dict()
    saved = {k[len("model."):]: v for k, v in load_tensors(ckpt).items() if k.startswith("model.")}
    torch.manual_seed(0)  # the run's seed (data.seed): the weights it started from
    initial = TintModel(TintConfig()).state_dict()
    assert trained.keys() == saved.keys() == initial.keys()
    assert all(torch.equal(trained[k], saved[k]) for k in saved)
    assert any(not torch.equal(trained[k], initial[k]) for k in initial)  # two steps changed the weights
