"""CLI behaviour: `stylemix stylize` and `stylemix weights`. Every bad input exits 2 with one line and no
traceback; nothing is overwritten; converters reproduce the source networks."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from stylemix.inference.cli import UsageError, main
from stylemix.inference.commands.stylize import parse_style_spec



def run(argv: list[str], capsys) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(rc: int, err: str, *needles: str) -> None:
    assert rc == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stylemix "), err
    for n in needles:
        assert n in lines[0], (n, lines[0])


def _png(path: Path, seed: int, h: int = 40, w: int = 48) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def files(tmp_path) -> dict[str, Path]:
    (tmp_path / "in").mkdir()
    return {"content": _png(tmp_path / "in" / "c.png", 0), "a": _png(tmp_path / "a.png", 1, 32, 32),
            "b": _png(tmp_path / "b.png", 2, 24, 40), "dir": tmp_path}


# --- style specs ---------------------------------------------------------------------------------------

def test_parse_style_spec(tmp_path):
    assert parse_style_spec("a.jpg:0.6") == ("a.jpg", 0.6)
    assert parse_style_spec("a.jpg") == ("a.jpg", None)
    assert parse_style_spec("a.jpg:1/3") == ("a.jpg", pytest.approx(1 / 3))
    assert parse_style_spec("a.jpg:2e-1") == ("a.jpg", 0.2)
    assert parse_style_spec(r"C:\art\a.jpg") == (r"C:\art\a.jpg", None)  # Windows drive: no weight
    assert parse_style_spec(r"C:\art\a.jpg:0.5") == (r"C:\art\a.jpg", 0.5)
    assert parse_style_spec("name:with:colons") == ("name:with:colons", None)
    real = tmp_path / "s.png"
    real.write_bytes(b"")
    with pytest.raises(UsageError, match=r"bad weight 'abc' in --style '.*s\.png:abc'"):
        parse_style_spec(f"{real}:abc")
    for bad in ("-0.5", "nan", "inf", "-inf"):
        with pytest.raises(UsageError, match=f"'a.jpg:{bad}'"):
            parse_style_spec(f"a.jpg:{bad}")


# --- stylize -------------------------------------------------------------------------------------------

def test_stylize_json_and_atomic_output(tiny_model_dir, files, capsys):
    out = files["dir"] / "out" / "r.png"
    rc, stdout, err = run(["stylize", files["content"], "--style", f"{files['a']}:3", "--style", files["b"],
                           "--model", tiny_model_dir, "-o", out, "--json"], capsys)
    assert rc == 0, err
    rec = json.loads(stdout.strip())
    assert rec["path"] == str(out) and rec["size"] == [48, 40] and rec["seconds"] > 0
    assert rec["weights"] == [0.75, 0.25] and rec["styles"] == [str(files["a"]), str(files["b"])]
    assert Image.open(out).size == (48, 40)
    assert [p.name for p in out.parent.iterdir()] == ["r.png"]  # no temp files left behind


def test_stylize_matches_api(tiny_model_dir, files, capsys):
    from stylemix.inference import Stylizer

    out = files["dir"] / "r.png"
    rc, _, err = run(["stylize", files["content"], "-s", f"{files['a']}:0.25", "-s", f"{files['b']}:0.75",
                      "--alpha", "0.8", "--preserve-color", "luminance", "--model", tiny_model_dir, "-o", out], capsys)
    assert rc == 0, err
    ref = Stylizer.from_pretrained(tiny_model_dir).stylize(files["content"], [files["a"], files["b"]], [1, 3], alpha=0.8,
                                                           preserve_color="luminance")
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(ref))


def test_stylize_folder(tiny_model_dir, files, capsys):
    _png(files["dir"] / "in" / "d.jpg", 3, 33, 45)
    out = files["dir"] / "outdir"
    rc, stdout, err = run(["stylize", files["dir"] / "in", "-s", files["a"], "--model", tiny_model_dir,
                           "-o", out, "--json"], capsys)
    assert rc == 0, err
    recs = [json.loads(line) for line in stdout.strip().splitlines()]
    assert [Path(r["path"]).name for r in recs] == ["c.png", "d.png"]
    assert Image.open(out / "d.png").size == (45, 33)


def test_stylize_folder_skips_bad_files_and_fails(tiny_model_dir, files, capsys):
    (files["dir"] / "in" / "broken.png").write_bytes(b"not a png")
    rc, _, err = run(["stylize", files["dir"] / "in", "-s", files["a"], "--model", tiny_model_dir,
                      "-o", files["dir"] / "o"], capsys)
    assert rc == 2 and "Traceback" not in err
    assert "skipped" in err and "broken.png" in err and "1 of 2 images" in err
    assert (files["dir"] / "o" / "c.png").is_file()


def test_stylize_refuses_an_output_its_format_cannot_store_before_loading_the_model(files, capsys, monkeypatch):
    from stylemix.inference import Stylizer

    wide = _png(files["dir"] / "wide.png", 3, 16, 16400)  # WebP stores at most 16383 px on a side

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the output size was checked")

    monkeypatch.setattr(Stylizer, "from_pretrained", no_model)
    out = files["dir"] / "o.webp"
    rc, _, err = run(["stylize", wide, "-s", files["a"], "--max-size", 0, "-o", out], capsys)
    assert_one_line_error(rc, err, str(out), "16400x16 px", "WEBP stores at most 16383")
    assert not out.exists()
    with pytest.raises(AssertionError, match="the model was loaded"):  # within the limit: the check lets it through
        run(["stylize", wide, "-s", files["a"], "--max-size", 16383, "-o", out], capsys)


def test_stylize_masks_match_the_api_and_split_the_image(tiny_model_dir, files, capsys):
    from stylemix.inference import Stylizer

    left = np.zeros((40, 48), np.uint8)
    left[:, :24] = 255
    Image.fromarray(left).save(files["dir"] / "left.png")
    Image.fromarray(255 - left).save(files["dir"] / "right.png")
    masks = [files["dir"] / "left.png", files["dir"] / "right.png"]
    out = files["dir"] / "masked.png"
    rc, _, err = run(["stylize", files["content"], "-s", files["a"], "-s", files["b"], "--mask", masks[0],
                      "--mask", masks[1], "--model", tiny_model_dir, "-o", out], capsys)
    assert rc == 0, err
    st = Stylizer.from_pretrained(tiny_model_dir)
    got = np.asarray(Image.open(out)).astype(int)
    assert np.array_equal(got, np.asarray(st.stylize(files["content"], [files["a"], files["b"]], masks=masks)))
    only_a = np.asarray(st.stylize(files["content"], files["a"])).astype(int)
    only_b = np.asarray(st.stylize(files["content"], files["b"])).astype(int)
    # away from the mask edge (decoder receptive field) each half is closer to its own style's output
    assert np.abs(got[:, :8] - only_a[:, :8]).mean() < np.abs(got[:, :8] - only_b[:, :8]).mean()
    assert np.abs(got[:, -8:] - only_b[:, -8:]).mean() < np.abs(got[:, -8:] - only_a[:, -8:]).mean()


@pytest.mark.slow
def test_stylize_tiles_match_the_api_at_full_size(tiny_model_dir, files, capsys):
    from stylemix.inference import Stylizer

    big = _png(files["dir"] / "big.png", 7, 24, 1100)  # wider than the untiled default --max-size of 1024
    out = files["dir"] / "tiled.png"
    rc, _, err = run(["stylize", big, "-s", files["a"], "--tile", 256, "--halo", 32, "--model", tiny_model_dir,
                      "-o", out], capsys)
    assert rc == 0, err
    got = np.asarray(Image.open(out))
    assert got.shape == (24, 1100, 3)  # --tile keeps the full size unless --max-size is given
    ref = Stylizer.from_pretrained(tiny_model_dir).stylize_tiled(big, files["a"], tile=256, halo=32)
    assert np.array_equal(got, np.asarray(ref))


def test_bad_masks_and_tiles_exit_2_before_loading(files, capsys, tmp_path):
    c, a, b = files["content"], files["a"], files["b"]
    o = tmp_path / "o.png"
    os.mkfifo(tmp_path / "fifo.png")
    cases = [
        (["-s", a, "-s", b, "--mask", a], "got 1 --mask for 2 --style"),
        (["-s", a, "--mask", tmp_path / "none.png"], "no such mask image"),
        (["-s", a, "--mask", tmp_path / "fifo.png"], "fifo.png is not a regular file"),
        (["-s", a, "--tile", 64, "--modes", 2], "cannot be combined"),
        (["-s", a, "--tile", 60], "multiples of the model stride"),
        (["-s", a, "--tile", 128, "--halo", 64], "too small for halo"),
        (["-s", a, "--tile", 64, "--halo", 0], "positive multiples of the model stride"),  # not an inner 'feather'
        (["-s", a, "--max-size", -3], "--max-size"),
    ]
    for extra, needle in cases:  # --model names nothing: these must fail before any model loads
        rc, _, err = run(["stylize", c, *extra, "-o", o, "--model", tmp_path / "nomodel"], capsys)
        assert_one_line_error(rc, err, needle)
    assert not o.exists()


def test_output_equal_to_input_is_refused(tiny_model_dir, files, capsys):
    before = files["content"].read_bytes()
    rc, _, err = run(["stylize", files["content"], "-s", files["a"], "--model", tiny_model_dir,
                      "-o", files["content"]], capsys)
    assert_one_line_error(rc, err, "is one of the inputs")
    assert files["content"].read_bytes() == before
    rc, _, err = run(["stylize", files["dir"] / "in", "-s", files["a"], "--model", tiny_model_dir,
                      "-o", files["dir"] / "in"], capsys)  # folder -> same folder: c.png would overwrite c.png
    assert_one_line_error(rc, err, "is one of the inputs")
    assert files["content"].read_bytes() == before
    a_before = files["a"].read_bytes()
    rc, _, err = run(["stylize", files["content"], "-s", files["a"], "--model", tiny_model_dir, "-o", files["a"]], capsys)
    assert_one_line_error(rc, err, "is one of the inputs")
    assert files["a"].read_bytes() == a_before


def test_running_out_of_memory_is_one_line_with_what_to_try(tiny_model_dir, files, capsys, monkeypatch):
    from stylemix.inference import Stylizer

    def too_large(*args, **kwargs):  # a real failed allocation: the CPU allocator's own error
        return torch.empty(1 << 60, dtype=torch.uint8)

    monkeypatch.setattr(Stylizer, "stylize", too_large)
    out = files["dir"] / "o.png"
    rc, _, err = run(["stylize", files["content"], "-s", files["a"], "--model", tiny_model_dir, "-o", out], capsys)
    assert_one_line_error(rc, err, "out of memory (could not allocate 1073741824.0 GiB)", "--tile 512")
    assert not out.exists()

    def bug(*args, **kwargs):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(Stylizer, "stylize", bug)
    with pytest.raises(RuntimeError, match="shape mismatch"):  # any other RuntimeError is a bug: its traceback stays
        run(["stylize", files["content"], "-s", files["a"], "--model", tiny_model_dir, "-o", out], capsys)


def test_bad_inputs_exit_2_with_one_line(tiny_model_dir, files, capsys, tmp_path):
    c, a, m = files["content"], files["a"], tiny_model_dir
    (tmp_path / "text.png").write_text("hello")
    data = c.read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "afile").write_text("x")
    Image.fromarray(np.zeros((8, 40, 3), np.uint8)).save(tmp_path / "thin.png")
    cases = [
        (["stylize", tmp_path / "missing.png", "-s", a, "-o", tmp_path / "o.png"], "no such content image"),
        (["stylize", tmp_path / "text.png", "-s", a, "-o", tmp_path / "o.png"], "is not an image"),
        (["stylize", tmp_path / "cut.png", "-s", a, "-o", tmp_path / "o.png"], "corrupt or truncated"),
        (["stylize", tmp_path / "thin.png", "-s", a, "-o", tmp_path / "o.png"], "at least 16 px"),
        (["stylize", c, "-s", tmp_path / "nope.jpg", "-o", tmp_path / "o.png"], "style image not found"),
        (["stylize", c, "-s", f"{a}:abc", "-o", tmp_path / "o.png"], "bad weight 'abc'"),
        (["stylize", c, "-s", f"{a}:-1", "-o", tmp_path / "o.png"], "non-negative"),
        (["stylize", c, "-s", f"{a}:nan", "-o", tmp_path / "o.png"], "finite"),
        (["stylize", c, "-s", f"{a}:0", "-o", tmp_path / "o.png"], "all --style weights are zero"),
        (["stylize", c, "-s", a, "--alpha=1.5", "-o", tmp_path / "o.png"], "--alpha must be in [0, 1]"),
        (["stylize", c, "-s", a, "-o", tmp_path / "o.xyz"], "cannot tell the image format"),
        (["stylize", c, "-s", a, "-o", tmp_path / "afile" / "o.png"], "not a writable folder"),
        (["stylize", c, c, "-s", a, "-o", tmp_path / "o.png"], "give a folder"),
        (["stylize", c, "-s", a, "-o", tmp_path / "o.png", "--model", tmp_path / "nomodel"], "no weights directory"),
    ]
    for argv, needle in cases:
        if "--model" not in argv:
            argv = argv + ["--model", m]
        rc, _, err = run(argv, capsys)
        assert_one_line_error(rc, err, needle)
    assert not (tmp_path / "o.png").exists()


def test_no_decoder_installed(monkeypatch, files, capsys, tmp_path):
    from stylemix.models import pretrained

    monkeypatch.setattr(pretrained, "shipped_weights", lambda: tmp_path / "weights")
    rc, _, err = run(["stylize", files["content"], "-s", files["a"], "-o", tmp_path / "o.png"], capsys)
    assert_one_line_error(rc, err, "no trained decoder is installed", "stylemix weights convert adain")


def test_offline_without_cached_encoder_names_the_fetch_command(files, capsys, tmp_path, make_calibrated_model):
    from stylemix.models.io import save_model_dir

    model = make_calibrated_model()
    save_model_dir(model, "adain", model.config, tmp_path / "m", encoder="vgg16-hed")  # no encoder in the dir
    assert os.environ["STYLEMIX_OFFLINE"] == "1"
    rc, _, err = run(["stylize", files["content"], "-s", files["a"], "--model", tmp_path / "m",
                      "-o", tmp_path / "o.png"], capsys)
    assert_one_line_error(rc, err, "STYLEMIX_OFFLINE", "stylemix weights fetch")


@pytest.mark.slow
def test_subprocess_error_has_no_traceback(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "stylemix.inference.cli", "stylize", str(tmp_path / "missing.png"),
                           "-s", "x.png", "-o", str(tmp_path / "o.png")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"stylemix stylize: error: no such content image: {tmp_path / 'missing.png'}"


# --- edge cases: huge weights, alpha 0, spec-like file names, thin images, devices, outputs --------------

def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def test_huge_finite_weights_do_not_overflow_to_a_flat_image(tiny_model_dir, files, capsys):
    c, a, b, d = files["content"], files["a"], files["b"], files["dir"]
    rc, out, err = run(["stylize", c, "-s", f"{a}:1e308", "-s", f"{b}:1e308", "--model", tiny_model_dir,
                        "-o", d / "huge.png", "--json"], capsys)
    assert rc == 0, err
    assert json.loads(out)["weights"] == [0.5, 0.5]
    assert run(["stylize", c, "-s", a, "-s", b, "--model", tiny_model_dir, "-o", d / "equal.png"], capsys)[0] == 0
    assert np.array_equal(_pixels(d / "huge.png"), _pixels(d / "equal.png"))
    assert _pixels(d / "huge.png").std() > 10  # not flat grey


def test_alpha_zero_writes_the_content_photo(tiny_model_dir, files, capsys):
    out = files["dir"] / "same.png"
    rc, _, err = run(["stylize", files["content"], "-s", files["a"], "--alpha", "0", "--model", tiny_model_dir,
                      "-o", out], capsys)
    assert rc == 0, err
    assert np.array_equal(_pixels(out), _pixels(files["content"]))


def test_a_file_named_like_a_weighted_spec_is_that_file(tiny_model_dir, files, capsys):
    d = files["dir"]
    odd = d / "x.png:0.5"  # the docs promise colons in names work
    odd.write_bytes(files["a"].read_bytes())
    assert parse_style_spec(str(odd)) == (str(odd), None)
    assert parse_style_spec(f"{odd}:0.25") == (str(odd), 0.25)
    assert parse_style_spec(str(d / "a.png:0.5")) == (str(d / "a.png"), 0.5)  # no such file: a weight
    rc, _, err = run(["stylize", files["content"], "-s", odd, "--model", tiny_model_dir, "-o", d / "o1.png"], capsys)
    assert rc == 0, err
    assert run(["stylize", files["content"], "-s", files["a"], "--model", tiny_model_dir, "-o", d / "o2.png"],
               capsys)[0] == 0
    assert np.array_equal(_pixels(d / "o1.png"), _pixels(d / "o2.png"))


def test_a_thin_image_is_refused_with_its_own_size(tiny_model_dir, files, capsys):
    tall = files["dir"] / "tall.png"
    Image.fromarray(np.zeros((5000, 20, 3), np.uint8)).save(tall)
    rc, _, err = run(["stylize", tall, "-s", files["a"], "--model", tiny_model_dir, "-o", files["dir"] / "o.png"],
                     capsys)
    assert_one_line_error(rc, err, "20x5000 px", "max_size 1024", "4x1024 px", "at least 16 px")


@pytest.mark.parametrize("device, needle", [("bogus", "unknown device 'bogus': use cpu, cuda"),
                                            ("cuda:x", "unknown device 'cuda:x'"),
                                            ("cuda", "needs a CUDA GPU"), ("cuda:7", "cuda:7")])
def test_bad_devices_are_one_line_before_any_work(files, capsys, tmp_path, device, needle):
    if device.startswith("cuda:7") and torch.cuda.device_count() > 7 or device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has that GPU")
    o = tmp_path / "o.png"
    for argv in (["stylize", files["content"], "-s", files["a"], "-o", o, "--model", tmp_path / "nomodel"],
                 ["grid", files["content"], "-s", files["a"], "-s", files["b"], "-o", o],
                 ["optimize", files["content"], "-s", files["a"], "-o", o],
                 ["styles", "add", "x", files["a"]], ["demo", "-o", o]):
        rc, _, err = run([*argv, "--device", device], capsys)
        assert_one_line_error(rc, err, needle)
    assert not o.exists()


def test_outputs_are_checked_before_the_model_loads(files, capsys, tmp_path):
    c, a = files["content"], files["a"]
    nomodel = ["--model", tmp_path / "nomodel"]  # any check that came after loading would name the model instead
    cases = [
        (["stylize", c, "-s", a, "-o", tmp_path / "o.xbm"], "cannot write", "XBM"),
        (["stylize", c, "-s", a, "-o", tmp_path / "o.bufr"], "cannot write", "BUFR"),
        (["stylize", c, "-s", a, "-o", "/proc/x.png"], "cannot write /proc/x.png", "not a writable folder"),
        (["grid", c, "-s", a, "-s", files["b"], "-o", tmp_path / "g.xbm"], "Pillow cannot save"),
        (["grid", c, "-s", a, "-s", files["b"], "-o", tmp_path / "g.png", "--cells", a], "--cells", "is a file"),
        (["sheet", c, "-o", "/proc/sheet.png"], "not a writable folder"),
        (["optimize", c, "-s", a, "-o", tmp_path / "o.bufr"], "BUFR"),
    ]
    for argv, *needles in cases:
        rc, _, err = run([*argv, *nomodel], capsys)
        assert_one_line_error(rc, err, *needles)
    rc, _, err = run(["demo", "-o", "/proc/d.png"], capsys)  # the sweep beside it is checked too
    assert_one_line_error(rc, err, "not a writable folder")
    rc, _, err = run(["demo", "-o", tmp_path / "d.png", "--max-size", 0], capsys)
    assert_one_line_error(rc, err, "--max-size must be at least 16 pixels, got 0")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png", "in"]  # nothing written, no temp files


def test_outputs_reaching_an_input_through_links_are_refused(files, capsys, tmp_path):
    c = files["content"]
    before = c.read_bytes()
    os.symlink(c, tmp_path / "sym.png")
    os.link(c, tmp_path / "hard.png")
    os.symlink(c.parent, tmp_path / "alias")
    for out in (tmp_path / "sym.png", tmp_path / "hard.png", tmp_path / "alias" / c.name):
        rc, _, err = run(["stylize", c, "-s", files["a"], "-o", out, "--model", tmp_path / "nomodel"], capsys)
        assert_one_line_error(rc, err, "is one of the inputs")
    assert c.read_bytes() == before

def test_save_labels_equal_to_output_is_refused(files, capsys, tmp_path):
    pytest.importorskip("maxflow")
    o = tmp_path / "o.png"
    for labels, needle in ((o, f"output {o} is given twice"), (tmp_path / "x" / ".." / "o.png", "are the same file")):
        rc, _, err = run(["stylize", files["content"], "-s", files["a"], "--modes", 2, "--save-labels", labels,
                          "-o", o, "--model", tmp_path / "nomodel"], capsys)
        assert_one_line_error(rc, err, needle)
    assert not o.exists()


def test_grid_cells_never_overwrite_an_input(tiny_model_dir, capsys, tmp_path):
    cells = tmp_path / "cells"
    cells.mkdir()
    content = cells / "cell_00_01.png"  # a content file named like a cell, in the --cells folder
    Image.fromarray((np.random.default_rng(0).random((40, 48, 3)) * 255).astype(np.uint8)).save(content)
    style = _png(tmp_path / "s.png", 1, 32, 32)
    before = content.read_bytes()
    rc, _, err = run(["grid", content, "-s", style, "-s", style, "--steps", 2, "--cells", cells,
                      "--model", tiny_model_dir, "-o", tmp_path / "g.png"], capsys)
    assert_one_line_error(rc, err, "cell_00_01.png is one of the inputs")
    assert content.read_bytes() == before and not (tmp_path / "g.png").exists()


def test_folder_mode_keeps_existing_outputs_unless_overwrite(tiny_model_dir, files, capsys):
    _png(files["dir"] / "in" / "d.png", 3, 33, 45)
    out = files["dir"] / "outdir"
    out.mkdir()
    (out / "c.png").write_bytes(b"an earlier result")
    argv = ["stylize", files["dir"] / "in", "-s", files["a"], "--model", tiny_model_dir, "-o", out]
    rc, stdout, err = run(argv, capsys)
    assert rc == 0 and (out / "c.png").read_bytes() == b"an earlier result"
    assert err.strip() == (f"stylemix stylize: 1 of 2 outputs already exist in {out} and are kept "
                           f"(pass --overwrite to replace them)")
    assert Image.open(out / "d.png").size == (45, 33)
    rc, stdout, err = run(argv, capsys)  # everything exists: nothing to do, said so
    assert rc == 0 and "2 of 2 outputs already exist" in err
    rc, _, err = run([*argv, "--overwrite"], capsys)
    assert rc == 0, err
    assert Image.open(out / "c.png").size == (48, 40)


def _broken_model_dir(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_non_finite_weights_dir_is_refused_on_load_and_by_info(tiny_model_dir, files, capsys, tmp_path):
    from safetensors.torch import load_file, save_file

    bad = _broken_model_dir(tiny_model_dir, tmp_path / "nan-model")
    state = load_file(str(bad / "decoder.safetensors"))
    key = sorted(state)[0]
    state[key] = state[key].clone()
    state[key].view(-1)[:3] = torch.tensor([float("nan"), float("inf"), -float("inf")])
    save_file(state, str(bad / "decoder.safetensors"))
    before = (bad / "decoder.safetensors").read_bytes()
    o = tmp_path / "o.png"
    rc, _, err = run(["stylize", files["content"], "-s", files["a"], "--model", bad, "-o", o], capsys)
    assert_one_line_error(rc, err, "decoder.safetensors holds NaN or inf values", f"{key} (3 of")
    assert not o.exists()
    rc, out, err = run(["weights", "info", bad], capsys)
    assert_one_line_error(rc, err, "holds NaN or inf values")
    assert "decoder.safetensors" in out and key in out  # the description is still printed
    rc, out, err = run(["weights", "info", bad, "--json"], capsys)
    assert rc == 2 and "NaN" in json.loads(out)["files"]["decoder.safetensors"]["problem"]
    assert (bad / "decoder.safetensors").read_bytes() == before
    assert run(["weights", "info", tiny_model_dir], capsys)[0] == 0


@pytest.mark.parametrize("edit, needles", [
    (lambda m: [], ["config.json must hold a JSON object", "got list"]),
    (lambda m: {k: v for k, v in m.items() if k != "encoder"}, ["needs an 'encoder' field"]),
    (lambda m: {**m, "model": ["adain"]}, ["'model' must be a registered model name"]),
    (lambda m: {**m, "config": {**m["config"], "decoder": {**m["config"]["decoder"], "width": "1.0"}}},
     ['config field config.decoder.width must be a number, got "1.0" (a string)']),
    (lambda m: {**m, "config": {**m["config"], "decoder": {**m["config"]["decoder"], "skips": "relu3_1"}}},
     ['config field config.decoder.skips must be a list of strings, got "relu3_1" (a string)']),
    (lambda m: {**m, "config": {**m["config"], "decoder": []}},
     ["config field config.decoder must be a JSON object (DecoderConfig), got [] (a list)"]),
    (lambda m: {**m, "config": {**m["config"], "style_taps": ["relu1_1", True]}},
     ["config field config.style_taps[1] must be a string, got true"]),
])
def test_malformed_config_json_is_one_line_naming_the_field(tiny_model_dir, files, capsys, tmp_path, edit, needles):
    bad = _broken_model_dir(tiny_model_dir, tmp_path / "m")
    meta = json.loads((bad / "config.json").read_text())
    if edit(meta) is not None and isinstance(edit(meta), dict) and "encoder" not in edit(meta):
        (bad / "encoder.safetensors").unlink()  # a model without its own encoder needs the field
    (bad / "config.json").write_text(json.dumps(edit(meta)))
    rc, _, err = run(["stylize", files["content"], "-s", files["a"], "--model", bad, "-o", tmp_path / "o.png"], capsys)
    assert_one_line_error(rc, err, str(bad / "config.json"), *needles)


# --- weights -------------------------------------------------------------------------------------------

TV_CFG = {"vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]}


def _torchvision_features(cfg: list) -> nn.Sequential:
    """torchvision's VGG `features` layout written with plain layers (conv, ReLU, ..., MaxPool)."""
    layers, c = [], 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(inplace=True)]
            c = v
    return nn.Sequential(*layers)


