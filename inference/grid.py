"""Weight paths, sweeps and labelled grids.

A grid is n cells, each a (weights (k,), alpha) pair over the same content and the same K styles. The
content is encoded ONCE; each cell's AdaIN targets are mixed from those features (cheap, elementwise)
and the cells are decoded in batches of `batch_size` (the expensive part, bounded in memory).

Letters: n - cells, k - styles, b - batch, c - channels, h/w - height/width.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import torch
from einops import rearrange
from PIL import Image, ImageDraw, ImageFont

from models import functional as Fn
from models.mixing import StyleCode

from .images import ImageLike, crop_to, load_image, pad_to_multiple, to_pil

if TYPE_CHECKING:
    from .api import Stylizer

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


# --- weight paths --------------------------------------------------------------------------------------

def check_steps(steps: int, what: str = "steps") -> int:
    """`steps` as an int >= 2, else ValueError (a sweep needs both ends)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise ValueError(f"{what} must be an integer of at least 2 (both ends of the sweep), got {steps!r}")
    return steps


def linear_path(k: int, steps: int) -> torch.Tensor:
    """Weights visiting style 1, 2, ..., k in order, piecewise linear, `steps` points evenly spaced
    along the path: (steps, k), rows summing to 1. k=2 is the A -> B sweep."""
    check_steps(steps)
    if k < 2:
        raise ValueError(f"a weight path needs at least 2 styles, got {k}")
    pos = torch.linspace(0, k - 1, steps, dtype=torch.float64)  # position along the path, in styles
    seg = pos.floor().clamp(max=k - 2).long()
    frac = pos - seg
    w = torch.zeros(steps, k, dtype=torch.float64)
    w[torch.arange(steps), seg] = 1 - frac
    w[torch.arange(steps), seg + 1] += frac
    return w.float()


def bilinear_grid(steps: int) -> torch.Tensor:
    """Bilinear blend of four corners (A top-left, B top-right, C bottom-left, D bottom-right):
    (steps * steps, 4) weights, row-major (row r, column c)."""
    check_steps(steps)
    t = torch.linspace(0, 1, steps, dtype=torch.float64)
    y, x = torch.meshgrid(t, t, indexing="ij")
    w = torch.stack([(1 - y) * (1 - x), (1 - y) * x, y * (1 - x), y * x], dim=-1)
    return rearrange(w, "r c k -> (r c) k").float()


def alpha_path(steps: int, start: float = 0.0, end: float = 1.0) -> torch.Tensor:
    """`steps` alphas evenly spaced from start to end (default content -> full style)."""
    check_steps(steps)
    for a in (start, end):
        if not 0.0 <= a <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {a}")
    return torch.linspace(start, end, steps)


def check_path(path: Sequence[Sequence[float]] | torch.Tensor, k: int) -> torch.Tensor:
    """An explicit path of weight vectors -> (n, k) rows normalised to sum 1 (each row validated)."""
    rows = [Fn.validate_weights(w, k) for w in (path.tolist() if isinstance(path, torch.Tensor) else path)]
    if not rows:
        raise ValueError("the weight path is empty; give at least one weight vector")
    return torch.stack(rows)


def per_cell_alpha(alpha: float | Sequence[float] | torch.Tensor, n: int) -> torch.Tensor:
    """One alpha for every cell, or one per cell: (n,) in [0, 1]."""
    a = torch.as_tensor(alpha, dtype=torch.float32).flatten()
    if a.numel() == 1:
        a = a.expand(n)
    if a.numel() != n:
        raise ValueError(f"got {a.numel()} alphas for {n} cells; give one alpha or one per cell")
    if not (torch.isfinite(a).all() and (a >= 0).all() and (a <= 1).all()):
        raise ValueError(f"alpha must be in [0, 1], got {a.tolist()}")
    return a.clone()


# --- rendering ---------------------------------------------------------------------------------------

