"""The default model: VGG encoder -> AdaIN blend of K styles (at the deepest tap and any skips)
-> mirror decoder."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn

from . import functional as Fn
from .decoder import Decoder, DecoderConfig
from .mixing import StyleCode, stack_codes
from .registry import register_model
from .vgg import DEFAULT_TAPS, EncoderConfig, VGGEncoder, tap_stride


@dataclass
class AdaINConfig:
    """Encoder + mixing + decoder."""

    encoder: EncoderConfig = field(default_factory=lambda: EncoderConfig(name="vgg16-hed"))
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    style_taps: tuple[str, ...] = DEFAULT_TAPS  # taps whose statistics make a StyleCode


class AdaINModel(nn.Module):
    """One content image + K weighted styles -> one stylised image, in one forward pass."""

    def __init__(self, config: AdaINConfig):
        super().__init__()
        if config.decoder.arch != config.encoder.arch:
            raise ValueError(f"decoder mirrors {config.decoder.arch} but the encoder is {config.encoder.arch}")
        self.config = config
        taps = set(config.style_taps) | {config.decoder.from_tap} | set(config.decoder.skips)
        self.encoder = VGGEncoder(config.encoder, tuple(taps))
        self.decoder = Decoder(config.decoder)

    @property
    def stride(self) -> int:
        """Input sizes must be multiples of this (the deepest tap's downsampling)."""
        return max(tap_stride(t) for t in self.encoder.taps)

    @property
    def mix_taps(self) -> tuple[str, ...]:
        """Taps the decoder reads: the deepest tap first, then the skips."""
        return (self.config.decoder.from_tap, *self.config.decoder.skips)

    def encode(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """RGB [0, 1] (b, 3, h, w) -> {tap: features}."""
        return self.encoder(image)

    def style_code(self, image: torch.Tensor) -> list[StyleCode]:
        """One StyleCode per image of the batch (b, 3, h, w)."""
        feats = self.encode(image)
        stats = {t: Fn.mean_std(feats[t]) for t in self.config.style_taps}
        return [StyleCode({t: m[i] for t, (m, _) in stats.items()}, {t: s[i] for t, (_, s) in stats.items()})
                for i in range(image.shape[0])]

    def mix(self, feats: dict[str, torch.Tensor], codes: Sequence[StyleCode], weights: torch.Tensor,
            alpha: float = 1.0, content_stats: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None
            ) -> dict[str, torch.Tensor]:
        """AdaIN targets for every tap the decoder reads.

        Args:
            feats: content features {tap: (b, c, h, w)}.
            codes: K style codes (shared by the batch).
            weights: (k,) normalised weights or (k, b, 1, h, w) spatial weights (masks).
            alpha: content/style trade-off in [0, 1].
            content_stats: {tap: (mean, std)} to normalise with instead of the features' own statistics
                (whole-image statistics for a tile; see inference/tiling.py).
        """
        means, stds = stack_codes(codes)
        out = {}
        for tap in self.mix_taps:
            w = weights if weights.dim() == 1 else Fn.resize_weights(weights, feats[tap].shape[-2:])
            stats = None if content_stats is None else content_stats[tap]
            out[tap] = Fn.mix(feats[tap], means[tap].to(feats[tap].device), stds[tap].to(feats[tap].device), w, alpha,
                              stats)
        return out

    def decode(self, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        """Targets {tap: features} -> RGB (b, 3, h, w), not clamped."""
        dtype = next(self.decoder.parameters()).dtype
        skips = {t: targets[t] for t in self.config.decoder.skips}
        return self.decoder(targets[self.config.decoder.from_tap].to(dtype), skips)

    def forward(self, content: torch.Tensor, codes: Sequence[StyleCode], weights: Sequence[float] | None = None,
                alpha: float = 1.0) -> torch.Tensor:
        """content (b, 3, h, w) with h, w multiples of `stride` -> stylised (b, 3, h, w) in [0, 1]."""
        w = Fn.validate_weights(weights, len(codes))
        return self.decode(self.mix(self.encode(content), codes, w, alpha)).clamp(0, 1)


@register_model("adain", AdaINConfig)
def build_adain(config: AdaINConfig) -> AdaINModel:
    return AdaINModel(config)
