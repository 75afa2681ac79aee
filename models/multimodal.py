"""Multi-modal style transfer: a style is several modes, each content region takes the mode that fits it.

After "Multimodal Style Transfer via Graph Cuts" (Zhang et al., ICCV 2019):

1. Modes. The style image's features at the label tap (relu4_1) are clustered into K modes with
   k-means (k-means++ init, seeded). Every other tap the decoder reads gets the same partition,
   nearest-upsampled, and per-mode channel mean/std are taken there (`StyleModes`).
2. Assignment. Each content pixel at the label tap gets a mode by minimising
   sum_p D(p, l_p) + smoothness * sum_{p~q} [l_p != l_q] over 4-neighbours (Potts), solved with
   alpha-expansion (PyMaxflow's `fastmin.aexpansion_grid`). D is the squared distance between the
   pixel's matching feature and the mode centre, divided by its mean over pixels and modes, so
   `smoothness` is in units of the average data cost whatever the encoder's activation scale.
3. Matching. Per tap, every content region is normalised by its own statistics and given its mode's
   (`functional.region_adain`), or whitened-coloured towards the mode's pixels (`transform='wct'`);
   then `alpha` as usual. At the skip taps the content regions are the label-tap one-hot maps resized
   bilinearly (`edges='soft'`, default: boundaries blend over one relu4_1 cell, which hides the 8-px
   label grid the full-resolution skips otherwise print) or nearest (`edges='hard'`).

Matching features: both images' features are instance-normalised (per image) and scaled to unit
length per pixel before clustering and assignment. AdaIN already moves the global statistics; modes
should say *where in its own image's distribution* a pixel lies (sky vs figure), not which image it
came from, and unit length makes the distance independent of activation scale.

Several styles (blending): each style is clustered into its own K modes and the content is assigned to
each style's modes separately (one graph cut per style). The target is the weighted sum over styles of
the per-style region-matched features: with one mode per style this is exactly the plain AdaIN blend
(AdaIN is affine in the statistics), weights (1, 0) give the first style alone, and spatial weights
(masks) work unchanged. Pooling all styles' modes into one label set with the weights as priors was
rejected: a region would take one style entirely (a patchwork, not a blend) and weights would no longer
mean what they mean everywhere else.

K = 1 skips clustering and the graph cut and is bit-identical to `AdaINModel.mix`.

Letters: b - batch, c - channels, h/w - height/width, k - modes, s - styles, n - pixels.
"""
from __future__ import annotations

import colorsys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

import torch
import torch.nn.functional as F
from einops import rearrange

from . import functional as Fn

if TYPE_CHECKING:
    from .contract import StatisticsModel

MAX_MODES = 32
TRANSFORMS = ("adain", "wct")
EDGES = ("soft", "hard")
INSTALL_HINT = "pip install PyMaxflow (a dependency of stylemix: reinstall it, e.g. pip install -e .)"


@dataclass
class MultimodalConfig:
    """How styles split into modes and how content is assigned to them."""

    modes: int = 3  # K modes per style image; 1 = plain AdaIN (no clustering, no graph cut)
    smoothness: float = 0.3  # Potts weight per neighbour pair, in units of the mean data cost; 0 = nearest mode
    seed: int = 0  # k-means++ seed: the same seed gives the same modes and output
    kmeans_iters: int = 50  # Lloyd iterations at most (stops earlier when assignments settle)
    label_tap: str = "relu4_1"  # tap whose features are clustered and assigned
    transform: str = "adain"  # per-region matching: 'adain' (mean/std) or 'wct' (whitening-colouring)
    edges: str = "soft"  # content regions at skip taps: 'hard' (nearest) or 'soft' (bilinear); wct is always hard
    max_cycles: int | None = None  # alpha-expansion cycles at most (None: until convergence)

    def __post_init__(self) -> None:
        if isinstance(self.modes, bool) or not isinstance(self.modes, int) or not 1 <= self.modes <= MAX_MODES:
            raise ValueError(f"modes must be an integer from 1 to {MAX_MODES}, got {self.modes!r}")
        if not (self.smoothness >= 0 and self.smoothness < float("inf")):
            raise ValueError(f"smoothness must be a finite number >= 0, got {self.smoothness}")
        if self.transform not in TRANSFORMS:
            raise ValueError(f"transform must be one of {TRANSFORMS}, got {self.transform!r}")
        if self.edges not in EDGES:
            raise ValueError(f"edges must be one of {EDGES}, got {self.edges!r}")
        if self.kmeans_iters < 1:
            raise ValueError(f"kmeans_iters must be >= 1, got {self.kmeans_iters}")