def _adain_vgg() -> nn.Sequential:
    """AdaIN's vgg_normalised: 1x1 input conv, then reflection-padded VGG19 with ceil-mode pools."""
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512]
    layers, c = [nn.Conv2d(3, 3, 1)], 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
        else:
            layers += [nn.ReflectionPad2d(1), nn.Conv2d(c, v, 3), nn.ReLU()]
            c = v
    return nn.Sequential(*layers)


def _adain_decoder() -> nn.Sequential:
    """AdaIN's decoder: relu4_1 (512) -> RGB, reflection pads, nearest upsampling."""
    spec = [(512, 256), "U", (256, 256), (256, 256), (256, 256), (256, 128), "U", (128, 128), (128, 64), "U",
            (64, 64), (64, 3)]
    layers = []
    for s in spec:
        if s == "U":
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
        else:
            layers += [nn.ReflectionPad2d(1), nn.Conv2d(*s, 3), nn.ReLU()]
    return nn.Sequential(*layers[:-1])  # no ReLU after the last conv


def test_adain_layouts_match_the_original_indices():
    vgg, dec = _adain_vgg(), _adain_decoder()
    assert [i for i, m in enumerate(vgg) if isinstance(m, nn.Conv2d)][:4] == [0, 2, 5, 9]
    assert [i for i, m in enumerate(dec) if isinstance(m, nn.Conv2d)][:3] == [1, 5, 8]
    assert len(vgg) == 53 and len(dec) == 29


