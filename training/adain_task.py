"""Training task for the AdaIN model: decoder learns to invert AdaIN-mixed features.

Loss = content (instance-normalised relu4_1 of output vs the AdaIN target, i.e. the content's
structure) + style (mean/std or Gram at the style taps, relative to the style's spread)
+ optional identity (decode the content's own features back to the content photo) + optional TV.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..models import functional as Fn
from ..models.adain import AdaINModel
from ..models.io import check_value

from . import losses
from .data import DataConfig, ImageFolder, PairBatches


@dataclass
class AdaINLossConfig:
    content_weight: float = 1.0
    content_normalised: bool = True  # compare instance-normalised relu4_1 (structure) rather than raw
    style_weight: float = 5.0
    style_kind: str = "mean_std"  # 'mean_std' or 'gram'
    relative: bool = True  # divide each layer's error by the target's spread
    identity_weight: float = 0.0  # pixel L1 of decode(encode(content)) vs content
    tv_weight: float = 0.0
    # Scales the style loss is also taken at (output and style image resized by each factor): strokes
    # whose statistics also match at half size are large enough to survive downscaling, i.e. to read
    # at 512-1024 px output. (1.0,) = the original single-scale loss.
    style_scales: tuple[float, ...] = (1.0,)

    def __post_init__(self):
        for name in ("content_weight", "style_weight", "identity_weight", "tv_weight"):
            v = getattr(self, name)
            check_value(f"loss.{name}", v, 0 <= v < float("inf"), "a finite number >= 0")
        check_value("loss.style_scales", self.style_scales,
                    len(self.style_scales) > 0 and all(0 < v <= 1 for v in self.style_scales), "factors in (0, 1]")
        check_value("loss.style_kind", self.style_kind, self.style_kind in ("mean_std", "gram"), '"mean_std" or "gram"')


def rescale(x: torch.Tensor, s: float) -> torch.Tensor:
    """Resize (b, 3, h, w) by factor s (bilinear, antialiased when shrinking), in float32 and back to x's dtype:
    PyTorch has no antialiased kernel for bf16 (what the decoder gives under bf16 autocast)."""
    y = F.interpolate(x.float(), scale_factor=s, mode="bilinear", align_corners=False, antialias=s < 1)
    return y.to(x.dtype)


class AdaINTask:
    """Owns the model, its data and its loss. `loss(step)` reads the step's deterministic batch.

    Args:
        model: the AdaIN model (frozen encoder, trainable decoder).
        data, loss: data and loss configs.
        rank: DDP rank (each rank draws its own batches).
        device: where the batches go.
        channels_last: feed channels_last inputs.
    """

    def __init__(self, model: AdaINModel, data: DataConfig, loss: AdaINLossConfig, rank: int = 0,
                 device: str | torch.device = "cpu", channels_last: bool = True):
        self.model, self.cfg, self.device, self.cl = model, loss, torch.device(device), channels_last
        self.batches = PairBatches(ImageFolder(data.content_dir, data.crop, data.content_short_side),
                                   ImageFolder(data.style_dir, data.crop, data.style_short_side),
                                   data.batch_size, data.seed, rank)
        model.encoder.eval()

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device)
        return x.contiguous(memory_format=torch.channels_last) if self.cl else x

    def _inputs(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        c, s = self.batches.batch(step)
        return self._to_device(c), self._to_device(s)

    def loss(self, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """The step's loss and its parts (floats; 'batch' = images in the batch)."""
        m, cfg = self.model, self.cfg
        taps = m.config.style_taps
        with torch.no_grad():
            content, style = self._inputs(step)
            fc, fs = m.encode(content), m.encode(style)
            stats = {t: Fn.mean_std(fs[t]) for t in taps}
            grams = {t: Fn.gram(fs[t]) for t in taps} if cfg.style_kind == "gram" else None
            scaled = {s: m.encode(rescale(style, s)) for s in cfg.style_scales if s != 1.0}
        targets = {t: Fn.adain(fc[t], *stats[t]) for t in m.mix_taps}  # each sample's own style
        out = m.decode(targets)
        fo = m.encode(out)
        top = m.config.decoder.from_tap
        l_c = losses.content_loss(fo[top], targets[top], normalised=cfg.content_normalised)
        l_s = losses.style_loss(fo, grams if grams is not None else {t: stats[t] for t in taps}, cfg.style_kind,
                                cfg.relative)
        for s in cfg.style_scales:
            if s != 1.0:  # the same loss between the resized output and the resized style
                fo_s, fs_s = m.encode(rescale(out, s)), scaled[s]
                target = {t: Fn.gram(fs_s[t]) if cfg.style_kind == "gram" else Fn.mean_std(fs_s[t]) for t in taps}
                l_s = l_s + losses.style_loss(fo_s, target, cfg.style_kind, cfg.relative)
        l_s = l_s / len(cfg.style_scales)
        total = cfg.content_weight * l_c + cfg.style_weight * l_s
        logs = {"content": float(l_c.detach()), "style": float(l_s.detach()), "batch": content.shape[0]}
        if cfg.identity_weight:
            rec = m.decode({t: fc[t] for t in m.mix_taps})
            l_i = (rec.float() - content.float()).abs().mean()
            total = total + cfg.identity_weight * l_i
            logs["identity"] = float(l_i.detach())
        if cfg.tv_weight:
            total = total + cfg.tv_weight * losses.tv_loss(out.float())
        return total, logs

    def samples(self, step: int) -> torch.Tensor:
        """Rows: content, style, output for four pairs of this step's batch."""
        content, style = self._inputs(step)
        content, style = content[:4], style[:4]
        m = self.model
        fc, codes = m.encode(content), m.style_code(style)
        outs = [m.decode(m.mix({t: v[i:i + 1] for t, v in fc.items()}, [codes[i]], torch.ones(1))) for i in range(len(codes))]
        return torch.cat([content, style, torch.cat(outs).float().clamp(0, 1)])
