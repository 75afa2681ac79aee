"""Temporal stabilisation: stylise the frames of a clip in order without flicker.

Stylising each frame on its own flickers: AdaIN normalises every frame with that frame's own feature
statistics, which jump as the content changes a little, and the decoder paints a slightly different
texture for every sub-pixel position of the content. Two training-free remedies, both on by default
(`TemporalConfig`):

  stats  the content statistics AdaIN normalises with are an exponential moving average over the frames
         (`model.stylize(..., content_stats=)`, the hook tiling uses for whole-image statistics), so the
         style's strength and colour no longer pump with the content.
  flow   the previous stylised frame is warped to the current one by optical flow (OpenCV's DIS) and
         blended in where the flow is reliable: forward-backward consistent, inside the frame, and
         matching the photo (Sundaram et al. 2010; Ruder et al. 2016 use the same check). Occluded or
         newly visible pixels take the fresh stylisation alone, and a frame where few pixels can be
         tracked (a cut) starts over. The warp is bicubic: with bilinear sampling the blur of every
         fractional warp piles up through the blend (on a zoom, style_stat rose 12 %; bicubic: 1 %).

Measured by benchmarks/video.py (a photo panned by 2 px per frame, where the true motion is known):
see the figures there and in the README. Both work at the working size the model paints at (512 px long
side, as `Stylizer.stylize`), before guided upsampling puts the photo's full-size detail back.

Letters: c - channels, h/w - height/width (working size), H/W - full size.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Protocol, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ...models import functional as Fn
from ...models.canvas import Frame
from ...models.contract import StyleCodeLike, StyleModel
from ..detail import guided_upsample, resize, working_size
from .formats import require


class VideoStylizer(Protocol):
    """What `stylize_video` needs of a `Stylizer` (inference/api.py): its model, device, precision and
    style resolution. A Protocol, so this module does not import api.py (which delegates to it)."""

    model: StyleModel
    device: torch.device

    @property
    def stride(self) -> int: ...

    def autocast(self) -> contextlib.AbstractContextManager: ...

    def style_codes(self, styles, max_size: int | None = 512) -> list[StyleCodeLike]: ...


@dataclass(frozen=True)
class TemporalConfig:
    """How consecutive frames are tied together. `TemporalConfig.off()` stylises every frame on its own."""

    stats: float = 0.9  # weight of the running content statistics vs the frame's own (0: per-frame statistics)
    flow: float = 0.7  # weight of the previous output, warped by optical flow, where the flow is reliable (0: off)
    cut: float = 0.3  # a frame where less than this fraction of pixels is reliably tracked starts a new shot
    photometric: float = 0.1  # largest |warped previous photo - photo| (luma, 0-1) at which a pixel counts as tracked

    def __post_init__(self):
        for name in ("stats", "flow", "cut", "photometric"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0.0 <= v <= 1.0) or (name in ("stats", "flow") and v == 1.0):
                raise ValueError(f"TemporalConfig.{name} must be in [0, 1{')' if name in ('stats', 'flow') else ']'}, "
                                 f"got {v!r}")

    @classmethod
    def off(cls) -> "TemporalConfig":
        """Frame by frame: each frame exactly as `Stylizer.stylize` would make it."""
        return cls(stats=0.0, flow=0.0)

    @classmethod
    def named(cls, name: str) -> "TemporalConfig":
        """'both' (default), 'stats', 'flow' or 'none'."""
        base = cls()
        table = {"both": base, "stats": cls(stats=base.stats, flow=0.0), "flow": cls(stats=0.0, flow=base.flow),
                 "none": cls.off()}
        if name not in table:
            raise ValueError(f"temporal mode must be one of {sorted(table)}, got {name!r}")
        return table[name]


def gray8(image: torch.Tensor) -> np.ndarray:
    """(1, 3, h, w) RGB [0, 1] -> (h, w) uint8 luma, what the flow is estimated on."""
    return (Fn.luma(image.float())[0, 0].clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def optical_flow(dis, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dense flow from grey frame a to b (h, w) uint8 with a cv2.DISOpticalFlow: (h, w, 2) float32 (dx, dy),
    such that a(p) ~ b(p + flow(p))."""
    return dis.calc(a, b, None)