def test_convert_torchvision_round_trip(tmp_path, capsys, stylemix_cache):
    from stylemix.models.convert import ENCODER_PRESETS
    from stylemix.models.io import load_into
    from stylemix.models.pretrained import resolve_encoder
    from stylemix.models.vgg import VGGEncoder

    torch.manual_seed(0)
    features = _torchvision_features(TV_CFG["vgg16"]).eval()
    state = {f"features.{k}": v for k, v in features.state_dict().items()}
    state.update({"classifier.0.weight": torch.randn(8, 16), "classifier.0.bias": torch.randn(8)})
    torch.save(state, tmp_path / "vgg16.pth")
    rc, out, err = run(["weights", "convert", "torchvision", "--arch", "vgg16", tmp_path / "vgg16.pth",
                        "-o", tmp_path / "enc"], capsys)
    assert rc == 0, err
    enc = VGGEncoder(ENCODER_PRESETS["vgg16-imagenet"], ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_3"))
    load_into(enc, tmp_path / "enc" / "encoder.safetensors")
    x = torch.rand(1, 3, 40, 48)
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        ours = enc(x)
        for tap, idx in {"relu1_1": 1, "relu2_1": 6, "relu3_1": 11, "relu4_1": 18, "relu5_3": 29}.items():
            ref = features[: idx + 1]((x - mean) / std)
            assert torch.allclose(ours[tap], ref, rtol=1e-4, atol=1e-5 * float(ref.abs().max())), tap
    # default -o: the cache, where the preset name resolves
    rc, _, err = run(["weights", "convert", "torchvision", "--arch", "vgg16", tmp_path / "vgg16.pth"], capsys)
    assert rc == 0, err
    assert resolve_encoder("vgg16-imagenet") == stylemix_cache / "encoders" / "vgg16-imagenet"
    # the wrong architecture fails with a clear message
    rc, _, err = run(["weights", "convert", "torchvision", "--arch", "vgg19", tmp_path / "vgg16.pth",
                      "-o", tmp_path / "enc19"], capsys)
    assert_one_line_error(rc, err, "expected 16 convs, found 13")


@pytest.mark.slow
def test_convert_adain_round_trip(tmp_path, capsys):
    from stylemix.inference import Stylizer
    from stylemix.models import functional as Fn

    torch.manual_seed(0)
    vgg, dec = _adain_vgg().eval(), _adain_decoder().eval()
    torch.save(vgg.state_dict(), tmp_path / "vgg_normalised.pth")
    torch.save(dec.state_dict(), tmp_path / "decoder.pth")
    out = tmp_path / "adain-original"
    rc, stdout, err = run(["weights", "convert", "adain", "--vgg", tmp_path / "vgg_normalised.pth",
                           "--decoder", tmp_path / "decoder.pth", "-o", out], capsys)
    assert rc == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "decoder.safetensors", "encoder.safetensors"]
    s = Stylizer.from_pretrained(out)
    m = s.model
    x, st = torch.rand(1, 3, 32, 40), torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        ours = m.encode(x)
        for tap, idx in {"relu1_1": 3, "relu2_1": 10, "relu3_1": 17, "relu4_1": 30}.items():
            ref = vgg[: idx + 1](x)
            assert torch.allclose(ours[tap], ref, rtol=1e-4, atol=1e-5 * float(ref.abs().max())), tap
        f = vgg[:31](x)
        ref_img = dec(f)
        assert torch.allclose(m.decode({"relu4_1": f}), ref_img, rtol=1e-4, atol=1e-5 * float(ref_img.abs().max()))
        # the whole pipeline: the original AdaIN recipe written by hand
        target = Fn.adain(f, *Fn.mean_std(vgg[:31](st)))
        expected = dec(target).clamp(0, 1)
    got = s.stylize(x, st, return_tensor=True, max_size=None, style_size=None)
    assert torch.allclose(got, expected, atol=1e-4)

    rc, stdout, _ = run(["weights", "info", out, "--json"], capsys)
    assert rc == 0
    info = json.loads(stdout)
    assert info["config"]["encoder"] == "vgg19-adain" and info["config"]["model"] == "adain"
    dec_info = info["files"]["decoder.safetensors"]
    assert dec_info["sha256"] == hashlib.sha256((out / "decoder.safetensors").read_bytes()).hexdigest()
    assert dec_info["tensors"]["decoder.convs.0.weight"] == ["F32", [256, 512, 3, 3]]
    assert info["config"]["vgg_sha256"] == hashlib.sha256((tmp_path / "vgg_normalised.pth").read_bytes()).hexdigest()
    rc, stdout, _ = run(["weights", "info", out], capsys)
    assert rc == 0 and "sha256" in stdout and "encoder.safetensors" in stdout and "input_conv.weight" in stdout


