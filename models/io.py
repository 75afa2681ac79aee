"""Configs <-> config.json, and safetensors weights with every key and shape checked.

No pickle anywhere on this path: a weights file can never run code.
"""
from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import typing
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn


class WeightsError(ValueError):
    """A weights file or directory is missing, malformed or does not fit the model."""


def to_dict(config: Any) -> Any:
    """Dataclass (nested) -> JSON-ready dict; tuples become lists."""
    if dataclasses.is_dataclass(config):
        return {f.name: to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, (list, tuple)):
        return [to_dict(v) for v in config]
    return config


def from_dict(cls: type, data: dict) -> Any:
    """JSON dict -> dataclass `cls`, recursing into nested dataclasses; unknown keys are an error."""
    if not isinstance(data, dict):
        raise WeightsError(f"{cls.__name__} config must be a JSON object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise WeightsError(f"unknown {cls.__name__} config field(s): {', '.join(unknown)}")
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            value = from_dict(hint, value)
        elif typing.get_origin(hint) is tuple and isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def atomic_write(path: str | Path, write: typing.Callable[[str], None]) -> None:
    """Call write(tmp_path) on a temporary file beside `path`, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:  # on disk before the rename, so a crash never leaves a torn file
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_json(path: str | Path, data: dict) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=2) + "\n"))


def load_json(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"missing config file: {path}")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise WeightsError(f"{path} is not valid JSON: {e}") from None


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Write a safetensors file atomically (contiguous CPU copies)."""
    data = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_file(data, tmp, metadata=metadata))


def load_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file, failing with the path on anything unreadable."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"missing weights file: {path}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"{path} is not a readable safetensors file ({e})") from None


def check_state(module: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """Raise WeightsError naming every missing, unexpected and mis-shaped key."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in sorted(set(own) & set(state)) if state[k].shape != own[k].shape]
    problems = []
    if missing:
        problems.append(f"missing keys {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
    if shapes:
        problems.append(f"wrong shapes {shapes[:3]}")
    if problems:
        raise WeightsError(f"{what} does not fit the model: " + "; ".join(problems))


def load_into(module: nn.Module, path: str | Path, prefix: str = "") -> None:
    """Load a safetensors file into `module` strictly (keys optionally under `prefix`), casting
    to the module's dtypes. A module with a `filter_state(state)` method may drop keys it
    legitimately does not use (e.g. an encoder truncated at its deepest tap)."""
    state = load_tensors(path)
    if prefix:
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if hasattr(module, "filter_state"):
        state = module.filter_state(state)
    check_state(module, state, str(path))
    own = module.state_dict()
    module.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)
