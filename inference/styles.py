"""Style codes on disk and the style bank.

A style code file is a safetensors file with tensors `mean.{tap}` and `std.{tap}` (each (c,), float32)
and string metadata: `name`, `source` (what it was computed from), `encoder` (the encoder id whose
statistics these are, e.g. 'vgg16-hed') and `taps` (comma-separated, encoder order).

Two banks, one file per style (`<name>.safetensors`):
  built-in  weights/styles/ in the repository, with index.json (name, movement, source, sha256);
            computed by benchmarks/build_style_bank.py from public-domain paintings.
  user      <cache_dir()>/styles/, written by `stylemix styles add NAME IMAGE...`.
A user style may not reuse a built-in name, so a name always means one thing.
"""
from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Sequence

import torch

from ..models.adain import AdaINConfig, AdaINModel
from ..models.device import resolve_device
from ..models.io import WeightsError, load_json, save_tensors, sha256
from ..models.mixing import StyleCode
from ..models.pretrained import cache_dir, create_with_encoder, shipped_weights

INDEX_FILE = "index.json"
SUFFIX = ".safetensors"
NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")  # used with fullmatch: no trailing newline


def builtin_dir() -> Path:
    """The built-in bank: styles/ in the shipped weights."""
    return shipped_weights() / "styles"


def user_dir() -> Path:
    """The user's bank: <cache_dir()>/styles (follows $STYLEMIX_CACHE)."""
    return cache_dir() / "styles"


def check_name(name: str) -> str:
    """Return `name` if it is a valid style name (lowercase letters, digits, '-', '_'; at most 64
    characters; no ':' '.' or '/', so it can never be mistaken for a weight or a file), else ValueError."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise ValueError(f"invalid style name {name!r}: use lowercase letters, digits, '-' and '_' "
                         f"(start with a letter or digit, at most 64 characters), e.g. 'my-watercolour'")
    return name


# --- one code <-> one file ----------------------------------------------------------------------------

def save_style(code: StyleCode, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write a style code as safetensors, atomically.

    Args:
        code: per-tap mean/std (each (c,)).
        path: destination file (.safetensors).
        metadata: strings to record, e.g. {'name': ..., 'source': ..., 'encoder': 'vgg16-hed'}.

    Returns:
        The path written.
    """
    _check_code(code, str(path))
    tensors = {f"mean.{t}": code.mean[t].detach().float().cpu() for t in code.taps}
    tensors.update({f"std.{t}": code.std[t].detach().float().cpu() for t in code.taps})
    meta = {k: str(v) for k, v in (metadata or {}).items()}
    meta["taps"] = ",".join(code.taps)
    save_tensors(path, tensors, meta)
    return Path(path)


def read_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata of a style code file (name, source, encoder, taps, ...)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such style code file: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as e:  # safetensors raises several types for a bad header
        raise WeightsError(f"{path} is not a readable safetensors style code ({e})") from None


def load_style(path: str | Path) -> StyleCode:
    """Read a style code written by `save_style`; every tap must have a finite mean and a positive std
    of the same length. Raises WeightsError naming the file otherwise."""
    from ..models.io import load_tensors

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such style code file: {path}")
    tensors = load_tensors(path)
    meta = read_metadata(path)
    taps = [t for t in meta.get("taps", "").split(",") if t] or sorted(k[5:] for k in tensors if k.startswith("mean."))
    expected = {f"{kind}.{t}" for t in taps for kind in ("mean", "std")}
    if not taps or set(tensors) != expected:
        raise WeightsError(f"{path} is not a style code: expected tensors mean.<tap>/std.<tap> for taps {taps}, "
                           f"got {sorted(tensors)[:6]}")
    code = StyleCode({t: tensors[f"mean.{t}"].float() for t in taps}, {t: tensors[f"std.{t}"].float() for t in taps})
    _check_code(code, str(path))
    return code


def _check_code(code: StyleCode, what: str) -> None:
    if not code.taps or set(code.mean) != set(code.std):
        raise WeightsError(f"{what}: a style code needs the same non-empty taps for mean and std")
    for t in code.taps:
        m, s = code.mean[t], code.std[t]
        if m.dim() != 1 or m.shape != s.shape:
            raise WeightsError(f"{what}: tap {t} has mean {tuple(m.shape)} and std {tuple(s.shape)}; both must be (c,)")
        if not (torch.isfinite(m).all() and torch.isfinite(s).all()) or (s <= 0).any():
            raise WeightsError(f"{what}: tap {t} has non-finite statistics or a non-positive std")


# --- the banks ----------------------------------------------------------------------------------------

