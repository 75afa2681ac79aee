"""Gatys optimisation (inference/optimize.py) and `stylemix optimize`: the loss goes down, style weight 0
keeps the content, blend weights (1, 0) give the single style's Gram targets exactly, the pyramid ends
at the requested size, seeds are deterministic, and bad input fails with one clear line.

Tiny images and a randomly initialised VGG16 (He init so deep taps stay informative); a few steps each."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from stylemix.inference.cli import main
from stylemix.inference.optimize import STYLE_LAYERS, optimize, pyramid_sizes, style_targets
from stylemix.models import functional as Fn
from stylemix.models.io import save_json, save_tensors, to_dict
from stylemix.models.vgg import EncoderConfig, VGGEncoder

H, W = 32, 48  # non-square content


def _random_encoder(seed: int = 0) -> VGGEncoder:
    torch.manual_seed(seed)
    enc = VGGEncoder(EncoderConfig(name="random"), STYLE_LAYERS).eval()
    with torch.no_grad():
        for m in enc.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
    return enc


@pytest.fixture(scope="module")
def encoder() -> VGGEncoder:
    return _random_encoder()


def _smooth(seed: int, h: int, w: int) -> torch.Tensor:
    """A smooth random colour image (1, 3, h, w) in [0, 1] (upsampled noise: has structure at several scales)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, 3, max(2, h // 8), max(2, w // 8), generator=g)
    img = nn.functional.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)
    return (0.7 * img + 0.3 * torch.rand(1, 3, h, w, generator=g)).clamp(0, 1)


@pytest.fixture(scope="module")
def images() -> dict[str, torch.Tensor]:
    return {"content": _smooth(0, H, W), "a": _smooth(1, 32, 32), "b": _smooth(2, 24, 40)}


def _run(images, encoder, **kw):
    kw.setdefault("steps", 5)
    kw.setdefault("max_size", None)
    kw.setdefault("progress", False)
    return optimize(images["content"], [images["a"]], encoder=encoder, **kw)


# --- the optimisation --------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("opt,steps", [("lbfgs", 15), ("adam", 30)])
def test_loss_decreases(images, encoder, opt, steps):
    r = _run(images, encoder, optimizer=opt, steps=steps)
    first, last = r.history[0], r.history[-1]
    assert len(r.history) == steps
    assert last["total"] < 0.7 * first["total"], (first, last)
    assert last["style"] < first["style"]
    assert r.tensor.shape == (1, 3, H, W) and 0 <= r.tensor.min() and r.tensor.max() <= 1
    assert torch.isfinite(r.tensor).all()


@pytest.mark.parametrize("opt", ["lbfgs", "adam"])
def test_style_weight_zero_keeps_content(images, encoder, opt):
    # Content init, no style and no TV term: the gradient is exactly zero, so the image must not move.
    r = _run(images, encoder, optimizer=opt, style_weight=0.0, tv_weight=0.0, steps=5)
    diff = (r.tensor - images["content"]).abs().max().item()
    assert diff <= 1e-6, diff
    assert r.history[-1]["content"] == 0.0


def test_blend_one_zero_targets_equal_single_style(images, encoder):
    single = style_targets(encoder, [images["a"]], Fn.validate_weights(None, 1), STYLE_LAYERS)
    blend = style_targets(encoder, [images["a"], images["b"]], Fn.validate_weights([1, 0], 2), STYLE_LAYERS)
    other = style_targets(encoder, [images["b"]], Fn.validate_weights(None, 1), STYLE_LAYERS)
    for tap in STYLE_LAYERS:
        assert torch.equal(single[tap], blend[tap]), tap
        assert not torch.equal(single[tap], other[tap]), tap  # the second style does matter at other weights
    half = style_targets(encoder, [images["a"], images["b"]], Fn.validate_weights([1, 1], 2), STYLE_LAYERS)
    for tap in STYLE_LAYERS:
        assert torch.allclose(half[tap], (single[tap] + other[tap]) / 2, rtol=1e-5, atol=1e-7), tap


def test_blend_one_zero_whole_run_equals_single_style(images, encoder):
    one = _run(images, encoder, steps=3)
    blend = optimize(images["content"], [images["a"], images["b"]], [1.0, 0.0], encoder=encoder, steps=3,
                     max_size=None, progress=False)
    assert torch.equal(one.tensor, blend.tensor)


