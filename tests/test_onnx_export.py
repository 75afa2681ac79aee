"""ONNX export (inference/onnx_export.py, `stylemix weights export-onnx`): the exported file, run by onnxruntime
alone, paints what the Stylizer paints for the same content, codes, weights and alpha, at sizes and style counts
other than the ones it was traced with; the codes a weights dir ships feed it as its docstring shows; bad input
to the command exits 2 with one line."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file
from torch import nn

from stylemix.inference import Stylizer
from stylemix.inference import onnx_export
from stylemix.inference.cli import main
from stylemix.models.fast import FastConfig, FastModel, ResBlock
from stylemix.models.io import save_codes, save_model_dir

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
pytest.importorskip("onnxscript")

pytestmark = pytest.mark.slow  # each export traces the model with the dynamo exporter (seconds)

CONFIG = FastConfig(widths=(4, 8, 8, 16), level_blocks=(0, 1, 0), encoder_id="adain-fast-onnx-test")
STYLES = ("baroque-01", "symbolism-02")


def _image(seed: int, h: int, w: int) -> torch.Tensor:
    """A smooth random image (1, 3, h, w) in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, 3, max(1, h // 8), max(1, w // 8), generator=g)
    return nn.functional.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)


def _informative(config: FastConfig) -> FastModel:
    """A random fast model (seed 0) whose images vary: a fresh decoder paints grey +- 0.01, so its last conv is
    rescaled to 0.5 +- 0.25 per channel, and its fresh residual blocks (the identity) get something to compute."""
    torch.manual_seed(0)
    model = FastModel(config).eval()
    with torch.no_grad():
        for block in model.modules():
            if isinstance(block, ResBlock):
                nn.init.kaiming_normal_(block.conv2.weight, nonlinearity="relu")
        raw, rgb = model.decode(model.encode(_image(1, 64, 64))), model.decoder.to_rgb
        k = 0.25 / raw.std()
        rgb.weight.mul_(k)
        rgb.bias.copy_(k * (rgb.bias + 0.5 - raw.mean((0, 2, 3))))  # decode adds 0.5 after this conv
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Stylizer, ort.InferenceSession, dict]:
    """A small random fast model saved as a weights dir with its own codes for two style names, exported by the
    command; (its Stylizer, an onnxruntime session of the file, the command's stdout and paths)."""
    root = tmp_path_factory.mktemp("onnx")
    model = _informative(CONFIG)
    with torch.no_grad():
        codes = dict(zip(STYLES, model.style_code(torch.cat([_image(2, 48, 40), _image(3, 48, 40) ** 2]))))
    model_dir = save_model_dir(model, "adain-fast", CONFIG, root / "fast", encoder=CONFIG.encoder_id,
                               with_encoder=True)
    save_codes(model_dir / "styles.safetensors", codes, {"encoder": CONFIG.encoder_id})
    out = root / "out" / "fast.onnx"
    rc = main(["weights", "export-onnx", str(model_dir), "-o", str(out)])
    assert rc == 0 and out.is_file() and not list(out.parent.glob(".*.tmp"))  # written by rename, nothing left
    stylizer = Stylizer.from_pretrained(model_dir, dtype="fp32")
    return stylizer, ort.InferenceSession(str(out)), {"dir": model_dir, "out": out}


def _feed(session, content: torch.Tensor, codes: list, weights, alpha: float) -> dict[str, np.ndarray]:
    """onnxruntime inputs from StyleCodes: mean_<tap> / std_<tap> stack one row per style."""
    feed = {"content": content.numpy(), "weights": np.asarray(weights, np.float32),
            "alpha": np.asarray(alpha, np.float32)}
    for i in session.get_inputs():
        kind, _, tap = i.name.partition("_")
        if kind in ("mean", "std"):
            feed[i.name] = np.stack([getattr(c, kind)[tap].numpy() for c in codes])
    return feed