def warp(image: torch.Tensor, flow: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Sample image (b, c, h, w) at p + flow(p): flow (h, w, 2) in pixels (dx, dy). Outside: the border."""
    h, w = image.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    flow = flow.to(torch.float32).cpu()
    gx = (xs + flow[..., 0] + 0.5) / w * 2 - 1  # align_corners=False: pixel centres at (i + 0.5) / n
    gy = (ys + flow[..., 1] + 0.5) / h * 2 - 1
    grid = torch.stack([gx, gy], -1)[None].expand(image.shape[0], -1, -1, -1).to(image.device)
    return F.grid_sample(image.float(), grid, mode=mode, padding_mode="border", align_corners=False)


def reliable(back: np.ndarray, fwd: np.ndarray) -> torch.Tensor:
    """Where the backward flow (current -> previous frame) is trusted: it lands inside the previous frame and the
    forward flow (previous -> current) at the landing point brings it back (Sundaram et al. 2010):
    |b + f(p + b)|^2 <= 0.01 (|b|^2 + |f(p + b)|^2) + 0.5. Returns (h, w) float 0/1."""
    b = torch.from_numpy(back)
    f_at = warp(torch.from_numpy(fwd).permute(2, 0, 1)[None], b)[0].permute(1, 2, 0)  # f at p + b(p)
    h, w = back.shape[:2]
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    x1, y1 = xs + b[..., 0], ys + b[..., 1]
    inside = (x1 >= 0) & (x1 <= w - 1) & (y1 >= 0) & (y1 <= h - 1)
    err = (b + f_at).pow(2).sum(-1)
    ok = err <= 0.01 * (b.pow(2).sum(-1) + f_at.pow(2).sum(-1)) + 0.5
    return (inside & ok).float()


@dataclass
class _Shot:
    """What carries from one frame to the next: running statistics, previous painted output and photo."""

    stats: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None
    out: torch.Tensor | None = None  # (1, 3, h, w) the previous blended output at the working size
    gray: np.ndarray | None = None  # (h, w) the previous photo's luma at the working size
    back: torch.Tensor | None = None  # (h, w, 2) flow from the current frame to the previous one
    tracked: list[float] = field(default_factory=list)  # fraction of reliable pixels per frame (for reports)


class TemporalPainter:
    """Stylises the frames of one clip in order, carrying statistics and the previous output between them.

    Args:
        stylizer: a Stylizer (or anything `VideoStylizer`).
        codes: K style codes (`stylizer.style_codes`).
        temporal: the stabilisation (`TemporalConfig`; `.off()` = frame by frame).
        alpha, preserve_color: as in `Stylizer.stylize`.
        work: long side the model paints at (None: full size); guided upsampling lifts the result to full size.
    """

    def __init__(self, stylizer: VideoStylizer, codes: Sequence[StyleCodeLike], temporal: TemporalConfig,
                 alpha: float = 1.0, preserve_color: str | None = None, work: int | None = 512):
        if temporal.stats > 0 and not stylizer.model.capabilities.tiling:
            temporal = TemporalConfig(stats=0.0, flow=temporal.flow, cut=temporal.cut,
                                      photometric=temporal.photometric)  # no content_stats hook: flow only
        self.stylizer, self.codes, self.temporal = stylizer, list(codes), temporal
        self.alpha, self.preserve_color, self.work = float(alpha), preserve_color, work
        self.shot = _Shot()
        self._dis = None
        if temporal.flow > 0:
            cv2 = require("cv2", "temporal stabilisation by optical flow")
            self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)

    @property
    def tracked(self) -> list[float]:
        """Fraction of pixels blended with the previous frame, per frame so far (0 for the first of a shot)."""
        return self.shot.tracked

    def __call__(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """One frame (1, 3, H, W) in [0, 1] + normalised weights (k,) -> the stylised frame (1, 3, H, W), CPU."""
        st = self.stylizer
        x = x.to(st.device)
        if self.alpha == 0.0:  # the content itself, exactly (as Stylizer.stylize)
            self.shot.tracked.append(0.0)
            return x.cpu().clone()
        xw = resize(x, working_size(tuple(x.shape[-2:]), self.work))  # (1, 3, h, w): what the model paints
        frame = Frame(tuple(xw.shape[-2:]))
        gray = gray8(xw) if self._dis is not None else None
        mask, fraction = self._track(gray)  # (1, 1, h, w) weight of the warped previous output, or None
        if mask is not None and fraction < self.temporal.cut:
            mask = None  # a cut: too little can be tracked, start a new shot
            self.shot.stats = None
        with torch.inference_mode(), st.autocast():
            feats = st.model.encode_content(frame.apply(xw, st.stride))
            w = weights.to(st.device)
            if self.temporal.stats > 0:
                y = st.model.stylize(feats, self.codes, w, self.alpha, content_stats=self._stats(feats))
            else:
                y = st.model.stylize(feats, self.codes, w, self.alpha)
            y = frame.crop(y.float())  # (1, 3, h, w)
            if mask is not None:  # bicubic: bilinear's blur would pile up frame after frame (style_stat +12 %)
                prev = warp(self.shot.out, self.shot.back, mode="bicubic").clamp(0, 1)
                y = y + mask.to(y.device) * (prev - y)
            self.shot.tracked.append(fraction if mask is not None else 0.0)
            self.shot.out, self.shot.gray = y, gray
            out = y if y.shape[-2:] == x.shape[-2:] else guided_upsample(y, Fn.luma(xw), Fn.luma(x))
            out = Fn.preserve_color(out, x, self.preserve_color)
        return out.cpu().clone()

    def _stats(self, feats: dict[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """The running content statistics after this frame: {tap: (mean (1, c), std (1, c))}."""
        own = {t: Fn.mean_std(feats[t]) for t in self.stylizer.model.mix_taps}
        if self.shot.stats is None:
            self.shot.stats = own
        else:
            b = self.temporal.stats
            self.shot.stats = {t: (b * m0 + (1 - b) * own[t][0], b * s0 + (1 - b) * own[t][1])
                               for t, (m0, s0) in self.shot.stats.items()}
        return self.shot.stats

    def _track(self, gray: np.ndarray | None) -> tuple[torch.Tensor | None, float]:
        """(blend weights (1, 1, h, w) of the warped previous output, fraction of pixels reliably tracked) for
        this frame; (None, 0) for the first frame, without flow, or after a size change. Leaves the backward
        flow in self.shot.back."""
        prev = self.shot.gray
        if gray is None or prev is None or prev.shape != gray.shape:
            return None, 0.0
        back = optical_flow(self._dis, gray, prev)  # current -> previous
        fwd = optical_flow(self._dis, prev, gray)  # previous -> current
        ok = reliable(back, fwd)  # (h, w)
        bt = torch.from_numpy(back)
        seen = warp(torch.from_numpy(prev).float()[None, None] / 255, bt)[0, 0]  # the previous photo, warped
        ok = ok * ((seen - torch.from_numpy(gray).float() / 255).abs() <= self.temporal.photometric).float()
        self.shot.back = bt
        soft = F.avg_pool2d(F.pad(ok[None, None], (2, 2, 2, 2), mode="replicate"), 5, stride=1)  # soft seams
        return self.temporal.flow * soft * ok[None, None], float(ok.mean())
