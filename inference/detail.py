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

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .images import pad_to_multiple


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
    h, w = size
    if long_side is None or max(h, w) <= long_side:
        return h, w
    s = long_side / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


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


def pad_border(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Reflect-pad (b, c, h, w) by `pad` px on every side (replicate where the image is too small), so the
    image's own border is not where a zero-padded encoder sees its edge."""
    if pad <= 0:
        return x
    mode = "reflect" if min(x.shape[-2:]) > pad else "replicate"
    return F.pad(x, (pad, pad, pad, pad), mode=mode)


def unpad_border(x: torch.Tensor, pad: int, size: tuple[int, int]) -> torch.Tensor:
    """Undo `pad_border` (and any bottom/right padding after it): the (h, w) = `size` interior."""
    return x[..., pad:pad + size[0], pad:pad + size[1]]


@dataclass(frozen=True)
class Frame:
    """Where an image sits in the canvas the model sees: `pad` px of reflection on every side, then
    bottom/right padding to a multiple of the model's stride.

    A VGG encoder zero-pads every conv, so the outer ~16-24 px of its features differ from the interior and
    the decoder paints bright or dark frames there (border score 7-10 on 512 px outputs, photos ~3). With
    32 px of reflected image around the content those frames fall outside the crop (measured: 3.0); 16 px
    is not enough (the frame reaches back into the image).
    """

    size: tuple[int, int]  # the image's (h, w)
    pad: int = 32

    def apply(self, x: torch.Tensor, stride: int) -> torch.Tensor:
        """(b, c, h, w) at `size` -> the padded canvas (b, c, H, W), H and W multiples of `stride`."""
        return pad_to_multiple(pad_border(x, self.pad), stride)[0]

    def crop(self, y: torch.Tensor) -> torch.Tensor:
        """The image's own (h, w) out of a canvas-sized (b, c, H, W)."""
        return unpad_border(y, self.pad, self.size)
