"""The fast model ("adain-fast"): the default model's blending of K styles on a network ~50x cheaper.

    image (b, 3, h, w)
      -> FastEncoder   one 3x3 conv per resolution, stride 2 from the second on: taps s1 (1/1), s2 (1/2), s4, s8,
                       each optionally followed by residual blocks (`level_blocks`; `blocks` at the deepest tap)
      -> mixing        AdaIN towards the weighted blend of K StyleCodes at s8 and at every skip
                       (mixing.StatisticsMixing, the code the default model runs); with a style hint
                       (config.style_hint, models/hint.py) each code is first corrected from a VGG's statistics
                       of the same style image, which its StyleCode carries beside the encoder's
      -> FastDecoder   residual blocks at s8; per level up: narrowing conv, bilinear x2, the mixed skip
                       concatenated, a fusing conv, that level's residual blocks; a last conv to RGB

Taps are named by their stride (s1 = full resolution, s8 = 1/8), as VGG's relu{b}_1 are by block. Bilinear
upsampling, because nearest left an 8 px block grid in the default (models/decoder.py). Zero padding by
default: reflection padding is a separate copy of every conv input, which made the whole model ~25 % slower
(measured, 512 px, one thread), and the frame zero padding would paint falls outside the image anyway (the
Stylizer paints a 32 px reflected frame around it and crops it off; distillation trains on such framed crops).
Where the time goes at 512 px is not only the convs: the per-tap statistics and AdaIN at full resolution cost
as much as a conv there, so models/functional.py computes them in two cheap passes.

The default reaches relu4_1 through ten VGG16 convs of 64-512 channels (~235 GFLOP per 512 px image with its
decoder); this model keeps 8-96 channels (~7 GFLOP, most of it at 1/4 and 1/8 resolution where convs run
fastest; widths 8-64 are ~4 GFLOP and measured no faster).

Its weights come from distillation, not from a loss network: training/fast_task.py trains encoder and decoder
together to reproduce a teacher's outputs, so its style codes (statistics of its own encoder) are its
own; `encoder_id` names them, and a weights dir ships the model's codes for the built-in style names.

Letters: b - batch, c - channels, h/w - height/width, k - styles.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .contract import Capabilities
from .decoder import upsample2x
from .io import check_value
from . import functional as Fn
from .hint import StyleHint
from .mixing import StatisticsMixing, StyleCode
from .registry import register_model
from .vgg import tap_channels as vgg_channels

PADDINGS = ("zeros", "reflect")
HINT_CHANNELS = {f"relu{b}_1": vgg_channels("vgg16", f"relu{b}_1") for b in range(1, 6)}  # taps a hint may read


@dataclass
class FastConfig:
    """Widths per resolution, residual blocks, skips, and an optional style hint (StyleHint)."""

    widths: tuple[int, ...] = (8, 16, 48, 96)  # channels of taps s1, s2, s4, s8 (tap s{2**i} has widths[i])
    blocks: int = 1  # residual blocks at the deepest tap, in the encoder and again in the decoder
    level_blocks: tuple[int, ...] = ()  # residual blocks at each shallower tap (s1, s2, s4; () = none), in the
    # encoder after the tap's conv and in the decoder after the level's fusing conv
    skips: tuple[str, ...] = ("s4", "s2", "s1")  # shallower taps mixed and concatenated on the way up
    padding: str = "zeros"  # conv padding: 'zeros' or 'reflect' (~25 % slower, see the module docstring)
    encoder_id: str = "adain-fast"  # id of the encoder's weights, recorded in style codes (export adds a hash)
    style_hint: tuple[str, ...] = ()  # VGG taps whose style statistics correct the code (StyleHint); () = off
    style_hint_encoder: str = "vgg16-hed"  # the VGG those statistics come from (a preset or encoder dir)

    def __post_init__(self):  # value checks; from_dict has checked the types
        check_value("widths", list(self.widths), len(self.widths) >= 2 and all(w >= 1 for w in self.widths),
                    "at least two positive channel counts, full resolution first")
        check_value("blocks", self.blocks, self.blocks >= 0, "an integer >= 0")
        check_value("level_blocks", list(self.level_blocks),
                    len(self.level_blocks) in (0, len(self.widths) - 1) and min(self.level_blocks, default=0) >= 0,
                    f"() or {len(self.widths) - 1} integers >= 0 (one per tap shallower than the deepest)")
        check_value("padding", self.padding, self.padding in PADDINGS, " or ".join(map(repr, PADDINGS)))
        deepest, known = tap_names(len(self.widths))[-1], tap_names(len(self.widths))
        bad = [s for s in self.skips if s not in known or s == deepest]
        check_value("skips", list(self.skips), not bad, f"taps among {list(known[:-1])} (shallower than {deepest})")
        check_value("style_hint", list(self.style_hint),
                    all(t in HINT_CHANNELS for t in self.style_hint) and len(set(self.style_hint)) == len(self.style_hint),
                    f"() or distinct VGG taps among {list(HINT_CHANNELS)}")

    def blocks_per_tap(self) -> tuple[int, ...]:
        """Residual blocks per tap, shallowest first (the deepest tap's are `blocks`)."""
        return (*(self.level_blocks or (0,) * (len(self.widths) - 1)), self.blocks)


def tap_names(levels: int) -> tuple[str, ...]:
    """Names of the taps of an encoder with `levels` resolutions, shallowest first: ('s1', 's2', 's4', ...)."""
    return tuple(f"s{2 ** i}" for i in range(levels))


def conv3x3(c_in: int, c_out: int, padding: str, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride, 1, padding_mode=padding)


class ResBlock(nn.Module):
    """x + conv(relu(conv(x))), at constant width. The second conv starts at zero, so a fresh block is the
    identity: blocks can be added to trained weights without changing what they compute (`deepen`)."""

    def __init__(self, channels: int, padding: str):
        super().__init__()
        self.conv1, self.conv2 = conv3x3(channels, channels, padding), conv3x3(channels, channels, padding)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class FastEncoder(nn.Module):
    """RGB [0, 1] (b, 3, h, w) -> {s1: (b, w0, h, w), s2: (b, w1, h/2, w/2), ...}; h, w multiples of the stride."""

    def __init__(self, config: FastConfig):
        super().__init__()
        w, p = config.widths, config.padding
        self.taps = tap_names(len(w))
        self.downs = nn.ModuleList([conv3x3(3, w[0], p), *(conv3x3(w[i - 1], w[i], p, 2) for i in range(1, len(w)))])
        self.blocks = nn.Sequential(*(ResBlock(w[-1], p) for _ in range(config.blocks)))
        self.level_blocks = _level_blocks(config)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        x, out = image - 0.5, {}
        for i, (tap, conv) in enumerate(zip(self.taps, self.downs)):
            x = F.relu(conv(x))
            if i < len(self.level_blocks):
                x = self.level_blocks[i](x)
            out[tap] = x
        out[self.taps[-1]] = self.blocks(x)
        return out


def _level_blocks(config: FastConfig) -> nn.ModuleList:
    """config.level_blocks as modules: one Sequential of residual blocks per shallower tap (empty list if none)."""
    return nn.ModuleList(nn.Sequential(*(ResBlock(c, config.padding) for _ in range(n)))
                         for c, n in zip(config.widths, config.level_blocks))


class FastDecoder(nn.Module):
    """Mixed features {tap: (b, c, h, w)} at the deepest tap and the skips -> RGB (b, 3, h, w), not clamped."""

    def __init__(self, config: FastConfig):
        super().__init__()
        w, p = config.widths, config.padding
        self.taps, self.skips = tap_names(len(w)), tuple(config.skips)
        self.blocks = nn.Sequential(*(ResBlock(w[-1], p) for _ in range(config.blocks)))
        # level i (stride 2**i, deepest-but-one first in use): narrow w[i+1] -> w[i], upsample, (+ skip), fuse
        self.narrow = nn.ModuleList(conv3x3(w[i + 1], w[i], p) for i in range(len(w) - 1))
        self.fuse = nn.ModuleList(conv3x3(w[i] * (2 if self.taps[i] in self.skips else 1), w[i], p)
                                  for i in range(len(w) - 1))
        self.level_blocks = _level_blocks(config)
        self.to_rgb = conv3x3(w[0], 3, p)

    def forward(self, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        x = self.blocks(targets[self.taps[-1]])
        for i in reversed(range(len(self.narrow))):
            x = upsample2x(F.relu(self.narrow[i](x)), "bilinear")
            if self.taps[i] in self.skips:
                x = torch.cat([x, targets[self.taps[i]].to(x.dtype)], dim=1)
            x = F.relu(self.fuse[i](x))
            if i < len(self.level_blocks):
                x = self.level_blocks[i](x)
        return self.to_rgb(x) + 0.5  # mirrors the encoder's `image - 0.5`: a fresh decoder starts at mid-grey


def fast_hint(config: FastConfig) -> StyleHint:
    """The style hint of a fast model: the VGG statistics of `config.style_hint` correct the code at every tap the
    decoder reads. The student's own code (168 channels of its shallow encoder in the shipped widths) cannot say
    what the teacher's VGG channels (960 at relu1_1..relu4_1) say about a style's strokes. The VGG pass is paid
    when a style image is encoded, which costs more than stylising with the student: encode a style once
    (`Stylizer.encode_style`, the built-in names' banked codes) and reuse its code."""
    taps = tap_names(len(config.widths))
    read = (taps[-1], *config.skips)
    return StyleHint({t: HINT_CHANNELS[t] for t in config.style_hint},
                     {t: c for t, c in zip(taps, config.widths) if t in read})


WEIGHTS_HELP = ("no {name} weights are installed (looked for {where}); distil them from a teacher (the recipe names "
                "adain-vgg16-v2) with 'stylemix train --model adain-fast --config training/configs/adain-fast.json "
                "--out runs/fast' then 'stylemix train --out runs/fast --export weights/{name}' (training/fast_task.py)")


@register_model("adain-fast", FastConfig, weights_help=WEIGHTS_HELP,
                recipes={"adain-fast": "stylemix.training.fast_task:RECIPE"})
class FastModel(StatisticsMixing, nn.Module):
    """One content image + K weighted styles -> one stylised image, in one pass of a small network.

    Implements `contract.StatisticsModel` exactly as the default AdaINModel does (`mixing.StatisticsMixing`):
    StyleCodes of its own encoder's statistics, blended per tap, masks as spatial weights, alpha, whole-image
    statistics for tiles.
    """

    capabilities = Capabilities(style_bank=True, tiling=True)

    def __init__(self, config: FastConfig):
        super().__init__()
        self.config = config
        self.encoder = FastEncoder(config)
        self.decoder = FastDecoder(config)
        self.hint = fast_hint(config) if config.style_hint else None
        self._hint_vgg: list[nn.Module] = []  # the frozen VGG of the hint (attach_style_encoder); not our weights
        # Channels-last weights, so every conv runs channels-last (inputs are converted in `encode`): oneDNN's
        # NCHW kernels are slow on these thin, wide maps (16 -> 8 channels at 512 px: 46 vs 11 ms, one thread),
        # and the whole model measured ~20 % faster at 512 px. Module.to(device), load_state_dict and
        # safetensors files (contiguous copies) all keep working unchanged.
        self.to(memory_format=torch.channels_last)

    @property
    def stride(self) -> int:
        """Input sizes must be multiples of this (the deepest tap's downsampling)."""
        return 2 ** (len(self.config.widths) - 1)

    @property
    def mix_taps(self) -> tuple[str, ...]:
        """Taps the decoder reads: the deepest tap first, then the skips."""
        return (self.encoder.taps[-1], *self.config.skips)

    @property
    def style_taps(self) -> tuple[str, ...]:
        """Taps whose statistics make a StyleCode: every tap of the encoder."""
        return self.encoder.taps

    @property
    def encoder_name(self) -> str:
        """Id of the encoder's weights (config.encoder_id); saved style codes record it."""
        return self.config.encoder_id

    def tap_channels(self, tap: str) -> int:
        """Channels of the encoder's features at `tap`, or of the style hint's VGG at one of its taps."""
        if tap in self.encoder.taps:
            return self.config.widths[self.encoder.taps.index(tap)]
        return HINT_CHANNELS[tap]

    @property
    def style_encoder_request(self) -> tuple[str, tuple[str, ...]] | None:
        """(VGG preset or dir, taps) the loader must `attach_style_encoder` for this model's codes; None if none."""
        return (self.config.style_hint_encoder, tuple(self.config.style_hint)) if self.hint is not None else None

    def attach_style_encoder(self, vgg: nn.Module) -> None:
        """Give a model with a style hint its frozen VGG (returning `config.style_hint` taps). It is kept outside
        the state dict (it is the shared pretrained encoder, not part of these weights) but follows `.to()`."""
        if self.hint is None:
            raise ValueError("this adain-fast model has no style hint (config.style_hint is empty)")
        missing = [t for t in self.hint.taps if t not in getattr(vgg, "taps", ())]
        if missing:
            raise ValueError(f"the style hint reads VGG taps {list(self.hint.taps)}, but the encoder given returns "
                             f"{list(getattr(vgg, 'taps', ()))}")
        like = next(self.parameters())
        self._hint_vgg[:] = [vgg.to(like.device).eval()]

    def _apply(self, fn, *args, **kwargs):  # .to(), .cuda(), .float() move the attached VGG too
        super()._apply(fn, *args, **kwargs)
        for vgg in self._hint_vgg:
            vgg._apply(fn)
        return self

    def hint_stats(self, image: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """{VGG tap: (mean, std) (b, c)} of style images (b, 3, h, w): the hint's input (float32, no gradient)."""
        if not self._hint_vgg:
            raise RuntimeError("this adain-fast model reads its styles through a VGG as well (config.style_hint) and "
                               "has none attached: load it with Stylizer.from_pretrained / models.pretrained.load_model, "
                               "or call attach_style_encoder")
        with torch.no_grad(), torch.autocast(image.device.type, enabled=False):  # the same figures in bf16 training
            vgg = self._hint_vgg[0]
            feats = vgg(image.to(next(vgg.parameters()).dtype))
            return {t: tuple(x.float() for x in Fn.mean_std(feats[t])) for t in self.hint.taps}

    def style_code(self, image: torch.Tensor) -> list[StyleCode]:
        """One StyleCode per style image: the encoder's statistics at every tap, and with a style hint the VGG's at
        `config.style_hint` (the hint reads them when codes are mixed)."""
        codes = super().style_code(image)
        if self.hint is None:
            return codes
        return with_hint_stats(codes, self.hint_stats(image))

    def encode(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """RGB [0, 1] (b, 3, h, w) -> {tap: features} (channels-last tensors)."""
        return self.encoder(image.contiguous(memory_format=torch.channels_last))

    def decode(self, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        """Targets {tap: features} at `mix_taps` -> RGB (b, 3, h, w), not clamped, in the usual memory layout."""
        dtype = self.decoder.to_rgb.weight.dtype
        cl = torch.channels_last
        return self.decoder({t: targets[t].to(dtype).contiguous(memory_format=cl) for t in self.mix_taps}).contiguous()


def with_hint_stats(codes: list[StyleCode], stats: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> list[StyleCode]:
    """Codes with VGG statistics {tap: (mean, std) (b, c)} of the same b style images added (`FastModel.hint_stats`)."""
    return [StyleCode({**c.mean, **{t: m[i] for t, (m, _) in stats.items()}},
                      {**c.std, **{t: s[i] for t, (_, s) in stats.items()}}) for i, c in enumerate(codes)]


def deepen(model: FastModel, config: FastConfig) -> FastModel:
    """A model of `config` that computes exactly what `model` does: `model`'s weights, and identity residual blocks
    (see ResBlock) where `config` has more of them, and an identity style hint (StyleHint) where `config` adds one,
    on `model`'s device and dtype. Widths, skips and padding must match; blocks and a hint may only be added.

    Training grows a trained student this way (training/fast_task.py, `init`), so its hours carry over.
    """
    def shape(c: FastConfig) -> str:
        return (f"widths {list(c.widths)}, skips {list(c.skips)}, padding {c.padding!r}, blocks per tap "
                f"{list(c.blocks_per_tap())} and style hint {list(c.style_hint)}"
                + (f" on {c.style_hint_encoder!r}" if c.style_hint else ""))

    old = model.config
    same = (list(old.widths), list(old.skips), old.padding) == (list(config.widths), list(config.skips), config.padding)
    hint_kept = not old.style_hint or ((list(old.style_hint), old.style_hint_encoder)
                                       == (list(config.style_hint), config.style_hint_encoder))
    if not same or not hint_kept or any(a > b for a, b in zip(old.blocks_per_tap(), config.blocks_per_tap())):
        raise ValueError(f"cannot grow a fast model with {shape(old)} into {shape(config)}: "
                         "only residual blocks and a style hint may be added")
    like = next(model.parameters())
    grown = FastModel(config).to(like.device, like.dtype)
    missing, unexpected = grown.load_state_dict(model.state_dict(), strict=False)
    if unexpected or not all(".blocks." in k or "level_blocks." in k or k.startswith("hint.") for k in missing):
        raise RuntimeError(f"deepen: unexpected state keys {unexpected[:3]}, missing {missing[:3]}")  # a bug here
    if model._hint_vgg and grown.hint is not None:
        grown.attach_style_encoder(model._hint_vgg[0])
    return grown
