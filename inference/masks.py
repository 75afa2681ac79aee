"""Masks: where each of K styles applies. K masks (soft allowed) and K global weights become spatial
weights on the model's padded canvas, which `Stylizer.stylize` and `stylize_tiled` pass to the model.

Letters: k - styles, h/w - height/width.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from einops import rearrange

from ..models.canvas import Frame

from .images import ImageLike, load_mask


def same_aspect(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Whether two (h, w) sizes have one aspect ratio up to rounding: the ratios may differ by the relative error
    of half a pixel on the short side of each. For 64 x 48 (w x h) content, 1024 x 768 fits and so does 3 x 2
    (its nearest rounding); 3 x 3 and 64 x 64 do not. Compared as ratios: a small mask gets no absolute slack."""
    (ha, wa), (hb, wb) = a, b
    return abs(math.log((wa * hb) / (ha * wb))) <= 0.5 / min(ha, wa) + 0.5 / min(hb, wb)


def mask_weights(masks: Sequence[ImageLike], weights: torch.Tensor, frame: Frame, stride: int) -> torch.Tensor:
    """K masks + K global weights -> spatial weights (k, 1, 1, H, W) on the padded canvas of `frame`.

    Per pixel, weight_k = w_k m_k / sum_j w_j m_j; where no mask covers a pixel the global weights apply.
    Masks of a different resolution are resized when their aspect ratio matches the content's (see `same_aspect`).
    """
    k, (h, w) = len(weights), frame.size
    masks = list(masks) if isinstance(masks, (list, tuple)) else [masks]
    if len(masks) != k:
        raise ValueError(f"got {len(masks)} masks for {k} styles; give one mask per style")
    stack = []
    for i, src in enumerate(masks):
        m = load_mask(src)  # (1, 1, hm, wm)
        hm, wm = m.shape[-2:]
        if (hm, wm) != (h, w):
            if not same_aspect((hm, wm), (h, w)):
                raise ValueError(f"mask {i + 1} is {wm}x{hm} px but the content is {w}x{h} px; masks need the "
                                 f"content's size or at least its aspect ratio")
            m = torch.nn.functional.interpolate(m, size=(h, w), mode="bilinear", align_corners=False,
                                                antialias=hm > h)
        stack.append(m[0])
    if all(float(m.max()) <= 0 for m in stack):  # not "no masks": a mask inverted or the wrong file, most likely
        raise ValueError(f"all {k} masks are zero (black) everywhere, so no style would apply anywhere; white marks "
                         f"where a style applies")
    m = frame.apply(torch.stack(stack), stride)  # (k, 1, H, W)
    num = weights.view(k, 1, 1, 1) * m.clamp_min(0)
    den = num.sum(0, keepdim=True)
    glob = weights.view(k, 1, 1, 1).expand_as(num)
    spatial = torch.where(den > 1e-6, num / den.clamp_min(1e-6), glob)
    return rearrange(spatial, "k 1 h w -> k 1 1 h w")
