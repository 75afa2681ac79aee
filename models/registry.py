"""Model registry: `register_model` adds a builder; `create_model(name)` builds from its default
config (or a given one); `list_models()` lists the names."""
from __future__ import annotations

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


def list_models() -> list[str]:
    """Names of every registered model."""
    _load_builtin()
    return sorted(_REGISTRY)


def model_config_cls(name: str) -> type:
    _load_builtin()
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name][0]


def create_model(name: str, config: Any = None) -> nn.Module:
    """Build a registered model from `config` (its default config when None). Weights are not loaded."""
    cls = model_config_cls(name)
    return _REGISTRY[name][1](config if config is not None else cls())


def _load_builtin() -> None:
    # Importing the model modules runs their @register_model decorators.
    from . import adain  # noqa: F401
    try:
        from . import stytr2  # noqa: F401
    except ImportError:
        pass
