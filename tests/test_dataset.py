"""`stylemix dataset` / inference/dataset.py: the style draw and the shards are functions of the path alone,
the shards' union is the unsharded run byte for byte, a rerun finishes an interrupted run without duplicate
manifest rows, every manifest row rebuilds its image with `Stylizer.stylize`, and bad input is one line."""
from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylemix.inference import dataset as D
from stylemix.models.device import local_device
from stylemix.models.files import list_images
from stylemix.inference.api import Stylizer
from stylemix.inference.cli import main
from stylemix.inference.images import load_image, to_pil
from stylemix.inference.styles import builtin_styles

CONTENTS = ["cats/c1.png", "cats/c2.jpg", "cats/deep/c3.png", "dogs/d1.png", "dogs/d3.png", "root.png"]


def _img(path: Path, seed: int, h: int = 32, w: int = 40) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)  # blocky: something for the encoder to see
    Image.fromarray(np.kron(base, np.ones((8, 8, 1), dtype=np.uint8))).save(path)
    return path


@pytest.fixture
def tree(tmp_path) -> dict[str, Path]:
    """SRC with class folders (one nested), 3 style images, an empty DST location."""
    src = tmp_path / "src"
    for i, rel in enumerate(CONTENTS):
        _img(src / rel, i, 32 + 8 * (i % 2), 40)
    styles = tmp_path / "paintings"
    for i, name in enumerate(["a.png", "b.png", "sub/c.png"]):
        _img(styles / name, 100 + i, 32, 32)
    return {"src": src, "styles": styles, "root": tmp_path}


def _run(tree, dst, model, **kw):
    kw = {"styles": [str(tree["styles"])], "model": str(model), "max_size": 48, "workers": 1, "progress": False,
          **kw}
    return D.stylize_dataset(tree["src"], dst, **kw)


