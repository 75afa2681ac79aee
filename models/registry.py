"""Model registry: `register_model` adds a model class; `create_model(name)` builds it from its default
config (or a given one); `list_models()` lists the names; `model_capabilities(name)` says what a model
can do without building it. Every registered class implements `contract.StyleModel`."""
from __future__ import annotations

import importlib
from typing import Any

from torch import nn

from .contract import Capabilities

_REGISTRY: dict[str, tuple[type, type]] = {}


def register_model(name: str, config_cls: type):
    """Class decorator: register a model class (built as `cls(config)`, implementing `contract.StyleModel`)
    under `name` with its config dataclass."""

    def wrap(model_cls: type) -> type:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        if not isinstance(model_cls, type) or not isinstance(getattr(model_cls, "capabilities", None), Capabilities):
            raise TypeError(f"register_model({name!r}) decorates a model class with a `capabilities` class attribute "
                            f"(see models/contract.py), got {model_cls!r}")
        _REGISTRY[name] = (config_cls, model_cls)
        return model_cls

    return wrap


# Built-in models and the module that registers each; imported only when first asked for,
# so loading the AdaIN model never pays for the transformer's imports (timm).
_BUILTIN = {"adain": ".adain", "adain-fast": ".fast", "stytr2": ".stytr2"}  # relative to this package


def list_models() -> list[str]:
    """Names of every registered model."""
    for name in _BUILTIN:
        _load_builtin(name)
    return sorted(_REGISTRY)


def model_config_cls(name: str) -> type:
    """The config dataclass of a registered model."""
    return _entry(name)[0]


def model_capabilities(name: str) -> Capabilities:
    """What a registered model can do (its class's `capabilities`), without building it."""
    return _entry(name)[1].capabilities


def models_with(capability: str) -> list[str]:
    """Names of the registered models that offer `capability` (a field of contract.Capabilities)."""
    return [n for n in list_models() if getattr(model_capabilities(n), capability)]


def require_capability(model: Any, capability: str, what: str) -> None:
    """ValueError unless `model.capabilities` has `capability`; the message names the models that do."""
    model.capabilities.require(capability, what, type(model).__name__, models_with(capability))


def create_model(name: str, config: Any = None) -> nn.Module:
    """Build a registered model from `config` (its default config when None). Weights are not loaded."""
    config_cls, model_cls = _entry(name)
    return model_cls(config if config is not None else config_cls())


def _entry(name: str) -> tuple[type, type]:
    _load_builtin(name)
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(sorted(set(_REGISTRY) | set(_BUILTIN)))}")
    return _REGISTRY[name]


def _load_builtin(name: str) -> None:
    # Importing a model module runs its @register_model decorator.
    if name in _BUILTIN and name not in _REGISTRY:
        importlib.import_module(_BUILTIN[name], __package__)
