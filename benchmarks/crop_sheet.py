"""A 100 % crop sheet for the model card: scikit-image photos x built-in styles, stylised at a given long
side by each model, and a crop of each output at full resolution (no resampling), side by side.

    python benchmarks/crop_sheet.py --model adain-vgg16 --model adain-vgg16-v2 --size 512 -o sheet512.png

Rows: (photo, style) pairs; columns: the photo's crop, then each model's crop. Look at it at 100 %.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from stylemix.inference.api import Stylizer  # noqa: E402
from stylemix.inference.images import to_pil  # noqa: E402
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True, help="weights dir or name (repeatable)")
    ap.add_argument("--size", type=int, default=512, help="long side the photos are stylised at (default 512)")
    ap.add_argument("--crop", type=int, default=256, help="crop side in pixels (default 256)")
    ap.add_argument("-o", "--output", required=True, help="PNG to write")
    args = ap.parse_args(argv)
    models = [Stylizer.from_pretrained(m, dtype="fp32") for m in args.model]
    c, pad = args.crop, 4
    sheet = Image.new("RGB", ((len(models) + 1) * (c + pad) + pad, len(PAIRS) * (c + pad) + pad + 16), "white")
    draw = ImageDraw.Draw(sheet)
    for k, label in enumerate(["photo", *args.model]):
        draw.text((pad + k * (c + pad), 2), Path(label).name, fill="black")
    for r, (name, style, (fy, fx)) in enumerate(PAIRS):
        x = photo(name, args.size)
        h, w = x.shape[-2:]
        y0, x0 = int(fy * max(h - c, 0)), int(fx * max(w - c, 0))
        outs = [x] + [m.stylize(x, style, max_size=None, return_tensor=True) for m in models]
        for k, out in enumerate(outs):
            tile = to_pil(out[..., y0:y0 + c, x0:x0 + c])
            sheet.paste(tile, (pad + k * (c + pad), 16 + pad + r * (c + pad)))
    atomic_write(args.output, lambda tmp: sheet.save(tmp, format="PNG"))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