def _bank(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {p.name[: -len(SUFFIX)]: p for p in sorted(folder.glob(f"*{SUFFIX}")) if NAME_RE.fullmatch(p.name[: -len(SUFFIX)])}


def builtin_styles() -> dict[str, Path]:
    """{name: file} of the built-in bank."""
    return _bank(builtin_dir())


def user_styles() -> dict[str, Path]:
    """{name: file} of the user's bank."""
    return _bank(user_dir())


def list_styles() -> list[str]:
    """Names of every style usable by name: built-in then user, each sorted."""
    builtin = builtin_styles()
    return sorted(builtin) + sorted(n for n in user_styles() if n not in builtin)


def style_path(name: str) -> Path:
    """The file of a named style (built-in first); ValueError with the closest names if unknown."""
    for bank in (builtin_styles(), user_styles()):
        if name in bank:
            return bank[name]
    names = list_styles()
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else \
        (f"{len(names)} styles are available; list them with 'stylemix styles'" if names else
         "no named styles are installed; add one with 'stylemix styles add NAME IMAGE...'")
    raise ValueError(f"unknown style {name!r}; {hint}")


def resolve_style(name: str, encoder: str | None = None) -> StyleCode:
    """The StyleCode of a named style (built-in or user).

    Args:
        name: e.g. 'impressionism-07'.
        encoder: if given, the encoder id the caller's model uses; a code computed with another encoder
            is refused (its statistics would mean nothing to that model).

    Raises:
        ValueError listing the closest names for an unknown name, or naming the encoder mismatch.
    """
    path = style_path(name)
    if encoder is not None:
        got = read_metadata(path).get("encoder")
        if got and got != encoder:
            raise ValueError(f"style {name!r} was computed with encoder {got!r}, but this model uses {encoder!r}; "
                             f"use an image of the style instead")
    return load_style(path)


def style_info(name: str) -> dict[str, str]:
    """Metadata of a named style plus 'bank' ('built-in' or 'user') and 'path'."""
    path = style_path(name)
    bank = "built-in" if path.parent == builtin_dir() else "user"
    return {**read_metadata(path), "bank": bank, "path": str(path)}


def builtin_index() -> list[dict]:
    """Entries of weights/styles/index.json (name, movement, source, sha256); [] if absent."""
    path = builtin_dir() / INDEX_FILE
    return load_json(path).get("styles", []) if path.is_file() else []


def add_style(name: str, codes: Sequence[StyleCode], metadata: dict[str, str] | None = None,
              weights: Sequence[float] | None = None, overwrite: bool = False) -> Path:
    """Save the (weighted) average of one or more codes to the user bank as `name`.

    Args:
        name: a new style name (see `check_name`); may not be a built-in name.
        codes: codes of the style's images, all with the same taps.
        metadata: recorded in the file (e.g. source file names, encoder id).
        weights: optional per-code weights for the average.
        overwrite: replace an existing user style of that name.

    Returns:
        The file written.
    """
    check_name(name)
    if not codes:
        raise ValueError("add_style needs at least one style code (one image)")
    if name in builtin_styles():
        raise ValueError(f"{name!r} is a built-in style; choose another name")
    path = user_dir() / f"{name}{SUFFIX}"
    if path.exists() and not overwrite:
        raise ValueError(f"user style {name!r} already exists ({path}); remove it first or pass overwrite")
    code = codes[0] if len(codes) == 1 and weights is None else StyleCode.average(list(codes), weights)
    return save_style(code, path, {**(metadata or {}), "name": name, "images": str(len(codes))})


def remove_style(name: str) -> Path:
    """Delete a user style; built-in styles cannot be removed. Returns the deleted file's path."""
    check_name(name)
    if name in builtin_styles() and name not in user_styles():
        raise ValueError(f"{name!r} is a built-in style and cannot be removed")
    path = user_styles().get(name)
    if path is None:
        style_path(name)  # raises with the closest names
    path.unlink()
    return path


def encoder_model(encoder: str = "vgg16-hed", device: str | torch.device = "cpu"):
    """An AdaINModel holding only real encoder weights, for computing style codes without a trained
    decoder (a code depends on the encoder alone; the decoder is left untrained and unused).

    Args:
        encoder: encoder preset name or encoder directory (see models.pretrained.resolve_encoder).

    Returns:
        (model in eval mode, encoder id recorded in code metadata).
    """
    device = resolve_device(device)
    model: AdaINModel = create_with_encoder("adain", AdaINConfig(), encoder)
    return model.to(device).eval(), model.encoder_name or encoder


def index_entry(name: str, path: Path, movement: str, source: str) -> dict[str, str]:
    """One record of weights/styles/index.json."""
    return {"name": name, "movement": movement, "source": source, "file": path.name, "sha256": sha256(path)}