@pytest.mark.parametrize("scales", [1, 2])
def test_pyramid_output_has_requested_size(encoder, scales):
    content = _smooth(3, 45, 61)  # odd, non-square
    r = optimize(content, [_smooth(4, 40, 40)], encoder=encoder, steps=2, scales=scales, max_size=None,
                 progress=False)
    assert r.tensor.shape == (1, 3, 45, 61)
    assert r.image.size == (61, 45)
    sizes = [h["size"] for h in r.history]
    assert sizes == [s for s in pyramid_sizes(45, 61, scales) for _ in range(2)]
    levels = pyramid_sizes(45, 61, scales)
    assert len(levels) == scales and levels[-1] == (45, 61)
    for small, big in zip(levels, levels[1:]):  # coarse to fine, x2 per level (to a pixel)
        assert all(abs(2 * a - b) <= 1 for a, b in zip(small, big)), levels


def test_max_size_limits_the_result(images, encoder):
    r = _run(images, encoder, steps=1, max_size=24)
    assert r.tensor.shape == (1, 3, 16, 24)


def test_pyramid_sizes_rejects_too_many_scales():
    assert pyramid_sizes(64, 96, 3) == [(16, 24), (32, 48), (64, 96)]
    with pytest.raises(ValueError, match="use fewer scales"):
        pyramid_sizes(64, 96, 4)
    with pytest.raises(ValueError, match="scales"):
        pyramid_sizes(64, 96, 0)


def test_seed_determinism(images, encoder):
    a = _run(images, encoder, init="noise", seed=3, steps=3)
    b = _run(images, encoder, init="noise", seed=3, steps=3)
    c = _run(images, encoder, init="noise", seed=4, steps=3)
    assert torch.equal(a.tensor, b.tensor)
    assert [h["total"] for h in a.history] == [h["total"] for h in b.history]
    assert (a.tensor - c.tensor).abs().max() > 0.1


def test_callback_sees_every_step_and_can_stop(images, encoder):
    seen = []
    r = _run(images, encoder, steps=5, callback=lambda rec, img: seen.append((rec["step"], img.shape)) or len(seen) < 2)
    assert [s for s, _ in seen] == [0, 1] and len(r.history) == 2
    assert seen[0][1] == (1, 3, H, W)


def test_preserve_color(images, encoder):
    lum = _run(images, encoder, steps=5, preserve_color="luminance", style_weight=1e3)
    yiq = Fn.YIQ
    iq = lambda x: torch.einsum("ij,bjhw->bihw", yiq, x)[:, 1:]
    # keep_luminance keeps the content's chroma (up to the final [0, 1] clamp on a few pixels)
    assert (iq(lum.tensor) - iq(images["content"])).abs().mean() < 0.02
    match = _run(images, encoder, steps=5, preserve_color="match")
    assert match.tensor.shape == (1, 3, H, W)


def test_init_adain_starts_from_the_fast_model(images, encoder, tiny_model_dir):
    from stylemix.inference.api import Stylizer

    r = _run(images, encoder, init="adain", init_model=tiny_model_dir, steps=0)
    fast = Stylizer.from_pretrained(tiny_model_dir).stylize(images["content"], [images["a"]], max_size=None,
                                                            style_size=None, return_tensor=True)
    assert r.history == []
    assert torch.equal(r.tensor, fast)


# --- bad input -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("weights,match", [([1, -1], "non-negative"), ([0, 0], "all zero"), ([1], "2 styles"),
                                           ([1, float("nan")], "finite")])
def test_bad_weights(images, encoder, weights, match):
    with pytest.raises(ValueError, match=match):
        optimize(images["content"], [images["a"], images["b"]], weights, encoder=encoder, steps=1, progress=False)


@pytest.mark.parametrize("kw,match", [({"optimizer": "sgd"}, "optimizer"), ({"init": "zeros"}, "init"),
                                      ({"preserve_color": "hsv"}, "preserve_color"), ({"steps": -1}, "steps"),
                                      ({"style_weight": -1.0}, "style_weight"), ({"lr": 0.0}, "lr"),
                                      ({"scales": 5}, "fewer scales"),
                                      # refused before a 48000 x 48000 px style reaches the encoder (an OOM kill)
                                      ({"style_scale": 1000.0}, "style_scale=1000.0 makes style 1 48000x48000 px")])
def test_bad_options(images, encoder, kw, match):
    with pytest.raises(ValueError, match=match):
        _run(images, encoder, **kw)


def test_encoder_without_the_layers(images):
    enc = VGGEncoder(EncoderConfig(), ("relu1_1", "relu2_1"))
    with pytest.raises(ValueError, match="relu4_1"):
        optimize(images["content"], [images["a"]], encoder=enc, steps=1, progress=False)


