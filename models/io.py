"""Configs <-> config.json, and safetensors weights with every key and shape checked.

No pickle anywhere on this path: a weights file can never run code.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import types
import typing
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from .mixing import StyleCode


class WeightsError(ValueError):
    """A weights file or directory is missing, malformed or does not fit the model."""


class ConfigError(WeightsError):
    """A config (a weights dir's config.json, a training config) has an unknown field or a value of the wrong
    type. A WeightsError, so every caller that reports a bad weights dir reports a bad config too."""


def to_dict(config: Any) -> Any:
    """Dataclass (nested) -> JSON-ready dict; tuples become lists."""
    if dataclasses.is_dataclass(config):
        return {f.name: to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, (list, tuple)):
        return [to_dict(v) for v in config]
    return config


# Config fields that no longer exist, by config class: {field: the value that left it off}. Checkpoints and weights
# dirs record every field of the config that made them (a run's checkpoint, `trained_with`), so a config that holds
# one still loads while it is off, and fails naming it while it is on: what it switched on is gone (git has it).
RETIRED: dict[str, dict[str, Any]] = {
    "AdaINConfig": {"style_hint": [], "decoder_modulation": [], "modulation_rank": 128},
    "StyTr2Config": {"blend": "normalised"},
    "DataConfig": {"style_abstract": 0.0, "style_ink": 0.0, "style_augment": 0.0, "style_cache": False},
    "LoopConfig": {"lr_scales": {}},
}


class RetiredField(ConfigError):
    """A config sets a retired field (`RETIRED`) to something other than its off value."""


def without_retired(cls: type, data: dict, field: str = "") -> dict:
    """`data` less the fields `RETIRED` lists for `cls`; RetiredField naming the first one that is not off."""
    retired = RETIRED.get(cls.__name__, {})
    for name in retired.keys() & data.keys():
        if to_dict(data[name]) != retired[name]:  # tuples as lists
            dotted = f"{field}.{name}" if field else name
            raise RetiredField(f"config field {dotted} was removed, and only its off value {json.dumps(retired[name])} "
                               f"still loads; got {_show(data[name])}: this config needs the code of an older "
                               f"version (git history)")
    return {k: v for k, v in data.items() if k not in retired}


def from_dict(cls: type, data: dict, field: str = "") -> Any:
    """JSON dict -> dataclass `cls`, recursing into nested dataclasses.

    Every value is checked against its field's annotation (str, int, float, bool, tuple, list, dict, a nested
    dataclass, Optional/Union, Literal): an int is accepted where a float is expected, a bool is never a
    number, JSON lists become tuples where the field is a tuple.

    Args:
        cls: the dataclass to build.
        data: the parsed JSON object.
        field: dotted name of `data` inside a larger config (e.g. 'loop'), used in messages.

    Raises:
        ConfigError naming the dotted field, the value and the expected type; or every unknown field. RetiredField
        for a retired field (`RETIRED`) that is not off; one that is off is dropped.
    """
    if not isinstance(data, dict):
        if field:
            raise ConfigError(f"config field {field} must be a JSON object ({cls.__name__}), got {_show(data)}")
        raise ConfigError(f"{cls.__name__} config must be a JSON object, got {_show(data)}")
    data = without_retired(cls, data, field)
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        where = f" in {field!r}" if field else ""
        raise ConfigError(f"unknown {cls.__name__} config field(s){where}: {', '.join(map(str, unknown))}; "
                          f"fields: {', '.join(sorted(names))}")
    return cls(**{name: _typed(hints[name], value, f"{field}.{name}" if field else name)
                  for name, value in data.items()})


def _typed(hint: Any, value: Any, field: str) -> Any:
    """`value` converted to the annotation `hint` (JSON list -> tuple, int -> float), else ConfigError."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, field)
    if hint is Any:
        return value
    if origin in (typing.Union, getattr(types, "UnionType", typing.Union)):
        if value is None and type(None) in args:
            return None
        for arm in args:
            if arm is not type(None):
                try:
                    return _typed(arm, value, field)
                except ConfigError:
                    pass
        raise _type_error(hint, value, field)
    if origin is typing.Literal:
        if any(value == a and type(value) is type(a) for a in args):
            return value
        raise ConfigError(f"config field {field} must be one of {', '.join(map(json.dumps, args))}, got {_show(value)}")
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    elif hint is type(None):
        if value is None:
            return None
    elif hint in (tuple, list) or origin in (tuple, list):
        if isinstance(value, (list, tuple)):
            if not args:
                items = list(value)
            elif len(args) == 2 and args[1] is Ellipsis:
                items = [_typed(args[0], v, f"{field}[{i}]") for i, v in enumerate(value)]
            elif len(args) == len(value):
                items = [_typed(a, v, f"{field}[{i}]") for i, (a, v) in enumerate(zip(args, value))]
            else:
                raise ConfigError(f"config field {field} must be a list of {len(args)} items, got {_show(value)}")
            return tuple(items) if (hint is tuple or origin is tuple) else items
    elif hint is dict or origin is dict:
        if isinstance(value, dict):
            if not args:
                return dict(value)
            return {_typed(args[0], k, f"{field} key"): _typed(args[1], v, f"{field}.{k}") for k, v in value.items()}
    else:  # an annotation this checker does not know: accept the value as it is
        return value
    raise _type_error(hint, value, field)


