"""The style hint: a learned correction of a style's statistics before they are blended and AdaIN'd; and the
decoder modulation, which reads the same statistics to scale and shift the decoder's hidden channels per style.

A decoder is convolutional: each output pixel sees a window of its AdaIN'd features, never the style as a whole,
so what a style's statistics say globally (how its channels differ, which strokes dominate) reaches it only as
local values, and a decoder realises its AdaIN targets in part (the default model's relu3_1/relu4_1 means land
0.30-0.37 of the style's spread away, measured at 512 px). The hint maps a style's statistics at some taps (`read`)
linearly to a correction of its targets at the taps the decoder reads (`write`):

    mean' = mean + u_t * (A_t z / sqrt(n))        std' = std * exp(B_t z / sqrt(n))

z (n values) is log1p of each read tap's channel means and stds, standardised over that tap's channels (so it is
O(1) whatever the tap's scale and says how a style differs across channels, not how bright it is); 1/sqrt(n)
keeps Adam's per-weight steps from moving the outputs by ~lr * n per step (without both, adain-fast's first 30
steps from trained weights threw its statistics loss from 0.13 to 0.98). u_t is 1 (an absolute shift, adain-fast's
own encoder) or, with `shift_by_std`, the style's std at that tap (a shift in units of the style's spread, so one
learning rate suits VGG taps whose scales differ by 100x).

It acts on each style before styles are blended, so blends, masks, alpha and tiling work on the corrected codes
exactly as without it, and weights (1, 0) give the first style's corrected code bit for bit (a product and a sum
per row, not a matmul, whose rounding would depend on how many styles are stacked). A and B start at zero: a
fresh hint is the identity, so it can be added to trained weights without changing what they compute. Computed
in float32 with autocast off, as the statistics and the blend are.

`StyleModulation` (below) reads the same z through a shared embedding and acts on the decoder instead of the
targets; it is zero-initialised and linear in z as well, so the same holds for it.

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
        shift_by_std: shift the means in units of the style's std at each tap (else absolute shifts).
    """

    def __init__(self, read: Mapping[str, int], write: Mapping[str, int], shift_by_std: bool = False):
        super().__init__()
        self.taps = tuple(read)  # the taps it reads
        self.shift_by_std = shift_by_std
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
                out = per_row(z, m)
                shift, log_scale = (out * gain).chunk(2, dim=-1)
                std = stds[tap].to(device, torch.float32)
                means[tap] = means[tap].to(device, torch.float32) + (shift * std if self.shift_by_std else shift)
                stds[tap] = std * torch.exp(log_scale)
        return means, stds


class StyleModulation(nn.Module):
    """A learned per-channel gain and bias for hidden layers of the decoder, from a style's own statistics.

    The hint changes what the decoder is asked for; this changes the decoder itself, per style, as the conditional
    instance norm of Magenta's arbitrary-stylisation network does (every layer modulated by a style embedding):

        x' = x * (1 + g_l) + b_l        (g_l, b_l) = C_l e + d_l,   e = E z / sqrt(n * rank)

    after hidden conv l (FiLM: a scale and shift per channel; nothing is normalised, the decoder's convs see the
    AdaIN'd features already), with z the hint's standardised log-statistics (n values, `style_features`), E a
    shared rank x n embedding (Gaussian init, trained too; the scale makes e a vector of norm ~1, so one Adam step on
    C_l moves a gain by at most ~lr * sqrt(rank)), and C_l, d_l zero-initialised, so a fresh modulation is the
    identity and can be added to trained weights. Linear in z, so K styles' modulations blend with the styles'
    weights (per pixel with masks) exactly as their statistics do; computed per row as the hint is (`per_row`).

    Args:
        read: {tap: channels} whose statistics are the input.
        layers: {layer name: channels} it modulates.
        rank: width of the shared embedding.
    """

    def __init__(self, read: Mapping[str, int], layers: Mapping[str, int], rank: int = 128):
        super().__init__()
        self.taps = tuple(read)
        width = 2 * sum(read.values())
        self.embed = nn.Linear(width, rank, bias=False)
        nn.init.normal_(self.embed.weight, std=1.0)
        self.maps = nn.ModuleDict({name: nn.Linear(rank, 2 * c) for name, c in layers.items()})
        for m in self.maps.values():
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, means: dict[str, torch.Tensor], stds: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """{tap: (k, c)} means and stds -> {layer: (k, 2c)} gains then biases, float32."""
        device = self.embed.weight.device
        with torch.autocast(device.type, enabled=False):
            z = style_features(means, stds, self.taps, device)
            e = per_row(z, self.embed) * (z.shape[-1] * self.embed.weight.shape[0]) ** -0.5
            return {name: per_row(e, m) for name, m in self.maps.items()}


def per_row(x: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
    """`layer` applied to each row of x (k, n) in float32 as a product and a sum, not a matmul, whose rounding would
    depend on how many rows are stacked: weights (1, 0) then give the first style's result bit for bit."""
    out = (x[:, None, :] * layer.weight.float()).sum(-1)
    return out + layer.bias.float() if layer.bias is not None else out


def style_features(means: Mapping[str, torch.Tensor], stds: Mapping[str, torch.Tensor], taps: tuple[str, ...],
                   device: torch.device) -> torch.Tensor:
    """The hint's input: log1p of each tap's channel means, then stds, standardised per tap -> (k, n) float32."""
    return torch.cat([standardise(torch.log1p(x[t].to(device, torch.float32).clamp_min(0)))
                      for x in (means, stds) for t in taps], dim=-1)


def standardise(x: torch.Tensor) -> torch.Tensor:
    """(..., c) -> zero mean, unit variance over the last dimension."""
    return (x - x.mean(-1, keepdim=True)) / x.std(-1, keepdim=True).clamp_min(1e-6)
