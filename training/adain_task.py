"""Training task for the AdaIN model: decoder learns to invert AdaIN-mixed features.

Loss = content (instance-normalised relu4_1 of output vs the AdaIN target, i.e. the content's
structure) + style (mean/std or Gram at the style taps, relative to the style's spread)
+ optional identity (decode the content's own features back to the content photo) + optional TV. Style crops
can be replaced by procedural abstract paintings (`data.style_abstract`; training/abstract.py), turned into ink
drawings or changed in colour, contrast and texture first (`data.style_ink`, `data.style_augment`;
training/augment.py).

With `data.style_cache` the style targets are each style file's full-image statistics, encoded once
by the frozen encoder and kept in memory (and in RUN_DIR/style_cache.safetensors), instead of one
style crop per sample per step: a third fewer encoder forward passes per step.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from safetensors import safe_open

from ..models import functional as Fn
from ..models.adain import AdaINModel
from ..models.io import WeightsError, check_value, load_tensors, save_tensors, to_dict

from . import losses
from .augment import change_styles
from .data import ImageFolder, PairBatches

log = logging.getLogger("stylemix.train")
Stats = dict[str, tuple[torch.Tensor, torch.Tensor]]  # {tap: (mean, std)}


@dataclass
class AdaINLossConfig:
    content_weight: float = 1.0
    content_normalised: bool = True  # compare instance-normalised relu4_1 (structure) rather than raw
    style_weight: float = 5.0
    style_kind: str = "mean_std"  # 'mean_std' or 'gram'
    relative: bool = True  # divide each layer's error by the target's spread
    identity_weight: float = 0.0  # pixel L1 of decode(encode(content)) vs content
    tv_weight: float = 0.0
    # Scales the style loss is also taken at (output and style image resized by each factor): strokes
    # whose statistics also match at half size are large enough to survive downscaling, i.e. to read
    # at 512-1024 px output. (1.0,) = the original single-scale loss. Not with data.style_cache.
    style_scales: tuple[float, ...] = (1.0,)

    def __post_init__(self):
        for name in ("content_weight", "style_weight", "identity_weight", "tv_weight"):
            v = getattr(self, name)
            check_value(f"loss.{name}", v, 0 <= v < float("inf"), "a finite number >= 0")
        check_value("loss.style_scales", self.style_scales,
                    len(self.style_scales) > 0 and all(0 < v <= 1 for v in self.style_scales), "factors in (0, 1]")
        check_value("loss.style_kind", self.style_kind, self.style_kind in ("mean_std", "gram"), '"mean_std" or "gram"')


@dataclass
class DataConfig:
    content_dir: str = "../shared/data/train/content"
    style_dir: str = "../shared/data/train/style"
    crop: int = 128
    content_short_side: tuple[int, int] = (128, 256)
    style_short_side: tuple[int, int] = (128, 224)
    batch_size: int = 8
    seed: int = 0
    # Style targets from each style file's full image (short side = middle of style_short_side),
    # encoded once and cached, instead of from the crop (mean_std style loss only).
    style_cache: bool = False
    # Shares of style crops turned into ink drawings / changed in colour, contrast or texture (training/augment.py):
    # the paintings' statistics cover a narrow range, users bring sharp, graphic and abstract styles too.
    style_ink: float = 0.0
    style_augment: float = 0.0
    # Share of style crops replaced by a procedural abstract painting (training/abstract.py; a quarter in the
    # crop's own colours): the paintings hold no abstract, geometric or gestural style.
    style_abstract: float = 0.0

    def __post_init__(self):  # value checks; from_dict has checked the types
        check_value("data.crop", self.crop, self.crop >= 1, "a positive number of pixels")
        for name in ("style_ink", "style_augment", "style_abstract"):
            check_value(f"data.{name}", getattr(self, name), 0 <= getattr(self, name) <= 1, "a number in [0, 1]")
        for name in ("content_short_side", "style_short_side"):
            lo, hi = getattr(self, name)
            check_value(f"data.{name}", [lo, hi], 1 <= lo <= hi, "[min, max] pixels with 1 <= min <= max")
        check_value("data.batch_size", self.batch_size, self.batch_size >= 1, "at least 1")


def rescale(x: torch.Tensor, s: float) -> torch.Tensor:
    """Resize (b, 3, h, w) by factor s (bilinear, antialiased when shrinking), in float32 and back to x's dtype:
    PyTorch has no antialiased kernel for bf16 (what the decoder gives under bf16 autocast)."""
    y = F.interpolate(x.float(), scale_factor=s, mode="bilinear", align_corners=False, antialias=s < 1)
    return y.to(x.dtype)


class StyleStatsCache:
    """Per-tap channel statistics of whole style images, computed once per file with the frozen encoder.

    Args:
        folder: the style images.
        encode: the frozen encoder, RGB (1, 3, h, w) -> {tap: features}.
        taps: taps whose statistics are kept.
        short: short side the whole image is resized to before encoding.
        device: where the encoder runs.
        channels_last: feed the encoder channels_last inputs.
        path: safetensors file to load from (if present and made the same way) and to save to.
        tag: what the statistics depend on besides the image (encoder, size, taps); a file with another tag is ignored.
    """

    def __init__(self, folder: ImageFolder, encode: Callable[[torch.Tensor], dict[str, torch.Tensor]],
                 taps: tuple[str, ...], short: int, device: torch.device, channels_last: bool = False,
                 path: str | Path | None = None, tag: str = ""):
        self.folder, self.encode, self.taps, self.short = folder, encode, tuple(taps), short
        self.device, self.cl, self.tag = device, channels_last, tag
        self.path = Path(path) if path else None
        self.stats: dict[int, Stats | None] = {}  # None = unreadable file
        self.dirty = False
        if self.path is not None and self.path.is_file():
            self._load()

    def _key(self, index: int) -> str:
        return self.folder.files[index].relative_to(self.folder.root).as_posix()

    def get(self, index: int) -> Stats | None:
        """Statistics of style file `index` (CPU float32, each (c,)), or None if it is unreadable."""
        if index not in self.stats:
            image = self.folder.full(index, self.short)
            self.stats[index] = None if image is None else self._compute(image)
            self.dirty |= image is not None
        return self.stats[index]

    def usable(self, index: int) -> bool:
        return self.get(index) is not None

    def batch(self, indices: list[int]) -> Stats:
        """{tap: ((b, c) means, (b, c) stds)} on the task's device for style files `indices`."""
        rows = [self.get(i) for i in indices]
        return {t: (torch.stack([r[t][0] for r in rows]).to(self.device),
                    torch.stack([r[t][1] for r in rows]).to(self.device)) for t in self.taps}

    def _compute(self, image: torch.Tensor) -> Stats:
        x = image[None].to(self.device)  # (1, 3, h, w)
        if self.cl:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.no_grad(), torch.autocast(self.device.type, enabled=False):
            feats = self.encode(x)
        return {t: tuple(v[0].float().cpu() for v in Fn.mean_std(feats[t])) for t in self.taps}

    def save(self) -> None:
        """Write every computed statistic to `path` (atomically), if any are new."""
        if self.path is None or not self.dirty:
            return
        tensors = {}
        for i, st in self.stats.items():
            if st is not None:
                for t, (m, sd) in st.items():
                    tensors[f"{self._key(i)}|{t}|mean"], tensors[f"{self._key(i)}|{t}|std"] = m, sd
        save_tensors(self.path, tensors, {"tag": self.tag})
        self.dirty = False

    def _load(self) -> None:
        try:
            with safe_open(str(self.path), "pt") as f:
                tag = (f.metadata() or {}).get("tag")
            tensors = load_tensors(self.path)
        except (WeightsError, OSError, ValueError) as e:
            log.warning("ignoring style cache %s (%s)", self.path, e)
            return
        if tag != self.tag:
            log.warning("ignoring style cache %s: made with another encoder, size or taps", self.path)
            return
        for i in range(len(self.folder)):
            key = self._key(i)
            if all(f"{key}|{t}|mean" in tensors for t in self.taps):
                self.stats[i] = {t: (tensors[f"{key}|{t}|mean"], tensors[f"{key}|{t}|std"]) for t in self.taps}
        log.info("style cache: %d of %d style images loaded from %s", len(self.stats), len(self.folder), self.path)


