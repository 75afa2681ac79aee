"""Blind A/B preference sheets (benchmarks/preference.py): the sheets hide which method is which, the key maps
back, the results are shown at 100 %, and the tally counts and Cohen's kappa are right."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from benchmarks import preference

RED, BLUE = (255, 0, 0), (0, 0, 255)


def make_data(root, contents=5, styles=4, size=(24, 16), a=None, b=None):
    """Photos c<i>.jpg, styles s<j>.png and results A/B named c<i>__s<j>.png. `a`/`b` give a result's pixels:
    a colour, or None for seeded noise (distinct per pair and method)."""
    rng = np.random.default_rng(0)
    folders = {k: root / k for k in ("A_new", "B_old", "photos", "styles")}
    for f in folders.values():
        f.mkdir()
    for i in range(contents):
        Image.new("RGB", (40, 30), (10 * i, 100, 50)).save(folders["photos"] / f"c{i}.jpg")
    for j in range(styles):
        Image.new("RGB", (30, 40), (50, 10 * j, 150)).save(folders["styles"] / f"s{j}.png")
    for i in range(contents):
        for j in range(styles):
            for k, colour in (("A_new", a), ("B_old", b)):
                im = (Image.new("RGB", size, colour) if colour else
                      Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)))
                im.save(folders[k] / f"c{i}__s{j}.png")
    return folders


def sheets(folders, out, key, *extra):
    return preference.main(["sheets", "--a", str(folders["A_new"]), "--b", str(folders["B_old"]),
                            "--content", str(folders["photos"]), "--style", str(folders["styles"]),
                            "--out", str(out), "--key", str(key), *extra])


def crop(sheet, box):
    x, y, w, h = box
    return np.asarray(sheet)[y:y + h, x:x + w]


def test_sheets_are_deterministic_for_a_seed(tmp_path):
    f = make_data(tmp_path)
    assert sheets(f, tmp_path / "o1", tmp_path / "k1.json", "--pairs", "6") == 0
    assert sheets(f, tmp_path / "o2", tmp_path / "k2.json", "--pairs", "6") == 0
    assert sheets(f, tmp_path / "o3", tmp_path / "k3.json", "--pairs", "6", "--seed", "1") == 0
    k1, k2, k3 = (json.loads((tmp_path / f"k{i}.json").read_text())["sheets"] for i in (1, 2, 3))
    assert k1 == k2 and len(k1) == 6
    assert [(e["pair"], e["a_side"]) for e in k1] != [(e["pair"], e["a_side"]) for e in k3]
    for e in k1:
        assert (tmp_path / "o1" / e["file"]).read_bytes() == (tmp_path / "o2" / e["file"]).read_bytes()


def test_the_coin_shuffles_sides_and_the_key_maps_back(tmp_path):
    f = make_data(tmp_path, a=RED, b=BLUE)  # 20 pairs
    assert sheets(f, tmp_path / "out", tmp_path / "key.json") == 0
    key = json.loads((tmp_path / "key.json").read_text())
    assert key["label_a"] == "A_new" and key["label_b"] == "B_old"
    assert sorted(e["pair"] for e in key["sheets"]) == sorted(f"c{i}__s{j}" for i in range(5) for j in range(4))
    assert [e["sheet"] for e in key["sheets"]] == list(range(1, 21))
    assert {e["a_side"] for e in key["sheets"]} == {1, 2}  # both sides occur
    assert [e["pair"] for e in key["sheets"]] != sorted(e["pair"] for e in key["sheets"])  # order is shuffled
    for e in key["sheets"]:
        sheet = Image.open(tmp_path / "out" / e["file"]).convert("RGB")
        a, b = str(e["a_side"]), str(3 - e["a_side"])
        assert (crop(sheet, e["boxes"][a]) == RED).all() and (crop(sheet, e["boxes"][b]) == BLUE).all()
        assert e["boxes"]["1"][0] < e["boxes"]["2"][0]  # 1 is the left one


def test_results_are_on_the_sheet_at_100_percent(tmp_path):
    f = make_data(tmp_path, contents=2, styles=2, size=(37, 23))  # noise: any resampling would show
    assert sheets(f, tmp_path / "out", tmp_path / "key.json") == 0
    for e in json.loads((tmp_path / "key.json").read_text())["sheets"]:
        sheet = Image.open(tmp_path / "out" / e["file"])
        left, right = ("A_new", "B_old") if e["a_side"] == 1 else ("B_old", "A_new")
        for side, method in (("1", left), ("2", right)):
            want = np.asarray(Image.open(f[method] / f"{e['pair']}.png"))
            assert np.array_equal(crop(sheet, e["boxes"][side]), want)


def test_nothing_on_the_raters_side_names_a_pair_or_a_method(tmp_path):
    f = make_data(tmp_path, contents=2, styles=2)
    assert sheets(f, tmp_path / "out", tmp_path / "key.json", "--label-a", "OURS", "--label-b", "THEIRS") == 0
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == ["ANSWERS-TEMPLATE.txt", "BRIEF.md", "sheet-01.png", "sheet-02.png", "sheet-03.png", "sheet-04.png"]
    secret = ["OURS", "THEIRS", "A_new", "B_old", "c0", "s1", "__"]
    for name in ("BRIEF.md", "ANSWERS-TEMPLATE.txt"):
        text = (tmp_path / "out" / name).read_text()
        assert not [s for s in secret if s in text], name
    brief = (tmp_path / "out" / "BRIEF.md").read_text()
    assert preference.BRIEF in brief and preference.BRIEF in preference.__doc__ and "halos" in brief
    for p in (tmp_path / "out").glob("sheet-*.png"):
        assert png_chunks(p.read_bytes()) <= {b"IHDR", b"IDAT", b"IEND"}  # pixels only: no text or other metadata


def png_chunks(data: bytes) -> set[bytes]:
    """The chunk types of a PNG file."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    types, i = set(), 8
    while i < len(data):
        n = int.from_bytes(data[i:i + 4], "big")
        types.add(data[i + 4:i + 8])
        i += 12 + n
    return types


