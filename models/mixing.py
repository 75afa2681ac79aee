"""Mixing over the functional core: style codes, and the blend of K of them that the AdaIN family shares.

A `StyleCode` is a style as numbers: per-tap channel mean and std. K codes and K weights blend into
one target statistic in one pass (`functional.mix`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from . import functional as Fn
from .contract import per_image_alpha


@dataclass
class StyleCode:
    """Per-tap channel statistics of one style: {tap: (c,)} means and stds (float32)."""

    mean: dict[str, torch.Tensor]
    std: dict[str, torch.Tensor]

    @property
    def taps(self) -> tuple[str, ...]:
        return tuple(self.mean)

    def to(self, device: torch.device | str) -> "StyleCode":
        return StyleCode({t: v.to(device) for t, v in self.mean.items()}, {t: v.to(device) for t, v in self.std.items()})

    def cpu_copy(self) -> "StyleCode":
        """A float32 CPU copy, detached (usable outside the inference mode it was made in)."""
        return StyleCode({t: v.detach().float().cpu().clone() for t, v in self.mean.items()},
                         {t: v.detach().float().cpu().clone() for t, v in self.std.items()})

    @staticmethod
    def average(codes: Sequence["StyleCode"], weights: Sequence[float] | None = None) -> "StyleCode":
        """One code whose statistics are the weighted average of several (e.g. several images of one artist)."""
        w = Fn.validate_weights(weights, len(codes))
        means, stds = stack_codes(codes)
        return StyleCode(
            {t: Fn.blend_stats(means[t], stds[t], w)[0] for t in means},
            {t: Fn.blend_stats(means[t], stds[t], w)[1] for t in means},
        )


def stack_codes(codes: Sequence[StyleCode]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """K codes -> ({tap: (k, c)} means, {tap: (k, c)} stds). All codes must share taps."""
    taps = codes[0].taps
    for c in codes[1:]:
        if c.taps != taps:
            raise ValueError(f"style codes have different taps: {taps} vs {c.taps}")
    return (
        {t: torch.stack([c.mean[t] for c in codes]) for t in taps},
        {t: torch.stack([c.std[t] for c in codes]) for t in taps},
    )


class StatisticsMixing:
    """The AdaIN family's half of `contract.StatisticsModel`: style codes, their checks, the blend of K codes at
    every tap the decoder reads, and stylisation. A model inherits it and provides

        encode(images) -> {tap: (b, c, h, w)}     features at every tap of `style_taps` and `mix_taps`
        decode(targets) -> (b, 3, h, w)           mixed features at `mix_taps` -> RGB, not clamped
        mix_taps, style_taps                      taps the decoder reads (deepest first) / a StyleCode holds
        hint                                      its StyleHint (models/hint.py), or None
        tap_channels(tap) -> int

    so that blends, masks, alpha and whole-image statistics (tiling) behave exactly alike in every such model
    (models/adain.py, models/fast.py).
    """

    style_taps: tuple[str, ...]
    mix_taps: tuple[str, ...]
    hint: nn.Module | None  # set by the model (an annotation only: a class default would hide the submodule)
    style_encoder_request: tuple[str, tuple[str, ...]] | None = None  # a second encoder a loader must attach
    # (attach_style_encoder) before style codes can be made: (preset or dir, taps); adain-fast's style hint

    @property
    def code_taps(self) -> tuple[str, ...]:
        """Taps of a StyleCode that mixing reads (e.g. the inputs of an ONNX graph): the decoder's in the code's
        order, then any other tap the style hint reads, in its order."""
        own = tuple(t for t in self.style_taps if t in self.mix_taps)
        return (*own, *(t for t in (self.hint.taps if self.hint is not None else ()) if t not in own))

    def encode_content(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The contract's content encoding: the encoder's features {tap: (b, c, h, w)}."""
        return self.encode(images)

    def style_code(self, image: torch.Tensor) -> list[StyleCode]:
        """One StyleCode per image of the batch (b, 3, h, w): channel mean/std at every style tap."""
        feats = self.encode(image)
        stats = {t: Fn.mean_std(feats[t]) for t in self.style_taps}
        return [StyleCode({t: m[i] for t, (m, _) in stats.items()}, {t: s[i] for t, (_, s) in stats.items()})
                for i in range(image.shape[0])]

    def check_codes(self, codes: Sequence[object]) -> None:
        """Every code must be a StyleCode with this model's `code_taps` and channel counts."""
        for i, code in enumerate(codes):
            if not isinstance(code, StyleCode):
                raise ValueError(f"style {i + 1} is a {type(code).__name__}; this {type(self).__name__} needs style "
                                 f"images or StyleCodes (per-tap statistics)")
            for tap in (*self.mix_taps, *(t for t in self.code_taps if t not in self.mix_taps)):  # deepest first
                c = self.tap_channels(tap)
                if tap not in code.mean:
                    raise ValueError(f"style {i + 1} has no statistics for {tap} (it has {list(code.taps)}); "
                                     f"re-encode it with this model")
                if code.mean[tap].numel() != c:
                    raise ValueError(f"style {i + 1} has {code.mean[tap].numel()} channels at {tap}, the model {c}; "
                                     f"it was encoded with a different encoder")

    def mix(self, feats: dict[str, torch.Tensor], codes: Sequence[StyleCode], weights: torch.Tensor,
            alpha: float = 1.0, content_stats: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None
            ) -> dict[str, torch.Tensor]:
        """AdaIN targets for every tap the decoder reads.

        Args:
            feats: content features {tap: (b, c, h, w)}.
            codes: K style codes (shared by the batch).
            weights: (k,) normalised weights or (k, b, 1, h, w) spatial weights (masks).
            alpha: content/style trade-off in [0, 1].
            content_stats: {tap: (mean, std)} to normalise with instead of the features' own statistics
                (whole-image statistics for a tile; see inference/tiling.py).
        """
        return self.mix_stats(feats, *stack_codes(codes), weights, alpha, content_stats)

    def mix_stats(self, feats: dict[str, torch.Tensor], means: dict[str, torch.Tensor], stds: dict[str, torch.Tensor],
                  weights: torch.Tensor, alpha: float | torch.Tensor = 1.0,
                  content_stats: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None) -> dict[str, torch.Tensor]:
        """`mix` with the K codes already stacked ({tap: (k, c)} means and stds, as `stack_codes` returns): what a
        traced graph with K as an input dimension calls (inference/onnx_export.py), where a list of K codes
        cannot exist. A 0-d tensor `alpha` is not range-checked (see `functional.mix`). A style hint corrects each
        code before the blend."""
        if self.hint is not None:
            means, stds = self.hint(means, stds)
        out = {}
        for tap in self.mix_taps:
            w = weights if weights.dim() == 1 else Fn.resize_weights(weights, feats[tap].shape[-2:])
            stats = None if content_stats is None else content_stats[tap]
            out[tap] = Fn.mix(feats[tap], means[tap].to(feats[tap].device), stds[tap].to(feats[tap].device), w, alpha,
                              stats)
        return out

    def stylize(self, content: dict[str, torch.Tensor], codes: Sequence[StyleCode], weights: torch.Tensor,
                alpha: float | torch.Tensor = 1.0,
                content_stats: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None) -> torch.Tensor:
        """The contract's stylisation: mix, then decode.

        Args:
            content: `encode_content` features {tap: (b, c, h, w)}.
            codes: K StyleCodes.
            weights: (k,), (k, n) one blend per output image (features of batch 1), or (k, b, 1, h, w).
            alpha: content/style trade-off in [0, 1]; one per image with (k, n) weights.
            content_stats: whole-image content statistics {tap: (mean, std)} (tiling).

        Returns:
            (b or n, 3, h, w) in [0, 1].
        """
        if weights.dim() != 2:
            return self.decode(self.mix(content, codes, weights, float(alpha), content_stats)).clamp(0, 1)
        alphas = per_image_alpha(alpha, weights.shape[1])
        cells = [self.mix(content, codes, w, float(a), content_stats) for w, a in zip(weights.T, alphas)]
        return self.decode({t: torch.cat([c[t] for c in cells]) for t in cells[0]}).clamp(0, 1)

    def forward(self, content: torch.Tensor, codes: Sequence[StyleCode], weights: Sequence[float] | None = None,
                alpha: float = 1.0) -> torch.Tensor:
        """content (b, 3, h, w) with h, w multiples of `stride` -> stylised (b, 3, h, w) in [0, 1]."""
        w = Fn.validate_weights(weights, len(codes))
        return self.stylize(self.encode_content(content), codes, w, alpha)

