"""Blind A/B preference sheets: people compare two style-transfer methods picture by picture.

    python benchmarks/preference.py sheets --a out/new --b out/old --content photos --style styles \\
        --pairs 30 --out sheets --key keys/new-vs-old.json
    python benchmarks/preference.py tally --key keys/new-vs-old.json --answers alice.txt --answers bob.txt

`sheets` pairs the results of A and B by name (`<content>__<style>.png`, the same names in both folders; the
photo is `<content>.jpg|png|webp` in --content, the style image `<style>.<ext>` in --style) and writes one PNG
per pair: the photo and the style image on top, shrunk to fit a --box, and below them the two results side by
side at 100 % (never resampled), labelled only 1 and 2. Sheets are numbered in a shuffled order and a seeded
coin per sheet puts A on the left or the right, so neither the files nor the pictures tell which method is
which. The key that maps back (sheet -> pair, side of A, the labels of A and B) is a JSON file kept away from
the raters (--key, refused inside --out). --out also gets BRIEF.md (the brief below and the answer format)
and ANSWERS-TEMPLATE.txt. `tally` reads the key and one answer file per rater and prints A wins / B wins /
ties per rater (with a two-sided sign test over the decided sheets) and, for two or more raters, their
agreement and Cohen's kappa over {A, B, tie}, and the sheets they disagreed on.

Rater brief
-----------
Each sheet shows a photo and a style image on top and, below them, two pictures labelled 1 and 2: the
same photo painted in that style by two different methods. Pick the better style transfer. The better one:

- takes on the style image's palette, brush strokes and textures: it looks painted in that style, not like
  the photo with a tint or a filter laid over it;
- keeps the subject of the photo readable: people, animals and objects stay recognisable and are not
  disfigured;
- has no artefacts: halos or glowing outlines along edges, ghost or double outlines, embossed or
  plastic-looking surfaces, grids, streaks, crosshatch or screen-door patterns, blotches.

Judge the pictures at 100 % (actual pixels: no zooming in or out), as a person looks at a picture. Pick the
better of 1 and 2; answer = only if you truly cannot choose. Which side a method lands on changes from sheet
to sheet, so there is nothing to learn from the position.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import sys
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a clean clone
    sys.path.insert(0, str(ROOT))

from benchmarks._cli import run  # noqa: E402
from stylemix.models.io import atomic_write  # noqa: E402

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp")
KEY_FORMAT = "stylemix-preference-key/1"
CHOICES = ("A", "B", "tie")
BRIEF = __doc__.split("Rater brief\n-----------\n", 1)[1].strip()
ANSWER_FORMAT = """Write one plain-text file: one line per sheet, the sheet number, then 1, 2 or =, and if you like a
short reason after it (ignored by the tally):

    01 2
    02 1   2 has a halo around the roof
    03 =