def check_value(field: str, value: Any, ok: bool, expected: str) -> None:
    """ConfigError 'config field {field} must be {expected}, got {value}' unless `ok`: the value checks a
    config class runs in __post_init__, worded like the type checks of `from_dict`."""
    if not ok:
        raise ConfigError(f"config field {field} must be {expected}, got {_show(value)}")


def _type_error(hint: Any, value: Any, field: str) -> ConfigError:
    return ConfigError(f"config field {field} must be {_describe(hint)}, got {_show(value)}")


def _describe(hint: Any) -> str:
    """'an integer', 'a list of strings', ... for messages."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return f"a JSON object ({hint.__name__})"
    if origin in (typing.Union, getattr(types, "UnionType", typing.Union)):
        return " or ".join(_describe(a) for a in args)
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "null",
             dict: "a JSON object", tuple: "a list", list: "a list"}
    if hint in names:
        return names[hint]
    if origin in (tuple, list):
        if not args or (len(args) == 2 and args[1] is Ellipsis):
            return f"a list of {_plural(args[0])}" if args else "a list"
        return f"a list of {len(args)} items ({', '.join(_describe(a) for a in args)})"
    if origin is dict:
        return f"a JSON object of {_plural(args[1])}" if args else "a JSON object"
    return getattr(hint, "__name__", str(hint))


def _plural(hint: Any) -> str:
    return {bool: "true/false values", int: "integers", float: "numbers", str: "strings"}.get(hint, _describe(hint))


def _show(value: Any) -> str:
    """A value as the user wrote it in JSON, with its JSON type: '"1.0" (a string)'."""
    kind = {bool: "true/false", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a JSON object", type(None): "null"}.get(type(value), type(value).__name__)
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return text if kind in ("null", "true/false") else f"{text} ({kind})"


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


def check_writable(path: str | Path) -> None:
    """ValueError naming `path` unless `atomic_write` could write it: the nearest existing folder above it must be a
    folder that accepts new files (tried with a temporary file, since permission bits do not tell: root, read-only
    mounts, /proc). For checking outputs before any work."""
    path = Path(path)
    folder = next(f for f in (path.parent, *path.parent.parents) if f.exists())  # '.' or '/' at the latest
    if not folder.is_dir():
        raise ValueError(f"cannot write {path}: {folder} is not a writable folder (it is a file)")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise ValueError(f"cannot write {path}: {folder} is not a writable folder ({e.strerror or e})") from None


def save_json(path: str | Path, data: dict) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=2) + "\n"))


def load_json(path: str | Path) -> dict:
    path = Path(path)
    if path.is_dir():
        raise WeightsError(f"{path} is a folder, not a JSON config file")
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
    """Read a safetensors file, failing with the path on anything unreadable or on any NaN/inf value (a
    corrupt file or a diverged run would otherwise load and produce black images)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"missing weights file: {path}")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"{path} is not a readable safetensors file ({e})") from None
    check_finite(tensors, str(path))
    return tensors


