"""`stylemix stylize CONTENT... --style A.jpg:0.6 --style B.jpg:0.4 -o OUT`: the CLI over Stylizer.stylize.

Every input is checked (style specs, files, output paths) before the model loads, so a typo fails in
a second, not after a minute of work; nothing is written over an input.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from fractions import Fraction
from pathlib import Path

from ..cli import UsageError
from . import add_model_options, add_style_and_output_options


def add_parser(sub) -> None:
    p = sub.add_parser("stylize", help="stylise images with a weighted blend of styles",
                       description="Stylise CONTENT (files or folders) with one or more weighted styles.")
    p.add_argument("content", nargs="+", metavar="CONTENT", help="content image(s) or folder(s) of images")
    add_style_and_output_options(
        p, style_metavar="PATH_OR_NAME[:WEIGHT]",
        style_help="a style image, saved style code (.safetensors) or built-in style name, with an optional weight "
                   "(e.g. a.jpg:0.6, 1/3 allowed); repeat to blend. Weights default to 1 and are normalised",
        output_help="output image (one content; an existing file is replaced) or folder (several contents or a "
                    "folder; results are OUT/<name>.png, and outputs that already exist are kept, so an "
                    "interrupted batch resumes: see --overwrite)")
    p.add_argument("--overwrite", action="store_true",
                   help="in folder mode, replace outputs that already exist instead of keeping them")
    p.add_argument("--alpha", type=float, default=1.0,
                   help="stylisation strength in [0, 1]; 0 returns the content photo unchanged (default: 1.0)")
    p.add_argument("--max-size", type=int, default=None,
                   help="downscale the content to this long side in pixels, 0 = keep its size "
                        "(default: 1024, or 0 with --tile)")
    p.add_argument("--style-size", type=int, default=512, help="long side of style images in pixels (default: 512)")
    p.add_argument("--style-scale", type=float, default=None, metavar="S",
                   help="stroke size: the model paints at a long side of 512/S px and larger images are lifted to "
                        "full size guided by the photo; 2 = twice as large strokes, 0.5 = half, 0 = paint at full "
                        "resolution (default: 1, or 0 with --tile)")
    add_model_options(p)
    p.add_argument("--preserve-color", choices=("luminance", "match", "histogram"), default=None,
                   help="keep the content's colours: 'luminance' (transfer luminance only), 'match' (the "
                        "content's colour mean and covariance) or 'histogram' (the content's per-channel "
                        "histograms) (default: off)")
    p.add_argument("--modes", type=int, default=1, metavar="K",
                   help="split each style into K modes and give each content region the mode that fits it "
                        "(multi-modal transfer; needs style images and PyMaxflow) (default: 1, plain AdaIN)")
    p.add_argument("--smoothness", type=float, default=None, metavar="L",
                   help="with --modes: how strongly neighbouring pixels keep the same mode, 0 = none (default: 0.3)")
    p.add_argument("--save-labels", default=None, metavar="PNG",
                   help="with --modes: save the content's mode labels as an image, a colour per mode (one content)")
    p.add_argument("--mask", action="append", default=[], metavar="PNG",
                   help="where a style applies: one greyscale mask per --style, in the same order (white = that "
                        "style, soft edges blend); the content's size or aspect ratio")
    p.add_argument("--tile", type=int, default=0, metavar="PX",
                   help="stylise in overlapping tiles of at most PX pixels with whole-image statistics, for "
                        "images too large for memory (AdaIN models; e.g. 512) (default: off)")
    p.add_argument("--halo", type=int, default=64, metavar="PX",
                   help="with --tile: context pixels around each tile (default: 64)")
    p.add_argument("--json", action="store_true", help="print one JSON object per output on stdout")
    p.set_defaults(func=run)


def parse_style_spec(spec: str) -> tuple[str, float | None]:
    """'PATH_OR_NAME[:WEIGHT]' -> (source, weight or None).

    A spec that is an existing file is that file, whole (a file named 'x.png:0.5' is a style, not x.png at
    0.5). Otherwise the weight is what follows the LAST colon, taken only if it reads as a number (0.6, 1e-1,
    1/3), so Windows paths (C:\\art\\a.jpg) and names containing colons still work.

    Raises:
        UsageError for a weight that is negative, not finite, or not a number after an existing source.
    """
    if not spec.strip():
        raise UsageError("empty --style; give PATH_OR_NAME[:WEIGHT]")
    if os.path.isfile(spec):
        return spec, None
    head, sep, tail = spec.rpartition(":")
    if not sep or not head:
        return spec, None
    weight = _number(tail)
    if weight is None:
        if not os.path.exists(spec) and (os.path.isfile(head) or _is_builtin(head)):
            raise UsageError(f"bad weight {tail!r} in --style {spec!r}: weights are non-negative numbers like 0.6 or 1/3")
        return spec, None
    if not math.isfinite(weight) or weight < 0:
        raise UsageError(f"bad weight {tail!r} in --style {spec!r}: weights must be finite and non-negative")
    return head, weight


def parse_styles(specs: list[str]) -> tuple[list[str], list[float]]:
    """--style arguments -> (sources, weights), weight 1 where a spec gives none; UsageError when every weight
    is zero."""
    parsed = [parse_style_spec(s) for s in specs]
    weights = [1.0 if w is None else w for _, w in parsed]
    if sum(weights) <= 0:
        raise UsageError("all --style weights are zero; at least one must be positive")
    return [s for s, _ in parsed], weights


def _number(text: str) -> float | None:
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return float(Fraction(text)) if "/" in text else None
    except (ValueError, ZeroDivisionError):
        return None


def _is_builtin(name: str) -> bool:
    try:
        from ..styles import list_styles
    except ImportError:
        return False
    return name in list_styles()


def content_files(inputs: list[str]) -> tuple[list[Path], bool]:
    """Expand folders into their images (sorted). Returns (files, many) where many means -o is a folder."""
    from ...models.files import IMAGE_EXTENSIONS  # imported here: `stylemix --help` stays free of torch

    files: list[Path] = []
    many = len(inputs) > 1
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                raise UsageError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in folder {path}")
            files += found
            many = True
        elif not path.exists():
            raise FileNotFoundError(f"no such content image: {path}")
        else:
            files.append(path)
    return files, many


def output_paths(files: list[Path], output: str, many: bool) -> list[Path]:
    """Where each content's result goes: OUT itself, or OUT/<stem>.png for folders and several inputs."""
    from ...models.files import IMAGE_EXTENSIONS

    out = Path(output)
    if many or out.is_dir() or output.endswith(("/", os.sep)):
        if out.exists() and not out.is_dir():
            raise UsageError(f"-o {out} must be a folder when stylising several images")
        if not out.is_dir() and out.suffix.lower() in IMAGE_EXTENSIONS:
            raise UsageError(f"-o {out} looks like an image file but there are {len(files)} inputs; give a folder")
        paths = [out / f"{f.stem}.png" for f in files]
        seen: dict[Path, Path] = {}
        for f, p in zip(files, paths):
            if p in seen:
                raise UsageError(f"{f} and {seen[p]} would both be written to {p}; rename one")
            seen[p] = f
        return paths
    return [out]


