"""Weight paths, sweeps and grids (one content encoding, batched decoding), masks and colour
preservation while blending, and `stylemix grid` / `stylemix sheet`."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from stylemix.inference import grid as G
from stylemix.inference.api import Stylizer
from stylemix.inference.cli import main
from stylemix.models import functional as Fn

SIZE = 32


def _image(seed: int, h: int = SIZE, w: int = SIZE) -> torch.Tensor:
    """A smooth random colour image (1, 3, h, w) in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, 3, 4, 4, generator=g)
    return torch.nn.functional.interpolate(low, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1)


@pytest.fixture
def model(make_calibrated_model):
    """Random weights, but outputs that vary with the content and the style (see conftest)."""
    return make_calibrated_model()


@pytest.fixture
def stylizer(model) -> Stylizer:
    return Stylizer(model)


@pytest.fixture
def codes(model):
    """Four clearly different styles: different colours and contrast."""
    with torch.no_grad():
        return [model.style_code(_image(10 + i) ** (0.5 + 0.5 * i) * (0.4 + 0.2 * i))[0] for i in range(4)]


def test_outputs_are_informative(stylizer, codes):
    """Guard for every comparison below: outputs vary over the image and between styles."""
    outs = [stylizer.stylize(_image(0), [c], return_tensor=True) for c in codes]
    assert min(float(o.std()) for o in outs) > 0.02
    assert min(float((a - b).abs().mean()) for a, b in zip(outs, outs[1:])) > 0.01


# --- weight paths -------------------------------------------------------------------------------------

def test_linear_path_two_and_three_styles():
    w = G.linear_path(2, 5)
    torch.testing.assert_close(w[:, 1], torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0]))
    torch.testing.assert_close(w.sum(1), torch.ones(5))
    w3 = G.linear_path(3, 5)  # A -> B -> C through the middle
    torch.testing.assert_close(w3, torch.tensor([[1, 0, 0], [.5, .5, 0], [0, 1, 0], [0, .5, .5], [0, 0, 1.]]))


def test_bilinear_grid_corners_and_sums():
    w = G.bilinear_grid(3).view(3, 3, 4)
    assert torch.equal(w[0, 0], torch.tensor([1.0, 0, 0, 0])) and torch.equal(w[0, 2], torch.tensor([0, 1.0, 0, 0]))
    assert torch.equal(w[2, 0], torch.tensor([0, 0, 1.0, 0])) and torch.equal(w[2, 2], torch.tensor([0, 0, 0, 1.0]))
    torch.testing.assert_close(w[1, 1], torch.full((4,), 0.25))
    torch.testing.assert_close(w.sum(-1), torch.ones(3, 3))


@pytest.mark.parametrize("steps", [1, 0, -3, 2.5, True])
def test_steps_below_two_are_refused(steps):
    with pytest.raises(ValueError, match="at least 2"):
        G.linear_path(2, steps)


