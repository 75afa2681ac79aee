"""`stylemix grid CONTENT --style A --style B [--style C --style D] --steps N -o grid.png`

  2 styles:                 a 1 x N row sweeping the weights A -> B
  4 styles:                 an N x N bilinear blend of the corners (A top-left, B top-right, C bottom-left, D bottom-right)
  2 styles + --alpha-axis:  N x N, A -> B across and alpha 0 -> --alpha down
  1 style  + --alpha-sweep: a 1 x N row from the content (alpha 0) to the full style (alpha --alpha)
The content is encoded once; cells are decoded in batches.
"""
from __future__ import annotations

from pathlib import Path

from ..cli import UsageError
from . import add_model_options, add_style_and_output_options


def add_parser(sub) -> None:
    p = sub.add_parser("grid", help="interpolation grids: weight sweeps, 4-corner blends, alpha sweeps",
                       description=__doc__.split("\n\n", 1)[1] if "\n\n" in __doc__ else None,
                       formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    p.add_argument("content", metavar="CONTENT", help="content image")
    add_style_and_output_options(p, style_metavar="PATH_OR_NAME",
                                 style_help="style image, saved code (.safetensors) or built-in name; repeat 2 or 4 "
                                            "times (or once with --alpha-sweep)",
                                 output_help="grid image to write (e.g. grid.png)")
    p.add_argument("--steps", type=int, default=5, help="cells per row/column, at least 2 (default: 5)")
    p.add_argument("--alpha", type=float, default=1.0,
                   help="stylisation strength of every cell, or the end of the alpha axis; a cell at alpha 0 is "
                        "the content photo itself (default: 1.0)")
    p.add_argument("--alpha-sweep", action="store_true",
                   help="sweep alpha from 0 to --alpha instead of the weights (1 style, or several blended equally)")
    p.add_argument("--alpha-axis", action="store_true", help="with 2 styles: N x N grid, weights across, alpha down")
    p.add_argument("--labels", action="store_true", help="write each cell's weights (and alpha) under it")
    p.add_argument("--cell-size", type=int, default=256, help="long side of each cell in pixels (default: 256)")
    p.add_argument("--cells", metavar="DIR", default=None, help="also save every cell as DIR/cell_RR_CC.png")
    p.add_argument("--style-size", type=int, default=512, help="long side of style images in pixels (default: 512)")
    p.add_argument("--preserve-color", choices=("luminance", "match", "histogram"), default=None,
                   help="keep the content's colours in every cell, as in 'stylemix stylize' (default: off)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="cells decoded together (default: 1 on CPU, where batching is slower; 8 on a GPU)")
    add_model_options(p)
    p.set_defaults(func=run)


def check_layout(n_styles: int, steps: int, alpha_sweep: bool, alpha_axis: bool) -> str:
    """Which figure the arguments ask for: 'alpha', 'axis', 'row' or 'square'; UsageError saying what is
    supported otherwise."""
    if steps < 2:
        raise UsageError(f"--steps must be at least 2 (both ends of the sweep), got {steps}")
    if alpha_sweep and alpha_axis:
        raise UsageError("choose one of --alpha-sweep and --alpha-axis")
    if alpha_sweep:
        return "alpha"
    if alpha_axis:
        if n_styles != 2:
            raise UsageError(f"--alpha-axis needs exactly 2 styles (weights across, alpha down), got {n_styles}")
        return "axis"
    if n_styles == 2:
        return "row"
    if n_styles == 4:
        return "square"
    raise UsageError(f"got {n_styles} style(s); grids support 2 styles (a 1 x N sweep), 4 styles (an N x N "
                     f"bilinear blend), 2 styles with --alpha-axis, or 1 style with --alpha-sweep")


def run(args) -> int:
    from ...models.functional import check_alpha
    from ..api import Stylizer
    from .stylize import parse_style_spec
    from ..grid import LETTERS
    from ..images import MAX_PIXELS, check_image_file, check_outputs, save_image

    specs = [parse_style_spec(s) for s in args.style]
    sources = [s for s, _ in specs]
    if any(w is not None for _, w in specs) and not args.alpha_sweep:
        raise UsageError("grid weights are set by the grid itself; give --style without ':WEIGHT' "
                         "(weights are allowed with --alpha-sweep)")
    layout = check_layout(len(sources), args.steps, args.alpha_sweep, args.alpha_axis)
    check_alpha(args.alpha, "--alpha")
    if args.cell_size < 16 or args.style_size < 16:
        raise UsageError("--cell-size and --style-size must be at least 16 pixels")
    if (args.batch_size is not None and args.batch_size < 1):
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    content = check_image_file(args.content, "content image")
    rows = 1 if layout in ("row", "alpha") else args.steps
    width, height = args.steps * args.cell_size, rows * args.cell_size  # cells are at most --cell-size on a side
    if width * height > MAX_PIXELS:  # the cells are held in memory until the grid is written
        raise UsageError(f"--steps {args.steps} at --cell-size {args.cell_size} makes a grid of up to {width}x{height} "
                         f"px ({rows * args.steps} cells), more than the {MAX_PIXELS // 2**20} MP of the largest image "
                         f"stylemix loads; lower --steps or --cell-size")
    cell_files = []
    if args.cells:
        if Path(args.cells).exists() and not Path(args.cells).is_dir():
            raise UsageError(f"--cells {args.cells} is a file; give a folder for the cell images")
        cell_files = [Path(args.cells) / f"cell_{r:02d}_{c:02d}.png" for r in range(rows) for c in range(args.steps)]
    check_outputs([Path(args.output), *cell_files], [content] + [Path(s) for s in sources if Path(s).exists()])

    stylizer = Stylizer.from_pretrained(args.model, device=args.device, encoder=args.encoder, dtype=args.dtype)
    common = dict(max_size=args.cell_size, preserve_color=args.preserve_color, labels=args.labels,
                  style_size=args.style_size, batch_size=args.batch_size)
    if layout == "alpha":
        weights = [1.0 if w is None else w for _, w in specs]
        cells, image = stylizer.alpha_sweep(content, sources, args.steps, weights=weights, end=args.alpha, **common)
    elif layout == "row":
        cells, image = stylizer.sweep(content, sources, args.steps, alpha=args.alpha, **common)
    else:
        cells, image = stylizer.grid(content, sources, args.steps, alpha=args.alpha,
                                     alpha_axis=layout == "axis", **common)
    save_image(image, args.output)
    for cell, path in zip(cells, cell_files):
        save_image(cell, path)
    print(f"wrote {args.output} ({rows} x {args.steps} cells, {image.size[0]}x{image.size[1]} px)")
    if args.labels:
        print("labels: " + ", ".join(f"{letter} = {src}" for letter, src in zip(LETTERS, sources)))
    return 0
