"""What a `styles` argument may hold: images (paths, PIL images, arrays, tensors), codes, saved codes
(.safetensors) and built-in style names; how a path is told from a name, and the style images that
multi-modal transfer needs instead of codes."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence, Union

import torch

from ..models.contract import StyleCodeLike
from ..models.files import IMAGE_EXTENSIONS

from .images import ImageLike, load_image

StyleLike = Union[ImageLike, StyleCodeLike]


def check_style_path(style: str | os.PathLike) -> Path:
    """The path a style given as a string names. FileNotFoundError when it looks like an image file (an image
    suffix, or a folder in it) and does not exist; a bare word that is no file may be a built-in style name."""
    path = Path(style).expanduser()
    if not path.exists() and (path.suffix.lower() in IMAGE_EXTENSIONS or "/" in str(style) or os.sep in str(style)):
        raise FileNotFoundError(f"style image not found: {style}")
    return path


def style_images(styles: StyleLike | Sequence[StyleLike], max_size: int | None) -> list[torch.Tensor]:
    """Style images (1, 3, h, w) for multi-modal transfer, which clusters a style's pixels: saved codes and
    built-in styles hold statistics only, so they are refused with a clear message."""
    items = list(styles) if isinstance(styles, (list, tuple)) else [styles]
    if not items:
        raise ValueError("at least one style is needed")
    images = []
    for i, s in enumerate(items):
        if isinstance(s, (str, os.PathLike)):
            path = check_style_path(s)
            if path.suffix.lower() == ".safetensors" or not path.exists():
                raise ValueError(f"modes > 1 splits style images into modes, but {s!r} is a saved or built-in style "
                                 f"(statistics only); pass the style image instead")
            s = path
        elif isinstance(s, StyleCodeLike):
            raise ValueError(f"modes > 1 splits style images into modes, but style {i + 1} is a "
                             f"{type(s).__name__} (an encoded style); pass the style image instead")
        images.append(load_image(s, max_size))
    return images
