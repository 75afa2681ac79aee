"""Stroke size and full-resolution detail: stylise at a working resolution, then bring the photo's
detail back at full size.

A decoder trained on 128-256 px crops paints strokes of a fixed size in pixels, so at 1024 px or 4K they
shrink to noise. Stylising at a working resolution (`working_size`) fixes the stroke size relative to the
image; `guided_upsample` then lifts the result to full size the way a fast guided filter does (He et al.,
"Guided Image Filtering", TPAMI 2013; Wu et al., "Fast End-to-End Trainable Guided Filter", CVPR 2018):
per pixel, a local linear model of the stylised image in terms of the photo's luminance is fitted at the
working size, its slope is upsampled, and the photo's own high-frequency detail is added with that slope.
Where the stylisation follows the photo's edges they come back sharp; where it ignores them (a flat
painted sky) the slope is near zero and nothing is added, so no edge is doubled.

Letters: b - batch, c - channels, h/w - working size, H/W - full size.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models.functional import luma

from .images import fit_size

# Long side the model paints at with style_scale=1: a larger image is stylised at this size and lifted to
# full size by `guided_upsample`, so strokes keep the same size relative to the image from 512 px to 4K
# instead of shrinking to noise.
WORK_SIZE = 512


def box(x: torch.Tensor, r: int) -> torch.Tensor:
    """Mean over a (2r+1) x (2r+1) window, reflecting at the borders: (b, c, h, w) -> same shape."""
    if r == 0:
        return x
    mode = "reflect" if min(x.shape[-2:]) > r else "replicate"
    return F.avg_pool2d(F.pad(x, (r, r, r, r), mode=mode), 2 * r + 1, stride=1)


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of (b, c, h, w) to `size`, antialiased when shrinking."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    shrink = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrink)


def working_size(size: tuple[int, int], long_side: int | None) -> tuple[int, int]:
    """The (h, w) an image of `size` is stylised at: its own size if its long side is at most `long_side`
    (or `long_side` is None), else scaled down to that long side, keeping the aspect ratio."""
    return tuple(size) if long_side is None else fit_size(size, long_side)


def guided_upsample(low: torch.Tensor, guide_low: torch.Tensor, guide: torch.Tensor, radius: int = 2,
                    eps: float = 1e-3) -> torch.Tensor:
    """Lift a stylised image from the working size to the photo's size, restoring the photo's detail.

    Args:
        low: stylised image at the working size, (b, c, h, w) in [0, 1].
        guide_low: the photo's luminance at the working size, (b, 1, h, w).
        guide: the photo's luminance at full size, (b, 1, H, W).
        radius: window radius of the local linear fit, in working-size pixels.
        eps: regulariser of the fit; larger keeps less photo detail.

    Returns:
        (b, c, H, W): bilinear(low) + slope * (guide - bilinear(guide_low)), where slope (b, c, h, w) is the
        windowed least-squares slope of `low` against `guide_low`, box-smoothed and upsampled.
    """
    size = tuple(guide.shape[-2:])
    low, guide_low, guide = low.float(), guide_low.float(), guide.float()
    mean_i, mean_p = box(guide_low, radius), box(low, radius)  # (b, 1, h, w), (b, c, h, w)
    cov = box(guide_low * low, radius) - mean_i * mean_p
    var = box(guide_low * guide_low, radius) - mean_i * mean_i
    slope = box(cov / (var + eps), radius)  # (b, c, h, w)
    detail = guide - resize(guide_low, size)  # (b, 1, H, W): what the working size could not hold
    return (resize(low, size) + resize(slope, size) * detail).clamp(0, 1)


def work_size(style_scale: float | None) -> int | None:
    """Long side the model paints at for a stroke size (None: full resolution): WORK_SIZE / style_scale."""
    if style_scale is None:
        return None
    if not (isinstance(style_scale, (int, float)) and 0 < style_scale < float("inf")):
        raise ValueError(f"style_scale must be a positive number (1 = default strokes) or None, got {style_scale!r}")
    return max(16, round(WORK_SIZE / style_scale))


def lift(out: torch.Tensor, painted: torch.Tensor, full: torch.Tensor) -> torch.Tensor:
    """The stylised image at the working size (b, 3, h, w) -> at full size, guided by the photo's detail
    (`painted` is the photo at the working size, `full` at full size)."""
    if out.shape[-2:] == full.shape[-2:]:
        return out
    return guided_upsample(out, luma(painted.to(out)), luma(full.to(out)))