def test_explicit_path_and_alpha_validation():
    torch.testing.assert_close(G.check_path([[2, 2], [0, 3]], 2), torch.tensor([[0.5, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="one weight per style"):
        G.check_path([[1, 0, 0]], 2)
    with pytest.raises(ValueError, match="non-negative"):
        G.check_path([[1, -1]], 2)
    with pytest.raises(ValueError, match="3 alphas for 2 cells"):
        G.per_cell_alpha([0.1, 0.2, 0.3], 2)
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
        G.per_cell_alpha(1.5, 2)


# --- sweeps and grids ----------------------------------------------------------------------------------

def _project(code, a, b) -> float:
    """Position of `code` on the segment a -> b (0 at a, 1 at b), over all taps' means and stds."""
    vec = lambda c: torch.cat([torch.cat([c.mean[t], c.std[t]]) for t in c.taps])  # noqa: E731
    d = vec(b) - vec(a)
    return float((vec(code) - vec(a)) @ d / (d @ d))


def test_sweep_moves_style_statistics_monotonically_from_a_to_b(stylizer, model, codes):
    content = _image(0)
    cells, image = stylizer.sweep(content, codes[:2], steps=6)
    assert cells.shape == (6, 3, SIZE, SIZE) and image.size[1] == SIZE
    # the mixing targets: exactly the linear blend of A's and B's statistics
    with torch.no_grad():
        feats = model.encode(content)
        for w in G.linear_path(2, 6):
            t = model.mix(feats, codes[:2], w)["relu4_1"]
            mean, std = Fn.mean_std(t, eps=0)
            want = w[0] * codes[0].mean["relu4_1"] + w[1] * codes[1].mean["relu4_1"]
            torch.testing.assert_close(mean[0], want, atol=1e-4, rtol=1e-4)
        # the outputs: their style codes (relu1_1..relu4_1) move monotonically from A's output to B's
        out_codes = model.style_code(cells)
    pos = [_project(c, out_codes[0], out_codes[-1]) for c in out_codes]
    assert all(b > a for a, b in zip(pos, pos[1:])), pos


def test_grid_corners_equal_single_style_stylize(stylizer, codes):
    content = _image(1)
    cells, image = stylizer.grid(content, codes, steps=3, max_size=None)
    assert cells.shape == (9, 3, SIZE, SIZE)
    for cell, code in zip(cells[[0, 2, 6, 8]], codes):
        single = stylizer.stylize(content, [code], return_tensor=True, max_size=None)
        torch.testing.assert_close(cell[None], single, atol=1e-5, rtol=0)
    centre = stylizer.stylize(content, codes, weights=[1, 1, 1, 1], return_tensor=True, max_size=None)
    torch.testing.assert_close(cells[4][None], centre, atol=1e-5, rtol=0)
    assert image.size == (3 * SIZE + 2 * 4, 3 * SIZE + 2 * 4)


@pytest.mark.slow
def test_batching_does_not_change_cells(stylizer, codes):
    content = _image(2)
    one, _ = stylizer.sweep(content, codes[:3], steps=5, batch_size=1)
    many, _ = stylizer.sweep(content, codes[:3], steps=5, batch_size=4)
    torch.testing.assert_close(one, many, atol=1e-5, rtol=0)


def test_explicit_path_and_per_cell_alpha(stylizer, codes):
    content = _image(3)
    cells, _ = stylizer.sweep(content, codes[:2], path=[[1, 0], [0, 1]], alpha=[0.5, 1.0])
    want = stylizer.stylize(content, [codes[0]], alpha=0.5, return_tensor=True)
    torch.testing.assert_close(cells[:1], want, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_alpha_sweep_ends_at_content_reconstruction_and_full_style(stylizer, codes):
    content = _image(4)
    cells, _ = stylizer.alpha_sweep(content, codes[0], steps=3)
    for cell, a in zip(cells, (0.0, 0.5, 1.0)):
        torch.testing.assert_close(cell[None], stylizer.stylize(content, codes[0], alpha=a, return_tensor=True),
                                   atol=1e-5, rtol=0)


@pytest.mark.slow
def test_alpha_axis_grid(stylizer, codes):
    cells, _ = stylizer.grid(_image(5), codes[:2], steps=3, alpha_axis=True)
    top = stylizer.stylize(_image(5), codes[:2], alpha=0.0, return_tensor=True)
    for c in cells[:3]:  # row 0 is alpha 0: every weight gives the content reconstruction
        torch.testing.assert_close(c[None], top, atol=1e-5, rtol=0)
    bottom_right = stylizer.stylize(_image(5), [codes[1]], return_tensor=True)
    torch.testing.assert_close(cells[8][None], bottom_right, atol=1e-5, rtol=0)


def test_bad_grid_inputs(stylizer, codes):
    with pytest.raises(ValueError, match="exactly 4 corner styles"):
        stylizer.grid(_image(0), codes[:3], steps=3)
    with pytest.raises(ValueError, match="at least 2"):
        stylizer.grid(_image(0), codes, steps=1)
    with pytest.raises(ValueError, match="at least 2 styles"):
        stylizer.sweep(_image(0), codes[:1], steps=3)
    with pytest.raises(ValueError, match="2 styles"):
        stylizer.grid(_image(0), codes[:3], steps=3, alpha_axis=True)


def test_labels_and_grid_image():
    assert G.weight_label([0.75, 0.25]) == "A .75  B .25"
    assert G.weight_label([1.0, 0.0, 0.0, 0.0]) == "A 1"
    assert G.weight_label([0.5, 0.5], alpha=0.5, names=["ink", "oil"]) == "ink .50  oil .50  alpha .50"
    cells = torch.rand(6, 3, 20, 30)
    plain = G.grid_image(cells, 2, 3, gap=0)
    labelled = G.grid_image(cells, 2, 3, labels=["A 1"] * 6, gap=0)
    assert plain.size == (90, 40) and labelled.size[0] == 90 and labelled.size[1] > 40
    assert np.array_equal(np.asarray(plain)[:20, :30], np.asarray(labelled)[:20, :30])
    with pytest.raises(ValueError, match="do not fill"):
        G.grid_image(cells, 2, 2)


# --- masks and colour while blending ------------------------------------------------------------------

def test_all_ones_mask_for_a_equals_style_a(stylizer, codes):
    content = _image(6)
    ones, zeros = torch.ones(SIZE, SIZE), torch.zeros(SIZE, SIZE)
    masked = stylizer.stylize(content, codes[:2], masks=[ones, zeros], return_tensor=True)
    single = stylizer.stylize(content, [codes[0]], return_tensor=True)
    torch.testing.assert_close(masked, single, atol=1e-5, rtol=0)


def test_half_masks_split_the_image(stylizer, codes):
    content = _image(7)
    left = torch.zeros(SIZE, SIZE)
    left[:, : SIZE // 2] = 1
    out = stylizer.stylize(content, codes[:2], masks=[left, 1 - left], return_tensor=True)
    a = stylizer.stylize(content, [codes[0]], return_tensor=True)
    b = stylizer.stylize(content, [codes[1]], return_tensor=True)
    # away from the boundary (the decoder's receptive field), each half looks like its style
    err_a = (out - a)[..., :, :6].abs().mean()
    err_b = (out - b)[..., :, -6:].abs().mean()
    assert err_a < (out - b)[..., :, :6].abs().mean() and err_b < (out - a)[..., :, -6:].abs().mean()


def test_mask_count_and_size_errors(stylizer, codes):
    with pytest.raises(ValueError, match="1 masks for 2 styles"):
        stylizer.stylize(_image(0), codes[:2], masks=[torch.ones(SIZE, SIZE)])
    with pytest.raises(ValueError, match="mask 2 is 20x32 px but the content is 32x32"):
        stylizer.stylize(_image(0), codes[:2], masks=[torch.ones(SIZE, SIZE), torch.ones(SIZE, 20)])


@pytest.mark.parametrize("mode", ["match", "luminance"])
def test_preserve_color_with_two_blended_styles(stylizer, codes, mode):
    content = _image(8)
    plain = stylizer.stylize(content, codes[:2], weights=[0.6, 0.4], return_tensor=True)
    kept = stylizer.stylize(content, codes[:2], weights=[0.6, 0.4], preserve_color=mode, return_tensor=True)
    yiq = Fn.YIQ
    chroma = lambda x: torch.einsum("ij,bjhw->bihw", yiq, x)[:, 1:]  # noqa: E731
    if mode == "match":  # colour means of the output equal the content's
        torch.testing.assert_close(kept.mean((2, 3)), content.mean((2, 3)), atol=2e-2, rtol=0)
        assert (plain.mean((2, 3)) - content.mean((2, 3))).abs().max() > 2e-2
    else:  # the content's chroma, the stylised luminance, wherever that colour is inside the RGB cube
        inside = ((kept > 1e-3) & (kept < 1 - 1e-3)).all(1)  # (b, h, w): not clamped
        assert inside.float().mean() > 0.5
        luma = lambda x: torch.einsum("j,bjhw->bhw", yiq[0], x)  # noqa: E731
        assert (chroma(kept) - chroma(content)).abs().amax(1)[inside].max() < 1e-4
        assert (luma(kept) - luma(plain))[inside].abs().max() < 1e-4
        assert (chroma(plain) - chroma(content)).abs().amax(1)[inside].max() > 2e-2  # it did change something
    cells, _ = stylizer.sweep(content, codes[:2], path=[[0.6, 0.4]], preserve_color=mode)
    torch.testing.assert_close(cells, kept, atol=1e-5, rtol=0)


# --- CLI ------------------------------------------------------------------------------------------------

@pytest.fixture
def model_dir(tiny_model_dir):
    return tiny_model_dir


@pytest.fixture
def files(tmp_path):
    paths = []
    for i in range(5):
        arr = (_image(20 + i, 40, 48)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        paths.append(tmp_path / f"img{i}.png")
        Image.fromarray(arr).save(paths[-1])
    return paths


@pytest.mark.slow
def test_cli_grid_row_square_and_alpha(tmp_path, model_dir, files, capsys):
    c, *s = map(str, files)
    out = tmp_path / "row.png"
    assert main(["grid", c, "-s", s[0], "-s", s[1], "--steps", "3", "--cell-size", "48", "--labels",
                 "--model", str(model_dir), "-o", str(out)]) == 0
    w, h = Image.open(out).size
    assert w == 3 * 48 + 2 * 4 and h > 40
    out = tmp_path / "square.png"
    assert main(["grid", c, *sum([["-s", x] for x in s], []), "--steps", "2", "--cell-size", "32",
                 "--model", str(model_dir), "-o", str(out), "--cells", str(tmp_path / "cells")]) == 0
    assert Image.open(out).size == (2 * 32 + 4, 2 * 27 + 4)  # 48x40 -> 32x27 cells
    assert len(list((tmp_path / "cells").glob("cell_*.png"))) == 4
    assert main(["grid", c, "-s", s[0], "--alpha-sweep", "--steps", "4", "--cell-size", "32",
                 "--model", str(model_dir), "-o", str(tmp_path / "alpha.png")]) == 0


@pytest.mark.parametrize("argv, message", [
    (["-s", "A", "-s", "B", "-s", "C"], "grids support 2 styles"),
    (["-s", "A"], "grids support 2 styles"),
    (["-s", "A", "-s", "B", "--steps", "1"], "at least 2"),
    (["-s", "A", "-s", "B", "-s", "C", "--alpha-axis"], "exactly 2 styles"),
    (["-s", "A:0.5", "-s", "B"], "set by the grid"),
    (["-s", "A", "-s", "B", "--alpha", "2"], r"\[0, 1\]"),
    (["-s", "A", "-s", "B", "-s", "C", "-s", "D", "--steps", "100000"],  # (not 10^10 cells, or an allocation error)
     r"--steps 100000 at --cell-size 256 makes a grid of up to 25600000x25600000 px \(10000000000 cells\)"),
    (["-s", "A", "-s", "B", "--steps", "2000"], "lower --steps or --cell-size"),  # not hours of work first
])
def test_cli_grid_bad_inputs(tmp_path, files, capsys, argv, message):
    assert main(["grid", str(files[0]), *argv, "-o", str(tmp_path / "g.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("stylemix grid: error:") and __import__("re").search(message, err), err


def test_cli_a_folder_as_content_is_named_a_folder(tmp_path, files, capsys):
    nomodel = ["--model", str(tmp_path / "nomodel"), "-o", str(tmp_path / "g.png")]  # fails before any model loads
    for argv in (["grid", str(tmp_path), "-s", str(files[1]), "-s", str(files[2])], ["sheet", str(tmp_path)],
                 ["optimize", str(tmp_path), "-s", str(files[1])], ["optimize", str(files[0]), "-s", str(tmp_path)]):
        assert main([*argv, *nomodel]) == 2
        err = capsys.readouterr().err
        assert f"{tmp_path} is a folder, not an image file" in err and len(err.strip().splitlines()) == 1, err


def test_cli_grid_unknown_style_name_suggests(tmp_path, model_dir, files, capsys):
    from stylemix.inference.styles import list_styles

    name = list_styles()[0]
    assert main(["grid", str(files[0]), "-s", name[:-1] + "x", "-s", name, "--model", str(model_dir),
                 "-o", str(tmp_path / "g.png")]) == 2
    assert "did you mean" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_sheet(tmp_path, model_dir, files, capsys):
    out = tmp_path / "sheet.png"
    assert main(["sheet", str(files[0]), "--match", "baroque", "--cell-size", "32", "--model", str(model_dir),
                 "-o", str(out)]) == 0
    assert "5 styles" in capsys.readouterr().out
    assert Image.open(out).size[0] == 3 * 32 + 2 * 4  # content + 5 styles in a 3 x 2 sheet
    assert main(["sheet", str(files[0]), "--match", "baroque", "--cell-size", "32", "--cols", "100", "--model",
                 str(model_dir), "-o", str(out)]) == 0
    assert Image.open(out).size[0] == 6 * 32 + 5 * 4  # one row of 6 cells, not 100 columns, 94 of them blank
    assert main(["sheet", str(files[0]), "--match", "nope", "-o", str(out)]) == 2
