"""Weight paths, figure layouts and labelled grid images: the model-free half of sweeps and grids.

A figure is n cells, each a (weights (k,), alpha) pair over the same content and the same K styles
(`Layout`). `Stylizer.render` encodes the content ONCE and stylises the cells in batches of `batch_size`
(the expensive part, bounded in memory); `Stylizer.sweep`, `.grid` and `.alpha_sweep` combine the two.

Letters: n - cells, k - styles, b - batch, c - channels, h/w - height/width.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import torch
from einops import rearrange
from PIL import Image, ImageDraw, ImageFont

from ..models import functional as Fn
from ..models.contract import per_image_alpha

from .images import to_pil

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
        Fn.check_alpha(a)
    return torch.linspace(start, end, steps)


def check_path(path: Sequence[Sequence[float]] | torch.Tensor, k: int) -> torch.Tensor:
    """An explicit path of weight vectors -> (n, k) rows normalised to sum 1 (each row validated)."""
    rows = [Fn.validate_weights(w, k) for w in (path.tolist() if isinstance(path, torch.Tensor) else path)]
    if not rows:
        raise ValueError("the weight path is empty; give at least one weight vector")
    return torch.stack(rows)


def per_cell_alpha(alpha: float | Sequence[float] | torch.Tensor, n: int) -> torch.Tensor:
    """One alpha for every cell, or one per cell: (n,) in [0, 1]."""
    return per_image_alpha(alpha, n, "cells").clone()


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

@dataclass
class Layout:
    """What a figure stylises and how it is laid out."""

    weights: torch.Tensor  # (n, k) normalised weights, one row per cell
    alphas: torch.Tensor  # (n,) in [0, 1]
    rows: int
    cols: int  # rows * cols == n, row-major
    labels: list[str] | None  # one per cell, or None


def sweep_layout(k: int, steps: int = 5, path: Sequence[Sequence[float]] | torch.Tensor | None = None,
                 alpha: float | Sequence[float] = 1.0, labels: bool = False,
                 names: Sequence[str] | None = None) -> Layout:
    """One row sweeping the blend weights along a path (default: style 1 -> 2 -> ... -> K).

    Args:
        k: number of styles (>= 2, or >= 1 with an explicit path).
        steps: cells along the default path (not used when `path` is given).
        path: explicit (n, k) weight vectors, one per cell.
        alpha: one alpha, or one per cell.
        labels: write the weights under each cell; `names` replace the letters A, B, ...
    """
    if path is None:
        if k < 2:
            raise ValueError(f"a sweep needs at least 2 styles (got {k}); for one style use alpha_sweep")
        weights = linear_path(k, check_steps(steps))
    else:
        weights = check_path(path, k)
    alphas = per_cell_alpha(alpha, len(weights))
    text = [weight_label(w.tolist(), float(a), names) for w, a in zip(weights, alphas)] if labels else None
    return Layout(weights, alphas, 1, len(weights), text)


def grid_layout(k: int, steps: int = 5, alpha: float = 1.0, alpha_axis: bool = False, labels: bool = False,
                names: Sequence[str] | None = None) -> Layout:
    """steps x steps: the bilinear blend of 4 corner styles (A top-left, B top-right, C bottom-left,
    D bottom-right), or with `alpha_axis` and 2 styles: A -> B across, alpha 0 -> `alpha` down."""
    check_steps(steps)
    if alpha_axis:
        if k != 2:
            raise ValueError(f"an alpha-axis grid blends 2 styles across and alpha down; got {k} styles")
        weights = linear_path(2, steps).repeat(steps, 1)  # (steps*steps, 2): columns A -> B
        alphas = alpha_path(steps, 0.0, float(alpha)).repeat_interleave(steps)  # rows 0 -> alpha
    else:
        if k != 4:
            raise ValueError(f"a 2-D grid needs exactly 4 corner styles (A, B, C, D), got {k}; "
                             f"use a sweep for 2 styles, or 2 styles with alpha_axis")
        weights, alphas = bilinear_grid(steps), per_cell_alpha(alpha, steps * steps)
    text = [weight_label(w.tolist(), float(a), names) for w, a in zip(weights, alphas)] if labels else None
    return Layout(weights, alphas, steps, steps, text)


class Renderer(Protocol):
    """What `figure` needs: `Stylizer.render` (inference/api.py), which stylises one content with n cells."""

    def render(self, content, codes: Sequence, weights: torch.Tensor, alphas: torch.Tensor, max_size: int | None,
               preserve_color: str | None, batch_size: int | None) -> torch.Tensor: ...


def figure(stylizer: Renderer, content, codes: Sequence, layout: Layout, max_size: int | None = 512,
           preserve_color: str | None = None, batch_size: int | None = None) -> tuple[torch.Tensor, Image.Image]:
    """Stylise a layout's cells with one content encoding and lay them out (`Stylizer.sweep`, `grid` and
    `alpha_sweep` are this with their layout).

    Args:
        stylizer: a Stylizer (anything with its `render`).
        content: the content image; codes: K style codes; layout: from `sweep_layout`, `grid_layout` or
            `alpha_sweep_layout` with the same K.
        max_size, preserve_color, batch_size: as in `Stylizer.render`.

    Returns:
        (cells (n, 3, h, w) in [0, 1], the rows x cols grid image).
    """
    cells = stylizer.render(content, codes, layout.weights, layout.alphas, max_size, preserve_color, batch_size)
    return cells, grid_image(cells, layout.rows, layout.cols, layout.labels)


def alpha_sweep_layout(k: int, steps: int = 5, weights: Sequence[float] | None = None, end: float = 1.0,
                       labels: bool = False, names: Sequence[str] | None = None) -> Layout:
    """One row from alpha 0 (the content itself) to `end`, the k styles blended with `weights`."""
    w = Fn.validate_weights(weights, k)
    alphas = alpha_path(check_steps(steps), 0.0, end)
    text = None
    if labels:
        blend = "" if k == 1 else weight_label(w.tolist(), None, names) + "  "
        text = [f"{blend}alpha {_num(float(a))}" for a in alphas]
    return Layout(w.expand(steps, -1).clone(), alphas, 1, steps, text)
