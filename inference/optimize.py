"""Optimisation-based style transfer (Gatys et al.): the image itself is optimised so that its deep VGG
features match the content photo's and its Gram matrices match the (weighted blend of the) styles'.

Slow but the quality reference the fast models are judged against. Everything numerical is reused:
Gram/weights/colour from `models.functional`, losses from `training.losses`; nothing here recomputes
a statistic or a loss.

Letters: b - batch, c - channels, h/w - height/width, k - styles.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from PIL import Image

from ..models import functional as Fn
from ..models import pretrained
from ..models.device import resolve_device
from ..models.vgg import VGGEncoder
from ..training import losses

from .detail import resize
from .images import MAX_PIXELS, load_image, to_pil

CONTENT_LAYERS = ("relu4_1",)
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
DEFAULT_ENCODER = "vgg16-hed"
OPTIMIZERS = ("lbfgs", "adam")
INITS = ("content", "noise", "adain")
PRESERVE_COLOR = (None, "luminance", "match")
DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.02}
# Loss weights for the relative losses; chosen by eye on skimage photos x the eval paintings (see optimize).
DEFAULTS = {"content_weight": 1.0, "style_weight": 30.0, "tv_weight": 1.0}
MIN_LEVEL_SIDE = 16  # the coarsest pyramid level must still reach relu5_1 (stride 16)
LBFGS_HISTORY = 20  # curvature pairs kept: 20 x 2 image-sized vectors bounds L-BFGS memory

Source = Any  # a path, PIL image, array or tensor: anything `inference.images.load_image` takes
Callback = Callable[[dict, torch.Tensor], Any]


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """`detail.resize`, kept in the image range [0, 1] (an optimised image and its targets are images)."""
    return resize(x, size).clamp(0, 1)


@dataclass
class OptimizeResult:
    """What `optimize` returns."""

    image: Image.Image  # the result, RGB, the size of the (max_size-limited) content
    tensor: torch.Tensor  # the same, (1, 3, h, w) float32 in [0, 1] on the CPU
    history: list[dict] = field(default_factory=list)  # one record per step, see `optimize`


def load_encoder(name_or_path: str = DEFAULT_ENCODER, taps: Sequence[str] = STYLE_LAYERS,
                 device: str | torch.device = "cpu") -> VGGEncoder:
    """A frozen pretrained VGG encoder returning `taps`.

    Args:
        name_or_path: encoder preset ('vgg16-hed', ...) or encoder directory.
        taps: relu layers to return.
        device: where to put it.

    Returns:
        VGGEncoder in eval mode.
    """
    return pretrained.load_encoder(name_or_path, tuple(taps)).to(device).eval()


def content_targets(encoder: VGGEncoder, content: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """Content features {tap: (1, c, h, w)} of the content image (1, 3, h, w)."""
    with torch.no_grad():
        feats = encoder(content)
    return {t: feats[t].float() for t in layers}


def style_targets(encoder: VGGEncoder, styles: Sequence[torch.Tensor], weights: torch.Tensor,
                  layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """Blended Gram targets: sum_k w_k G_k per layer.

    Args:
        encoder: the loss network.
        styles: K images (1, 3, h_k, w_k), sizes may differ (a Gram is (c, c) whatever the size).
        weights: (k,) normalised weights (`models.functional.validate_weights`).
        layers: taps to take Grams at.

    Returns:
        {tap: (1, c, c)}; weights (1, 0, ...) give exactly the first style's Gram.
    """
    if len(styles) != weights.numel():
        raise ValueError(f"got {weights.numel()} weights for {len(styles)} styles")
    grams: dict[str, list[torch.Tensor]] = {t: [] for t in layers}
    with torch.no_grad():
        for style in styles:
            feats = encoder(style)
            for t in layers:
                grams[t].append(Fn.gram(feats[t]))  # (1, c, c)
    out = {}
    for t, g in grams.items():
        stacked = torch.stack(g)  # (k, 1, c, c)
        out[t] = (weights.to(stacked).view(-1, 1, 1, 1) * stacked).sum(0)
    return out


def pyramid_sizes(height: int, width: int, scales: int) -> list[tuple[int, int]]:
    """Sizes of the pyramid levels, coarse to fine, each level twice the previous; the last is (height, width)."""
    if not isinstance(scales, int) or scales < 1:
        raise ValueError(f"scales must be a whole number >= 1, got {scales!r}")
    sizes = [(max(1, round(height / 2 ** j)), max(1, round(width / 2 ** j))) for j in reversed(range(scales))]
    if min(sizes[0]) < MIN_LEVEL_SIDE:
        raise ValueError(f"scales={scales} makes the coarsest level {sizes[0][0]}x{sizes[0][1]} px for a "
                         f"{height}x{width} image; each side must stay >= {MIN_LEVEL_SIDE}: use fewer scales")
    return sizes


def _style_size(style: torch.Tensor, level: tuple[int, int], style_scale: float) -> tuple[int, int]:
    """A style's size at a level: its longest side = the level's longest side x style_scale."""
    h, w = style.shape[-2:]
    f = max(level) * style_scale / max(h, w)
    return max(1, round(h * f)), max(1, round(w * f))


def _resolve_encoder(encoder: VGGEncoder | str | Path | None, taps: tuple[str, ...],
                     device: torch.device) -> VGGEncoder:
    """The loss network: a given VGGEncoder (checked to return `taps`) or one loaded by name/dir."""
    if encoder is None or isinstance(encoder, (str, Path)):
        return load_encoder(str(encoder or DEFAULT_ENCODER), taps, device)
    missing = [t for t in taps if t not in encoder.taps]
    if missing:
        raise ValueError(f"the encoder does not return {missing}; build it with taps {taps}")
    return encoder.to(device).eval()


def _load(src: Source, max_size: int | None, device: torch.device) -> torch.Tensor:
    """Any image source (see `inference.images.load_image`) -> (1, 3, h, w) float32 in [0, 1] on `device`."""
    return load_image(src, max_size).to(device)


def _check_choices(optimizer: str, init: str, preserve_color: str | None, steps: int,
                   weights: dict[str, float]) -> None:
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    if preserve_color not in PRESERVE_COLOR:
        raise ValueError(f"preserve_color must be one of {PRESERVE_COLOR}, got {preserve_color!r}")
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a whole number >= 0, got {steps!r}")
    for name, v in weights.items():
        if not (v >= 0 and v < float("inf")):
            raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")


def _initial(init: str, content: torch.Tensor, styles: Sequence[torch.Tensor], weights: torch.Tensor,
             seed: int, device: torch.device, model: str | None) -> torch.Tensor:
    """The full-size starting image (1, 3, h, w): the content, uniform noise from `seed`, or the fast
    model's stylisation (`model`, default models.pretrained.DEFAULT_MODEL) of the content with the same weighted
    styles."""
    if init == "content":
        return content.clone()
    if init == "noise":
        g = torch.Generator().manual_seed(seed)
        return torch.rand(content.shape, generator=g).to(device)
    from .api import Stylizer

    stylizer = Stylizer.from_pretrained(model, device=device)
    out = stylizer.stylize(content, list(styles), weights=weights.tolist(), max_size=None, style_size=None,
                           return_tensor=True)
    return _resize(out.float().to(device), tuple(content.shape[-2:]))


def optimize(
    content: Source,
    styles: Sequence[Source],
    weights: Sequence[float] | torch.Tensor | None = None,
    *,
    encoder: VGGEncoder | str | None = None,
    steps: int = 300,
    optimizer: str = "lbfgs",
    lr: float | None = None,
    content_weight: float = DEFAULTS["content_weight"],
    style_weight: float = DEFAULTS["style_weight"],
    tv_weight: float = DEFAULTS["tv_weight"],
    content_layers: Sequence[str] = CONTENT_LAYERS,
    style_layers: Sequence[str] = STYLE_LAYERS,
    init: str = "content",
    init_model: str | Path | None = None,
    scales: int = 1,
    style_scale: float = 1.0,
    max_size: int | None = 512,
    preserve_color: str | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
    callback: Callback | None = None,
) -> OptimizeResult:
    """Gatys style transfer: optimise the image against content features and blended Gram targets.

    Loss = content_weight * sum_l relative content MSE (content_layers)
         + style_weight * sum_l relative Gram MSE against sum_k w_k G_k (style_layers)
         + tv_weight * total variation. Relative losses divide by the target's own scale, so the
    defaults suit any encoder. The image is optimised in pixel space and projected to [0, 1] after
    every step; with scales > 1 it is solved coarse to fine, each level twice the previous and
    started from the upsampled previous result.

    Args:
        content: content image (path, PIL image or (1, 3, h, w) tensor in [0, 1]).
        styles: K style images (same kinds).
        weights: K non-negative blend weights (normalised); None = equal.
        encoder: a VGGEncoder (must return all layers), an encoder name/dir, or None for 'vgg16-hed'.
        steps: optimiser steps per pyramid level (one L-BFGS iteration or one Adam step each).
        optimizer: 'lbfgs' or 'adam'.
        lr: step size; None = 1.0 for L-BFGS, 0.02 for Adam (pixels in [0, 1]).
        content_weight, style_weight, tv_weight: loss weights (>= 0).
        content_layers, style_layers: VGG taps, e.g. ('relu4_1',).
        init: 'content', 'noise' (uniform, from `seed`) or 'adain' (the fast model's output).
        init_model: weights dir or name of the fast model for init='adain' (default: models.pretrained.DEFAULT_MODEL).
        scales: pyramid levels (1 = single scale).
        style_scale: style images are resized so their longest side is this times the result's.
        max_size: longest side of the content (and result); None keeps the image size.
        preserve_color: None, 'luminance' (keep the content's chroma afterwards) or 'match' (give the
            styles the content's colour distribution before optimising).
        seed: seeds the noise init; results are deterministic for a given seed and device.
        device: 'cpu', 'cuda', ...
        progress: show a tqdm bar with the current losses.
        callback: called as callback(record, image) after each step; returning False stops early.

    Returns:
        OptimizeResult(image, tensor, history); history records are
        {level, step, size, content, style, tv, total, seconds}, losses unweighted except `total`.
    """
    _check_choices(optimizer, init, preserve_color, steps,
                   {"content_weight": content_weight, "style_weight": style_weight, "tv_weight": tv_weight,
                    "style_scale": style_scale})
    if style_scale <= 0:
        raise ValueError(f"style_scale must be > 0, got {style_scale}")
    if isinstance(styles, (str, Path, Image.Image, torch.Tensor)):
        styles = [styles]
    w = Fn.validate_weights(weights, len(styles))
    if not content_layers or not style_layers:
        raise ValueError("content_layers and style_layers must each name at least one VGG tap")
    lr = DEFAULT_LR[optimizer] if lr is None else float(lr)
    if not 0 < lr < float("inf"):
        raise ValueError(f"lr must be a finite number > 0, got {lr}")
    device = resolve_device(device)
    encoder = _resolve_encoder(encoder, tuple(dict.fromkeys((*content_layers, *style_layers))), device)

    content_full = _load(content, max_size, device)
    style_full = [_load(s, max_size, device) for s in styles]
    if preserve_color == "match":
        style_full = [Fn.match_color(s, content_full) for s in style_full]
    sizes = pyramid_sizes(*content_full.shape[-2:], scales)
    for i, s in enumerate(style_full):  # style_scale enlarges the styles: bound them before any VGG pass
        sh, sw = _style_size(s, sizes[-1], style_scale)
        if sh * sw > MAX_PIXELS:
            raise ValueError(f"style_scale={style_scale} makes style {i + 1} {sw}x{sh} px at the result's size, more than "
                             f"the {MAX_PIXELS // 2**20} MP of the largest image stylemix loads; use a smaller style_scale")
    image = _resize(_initial(init, content_full, style_full, w, seed, device, init_model), sizes[0])

    loss_weights = {"content": content_weight, "style": style_weight, "tv": tv_weight}
    recorder = _Recorder(steps * len(sizes), progress, callback)
    try:
        for level, size in enumerate(sizes):
            recorder.next_level(level)
            styles_l = [_resize(s, _style_size(s, size, style_scale)) for s in style_full]
            problem = _Level(encoder, _resize(content_full, size), styles_l, w, tuple(content_layers),
                             tuple(style_layers), loss_weights)
            image, stopped = problem.solve(_resize(image, size), optimizer, lr, steps, recorder)
            if stopped:
                break
    finally:
        recorder.bar.close()

    out = _resize(image.detach(), sizes[-1])
    if preserve_color == "luminance":
        out = Fn.keep_luminance(out, content_full)
    out = out.float().cpu()
    return OptimizeResult(image=to_pil(out), tensor=out, history=recorder.history)


class _Level:
    """One pyramid level: the targets at this size and the loss against them."""

    def __init__(self, encoder: VGGEncoder, content: torch.Tensor, styles: list[torch.Tensor], weights: torch.Tensor,
                 content_layers: tuple[str, ...], style_layers: tuple[str, ...], loss_weights: dict[str, float]):
        self.encoder, self.content_layers, self.style_layers = encoder, content_layers, style_layers
        self.loss_weights = loss_weights
        self.content_targets = content_targets(encoder, content, content_layers)
        self.style_targets = style_targets(encoder, styles, weights, style_layers)

    def loss(self, image: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Weighted total loss of `image` (1, 3, h, w) and its unweighted parts."""
        feats = self.encoder(image)
        parts = {
            "content": sum(losses.content_loss(feats[t], self.content_targets[t], relative=True)
                           for t in self.content_layers),
            "style": losses.style_loss({t: feats[t] for t in self.style_layers}, self.style_targets, kind="gram",
                                       relative=True),
            "tv": losses.tv_loss(image),
        }
        total = sum(self.loss_weights[k] * v for k, v in parts.items())
        return total, {**{k: float(v.detach()) for k, v in parts.items()}, "total": float(total.detach())}

    def solve(self, init: torch.Tensor, optimizer: str, lr: float, steps: int,
              report: Callable[[dict, torch.Tensor], bool]) -> tuple[torch.Tensor, bool]:
        """Optimise from `init`; `report(losses, image)` after each step returns False to stop.
        Returns (image, stopped early)."""
        image = init.detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)
        opt = _make_optimizer(optimizer, image, lr)
        last: dict[str, float] = {}

        def closure() -> torch.Tensor:
            opt.zero_grad(set_to_none=True)
            total, parts = self.loss(image)
            total.backward()
            last.update(parts)
            return total

        for _ in range(steps):
            opt.step(closure)  # `last` = losses at the start of this step (L-BFGS: its only evaluation)
            with torch.no_grad():
                image.clamp_(0, 1)
            if report(dict(last), image.detach()) is False:
                return image.detach(), True
        return image.detach(), False


class _Recorder:
    """Collects the history, drives the progress bar and calls the user's callback, once per step."""

    def __init__(self, total_steps: int, progress: bool, callback: Callback | None):
        from tqdm.auto import tqdm

        self.history: list[dict] = []
        self.bar = tqdm(total=total_steps, disable=not progress, desc="optimize", unit="step", dynamic_ncols=True)
        self.callback, self.level, self.step, self.start = callback, 0, 0, time.perf_counter()

    def next_level(self, level: int) -> None:
        self.level, self.step = level, 0

    def __call__(self, parts: dict[str, float], image: torch.Tensor) -> bool:
        record = {"level": self.level, "step": self.step, "size": tuple(image.shape[-2:]), **parts,
                  "seconds": time.perf_counter() - self.start}
        self.history.append(record)
        self.step += 1
        self.bar.update(1)
        self.bar.set_postfix({"level": self.level, **{k: f"{parts[k]:.3g}" for k in ("content", "style", "tv")}},
                             refresh=False)
        return not (self.callback is not None and self.callback(record, image) is False)


def _make_optimizer(name: str, image: torch.Tensor, lr: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam([image], lr=lr)
    # One iteration per step() and no line search: one loss evaluation per step (the state carries
    # over between calls), so the [0, 1] projection can run after every iteration.
    return torch.optim.LBFGS([image], lr=lr, max_iter=1, history_size=LBFGS_HISTORY,
                             tolerance_grad=0.0, tolerance_change=0.0)
