"""Folders of images -> deterministic random crops.

Images are found recursively (models/files.list_images); each crop resizes the short side to a random
length, crops a square at a random place and flips half the time. Every batch is a pure function
of (seed, step, rank), so a resumed run sees exactly the batches an uninterrupted run would, with no
sampler state to save, and each DDP rank draws its own stream. Unreadable files are logged once and
skipped, never fatal.
"""
from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from ..models.files import IMAGE_EXTENSIONS, list_images
from ..models.io import check_value

log = logging.getLogger("stylemix.data")


@dataclass
class DataConfig:
    """Where a run's images are and how they are cropped (the `data` section of a training config)."""

    content_dir: str = ""  # required: folder of content photos, searched recursively ("" = not given)
    style_dir: str = ""  # required: folder of style images (paintings), searched recursively
    crop: int = 128  # side of the square crops, px
    content_short_side: tuple[int, int] = (128, 256)  # [min, max] px the content's short side is resized to
    style_short_side: tuple[int, int] = (128, 224)  # the same for the style images
    batch_size: int = 8  # images per step on each rank
    seed: int = 0  # the batches are a function of (seed, step, rank)

    def __post_init__(self):  # value checks; from_dict has checked the types
        check_value("data.crop", self.crop, self.crop >= 1, "a positive number of pixels")
        for name in ("content_short_side", "style_short_side"):
            lo, hi = getattr(self, name)
            check_value(f"data.{name}", [lo, hi], 1 <= lo <= hi, "[min, max] pixels with 1 <= min <= max")
        check_value("data.batch_size", self.batch_size, self.batch_size >= 1, "at least 1")

    def require_folders(self) -> None:
        """ValueError naming data.content_dir and/or data.style_dir when either is not given: the image
        folders have no default (a run states where its data is)."""
        missing = [f"data.{name}" for name in ("content_dir", "style_dir") if not getattr(self, name)]
        if missing:
            raise ValueError(f"config field{'s' * (len(missing) > 1)} {' and '.join(missing)} not given: set the "
                             f"image folder{'s' * (len(missing) > 1)} in the config's \"data\" section or with "
                             f"--set {missing[0]}=DIR")


def image_files(root: str | Path) -> list[Path]:
    """The regular image files under `root` (see `list_images`) as paths, sorted as paths so indices are
    stable; FileNotFoundError when the folder is missing or holds none."""
    if str(root) == "":  # Path("") is the working directory: never read it by accident
        raise ValueError("no image folder given (an empty path): set data.content_dir and data.style_dir")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    files = sorted(p for p in (root / rel for rel in list_images(root)) if p.is_file())
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {root}")
    return files


class ImageFolder:
    """Random crops from a folder: resize the short side to a random length in `short_side`, crop
    `crop` x `crop`, flip horizontally half the time. Returns RGB float tensors in [0, 1]."""

    def __init__(self, root: str | Path, crop: int, short_side: tuple[int, int]):
        self.root, self.files = Path(root), image_files(root)
        self.crop, self.short_side = crop, short_side
        self.bad: set[Path] = set()

    def __len__(self) -> int:
        return len(self.files)

    def read(self, path: Path) -> Image.Image | None:
        """The image as RGB (EXIF orientation applied), or None if it cannot be decoded (logged once)."""
        if path in self.bad:
            return None
        try:
            with Image.open(path) as im:
                return ImageOps.exif_transpose(im).convert("RGB")
        except Exception as e:  # any unreadable file is skipped, never fatal
            self.bad.add(path)
            log.warning("skipping unreadable image %s (%s)", path, e)
            return None

    def pick(self, rng: random.Random) -> int:
        """A random file index whose image is readable."""
        for _ in range(100):
            i = rng.randrange(len(self.files))
            if self.files[i] not in self.bad and self.read(self.files[i]) is not None:
                return i
        raise ValueError(f"no readable image among 100 random tries under {self.root}; check the folder")

    def full(self, index: int, short: int) -> torch.Tensor | None:
        """The whole image `index` resized so its short side is `short` (3, h, w), or None if unreadable."""
        im = self.read(self.files[index])
        if im is None:
            return None
        scale = short / min(im.size)
        im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.BICUBIC,
                       reducing_gap=2.0)
        return to_tensor(im)

    def sample(self, rng: random.Random) -> torch.Tensor:
        """One random crop (3, crop, crop); retries other files if one is unreadable."""
        for _ in range(100):
            im = self.read(self.files[rng.randrange(len(self.files))])
            if im is None:
                continue
            short = rng.randint(*self.short_side)
            scale = max(short, self.crop) / min(im.size)
            size = (max(self.crop, round(im.width * scale)), max(self.crop, round(im.height * scale)))
            im = im.resize(size, Image.BICUBIC, reducing_gap=2.0)
            x, y = rng.randint(0, size[0] - self.crop), rng.randint(0, size[1] - self.crop)
            im = im.crop((x, y, x + self.crop, y + self.crop))
            if rng.random() < 0.5:
                im = im.transpose(Image.FLIP_LEFT_RIGHT)
            return to_tensor(im)
        raise ValueError(f"no readable image among 100 random tries under {self.root}; check the folder")


def to_tensor(im: Image.Image) -> torch.Tensor:
    """RGB PIL image -> float tensor (3, h, w) in [0, 1]."""
    return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).float() / 255.0


class PairBatches:
    """Deterministic (content, style) batches: batch(step) depends only on (seed, step, rank)."""

    def __init__(self, content: ImageFolder, style: ImageFolder, batch_size: int, seed: int = 0, rank: int = 0):
        self.content, self.style = content, style
        self.batch_size, self.seed, self.rank = batch_size, seed, rank

    def rng(self, step: int) -> random.Random:
        """The generator of one step's batch: a pure function of (seed, rank, step)."""
        return random.Random(f"{self.seed}/{self.rank}/{step}")

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Content and style crops, each (batch_size, 3, crop, crop)."""
        rng = self.rng(step)
        c = torch.stack([self.content.sample(rng) for _ in range(self.batch_size)])
        s = torch.stack([self.style.sample(rng) for _ in range(self.batch_size)])
        return c, s
