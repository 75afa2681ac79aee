"""The default model: VGG encoder -> AdaIN blend of K styles (at the deepest tap and any skips)
-> mirror decoder."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn

from . import functional as Fn
from .contract import Capabilities, per_image_alpha
from .decoder import Decoder, DecoderConfig
from .mixing import StyleCode, stack_codes
from .registry import register_model
from .vgg import DEFAULT_TAPS, EncoderConfig, VGGEncoder, tap_channels, tap_stride


@dataclass
class AdaINConfig:
    """Encoder + mixing + decoder."""

    encoder: EncoderConfig = field(default_factory=lambda: EncoderConfig(name="vgg16-hed"))
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    style_taps: tuple[str, ...] = DEFAULT_TAPS  # taps whose statistics make a StyleCode


@register_model("adain", AdaINConfig)
class AdaINModel(nn.Module):
    """One content image + K weighted styles -> one stylised image, in one forward pass.

    Implements `contract.StatisticsModel`: codes are per-tap statistics, blended before one AdaIN per tap.
    """

    capabilities = Capabilities(style_bank=True, tiling=True, modes=True, encoder_choice=True)

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

    @property
    def encoder_name(self) -> str:
        """Id of the encoder (its preset name); saved style codes record it."""
        return self.config.encoder.name

    def encode(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """RGB [0, 1] (b, 3, h, w) -> {tap: features}."""
        return self.encoder(image)

    def encode_content(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The contract's content encoding: the encoder's features {tap: (b, c, h, w)}."""
        return self.encode(images)

    def style_code(self, image: torch.Tensor) -> list[StyleCode]:
        """One StyleCode per image of the batch (b, 3, h, w)."""
        feats = self.encode(image)
        stats = {t: Fn.mean_std(feats[t]) for t in self.config.style_taps}
        return [StyleCode({t: m[i] for t, (m, _) in stats.items()}, {t: s[i] for t, (_, s) in stats.items()})
                for i in range(image.shape[0])]

    def check_codes(self, codes: Sequence[object]) -> None:
        """Every code must be a StyleCode with this model's mixing taps and channel counts."""
        for i, code in enumerate(codes):
            if not isinstance(code, StyleCode):
                raise ValueError(f"style {i + 1} is a {type(code).__name__}; this AdaIN model needs style images or "
                                 f"StyleCodes (per-tap statistics)")
            for tap in self.mix_taps:
                c = tap_channels(self.config.encoder.arch, tap)
                if tap not in code.mean:
                    raise ValueError(f"style {i + 1} has no statistics for {tap} (it has {list(code.taps)}); "
                                     f"re-encode it with this model")
                if code.mean[tap].numel() != c:
                    raise ValueError(f"style {i + 1} has {code.mean[tap].numel()} channels at {tap}, the model {c}; "
                                     f"it was encoded with a different encoder")

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

    def stylize(self, content: dict[str, torch.Tensor], codes: Sequence[StyleCode], weights: torch.Tensor,
                alpha: float | torch.Tensor = 1.0,
                content_stats: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None) -> torch.Tensor:
        """The contract's stylisation: mix, then decode.

        Args:
            content: `encode_content` features {tap: (b, c, h, w)}.
            codes: K StyleCodes.
            weights: (k,), (k, n) one blend per output image (features of batch 1), or (k, b, 1, h, w).
            alpha: content/style trade-off in [0, 1]; one per image with (k, n) weights.
            content_stats: whole-image content statistics {tap: (mean, std)} (tiling).

        Returns:
            (b or n, 3, h, w) in [0, 1].
        """
        if weights.dim() != 2:
            return self.decode(self.mix(content, codes, weights, float(alpha), content_stats)).clamp(0, 1)
        alphas = per_image_alpha(alpha, weights.shape[1])
        cells = [self.mix(content, codes, w, float(a), content_stats) for w, a in zip(weights.T, alphas)]
        return self.decode({t: torch.cat([c[t] for c in cells]) for t in cells[0]}).clamp(0, 1)

    def forward(self, content: torch.Tensor, codes: Sequence[StyleCode], weights: Sequence[float] | None = None,
                alpha: float = 1.0) -> torch.Tensor:
        """content (b, 3, h, w) with h, w multiples of `stride` -> stylised (b, 3, h, w) in [0, 1]."""
        w = Fn.validate_weights(weights, len(codes))
        return self.stylize(self.encode_content(content), codes, w, alpha)
