"""Quality metrics for stylisations, on the frozen VGG16 (HED) encoder.

- style_stat: mean over relu1_1..relu4_1 of (rms(mu_out - mu_style) + rms(sigma_out - sigma_style)) / rms(sigma_style),
  rms over channels: how far the output's channel statistics are from the style's, relative to the style's
  spread (0 = identical statistics; lower is better).
- content: mean squared difference of the instance-normalised relu4_1 features of output and content
  (structure, independent of the statistics; lower is better).
- edges: Pearson correlation of the HED edge maps of output and content (structure kept, measured by an
  output training never optimises; higher is better).

Artefact scores, on the output at the size it was made (no VGG; `artefacts`):
- grid: for each axis, the mean absolute difference between neighbouring columns (rows) is a 1-D profile;
  Hann-windowed, its real-FFT magnitude is searched for the highest peak at periods 2, 4, 8 and 16 px
  (+-1 bin), divided by the spectrum's median magnitude; mean of the two axes. A decoder's block grid
  shows as a peak at its period; paintings and photos score about 3.5-5.
- grid_any: the same with the highest peak at any period of 2-24 px (a resampled output moves a grid
  off the powers of two; it must not hide it).
- border: the colour step (0-255) between the outer 8 px band and the next 8 px band: per side, the
  mean absolute difference of the two bands' mean colours over the channels; mean of the four sides.
  Bright or dark frames (e.g. from an encoder's zero padding) raise it; photos score about 3.
- halo: glowing halos, dark fringes and ghost outlines along the photo's strong edges (`HaloProbe`). At up to
  HALO_POINTS clean, strong steps of the photo's luminance, the output's luminance is sampled across the edge
  (+-HALO_RADIUS px along the photo's gradient), oriented dark-to-bright and divided by the photo's step there,
  then averaged over the edges: texture, uncorrelated with the edges, averages away, while a halo, a fringe or a
  displaced copy of the edge, which sit at the same place beside every edge, stay. The score is the average
  profile's variation beyond its net rise, halved: its overshoot and undershoot, in units of the photo's step
  (0 for any monotone profile: the photo itself, a blurred or a faded edge). A texture adds a little by chance,
  less the more edges a photo has (about 100-300 in a 512 px photo).
One VGG pass per image serves both: the HED detector runs on an encoder that also returns the metric taps.
Reference features (content: relu4_1 + edges; style: channel statistics) are computed once per image.

Letters: b - batch, c - channels, h/w - height/width.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import torch
from einops import rearrange

from stylemix.models import functional as Fn
from stylemix.models.hed import HED, HED_TAPS
from stylemix.models.io import WeightsError, load_into, load_tensors
from stylemix.models.pretrained import load_encoder_config
from stylemix.models.vgg import EncoderConfig, VGGEncoder

STAT_TAPS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
CONTENT_TAP = "relu4_1"
METRICS = ("style_stat", "content", "edges")
HIGHER_IS_BETTER = {"style_stat": False, "content": False, "edges": True}
ARTEFACTS = ("grid", "grid_any", "border", "halo")
GRID_PERIODS = (2, 4, 8, 16)
HALO_RADIUS = 10  # px either side of an edge
HALO_POINTS = 2000  # edge points sampled per photo (at most)
HALO_MIN_STEP = 0.1  # luminance step (0-1) of a strong edge
HALO_MIN_EDGES = 30  # fewer clean edges than this: no halo score (nan)

Stats = dict[str, tuple[torch.Tensor, torch.Tensor]]  # {tap: (mean (b, c), std (b, c))}


def rms(x: torch.Tensor) -> torch.Tensor:
    """Root mean square over the last dim: (..., c) -> (...)."""
    return x.float().pow(2).mean(-1).sqrt()


def style_stat(out_feats: Mapping[str, torch.Tensor], style: Stats) -> torch.Tensor:
    """Relative distance of the output's channel statistics from the style's.

    Args:
        out_feats: {tap: (b or 1, c, h, w)} features of the outputs.
        style: {tap: (mean, std)} of the styles, each (b or 1, c); batch dims broadcast.

    Returns:
        (b,) mean over the taps of (rms(mu_o - mu_s) + rms(sigma_o - sigma_s)) / rms(sigma_s).
    """
    per_tap = []
    for tap, (mu_s, sig_s) in style.items():
        mu_o, sig_o = Fn.mean_std(out_feats[tap])
        per_tap.append((rms(mu_o - mu_s) + rms(sig_o - sig_s)) / rms(sig_s).clamp_min(1e-12))
    return torch.stack(per_tap).mean(0)


def content_distance(out_feat: torch.Tensor, content_feat: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of instance-normalised features (b or 1, c, h, w) -> (b,)."""
    diff = Fn.instance_norm(out_feat) - Fn.instance_norm(content_feat)
    return diff.pow(2).mean(dim=(1, 2, 3))


