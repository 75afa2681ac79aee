"""The one functional core: feature statistics, AdaIN, multi-style blending, Gram matrices,
whitening/colouring and colour matching. Training, inference and optimisation all call these;
nothing else in the project recomputes them.

Letters: b - batch, c - channels, h/w - height/width, k - styles.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange

EPS = 1e-5
CHUNK = 1 << 22  # elements of the centred copy mean_std makes at a time (16 MB in float32)


def mean_std(feat: torch.Tensor, eps: float = EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel spatial mean and standard deviation.

    Two passes (the mean, then the mean square of the centred values: exact where E[x^2] - mean^2 would
    cancel), a few channels at a time so the centred copy stays under CHUNK elements. On a CPU this is ~5x
    faster than torch.var_mean's one-pass kernel (8 x 512 x 512 features, one thread: 2.7 vs 14.9 ms), which
    matters for the fast model, whose per-tap statistics at full resolution cost as much as its convs.

    Args:
        feat: features (b, c, h, w).
        eps: added to the variance before the square root.

    Returns:
        (mean, std), each (b, c), computed in float32.
    """
    if feat.dim() != 4:
        raise ValueError(f"mean_std expects (b, c, h, w) features, got shape {tuple(feat.shape)}")
    flat = rearrange(feat.float(), "b c h w -> b c (h w)").contiguous()  # channels_last: one copy, not strided math
    mean = flat.mean(-1)
    step = max(1, CHUNK // max(1, flat.shape[0] * flat.shape[-1]))  # channels per chunk
    if torch.compiler.is_exporting():  # a graph (torch.export, ONNX) takes every channel in one chunk: its h and w
        step = flat.shape[1]  # are symbolic, so a chunk count from them would be fixed at the example input's size
    parts = []
    for i in range(0, flat.shape[1], step):
        d = flat[:, i:i + step] - mean[:, i:i + step, None]
        parts.append(torch.einsum("bcn,bcn->bc", d, d) / flat.shape[-1])
    var = parts[0] if len(parts) == 1 else torch.cat(parts, 1)
    return mean, (var + eps).sqrt()


def local_mean_std(feat: torch.Tensor, window: int, eps: float = EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation in each `window` x `window` block (no overlap; a ragged edge is
    dropped): the statistics of `mean_std`, kept per place.

    Args:
        feat: features (b, c, h, w), h and w at least `window`.
        window: block side in feature pixels.
        eps: added to the variance before the square root.

    Returns:
        (mean, std), each (b, c, h // window, w // window), in float32.
    """
    if feat.dim() != 4 or min(feat.shape[-2:]) < window:
        raise ValueError(f"local_mean_std expects (b, c, h, w) features with h, w >= {window}, got {tuple(feat.shape)}")
    x = feat.float()
    mean = F.avg_pool2d(x, window)
    var = (F.avg_pool2d(x * x, window) - mean * mean).clamp_min(0)
    return mean, (var + eps).sqrt()


def instance_norm(feat: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Normalise each channel of each sample to zero mean and unit std (b, c, h, w)."""
    mean, std = mean_std(feat, eps)
    return (feat.float() - mean[..., None, None]) / std[..., None, None]


def adain(content: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Adaptive instance normalisation: give `content` the channel statistics (mean, std).

    Args:
        content: features (b, c, h, w).
        mean, std: target statistics, (b, c) or (b, c, h, w) for spatially varying targets.

    Returns:
        (b, c, h, w) float32 features whose per-channel mean/std equal the target (for constant targets).
    """
    c_mean, c_std = mean_std(content, eps)
    return adain_with_stats(content, c_mean, c_std, mean, std)


def adain_with_stats(content: torch.Tensor, c_mean: torch.Tensor, c_std: torch.Tensor, mean: torch.Tensor,
                     std: torch.Tensor) -> torch.Tensor:
    """AdaIN with the content statistics given rather than measured on `content`: normalise with
    (c_mean, c_std), then take (mean, std). Tiled processing passes whole-image statistics here, so
    every tile is normalised exactly as the untiled image would be.

    Args:
        content: features (b, c, h, w).
        c_mean, c_std: content statistics (b, c), e.g. from `mean_std` (std already includes eps).
        mean, std: target statistics, (b, c) or (b, c, h, w) for spatially varying targets.

    Returns:
        (b, c, h, w) float32 features.
    """
    if mean.dim() == 2:
        mean, std = mean[..., None, None], std[..., None, None]
    scale = std / c_std[..., None, None]  # one affine map per channel (per pixel for spatial targets):
    return torch.addcmul(mean - c_mean[..., None, None] * scale, content.float(), scale)  # one pass over content


def masked_mean_std(feat: torch.Tensor, masks: torch.Tensor, eps: float = EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of each of R (soft) regions: `mean_std` restricted to a mask.

    Args:
        feat: features (b, c, h, w).
        masks: non-negative region weights (b, r, h, w) (one-hot for hard regions); an empty region gets
            mean 0 and std sqrt(eps).
        eps: added to the variance before the square root.

    Returns:
        (mean, std), each (b, r, c), float32. One all-ones region equals `mean_std`.
    """
    if feat.dim() != 4 or masks.dim() != 4 or masks.shape[0] != feat.shape[0] or masks.shape[2:] != feat.shape[2:]:
        raise ValueError(f"masked_mean_std expects feat (b, c, h, w) and masks (b, r, h, w), got {tuple(feat.shape)} "
                         f"and {tuple(masks.shape)}")
    x, m = feat.float(), masks.to(torch.float32)
    area = m.sum((2, 3)).clamp_min(1e-12)  # (b, r)
    means, vars_ = [], []
    for r in range(m.shape[1]):  # two passes per region (stable), one region at a time (memory)
        w = m[:, r : r + 1]  # (b, 1, h, w)
        mu = (w * x).sum((2, 3)) / area[:, r : r + 1]  # (b, c)
        vars_.append((w * (x - mu[..., None, None]).square()).sum((2, 3)) / area[:, r : r + 1])
        means.append(mu)
    return torch.stack(means, 1), (torch.stack(vars_, 1) + eps).sqrt()


def region_adain(content: torch.Tensor, masks: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
                 eps: float = EPS) -> torch.Tensor:
    """AdaIN per region: each region is normalised by its own statistics and given its own target.

    Args:
        content: features (b, c, h, w).
        masks: (b, r, h, w) region weights summing to 1 over r (one-hot labels for hard regions).
        mean, std: target statistics per region, (r, c) or (b, r, c).
        eps: added to the variance of each content region.

    Returns:
        (b, c, h, w) float32; each hard region's channel mean/std equal its target. One all-ones region
        equals `adain`.
    """
    if mean.dim() == 2:
        mean, std = mean.expand(content.shape[0], -1, -1), std.expand(content.shape[0], -1, -1)
    m = masks.to(torch.float32)
    c_mean, c_std = masked_mean_std(content, m, eps)  # (b, r, c)
    to_map = lambda s: torch.einsum("brhw,brc->bchw", m, s.to(m))  # noqa: E731  per-pixel statistic
    return (content.float() - to_map(c_mean)) / to_map(c_std) * to_map(std) + to_map(mean)


def validate_weights(weights: Sequence[float] | torch.Tensor | None, k: int) -> torch.Tensor:
    """Check blend weights and normalise them to sum to one.

    Args:
        weights: k non-negative finite numbers, not all zero; None means equal weights. Any finite
            magnitudes work (1e308 and 1e308 are 0.5 and 0.5): they are scaled by their maximum before summing.
        k: number of styles.

    Returns:
        float32 tensor (k,) summing to 1.

    Raises:
        TypeError when `weights` is not a sequence of numbers (e.g. a string); ValueError naming the
        offending value otherwise.
    """
    if k < 1:
        raise ValueError("at least one style is needed")
    if weights is None:
        return torch.full((k,), 1.0 / k)
    if isinstance(weights, (str, bytes)):
        raise TypeError(f"style weights must be a sequence of {k} numbers, got {weights!r}")
    try:
        w = torch.as_tensor(weights, dtype=torch.float64).flatten()
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"style weights must be a sequence of {k} numbers, got {weights!r}") from None
    if w.numel() != k:
        raise ValueError(f"got {w.numel()} weights for {k} styles; give one weight per style")
    bad = [float(x) for x in w if not math.isfinite(float(x))]
    if bad:
        raise ValueError(f"style weights must be finite numbers, got {bad[0]}")
    if (w < 0).any():
        raise ValueError(f"style weights must be non-negative, got {float(w[w < 0][0])}")
    top = float(w.max())
    if top <= 0:
        raise ValueError("style weights are all zero; at least one must be positive")
    w = w / top  # in [0, 1] now: the sum cannot overflow even for weights near the float64 maximum
    return (w / w.sum()).float()


def blend_stats(
    means: torch.Tensor, stds: torch.Tensor, weights: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Blend K style statistics into one target, in one pass.

    AdaIN is affine in (mean, std), so the weighted sum of K AdaIN outputs equals one AdaIN with the
    weighted mean and std: sum_k w_k (s_k n + m_k) = n sum_k w_k s_k + sum_k w_k m_k.

    Args:
        means, stds: (k, c) or (k, b, c) statistics of K styles.
        weights: (k,) normalised weights, or (k, b, 1, h, w) spatial weights that sum to 1 over k.

    Returns:
        (mean, std): (c,)/(b, c) for constant weights, or (b, c, h, w) for spatial weights.
    """
    return blend(means, weights), blend(stds, weights)


def blend(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted sum of K per-channel values (k, c) or (k, b, c): (c,)/(b, c) for weights (k,), (b, c, h, w) for
    spatial weights (k, b, 1, h, w)."""
    if weights.dim() == 1:
        return (weights.to(values).view(-1, *([1] * (values.dim() - 1))) * values).sum(0)
    if values.dim() == 2:  # (k, c) -> (k, 1, c)
        values = values[:, None]
    return (weights.to(values) * values[..., None, None]).sum(0)


def check_alpha(alpha: float, name: str = "alpha") -> float:
    """The one check of the content/style trade-off: `alpha` as a float in [0, 1] (NaN refused).

    Args:
        alpha: the number to check.
        name: what to call it in the message ('--alpha' on the command line).

    Returns:
        float(alpha).
    """
    a = float(alpha)
    if not 0.0 <= a <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {alpha}")
    return a


def mix(
    content: torch.Tensor,
    means: torch.Tensor,
    stds: torch.Tensor,
    weights: torch.Tensor,
    alpha: float | torch.Tensor = 1.0,
    content_stats: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """The mixing layer: AdaIN of `content` towards the weighted blend of K styles, then alpha.

    Args:
        content: (b, c, h, w) content features.
        means, stds: (k, c) or (k, b, c) style statistics.
        weights: (k,) normalised weights or (k, b, 1, h, w) spatial weights (see blend_stats).
        alpha: 0 returns the content features, 1 the fully stylised ones. A 0-d tensor is a graph input (ONNX
            export): it is neither range-checked nor compared with 1 here, as either would be a branch on data
            that a traced graph fixes at its example value; callers check it.
        content_stats: (mean, std), each (b, c), to normalise with instead of content's own statistics
            (whole-image statistics when `content` is one tile of a larger image).

    Returns:
        (b, c, h, w) float32 target features.
    """
    traced = isinstance(alpha, torch.Tensor)
    if not traced:
        check_alpha(alpha)
    mean, std = blend_stats(means, stds, weights)
    if mean.dim() == 1:
        mean, std = mean.expand(content.shape[0], -1), std.expand(content.shape[0], -1)
    target = adain(content, mean, std) if content_stats is None else adain_with_stats(content, *content_stats, mean, std)
    return target if not traced and alpha == 1.0 else alpha * target + (1.0 - alpha) * content.float()


def gram(feat: torch.Tensor) -> torch.Tensor:
    """Gram matrix normalised by the number of entries: (b, c, h, w) -> (b, c, c)."""
    b, c, h, w = feat.shape
    flat = rearrange(feat.float(), "b c h w -> b c (h w)")
    return flat @ flat.transpose(1, 2) / (c * h * w)


def _cov_sqrt(x: torch.Tensor, power: float, eps: float) -> torch.Tensor:
    """Symmetric matrix power of the covariance of x (c, n): (c, c)."""
    cov = x @ x.T / max(x.shape[1] - 1, 1) + eps * torch.eye(x.shape[0], dtype=x.dtype, device=x.device)
    evals, evecs = torch.linalg.eigh(cov)
    return evecs @ torch.diag(evals.clamp_min(eps).pow(power)) @ evecs.T


def whiten_color(content: torch.Tensor, style: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Whitening-colouring transform of one sample: content (c, n) takes the style's (c, m) covariance
    and mean. Computed in float64 for a stable eigendecomposition.

    Returns:
        (c, n) tensor in content's dtype.
    """
    xc, xs = content.double(), style.double()
    mc, ms = xc.mean(1, keepdim=True), xs.mean(1, keepdim=True)
    white = _cov_sqrt(xc - mc, -0.5, eps) @ (xc - mc)
    return (_cov_sqrt(xs - ms, 0.5, eps) @ white + ms).to(content.dtype)


def match_color(image: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Give `image` (b, 3, h, w) the colour mean and covariance of `reference` (b, 3, h', w'),
    both RGB in [0, 1]. Used for colour preservation (reference = the content photo)."""
    out = []
    for img, ref in zip(image, reference):
        flat = whiten_color(rearrange(img, "c h w -> c (h w)"), rearrange(ref, "c h w -> c (h w)"))
        out.append(rearrange(flat, "c (h w) -> c h w", h=img.shape[1]))
    return torch.stack(out).clamp(0, 1)


# RGB -> YIQ (luma, then the two chroma axes), NTSC
YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def luma(image: torch.Tensor) -> torch.Tensor:
    """RGB (..., 3, h, w) -> luma (..., 1, h, w): YIQ's Y (ITU-R BT.601 weights)."""
    return torch.einsum("j,...jhw->...hw", YIQ[0].to(image), image).unsqueeze(-3)


def keep_luminance(stylised: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Luminance-only transfer: the luminance (Y) of `stylised` with the chroma (IQ) of `content`,
    both (b, 3, h, w) RGB in [0, 1] of the same size."""
    m = YIQ.to(stylised)
    ys = torch.einsum("ij,bjhw->bihw", m, stylised.float())
    yc = torch.einsum("ij,bjhw->bihw", m, content.float())
    yiq = torch.cat([ys[:, :1], yc[:, 1:]], dim=1)
    return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(m), yiq).clamp(0, 1)


def match_histogram(image: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per-channel histogram matching: each channel of `image` (b, c, h, w) takes the value distribution of
    the same channel of `reference` (b, c, h', w') by CDF matching. Each pixel's mid-rank quantile in its
    own channel (equal values share one) is looked up, linearly interpolated, in the reference's sorted
    values; the map is monotone, so the image's structure stays and only its tones move.

    Returns:
        (b, c, h, w) float32; its per-channel quantiles equal the reference's up to the interpolation.
    """
    if image.dim() != 4 or reference.dim() != 4 or image.shape[:2] != reference.shape[:2]:
        raise ValueError(f"match_histogram expects (b, c, h, w) images with equal b and c, got {tuple(image.shape)} "
                         f"and {tuple(reference.shape)}")
    x = rearrange(image.float(), "b c h w -> (b c) (h w)")
    ys = rearrange(reference.float(), "b c h w -> (b c) (h w)").sort(-1).values
    xs = x.sort(-1).values
    n, m = x.shape[-1], ys.shape[-1]
    rank = (torch.searchsorted(xs, x) + torch.searchsorted(xs, x, right=True)).double() / 2  # mid-rank, ties equal
    pos = ((rank / n) * m - 0.5).clamp(0, m - 1)  # quantile (i + 0.5) / n -> index in the sorted reference
    i0 = pos.floor().long()
    i1 = (i0 + 1).clamp(max=m - 1)
    frac = (pos - i0).float()
    y0 = ys.gather(-1, i0)
    out = y0 + (ys.gather(-1, i1) - y0) * frac  # exact where the two neighbours are equal
    return rearrange(out, "(b c) (h w) -> b c h w", b=image.shape[0], h=image.shape[2])


PRESERVE_COLOR = ("luminance", "match", "histogram")


def preserve_color(image: torch.Tensor, content: torch.Tensor, mode: str | None) -> torch.Tensor:
    """Colour preservation of stylised images (b, 3, h, w) against the content (b, 3, h, w), both RGB [0, 1].

    Args:
        mode: None (unchanged), 'luminance' (the content's chroma, `keep_luminance`), 'match' (the content's
            colour mean and covariance, `match_color`) or 'histogram' (the content's per-channel histograms,
            `match_histogram`).
    """
    if check_preserve_color(mode) is None:
        return image
    if mode == "luminance":
        return keep_luminance(image, content)
    if mode == "match":
        return match_color(image, content)
    return match_histogram(image, content).clamp(0, 1)


def check_preserve_color(mode: str | None) -> str | None:
    """The one check of a colour preservation mode: `mode` when it is None or one of PRESERVE_COLOR, else
    ValueError naming them."""
    if mode is not None and mode not in PRESERVE_COLOR:
        raise ValueError(f"preserve_color must be None or one of {PRESERVE_COLOR}, got {mode!r}")
    return mode


def resize_weights(weights: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize spatial weights (k, b, 1, h, w) to `size` and renormalise over k."""
    k, b = weights.shape[:2]
    flat = F.interpolate(rearrange(weights.float(), "k b 1 h w -> (k b) 1 h w"), size=size, mode="bilinear",
                         align_corners=False)
    w = rearrange(flat, "(k b) 1 h w -> k b 1 h w", k=k)
    return w / w.sum(0, keepdim=True).clamp_min(1e-8)
