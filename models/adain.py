"""The default model: VGG encoder -> AdaIN blend of K styles (at the deepest tap and any skips)
-> mirror decoder; optionally each style's statistics corrected by a learned style hint first, and the decoder's
hidden layers modulated per style (both models/hint.py)."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .contract import Capabilities
from .decoder import Decoder, DecoderConfig
from . import functional as Fn
from .hint import StyleHint, StyleModulation
from .io import check_value
from .mixing import StatisticsMixing
from .registry import register_model
from .vgg import DEFAULT_TAPS, EncoderConfig, VGGEncoder, tap_channels, tap_stride


@dataclass
class AdaINConfig:
    """Encoder + mixing + decoder."""

    encoder: EncoderConfig = field(default_factory=lambda: EncoderConfig(name="vgg16-hed"))
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    style_taps: tuple[str, ...] = DEFAULT_TAPS  # taps whose statistics make a StyleCode
    # style taps whose statistics correct every style's targets before the blend (a learned StyleHint, models/
    # hint.py; shifts in units of the style's std); () = none. It reads the code the model already makes.
    style_hint: tuple[str, ...] = ()
    # style taps whose statistics scale and shift every hidden conv's channels in the decoder per style (a learned
    # StyleModulation, models/hint.py); () = none
    decoder_modulation: tuple[str, ...] = ()
    modulation_rank: int = 128  # width of the modulation's shared style embedding

    def __post_init__(self):
        for name in ("style_hint", "decoder_modulation"):  # the order fixes what each learned input means
            taps = getattr(self, name)
            check_value(name, list(taps), list(taps) == [t for t in self.style_taps if t in taps]
                        and len(set(taps)) == len(taps), f"distinct taps among style_taps {list(self.style_taps)}, in "
                        f"that order")
        check_value("modulation_rank", self.modulation_rank, self.modulation_rank >= 1, "at least 1")


@register_model("adain", AdaINConfig)
class AdaINModel(StatisticsMixing, nn.Module):
    """One content image + K weighted styles -> one stylised image, in one forward pass.

    Implements `contract.StatisticsModel`: codes are per-tap statistics, blended before one AdaIN per tap
    (style_code, check_codes, mix, stylize and forward come from `mixing.StatisticsMixing`).
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
        self.hint = StyleHint({t: self.tap_channels(t) for t in config.style_hint},
                              {t: self.tap_channels(t) for t in self.mix_taps}, shift_by_std=True) \
            if config.style_hint else None
        self.modulation = StyleModulation({t: self.tap_channels(t) for t in config.decoder_modulation},
                                          {str(i): c for i, c, _ in self.decoder.hidden_layers()},
                                          config.modulation_rank) if config.decoder_modulation else None

    @property
    def modulation_taps(self) -> tuple[str, ...]:
        """Taps the decoder's modulation reads (none without one)."""
        return self.modulation.taps if self.modulation is not None else ()

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

    @property
    def style_taps(self) -> tuple[str, ...]:
        """Taps whose statistics make a StyleCode."""
        return tuple(self.config.style_taps)

    def tap_channels(self, tap: str) -> int:
        """Channels of the encoder's features at `tap`."""
        return tap_channels(self.config.encoder.arch, tap)

    def modulate(self, targets: dict[str, torch.Tensor], means: dict[str, torch.Tensor], stds: dict[str, torch.Tensor],
                 weights: torch.Tensor | None, alpha: float | torch.Tensor = 1.0) -> dict[str, torch.Tensor]:
        """`targets` plus the decoder's modulation, if the model has one, as "mod<i>" entries (hidden conv i).

        Each style's modulation comes from its own statistics (row k of `means` / `stds`, before any style hint),
        and they are blended by `weights` as the statistics are, then scaled by alpha: (1, 2c, 1, 1) for weights
        (k,), (b, 2c, h, w) at conv i's resolution for spatial weights (k, b, 1, h, w) (kept until decoded: with
        masks, 2c floats per pixel per hidden conv), and row k for batch row k when weights is None (training)."""
        if self.modulation is None:
            return targets
        out, per_style = dict(targets), self.modulation(means, stds)
        deep, top = targets[self.config.decoder.from_tap], tap_stride(self.config.decoder.from_tap)
        for i, _, stride in self.decoder.hidden_layers():
            f = per_style[str(i)]  # (k, 2c)
            if weights is None:
                m = f[:, :, None, None]
            elif weights.dim() == 1:
                m = Fn.blend(f, weights)[None, :, None, None]
            else:
                m = Fn.blend(f, Fn.resize_weights(weights, (deep.shape[-2] * top // stride,
                                                            deep.shape[-1] * top // stride)))
            out[f"mod{i}"] = m * alpha
        return out

    def decode(self, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        """Targets {tap: features} (and any "mod<i>" modulation, see `modulate`) -> RGB (b, 3, h, w), not clamped."""
        dtype = next(self.decoder.parameters()).dtype
        skips = {t: targets[t] for t in self.config.decoder.skips}
        mods = {int(k[3:]): v for k, v in targets.items() if k.startswith("mod")}
        return self.decoder(targets[self.config.decoder.from_tap].to(dtype), skips, mods)
