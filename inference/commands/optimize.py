"""`stylemix optimize CONTENT --style A.jpg:0.6 --style B.jpg:0.4 -o OUT.png`: Gatys optimisation
(inference.optimize.optimize). Slow, high quality; the reference the fast models are judged against.

Inputs are checked before any work starts; the result is written atomically and never over an input.
"""
from __future__ import annotations

import time
from pathlib import Path

from ...models.pretrained import DEFAULT_MODEL
from ..cli import UsageError
from . import add_style_and_output_options
from .stylize import parse_styles


def add_parser(sub) -> None:
    from .. import optimize as O

    p = sub.add_parser("optimize", help="optimisation-based style transfer (Gatys et al.; slow, high quality)",
                       description="Optimise an image so its VGG features match CONTENT and its Gram matrices "
                                   "match the weighted blend of the styles.")
    p.add_argument("content", metavar="CONTENT", help="content image")
    add_style_and_output_options(p, style_metavar="PATH[:WEIGHT]",
                                 style_help="a style image with an optional weight (e.g. a.jpg:0.6, 1/3 allowed); "
                                            "repeat to blend (Gram targets are blended). Weights default to 1 and "
                                            "are normalised",
                                 output_help="output image file, e.g. out.png")
    p.add_argument("--max-size", type=int, default=512, help="long side of the result in pixels (default: 512)")
    p.add_argument("--steps", type=int, default=300, help="optimiser steps per pyramid level (default: 300)")
    p.add_argument("--optimizer", choices=O.OPTIMIZERS, default="lbfgs", help="optimiser (default: lbfgs)")
    p.add_argument("--lr", type=float, default=None,
                   help=f"step size (default: {O.DEFAULT_LR['lbfgs']} for lbfgs, {O.DEFAULT_LR['adam']} for adam)")
    p.add_argument("--content-weight", type=float, default=O.DEFAULTS["content_weight"],
                   help=f"content loss weight (default: {O.DEFAULTS['content_weight']})")
    p.add_argument("--style-weight", type=float, default=O.DEFAULTS["style_weight"],
                   help=f"style loss weight (default: {O.DEFAULTS['style_weight']})")
    p.add_argument("--tv-weight", type=float, default=O.DEFAULTS["tv_weight"],
                   help=f"total-variation weight (default: {O.DEFAULTS['tv_weight']})")
    p.add_argument("--content-layers", nargs="+", default=list(O.CONTENT_LAYERS), metavar="TAP",
                   help=f"VGG taps for the content loss (default: {' '.join(O.CONTENT_LAYERS)})")
    p.add_argument("--style-layers", nargs="+", default=list(O.STYLE_LAYERS), metavar="TAP",
                   help=f"VGG taps for the style loss (default: {' '.join(O.STYLE_LAYERS)})")
    p.add_argument("--init", choices=O.INITS, default="content",
                   help="start from the content, uniform noise, or the fast AdaIN model's output (default: content)")
    p.add_argument("--model", default=None, metavar="DIR_OR_NAME",
                   help=f"fast model for --init adain: weights dir or name under weights/ (default: {DEFAULT_MODEL})")
    p.add_argument("--scales", type=int, default=1,
                   help="pyramid levels, coarse to fine, each twice the previous (default: 1)")
    p.add_argument("--style-scale", type=float, default=1.0,
                   help="style images' long side relative to the result's (default: 1.0)")
    p.add_argument("--preserve-color", nargs="?", const="luminance", choices=("luminance", "match"), default=None,
                   help="keep the content's colours: 'luminance' (default when given without a value: keep the "
                        "content's chroma) or 'match' (recolour the styles to the content's colours first) "
                        "(default: off)")
    p.add_argument("--encoder", default=O.DEFAULT_ENCODER,
                   help=f"loss network: encoder preset or dir (default: {O.DEFAULT_ENCODER})")
    p.add_argument("--seed", type=int, default=0, help="seed for --init noise (default: 0)")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _check(args) -> tuple[list[str], list[float], Path]:
    """Validate everything cheap before the encoder loads. Returns (style paths, weights, output)."""
    from ..images import check_image_file, check_outputs

    sources, weights = parse_styles(args.style)
    for s in sources:
        if not Path(s).exists():
            raise FileNotFoundError(f"style image not found: {s} (optimize needs style image files)")
        check_image_file(s, "style image")
    content = check_image_file(args.content, "content image")
    if args.max_size < 16:
        raise UsageError(f"--max-size must be at least 16 pixels, got {args.max_size}")
    if args.steps < 0:
        raise UsageError(f"--steps must be >= 0, got {args.steps}")
    if args.scales < 1:
        raise UsageError(f"--scales must be >= 1, got {args.scales}")
    for flag in ("content_weight", "style_weight", "tv_weight"):
        v = getattr(args, flag)
        if not (0 <= v < float("inf")):
            raise UsageError(f"--{flag.replace('_', '-')} must be a finite number >= 0, got {v}")
    if args.lr is not None and not (0 < args.lr < float("inf")):
        raise UsageError(f"--lr must be a finite number > 0, got {args.lr}")
    if not (0 < args.style_scale < float("inf")):
        raise UsageError(f"--style-scale must be a finite number > 0, got {args.style_scale}")
    out = Path(args.output)
    check_outputs([out], [content, *map(Path, sources)])
    return sources, weights, out


def run(args) -> int:
    from ..images import save_image
    from ..optimize import optimize

    sources, weights, out = _check(args)
    start = time.perf_counter()
    result = optimize(args.content, sources, weights, encoder=args.encoder, steps=args.steps,
                      optimizer=args.optimizer, lr=args.lr, content_weight=args.content_weight,
                      style_weight=args.style_weight, tv_weight=args.tv_weight,
                      content_layers=tuple(args.content_layers), style_layers=tuple(args.style_layers),
                      init=args.init, init_model=args.model, scales=args.scales, style_scale=args.style_scale,
                      max_size=args.max_size, preserve_color=args.preserve_color, seed=args.seed, device=args.device,
                      progress=not args.quiet)
    save_image(result.image, out)
    last = result.history[-1] if result.history else {}
    losses = ", ".join(f"{k} {last[k]:.3g}" for k in ("content", "style", "tv") if k in last)
    print(f"wrote {out} ({result.image.size[0]}x{result.image.size[1]}, {time.perf_counter() - start:.1f} s"
          f"{', ' + losses if losses else ''})")
    return 0