class _Evil:
    """An arbitrary pickled object: torch.load(weights_only=True) must refuse to build it."""


def test_convert_bad_files(tmp_path, capsys):
    (tmp_path / "junk.pth").write_text("not a checkpoint")
    torch.save({"0.weight": torch.zeros(3, 3, 1, 1), "0.bias": torch.zeros(3)}, tmp_path / "short.pth")
    torch.save({"x": _Evil()}, tmp_path / "evil.pth")
    cases = [
        (["weights", "convert", "adain", "--vgg", tmp_path / "nope.pth", "--decoder", tmp_path / "nope.pth",
          "-o", tmp_path / "o"], "no such checkpoint file"),
        (["weights", "convert", "adain", "--vgg", tmp_path / "junk.pth", "--decoder", tmp_path / "junk.pth",
          "-o", tmp_path / "o"], "not a loadable PyTorch state dict"),
        (["weights", "convert", "adain", "--vgg", tmp_path / "evil.pth", "--decoder", tmp_path / "evil.pth",
          "-o", tmp_path / "o"], "not a loadable PyTorch state dict"),
        (["weights", "convert", "adain", "--vgg", tmp_path / "short.pth", "--decoder", tmp_path / "short.pth",
          "-o", tmp_path / "o"], "expected 16 convs"),
        (["weights", "info", tmp_path / "nodir"], "no such weights dir"),
        (["weights", "info", tmp_path / "junk.pth"], "junk.pth is a file; give a weights dir"),
    ]
    for argv, needle in cases:
        rc, _, err = run(argv, capsys)
        assert_one_line_error(rc, err, needle)
    assert not (tmp_path / "o").exists()


