"""Model registry: `register_model` adds a model class; `create_model(name)` builds it from its default
config (or a given one); `list_models()` lists the names; `model_capabilities(name)` says what a model
can do without building it. Every registered class implements `contract.StyleModel`.

A registry entry is all the project knows about a model beyond its file: its config class, what to tell a
person whose weights of it are not installed (`weights_help`), and the training recipes that train it
(`recipes`, found by `stylemix train --model NAME`). Weights dirs are named after their model: `NAME` or
`NAME-VARIANT` (weights/adain-vgg16-v2 holds an 'adain' model), which is how `weights_help` finds the entry
of weights that are missing.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from .contract import Capabilities


@dataclass(frozen=True)
class ModelEntry:
    """One registered model."""

    config_cls: type  # its config dataclass, built as config_cls() for the defaults
    model_cls: type  # built as model_cls(config); implements contract.StyleModel
    # what to do when its weights are not installed: '{where}' becomes the folder looked in, '{name}' the
    # weights name asked for
    weights_help: str = ""
    # training recipes: {--model name: 'module:ATTRIBUTE'}, imported only by the training CLI (training/recipe.py)
    recipes: dict[str, str] = field(default_factory=dict)


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, config_cls: type, *, weights_help: str = "", recipes: dict[str, str] | None = None):
    """Class decorator: register a model class (built as `cls(config)`, implementing `contract.StyleModel`)
    under `name` with its config dataclass.

    Args:
        weights_help: the message for a person who asked for weights of this model that are not installed
            (how to train, convert or fetch them); '{where}' and '{name}' are filled in.
        recipes: its training recipes, {recipe name: 'module:ATTRIBUTE'} naming a `training.recipe.Recipe`
            (e.g. {'stytr2': 'stylemix.training.stytr2_task:RECIPE'}); a string, so models/ imports no training.
    """

    def wrap(model_cls: type) -> type:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        if not isinstance(model_cls, type) or not isinstance(getattr(model_cls, "capabilities", None), Capabilities):
            raise TypeError(f"register_model({name!r}) decorates a model class with a `capabilities` class attribute "
                            f"(see models/contract.py), got {model_cls!r}")
        bad = [p for p in (recipes or {}).values() if not (isinstance(p, str) and p.count(":") == 1)]
        if bad:
            raise ValueError(f"register_model({name!r}): recipes name a 'module:ATTRIBUTE' each, got {bad}")
        _REGISTRY[name] = ModelEntry(config_cls, model_cls, weights_help, dict(recipes or {}))
        return model_cls

    return wrap


def unregister_model(name: str) -> None:
    """Remove a model added with `register_model` (a plug-in's, a test's); built-in models stay."""
    if name in _BUILTIN:
        raise ValueError(f"{name!r} is a built-in model and cannot be unregistered")
    if name not in _REGISTRY:
        raise ValueError(f"model {name!r} is not registered")
    del _REGISTRY[name]


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
    return _entry(name).config_cls


def model_capabilities(name: str) -> Capabilities:
    """What a registered model can do (its class's `capabilities`), without building it."""
    return _entry(name).model_cls.capabilities


def model_recipes(name: str) -> dict[str, str]:
    """The training recipes of a registered model: {recipe name: 'module:ATTRIBUTE'} ({} when it is not trained
    here)."""
    return dict(_entry(name).recipes)


def weights_help(weights_name: str, where: Any) -> str | None:
    """What to do about missing weights `weights_name` (looked for in `where`): the `weights_help` of the model
    they belong to by their name (`NAME` or `NAME-VARIANT`; the longest registered name that fits wins:
    'adain-fast' over 'adain'), filled in; None when no model's name fits or the model gives no help."""
    fits = [n for n in {*_BUILTIN, *_REGISTRY} if weights_name == n or weights_name.startswith(n + "-")]
    if not fits:
        return None
    text = _entry(max(fits, key=len)).weights_help
    return text.replace("{name}", weights_name).replace("{where}", str(where)) or None


def models_with(capability: str) -> list[str]:
    """Names of the registered models that offer `capability` (a field of contract.Capabilities)."""
    return [n for n in list_models() if getattr(model_capabilities(n), capability)]


def require_capability(model: Any, capability: str, what: str) -> None:
    """ValueError unless `model.capabilities` has `capability`; the message names the models that do."""
    model.capabilities.require(capability, what, type(model).__name__, models_with(capability))


def create_model(name: str, config: Any = None) -> nn.Module:
    """Build a registered model from `config` (its default config when None). Weights are not loaded."""
    entry = _entry(name)
    return entry.model_cls(config if config is not None else entry.config_cls())


def _entry(name: str) -> ModelEntry:
    _load_builtin(name)
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(sorted(set(_REGISTRY) | set(_BUILTIN)))}")
    return _REGISTRY[name]


def _load_builtin(name: str) -> None:
    # Importing a model module runs its @register_model decorator.
    if name in _BUILTIN and name not in _REGISTRY:
        importlib.import_module(_BUILTIN[name], __package__)
