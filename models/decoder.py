"""A decoder that mirrors a VGG encoder up to a tap, built from the same config lists.

Upsampling + reflection-padded 3x3 convs (upsample-then-conv avoids the checkerboard artifacts of
transposed convs). Nearest upsampling copies each value into a 2x2 block, and three of them in a row
leave an 8 px block grid in flat regions that the convs never fully hide; bilinear upsampling has no
block edges, so `upsample="bilinear"` is what new decoders use. Optional skips: at the resolution of each named tap, the (stylised)
encoder feature is concatenated before the first conv there, which keeps fine structure.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .vgg import conv_shapes, layer_names, tap_channels, tap_stride


@dataclass
class DecoderConfig:
    """A mirror decoder."""

    arch: str = "vgg16"  # encoder architecture to mirror
    from_tap: str = "relu4_1"  # deepest feature it decodes
    skips: tuple[str, ...] = ()  # shallower taps concatenated on the way up, e.g. ('relu3_1', 'relu2_1')
    width: float = 1.0  # channel multiplier of the hidden convs (1.0 = exact mirror)
    # Fixed input scale per tap ({tap: factor}, default 1): brings each input to unit RMS so Adam's
    # step size means the same for every layer, whatever the encoder's activation scale.
    feature_scale: dict[str, float] = field(default_factory=dict)
    upsample: str = "nearest"  # 'nearest' (the original AdaIN decoder) or 'bilinear' (no block grid)


def decoder_plan(config: DecoderConfig) -> list[tuple[str, int, int]]:
    """The decoder as data: ('conv', c_in, c_out) and ('up', 0, 0) steps, deepest first.

    The mirror of conv{b}_{i} (c_in -> c_out) is a conv c_out -> c_in; a pool becomes an upsample.
    A skip at relu{b}_1 widens the first conv after the upsample that reaches block b.
    """
    names = layer_names(config.arch)
    if config.from_tap not in names or not config.from_tap.startswith("relu"):
        raise ValueError(f"unknown tap {config.from_tap!r} for {config.arch}; decode from a relu tap like relu4_1")
    convs = {n: (i, o) for n, i, o in conv_shapes(config.arch)}
    scale = lambda c: c if c == 3 else max(8, int(round(c * config.width)))  # noqa: E731
    plan: list[tuple[str, int, int]] = []
    prefix = names[: names.index(config.from_tap.replace("relu", "conv")) + 1]
    pending_skip = 0
    for name in reversed(prefix):
        if name.startswith("pool"):
            plan.append(("up", 0, 0))
            block = int(name[4:])
            skip = f"relu{block}_1"
            pending_skip = tap_channels(config.arch, skip) if skip in config.skips else 0
        elif name.startswith("conv"):
            c_in, c_out = convs[name]
            src = config.from_tap if not plan else None
            width_in = tap_channels(config.arch, src) if src else plan_out(plan)
            plan.append(("conv", width_in + pending_skip, scale(c_in)))
            pending_skip = 0
    return plan


UPSAMPLE_MODES = ("nearest", "bilinear")


def upsample2x(x: torch.Tensor, mode: str) -> torch.Tensor:
    """Double the spatial size of (b, c, h, w)."""
    if mode == "nearest":
        return F.interpolate(x, scale_factor=2, mode="nearest")
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def drop_skips(state: dict[str, torch.Tensor], old: DecoderConfig, new: DecoderConfig,
               prefix: str = "") -> dict[str, torch.Tensor]:
    """`old`'s decoder weights (keys under `prefix`) for `new`, the same decoder reading only some of old's skips.

    A skip's channels follow the path's in the first conv after its upsample (forward's concatenation), so
    dropping it drops that conv's trailing input channels; every other weight is kept as it is.
    """
    if {**vars(old), "skips": ()} != {**vars(new), "skips": ()} or not set(new.skips) <= set(old.skips):
        raise ValueError(f"drop_skips keeps the decoder and drops skips; cannot go from {old} to {new}")
    widths = [c_in for kind, c_in, _ in decoder_plan(new) if kind == "conv"]
    out = dict(state)
    for j, c_in in enumerate(widths):
        key = f"{prefix}convs.{j}.weight"
        out[key] = state[key][:, :c_in].contiguous()
    return out


def plan_out(plan: list[tuple[str, int, int]]) -> int:
    return next(c_out for kind, _, c_out in reversed(plan) if kind == "conv")


class Decoder(nn.Module):
    """Mirror decoder: features at `from_tap` (+ skips) -> RGB image (b, 3, h, w), roughly [0, 1]."""

    def __init__(self, config: DecoderConfig):
        super().__init__()
        self.config = config
        self.plan = decoder_plan(config)  # checks from_tap
        # A skip joins after an upsample, so it must be a relu{b}_1 of a block shallower than from_tap's.
        bad = [s for s in config.skips if s not in ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
               or tap_stride(s) >= tap_stride(config.from_tap)]
        if bad:
            raise ValueError(f"skips must be relu{{b}}_1 taps of blocks shallower than {config.from_tap}, got {bad}")
        if config.upsample not in UPSAMPLE_MODES:
            raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}, got {config.upsample!r}")
        convs = [(i, o) for kind, i, o in self.plan if kind == "conv"]
        self.convs = nn.ModuleList(nn.Conv2d(i, o, 3, padding=1, padding_mode="reflect") for i, o in convs)
        self.skip_order = [s for s in sorted(config.skips, reverse=True)]

    def forward(self, feat: torch.Tensor, skips: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Args: feat (b, c, h/8, w/8) at from_tap; skips {tap: features}. Returns (b, 3, h, w)."""
        skips = skips or {}
        missing = [s for s in self.skip_order if s not in skips]
        if missing:
            raise ValueError(f"decoder needs skip features {missing}")
        scale = self.config.feature_scale
        x, i, queue = feat * scale.get(self.config.from_tap, 1.0), 0, list(self.skip_order)
        for kind, _, _ in self.plan:
            if kind == "up":
                x = upsample2x(x, self.config.upsample)
                if queue and skips[queue[0]].shape[-2:] == x.shape[-2:]:
                    tap = queue.pop(0)
                    x = torch.cat([x, skips[tap].to(x.dtype) * scale.get(tap, 1.0)], dim=1)
            else:
                x = self.convs[i](x)
                i += 1
                if i < len(self.convs):
                    x = F.relu(x)
        return x
