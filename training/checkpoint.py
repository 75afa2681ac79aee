"""Checkpoints as one safetensors file: model + optimizer tensors + RNG, with step and config in
its metadata. Written atomically (temp file + rename), so a kill never leaves half a checkpoint."""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from models.io import WeightsError, load_tensors, save_tensors


def save_checkpoint(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int,
                    config: dict[str, Any]) -> None:
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    for pid, state in opt["state"].items():
        for key, value in state.items():
            tensors[f"optim.{pid}.{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    tensors["rng.torch"] = torch.get_rng_state()
    meta = {"step": str(step), "config": json.dumps(config), "param_groups": json.dumps(opt["param_groups"]),
            "rng.python": json.dumps(random.getstate())}
    save_tensors(path, tensors, meta)


def read_metadata(path: str | Path) -> dict[str, str]:
    with safe_open(str(path), "pt") as f:
        return f.metadata() or {}


def load_checkpoint(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Restore model, optimizer and RNG; returns the step to continue from."""
    tensors, meta = load_tensors(path), read_metadata(path)
    model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    missing = set(model.state_dict()) - set(model_state)
    if missing:
        raise WeightsError(f"checkpoint {path} lacks model keys {sorted(missing)[:5]}")
    model.load_state_dict(model_state)
    state: dict[int, dict[str, Any]] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, pid, key = k.split(".", 2)
            state.setdefault(int(pid), {})[key] = v
    optimizer.load_state_dict({"state": state, "param_groups": json.loads(meta["param_groups"])})
    torch.set_rng_state(tensors["rng.torch"])
    py = json.loads(meta["rng.python"])
    random.setstate((py[0], tuple(py[1]), py[2]))
    return int(meta["step"])


def checkpoint_config(path: str | Path) -> dict[str, Any]:
    return json.loads(read_metadata(path)["config"])
