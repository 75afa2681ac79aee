"""Training task for the AdaIN model: decoder learns to invert AdaIN-mixed features.

Loss = content (instance-normalised relu4_1 of output vs the AdaIN target, i.e. the content's
structure) + style (mean/std or Gram at the style taps, relative to the style's spread)
+ optional identity (decode the content's own features back to the content photo) + optional TV.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from models import functional as Fn
from models.adain import AdaINConfig, AdaINModel

from . import losses
from .data import ImageFolder, PairBatches


@dataclass
class AdaINLossConfig:
    content_weight: float = 1.0
    content_normalised: bool = True  # compare instance-normalised relu4_1 (structure) rather than raw
    style_weight: float = 5.0
    style_kind: str = "mean_std"  # 'mean_std' or 'gram'
    relative: bool = True  # divide each layer's error by the target's spread
    identity_weight: float = 0.0  # pixel L1 of decode(encode(content)) vs content
    tv_weight: float = 0.0


@dataclass
class DataConfig:
    content_dir: str = "../shared/data/train/content"
    style_dir: str = "../shared/data/train/style"
    crop: int = 128
    content_short_side: tuple[int, int] = (128, 256)
    style_short_side: tuple[int, int] = (128, 224)
    batch_size: int = 8
    seed: int = 0


class AdaINTask:
    """Owns the model, its data and its loss. `loss(step)` reads the step's deterministic batch."""

    def __init__(self, model: AdaINModel, data: DataConfig, loss: AdaINLossConfig, rank: int = 0,
                 device: str | torch.device = "cpu", channels_last: bool = True):
        self.model, self.cfg, self.device, self.cl = model, loss, torch.device(device), channels_last
        self.batches = PairBatches(ImageFolder(data.content_dir, data.crop, data.content_short_side),
                                   ImageFolder(data.style_dir, data.crop, data.style_short_side),
                                   data.batch_size, data.seed, rank)
        model.encoder.eval()

    def _inputs(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        c, s = self.batches.batch(step)
        c, s = c.to(self.device), s.to(self.device)
        if self.cl:
            c, s = c.contiguous(memory_format=torch.channels_last), s.contiguous(memory_format=torch.channels_last)
        return c, s

    def loss(self, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        content, style = self._inputs(step)
        m, cfg = self.model, self.cfg
        taps = m.config.style_taps
        with torch.no_grad():
            fc, fs = m.encode(content), m.encode(style)
            stats = {t: Fn.mean_std(fs[t]) for t in taps}
            targets = {t: Fn.adain(fc[t], *stats[t]) for t in m.mix_taps}
            grams = {t: Fn.gram(fs[t]) for t in taps} if cfg.style_kind == "gram" else None
        out = m.decode(targets)
        fo = m.encode(out)
        top = m.config.decoder.from_tap
        l_c = losses.content_loss(fo[top], targets[top], normalised=cfg.content_normalised)
        l_s = losses.style_loss(fo, grams if grams is not None else stats, cfg.style_kind, cfg.relative)
        total = cfg.content_weight * l_c + cfg.style_weight * l_s
        logs = {"content": float(l_c), "style": float(l_s), "batch": content.shape[0]}
        if cfg.identity_weight:
            rec = m.decode({t: fc[t] for t in m.mix_taps})
            l_i = (rec.float() - content.float()).abs().mean()
            total = total + cfg.identity_weight * l_i
            logs["identity"] = float(l_i)
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