def check_finite(tensors: dict[str, torch.Tensor], what: str) -> None:
    """Raise WeightsError naming the tensors of `what` that hold NaN or inf values."""
    bad = [f"{k} ({int((~torch.isfinite(t)).sum())} of {t.numel()} values)" for k, t in tensors.items()
           if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        raise WeightsError(f"{what} holds NaN or inf values in {len(bad)} tensor(s): {', '.join(bad[:3])}"
                           f"{' ...' if len(bad) > 3 else ''}; the file is corrupt or comes from a diverged run")


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


# --- weights directories ---------------------------------------------------------------------------------
# encoder dir: config.json {"kind": "encoder", "encoder": EncoderConfig, ...} + encoder.safetensors (+ hed.safetensors)
# model dir:   config.json {"kind": "model", "model": name, "config": ..., "encoder": preset} + decoder.safetensors
#              (+ encoder.safetensors when the model carries its own encoder, e.g. converted AdaIN)
# Written here (converters and training exports); read by models/pretrained.py.
CONFIG_FILE = "config.json"
ENCODER_FILE = "encoder.safetensors"
DECODER_FILE = "decoder.safetensors"


def sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_encoder_dir(out_dir: str | Path, state: dict[str, torch.Tensor], config: Any,
                     metadata: dict[str, str] | None = None,
                     extra: dict[str, dict[str, torch.Tensor]] | None = None) -> Path:
    """Write an encoder dir: encoder.safetensors + config.json (+ `extra` files, {name: tensors}).

    Args:
        state: the encoder's tensors.
        config: its EncoderConfig.
        metadata: provenance (source, file, sha256, licence), stored in every file and config.json.
        extra: further safetensors files of the dir, e.g. {'hed.safetensors': HED head tensors}.
    """
    out_dir = Path(out_dir)
    save_tensors(out_dir / ENCODER_FILE, state, metadata)
    for name, tensors in (extra or {}).items():
        save_tensors(out_dir / name, tensors, metadata)
    save_json(out_dir / CONFIG_FILE, {"kind": "encoder", "encoder": to_dict(config), **(metadata or {})})
    return out_dir


def save_model_dir(model: nn.Module, name: str, config: Any, out_dir: str | Path, encoder: str,
                   metadata: dict[str, str] | None = None, dtype: torch.dtype | None = None,
                   with_encoder: bool = False) -> Path:
    """Write config.json + decoder.safetensors (+ encoder.safetensors) for a registered model.

    Args:
        name: the model's registry name; config: its config dataclass.
        encoder: the encoder preset (or dir) it was trained with.
        dtype: cast floating tensors of decoder.safetensors (e.g. torch.float16 for shipping).
        with_encoder: also write the model's own encoder (a model that brings one, e.g. converted AdaIN).
    """
    out_dir = Path(out_dir)
    cast = (lambda t: t.to(dtype) if dtype is not None and t.is_floating_point() else t)
    state = {k: cast(v) for k, v in model.state_dict().items() if not k.startswith("encoder.")}
    save_tensors(out_dir / DECODER_FILE, state, metadata)
    if with_encoder:
        save_tensors(out_dir / ENCODER_FILE,
                     {k[len("encoder."):]: v for k, v in model.state_dict().items() if k.startswith("encoder.")}, metadata)
    save_json(out_dir / CONFIG_FILE, {"kind": "model", "model": name, "encoder": encoder,
                                      "config": to_dict(config), **(metadata or {})})
    return out_dir


# --- a model dir's own codes for the built-in style names -------------------------------------------------
# styles.safetensors: tensors `<name>.mean.<tap>` / `<name>.std.<tap>` (each (c,), float32); metadata `encoder`
# (the id the codes belong to), `names` (comma-separated) and provenance. A model with its own encoder (e.g.
# adain-fast) ships it, because the shared bank (weights/styles/) holds statistics of the vgg16-hed encoder.
STYLES_FILE = "styles.safetensors"


def save_codes(path: str | Path, codes: dict[str, StyleCode], metadata: dict[str, str] | None = None) -> Path:
    """Write named StyleCodes into one safetensors file, atomically (see STYLES_FILE for the layout)."""
    tensors = {f"{name}.{kind}.{tap}": v.detach().float().cpu()
               for name, code in codes.items() for kind, stats in (("mean", code.mean), ("std", code.std))
               for tap, v in stats.items()}
    taps = next(iter(codes.values())).taps if codes else ()
    save_tensors(path, tensors, {**(metadata or {}), "names": ",".join(codes), "taps": ",".join(taps)})
    return Path(path)


def load_codes(path: str | Path) -> dict[str, StyleCode]:
    """Named StyleCodes from a file written by `save_codes`; WeightsError naming the file and the style when a
    code lacks mean or std at a tap, has mismatched shapes or a non-positive std."""
    tensors = load_tensors(path)  # checks finiteness
    with safe_open(str(path), "pt") as f:
        order = [t for t in (f.metadata() or {}).get("taps", "").split(",") if t]
    codes: dict[str, StyleCode] = {}
    for key in tensors:
        name, kind, tap = key.rsplit(".", 2) if key.count(".") >= 2 else (key, "", "")
        if kind not in ("mean", "std"):
            raise WeightsError(f"{path}: unexpected tensor {key!r}; expected <name>.mean.<tap> and <name>.std.<tap>")
        codes.setdefault(name, StyleCode({}, {}))
        (codes[name].mean if kind == "mean" else codes[name].std)[tap] = tensors[key].float()
    for name, code in codes.items():
        if set(code.mean) != set(code.std) or any(code.mean[t].shape != code.std[t].shape or code.mean[t].dim() != 1
                                                  or bool((code.std[t] <= 0).any()) for t in code.mean):
            raise WeightsError(f"{path}: style {name!r} needs a mean and a positive std of one shape (c,) at every tap")
    rank = {t: i for i, t in enumerate(order)}  # the encoder's tap order (blending needs codes with one order)
    key = lambda t: (rank.get(t, len(rank)), t)  # noqa: E731
    return {name: StyleCode({t: c.mean[t] for t in sorted(c.mean, key=key)}, {t: c.std[t] for t in sorted(c.std, key=key)})
            for name, c in codes.items()}
