"""What a model's training run is made of (`Recipe`), and the config a run reads: a dataclass's defaults,
then a JSON file's fields, then `--set KEY=VALUE` overrides.

Each trainable model has a recipe next to its task (training/stytr2_task.py's RECIPE; the default model's
are training/cli.py's ADAIN_RECIPE and TEACHER_RECIPE). The model's registry entry names them
(`register_model(..., recipes={name: 'module:ATTRIBUTE'})`), and training/cli.py finds them there and drives a run.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from ..models.io import ConfigError, from_dict, load_json, to_dict


@dataclass
class Recipe:
    """What differs between models in a training run; `training.cli.drive` does the rest."""

    name: str  # shown in error messages, e.g. 'stylemix train --model stytr2'
    config_cls: type  # the run's TrainConfig dataclass
    build_config: Callable[[str | None, list[str]], Any]
    build_model: Callable[[Any], torch.nn.Module]
    make_task: Callable[[Any, torch.nn.Module, torch.device, Path], Any]  # (cfg, model, device, run_dir) -> Task
    export: Callable[[Any, Path, Path], Path]


def apply_override(cfg: dict, assignment: str) -> None:
    """'loop.lr=2e-4' -> cfg['loop']['lr'] = 2e-4 (values parsed as JSON when possible)."""
    if "=" not in assignment:
        raise ValueError(f"--set expects KEY=VALUE, got {assignment!r}")
    key, raw = assignment.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    node = cfg
    parts = key.split(".")
    for p in parts[:-1]:
        if not isinstance(node.get(p), dict):
            raise ValueError(f"--set {key}: no config section {p!r}")
        node = node[p]
    if parts[-1] not in node:
        raise ValueError(f"--set {key}: unknown field {parts[-1]!r}; fields: {', '.join(node)}")
    node[parts[-1]] = value


def build_config(config_file: str | None, overrides: list[str], config_cls: type) -> Any:
    """Defaults of `config_cls`, then a JSON file's fields, then KEY=VALUE overrides."""
    data = to_dict(config_cls())
    if config_file:
        new = load_json(config_file)
        if not isinstance(new, dict):
            raise ConfigError(f"{config_file} must hold a JSON object of {config_cls.__name__} fields, got "
                              f"{type(new).__name__}")
        _merge(data, new)
    for o in overrides:
        apply_override(data, o)
    return from_dict(config_cls, data)


def _merge(base: dict, new: dict) -> None:
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v
