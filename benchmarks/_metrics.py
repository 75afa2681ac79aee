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
ARTEFACTS = ("grid", "grid_any", "border")
GRID_PERIODS = (2, 4, 8, 16)

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


def artefacts(images: torch.Tensor) -> dict[str, torch.Tensor]:
    """{grid, grid_any, border} -> (b,) of outputs (b, 3, h, w) in [0, 1], at the size they were made."""
    rows = [(*grid_scores(im), border_score(im)) for im in images]
    return {name: torch.tensor([r[k] for r in rows]) for k, name in enumerate(ARTEFACTS)}
