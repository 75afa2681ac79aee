"""The style hint: a learned correction of a style's statistics before they are blended and AdaIN'd (adain-fast,
models/fast.py, reads a VGG's statistics of the style image with it).

A decoder is convolutional: each output pixel sees a window of its AdaIN'd features, never the style as a whole,
so what a style's statistics say globally (how its channels differ, which strokes dominate) reaches it only as
local values. The hint maps a style's statistics at some taps (`read`) linearly to a correction of its targets at
the taps the decoder reads (`write`):

    mean' = mean + A_t z / sqrt(n)        std' = std * exp(B_t z / sqrt(n))

z (n values) is log1p of each read tap's channel means and stds, standardised over that tap's channels (so it is
O(1) whatever the tap's scale and says how a style differs across channels, not how bright it is); 1/sqrt(n)
keeps Adam's per-weight steps from moving the outputs by ~lr * n per step (without both, adain-fast's first 30
steps from trained weights threw its statistics loss from 0.13 to 0.98).

It acts on each style before styles are blended, so blends, masks, alpha and tiling work on the corrected codes
exactly as without it, and weights (1, 0) give the first style's corrected code bit for bit (a product and a sum
per row, not a matmul, whose rounding would depend on how many styles are stacked). A and B start at zero: a
fresh hint is the identity, so it can be added to trained weights without changing what they compute. Computed
in float32 with autocast off, as the statistics and the blend are.

Letters: k - styles (or batch rows), c - channels, n - the hint's inputs.
"""
from __future__ import annotations

from typing import Mapping

import torch
from torch import nn


class StyleHint(nn.Module):
    """A linear correction of per-tap style statistics (see the module docstring).

    Args:
        read: {tap: channels} whose statistics are the hint's input, in the order they are concatenated.
        write: {tap: channels} whose statistics it corrects.
    """

    def __init__(self, read: Mapping[str, int], write: Mapping[str, int]):
        super().__init__()
        self.taps = tuple(read)  # the taps it reads
        width = 2 * sum(read.values())
        self.maps = nn.ModuleDict({t: nn.Linear(width, 2 * c) for t, c in write.items()})
        for m in self.maps.values():
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, means: dict[str, torch.Tensor], stds: dict[str, torch.Tensor]
                ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """{tap: (k, c)} means and stds (the read taps among them) -> the same with the written taps corrected."""
        device = self.maps[next(iter(self.maps))].weight.device
        with torch.autocast(device.type, enabled=False):
            z = style_features(means, stds, self.taps, device)
            means, stds, gain = dict(means), dict(stds), z.shape[-1] ** -0.5
            for tap, m in self.maps.items():
                shift, log_scale = (per_row(z, m) * gain).chunk(2, dim=-1)
                means[tap] = means[tap].to(device, torch.float32) + shift
                stds[tap] = stds[tap].to(device, torch.float32) * torch.exp(log_scale)
        return means, stds


def per_row(x: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
    """`layer` applied to each row of x (k, n) in float32 as a product and a sum, not a matmul, whose rounding would
    depend on how many rows are stacked: weights (1, 0) then give the first style's result bit for bit."""
    return (x[:, None, :] * layer.weight.float()).sum(-1) + layer.bias.float()


def style_features(means: Mapping[str, torch.Tensor], stds: Mapping[str, torch.Tensor], taps: tuple[str, ...],
                   device: torch.device) -> torch.Tensor:
    """The hint's input: log1p of each tap's channel means, then stds, standardised per tap -> (k, n) float32."""
    return torch.cat([standardise(torch.log1p(x[t].to(device, torch.float32).clamp_min(0)))
                      for x in (means, stds) for t in taps], dim=-1)


def standardise(x: torch.Tensor) -> torch.Tensor:
    """(..., c) -> zero mean, unit variance over the last dimension."""
    return (x - x.mean(-1, keepdim=True)) / x.std(-1, keepdim=True).clamp_min(1e-6)
