"""The model contract (models/contract.py): every registered model implements it and declares its
capabilities as data; the Stylizer, grids and the quality benchmark work with any model through it alone
and refuse what a model lacks with a message; colour preservation by histogram does match histograms."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from stylemix.inference import Stylizer
from stylemix.models import functional as Fn
from stylemix.models.contract import Capabilities, StatisticsModel, StyleModel
from stylemix.models.registry import create_model, list_models, model_capabilities, models_with, register_model
from stylemix.models.stytr2 import StyTr2Config, StyTr2Model


def _image(seed: int, h: int = 32, w: int = 40) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, h, w, generator=g)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "stytr2" else n for n in list_models()])
def test_every_registered_model_satisfies_the_contract(name):
    model = create_model(name).eval()
    assert isinstance(model, StyleModel)
    caps = type(model).capabilities
    assert isinstance(caps, Capabilities) and caps == model_capabilities(name)
    assert all(isinstance(getattr(caps, f.name), bool) for f in dataclasses.fields(caps))
    if caps.tiling or caps.modes or caps.style_bank:  # the richer protocol those features use
        assert isinstance(model, StatisticsModel)
    assert isinstance(model.stride, int) and model.stride >= 1
    with torch.no_grad():  # the core calls, at the smallest size: one content, two styles, a batch of cells
        codes = model.style_code(torch.rand(2, 3, 32, 32))
        model.check_codes(codes)
        content = model.encode_content(torch.rand(1, 3, 2 * model.stride, 3 * model.stride))
        one = model.stylize(content, codes, torch.tensor([0.25, 0.75]), 0.5)
        cells = model.stylize(content, codes, torch.tensor([[1.0, 0.25], [0.0, 0.75]]), torch.tensor([1.0, 0.5]))
    assert one.shape == (1, 3, 2 * model.stride, 3 * model.stride) and cells.shape == (2, *one.shape[1:])
    assert 0 <= float(cells.min()) and float(cells.max()) <= 1
    torch.testing.assert_close(cells[1:], one, atol=1e-5, rtol=0)  # a cell equals the same single stylisation


def test_capabilities_of_the_builtin_models():
    assert model_capabilities("adain") == Capabilities(style_bank=True, tiling=True, modes=True, encoder_choice=True)
    assert model_capabilities("stytr2") == Capabilities()
    assert model_capabilities("adain-fast") == Capabilities(style_bank=True, tiling=True)
    assert models_with("tiling") == ["adain", "adain-fast"]


def test_registering_needs_a_model_class_with_capabilities():
    with pytest.raises(TypeError, match="capabilities"):
        register_model("not-a-model", dict)(lambda config: None)


# --- a model offering the core contract only ---------------------------------------------------------

class _Mean:
    """A style code: the style image's mean colour (1, 3, 1, 1)."""

    def __init__(self, mean):
        self.mean = mean

    def to(self, device):
        return _Mean(self.mean.to(device))

    def cpu_copy(self):
        return _Mean(self.mean.detach().float().cpu().clone())


class _MeanShift(torch.nn.Module):
    """Half content, half the style's mean colour; no capabilities."""

    capabilities = Capabilities()
    stride = 1

    def style_code(self, image):
        self.encoded = getattr(self, "encoded", 0) + 1
        return [_Mean(image.mean((2, 3), keepdim=True)) for image in image.split(1)]

    def check_codes(self, codes):
        for i, c in enumerate(codes):
            if not isinstance(c, _Mean):
                raise ValueError(f"style {i + 1} is a {type(c).__name__}, not a mean colour")

    def encode_content(self, images):
        return images

    def stylize(self, content, codes, weights, alpha=1.0):
        return 0.5 * content + 0.5 * codes[0].mean


def test_a_model_with_only_the_core_contract_stylizes_and_refuses_the_rest_clearly():
    model = _MeanShift()
    assert isinstance(model, StyleModel) and not isinstance(model, StatisticsModel)
    s = Stylizer(model, dtype="fp32")
    content, style = _image(0, 20, 28), _image(1, 16, 16)
    out = s.stylize(content, style, return_tensor=True, max_size=None)
    torch.testing.assert_close(out, 0.5 * content + 0.5 * style.mean((2, 3), keepdim=True))
    cells, _ = s.alpha_sweep(content, style, steps=2, max_size=None)  # grids need only the contract
    torch.testing.assert_close(cells[1:], out)  # alpha 1 (this model ignores alpha)
    refusals = [(lambda: s.stylize_tiled(content, style), "tiled stylisation"),
                (lambda: s.stylize(content, style, modes=2), "multi-modal transfer"),
                (lambda: s.stylize(content, "ink-wash"), "saved or built-in styles")]
    for call, what in refusals:
        with pytest.raises(ValueError, match=f"_MeanShift does not support {what} .*capabilities.*models that do: adain"):
            call()


def test_the_stylizer_refuses_an_object_that_is_not_a_style_model():
    with pytest.raises(TypeError, match="not a style model.*models/contract.py"):
        Stylizer(torch.nn.Conv2d(3, 3, 1))


