"""Model registry: `register_model` adds a builder; `create_model(name)` builds from its default
config (or a given one); `list_models()` lists the names."""
from __future__ import annotations

import importlib
from typing import Any, Callable

from torch import nn

_REGISTRY: dict[str, tuple[type, Callable[..., nn.Module]]] = {}


def register_model(name: str, config_cls: type):
    """Decorator: register `builder(config) -> nn.Module` under `name` with its config dataclass."""

    def wrap(builder: Callable[..., nn.Module]):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = (config_cls, builder)
        return builder

    return wrap


# Built-in models and the module that registers each; imported only when first asked for,
# so loading the AdaIN model never pays for the transformer's imports (timm).
_BUILTIN = {"adain": "models.adain", "stytr2": "models.stytr2"}


def list_models() -> list[str]:
    """Names of every registered model."""
    for name in _BUILTIN:
        _load_builtin(name)
    return sorted(_REGISTRY)


def model_config_cls(name: str) -> type:
    _load_builtin(name)
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(sorted(set(_REGISTRY) | set(_BUILTIN)))}")
    return _REGISTRY[name][0]


def create_model(name: str, config: Any = None) -> nn.Module:
    """Build a registered model from `config` (its default config when None). Weights are not loaded."""
    cls = model_config_cls(name)
    return _REGISTRY[name][1](config if config is not None else cls())


def _load_builtin(name: str) -> None:
    # Importing a model module runs its @register_model decorator.
    if name in _BUILTIN and name not in _REGISTRY:
        importlib.import_module(_BUILTIN[name])