def check_modes(args, sources: list[str], many: bool) -> list[Path]:
    """Check --modes/--smoothness/--save-labels before the model loads. Returns the label map path (or [])."""
    from ..images import image_format
    from ...models.multimodal import MultimodalConfig, require_maxflow

    try:
        MultimodalConfig(modes=args.modes, **({} if args.smoothness is None else {"smoothness": args.smoothness}))
    except ValueError as e:
        raise UsageError(str(e).replace("modes must", "--modes must").replace("smoothness must", "--smoothness must"))
    if args.modes == 1:
        if args.save_labels:
            raise UsageError("--save-labels needs --modes 2 or more")
        if args.smoothness is not None:
            raise UsageError("--smoothness needs --modes 2 or more (it weighs neighbouring pixels keeping one mode)")
        return []
    try:
        require_maxflow()
    except ImportError as e:
        raise UsageError(str(e)) from None
    for s in sources:
        if Path(s).suffix.lower() == ".safetensors" or not Path(s).is_file():
            raise UsageError(f"--modes splits style images into modes; {s!r} is not a style image file "
                             f"(saved and built-in styles hold statistics only)")
    if not args.save_labels:
        return []
    if many:
        raise UsageError("--save-labels takes one content image")
    image_format(args.save_labels)  # unknown extension -> clear error now
    return [Path(args.save_labels)]


