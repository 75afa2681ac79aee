"""What the blending page's server may do: its limits and sizes (`AppConfig`), one field each."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional


@dataclass
class AppConfig:
    """What the server may do; every limit is a field (the CLI exposes the common ones)."""

    upload_dir: Optional[Path] = None  # where the server's folder for uploads and renders is made (None: the
    # system's temporary folder); that folder, and only it, is removed on exit
    max_upload_bytes: int = 20 * 2**20  # larger uploads are refused with a message
    max_pixels: int = 40_000_000  # decoded size limit of an upload (decompression bombs)
    max_sessions: int = 8  # tabs kept in memory (each holds a content encoding: ~50 MB at 256 px with the
    # default model); the least recently used beyond this are dropped
    max_uploads: int = 8  # per tab; the oldest upload is forgotten beyond this
    preview_size: int = 256  # long side of previews, px
    max_size: int = 1024  # long side of full renders, px (as `stylemix stylize --max-size`)
    style_size: int = 512  # long side uploaded style images are encoded at (as --style-size)
    sweep_size: int = 256  # long side of each sweep cell, px
    max_sweep_steps: int = 9
    model_name: Optional[str] = None  # the full model's --model for the shown command (None: the default)

    def __post_init__(self):
        for name in ("max_upload_bytes", "max_pixels", "max_sessions", "max_uploads", "max_sweep_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("preview_size", "max_size", "style_size", "sweep_size"):
            if getattr(self, name) < 16:
                raise ValueError(f"{name} must be at least 16 px, got {getattr(self, name)}")
