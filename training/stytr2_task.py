"""Training task for StyTr² (models/stytr2.py), run by the shared loop (training/trainer.py).

Loss (the published recipe; the VGG encoder only scores, it is never in the forward pass):
  content   sum over relu4_1, relu5_1 of the MSE of mean-variance-normalised features (output vs content)
  style     mean/std loss at relu1_1..relu5_1 (output vs style)
  identity  the content stylised with itself must give the content back, the style with itself the
            style: pixel MSE (lambda1) and feature MSE at relu1_1..relu5_1 (lambda2)
Published weights: 7, 10, 70, 1 (with raw feature MSEs on a Caffe-scale VGG, as our default VGG16 is).

    # weights/stytr2:
    python -m stylemix.training --model stytr2 --config training/configs/stytr2-small.json --out runs/stytr2
    python -m stylemix.training --model stytr2 --out runs/stytr2 --export weights/stytr2-mine
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..models import functional as Fn
from ..models import pretrained
from ..models.io import check_value, save_model_dir, to_dict
from ..models.stytr2 import StyTr2Config, StyTr2Model

from . import losses
from .checkpoint import load_tensors, read_metadata
from .data import DataConfig, ImageFolder, PairBatches
from .recipe import Recipe
from .recipe import build_config as recipe_config
from .trainer import LoopConfig


@dataclass
class StyTr2LossConfig:
    content_weight: float = 7.0
    content_taps: tuple[str, ...] = ("relu4_1", "relu5_1")  # compared after instance normalisation
    style_weight: float = 10.0  # mean/std loss at the model's loss_taps
    identity_pixel_weight: float = 70.0  # lambda1: pixel MSE of both self-reconstructions
    identity_feature_weight: float = 1.0  # lambda2: feature MSE of both self-reconstructions
    relative: bool = False  # divide style / identity feature errors by the target's spread (scale-free)

    def __post_init__(self):
        for name in ("content_weight", "style_weight", "identity_pixel_weight", "identity_feature_weight"):
            v = getattr(self, name)
            check_value(f"loss.{name}", v, 0 <= v < float("inf"), "a finite number >= 0")


@dataclass
class StyTr2TrainConfig:
    """Everything a StyTr² run needs; saved in every checkpoint so resumes can be checked."""

    model: StyTr2Config = field(default_factory=StyTr2Config)
    encoder: str = "vgg16-hed"  # loss encoder: preset name or directory
    data: DataConfig = field(default_factory=DataConfig)
    loss: StyTr2LossConfig = field(default_factory=StyTr2LossConfig)
    loop: LoopConfig = field(default_factory=lambda: LoopConfig(lr=5e-4, lr_decay=1e-4, warmup=500))


class StyTr2Task:
    """Owns the model, its data and its loss. `loss(step)` reads the step's deterministic batch.

    Args:
        model: a StyTr2Model (its VGG encoder frozen, the rest trainable).
        data, loss: data and loss configs.
        rank: DDP rank (each rank draws its own batches).
        device: where the batches go.
        channels_last: feed channels_last inputs.
        batches: a source of (content, style) batches with `.batch(step)`; None reads `data`'s folders.
    """

    def __init__(self, model: StyTr2Model, data: DataConfig, loss: StyTr2LossConfig, rank: int = 0,
                 device: str | torch.device = "cpu", channels_last: bool = True, batches=None):
        self.model, self.cfg, self.device, self.cl = model, loss, torch.device(device), channels_last
        self.batches = batches or PairBatches(ImageFolder(data.content_dir, data.crop, data.content_short_side),
                                              ImageFolder(data.style_dir, data.crop, data.style_short_side),
                                              data.batch_size, data.seed, rank)
        model.encoder.eval()

    def _inputs(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        c, s = self.batches.batch(step)
        c, s = c.to(self.device), s.to(self.device)
        if self.cl:
            c, s = c.contiguous(memory_format=torch.channels_last), s.contiguous(memory_format=torch.channels_last)
        return c, s

    def batch_loss(self, content: torch.Tensor, style: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Weighted total and its parts for one batch of (content, style) pairs (b, 3, h, w)."""
        m, cfg = self.model, self.cfg
        with torch.no_grad():
            fc, fs = m.loss_features(content), m.loss_features(style)
        gc, gs = m.embed_grid(content), m.embed_grid(style)
        mem_c, mem_s = m.style_memory(gc), m.style_memory(gs)
        (tok_c, pos_c), (tok_s, pos_s) = m.content_memory(gc), m.content_memory(gs)

        def render(tokens, pos, memory, grid, like):
            return m.decode(m.transfer(tokens, pos, [memory]), tuple(grid.shape[-2:]))[..., :like.shape[-2], :like.shape[-1]]

        ics = render(tok_c, pos_c, mem_s, gc, content)  # content in the style
        icc = render(tok_c, pos_c, mem_c, gc, content)  # content in its own style: the content again
        iss = render(tok_s, pos_s, mem_s, gs, style)  # style in its own style: the style again
        fo = m.loss_features(ics)
        l_c = sum(losses.content_loss(fo[t], fc[t], normalised=True) for t in cfg.content_taps)
        l_s = losses.style_loss(fo, {t: Fn.mean_std(fs[t]) for t in fs}, "mean_std", cfg.relative)
        pc, fcc = losses.identity_loss(icc, content, m.loss_features(icc), fc, cfg.relative)
        ps, fss = losses.identity_loss(iss, style, m.loss_features(iss), fs, cfg.relative)
        l_p, l_f = pc + ps, fcc + fss
        total = (cfg.content_weight * l_c + cfg.style_weight * l_s + cfg.identity_pixel_weight * l_p
                 + cfg.identity_feature_weight * l_f)
        logs = {k: float(v.detach()) for k, v in
                (("content", l_c), ("style", l_s), ("identity_pixel", l_p), ("identity_feature", l_f))}
        logs["batch"] = content.shape[0]
        return total, logs

    def loss(self, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        return self.batch_loss(*self._inputs(step))

    def samples(self, step: int) -> torch.Tensor:
        """Rows: content, style, output for up to four pairs of this step's batch (eval mode)."""
        content, style = (x[:4] for x in self._inputs(step))
        m, was_training = self.model, self.model.training
        m.eval()
        try:
            outs = [m(content[i:i + 1], m.style_code(style[i:i + 1])) for i in range(content.shape[0])]
        finally:
            m.train(was_training)
        return torch.cat([content, style, torch.cat(outs).float()])


def build_config(config_file: str | None, overrides: list[str]) -> StyTr2TrainConfig:
    """Defaults, then a JSON file's fields, then KEY=VALUE overrides (training/recipe.py)."""
    return recipe_config(config_file, overrides, StyTr2TrainConfig)


def build_model(cfg: StyTr2TrainConfig, log=print) -> StyTr2Model:
    """A fresh StyTr2Model with the loss encoder's weights loaded (cfg.model.encoder is set from them)."""
    return pretrained.create_with_encoder("stytr2", cfg.model, cfg.encoder, log)


def export(cfg: StyTr2TrainConfig, run_dir: Path, out_dir: Path, dtype: torch.dtype = torch.float16) -> Path:
    """Checkpoint -> weights dir (config.json + fp16 decoder.safetensors holding every non-encoder tensor)."""
    ckpt = run_dir / "checkpoint.safetensors"
    model = build_model(cfg)
    model.load_state_dict({k[len("model."):]: v for k, v in load_tensors(ckpt).items() if k.startswith("model.")})
    meta = {"steps": read_metadata(ckpt)["step"], "encoder_id": cfg.encoder, "trained_with": json.dumps(to_dict(cfg))}
    return save_model_dir(model, "stytr2", cfg.model, out_dir, cfg.encoder, meta, dtype=dtype)


def _make_task(cfg: StyTr2TrainConfig, model, device, run_dir: Path) -> "StyTr2Task":
    return StyTr2Task(model, cfg.data, cfg.loss, rank=int(os.environ.get("RANK", 0)), device=device,
                      channels_last=cfg.loop.channels_last)


RECIPE = Recipe("stylemix train --model stytr2", StyTr2TrainConfig, build_config, build_model, _make_task, export)