def edge_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of edge maps (b or 1, 1, h, w) per sample -> (b,); 0 where a map is constant."""
    a, b = torch.broadcast_tensors(rearrange(a.float(), "b c h w -> b (c h w)"), rearrange(b.float(), "b c h w -> b (c h w)"))
    a, b = a - a.mean(-1, keepdim=True), b - b.mean(-1, keepdim=True)
    return (a * b).sum(-1) / (a.pow(2).sum(-1) * b.pow(2).sum(-1)).sqrt().clamp_min(1e-12)


@dataclass
class ContentRef:
    """What the metrics need of a content image: its relu4_1 features (1, c, h, w) and edge map (1, 1, H, W)."""

    feat: torch.Tensor
    edges: torch.Tensor


def stack_stats(stats: Sequence[Stats]) -> Stats:
    """Per-image statistics {tap: ((1, c), (1, c))} -> one batch {tap: ((b, c), (b, c))}."""
    return {t: (torch.cat([s[t][0] for s in stats]), torch.cat([s[t][1] for s in stats])) for t in stats[0]}


class _TeeEncoder(VGGEncoder):
    """A VGGEncoder that keeps its last output, so the HED pass also yields the metric taps."""

    last: dict[str, torch.Tensor] | None = None

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        self.last = super().forward(image)
        return self.last


class Evaluator:
    """Scores outputs against cached content/style references with one VGG pass per image.

    Args:
        config: the VGG16 encoder config (HED needs VGG16).
        device: where to run.
        chunk: images per forward pass (bounds memory).
    """

    def __init__(self, config: EncoderConfig, device: str | torch.device = "cpu", chunk: int = 6):
        if config.arch != "vgg16":
            raise ValueError(f"the HED edge metric needs a VGG16 encoder, got {config.arch!r}")
        self.device, self.chunk = torch.device(device), chunk
        self.hed = HED(config)
        self.hed.encoder = _TeeEncoder(config, tuple(dict.fromkeys((*HED_TAPS, *STAT_TAPS))))
        self.hed.to(self.device).eval()

    @classmethod
    def from_dir(cls, enc_dir: str | Path, device: str | torch.device = "cpu", chunk: int = 6) -> "Evaluator":
        """Load encoder.safetensors + hed.safetensors (strictly) from an encoder directory."""
        enc_dir = Path(enc_dir)
        ev = cls(load_encoder_config(enc_dir), device, chunk)
        load_into(ev.hed.encoder, enc_dir / "encoder.safetensors")
        heads = load_tensors(enc_dir / "hed.safetensors")
        state = {**{f"encoder.{k}": v for k, v in ev.hed.encoder.state_dict().items()}, **heads}
        try:
            ev.hed.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise WeightsError(f"{enc_dir / 'hed.safetensors'} does not fit the HED heads: {e}") from None
        return ev

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """RGB [0, 1] (b, 3, h, w) -> ({tap: (b, c, h', w')} for STAT_TAPS, edges (b, 1, h, w))."""
        feats: dict[str, list[torch.Tensor]] = {t: [] for t in STAT_TAPS}
        edges = []
        for part in images.split(self.chunk):
            edges.append(self.hed(part.to(self.device).float()))
            for t in STAT_TAPS:
                feats[t].append(self.hed.encoder.last[t])
            self.hed.encoder.last = None
        return {t: torch.cat(v) for t, v in feats.items()}, torch.cat(edges)

    def content_ref(self, image: torch.Tensor) -> ContentRef:
        """Reference of one content image (1, 3, h, w)."""
        feats, edges = self.features(image)
        return ContentRef(feats[CONTENT_TAP], edges)

    def style_ref(self, image: torch.Tensor) -> Stats:
        """Channel statistics {tap: ((1, c), (1, c))} of one style image (1, 3, h, w)."""
        feats, _ = self.features(image)
        return {t: Fn.mean_std(feats[t]) for t in STAT_TAPS}

    @torch.no_grad()
    def score(self, outputs: torch.Tensor, content: ContentRef, styles: Sequence[Stats]) -> dict[str, torch.Tensor]:
        """Metrics of outputs (b, 3, h, w) made from one content and b styles (b may be 1 with several
        styles: the same output scored against each, e.g. the content image itself).

        Returns:
            {metric: (len(styles),) float tensor}.
        """
        stats = {t: (m.to(self.device), s.to(self.device)) for t, (m, s) in stack_stats(styles).items()}
        if outputs.shape[0] not in (1, len(styles)):
            raise ValueError(f"{outputs.shape[0]} outputs for {len(styles)} styles")
        out: dict[str, list[torch.Tensor]] = {m: [] for m in METRICS}
        step = self.chunk if outputs.shape[0] > 1 else len(styles)
        for i in range(0, len(styles), step):
            part = outputs[i:i + step] if outputs.shape[0] > 1 else outputs
            if part.shape[-2:] != content.edges.shape[-2:]:
                raise ValueError(f"outputs are {tuple(part.shape[-2:])} but the content is {tuple(content.edges.shape[-2:])}")
            feats, edges = self.features(part)
            n = min(step, len(styles) - i)
            out["style_stat"].append(style_stat(feats, {t: (m[i:i + n], s[i:i + n]) for t, (m, s) in stats.items()}))
            out["content"].append(content_distance(feats[CONTENT_TAP], content.feat).expand(n))
            out["edges"].append(edge_correlation(edges, content.edges).expand(n))
        return {m: torch.cat(v).cpu() for m, v in out.items()}


# -- artefacts ---------------------------------------------------------------------------------------
def _peak_ratio(profile: torch.Tensor, periods: Sequence[int] | None, span: tuple[float, float] = (2, 24)) -> float:
    """Highest Hann-windowed rFFT magnitude of a 1-D profile at `periods` (+-1 bin), or at any period in
    `span` when periods is None, over the median magnitude of the spectrum."""
    n = profile.numel()
    x = (profile.double() - profile.double().mean()) * torch.hann_window(n, periodic=False, dtype=torch.float64)
    mag = torch.fft.rfft(x).abs()  # bins 0..n//2, bin k = period n/k
    median = mag[1:].median().clamp_min(1e-12)
    if periods is None:
        lo, hi = max(1, int(n / span[1])), min(len(mag) - 1, int(round(n / span[0])))
        bins = range(lo, hi + 1)
    else:
        bins = {b for p in periods for b in range(round(n / p) - 1, round(n / p) + 2) if 1 <= b < len(mag)}
    return float(max(mag[b] for b in bins) / median)


def grid_scores(image: torch.Tensor) -> tuple[float, float]:
    """(grid, grid_any) of one image (3, h, w) or (1, 3, h, w) in [0, 1]: see the module docstring."""
    img = image.reshape(-1, *image.shape[-2:]).float() * 255  # (c, h, w)
    cols = (img[:, :, 1:] - img[:, :, :-1]).abs().mean(dim=(0, 1))  # (w-1,) profile along x
    rows = (img[:, 1:, :] - img[:, :-1, :]).abs().mean(dim=(0, 2))  # (h-1,) profile along y
    grid = (_peak_ratio(cols, GRID_PERIODS) + _peak_ratio(rows, GRID_PERIODS)) / 2
    grid_any = (_peak_ratio(cols, None) + _peak_ratio(rows, None)) / 2
    return grid, grid_any


def border_score(image: torch.Tensor, band: int = 8) -> float:
    """Colour step (0-255) between the outer `band` px and the next `band` px, mean over the four sides."""
    img = image.reshape(-1, *image.shape[-2:]).float() * 255  # (c, h, w)
    sides = [(img[:, :band], img[:, band:2 * band]), (img[:, -band:], img[:, -2 * band:-band]),
             (img[:, :, :band], img[:, :, band:2 * band]), (img[:, :, -band:], img[:, :, -2 * band:-band])]
    return float(torch.stack([(o.mean(dim=(1, 2)) - i.mean(dim=(1, 2))).abs().mean() for o, i in sides]).mean())


def luminance(image: torch.Tensor) -> torch.Tensor:
    """Rec. 601 luma (h, w) of one RGB image (3, h, w) or (1, 3, h, w) in [0, 1]."""
    r, g, b = image.reshape(3, *image.shape[-2:]).float()
    return 0.299 * r + 0.587 * g + 0.114 * b


def _sample_lines(lum: torch.Tensor, points: torch.Tensor, normals: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of `lum` (h, w) at t = -R..R px along each normal: (n, 2R + 1); points, normals (n, 2) (y, x)."""
    h, w = lum.shape
    t = torch.arange(-HALO_RADIUS, HALO_RADIUS + 1, dtype=torch.float32)
    yx = points[:, None, :] + t[None, :, None] * normals[:, None, :]  # (n, 2R + 1, 2)
    grid = torch.stack([yx[..., 1] / (w - 1), yx[..., 0] / (h - 1)], -1) * 2 - 1  # x, y in [-1, 1]
    return torch.nn.functional.grid_sample(lum[None, None], grid[None], mode="bilinear", align_corners=True)[0, 0]


