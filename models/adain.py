"""The default model: VGG encoder -> AdaIN blend of K styles (at the deepest tap and any skips) -> mirror decoder."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .contract import Capabilities
from .decoder import Decoder, DecoderConfig
from .mixing import StatisticsMixing
from .registry import register_model
from .vgg import DEFAULT_TAPS, EncoderConfig, VGGEncoder, tap_channels, tap_stride


@dataclass
class AdaINConfig:
    """Encoder + mixing + decoder."""

    encoder: EncoderConfig = field(default_factory=lambda: EncoderConfig(name="vgg16-hed"))
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    style_taps: tuple[str, ...] = DEFAULT_TAPS  # taps whose statistics make a StyleCode


# What to do when weights of this model are missing (the default among them); the recipes that train it.
WEIGHTS_HELP = ("no trained decoder is installed (looked for {where}); train one with 'stylemix train --config "
                "training/configs/adain-vgg16.json --out runs/a' (it reads the photos and paintings that "
                "data.content_dir and data.style_dir name; override with --set data.content_dir=DIR) then "
                "'stylemix train --out runs/a --export weights/{name}', or convert the original AdaIN weights "
                "with 'stylemix weights convert adain --vgg vgg_normalised.pth --decoder decoder.pth -o DIR' and "
                "pass --model DIR")
RECIPES = {"adain": "stylemix.training.cli:ADAIN_RECIPE",  # training/adain_task.py
           "adain-teacher": "stylemix.training.cli:TEACHER_RECIPE"}  # toward an external teacher: teacher_task.py


@register_model("adain", AdaINConfig, weights_help=WEIGHTS_HELP, recipes=RECIPES)
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
        self.hint = None  # no style hint (mixing.StatisticsMixing reads it)

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

    def decode(self, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        """Targets {tap: features} at `mix_taps` -> RGB (b, 3, h, w), not clamped."""
        dtype = next(self.decoder.parameters()).dtype
        skips = {t: targets[t] for t in self.config.decoder.skips}
        return self.decoder(targets[self.config.decoder.from_tap].to(dtype), skips)
