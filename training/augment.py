"""Style augmentation: a style crop -> a related style with other statistics (the distillation's teacher cache).

The training paintings (WikiArt thumbnails, seven figurative movements, upsampled to 256-320 px) cover a narrow
range of style statistics. A student distilled on them alone matches its teacher on such paintings and falls
behind on the sharp, graphic or abstract styles users bring (measured: docs/experiments.md, adain-fast).
The teacher paints whatever style it is given, so widening the styles it is shown costs nothing but cache
samples: each op below keeps a painting's layout and changes its colour, contrast or texture statistics, and
`ink_drawing` turns a painting into a drawing (dark marks on paper, or light marks on a dark ground), the sparse
two-tone kind of style no movement in the training set has.

Every draw comes from the caller's `random.Random`, so an augmented sample stays a pure function of its index.

Letters: c - channels, h/w - height/width.
"""
from __future__ import annotations

import math
import random

import torch
import torch.nn.functional as F

from ..models import functional as Fn

# (op, probability of applying it once a style is chosen for augmentation), in the order they are applied
OPS = ("sharpen", "hue", "saturation", "contrast", "posterize")
P_OP = {"sharpen": 0.5, "hue": 0.35, "saturation": 0.35, "contrast": 0.35, "posterize": 0.15}


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (c, h, w) with reflected borders."""
    r = max(1, math.ceil(2.5 * sigma))
    t = torch.arange(-r, r + 1, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = (k / k.sum()).to(x)
    c = x.shape[0]
    y = F.pad(x[None], (r, r, r, r), mode="reflect")
    y = F.conv2d(y, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(y, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)[0]


def rotate_hue(x: torch.Tensor, angle: float) -> torch.Tensor:
    """Rotate the chroma of (3, h, w) RGB by `angle` radians in YIQ (luma kept)."""
    m = Fn.YIQ.to(x)
    yiq = torch.einsum("ij,jhw->ihw", m, x)
    c, s = math.cos(angle), math.sin(angle)
    i, q = yiq[1] * c - yiq[2] * s, yiq[1] * s + yiq[2] * c
    return torch.einsum("ij,jhw->ihw", torch.linalg.inv(m), torch.stack([yiq[0], i, q]))


def ink_drawing(x: torch.Tensor, rng: random.Random) -> torch.Tensor:
    """A drawing of a style crop (3, h, w) in [0, 1]: ink where the luma is darker than its surroundings (a
    difference of Gaussians, so lines and edges, at a random pen width), sometimes with the darkest fields filled,
    in one dark ink (or the painting's own colours, darkened) on a light paper; sometimes inverted (chalk on a
    dark ground)."""
    y = Fn.luma(x)
    width = rng.uniform(1.0, 4.0)
    darker = blur(y, 2.5 * width) - blur(y, 0.6 * width)  # > 0 on dark lines and the dark side of edges
    ink = torch.sigmoid((darker - rng.uniform(0.01, 0.05)) / rng.uniform(0.005, 0.02))
    if rng.random() < 0.4:
        ink = torch.maximum(ink, torch.sigmoid((rng.uniform(0.15, 0.4) - y) / 0.03))
    paper = torch.tensor([rng.uniform(0.85, 1.0) for _ in range(3)]).to(x)[:, None, None]
    pen = torch.tensor([rng.uniform(0.0, 0.35) for _ in range(3)]).to(x)[:, None, None]
    if rng.random() < 0.3:
        pen = 0.6 * x
    drawing = paper + ink * (pen - paper)
    return 1 - drawing if rng.random() < 0.35 else drawing


def change_styles(styles: list[torch.Tensor], ink: float, augment: float, key: str) -> list[torch.Tensor]:
    """Turn a share `ink` of style crops (3, h, w) into ink drawings, then change a share `augment` with
    `augment_style`. Each change draws from its own stream, `random.Random(f"{key}/ink")` and
    `(f"{key}/augment")`, so the draws that chose the crops are those of an unchanged run, and the result is a
    pure function of `key`."""
    if ink:
        rng = random.Random(f"{key}/ink")
        styles = [ink_drawing(x, rng) if rng.random() < ink else x for x in styles]
    if augment:
        rng = random.Random(f"{key}/augment")
        styles = [augment_style(x, rng) if rng.random() < augment else x for x in styles]
    return styles


def augment_style(x: torch.Tensor, rng: random.Random) -> torch.Tensor:
    """A random chain of OPS on a style crop (3, h, w) in [0, 1] -> (3, h, w) in [0, 1]; each op is applied with
    its P_OP probability (possibly none)."""
    for op in OPS:
        if rng.random() >= P_OP[op]:
            continue
        if op == "sharpen":  # unsharp mask: thumbnails are soft, the styles users bring are not
            sigma, amount = rng.uniform(0.7, 2.0), rng.uniform(0.5, 2.5)
            x = x + amount * (x - blur(x, sigma))
        elif op == "hue":
            x = rotate_hue(x, rng.uniform(-math.pi, math.pi))
        elif op == "saturation":  # 0 = greyscale, 2 = twice the chroma
            grey = Fn.luma(x)
            x = grey + rng.uniform(0.0, 2.0) * (x - grey)
        elif op == "contrast":  # around the crop's mean, then a gamma
            x = (x.mean() + rng.uniform(0.6, 1.8) * (x - x.mean())).clamp(0, 1) ** rng.uniform(0.7, 1.4)
        elif op == "posterize":  # flat colour fields with hard edges, as in graphic styles
            levels = rng.randint(2, 6) - 1
            x = torch.round(x.clamp(0, 1) * levels) / levels
        x = x.clamp(0, 1)
    return x