def test_the_quality_benchmark_makes_outputs_through_the_contract():
    from benchmarks.quality import EvalSet, model_maker, quantize

    g = torch.Generator().manual_seed(3)
    contents = [(f"c{k}", quantize(torch.rand(1, 3, 40, 56, generator=g))) for k in range(2)]
    styles = [(f"s{k}", quantize(torch.rand(1, 3, 48, 40, generator=g) * (k + 1) / 2)) for k in range(2)]
    model = _MeanShift()
    make = model_maker(model, EvalSet(contents, styles, [], []), torch.device("cpu"))
    got = torch.cat([make(0, [0, 1]), make(1, [1])])
    assert model.encoded == 2  # each style encoded once, reused for the second content
    want = [quantize(0.5 * contents[i][1] + 0.5 * styles[j][1].mean((2, 3), keepdim=True))
            for i, j in ((0, 0), (0, 1), (1, 1))]
    assert (got - torch.cat(want)).abs().max() <= 1 / 255 + 1e-6  # equal up to one 8-bit level


# --- StyTr²: what it lacks is refused, what it has works ---------------------------------------------

def _tiny_stytr2() -> StyTr2Model:
    torch.manual_seed(0)
    return StyTr2Model(StyTr2Config(width=32, heads=2, encoder_depth=1, decoder_depth=1, mlp_ratio=1.0)).eval()


def test_stytr2_refuses_an_encoder_choice_saved_codes_and_modes(tmp_path):
    from stylemix.models.io import save_model_dir
    from stylemix.models.pretrained import load_model

    model = _tiny_stytr2()
    out = save_model_dir(model, "stytr2", model.config, tmp_path / "m", encoder="vgg16-hed", with_encoder=True)
    load_model(str(out), log=lambda *_: None)  # loads as it is
    with pytest.raises(ValueError, match=r"'stytr2' model .* does not support choosing an encoder .*models that do: adain"):
        load_model(str(out), encoder="vgg16-hed", log=lambda *_: None)
    s = Stylizer(model, dtype="fp32")
    with pytest.raises(ValueError, match="style 1 is a object; this StyTr² model needs style images"):
        s.model.check_codes([object()])
    with pytest.raises(ValueError, match="StyTr2Model does not support saved or built-in styles"):
        s.stylize(_image(0), str(out / "decoder.safetensors"))  # any .safetensors file reads as a saved code
    with pytest.raises(ValueError, match="StyTr2Model does not support multi-modal transfer"):
        s.stylize(_image(0), _image(1), modes=2)


@pytest.mark.slow
def test_stytr2_grids_batch_cells_exactly_like_single_stylisations():
    s = Stylizer(_tiny_stytr2(), dtype="fp32")
    content, codes = _image(0, 24, 40), s.encode_styles([_image(1), _image(2)])
    one, _ = s.sweep(content, codes, steps=3, alpha=[1.0, 0.5, 1.0], max_size=None, batch_size=1)
    many, _ = s.sweep(content, codes, steps=3, alpha=[1.0, 0.5, 1.0], max_size=None, batch_size=3)
    torch.testing.assert_close(one, many, atol=1e-5, rtol=0)
    middle = s.stylize(content, codes, weights=[0.5, 0.5], alpha=0.5, return_tensor=True, max_size=None)
    torch.testing.assert_close(one[1:2], middle, atol=1e-5, rtol=0)


# --- options accepted but unused are refused -----------------------------------------------------------

def test_smoothness_without_modes_is_refused(make_calibrated_model):
    s = Stylizer(make_calibrated_model(), dtype="fp32")
    with pytest.raises(ValueError, match="smoothness only applies with modes > 1"):
        s.stylize(_image(0), _image(1), smoothness=0.5)


# --- colour preservation -------------------------------------------------------------------------------

def test_histogram_matching_gives_the_output_the_content_histograms():
    g = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 40, 50, generator=g) ** 3  # skewed towards dark
    content = (torch.rand(2, 3, 30, 20, generator=g) * 0.5 + 0.3).round(decimals=2)  # another size, many ties
    out = Fn.match_histogram(image, content)
    q = torch.linspace(0.01, 0.99, 33)
    got, want = out.flatten(2).quantile(q, dim=-1), content.flatten(2).quantile(q, dim=-1)
    assert (got - want).abs().max() < 0.01, float((got - want).abs().max())
    assert (image.flatten(2).quantile(q, dim=-1) - want).abs().max() > 0.3  # it did have to move
    order = image[0, 0].flatten().argsort()  # monotone: the image's tonal order is kept
    assert bool((out[0, 0].flatten()[order].diff() >= -1e-6).all())
    assert torch.equal(Fn.match_histogram(content, content), content)


def test_preserve_color_histogram_in_the_stylizer_matches_the_content(make_calibrated_model):
    s = Stylizer(make_calibrated_model(), dtype="fp32")
    content = _image(3, 48, 64) * 0.4 + 0.5
    plain = s.stylize(content, _image(4), return_tensor=True)
    hist = s.stylize(content, _image(4), preserve_color="histogram", return_tensor=True)
    q = torch.linspace(0.02, 0.98, 25)
    err = lambda x: float((x.flatten(2).quantile(q, dim=-1) - content.flatten(2).quantile(q, dim=-1)).abs().max())  # noqa: E731
    assert err(hist) < 0.02 < err(plain)


def test_the_cli_refuses_smoothness_without_modes_before_loading_a_model(tmp_path, capsys):
    from stylemix.inference.cli import main
    from stylemix.inference.images import save_image

    save_image(_image(0), tmp_path / "c.png")
    save_image(_image(1), tmp_path / "s.png")
    rc = main(["stylize", str(tmp_path / "c.png"), "-s", str(tmp_path / "s.png"), "--smoothness", "0.5",
               "--model", str(tmp_path / "no-model-here"), "-o", str(tmp_path / "o.png")])
    assert rc == 2 and "--smoothness needs --modes 2 or more" in capsys.readouterr().err
