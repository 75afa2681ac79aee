"""Losses on VGG features, shared by training and Gatys optimisation.

All feature losses can be *relative*: each layer's error is divided by the target's own spread, so
encoders with very different activation scales (Caffe 0-255 vs ImageNet-normalised inputs) need no
hand-tuned per-layer weights, and the loss reads like the evaluation's `style_stat`.
"""
from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F

from ..models import functional as Fn


def content_loss(out: torch.Tensor, target: torch.Tensor, normalised: bool = False,
                 relative: bool = False) -> torch.Tensor:
    """MSE between feature maps (b, c, h, w). normalised=True compares instance-normalised features
    (structure only, independent of the channel statistics); relative=True divides the raw MSE by the
    target's mean square (so 1.0 means 'as far off as an all-zero map')."""
    if normalised:
        return F.mse_loss(Fn.instance_norm(out), Fn.instance_norm(target))
    loss = F.mse_loss(out.float(), target.float())
    return loss / target.float().pow(2).mean().clamp_min(1e-12) if relative else loss


def mean_std_loss(out: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, relative: bool = False) -> torch.Tensor:
    """Squared error of channel means and stds of `out` (b, c, h, w) against targets (b, c).
    relative=True divides by the mean squared target std."""
    m, s = Fn.mean_std(out)
    loss = F.mse_loss(m, mean.float()) + F.mse_loss(s, std.float())
    return loss / std.float().pow(2).mean().clamp_min(1e-8) if relative else loss


def local_stats_loss(out: torch.Tensor, target: torch.Tensor, window: int) -> torch.Tensor:
    """Squared error of the channel means and stds in every `window` x `window` block of `out` against the same
    block of `target` (both (b, c, h, w)), divided by the target's mean squared block std.

    A texture is matched where it is, not on average over the image: edge fringes cannot pay for texture missing in
    flat areas, and a shallow tap's statistics cannot be met by rings along the edges alone."""
    mo, so = Fn.local_mean_std(out, window)
    mt, st = Fn.local_mean_std(target, window)
    return (F.mse_loss(mo, mt) + F.mse_loss(so, st)) / st.pow(2).mean().clamp_min(1e-8)


def gram_loss(out: torch.Tensor, target_gram: torch.Tensor, relative: bool = False) -> torch.Tensor:
    """Squared error between the Gram matrix of `out` and a target Gram (b, c, c)."""
    loss = F.mse_loss(Fn.gram(out), target_gram.float())
    return loss / target_gram.float().pow(2).mean().clamp_min(1e-12) if relative else loss


def style_loss(out: Mapping[str, torch.Tensor], target: Mapping[str, tuple[torch.Tensor, torch.Tensor] | torch.Tensor],
               kind: str = "mean_std", relative: bool = False) -> torch.Tensor:
    """Sum over taps of the mean/std loss (target {tap: (mean, std)}) or Gram loss (target {tap: gram})."""
    if kind not in ("mean_std", "gram"):
        raise ValueError(f"style loss must be 'mean_std' or 'gram', got {kind!r}")
    total = 0.0
    for tap, t in target.items():
        total = total + (mean_std_loss(out[tap], *t, relative) if kind == "mean_std" else gram_loss(out[tap], t, relative))
    return total


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Total variation: mean absolute difference of neighbouring pixels (b, 3, h, w)."""
    return (image[..., 1:, :] - image[..., :-1, :]).abs().mean() + (image[..., :, 1:] - image[..., :, :-1]).abs().mean()


def identity_loss(rec: torch.Tensor, source: torch.Tensor, rec_feats: Mapping[str, torch.Tensor],
                  source_feats: Mapping[str, torch.Tensor], relative: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Identity losses of a reconstruction (StyTr²'s lambda1/lambda2: an image stylised with itself
    should come back unchanged).

    Args:
        rec, source: reconstruction and original, RGB (b, 3, h, w).
        rec_feats, source_feats: their features {tap: (b, c, h, w)}; every tap of source_feats counts.
        relative: divide each tap's feature MSE by the source's mean square (see content_loss).

    Returns:
        (pixel MSE, sum over taps of the feature MSE).
    """
    pixel = F.mse_loss(rec.float(), source.float())
    feature = sum(content_loss(rec_feats[t], f, relative=relative) for t, f in source_feats.items())
    return pixel, feature