def render(stylizer: "Stylizer", content: ImageLike, codes: Sequence[StyleCode], weights: torch.Tensor,
           alphas: torch.Tensor, max_size: int | None = 512, preserve_color: str | None = None,
           batch_size: int | None = None) -> torch.Tensor:
    """Stylise one content with n (weights, alpha) cells: one content encoding, batched decoding.

    Args:
        stylizer: a Stylizer (its model, device and dtype are used).
        content: the content image (anything `load_image` reads).
        codes: K style codes.
        weights: (n, k) normalised weights, one row per cell.
        alphas: (n,) alphas in [0, 1].
        max_size: long side the content is processed at (the cell size).
        preserve_color: as in `Stylizer.stylize`.
        batch_size: cells decoded together (bounds memory). Default: 1 on CPU, where batching is slower
            (measured: 25 cells at 256 px in 7.4 s one by one vs 11.0 s in batches of 8: the batch's
            full-resolution activations fall out of cache), 8 on accelerators.

    Returns:
        (n, 3, h, w) float32 CPU tensor in [0, 1].
    """
    from .api import apply_preserve_color

    if weights.dim() != 2 or weights.shape[1] != len(codes) or weights.shape[0] != alphas.numel():
        raise ValueError(f"weights must be (cells, {len(codes)}) with one alpha per cell, got "
                         f"{tuple(weights.shape)} and {alphas.numel()} alphas")
    if batch_size is None:
        batch_size = 1 if stylizer.device.type == "cpu" else 8
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    model = stylizer.model
    x = load_image(content, max_size).to(stylizer.device)
    padded, size = pad_to_multiple(x, stylizer.stride)
    out = []
    if not hasattr(model, "mix"):  # a model that blends inside its own forward (StyTr²): one call per cell
        with torch.inference_mode(), stylizer._autocast():
            cells = [stylizer._forward(padded, codes, w.to(stylizer.device), float(a)) for w, a in zip(weights, alphas)]
        img = crop_to(torch.cat(cells).float().clamp(0, 1), size)
        return apply_preserve_color(img, x.expand(len(img), -1, -1, -1), preserve_color).cpu().clone()
    with torch.inference_mode():
        with stylizer._autocast():
            feats = model.encode(padded)
        for i in range(0, len(weights), batch_size):
            cells = [model.mix(feats, codes, w.to(stylizer.device), float(a))
                     for w, a in zip(weights[i:i + batch_size], alphas[i:i + batch_size])]
            batch = {t: torch.cat([c[t] for c in cells]) for t in cells[0]}
            with stylizer._autocast():
                img = model.decode(batch)
            img = crop_to(img.float().clamp(0, 1), size)
            out.append(apply_preserve_color(img, x.expand(len(img), -1, -1, -1), preserve_color).cpu())
    return torch.cat(out).clone()


# --- grid images --------------------------------------------------------------------------------------

def weight_label(weights: Sequence[float], alpha: float | None = None, names: Sequence[str] | None = None) -> str:
    """'A .75  B .25' (zero weights omitted), plus '  alpha .50' when alpha < 1 (PIL's default font has no Greek)."""
    names = list(names) if names else list(LETTERS[: len(weights)])
    parts = [f"{n} {_num(w)}" for n, w in zip(names, weights) if w > 5e-4]
    if alpha is not None and alpha < 1.0 - 5e-4:
        parts.append(f"alpha {_num(alpha)}")
    return "  ".join(parts)


def _num(v: float) -> str:
    return "1" if v > 1 - 5e-4 else "0" if v < 5e-4 else f"{v:.2f}".lstrip("0")