def test_key_inside_out_is_refused(tmp_path, capsys):
    f = make_data(tmp_path, contents=1, styles=2)
    assert sheets(f, tmp_path / "out", tmp_path / "out" / "sub" / "key.json") == 2
    err = capsys.readouterr().err
    assert err.startswith("preference: error: --key") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case", ["missing folder", "no common names", "size mismatch", "bad pairs", "no photo"])
def test_input_errors_are_one_line(tmp_path, capsys, case):
    f = make_data(tmp_path, contents=2, styles=1)
    extra = []
    if case == "missing folder":
        f["B_old"] = tmp_path / "nowhere"
    elif case == "no common names":
        for p in f["B_old"].iterdir():
            p.rename(p.with_name("x" + p.name))
    elif case == "size mismatch":
        Image.new("RGB", (16, 24), BLUE).save(f["B_old"] / "c1__s0.png")
    elif case == "bad pairs":
        extra = ["--pairs", "3"]
    else:
        (f["photos"] / "c1.jpg").unlink()
    assert sheets(f, tmp_path / "out", tmp_path / "key.json", *extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("preference: error:") and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "key.json").exists()


def hand_made_key(tmp_path):
    sides = {1: 1, 2: 2, 3: 1, 4: 2, 5: 1, 6: 2}
    key = {"format": preference.KEY_FORMAT, "label_a": "new", "label_b": "old",
           "sheets": [{"sheet": s, "pair": f"p{s}__s", "a_side": a} for s, a in sides.items()]}
    path = tmp_path / "key.json"
    path.write_text(json.dumps(key))
    return path


def test_tally_counts_and_kappa(tmp_path, capsys):
    key = hand_made_key(tmp_path)
    # sides of A: 1 2 1 2 1 2
    # r1 says      1 1 = 2 1 1  ->  A B tie A A B  (A 3, B 2, tie 1)
    # r2 says      1 2 = 2 2 1  ->  A A tie A B B  (A 3, B 2, tie 1)
    (tmp_path / "r1.txt").write_text("# rater one\n\n1 1 the left keeps the face\n2 1\n3 =\n04 2\n5 1\n6 1\n")
    (tmp_path / "r2.txt").write_text("1 1\n2 2\n3 =\n4 2\n5 2 halo on 1\n6 1\n")
    out = tmp_path / "tally.json"
    assert preference.main(["tally", "--key", str(key), "--answers", str(tmp_path / "r1.txt"),
                            "--answers", str(tmp_path / "r2.txt"), "--json", str(out)]) == 0
    t = json.loads(out.read_text())
    for r in ("r1", "r2"):
        assert (t["raters"][r]["A"], t["raters"][r]["B"], t["raters"][r]["tie"]) == (3, 2, 1)
    assert t["raters"]["r1"]["choices"] == {"1": "A", "2": "B", "3": "tie", "4": "A", "5": "A", "6": "B"}
    # agree on sheets 1, 3, 4, 6: p_o = 4/6; p_e = (3/6)(3/6) + (2/6)(2/6) + (1/6)(1/6) = 14/36 = 7/18
    # kappa = (2/3 - 7/18) / (1 - 7/18) = (5/18) / (11/18) = 5/11
    (g,) = t["agreement"]
    assert g["raters"] == ["r1", "r2"] and g["agree"] == 4 and g["share"] == pytest.approx(4 / 6)
    assert g["kappa"] == pytest.approx(5 / 11)
    assert [d["sheet"] for d in t["disagreed"]] == [2, 5]
    assert t["disagreed"][0] == {"sheet": 2, "pair": "p2__s", "choices": {"r1": "B", "r2": "A"}}
    printed = capsys.readouterr().out
    assert "Cohen's kappa 0.455" in printed and "p2__s" in printed


def test_kappa_and_sign_test_edge_cases():
    assert preference.cohen_kappa(["A", "B", "A"], ["A", "B", "A"]) == pytest.approx(1.0)
    assert preference.cohen_kappa(["A", "A"], ["A", "A"]) is None  # p_e = 1: undefined
    assert preference.sign_test(0, 0) == 1.0
    assert preference.sign_test(6, 0) == pytest.approx(2 / 64)  # both tails of Binomial(6, 1/2)


@pytest.mark.parametrize("text, where", [("1 1\n2 x\n", ":2:"), ("1 1\n\n9 2\n", ":3: sheet 9 is not in the key"),
                                         ("1 1\n1 2\n", ":2: sheet 1 answered a second time"),
                                         ("# c\n1\n", ":2: expected"), ("1 1\n2 2\n", "no answer for 4 sheet(s)")])
def test_bad_answer_files_are_one_line_errors(tmp_path, capsys, text, where):
    key = hand_made_key(tmp_path)
    answers = tmp_path / "rater.txt"
    answers.write_text(text)
    assert preference.main(["tally", "--key", str(key), "--answers", str(answers)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"preference: error: {answers}") and where in err and err.count("\n") == 1
