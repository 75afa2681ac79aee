"""`stylemix sheet CONTENT -o sheet.png`: the content rendered with every built-in style, one labelled
cell each (the content itself first), from one content encoding."""
from __future__ import annotations

import math
from pathlib import Path

from ..cli import UsageError
from . import add_model_options


def add_parser(sub) -> None:
    p = sub.add_parser("sheet", help="render one photo with every built-in style on one labelled sheet",
                       description="Render CONTENT with every built-in style (and optionally the user's) on one sheet.")
    p.add_argument("content", metavar="CONTENT", help="content image")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="sheet image to write (e.g. sheet.png)")
    p.add_argument("--cell-size", type=int, default=256, help="long side of each cell in pixels (default: 256)")
    p.add_argument("--cols", type=int, default=0, help="cells per row (default: about square)")
    p.add_argument("--user", action="store_true", help="include the user's styles too")
    p.add_argument("--match", default=None, metavar="TEXT", help="only styles whose name contains TEXT (e.g. baroque)")
    p.add_argument("--alpha", type=float, default=1.0, help="stylisation strength in [0, 1] (default: 1.0)")
    p.add_argument("--preserve-color", choices=("luminance", "match", "histogram"), default=None,
                   help="keep the content's colours, as in 'stylemix stylize' (default: off)")
    p.add_argument("--no-labels", action="store_true", help="omit the style names under the cells")
    p.add_argument("--batch-size", type=int, default=None,
                   help="cells decoded together (default: 1 on CPU, where batching is slower; 8 on a GPU)")
    add_model_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from ...models.functional import check_alpha
    from .. import styles as S
    from ..api import Stylizer
    from ..grid import grid_image
    from ..images import check_image_file, check_outputs, load_image, save_image

    names = sorted(S.builtin_styles()) + (sorted(n for n in S.user_styles() if n not in S.builtin_styles())
                                          if args.user else [])
    if args.match:
        names = [n for n in names if args.match in n]
    if not names:
        raise UsageError("no styles to render" + (f" matching {args.match!r}" if args.match else "") +
                         "; see 'stylemix styles'")
    check_alpha(args.alpha, "--alpha")
    if args.cell_size < 16 or args.cols < 0 or (args.batch_size is not None and args.batch_size < 1):
        raise UsageError("--cell-size must be at least 16, --cols non-negative and --batch-size at least 1")
    content = check_image_file(args.content, "content image")
    check_outputs([Path(args.output)], [content])

    stylizer = Stylizer.from_pretrained(args.model, device=args.device, encoder=args.encoder, dtype=args.dtype)
    codes = stylizer.style_codes(names)
    weights = torch.eye(len(codes))  # one-hot: cell i is style i alone
    cells = stylizer.render(content, codes, weights, torch.full((len(codes),), float(args.alpha)),
                            args.cell_size, args.preserve_color, args.batch_size)
    original = load_image(content, args.cell_size)[..., : cells.shape[-2], : cells.shape[-1]]
    cells = torch.cat([original, cells])
    labels = None if args.no_labels else ["content", *names]
    cols = min(args.cols, len(cells)) or math.ceil(math.sqrt(len(cells)))  # more columns would only add blank cells
    rows = math.ceil(len(cells) / cols)
    pad = rows * cols - len(cells)  # blank cells fill the last row
    cells = torch.cat([cells, torch.ones(pad, *cells.shape[1:])])
    image = grid_image(cells, rows, cols, None if labels is None else labels + [""] * pad)
    save_image(image, args.output)
    print(f"wrote {args.output} ({len(names)} styles, {image.size[0]}x{image.size[1]} px)")
    return 0
