"""Distilling the fast model (models/fast.py) from a teacher (`teacher.model`; empty: the default model), run by
the shared loop (training/trainer.py).

Two phases in one command, both resumable:
  1. the teacher paints RUN_DIR/teacher/ once (training/distill.py): content crops, 1-2 styles, random weights
     and alpha, its outputs;
  2. the student (encoder and decoder, from scratch or from `init`) learns to reproduce those outputs:
       pixel    L1 of output vs the teacher's output
       feature  relative MSE of frozen-VGG features (relu1_1, relu2_1: shallow taps) of output vs teacher
       stats    mean/std of those features (the teacher output's texture statistics), relative
       style    (optional, off by default) mean/std of those features against the styles' own, blended by the
                sample's weights, on samples painted at alpha 1: a pull past the teacher towards the styles
     Both VGG losses may look at one random `feature_crop` px window per sample (the same in output and teacher):
     the VGG pass is most of a step's cost (~70 % at 256 px), and a 128 px window cuts it 4x.
     The student mixes exactly as at inference (mixing.StatisticsMixing on its own encoder's statistics), on
     the same framed canvas the teacher painted on, so K-style blends, masks and alpha behave as in the default.
     With a style hint (model.style_hint, models/hint.py) each style's code is corrected from the frozen
     VGG's statistics of the style crop, computed once per cache sample and kept in one buffer.

    python -m stylemix.training --model adain-fast --config training/configs/adain-fast.json --out runs/fast
    python -m stylemix.training --out runs/fast --export weights/adain-fast   # + the built-in styles' codes
    # redo it when the default improves: a new --out, the new teacher, the last student as the start
    python -m stylemix.training --model adain-fast --config training/configs/adain-fast.json --out runs/fast2 \\
        --set teacher.model=adain-vgg16-v3 --set init=adain-fast

    # a student grown from the last one: more residual blocks, or a style hint (the config's), which start as
    # the identity; widths stay
    python -m stylemix.training --model adain-fast --config training/configs/adain-fast.json --out runs/fast3 \\
        --set init=adain-fast --set model.blocks=2 --set 'model.level_blocks=[0,0,1]'

`--set loop.steps=0` paints the teacher cache only (e.g. to time it, or to paint it on another machine).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..models import functional as Fn
from ..models import pretrained
from ..models.canvas import pad_border, unpad_border
from ..models.fast import HINT_CHANNELS, FastConfig, FastModel, deepen, with_hint_stats
from ..models.io import (CONFIG_FILE, DECODER_FILE, ENCODER_FILE, STYLES_FILE, WeightsError, check_value, from_dict,
                         load_into, load_json, save_codes, save_model_dir, to_dict)
from ..models.mixing import StatisticsMixing, StyleCode
from ..models.vgg import tap_stride

from . import losses
from .checkpoint import load_tensors, read_metadata
from .data import DataConfig, ImageFolder
from .distill import Sample, TeacherCache, TeacherConfig
from .recipe import Recipe
from .recipe import build_config as recipe_config
from .runlog import resolve_init, run_totals
from .trainer import LoopConfig

log = logging.getLogger("stylemix.train")
MODEL = "adain-fast"  # the registry name this recipe trains


@dataclass
class FastLossConfig:
    pixel_weight: float = 1.0  # L1 of output vs the teacher's output, pixels in [0, 1]
    feature_weight: float = 0.1  # relative MSE of frozen-VGG features at feature_taps (0 with stats 0: no VGG pass)
    stats_weight: float = 0.1  # relative mean/std loss of those features against the teacher output's
    style_weight: float = 0.0  # the same loss against the sample's styles' statistics (alpha-1 samples only)
    feature_taps: tuple[str, ...] = ("relu1_1", "relu2_1")
    feature_crop: int = 0  # px of the random window per sample the VGG losses see; 0 = the whole crop
    # mean/std of the features at feature_taps in every block of local_window image px, against the teacher
    # output's same block (losses.local_stats_loss): its texture where it is
    local_stats_weight: float = 0.0
    local_window: int = 32

    def __post_init__(self):
        check_value("loss.local_window", self.local_window, self.local_window >= 1, "a positive number of pixels")
        for name in ("pixel_weight", "feature_weight", "stats_weight", "style_weight", "local_stats_weight"):
            v = getattr(self, name)
            check_value(f"loss.{name}", v, 0 <= v < float("inf"), "a finite number >= 0")
        check_value("loss.feature_crop", self.feature_crop, self.feature_crop >= 0, "an integer >= 0 (0 = off)")


def _data_defaults() -> DataConfig:
    return DataConfig(crop=256, content_short_side=(256, 384), style_short_side=(256, 320), batch_size=8)


def _loop_defaults() -> LoopConfig:
    return LoopConfig(steps=20000, lr=5e-4, lr_decay=1e-4, precision="fp32", channels_last=False,
                      checkpoint_every=50, sample_every=0, log_every=10, tensorboard=False)


@dataclass
class FastTrainConfig:
    """Everything a distillation run needs; saved in every checkpoint so resumes can be checked."""

    model: FastConfig = field(default_factory=FastConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    encoder: str = "vgg16-hed"  # frozen VGG of the feature losses (preset or encoder dir); never part of the student
    data: DataConfig = field(default_factory=_data_defaults)
    loss: FastLossConfig = field(default_factory=FastLossConfig)
    loop: LoopConfig = field(default_factory=_loop_defaults)
    init: str = ""  # a fast model's weights dir to start from (e.g. the previous distillation; it may have fewer
    # residual blocks than `model`: the new ones start as the identity, models/fast.deepen); "" = random
    # required: the folder the built-in styles' source paintings are under (weights/styles/index.json names them,
    # e.g. train/style/...); the export encodes them into the model's own codes for the built-in names
    bank_data: str = ""


class FastTask:
    """Owns the student, the teacher cache and the loss. `loss(step)` reads the step's deterministic batch.

    Args:
        model: the student: the fast model, or any model that mixes statistics (mixing.StatisticsMixing).
        cache: the painted teacher cache.
        data, loss: data (crop, batch_size, seed) and loss configs.
        vgg: frozen VGG encoder returning loss.feature_taps (None when the feature, stats and style weights are 0).
        rank: DDP rank (each rank draws its own batches).
        device: where the batches go.
    """

    def __init__(self, model: StatisticsMixing, cache: TeacherCache, data: DataConfig, loss: FastLossConfig, vgg=None,
                 rank: int = 0, device: str | torch.device = "cpu"):
        self.model, self.cache, self.data, self.cfg, self.vgg = model, cache, data, loss, vgg
        self.rank, self.device = rank, torch.device(device)
        self._style_stats: dict[int, dict[str, tuple[torch.Tensor, torch.Tensor]]] = {}  # sample -> blended stats
        # the styles' hint statistics of every sample seen, in one buffer: one small tensor kept per sample between a
        # step's large temporaries fragments the heap so that glibc never returns it (+45 MB per step, measured)
        self._hint_rows: torch.Tensor | None = None  # (samples, max_styles, n): means, then stds, tap by tap
        self._hint_seen: set[int] = set()
        if vgg is not None:
            vgg.to(self.device).eval()

    def indices(self, step: int) -> list[int]:
        """Cache indices of the step's samples: a pure function of (seed, rank, step)."""
        rng = random.Random(f"{self.data.seed}/{self.rank}/{step}/student")
        return [rng.randrange(self.cache.cfg.samples) for _ in range(self.data.batch_size)]

    def batch(self, step: int) -> list[Sample]:
        """The step's samples (see `indices`)."""
        return [self.cache.read(i) for i in self.indices(step)]

    def style_stats(self, index: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """{tap: (mean, std) (c,)} of cache sample `index`'s styles' VGG features (whole style crops), blended by
        its weights as the mixing blends codes; computed once per sample (the crops are fixed) and kept (~8 KB)."""
        if index not in self._style_stats:
            sample = self.cache.read(index)
            with torch.no_grad():
                feats = self.vgg(sample.styles.to(self.device))
                self._style_stats[index] = {t: Fn.blend_stats(*(x.float() for x in Fn.mean_std(feats[t])),
                                                              sample.weights) for t in self.cfg.feature_taps}
        return self._style_stats[index]

    def hint_stats(self, batch: list[Sample]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """{VGG tap: (mean, std) (k, c)} of the batch's k style crops in order, the student's style hint input
        (models/hint.py); computed once per cache sample (the crops are fixed) and kept (~15 KB each)."""
        taps = self.model.hint.taps
        widths = [HINT_CHANNELS[t] for t in taps] * 2  # a row: the means, then the stds, tap by tap
        if self._hint_rows is None:
            self._hint_rows = torch.zeros(self.cache.cfg.samples, self.cache.cfg.max_styles, sum(widths),
                                          device=self.device)
        for s in batch:
            if s.index is None:
                raise ValueError("a sample without its cache index (TeacherCache.read sets it) has no kept statistics")
            if s.index not in self._hint_seen:
                stats = self.model.hint_stats(s.styles.to(self.device))
                self._hint_rows[s.index, :len(s.styles)] = torch.cat([stats[t][j] for j in (0, 1) for t in taps], 1)
                self._hint_seen.add(s.index)
        parts = torch.cat([self._hint_rows[s.index, :len(s.styles)] for s in batch]).split(widths, dim=1)
        return {t: (parts[i], parts[len(taps) + i]) for i, t in enumerate(taps)}

    def student(self, batch: list[Sample]) -> torch.Tensor:
        """The student's stylisation (b, 3, S, S) of each sample, not clamped: encode the framed canvas and every
        style, mix each sample's own codes, weights and alpha (as at inference), decode the batch at once."""
        m, pad = self.model, self.cache.cfg.frame
        feats = m.encode(pad_border(torch.stack([s.content for s in batch]).to(self.device), pad))
        styles = torch.cat([s.styles for s in batch]).to(self.device)
        if m.hint is None:
            codes = m.style_code(styles)
        else:  # the VGG statistics of each sample's styles are fixed: computed once, not per step
            codes = with_hint_stats(StatisticsMixing.style_code(m, styles), self.hint_stats(batch))
        targets, at = [], 0
        for i, s in enumerate(batch):
            k = len(s.weights)
            targets.append(m.mix({t: v[i:i + 1] for t, v in feats.items()}, codes[at:at + k], s.weights.to(self.device),
                                 s.alpha))
            at += k
        return unpad_border(m.decode({t: torch.cat([x[t] for x in targets]) for t in m.mix_taps}), pad)

    def loss(self, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """The step's loss and its parts (floats; 'batch' = images in the batch)."""
        indices, cfg = self.indices(step), self.cfg
        batch = [self.cache.read(i) for i in indices]
        out = self.student(batch).float()
        target = torch.stack([s.output for s in batch]).to(self.device)
        l_pix = (out - target).abs().mean()
        total, logs = cfg.pixel_weight * l_pix, {"pixel": float(l_pix.detach()), "batch": len(batch)}
        if self.vgg is not None:
            out_w, target_w = self.windows(step, out, target)
            fo = self.vgg(out_w)
            with torch.no_grad():
                ft = self.vgg(target_w)
            l_feat = sum(losses.content_loss(fo[t], ft[t], relative=True) for t in cfg.feature_taps)
            l_stat = losses.style_loss(fo, {t: Fn.mean_std(ft[t]) for t in cfg.feature_taps}, "mean_std", relative=True)
            total = total + cfg.feature_weight * l_feat + cfg.stats_weight * l_stat
            logs.update(feature=float(l_feat.detach()), stats=float(l_stat.detach()))
            if cfg.local_stats_weight > 0:
                l_local = sum(losses.local_stats_loss(fo[t], ft[t], max(1, cfg.local_window // tap_stride(t)))
                              for t in cfg.feature_taps)
                total = total + cfg.local_stats_weight * l_local
                logs.update(local=float(l_local.detach()))
            if cfg.style_weight > 0:  # output windows vs whole style crops: a small bias, the same for every model
                full = [i for i, sample in enumerate(batch) if sample.alpha == 1.0]
                l_style = torch.zeros(())
                if full:
                    stats = [self.style_stats(indices[i]) for i in full]
                    style_target = {t: tuple(torch.stack([st[t][j] for st in stats]) for j in (0, 1))
                                    for t in cfg.feature_taps}
                    l_style = losses.style_loss({t: fo[t][full] for t in cfg.feature_taps}, style_target, "mean_std",
                                                relative=True)
                    total = total + cfg.style_weight * l_style
                logs.update(style=float(l_style.detach()))  # every step (0 without alpha-1 samples): DDP ranks agree
        return total, logs

    def windows(self, step: int, *images: torch.Tensor) -> list[torch.Tensor]:
        """The same random `feature_crop` px window of each sample in every one of `images` (b, c, h, w) (a pure
        function of seed, rank and step); the images themselves when feature_crop is 0 or not smaller."""
        size, (h, w) = self.cfg.feature_crop, images[0].shape[-2:]
        if not size or size >= min(h, w):
            return list(images)
        rng = random.Random(f"{self.data.seed}/{self.rank}/{step}/window")
        at = [(rng.randrange(h - size + 1), rng.randrange(w - size + 1)) for _ in range(images[0].shape[0])]
        return [torch.stack([x[i, :, y:y + size, z:z + size] for i, (y, z) in enumerate(at)]) for x in images]

    def samples(self, step: int) -> torch.Tensor:
        """Rows: content, the teacher's output, the student's, for up to four samples of this step's batch."""
        batch = self.batch(step)[:4]
        was = self.model.training
        self.model.eval()
        try:
            out = self.student(batch).float().clamp(0, 1).cpu()
        finally:
            self.model.train(was)
        return torch.cat([torch.stack([s.content for s in batch]), torch.stack([s.output for s in batch]), out])


def build_config(config_file: str | None, overrides: list[str]) -> FastTrainConfig:
    """Defaults, then a JSON file's fields, then KEY=VALUE overrides (training/recipe.py)."""
    return recipe_config(config_file, overrides, FastTrainConfig)


def build_model(cfg: FastTrainConfig, log=log.info) -> FastModel:
    """A fresh student (seeded by the caller), or the weights of `cfg.init` (a fast model's weights dir); with a
    style hint, its VGG attached."""
    if not cfg.init:
        return pretrained.attach_style_encoder(FastModel(cfg.model), log=log)
    init_dir = resolve_init(cfg.init)
    init_meta = load_json(init_dir / CONFIG_FILE)
    if init_meta.get("model") != MODEL or not isinstance(init_meta.get("config"), dict):
        raise WeightsError(f"{init_dir / CONFIG_FILE} is not a {MODEL} weights dir (init must be one)")
    init_config = dataclasses.replace(from_dict(FastConfig, init_meta["config"], "config"),
                                      encoder_id=cfg.model.encoder_id)
    model = FastModel(init_config)
    load_into(model.encoder, init_dir / ENCODER_FILE)
    load_into(pretrained.decoder_part(model), init_dir / DECODER_FILE)
    log(f"student initialised from {init_dir} ({init_meta.get('steps', '?')} steps)")
    if init_config != cfg.model:  # e.g. more residual blocks: they start as the identity, the function is kept
        model = deepen(model, cfg.model)
        if init_config.blocks_per_tap() != cfg.model.blocks_per_tap():
            log(f"grown from blocks per tap {list(init_config.blocks_per_tap())} to {list(cfg.model.blocks_per_tap())}")
        if init_config.style_hint != cfg.model.style_hint:
            log(f"style hint added at VGG taps {list(cfg.model.style_hint)} (it starts as the identity)")
    return pretrained.attach_style_encoder(model, log=log)


def _make_fast_task(cfg: FastTrainConfig, model: FastModel, device: torch.device, run_dir: Path) -> FastTask:
    """`make_task`, once the config names the folder its export needs (before any painting or training)."""
    require_bank_data(cfg.bank_data)
    return make_task(cfg, model, device, run_dir)


def require_bank_data(bank_data: str | Path) -> Path:
    """`bank_data` as a path; ValueError when it is not given (no folder is assumed: "" would be the working
    directory)."""
    if str(bank_data) == "":
        raise ValueError("config field bank_data not given: set the folder holding the built-in styles' source "
                         "paintings (weights/styles/index.json names them) in the config or with --set bank_data=DIR")
    return Path(bank_data)


def make_task(cfg, model: StatisticsMixing, device: torch.device, run_dir: Path) -> FastTask:
    """Paint the teacher cache where shards are missing (rank 0 alone), then the task. `cfg` is any distillation
    config (teacher, data, loss, encoder): FastTrainConfig, or training/teacher_task.py's for the default model."""
    cache = TeacherCache(run_dir / "teacher", cfg.data, cfg.teacher)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if cache.missing() and world > 1:
        raise ValueError(f"the teacher cache in {cache.folder} is incomplete; paint it first in one process "
                         f"(the same command with --set loop.steps=0), then start the data-parallel run")
    seconds = cache.build(device)
    if seconds is not None:
        log.info("teacher cache complete: %.2f s/sample", seconds)
    taps = tuple(cfg.loss.feature_taps)
    wants_vgg = max(cfg.loss.feature_weight, cfg.loss.stats_weight, cfg.loss.style_weight,
                    cfg.loss.local_stats_weight) > 0
    vgg = pretrained.load_encoder(cfg.encoder, taps, log=log.info) if wants_vgg else None
    return FastTask(model, cache, cfg.data, cfg.loss, vgg, rank=int(os.environ.get("RANK", 0)), device=device)


def bank_codes(model: FastModel, data_root: str | Path) -> tuple[dict[str, StyleCode], dict[str, str]]:
    """The model's own codes for the built-in style names: each source painting of weights/styles/index.json
    (under `data_root`, the config's bank_data), resized to the bank's short side and encoded by the model.

    Returns:
        ({name: code}, metadata {short_side, sources (JSON {name: source})}); ({}, {}) when a source is missing.
    """
    root = require_bank_data(data_root)
    index = load_json(pretrained.shipped_weights() / "styles" / "index.json")
    short = int(index.get("short_side", 256))
    entries = [(e["name"], e["source"]) for e in index.get("styles", [])]
    missing = [src for _, src in entries if not (root / src).is_file()]
    if missing or not entries:
        log.warning("no codes for the built-in styles: %s not found under %s; this model will refuse built-in style "
                    "names (set bank_data to the folder holding train/style/)", missing[:1] or "index.json", root)
        return {}, {}
    folder = ImageFolder(root, 1, (1, 1))
    where = {p.relative_to(root).as_posix(): i for i, p in enumerate(folder.files)}
    model.eval()
    codes = {}
    with torch.inference_mode():
        for name, src in entries:
            image = folder.full(where[src], short)
            if image is None:
                raise WeightsError(f"cannot read {root / src}, the source of built-in style {name!r}")
            codes[name] = model.style_code(image[None])[0].cpu_copy()
    return codes, {"short_side": str(short), "sources": json.dumps(dict(entries))}


def encoder_fingerprint(encoder: torch.nn.Module) -> str:
    """A short hash of an encoder's weights (so codes never outlive the weights they came from)."""
    h = hashlib.sha256()
    for k, v in sorted(encoder.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def export(cfg: FastTrainConfig, run_dir: Path, out_dir: Path, dtype: torch.dtype | None = None) -> Path:
    """Checkpoint -> weights dir: config.json, encoder.safetensors, decoder.safetensors (float32: the model is
    ~2 MB) and styles.safetensors (the built-in styles' codes for this encoder; see `bank_codes`). The config's
    encoder_id gets a hash of the encoder's weights, so codes saved with another distillation are refused."""
    ckpt = run_dir / "checkpoint.safetensors"
    model = FastModel(cfg.model)
    model.load_state_dict({k[len("model."):]: v for k, v in load_tensors(ckpt).items() if k.startswith("model.")})
    pretrained.attach_style_encoder(model, log=log.info)
    config = dataclasses.replace(cfg.model, encoder_id=f"{MODEL}-{encoder_fingerprint(model.encoder)[:12]}")
    model.config = config
    step = int(read_metadata(ckpt)["step"])
    cache = TeacherCache(run_dir / "teacher", cfg.data, cfg.teacher)
    meta = {**run_totals(run_dir, step, resolve_init(cfg.init)), "encoder_id": config.encoder_id,
            "teacher": json.dumps(cache.teacher), "trained_with": json.dumps(to_dict(cfg))}
    save_model_dir(model, MODEL, config, out_dir, config.encoder_id, meta, dtype=dtype, with_encoder=True)
    codes, bank_meta = bank_codes(model, cfg.bank_data)
    if codes:
        save_codes(Path(out_dir) / STYLES_FILE, codes, {"encoder": config.encoder_id, **bank_meta})
    return Path(out_dir)


RECIPE = Recipe(f"stylemix train --model {MODEL}", FastTrainConfig, build_config, build_model, _make_fast_task, export)