def _both(exported, h: int, w: int, names, weights, alpha: float, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """(onnxruntime's image, the Stylizer's) for one content of (h, w) and the named styles."""
    stylizer, session, _ = exported
    x = _image(seed, h, w)
    codes = stylizer.style_codes(list(names))
    ref = stylizer.stylize(x, codes, weights=list(weights), alpha=alpha, max_size=None, return_tensor=True)
    got = session.run(None, _feed(session, x, codes, weights, alpha))[0]
    return got, ref.numpy()


def test_the_file_declares_dynamic_sizes_and_a_pair_of_inputs_per_tap(exported):
    _, session, _ = exported
    shapes = {i.name: i.shape for i in session.get_inputs()}
    assert shapes == {"content": [1, 3, "H", "W"], "weights": ["K"], "alpha": [],
                      **{f"{kind}_{t}": ["K", c] for kind in ("mean", "std")
                         for t, c in zip(("s1", "s2", "s4", "s8"), CONFIG.widths)}}
    assert [(o.name, o.shape) for o in session.get_outputs()] == [("image", [1, 3, "H", "W"])]
    assert session.get_modelmeta().custom_metadata_map["stylemix.encoder"] == CONFIG.encoder_id


def test_a_blend_of_two_at_an_odd_size_equals_the_stylizer(exported):
    got, ref = _both(exported, 70, 93, STYLES, (0.3, 0.7), 0.8)  # canvas 134 x 157: padded to 136 x 160
    assert got.shape == ref.shape == (1, 3, 70, 93)
    assert np.abs(got - ref).max() < 1 / 255
    swapped, _ = _both(exported, 70, 93, STYLES, (0.7, 0.3), 0.8)
    assert np.abs(swapped - ref).max() > 10 / 255  # the blend shows: agreeing within 1/255 is not a given


def test_one_style_at_a_multiple_of_the_stride_equals_the_stylizer(exported):
    got, ref = _both(exported, 64, 80, STYLES[1:], (1.0,), 1.0)  # canvas 128 x 144: no padding, unlike the trace
    assert np.abs(got - ref).max() < 1 / 255 and ref.std() > 0.05  # not a flat image


def test_alpha_zero_returns_the_content_itself(exported):
    got, ref = _both(exported, 41, 50, STYLES, (0.5, 0.5), 0.0)
    assert np.array_equal(got, ref) and np.array_equal(got, _image(7, 41, 50).numpy())


def test_the_codes_a_weights_dir_ships_feed_it_as_the_docstring_shows(exported):
    stylizer, session, paths = exported
    codes, photo = load_file(str(paths["dir"] / "styles.safetensors")), _image(8, 45, 60).numpy()
    feed = {i.name: np.stack([codes[f"{n}.{i.name.replace('_', '.', 1)}"] for n in STYLES])
            for i in session.get_inputs() if i.name.startswith(("mean_", "std_"))}
    feed.update(content=photo, weights=np.float32([0.3, 0.7]), alpha=np.array(0.8, np.float32))
    ref = stylizer.stylize(torch.from_numpy(photo), list(STYLES), weights=[0.3, 0.7], alpha=0.8, return_tensor=True)
    assert np.abs(session.run(None, feed)[0] - ref.numpy()).max() < 1 / 255


def test_a_model_with_a_style_hint_takes_its_vgg_statistics_as_inputs(tmp_path):
    from stylemix.models.vgg import EncoderConfig, VGGEncoder

    model = _informative(dataclasses.replace(CONFIG, style_hint=("relu1_1",)))
    model.attach_style_encoder(VGGEncoder(EncoderConfig(), ("relu1_1",)))
    with torch.no_grad():
        for p in model.hint.parameters():
            p.normal_(0, 2.0)
    session = ort.InferenceSession(str(onnx_export.export_onnx(model, tmp_path / "hint.onnx")))
    shapes = {i.name: i.shape for i in session.get_inputs()}
    assert shapes["mean_relu1_1"] == shapes["std_relu1_1"] == ["K", 64] and "mean_s8" in shapes
    stylizer, x = Stylizer(model, dtype="fp32"), _image(7, 64, 80)
    codes = stylizer.style_codes([_image(2, 48, 40), _image(3, 48, 40) ** 2])
    ref = stylizer.stylize(x, codes, weights=[0.3, 0.7], max_size=None, return_tensor=True).numpy()
    assert np.abs(session.run(None, _feed(session, x, codes, (0.3, 0.7), 1.0))[0] - ref).max() < 1 / 255
    for c in codes:  # the VGG inputs are read: other VGG statistics give another image
        c.std["relu1_1"] = c.std["relu1_1"].flip(0)
    assert np.abs(session.run(None, _feed(session, x, codes, (0.3, 0.7), 1.0))[0] - ref).max() > 10 / 255


def _one_line_error(capsys, argv: list[str], *needles: str) -> None:
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc == 2 and "Traceback" not in err and len(lines) == 1, err
    assert lines[0].startswith("stylemix weights: error:") and all(n in lines[0] for n in needles), lines[0]


def test_bad_input_exits_2_with_one_line(capsys, tmp_path, monkeypatch):
    missing = tmp_path / "no-such-model"
    _one_line_error(capsys, ["weights", "export-onnx", missing, "-o", tmp_path / "m.onnx"], str(missing))
    _one_line_error(capsys, ["weights", "export-onnx", missing, "-o", tmp_path / "m.png"], "m.png", ".onnx file")
    (tmp_path / "d.onnx").mkdir()
    _one_line_error(capsys, ["weights", "export-onnx", missing, "-o", tmp_path / "d.onnx"], "d.onnx", "is a folder")
    (tmp_path / "afile").write_text("x")  # the output's folder is a file: refused before the model loads
    _one_line_error(capsys, ["weights", "export-onnx", missing, "-o", tmp_path / "afile" / "m.onnx"],
                    "cannot write", "afile is not a writable folder")
    monkeypatch.setattr(onnx_export, "ONNX_PACKAGES", ("onnx", "no_such_onnx_package"))
    _one_line_error(capsys, ["weights", "export-onnx", missing, "-o", tmp_path / "m.onnx"], "no_such_onnx_package",
                    "pip install 'stylemix[onnx]'")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "d.onnx"]  # nothing written