def encoder_fingerprint(encoder: torch.nn.Module) -> str:
    """A short hash of an encoder's weights (so cached statistics never outlive the weights they came from)."""
    h = hashlib.sha256()
    for k, v in sorted(encoder.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class AdaINTask:
    """Owns the model, its data and its loss. `loss(step)` reads the step's deterministic batch.

    Args:
        model: the AdaIN model (frozen encoder, trainable decoder).
        data, loss: data and loss configs.
        rank: DDP rank (each rank draws its own batches).
        device: where the batches go.
        channels_last: feed channels_last inputs.
        cache_path: file for the style statistics cache (with data.style_cache), e.g. RUN_DIR/style_cache.safetensors.
    """

    def __init__(self, model: AdaINModel, data: DataConfig, loss: AdaINLossConfig, rank: int = 0,
                 device: str | torch.device = "cpu", channels_last: bool = True, cache_path: str | Path | None = None):
        self.model, self.cfg, self.data, self.device, self.cl = model, loss, data, torch.device(device), channels_last
        self.batches = PairBatches(ImageFolder(data.content_dir, data.crop, data.content_short_side),
                                   ImageFolder(data.style_dir, data.crop, data.style_short_side),
                                   data.batch_size, data.seed, rank)
        model.encoder.eval()
        self.style_stats: StyleStatsCache | None = None
        if data.style_cache:
            if loss.style_kind != "mean_std":
                raise ValueError(f"data.style_cache keeps mean/std statistics; it needs loss.style_kind "
                                 f"'mean_std', not {loss.style_kind!r}")
            if tuple(loss.style_scales) != (1.0,):
                raise ValueError("data.style_cache keeps full-size statistics only; it needs loss.style_scales [1.0]")
            if data.style_ink or data.style_augment or data.style_abstract:
                raise ValueError("data.style_cache keeps the statistics of the unchanged style files; it needs "
                                 "data.style_ink, data.style_augment and data.style_abstract 0")
            taps = tuple(dict.fromkeys((*model.config.style_taps, *model.mix_taps)))
            short = (data.style_short_side[0] + data.style_short_side[1]) // 2
            tag = json.dumps({"encoder": to_dict(model.config.encoder), "weights": encoder_fingerprint(model.encoder),
                              "short": short, "taps": list(taps)}, sort_keys=True)
            self.style_stats = StyleStatsCache(self.batches.style, model.encode, taps, short, self.device,
                                               channels_last, cache_path, tag)

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device)
        return x.contiguous(memory_format=torch.channels_last) if self.cl else x

    def _inputs(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        c, s = self.batches.batch(step)
        if self.data.style_ink or self.data.style_augment or self.data.style_abstract:
            b = self.batches
            s = torch.stack(change_styles(list(s), self.data.style_ink, self.data.style_augment,
                                          f"{b.seed}/{b.rank}/{step}/style", abstract=self.data.style_abstract))
        return self._to_device(c), self._to_device(s)

    def loss(self, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """The step's loss and its parts (floats; 'batch' = images in the batch)."""
        m, cfg = self.model, self.cfg
        taps = m.config.style_taps
        grams = None
        with torch.no_grad():
            if self.style_stats is None:
                content, style = self._inputs(step)
                fc, fs = m.encode(content), m.encode(style)
                stats = {t: Fn.mean_std(fs[t]) for t in taps}
                grams = {t: Fn.gram(fs[t]) for t in taps} if cfg.style_kind == "gram" else None
                scaled = {s: m.encode(rescale(style, s)) for s in cfg.style_scales if s != 1.0}
            else:
                c, ids = self.batches.content_and_style_ids(step, self.style_stats.usable)
                content = self._to_device(c)
                fc, stats = m.encode(content), self.style_stats.batch(ids)
        # each sample's style statistics through the style hint (if any; with gradient), as mixing will use them
        own = ({t: ms[0] for t, ms in stats.items()}, {t: ms[1] for t, ms in stats.items()})
        means, stds = m.hinted(*own)
        # and the decoder's modulation (if any) from each sample's own statistics
        targets = m.modulate({t: Fn.adain(fc[t], means[t], stds[t]) for t in m.mix_taps}, *own, None)
        out = m.decode(targets)
        fo = m.encode(out)
        top = m.config.decoder.from_tap
        l_c = losses.content_loss(fo[top], targets[top], normalised=cfg.content_normalised)
        l_s = losses.style_loss(fo, grams if grams is not None else {t: stats[t] for t in taps}, cfg.style_kind,
                                cfg.relative)
        for s in cfg.style_scales:
            if s != 1.0:  # the same loss between the resized output and the resized style
                fo_s, fs_s = m.encode(rescale(out, s)), scaled[s]
                target = {t: Fn.gram(fs_s[t]) if cfg.style_kind == "gram" else Fn.mean_std(fs_s[t]) for t in taps}
                l_s = l_s + losses.style_loss(fo_s, target, cfg.style_kind, cfg.relative)
        l_s = l_s / len(cfg.style_scales)
        total = cfg.content_weight * l_c + cfg.style_weight * l_s
        logs = {"content": float(l_c.detach()), "style": float(l_s.detach()), "batch": content.shape[0]}
        if cfg.identity_weight:
            rec = m.decode({t: fc[t] for t in m.mix_taps})
            l_i = (rec.float() - content.float()).abs().mean()
            total = total + cfg.identity_weight * l_i
            logs["identity"] = float(l_i.detach())
        if cfg.tv_weight:
            total = total + cfg.tv_weight * losses.tv_loss(out.float())
        return total, logs

    def on_save(self, step: int) -> None:
        """Called by the trainer after each checkpoint (rank 0): persist new style statistics."""
        if self.style_stats is not None:
            self.style_stats.save()

    def samples(self, step: int) -> torch.Tensor:
        """Rows: content, style, output for four pairs of this step's batch."""
        content, style = self._inputs(step)
        content, style = content[:4], style[:4]
        m = self.model
        fc, codes = m.encode(content), m.style_code(style)
        outs = [m.decode(m.mix({t: v[i:i + 1] for t, v in fc.items()}, [codes[i]], torch.ones(1))) for i in range(len(codes))]
        return torch.cat([content, style, torch.cat(outs).float().clamp(0, 1)])