def grid_image(cells: torch.Tensor | Sequence[Image.Image], rows: int, cols: int,
               labels: Sequence[str] | None = None, gap: int = 4, background: str = "white") -> Image.Image:
    """Tile n cells row-major into one image, optionally with a label strip under each cell.

    Args:
        cells: (n, 3, h, w) tensor or n PIL images (all one size).
        rows, cols: layout; rows * cols must equal n.
        labels: n strings (PIL's default font), or None.
        gap: pixels between cells.

    Returns:
        RGB PIL image.
    """
    images = [to_pil(c) for c in cells] if isinstance(cells, torch.Tensor) else list(cells)
    if len(images) != rows * cols:
        raise ValueError(f"{len(images)} cells do not fill a {rows} x {cols} grid")
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"got {len(labels)} labels for {len(images)} cells")
    w, h = images[0].size
    font = _font(max(10, min(16, w // 16)))
    strip = 0 if labels is None else _text_height(font) + 6
    sheet = Image.new("RGB", (cols * w + (cols - 1) * gap, rows * (h + strip) + (rows - 1) * gap), background)
    draw = ImageDraw.Draw(sheet)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        x0, y0 = c * (w + gap), r * (h + strip + gap)
        sheet.paste(img.convert("RGB").resize((w, h)) if img.size != (w, h) else img.convert("RGB"), (x0, y0))
        if labels is not None:
            draw.text((x0 + 3, y0 + h + 3), _fit(draw, labels[i], font, w - 6), fill="black", font=font)
    return sheet


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        return ImageFont.load_default()


def _text_height(font) -> int:
    box = font.getbbox("Agy")
    return int(box[3] - min(box[1], 0))


def _fit(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    """Truncate text with an ellipsis to fit `width` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "\u2026", font=font) > width:
        text = text[:-1]
    return text + "\u2026"


# --- the three figures ---------------------------------------------------------------------------------

def sweep(stylizer: "Stylizer", content: ImageLike, styles: Sequence, steps: int = 5,
          path: Sequence[Sequence[float]] | torch.Tensor | None = None, alpha: float | Sequence[float] = 1.0,
          max_size: int | None = 512, preserve_color: str | None = None, labels: bool = False,
          names: Sequence[str] | None = None, style_size: int | None = 512,
          batch_size: int | None = None) -> tuple[torch.Tensor, Image.Image]:
    """Sweep the blend weights along a path (default: style 1 -> 2 -> ... -> K) in one row.

    Args:
        styles: K >= 2 styles (or K >= 1 with an explicit path).
        steps: cells along the default path (ignored when `path` is given).
        path: explicit (n, K) weight vectors, one per cell.
        alpha: one alpha, or one per cell.
        labels: write the weights under each cell; `names` replace the letters A, B, ...

    Returns:
        (cells (n, 3, h, w) in [0, 1], the 1 x n grid image).
    """
    codes = stylizer.style_codes(styles, style_size)
    if path is None:
        if len(codes) < 2:
            raise ValueError(f"a sweep needs at least 2 styles (got {len(codes)}); for one style use alpha_sweep")
        weights = linear_path(len(codes), check_steps(steps))
    else:
        weights = check_path(path, len(codes))
    alphas = per_cell_alpha(alpha, len(weights))
    cells = render(stylizer, content, codes, weights, alphas, max_size, preserve_color, batch_size)
    text = [weight_label(w.tolist(), float(a), names) for w, a in zip(weights, alphas)] if labels else None
    return cells, grid_image(cells, 1, len(cells), text)


def grid(stylizer: "Stylizer", content: ImageLike, styles: Sequence, steps: int = 5, alpha: float = 1.0,
         alpha_axis: bool = False, max_size: int | None = 256, preserve_color: str | None = None,
         labels: bool = False, names: Sequence[str] | None = None, style_size: int | None = 512,
         batch_size: int | None = None) -> tuple[torch.Tensor, Image.Image]:
    """A steps x steps grid: the bilinear blend of 4 corner styles (A top-left, B top-right, C bottom-left,
    D bottom-right), or with `alpha_axis` and 2 styles: A -> B across, alpha 0 -> `alpha` down.

    Returns:
        (cells (steps*steps, 3, h, w) row-major, the grid image).
    """
    check_steps(steps)
    codes = stylizer.style_codes(styles, style_size)
    if alpha_axis:
        if len(codes) != 2:
            raise ValueError(f"an alpha-axis grid blends 2 styles across and alpha down; got {len(codes)} styles")
        weights = linear_path(2, steps).repeat(steps, 1)  # (steps*steps, 2): columns A -> B
        alphas = alpha_path(steps, 0.0, float(alpha)).repeat_interleave(steps)  # rows 0 -> alpha
    else:
        if len(codes) != 4:
            raise ValueError(f"a 2-D grid needs exactly 4 corner styles (A, B, C, D), got {len(codes)}; "
                             f"use a sweep for 2 styles, or 2 styles with alpha_axis")
        weights, alphas = bilinear_grid(steps), per_cell_alpha(alpha, steps * steps)
    cells = render(stylizer, content, codes, weights, alphas, max_size, preserve_color, batch_size)
    text = [weight_label(w.tolist(), float(a), names) for w, a in zip(weights, alphas)] if labels else None
    return cells, grid_image(cells, steps, steps, text)


def alpha_sweep(stylizer: "Stylizer", content: ImageLike, style, steps: int = 5,
                weights: Sequence[float] | None = None, end: float = 1.0, max_size: int | None = 512,
                preserve_color: str | None = None, labels: bool = False, names: Sequence[str] | None = None,
                style_size: int | None = 512, batch_size: int | None = None) -> tuple[torch.Tensor, Image.Image]:
    """alpha from 0 (content reconstruction) to `end` (default 1, full style) in one row; `style` may be
    one style or a list blended with `weights`.

    Returns:
        (cells (steps, 3, h, w), the 1 x steps grid image).
    """
    codes = stylizer.style_codes(style, style_size)
    w = Fn.validate_weights(weights, len(codes))
    alphas = alpha_path(check_steps(steps), 0.0, end)
    wts = w.expand(steps, -1).clone()
    cells = render(stylizer, content, codes, wts, alphas, max_size, preserve_color, batch_size)
    text = None
    if labels:
        blend = "" if len(codes) == 1 else weight_label(w.tolist(), None, names) + "  "
        text = [f"{blend}alpha {_num(float(a))}" for a in alphas]
    return cells, grid_image(cells, 1, steps, text)