Blank lines and lines starting with # are ignored. Answer every sheet once. ANSWERS-TEMPLATE.txt in this
folder lists the sheet numbers: copy it, fill it in, and hand it back under your name."""
# sheet layout: light neutral grey around the pictures, dark text
BACKGROUND, INK, FAINT = (224, 224, 224), (32, 32, 32), (96, 96, 96)
MARGIN, GAP = 24, 24


class PreferenceError(ValueError):
    """A problem with the inputs, said in one line."""


@dataclass(frozen=True)
class Pair:
    name: str  # <content>__<style>
    content: Path
    style: Path
    a: Path
    b: Path


# -- sheets --------------------------------------------------------------------------------------
def images_by_stem(folder: Path, what: str) -> dict[str, Path]:
    """{stem: path} of the images in `folder`; PreferenceError if it is missing or a stem has two files."""
    if not folder.is_dir():
        raise PreferenceError(f"{what} folder {folder} does not exist")
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or p.suffix.lower() not in IMAGE_EXTS or not p.is_file():
            continue
        if p.stem in out:
            raise PreferenceError(f"{what} folder {folder} has both {out[p.stem].name} and {p.name}; keep one")
        out[p.stem] = p
    return out


def find_pairs(a: Path, b: Path, content: Path, style: Path) -> list[Pair]:
    """The pairs named `<content>__<style>` in both result folders, sorted by name, each with its photo and
    style image; PreferenceError naming what is missing."""
    ra, rb = images_by_stem(a, "A"), images_by_stem(b, "B")
    photos, styles = images_by_stem(content, "content"), images_by_stem(style, "style")
    names = sorted(n for n in ra.keys() & rb.keys() if "__" in n)
    if not names:
        raise PreferenceError(f"no common <content>__<style> image names in {a} ({len(ra)} images) "
                              f"and {b} ({len(rb)} images)")
    pairs = []
    for n in names:
        parts = n.split("__")
        if len(parts) != 2 or not all(parts):
            raise PreferenceError(f"cannot tell the photo from the style in {n!r}: expected <content>__<style> "
                                  "with one '__'")
        c, s = parts
        if c not in photos:
            raise PreferenceError(f"pair {n}: no photo {c}.jpg/.png/.webp in {content}")
        if s not in styles:
            raise PreferenceError(f"pair {n}: no style image {s}.jpg/.png/.webp in {style}")
        pairs.append(Pair(n, photos[c], styles[s], ra[n], rb[n]))
    return pairs


def plan(pairs: list[Pair], n: int | None, seed: int) -> list[tuple[Pair, bool]]:
    """(pair, A on the left?) in sheet order: all pairs or a seeded subset of n, shuffled, one coin each."""
    if n is not None and not 1 <= n <= len(pairs):
        raise PreferenceError(f"--pairs must be between 1 and {len(pairs)} (the common names), got {n}")
    rng = random.Random(seed)
    chosen = sorted(rng.sample(pairs, n), key=lambda p: p.name) if n is not None else list(pairs)
    rng.shuffle(chosen)
    return [(p, rng.random() < 0.5) for p in chosen]


def open_rgb(path: Path) -> Image.Image:
    """The image as 8-bit RGB as a viewer shows it: EXIF orientation applied, transparency on white."""
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                im = im.convert("RGBA")
                flat = Image.new("RGB", im.size, (255, 255, 255))
                flat.paste(im, mask=im.getchannel("A"))
                return flat
            return im.convert("RGB")
    except (OSError, Image.DecompressionBombError) as e:
        raise PreferenceError(f"cannot read {path}: {e}") from None


def image_size(path: Path) -> tuple[int, int]:
    """(w, h) as shown (EXIF rotation counted) without decoding the pixels."""
    try:
        with Image.open(path) as im:
            w, h = im.size
            return (h, w) if im.getexif().get(0x0112) in (5, 6, 7, 8) else (w, h)
    except (OSError, Image.DecompressionBombError) as e:
        raise PreferenceError(f"cannot read {path}: {e}") from None


def font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow < 10.1 or no FreeType: the small bitmap font
        return ImageFont.load_default()


def fit(im: Image.Image, box: int) -> Image.Image:
    """Shrink (never enlarge) so the long side is at most `box`."""
    if max(im.size) <= box:
        return im
    s = box / max(im.size)
    return im.resize((max(1, round(im.width * s)), max(1, round(im.height * s))), Image.LANCZOS)


def render_sheet(label: str, photo: Image.Image, style: Image.Image, left: Image.Image, right: Image.Image,
                 box: int) -> tuple[Image.Image, dict[str, list[int]]]:
    """One sheet: 'Sheet <label>' and the question, the photo and the style image fitted into `box`, then
    `left` and `right` at 100 % under '1' and '2'. Returns the sheet and each result's [x, y, w, h]."""
    if left.size != right.size:
        raise ValueError(f"the two results differ in size: {left.size} and {right.size}")
    big, mid, small = font(30), font(20), font(16)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_w = lambda s, f: math.ceil(measure.textlength(s, font=f))  # noqa: E731
    title, question = f"Sheet {label}", "Which is the better style transfer: 1 or 2?"
    photo, style = fit(photo, box), fit(style, box)
    cell = max(photo.width, style.width, text_w("photo", small))
    top_w = 2 * cell + GAP
    rw, rh = left.size
    bottom_w = 2 * rw + GAP
    width = 2 * MARGIN + max(top_w, bottom_w, text_w(title, big) + GAP + text_w(question, mid))
    y_caption = MARGIN + 44
    y_top = y_caption + 22
    y_labels = y_top + max(photo.height, style.height) + GAP
    y_results = y_labels + 40
    sheet = Image.new("RGB", (width, y_results + rh + MARGIN), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    draw.text((MARGIN, MARGIN), title, font=big, fill=INK)
    draw.text((width - MARGIN - text_w(question, mid), MARGIN + 8), question, font=mid, fill=FAINT)
    x0 = (width - top_w) // 2
    for k, (caption, im) in enumerate((("photo", photo), ("style", style))):
        x = x0 + k * (cell + GAP) + (cell - im.width) // 2
        draw.text((x, y_caption), caption, font=small, fill=FAINT)
        sheet.paste(im, (x, y_top))
    x0 = (width - bottom_w) // 2
    boxes = {}
    for k, (side, im) in enumerate((("1", left), ("2", right))):
        x = x0 + k * (rw + GAP)
        draw.text((x + (rw - text_w(side, big)) // 2, y_labels), side, font=big, fill=INK)
        sheet.paste(im, (x, y_results))
        boxes[side] = [x, y_results, rw, rh]
    return sheet, boxes


def write_sheets(args: argparse.Namespace) -> int:
    a, b, out, key = Path(args.a), Path(args.b), Path(args.out), Path(args.key)
    if key.resolve().is_relative_to(out.resolve()):
        raise PreferenceError(f"--key {key} is inside --out {out}: the raters would see it; put it elsewhere")
    if args.box < 16:
        raise PreferenceError(f"--box must be at least 16 px, got {args.box}")
    old = sorted(out.glob("sheet-*.png")) if out.is_dir() else []
    if (old or key.exists()) and not args.overwrite:
        what = f"{out} already holds sheet-*.png files" if old else f"{key} already exists"
        raise PreferenceError(f"{what} (from an earlier run?); give --overwrite to replace them, or new paths")
    pairs = find_pairs(a, b, Path(args.content), Path(args.style))
    for p in pairs:
        (wa, ha), (wb, hb) = image_size(p.a), image_size(p.b)
        if (wa, ha) != (wb, hb):
            raise PreferenceError(f"pair {p.name}: A is {wa}x{ha} px, B is {wb}x{hb} px; the two results must be "
                                  "the same size")
    order = plan(pairs, args.pairs, args.seed)
    digits = max(2, len(str(len(order))))
    label_a, label_b = args.label_a or a.resolve().name, args.label_b or b.resolve().name
    entries, written = [], set()
    for i, (p, a_left) in enumerate(order, 1):
        label = f"{i:0{digits}d}"
        ra, rb = open_rgb(p.a), open_rgb(p.b)
        sheet, boxes = render_sheet(label, open_rgb(p.content), open_rgb(p.style), *((ra, rb) if a_left else (rb, ra)),
                                    box=args.box)
        file = out / f"sheet-{label}.png"
        atomic_write(file, lambda tmp: sheet.save(tmp, format="PNG"))
        written.add(file.name)
        entries.append({"sheet": i, "file": file.name, "pair": p.name, "a_side": 1 if a_left else 2,
                        "content": p.content.name, "style": p.style.name, "boxes": boxes})
    for f in old:  # an earlier run's sheets past this run's count would confuse the raters
        if f.name not in written:
            f.unlink()
    brief = f"# Rater brief\n\n{BRIEF}\n\n## Your answers ({len(order)} sheets)\n\n{ANSWER_FORMAT}\n"
    atomic_write(out / "BRIEF.md", lambda tmp: Path(tmp).write_text(brief))
    template = ("# <sheet> <1|2|=> [reason]   (see BRIEF.md)\n"
                + "".join(f"{e['sheet']:0{digits}d} \n" for e in entries))
    atomic_write(out / "ANSWERS-TEMPLATE.txt", lambda tmp: Path(tmp).write_text(template))
    record = {"format": KEY_FORMAT, "seed": args.seed, "label_a": label_a, "label_b": label_b,
              "a": str(a.resolve()), "b": str(b.resolve()), "content": str(Path(args.content).resolve()),
              "style": str(Path(args.style).resolve()), "out": str(out.resolve()), "sheets": entries}
    atomic_write(key, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=1) + "\n"))
    print(f"wrote {len(order)} sheets, BRIEF.md and ANSWERS-TEMPLATE.txt to {out} (of {len(pairs)} common pairs); "
          f"key: {key} (A = {label_a}, B = {label_b}); keep the key away from the raters")
    return 0


# -- tally ---------------------------------------------------------------------------------------
def load_key(path: Path) -> dict:
    """The key written by `sheets`; PreferenceError if it is missing or not one."""
    try:
        key = json.loads(path.read_text())
    except FileNotFoundError:
        raise PreferenceError(f"key {path} does not exist") from None
    except (OSError, ValueError) as e:
        raise PreferenceError(f"key {path} is not readable JSON: {e}") from None
    if not isinstance(key, dict) or key.get("format") != KEY_FORMAT or not isinstance(key.get("sheets"), list):
        raise PreferenceError(f"{path} is not a key written by `preference.py sheets` (format {KEY_FORMAT})")
    return key


def read_answers(path: Path, a_side: dict[int, int]) -> dict[int, str]:
    """{sheet: 'A' | 'B' | 'tie'} from a rater's file; PreferenceError naming the file and line of any
    malformed line, unknown or repeated sheet, and the sheets left unanswered."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise PreferenceError(f"cannot read answers {path}: {e}") from None
    out: dict[int, str] = {}
    for no, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{path}:{no}"
        parts = line.split(maxsplit=2)
        if len(parts) < 2 or not parts[0].isdigit() or parts[1] not in ("1", "2", "="):
            raise PreferenceError(f"{where}: expected '<sheet number> <1|2|=> [reason]', got {line!r}")
        sheet = int(parts[0])
        if sheet not in a_side:
            raise PreferenceError(f"{where}: sheet {sheet} is not in the key (sheets 1 to {len(a_side)})")
        if sheet in out:
            raise PreferenceError(f"{where}: sheet {sheet} answered a second time")
        out[sheet] = "tie" if parts[1] == "=" else "A" if int(parts[1]) == a_side[sheet] else "B"
    missing = sorted(a_side.keys() - out.keys())
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (", ..." if len(missing) > 10 else "")
        raise PreferenceError(f"{path}: no answer for {len(missing)} sheet(s): {shown}")
    return out


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact sign test p-value of wins vs losses (ties left out); 1.0 with nothing decided."""
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(wins, losses) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def cohen_kappa(x: list[str], y: list[str], categories: tuple[str, ...] = CHOICES) -> float | None:
    """Cohen's kappa of two raters' labels on the same items: (p_o - p_e) / (1 - p_e). None when undefined
    (both raters gave one and the same label to everything, so p_e = 1)."""
    n = len(x)
    p_o = sum(u == v for u, v in zip(x, y)) / n
    p_e = sum((x.count(c) / n) * (y.count(c) / n) for c in categories)
    return None if p_e == 1 else (p_o - p_e) / (1 - p_e)


def tally(key: dict, answers: dict[str, dict[int, str]]) -> dict:
    """Per-rater counts, pairwise agreement and the disagreements, as a JSON-able dict."""
    sheets = sorted(e["sheet"] for e in key["sheets"])
    pair = {e["sheet"]: e["pair"] for e in key["sheets"]}
    raters = {}
    for name, got in answers.items():
        n = {c: sum(v == c for v in got.values()) for c in CHOICES}
        raters[name] = {"A": n["A"], "B": n["B"], "tie": n["tie"], "sheets": len(sheets),
                        "sign_test_p": sign_test(n["A"], n["B"]), "choices": {str(s): got[s] for s in sheets}}
    agreement = []
    for r1, r2 in combinations(answers, 2):
        x, y = [answers[r1][s] for s in sheets], [answers[r2][s] for s in sheets]
        agreement.append({"raters": [r1, r2], "agree": sum(u == v for u, v in zip(x, y)),
                          "share": sum(u == v for u, v in zip(x, y)) / len(sheets), "kappa": cohen_kappa(x, y)})
    disagreed = [{"sheet": s, "pair": pair[s], "choices": {r: answers[r][s] for r in answers}}
                 for s in sheets if len({answers[r][s] for r in answers}) > 1]
    return {"label_a": key.get("label_a", "A"), "label_b": key.get("label_b", "B"), "sheets": len(sheets),
            "raters": raters, "agreement": agreement, "disagreed": disagreed}


def report(t: dict) -> str:
    n, width = t["sheets"], max(5, *(len(r) for r in t["raters"]))
    lines = [f"A = {t['label_a']}, B = {t['label_b']}; {n} sheets, {len(t['raters'])} rater(s)",
             f"{'rater':<{width}}  A wins  B wins  ties  sign test p (A vs B, ties left out)"]
    for name, r in t["raters"].items():
        lines.append(f"{name:<{width}}  {r['A']:6d}  {r['B']:6d}  {r['tie']:4d}  {r['sign_test_p']:.3g}")
    for g in t["agreement"]:
        k = "n/a (one label throughout)" if g["kappa"] is None else f"{g['kappa']:.3f}"
        lines.append(f"agreement {g['raters'][0]} vs {g['raters'][1]}: {g['agree']}/{n} = {100 * g['share']:.0f} %, "
                     f"Cohen's kappa {k}")
    if len(t["raters"]) > 1:
        lines.append(f"disagreed on {len(t['disagreed'])} of {n} sheets" + (":" if t["disagreed"] else ""))
        for d in t["disagreed"]:
            lines.append(f"  sheet {d['sheet']:>3}  {d['pair']}  "
                         + ", ".join(f"{r} {c}" for r, c in d["choices"].items()))
    return "\n".join(lines)


def run_tally(args: argparse.Namespace) -> int:
    key_path = Path(args.key)
    key = load_key(key_path)
    a_side = {}
    for e in key["sheets"]:
        ok = isinstance(e, dict) and isinstance(e.get("sheet"), int) and e.get("a_side") in (1, 2) and "pair" in e
        if not ok or e["sheet"] in a_side:
            raise PreferenceError(f"key {key_path} has a malformed or repeated sheet entry: {str(e)[:120]}")
        a_side[e["sheet"]] = e["a_side"]
    paths = [Path(p) for p in args.answers]
    if len({p.resolve() for p in paths}) != len(paths):
        raise PreferenceError("the same --answers file is given twice; give one file per rater")
    stems = [p.stem for p in paths]
    names = stems if len(set(stems)) == len(stems) else [str(p) for p in paths]
    answers = {name: read_answers(p, a_side) for name, p in zip(names, paths)}
    t = tally(key, answers)
    print(report(t))
    if args.json:
        atomic_write(args.json, lambda tmp: Path(tmp).write_text(json.dumps({"key": str(key_path), **t}, indent=1)
                                                                 + "\n"))
        print(f"wrote {args.json}")
    return 0


# -- command line --------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sheets", help="write the blind A/B sheets, BRIEF.md and the key")
    s.add_argument("--a", required=True, help="folder of method A's results, <content>__<style>.png")
    s.add_argument("--b", required=True, help="folder of method B's results, the same names as --a")
    s.add_argument("--content", required=True, help="folder of the photos, <content>.jpg/.png/.webp")
    s.add_argument("--style", required=True, help="folder of the style images, <style>.jpg/.png/.webp")
    s.add_argument("--pairs", type=int, default=None,
                   help="sheets to make: a seeded random subset of N pairs (default: every common name)")
    s.add_argument("--seed", type=int, default=0, help="seed of the subset, the sheet order and the sides (default 0)")
    s.add_argument("--box", type=int, default=384,
                   help="the photo and the style image are shrunk to fit this many px (default 384)")
    s.add_argument("--label-a", default=None, help="name of A in the key (default: the --a folder's name)")
    s.add_argument("--label-b", default=None, help="name of B in the key (default: the --b folder's name)")
    s.add_argument("--out", required=True, help="folder for the sheets, BRIEF.md and ANSWERS-TEMPLATE.txt")
    s.add_argument("--key", required=True, help="JSON key to write, outside --out (the raters must not see it)")
    s.add_argument("--overwrite", action="store_true",
                   help="replace the sheets and key of an earlier run (default: refuse)")
    t = sub.add_parser("tally", help="count the raters' answers against the key")
    t.add_argument("--key", required=True, help="the key written by `sheets`")
    t.add_argument("--answers", action="append", required=True,
                   help="one rater's answer file: lines '<sheet> <1|2|=> [reason]' (repeatable: one per rater)")
    t.add_argument("--json", default=None, help="also write the figures to this JSON file (default: none)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run("preference", write_sheets if args.command == "sheets" else run_tally, args, (PreferenceError, OSError))


if __name__ == "__main__":
    sys.exit(main())