@dataclass
class StyleModes:
    """K modes of one style image."""

    centres: torch.Tensor  # (k, c) k-means centres of the unit matching features at the label tap
    mean: dict[str, torch.Tensor]  # {tap: (k, c)} channel mean of the style pixels of each mode
    std: dict[str, torch.Tensor]  # {tap: (k, c)}
    labels: dict[str, torch.Tensor]  # {tap: (h, w)} int64 mode of each style pixel at that tap
    feats: dict[str, torch.Tensor] = field(default_factory=dict)  # {tap: (c, h, w)}, kept for 'wct' only

    @property
    def k(self) -> int:
        return self.centres.shape[0]


def require_maxflow():
    """Import PyMaxflow's fastmin, or raise ImportError saying how to install it."""
    try:
        from maxflow import fastmin
    except ImportError:
        raise ImportError(f"multi-modal style transfer (modes > 1) needs PyMaxflow: {INSTALL_HINT}") from None
    return fastmin


# --- clustering -------------------------------------------------------------------------------------

def _sq_dist(x: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances (n, c) x (k, c) -> (n, k), without an (n, k, c) temporary."""
    d = x.square().sum(1, keepdim=True) - 2.0 * x @ centres.T + centres.square().sum(1)
    return d.clamp_min(0)


def kmeans(x: torch.Tensor, k: int, *, seed: int = 0, iters: int = 50) -> tuple[torch.Tensor, torch.Tensor]:
    """k-means with k-means++ initialisation, seeded (same seed and data -> same result).

    Args:
        x: points (n, c), float.
        k: number of clusters, 1 <= k <= n.
        seed: seed of the initialisation.
        iters: Lloyd iterations at most.

    Returns:
        (centres (k, c), labels (n,) int64); every cluster is non-empty (an emptied cluster is re-seeded
        with the point farthest from its centre).
    """
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"cannot make {k} modes from {n} feature pixels; use fewer modes or a larger style image")
    x = x.float()
    gen = torch.Generator().manual_seed(int(seed))
    idx = [int(torch.randint(n, (1,), generator=gen))]
    d2 = (x - x[idx[-1]]).square().sum(1)  # exact zero at chosen points: never drawn twice
    for _ in range(1, k):  # k-means++: next centre drawn with probability proportional to D^2
        p = d2.double().cpu()
        if float(p.sum()) > 0:
            i = int(torch.multinomial(p, 1, generator=gen))
        else:  # all points coincide with chosen centres
            i = int(torch.randint(n, (1,), generator=gen))
        idx.append(i)
        d2 = torch.minimum(d2, (x - x[i]).square().sum(1))
    centres = x[idx].clone()
    labels = _sq_dist(x, centres).argmin(1)
    for _ in range(iters):
        centres, labels = _update(x, centres, labels, k)
        new = _sq_dist(x, centres).argmin(1)
        if torch.equal(new, labels):
            break
        labels = new
    return _update(x, centres, labels, k)


def _update(x: torch.Tensor, centres: torch.Tensor, labels: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One Lloyd centre update; an empty cluster first takes the point farthest from its own centre
    (from a cluster with more than one point)."""
    labels, centres = labels.clone(), centres.clone()
    counts = torch.bincount(labels, minlength=k)
    for j in (counts == 0).nonzero().flatten().tolist():
        d = _sq_dist(x, centres).gather(1, labels[:, None])[:, 0]
        d[counts[labels] <= 1] = -1.0
        far = int(d.argmax())
        counts[labels[far]] -= 1
        labels[far], counts[j], centres[j] = j, 1, x[far]
    centres = torch.zeros_like(centres).index_add_(0, labels, x) / counts[:, None].to(x)
    return centres, labels
    return centres, labels


def matching_features(feat: torch.Tensor) -> torch.Tensor:
    """Features used to compare pixels with modes: instance-normalised, unit length per pixel.

    Args:
        feat: (b, c, h, w) features at the label tap.

    Returns:
        (b, h, w, c) float32.
    """
    return F.normalize(rearrange(Fn.instance_norm(feat), "b c h w -> b h w c"), dim=-1)


def _resize_labels(labels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest resize of integer labels (..., h, w) -> (..., H, W)."""
    if tuple(labels.shape[-2:]) == tuple(size):
        return labels
    lead = labels.shape[:-2]
    flat = labels.reshape(-1, 1, *labels.shape[-2:]).float()
    return F.interpolate(flat, size=tuple(size), mode="nearest").long().reshape(*lead, *size)


def _one_hot(labels: torch.Tensor, k: int) -> torch.Tensor:
    """(b, h, w) int labels -> (b, k, h, w) float masks."""
    return rearrange(F.one_hot(labels, k).float(), "b h w k -> b k h w")


def style_modes(feats: dict[str, torch.Tensor], taps: Sequence[str], config: MultimodalConfig) -> StyleModes:
    """Split one style image into `config.modes` modes.

    Args:
        feats: the style's features {tap: (1, c, h, w)}; must hold `config.label_tap` and `taps`.
        taps: taps whose per-mode statistics are needed (the decoder's mix taps).
        config: modes, seed, k-means iterations, label tap, transform.

    Returns:
        StyleModes with per-tap per-mode statistics (and features when `config.transform == 'wct'`).
    """
    lt = config.label_tap
    if lt not in feats:
        raise ValueError(f"style features lack the label tap {lt!r}; have {sorted(feats)}")
    if feats[lt].shape[0] != 1:
        raise ValueError(f"style_modes takes one style image at a time, got a batch of {feats[lt].shape[0]}")
    u = rearrange(matching_features(feats[lt]), "1 h w c -> (h w) c")
    centres, lab = kmeans(u, config.modes, seed=config.seed, iters=config.kmeans_iters)
    lab = lab.reshape(feats[lt].shape[-2:])
    mean, std, labels, kept = {}, {}, {}, {}
    for tap in dict.fromkeys((lt, *taps)):
        f = feats[tap]
        labels[tap] = _resize_labels(lab, f.shape[-2:])
        m, s = Fn.masked_mean_std(f, _one_hot(labels[tap][None], config.modes))
        present = torch.bincount(labels[tap].flatten(), minlength=config.modes) > 0
        if not bool(present.all()):  # a mode lost in a downsampled tap: fall back to the global statistics
            gm, gs = Fn.mean_std(f)
            m[0, ~present], s[0, ~present] = gm[0], gs[0]
        mean[tap], std[tap] = m[0], s[0]
        if config.transform == "wct":
            kept[tap] = f[0].float()
    return StyleModes(centres, mean, std, labels, kept)


# --- assignment -------------------------------------------------------------------------------------

def data_cost(feat: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Normalised data term: squared distance of each pixel's matching feature to each mode centre,
    divided by its mean (so the mean cost is 1).

    Args:
        feat: content features (b, c, h, w) at the label tap.
        centres: (k, c) mode centres.

    Returns:
        (b, h, w, k) float32.
    """
    u = matching_features(feat)
    b, h, w, c = u.shape
    d = _sq_dist(rearrange(u, "b h w c -> (b h w) c"), centres.to(u))
    d = rearrange(d, "(b h w) k -> b h w k", b=b, h=h)
    return d / d.mean((1, 2, 3), keepdim=True).clamp_min(1e-12)


def assign(cost: torch.Tensor, smoothness: float, max_cycles: int | None = None) -> torch.Tensor:
    """Labels minimising data cost + Potts smoothness over 4-neighbours (alpha-expansion).

    Args:
        cost: (b, h, w, k) data term.
        smoothness: Potts weight per neighbour pair with different labels; 0 = per-pixel argmin.
        max_cycles: alpha-expansion cycles at most (None: until convergence).

    Returns:
        (b, h, w) int64 labels in [0, k).
    """
    k = cost.shape[-1]
    if k == 1 or smoothness == 0:
        return cost.argmin(-1)
    fastmin = require_maxflow()
    potts = smoothness * (1.0 - torch.eye(k, dtype=torch.float64)).numpy()
    out = [torch.from_numpy(fastmin.aexpansion_grid(c.double().cpu().numpy(), potts, max_cycles=max_cycles)
                            .astype("int64")) for c in cost]
    return torch.stack(out).to(cost.device)


# --- matching ---------------------------------------------------------------------------------------

def _region_masks(labels: torch.Tensor, k: int, size: tuple[int, int], edges: str) -> torch.Tensor:
    """Label-tap labels (b, h, w) -> region masks (b, k, H, W) at a tap's size: one-hot, nearest-resized
    ('hard'), or the one-hot maps bilinearly resized ('soft': still a partition of unity, but region
    boundaries blend over one label cell instead of stepping, which hides the label grid at the skips)."""
    if edges == "hard" or tuple(labels.shape[-2:]) == tuple(size):
        return _one_hot(_resize_labels(labels, size), k)
    return F.interpolate(_one_hot(labels, k), size=tuple(size), mode="bilinear", align_corners=False)


def _wct_regions(content: torch.Tensor, labels: torch.Tensor, modes: StyleModes, tap: str) -> torch.Tensor:
    """Per-region whitening-colouring of content (b, c, h, w) towards each mode's style pixels."""
    out = content.float().clone()
    style = rearrange(modes.feats[tap].to(content.device), "c h w -> c (h w)")
    style_lab = modes.labels[tap].to(content.device).flatten()
    for i in range(content.shape[0]):
        for j in labels[i].unique().tolist():
            region = labels[i] == j
            out[i][:, region] = Fn.whiten_color(content[i][:, region].float(), style[:, style_lab == j].float())
    return out


def mode_targets(feats: dict[str, torch.Tensor], styles: Sequence[StyleModes], weights: torch.Tensor,
                 taps: Sequence[str], config: MultimodalConfig, alpha: float = 1.0
                 ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Mixed target features for every decoder tap, each content region matched to its mode.

    Args:
        feats: content features {tap: (b, c, h, w)}.
        styles: S StyleModes (same K), one per style image.
        weights: (s,) normalised weights or (s, b, 1, h, w) spatial weights summing to 1 over s.
        taps: taps to produce (the decoder's mix taps).
        config: smoothness, transform, label tap, max_cycles.
        alpha: content/style trade-off in [0, 1].

    Returns:
        ({tap: (b, c, h, w) float32 targets}, labels (s, b, h, w) int64 at the label tap).
    """
    Fn.check_alpha(alpha)
    if len(styles) != weights.shape[0]:
        raise ValueError(f"got {weights.shape[0]} weights for {len(styles)} styles; give one weight per style")
    if len({m.k for m in styles}) != 1:
        raise ValueError(f"all styles need the same number of modes, got {[m.k for m in styles]}")
    lt = config.label_tap
    labels = torch.stack([assign(data_cost(feats[lt], m.centres), config.smoothness, config.max_cycles)
                          for m in styles])  # (s, b, h, w)
    k, out = styles[0].k, {}
    for tap in taps:
        x = feats[tap]
        w = weights if weights.dim() == 1 else Fn.resize_weights(weights, x.shape[-2:])
        target = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
        for si, m in enumerate(styles):
            if w.dim() == 1 and float(w[si]) == 0.0:
                continue
            if config.transform == "wct":
                y = _wct_regions(x, _resize_labels(labels[si], x.shape[-2:]), m, tap)  # hard regions
            else:
                y = Fn.region_adain(x, _region_masks(labels[si], k, x.shape[-2:], config.edges),
                                    m.mean[tap].to(x.device), m.std[tap].to(x.device))
            target = target + (w[si].to(x.device) * y if w.dim() > 1 else float(w[si]) * y)
        out[tap] = target if alpha == 1.0 else alpha * target + (1.0 - alpha) * x.float()
    return out, labels


def stylize_modes(model: "StatisticsModel", content: torch.Tensor, styles: Sequence[torch.Tensor],
                  weights: torch.Tensor, config: MultimodalConfig, alpha: float = 1.0
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode, split styles into modes, match regions, decode.

    Args:
        model: a model with capabilities.modes (contract.StatisticsModel: encode_content, mix_taps, decode).
        content: (b, 3, h, w) RGB [0, 1], h and w multiples of model.stride.
        styles: S style images, each (1, 3, h_s, w_s) RGB [0, 1].
        weights: (s,) normalised weights or (s, b, 1, h, w) spatial weights.
        config: modes, smoothness, seed, ...
        alpha: content/style trade-off in [0, 1].

    Returns:
        (stylised (b, 3, h, w) in [0, 1], labels (s, b, h/8, w/8) at the label tap; all zeros for K = 1).
    """
    feats = model.encode_content(content)
    if config.modes == 1:  # plain AdaIN, exactly: no clustering, no graph cut
        codes = [model.style_code(s)[0] for s in styles]
        lt = feats[config.label_tap]
        labels = torch.zeros(len(styles), lt.shape[0], *lt.shape[-2:], dtype=torch.long, device=lt.device)
        return model.stylize(feats, codes, weights, alpha), labels
    require_maxflow()
    style_feats = [model.encode_content(s) for s in styles]
    modes = [style_modes(f, model.mix_taps, config) for f in style_feats]
    targets, labels = mode_targets(feats, modes, weights, model.mix_taps, config, alpha)
    return model.decode(targets).clamp(0, 1), labels


# --- label maps -------------------------------------------------------------------------------------

def label_palette(k: int) -> torch.Tensor:
    """k distinct RGB colours (k, 3) in [0, 1]: hues spaced by the golden angle."""
    return torch.tensor([colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.65, 0.95) for i in range(k)])


def label_colors(labels: torch.Tensor, k: int, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Colour a label map, one colour per mode.

    Args:
        labels: (h, w) or (b, h, w) int labels in [0, k).
        k: number of modes (fixes the palette).
        size: optional output (h, w); labels are resized nearest.

    Returns:
        (b, 3, h, w) RGB in [0, 1].
    """
    if labels.dim() == 2:
        labels = labels[None]
    if size is not None:
        labels = _resize_labels(labels, size)
    return rearrange(label_palette(k).to(labels.device)[labels.long()], "b h w c -> b c h w")