def check_masks_and_tiles(args, n_styles: int) -> list[Path]:
    """Check --mask/--tile/--halo before the model loads. Returns the mask files."""
    from ..images import check_image_file

    masks = [Path(m) for m in args.mask]
    if masks and len(masks) != n_styles:
        raise UsageError(f"got {len(masks)} --mask for {n_styles} --style; give one mask per style, in the same order")
    for m in masks:
        check_image_file(m, "mask image")
    if args.tile:
        from ..tiling import check_tiling

        if args.modes > 1:
            raise UsageError("--tile and --modes cannot be combined; multi-modal transfer needs the whole image")
        try:
            check_tiling(args.tile, args.halo, max(1, args.halo // 4), 8)
        except ValueError as e:
            raise UsageError(f"--tile {args.tile} --halo {args.halo}: {e}") from None
    return masks


def run(args) -> int:
    from tqdm import tqdm

    from ...models.functional import check_alpha, validate_weights
    from ..api import Stylizer
    from ..images import check_outputs, check_side_limit, planned_size, save_image

    sources, weights = parse_styles(args.style)
    check_alpha(args.alpha, "--alpha")
    max_size = (0 if args.tile else 1024) if args.max_size is None else args.max_size
    style_scale = (0 if args.tile else 1.0) if args.style_scale is None else args.style_scale
    if not (0 <= style_scale < float("inf")):
        raise UsageError(f"--style-scale must be a positive number (0 = full resolution), got {args.style_scale}")
    if (max_size and max_size < 16) or max_size < 0 or args.style_size < 16:
        raise UsageError("--max-size (0 = keep the size) and --style-size must be at least 16 pixels")
    files, many = content_files(args.content)
    outputs = output_paths(files, args.output, many)
    style_files = [Path(s) for s in sources if Path(s).exists()]
    labels = check_modes(args, sources, many)
    masks = check_masks_and_tiles(args, len(sources))
    check_outputs(outputs + labels, files + style_files + masks)
    for src, dst in zip(files, outputs):  # e.g. a wide panorama to .webp: refused from the header, before any work
        check_side_limit(dst, planned_size(src, max_size or None) or (0, 0))
    norm = validate_weights(weights, len(weights)).tolist()  # what the model blends with (no overflow)
    if outputs != [Path(args.output)] and not args.overwrite:  # folder mode: keep what an earlier run wrote
        todo = [(f, o) for f, o in zip(files, outputs) if not o.exists()]
        if len(todo) < len(files):
            print(f"stylemix stylize: {len(files) - len(todo)} of {len(files)} outputs already exist in {args.output} "
                  f"and are kept (pass --overwrite to replace them)", file=sys.stderr)
        if not todo:
            return 0
        files, outputs = [f for f, _ in todo], [o for _, o in todo]

    stylizer = Stylizer.from_pretrained(args.model, device=args.device, encoder=args.encoder, dtype=args.dtype)
    codes = stylizer.style_codes(sources, args.style_size) if args.modes == 1 else sources
    failed = []
    bar = tqdm(list(zip(files, outputs)), disable=len(files) < 2, unit="img", file=sys.stderr)
    for src, dst in bar:
        start = time.perf_counter()
        try:
            common = dict(alpha=args.alpha, max_size=max_size or None, preserve_color=args.preserve_color,
                          masks=masks or None, style_size=args.style_size, style_scale=style_scale or None)
            if args.tile:
                img = stylizer.stylize_tiled(src, codes, weights, tile=args.tile, halo=args.halo, **common)
            else:
                img = stylizer.stylize(src, codes, weights, modes=args.modes, smoothness=args.smoothness,
                                       label_map_path=args.save_labels, **common)
            save_image(img, dst)
        except (ValueError, FileNotFoundError) as e:
            if len(files) == 1:
                raise
            failed.append(src)
            tqdm.write(f"stylemix stylize: skipped {src}: {e}", file=sys.stderr)
            continue
        seconds = time.perf_counter() - start
        if args.json:
            print(json.dumps({"path": str(dst), "content": str(src), "size": list(img.size), "seconds": round(seconds, 4),
                              "styles": sources, "weights": norm}), flush=True)
        elif len(files) == 1:
            print(f"wrote {dst} ({img.size[0]}x{img.size[1]}, {seconds:.2f} s)")
    if failed:
        raise UsageError(f"{len(failed)} of {len(files)} images could not be stylised (see above)")
    if len(files) > 1 and not args.json:
        print(f"wrote {len(files)} images to {args.output}")
    return 0
