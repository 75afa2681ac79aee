"""Checkpoints as one safetensors file: model + optimizer tensors + RNG, with step and config in
its metadata. Written atomically (temp file + rename), so a kill never leaves half a checkpoint.

Layout (tensors): `model.<key>`, `optim.<param id>.<state key>`, `rng.torch`, optional `rng.cuda.<i>`,
optional `scaler.scale` / `scaler.growth_tracker` (fp16 AMP). Metadata: `step`, `config` (JSON),
`param_groups` (JSON), `rng.python` (JSON), and what the run gives besides: `stylemix train` records the
recipe (`recipe`, e.g. 'adain-teacher') and the registered model it trains (`model`, e.g. 'adain').
Optional entries are skipped when absent, so older checkpoints load unchanged.
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from ..models.io import WeightsError, check_state, load_tensors, save_tensors

RECIPE_KEY, MODEL_KEY = "recipe", "model"  # metadata naming the training recipe and the model it trains


def save_checkpoint(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int,
                    config: dict[str, Any], scaler: "torch.amp.GradScaler | None" = None,
                    metadata: dict[str, str] | None = None) -> None:
    """Write model, optimizer, RNG states, step and config to `path` atomically.

    Args:
        path: the .safetensors file to (re)write.
        model, optimizer: whose state to save.
        step: optimiser steps completed.
        config: the run's JSON-ready config (checked on resume).
        scaler: the fp16 GradScaler, when one is in use.
        metadata: more strings to record, e.g. {RECIPE_KEY: 'adain', MODEL_KEY: 'adain'}.
    """
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    for pid, state in opt["state"].items():
        for key, value in state.items():
            tensors[f"optim.{pid}.{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = state
    if scaler is not None and scaler.is_enabled():
        s = scaler.state_dict()
        tensors["scaler.scale"] = torch.tensor(float(s["scale"]), dtype=torch.float64)
        tensors["scaler.growth_tracker"] = torch.tensor(int(s["_growth_tracker"]), dtype=torch.int64)
    meta = {**(metadata or {}), "step": str(step), "config": json.dumps(config),
            "param_groups": json.dumps(opt["param_groups"]), "rng.python": json.dumps(random.getstate())}
    save_tensors(path, tensors, meta)


def read_metadata(path: str | Path) -> dict[str, str]:
    """The checkpoint's string metadata (step, config, ...), without reading its tensors."""
    try:
        with safe_open(str(path), "pt") as f:
            return f.metadata() or {}
    except (SafetensorError, OSError) as e:
        raise WeightsError(f"{path} is not a readable checkpoint ({e})") from None


def load_checkpoint(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scaler: "torch.amp.GradScaler | None" = None) -> int:
    """Restore model, optimizer, RNG (and the GradScaler when given and saved); returns the step to continue from."""
    tensors, meta = load_tensors(path), read_metadata(path)
    model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    check_state(model, model_state, f"checkpoint {path}")
    model.load_state_dict(model_state)
    state: dict[int, dict[str, Any]] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, pid, key = k.split(".", 2)
            state.setdefault(int(pid), {})[key] = v
    optimizer.load_state_dict({"state": state, "param_groups": json.loads(meta["param_groups"])})
    torch.set_rng_state(tensors["rng.torch"])
    cuda_states = [tensors[k] for k in sorted((k for k in tensors if k.startswith("rng.cuda.")),
                                              key=lambda k: int(k.rsplit(".", 1)[1]))]
    if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_states)
    if scaler is not None and scaler.is_enabled() and "scaler.scale" in tensors:
        s = scaler.state_dict()
        s.update(scale=float(tensors["scaler.scale"]), _growth_tracker=int(tensors["scaler.growth_tracker"]))
        scaler.load_state_dict(s)
    py = json.loads(meta["rng.python"])
    random.setstate((py[0], tuple(py[1]), py[2]))
    return int(meta["step"])


def checkpoint_config(path: str | Path, meta: dict[str, str] | None = None) -> dict[str, Any]:
    """The run config a checkpoint was written with (from its metadata `meta`, read from `path` when None)."""
    meta = read_metadata(path) if meta is None else meta
    if "config" not in meta:
        raise WeightsError(f"{path} is not a training checkpoint (no config in its metadata)")
    return json.loads(meta["config"])
