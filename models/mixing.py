"""Mixing layers: modules over the functional core.

A `StyleCode` is a style as numbers: per-tap channel mean and std. K codes and K weights blend into
one target statistic in one pass (`functional.mix`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from . import functional as Fn


@dataclass
class StyleCode:
    """Per-tap channel statistics of one style: {tap: (c,)} means and stds (float32)."""

    mean: dict[str, torch.Tensor]
    std: dict[str, torch.Tensor]

    @property
    def taps(self) -> tuple[str, ...]:
        return tuple(self.mean)

    def to(self, device: torch.device | str) -> "StyleCode":
        return StyleCode({t: v.to(device) for t, v in self.mean.items()}, {t: v.to(device) for t, v in self.std.items()})

    def cpu_copy(self) -> "StyleCode":
        """A float32 CPU copy, detached (usable outside the inference mode it was made in)."""
        return StyleCode({t: v.detach().float().cpu().clone() for t, v in self.mean.items()},
                         {t: v.detach().float().cpu().clone() for t, v in self.std.items()})

    @staticmethod
    def average(codes: Sequence["StyleCode"], weights: Sequence[float] | None = None) -> "StyleCode":
        """One code whose statistics are the weighted average of several (e.g. several images of one artist)."""
        w = Fn.validate_weights(weights, len(codes))
        means, stds = stack_codes(codes)
        return StyleCode(
            {t: Fn.blend_stats(means[t], stds[t], w)[0] for t in means},
            {t: Fn.blend_stats(means[t], stds[t], w)[1] for t in means},
        )


def stack_codes(codes: Sequence[StyleCode]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """K codes -> ({tap: (k, c)} means, {tap: (k, c)} stds). All codes must share taps."""
    taps = codes[0].taps
    for c in codes[1:]:
        if c.taps != taps:
            raise ValueError(f"style codes have different taps: {taps} vs {c.taps}")
    return (
        {t: torch.stack([c.mean[t] for c in codes]) for t in taps},
        {t: torch.stack([c.std[t] for c in codes]) for t in taps},
    )


class AdaIN(nn.Module):
    """AdaIN towards a weighted blend of K styles (no parameters); see `functional.mix`."""

    def forward(self, content: torch.Tensor, means: torch.Tensor, stds: torch.Tensor, weights: torch.Tensor,
                alpha: float = 1.0) -> torch.Tensor:
        return Fn.mix(content, means, stds, weights, alpha)


class ConditionalInstanceNorm(nn.Module):
    """Conditional instance norm: a learned (gamma, beta) per style id, blended by weights.

    Args:
        num_styles: number of learned styles S.
        channels: feature channels C.
    """

    def __init__(self, num_styles: int, channels: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(num_styles, channels))
        self.beta = nn.Parameter(torch.zeros(num_styles, channels))

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Args: x (b, c, h, w); weights (b, S) rows summing to 1 (one-hot picks one style)."""
        if weights.shape != (x.shape[0], self.gamma.shape[0]):
            raise ValueError(f"weights must be (batch, {self.gamma.shape[0]}), got {tuple(weights.shape)}")
        return Fn.adain(x, weights @ self.beta, weights @ self.gamma)