def _excess(profiles: torch.Tensor) -> torch.Tensor:
    """Half the variation of each profile (..., t) beyond its net rise: 0 when monotone."""
    tv = (profiles[..., 1:] - profiles[..., :-1]).abs().sum(-1)
    return (tv - (profiles[..., -1] - profiles[..., 0]).abs()) / 2


@dataclass
class HaloProbe:
    """Where a photo has clean, strong edges: points (n, 2) and unit normals (n, 2) as (y, x), pointing from the
    dark side to the bright one, and the photo's luminance step (n,) across each."""

    points: torch.Tensor
    normals: torch.Tensor
    steps: torch.Tensor

    @classmethod
    def of(cls, photo: torch.Tensor) -> "HaloProbe":
        """Edges of a photo (3, h, w) or (1, 3, h, w) in [0, 1]: local maxima of the (sigma 1) smoothed luminance
        gradient whose profile rises by at least HALO_MIN_STEP and is itself almost monotone (a clean step, not a
        thin line or texture), at least HALO_RADIUS + 1 px from the border; HALO_POINTS of them at most, evenly
        spaced in the order of the image."""
        lum = luminance(photo)
        g = torch.exp(-torch.arange(-2, 3, dtype=torch.float32) ** 2 / 2)
        g = g / g.sum()
        smooth = torch.nn.functional.conv2d(lum[None, None], g.view(1, 1, 1, 5), padding=(0, 2))
        smooth = torch.nn.functional.conv2d(smooth, g.view(1, 1, 5, 1), padding=(2, 0))
        gy, gx = torch.gradient(smooth[0, 0])
        mag = (gx ** 2 + gy ** 2).sqrt()
        peak = mag == torch.nn.functional.max_pool2d(mag[None, None], 5, 1, 2)[0, 0]
        m = HALO_RADIUS + 1
        inner = torch.zeros_like(peak)
        inner[m:-m, m:-m] = True
        ys, xs = torch.nonzero(peak & inner & (mag > HALO_MIN_STEP / 8), as_tuple=True)
        if len(ys) == 0:
            return cls(torch.zeros(0, 2), torch.zeros(0, 2), torch.zeros(0))
        points = torch.stack([ys, xs], 1).float()
        normals = torch.stack([gy[ys, xs], gx[ys, xs]], 1)
        normals = normals / normals.norm(dim=1, keepdim=True).clamp_min(1e-12)
        profile = _sample_lines(lum, points, normals)
        steps = profile[:, -HALO_RADIUS // 2:].mean(1) - profile[:, :HALO_RADIUS // 2].mean(1)
        clean = (steps >= HALO_MIN_STEP) & (_excess(profile) <= 0.3 * steps)
        points, normals, steps = points[clean], normals[clean], steps[clean]
        keep = torch.linspace(0, len(points) - 1, min(HALO_POINTS, len(points))).round().long() if len(points) else \
            torch.zeros(0, dtype=torch.long)
        return cls(points[keep], normals[keep], steps[keep])

    def score(self, output: torch.Tensor) -> float:
        """The halo score of an output (3, h, w) or (1, 3, h, w) of this photo's size; nan where the photo has fewer
        than HALO_MIN_EDGES clean edges (too few to average a texture away)."""
        if len(self.points) < HALO_MIN_EDGES:
            return float("nan")
        profile = _sample_lines(luminance(output), self.points, self.normals) / self.steps[:, None]
        return float(_excess(profile.mean(0)))


def artefacts(images: torch.Tensor, content: torch.Tensor | HaloProbe | None = None) -> dict[str, torch.Tensor]:
    """{grid, grid_any, border, halo} -> (b,) of outputs (b, 3, h, w) in [0, 1], at the size they were made; halo
    against the content photo (or its probe), nan without one."""
    probe = HaloProbe.of(content) if isinstance(content, torch.Tensor) else content
    rows = [(*grid_scores(im), border_score(im), probe.score(im) if probe is not None else float("nan"))
            for im in images]
    return {name: torch.tensor([r[k] for r in rows]) for k, name in enumerate(ARTEFACTS)}
