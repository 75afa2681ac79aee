"""What the page asks for (request bodies: a blend of styles, a sweep) and what a blend is outside the page:
the `stylemix stylize` command that renders it and the metadata a render records. Pure: no model, no files."""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from ...models.functional import validate_weights
from .config import AppConfig
from .sessions import AppError

MAX_STYLES = 4
MAX_SEQ = 2**53 - 1  # the page's preview counter is a JavaScript number: exact up to here


class StyleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ref: str = Field(max_length=200)  # 'builtin:NAME' or 'upload:ID'
    weight: float = Field(ge=0, le=1e6, allow_inf_nan=False)  # raw slider value; normalised like the CLI


class BlendIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    photo: str = Field(max_length=200)  # 'bundled:NAME' or 'upload:ID'
    styles: list[StyleIn] = Field(min_length=1, max_length=MAX_STYLES)
    alpha: float = Field(1.0, ge=0, le=1, allow_inf_nan=False)
    preserve_color: Optional[Literal["luminance", "match", "histogram"]] = None
    seq: int = Field(0, ge=0, le=MAX_SEQ)  # the page's request counter: a preview older than the newest asked is
    # skipped (bounded: one huge number would make every later preview of the tab look stale)
    labels: dict[str, str] = Field(default_factory=dict, max_length=2 * MAX_STYLES + 2)  # ref -> file name, text only


class SweepIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    photo: str = Field(max_length=200)
    a: str = Field(max_length=200)
    b: str = Field(max_length=200)
    steps: int = Field(5, ge=2)
    alpha: float = Field(1.0, ge=0, le=1, allow_inf_nan=False)
    preserve_color: Optional[Literal["luminance", "match", "histogram"]] = None
    labels: dict[str, str] = Field(default_factory=dict, max_length=2 * MAX_STYLES + 2)


# --- a blend outside the page ------------------------------------------------------------------------

def check_weights(blend: BlendIn) -> list[float]:
    weights = [st.weight for st in blend.styles]
    if sum(weights) <= 0:
        raise AppError(400, "all style weights are zero: move at least one style's slider above 0")
    return weights


def label(labels: dict[str, str], ref: str, fallback: str) -> str:
    """What to call a reference in the page and the command: the built-in name, the bundled photo's file, the
    name the page gave an upload (text only: it never reaches the file system), or `fallback`."""
    kind, _, key = ref.partition(":")
    if kind == "builtin":
        return key
    if kind == "bundled":
        return f"{key}.png"
    name = Path(str(labels.get(ref, "")).replace("\\", "/")).name.strip()[:100]
    return name or fallback


def stylize_command(blend: BlendIn, config: AppConfig) -> str:
    """The `stylemix stylize` line that renders `blend` as the page does (bundled photos are saved first)."""
    photo = label(blend.labels, blend.photo, "PHOTO.jpg")
    lines = []
    kind, _, key = blend.photo.partition(":")
    if kind == "bundled":
        lines.append(f'python -c "from skimage import data; from PIL import Image; '
                     f"Image.fromarray(data.{key}()).save('{key}.png')\"")
    cmd = ["stylemix", "stylize", photo]
    for i, st in enumerate(blend.styles):
        cmd += ["-s", f"{label(blend.labels, st.ref, f'STYLE{i + 1}.jpg')}:{st.weight!r}"]  # repr: exact
    if blend.alpha != 1.0:
        cmd += ["--alpha", repr(blend.alpha)]
    if blend.preserve_color:
        cmd += ["--preserve-color", blend.preserve_color]
    cmd += ["--max-size", str(config.max_size)]
    if config.style_size != 512:
        cmd += ["--style-size", str(config.style_size)]
    if config.model_name:
        cmd += ["--model", config.model_name]
    cmd += ["-o", "stylemix-blend.png"]
    lines.append(shlex.join(cmd))
    return " && ".join(lines)


def blend_metadata(blend: BlendIn, config: AppConfig) -> dict:
    """What a render records in its PNG (key 'stylemix:blend') and the page shows."""
    raw = [st.weight for st in blend.styles]
    return {"content": label(blend.labels, blend.photo, "PHOTO.jpg"),
            "styles": [label(blend.labels, st.ref, f"STYLE{i + 1}.jpg") for i, st in enumerate(blend.styles)],
            "weights": raw, "normalized_weights": [round(w, 6) for w in validate_weights(raw, len(raw)).tolist()],
            "alpha": blend.alpha, "preserve_color": blend.preserve_color, "max_size": config.max_size,
            "style_size": config.style_size, "model": config.model_name or "default"}