def test_fetch_uses_the_cache(stylemix_cache, capsys):
    enc = stylemix_cache / "encoders" / "vgg16-hed"
    enc.mkdir(parents=True)
    (enc / "encoder.safetensors").write_bytes(b"")  # cached: no download is attempted
    rc, out, _ = run(["weights", "fetch"], capsys)
    assert rc == 0 and str(enc) in out


@pytest.mark.slow
def test_fetch_refuses_offline_and_a_cache_that_is_a_file(stylemix_cache, capsys, monkeypatch, tmp_path):
    import subprocess as sp

    monkeypatch.setattr(sp, "run", lambda *a, **k: pytest.fail("no download may start"))
    assert os.environ["STYLEMIX_OFFLINE"] == "1"
    rc, out, err = run(["weights", "fetch"], capsys)
    assert_one_line_error(rc, err, "STYLEMIX_OFFLINE is set", "unset it")
    assert out == "" and not (stylemix_cache / "encoders").exists()
    monkeypatch.delenv("STYLEMIX_OFFLINE")
    afile = tmp_path / "cache-file"
    afile.write_text("not a folder")
    for cache in (afile, afile / "sub"):
        monkeypatch.setenv("STYLEMIX_CACHE", str(cache))
        rc, out, err = run(["weights", "fetch"], capsys)
        assert_one_line_error(rc, err, f"STYLEMIX_CACHE={cache} is not usable", f"{afile} is a file")
        assert out == "" and "fetching" not in err
    assert afile.read_text() == "not a folder"


def test_style_scale_flag_matches_the_api_and_bad_values_exit_2(tiny_model_dir, files, capsys, tmp_path):
    o = tmp_path / "o.png"
    for bad in ("-1", "nan", "inf"):
        rc, _, err = run(["stylize", files["content"], "-s", files["a"], "-o", o, "--model", tiny_model_dir,
                          "--style-scale", bad], capsys)
        assert_one_line_error(rc, err, "--style-scale")
    assert not o.exists()
    rc, _, _ = run(["stylize", files["content"], "-s", files["a"], "-o", o, "--model", tiny_model_dir,
                    "--style-scale", "20", "--dtype", "fp32"], capsys)  # 40 x 48 px painted at 22 x 26
    assert rc == 0
    from stylemix.inference import Stylizer

    st = Stylizer.from_pretrained(str(tiny_model_dir), dtype="fp32")
    want = np.asarray(st.stylize(files["content"], [files["a"]], style_scale=20.0)).astype(int)
    full = np.asarray(st.stylize(files["content"], [files["a"]], style_scale=None)).astype(int)
    assert np.abs(_pixels(o).astype(int) - want).max() <= 1 and np.abs(full - want).max() > 1