def _files(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` except manifests and settings: {relative path: bytes}."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.startswith(("manifest", D.SETTINGS_FILE))}


def _rows(folder: Path) -> list[dict]:
    return [json.loads(line) for p in sorted(folder.glob("manifest*.jsonl")) for line in p.read_text().splitlines()]


def _cli(argv, capsys):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _one_line_error(rc, err, *needles):
    assert rc == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stylemix dataset: error: "), err
    for n in needles:
        assert n in lines[0], (n, lines[0])


# --- pure functions -----------------------------------------------------------------------------------

def test_the_draw_is_a_function_of_seed_path_and_copy_and_uniform():
    paths = [f"class{i % 7}/img{i}.jpg" for i in range(3000)]
    draws = [D.draw_styles(0, p, 0, 5) for p in paths]
    assert draws == [D.draw_styles(0, p, 0, 5) for p in reversed(paths)][::-1]  # order plays no part
    counts = Counter(d.indices[0] for d in draws)
    assert sorted(counts) == [0, 1, 2, 3, 4]
    assert all(500 < n < 700 for n in counts.values()), counts  # 600 +- 100 is > 4 binomial sd
    assert all(d.weights == (1.0,) for d in draws)
    other_seed = sum(D.draw_styles(1, p, 0, 5) != d for p, d in zip(paths, draws))
    other_copy = sum(D.draw_styles(0, p, 1, 5) != d for p, d in zip(paths, draws))
    assert 2200 < other_seed < 2600 and 2200 < other_copy < 2600  # independent draws differ 4/5 of the time


def test_a_blend_draws_two_different_styles_and_weights_in_thousandths():
    draws = [D.draw_styles(3, f"x/{i}.png", 0, 4, blend=True) for i in range(2000)]
    for d in draws:
        a, b = d.indices
        assert a != b and 0 <= a < 4 and 0 <= b < 4
        assert 0.001 <= d.weights[0] <= 0.999 and sum(d.weights) == pytest.approx(1.0, abs=1e-12)
        assert d.weights[0] * 1000 == pytest.approx(round(d.weights[0] * 1000), abs=1e-9)
    pairs = Counter(d.indices for d in draws)
    assert len(pairs) == 12  # every ordered pair of 4 styles occurs
    w = np.array([d.weights[0] for d in draws])
    assert 0.45 < w.mean() < 0.55 and (w < 0.1).sum() > 100 and (w > 0.9).sum() > 100  # spread over (0, 1)
    with pytest.raises(ValueError, match="at least 2"):
        D.draw_styles(0, "a.png", 0, 1, blend=True)


def test_shards_partition_any_file_list_by_path_alone():
    paths = [f"c{i % 3}/{i}.png" for i in range(600)]
    shards = [D.Shard(i, 3) for i in range(3)]
    owners = [[s.index for s in shards if p in s] for p in paths]
    assert all(len(o) == 1 for o in owners)  # every file in exactly one shard
    sizes = Counter(o[0] for o in owners)
    assert all(150 < n < 250 for n in sizes.values()), sizes
    assert all(p in D.Shard() for p in paths)


def test_shard_parsing_and_the_torchrun_environment():
    assert D.Shard.parse("1/4") == D.Shard(1, 4) and D.Shard.parse(" 0 / 1 ") == D.Shard(0, 1)
    for bad in ("4/4", "-1/4", "1/0", "a/b", "1", "1/2/3", ""):
        with pytest.raises(ValueError):
            D.Shard.parse(bad)
    assert D.Shard.from_env({}) is None
    assert D.Shard.from_env({"RANK": "5", "WORLD_SIZE": "16", "LOCAL_RANK": "1"}) == D.Shard(5, 16)
    with pytest.raises(ValueError, match="RANK"):
        D.Shard.from_env({"RANK": "x", "WORLD_SIZE": "2"})
    assert D.Shard().manifest_name == "manifest.jsonl"
    assert D.Shard(2, 16).manifest_name == "manifest-00002-of-00016.jsonl"


def test_the_shard_count_fits_the_manifest_name():
    assert D.Shard.parse("99998/99999").manifest_name == "manifest-99998-of-99999.jsonl"
    for bad in ("99999999999999999999/999999999999999999999", "0/100000"):
        with pytest.raises(ValueError, match="1 <= N <= 99999"):
            D.Shard.parse(bad)


def test_one_gpu_per_process():
    assert local_device("cuda", {"LOCAL_RANK": "3"}) == "cuda:3"
    assert local_device("cuda:1", {"LOCAL_RANK": "3"}) == "cuda:1"  # an explicit index is kept
    assert local_device("cpu", {"LOCAL_RANK": "3"}) == "cpu"
    if not torch.cuda.is_available():
        assert local_device(None, {"LOCAL_RANK": "3"}) == "cpu"


def test_images_listed_recursively_and_outputs_mirror_them(tree):
    (tree["src"] / "cats" / "notes.txt").write_text("not an image")
    assert list_images(tree["src"]) == sorted(CONTENTS)
    assert D.output_name("cats/c2.jpg", 0, 1, "png") == "cats/c2.png"
    assert D.output_name("cats/c2.jpg", 1, 3, "webp") == "cats/c2_s1.webp"
    assert D.output_name("top.png", 0, 2, "jpg") == "top_s0.jpg"


def test_each_folder_is_listed_once_through_links_and_loops(tree, tiny_model_dir, tmp_path):
    (tree["src"] / "dogs" / "loop").symlink_to("..")  # a loop back to SRC
    assert list_images(tree["src"]) == sorted(CONTENTS)
    (tree["src"] / "cats" / "deep" / "up").symlink_to("..", target_is_directory=True)  # a loop to cats/
    (tree["src"] / "dogs2").symlink_to("dogs")  # a second name for a folder that is listed already
    _img(tmp_path / "elsewhere" / "e.png", 20)
    (tree["src"] / "linked").symlink_to(tmp_path / "elsewhere")  # a folder outside SRC: followed
    listed = list_images(tree["src"])
    assert listed == sorted([*CONTENTS, "linked/e.png"])
    report = _run(tree, tree["root"] / "out", tiny_model_dir)
    assert (report.total, report.written) == (7, 7)
    assert sorted(r["content"] for r in _rows(tree["root"] / "out")) == listed
    (tree["src"] / "outputs").symlink_to(tree["root"] / "out")  # DST reached from SRC: outputs are not inputs
    assert (_run(tree, tree["root"] / "out", tiny_model_dir).total, _files(tree["root"] / "out").keys()) == \
        (7, {str(Path(r).with_suffix(".png").as_posix()) for r in listed})
    styles = tree["styles"]
    (styles / "sub" / "back").symlink_to("..")
    assert D.expand_styles([str(styles)]) == [f"{styles}/a.png", f"{styles}/b.png", f"{styles}/sub/c.png"]


def test_a_fifo_among_the_contents_is_a_skipped_row_not_a_wait(tree, tiny_model_dir, unblock_fifo):
    fifo = tree["src"] / "cats" / "fifo.png"
    os.mkfifo(fifo)
    unblock_fifo(fifo)
    report = _run(tree, tree["root"] / "out", tiny_model_dir)
    assert (report.written, report.skipped) == (6, 1)
    (row,) = [r for r in _rows(tree["root"] / "out") if r["status"] == "skipped"]
    assert row["content"] == "cats/fifo.png" and "fifo.png is not a regular file" in row["error"]


def test_expand_styles(tree, tmp_path):
    folder = str(tree["styles"])
    assert D.expand_styles([folder]) == [f"{folder}/a.png", f"{folder}/b.png", f"{folder}/sub/c.png"]
    assert D.expand_styles([f"{folder}/b.png", folder]) == [f"{folder}/b.png", f"{folder}/a.png",
                                                            f"{folder}/sub/c.png"]  # duplicates dropped
    bank = sorted(builtin_styles())
    assert len(bank) > 30 and D.expand_styles(["bank"]) == bank
    assert D.expand_styles([bank[0], bank[0]]) == [bank[0]]
    with pytest.raises(ValueError, match="unknown style"):
        D.expand_styles(["impressionsm-01"])
    with pytest.raises(FileNotFoundError, match="no such style"):
        D.expand_styles(["paintings/missing.jpg"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no style images"):
        D.expand_styles([str(tmp_path / "empty")])


# --- runs ---------------------------------------------------------------------------------------------

def test_outputs_mirror_the_tree_and_each_manifest_row_rebuilds_its_image(tree, tiny_model_dir):
    dst = tree["root"] / "out"
    report = _run(tree, dst, tiny_model_dir, alpha=0.8, max_size=32)  # contents are 40 px wide: downscaled
    expected = sorted(str(Path(r).with_suffix(".png").as_posix()) for r in CONTENTS)
    assert sorted(_files(dst)) == expected
    assert (report.total, report.written, report.existing, report.skipped) == (6, 6, 0, 0)
    assert report.manifest == dst / "manifest.jsonl"
    rows = _rows(dst)
    assert sorted(r["output"] for r in rows) == expected
    labels = D.expand_styles([str(tree["styles"])])
    stylizer = Stylizer.from_pretrained(tiny_model_dir)
    for r in rows:
        assert r["status"] == "ok" and r["alpha"] == 0.8 and r["model"] == str(tiny_model_dir)
        d = D.draw_styles(0, r["content"], 0, 3)
        assert r["styles"] == [labels[i] for i in d.indices] and r["weights"] == [1.0]
        # the row alone rebuilds the image: the same call `stylemix stylize` makes
        again = stylizer.stylize(tree["src"] / r["content"], r["styles"], r["weights"], alpha=r["alpha"],
                                 max_size=r["max_size"])
        out = np.asarray(Image.open(dst / r["output"]))
        assert np.array_equal(np.asarray(again), out), r["output"]
        content = np.asarray(to_pil(load_image(tree["src"] / r["content"], 32)), dtype=np.float32)
        assert out.shape == content.shape and max(out.shape) == 32
        assert np.abs(out - content).mean() > 5  # really stylised
    assert len({r["styles"][0] for r in rows}) >= 2  # the draw spreads over the styles
    settings = json.loads((dst / D.SETTINGS_FILE).read_text())["settings"]
    assert settings["styles"] == labels and settings["seed"] == 0 and settings["alpha"] == 0.8


def test_shards_together_equal_the_unsharded_run_byte_for_byte(tree, tiny_model_dir):
    kw = {"blend": True, "per_image": 2, "seed": 7, "ext": "webp"}
    whole = _run(tree, tree["root"] / "whole", tiny_model_dir, **kw)
    parts = [_run(tree, tree["root"] / "parts", tiny_model_dir, shard=D.Shard(i, 2), **kw) for i in range(2)]
    assert all(p.written > 0 for p in parts) and sum(p.written for p in parts) == whole.written == 12
    a, b = _files(tree["root"] / "whole"), _files(tree["root"] / "parts")
    assert sorted(a) == sorted(b) and len(a) == 12 and "cats/deep/c3_s1.webp" in a
    assert all(a[k] == b[k] for k in a)  # byte for byte
    assert sorted(p.name for p in (tree["root"] / "parts").glob("manifest*")) == \
        ["manifest-00000-of-00002.jsonl", "manifest-00001-of-00002.jsonl"]
    key = lambda r: json.dumps(r, sort_keys=True)  # noqa: E731
    assert sorted(map(key, _rows(tree["root"] / "whole"))) == sorted(map(key, _rows(tree["root"] / "parts")))
    blends = _rows(tree["root"] / "whole")
    assert all(len(r["styles"]) == 2 and r["styles"][0] != r["styles"][1] for r in blends)
    assert len({tuple(r["weights"]) for r in blends}) > 6


def test_torchrun_environment_picks_the_shard(tree, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    report = _run(tree, tree["root"] / "ranked", tiny_model_dir)
    assert report.manifest.name == "manifest-00001-of-00002.jsonl"
    assert sorted(r["content"] for r in _rows(tree["root"] / "ranked")) == [r for r in CONTENTS if r in D.Shard(1, 2)]
    with pytest.raises(ValueError, match="torchrun"):
        _run(tree, tree["root"] / "ranked", tiny_model_dir, shard=D.Shard(0, 2))


def test_an_interrupted_run_resumes_to_the_same_bytes_without_duplicate_rows(tree, tiny_model_dir, monkeypatch):
    clean = tree["root"] / "clean"
    _run(tree, clean, tiny_model_dir)
    dst = tree["root"] / "resumed"
    real, calls = Stylizer.stylize, []

    def interrupted(self, *a, **k):  # Ctrl-C while the third image is being stylised
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(Stylizer, "stylize", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _run(tree, dst, tiny_model_dir)
    monkeypatch.setattr(Stylizer, "stylize", real)
    assert len(_files(dst)) == 2 and len(_rows(dst)) == 2  # exactly the completed images, no temp files
    assert not [p for p in dst.rglob("*.tmp")]
    report = _run(tree, dst, tiny_model_dir)
    assert (report.written, report.existing) == (4, 2)
    assert _files(dst) == _files(clean)
    assert sorted(r["output"] for r in _rows(dst)) == sorted(r["output"] for r in _rows(clean))  # once each

    # killed between an image and its row, mid-line: the row comes back on the next run, the rest stay
    manifest = dst / "manifest.jsonl"
    lines = manifest.read_text().splitlines(keepends=True)
    manifest.write_text("".join(lines[:-1]) + lines[-1][:20])
    report = _run(tree, dst, tiny_model_dir)
    assert (report.written, report.existing) == (0, 6)
    assert sorted(r["output"] for r in _rows_tolerant(dst)) == sorted(r["output"] for r in _rows(clean))

    # an output deleted and made again keeps its single row; a complete shard loads no model
    (dst / "dogs" / "d1.png").unlink()
    assert _run(tree, dst, tiny_model_dir).written == 1 and _files(dst) == _files(clean)
    assert len(_rows_tolerant(dst)) == 6
    monkeypatch.setattr(Stylizer, "from_pretrained", None)
    assert _run(tree, dst, tiny_model_dir).existing == 6


def test_a_torn_manifest_line_is_repaired_when_the_manifest_is_reopened(tree, tiny_model_dir):
    dst = tree["root"] / "out"
    _run(tree, dst, tiny_model_dir)
    manifest = dst / "manifest.jsonl"
    rows = manifest.read_text().splitlines(keepends=True)
    manifest.write_text("".join(rows[:-1]) + rows[-1][:20])  # killed mid-row: the row's image is complete
    assert _run(tree, dst, tiny_model_dir).existing == 6
    assert manifest.read_text().endswith("\n")
    assert sorted(r["output"] for r in _rows(dst)) == sorted(json.loads(r)["output"] for r in rows)  # each once
    whole = manifest.read_text()
    manifest.write_text(whole[:-1])  # killed before the newline: the row itself is complete and is kept
    (dst / json.loads(rows[0])["output"]).unlink()  # something for the rerun to do
    assert _run(tree, dst, tiny_model_dir).written == 1
    assert manifest.read_text() == whole


def test_a_second_run_of_the_same_shard_is_refused_while_the_first_writes(tree, tiny_model_dir):
    import fcntl

    dst = tree["root"] / "out"
    dst.mkdir()
    with open(dst / "manifest.jsonl", "ab") as first:  # what a run holds while it writes rows
        fcntl.flock(first.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(ValueError, match="another run is writing .*manifest.jsonl .*another --shard"):
            _run(tree, dst, tiny_model_dir)
        assert (dst / "manifest.jsonl").read_bytes() == b"" and _files(dst) == {}  # refused before any image
        assert _run(tree, dst, tiny_model_dir, shard=D.Shard(1, 2)).written > 0  # another shard: its own file
    assert _run(tree, dst, tiny_model_dir).written > 0  # the lock is released with the file: the run proceeds
    assert sorted(r["output"] for r in _rows(dst)) == sorted(_files(dst))  # every output listed once


def _rows_tolerant(folder: Path) -> list[dict]:
    rows = []
    for line in (folder / "manifest.jsonl").read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows


def test_unreadable_contents_are_logged_as_skipped_once_and_the_run_goes_on(tree, tiny_model_dir):
    (tree["src"] / "cats" / "broken.jpg").write_bytes(b"this is not a jpeg")
    png = (tree["src"] / "root.png").read_bytes()
    (tree["src"] / "dogs" / "truncated.png").write_bytes(png[: len(png) // 2])
    dst = tree["root"] / "out"
    report = _run(tree, dst, tiny_model_dir)
    assert (report.written, report.skipped) == (6, 2)
    skipped = {r["content"]: r for r in _rows(dst) if r["status"] == "skipped"}
    assert sorted(skipped) == ["cats/broken.jpg", "dogs/truncated.png"]
    assert "broken.jpg" in skipped["cats/broken.jpg"]["error"]
    assert not (dst / "cats" / "broken.png").exists()
    again = _run(tree, dst, tiny_model_dir)
    assert (again.written, again.existing, again.skipped) == (0, 6, 2)
    assert len(_rows(dst)) == 8  # retried, but not logged twice


def test_a_dataset_is_not_continued_with_other_settings(tree, tiny_model_dir):
    dst = tree["root"] / "out"
    _run(tree, dst, tiny_model_dir, shard=D.Shard(0, 2))
    with pytest.raises(ValueError, match=r"seed 0 -> 1"):
        _run(tree, dst, tiny_model_dir, shard=D.Shard(1, 2), seed=1)
    extra = _img(tree["root"] / "extra.png", 50)
    with pytest.raises(ValueError, match=r"styles: 3 -> 4, #4 was nothing, now '.*extra.png'"):
        _run(tree, dst, tiny_model_dir, styles=[str(tree["styles"]), str(extra)])
    report = _run(tree, dst, tiny_model_dir, seed=1, overwrite=True)
    assert report.written == 6 and json.loads((dst / D.SETTINGS_FILE).read_text())["settings"]["seed"] == 1


# --- CLI ----------------------------------------------------------------------------------------------

def test_cli_writes_the_dataset_and_resumes(tree, tiny_model_dir, capsys):
    dst = tree["root"] / "out"
    argv = ["dataset", tree["src"], "-o", dst, "--styles", tree["styles"], "--model", tiny_model_dir,
            "--max-size", 32, "--ext", "jpg", "--no-progress"]
    rc, out, err = _cli(argv, capsys)
    assert rc == 0, err
    assert out.startswith("wrote 6 of 6 images") and "img/s" in out
    assert sorted(_files(dst)) == sorted(str(Path(r).with_suffix(".jpg").as_posix()) for r in CONTENTS)
    assert max(Image.open(dst / "root.jpg").size) == 32
    rc, out, err = _cli(argv, capsys)
    assert rc == 0 and out.startswith("wrote 0 of 6 images") and "6 already complete" in out


@pytest.mark.parametrize("case", ["empty", "inside", "contains", "no-style", "empty-styles", "blend-one",
                                  "shard", "shard-range", "shard-huge", "collision", "per-image", "ext",
                                  "torchrun"])
def test_cli_bad_input_is_one_line(case, tree, tiny_model_dir, capsys, monkeypatch):
    src, root = tree["src"], tree["root"]
    args = {"src": src, "-o": root / "out", "--styles": tree["styles"]}
    extra: list = []
    needle = ""
    if case == "empty":
        (root / "nothing" / "sub").mkdir(parents=True)
        args["src"], needle = root / "nothing", "no images"
    elif case == "inside":
        args["-o"], needle = src / "stylized", "inside SRC"
    elif case == "contains":
        args["-o"], needle = root, "inside DST"
    elif case == "no-style":
        args["--styles"], needle = "not-a-style-name", "unknown style"
    elif case == "empty-styles":
        (root / "nopaintings").mkdir()
        args["--styles"], needle = root / "nopaintings", "no style images"
    elif case == "blend-one":
        args["--styles"], extra, needle = tree["styles"] / "a.png", ["--blend"], "at least 2 styles"
    elif case == "shard":
        extra, needle = ["--shard", "two/4"], "--shard"
    elif case == "shard-range":
        extra, needle = ["--shard", "4/4"], "0 <= I < N"
    elif case == "shard-huge":
        extra, needle = ["--shard", "99999999999999999999/999999999999999999999"], "1 <= N <= 99999"
    elif case == "collision":
        _img(src / "cats" / "c1.jpg", 9)
        needle = "cats/c1.jpg and cats/c1.png would both be written to cats/c1.png"
    elif case == "per-image":
        extra, needle = ["--per-image", "0"], "per-image"
    elif case == "ext":
        extra, needle = ["--ext", "xyz"], "ext 'xyz' is not an image format"  # not the probe name 'x.xyz'
    elif case == "torchrun":
        monkeypatch.setenv("RANK", "0")
        monkeypatch.setenv("WORLD_SIZE", "2")
        extra, needle = ["--shard", "1/2"], "torchrun"
    argv = ["dataset", args["src"], "-o", args["-o"], "--styles", args["--styles"], "--model", tiny_model_dir,
            "--no-progress", *extra]
    rc, _, err = _cli(argv, capsys)
    _one_line_error(rc, err, needle)
    assert not (root / "out").exists()


def test_cli_unreadable_style_and_changed_settings_are_one_line(tree, tiny_model_dir, capsys):
    (tree["styles"] / "zz-broken.png").write_bytes(b"not a png")
    base = ["dataset", tree["src"], "-o", tree["root"] / "out", "--model", tiny_model_dir, "--no-progress"]
    rc, _, err = _cli([*base, "--styles", tree["styles"]], capsys)
    _one_line_error(rc, err, "zz-broken.png")
    assert not list((tree["root"] / "out").rglob("*.png"))
    rc, _, err = _cli([*base, "--styles", tree["styles"] / "a.png", "--shard", "0/2"], capsys)
    assert rc == 0, err
    rc, _, err = _cli([*base, "--styles", tree["styles"] / "a.png", "--alpha", "0.5", "--shard", "1/2"], capsys)
    _one_line_error(rc, err, "alpha 1.0 -> 0.5")