def test_no_styles(images, encoder):
    with pytest.raises(ValueError, match="at least one style"):
        optimize(images["content"], [], encoder=encoder, steps=1, progress=False)


# --- CLI ------------------------------------------------------------------------------------------------

def _png(path: Path, seed: int, h: int, w: int) -> Path:
    arr = (_smooth(seed, h, w)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(arr).save(path)
    return path


@pytest.fixture
def cli_files(tmp_path) -> dict[str, Path]:
    enc_dir = tmp_path / "enc"
    enc = _random_encoder(1)
    save_tensors(enc_dir / "encoder.safetensors", enc.state_dict())
    save_json(enc_dir / "config.json", {"kind": "encoder", "encoder": to_dict(enc.config)})
    return {"content": _png(tmp_path / "c.png", 0, 40, 56), "a": _png(tmp_path / "a.png", 1, 32, 32),
            "b": _png(tmp_path / "b.png", 2, 24, 40), "enc": enc_dir, "dir": tmp_path}


def _cli(argv, capsys):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_writes_the_result(cli_files, capsys):
    f = cli_files
    out = f["dir"] / "sub" / "out.png"
    rc, stdout, err = _cli(["optimize", f["content"], "--style", f"{f['a']}:0.7", "--style", f"{f['b']}:0.3",
                            "--encoder", f["enc"], "--steps", "3", "--scales", "2", "--max-size", "48",
                            "--preserve-color", "-q", "-o", out], capsys)
    assert rc == 0, err
    assert Image.open(out).size == (48, 34)
    assert "wrote" in stdout and not list(out.parent.glob(".*.tmp"))


@pytest.mark.slow
def test_cli_init_adain(cli_files, capsys, tiny_model_dir):
    f = cli_files
    out = f["dir"] / "adain.png"
    rc, _, err = _cli(["optimize", f["content"], "-s", f["a"], "--encoder", f["enc"], "--init", "adain", "--model",
                       tiny_model_dir, "--steps", "1", "-q", "-o", out], capsys)
    assert rc == 0, err
    assert Image.open(out).size == (56, 40)


@pytest.mark.slow
def test_cli_seed_is_deterministic(cli_files, capsys):
    f = cli_files
    outs = []
    for i, seed in enumerate((5, 5)):
        out = f["dir"] / f"o{i}.png"
        rc, _, err = _cli(["optimize", f["content"], "-s", f["a"], "--encoder", f["enc"], "--steps", "2",
                           "--init", "noise", "--seed", seed, "-q", "-o", out], capsys)
        assert rc == 0, err
        outs.append(np.asarray(Image.open(out)))
    assert np.array_equal(*outs)


def _assert_one_line_error(rc, err, *needles):
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith("stylemix optimize: error:"), err
    for n in needles:
        assert n in lines[0], (n, lines[0])


@pytest.mark.parametrize("case", ["missing_style", "bad_weight", "zero_weights", "output_is_input", "bad_layer",
                                  "bad_ext", "missing_content", "steps", "no_encoder", "bad_model"])
def test_cli_bad_input(cli_files, capsys, case):
    f = cli_files
    c, a, out = str(f["content"]), str(f["a"]), str(f["dir"] / "out.png")
    base = ["--encoder", f["enc"], "--steps", "1", "-q"]
    argv, needle = {
        "missing_style": (["optimize", c, "-s", "nope.jpg", *base, "-o", out], "nope.jpg"),
        "bad_weight": (["optimize", c, "-s", f"{a}:-1", *base, "-o", out], "weight"),
        "zero_weights": (["optimize", c, "-s", f"{a}:0", *base, "-o", out], "zero"),
        "output_is_input": (["optimize", c, "-s", a, *base, "-o", c], "overwrite"),
        "bad_layer": (["optimize", c, "-s", a, *base, "--style-layers", "relu9_1", "-o", out], "relu9_1"),
        "bad_ext": (["optimize", c, "-s", a, *base, "-o", str(f["dir"] / "out.xyz")], "format"),
        "missing_content": (["optimize", "none.png", "-s", a, *base, "-o", out], "none.png"),
        "steps": (["optimize", c, "-s", a, *base, "--steps", "-3", "-o", out], "--steps"),
        "no_encoder": (["optimize", c, "-s", a, "--steps", "1", "-q", "-o", out], "vgg16-hed"),
        "bad_model": (["optimize", c, "-s", a, *base, "--init", "adain", "--model", "no/such/dir", "-o", out],
                      "no/such/dir"),
    }[case]
    rc, _, err = _cli(argv, capsys)
    _assert_one_line_error(rc, err, needle)
    assert not Path(out).exists()
