"""The contract every style model offers: all that `Stylizer`, grids, tiling, the CLI and the benchmarks
may call on a model. What a model can do beyond it is declared as data (`Capabilities`), never
discovered by probing for methods.

    model.stride                         input sides are padded to multiples of this
    model.capabilities                   Capabilities(...), a class attribute
    model.style_code(images)             one reusable code per style image (b, 3, h, w) -> [code] * b
    model.check_codes(codes)             ValueError naming the first code this model cannot use
    model.encode_content(images)         the content's encoding, reused by any number of stylisations
    model.stylize(content, codes, weights, alpha)   -> images in [0, 1]

`weights` are normalised blend weights of the K codes, in one of three shapes:
    (k,)               one blend for the whole batch
    (k, n)             one blend per output image: n images from one encoded content (grids batch cells so)
    (k, b, 1, h, w)    spatial weights (masks), summing to 1 over k at every pixel; resized to each feature map
`alpha` is a float in [0, 1] (0: the content, 1: fully stylised), or one per image with (k, n) weights.

Models that mix per-tap feature statistics (the AdaIN family) also satisfy `StatisticsModel`; the
capabilities `tiling`, `modes` and `style_bank` say a model does, and only then do callers use it so.

Adding a model = one file under models/ implementing `StyleModel`, registered with `registry.register_model`
(its entry holds the message for missing weights and the names of its training recipes; a built-in model is
also listed in `registry._BUILTIN`); nothing in inference/ or training/cli.py changes.

Letters: k - styles, n - output images, b - batch, h/w - height/width.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar, Protocol, Sequence, runtime_checkable

import torch

from .functional import check_alpha


@dataclass(frozen=True)
class Capabilities:
    """Optional features of a style model, as data. Every field defaults to False (not offered)."""

    style_bank: bool = False  # codes are per-tap statistics (StyleCode): saved codes and built-in styles apply
    tiling: bool = False  # stylize(..., content_stats=) with whole-image statistics: tiled high-res output
    modes: bool = False  # multi-modal transfer (models/multimodal.py): styles split into modes per region
    encoder_choice: bool = False  # a different encoder may be chosen at load time (encoder=) and is used

    def require(self, name: str, what: str, who: str, alternatives: Sequence[str] = ()) -> None:
        """Raise ValueError saying `who` cannot do `what` unless capability `name` is set.

        Args:
            name: a field of Capabilities, e.g. 'tiling'.
            what: the feature in words, e.g. 'tiled stylisation (tile=)'.
            who: the model in words, e.g. its class name.
            alternatives: registered model names that do offer it (see `registry.models_with`).
        """
        known = [f.name for f in fields(self)]
        if name not in known:
            raise KeyError(f"unknown capability {name!r}; known: {known}")
        if not getattr(self, name):
            offered = [n for n in known if getattr(self, n)]
            hint = f"; models that do: {', '.join(alternatives)}" if alternatives else ""
            raise ValueError(f"{who} does not support {what} (capabilities.{name} is False; "
                             f"it offers {', '.join(offered) or 'only the core contract'}){hint}")


@runtime_checkable
class StyleCodeLike(Protocol):
    """A style as the model that made it needs it (e.g. StyleCode statistics, StyTr² StyleTokens)."""

    def to(self, device: torch.device | str) -> Any: ...

    def cpu_copy(self) -> Any:
        """A float32 CPU copy, detached (usable outside the inference mode it was made in)."""
        ...


@runtime_checkable
class StyleModel(Protocol):
    """What every style model offers (see the module docstring for shapes). Models are torch modules: the
    Stylizer moves one with `.to(device)` and puts it in `.eval()` mode."""

    capabilities: ClassVar[Capabilities]

    def to(self, *args: Any, **kwargs: Any) -> Any: ...

    def eval(self) -> Any: ...

    @property
    def stride(self) -> int:
        """Content sides must be multiples of this (callers pad, then crop back)."""
        ...

    def style_code(self, images: torch.Tensor) -> list[StyleCodeLike]:
        """One code per style image of the batch (b, 3, h, w), RGB [0, 1], any size."""
        ...

    def check_codes(self, codes: Sequence[Any]) -> None:
        """Raise ValueError naming the first code this model cannot use (wrong kind, taps or width)."""
        ...

    def encode_content(self, images: torch.Tensor) -> Any:
        """Content (b, 3, h, w), RGB [0, 1], h and w multiples of `stride` -> its encoding, reusable."""
        ...

    def stylize(self, content: Any, codes: Sequence[StyleCodeLike], weights: torch.Tensor,
                alpha: float | torch.Tensor = 1.0) -> torch.Tensor:
        """`encode_content`'s result + K codes + normalised weights + alpha -> (b or n, 3, h, w) in [0, 1]."""
        ...


@runtime_checkable
class StatisticsModel(StyleModel, Protocol):
    """A model that normalises content features per tap and gives them blended style statistics (AdaIN):
    what tiling (capabilities.tiling), multi-modal transfer (.modes) and the style bank (.style_bank) use.
    Its content encoding is {tap: (b, c, h, w)} features and its codes are StyleCodes."""

    @property
    def mix_taps(self) -> tuple[str, ...]:
        """Taps the decoder reads, deepest first: where content statistics are taken and styles mixed."""
        ...

    @property
    def encoder_name(self) -> str:
        """Id of the encoder codes are computed with (saved style codes record it)."""
        ...

    @property
    def code_taps(self) -> tuple[str, ...]:
        """Taps of a StyleCode that mixing reads (`mix_taps`, and a style hint's VGG taps if any), in code order."""
        ...

    @property
    def style_encoder_request(self) -> tuple[str, tuple[str, ...]] | None:
        """(encoder preset or dir, taps) of a second, frozen encoder that style codes also need, which the loader
        gives the model with `attach_style_encoder(encoder)`; None for models that need none."""
        ...

    def encode_content(self, images: torch.Tensor) -> dict[str, torch.Tensor]: ...

    def decode(self, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        """Target features {tap: (b, c, h, w)} at `mix_taps` -> RGB (b, 3, H, W), not clamped."""
        ...

    def stylize(self, content: dict[str, torch.Tensor], codes: Sequence[StyleCodeLike], weights: torch.Tensor,
                alpha: float | torch.Tensor = 1.0,
                content_stats: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None) -> torch.Tensor:
        """As StyleModel.stylize; `content_stats` {tap: (mean (1, c), std (1, c))} normalise the content
        instead of its own statistics (whole-image statistics for one tile)."""
        ...


def per_image_alpha(alpha: float | Sequence[float] | torch.Tensor, n: int, what: str = "images") -> torch.Tensor:
    """alpha as (n,) float32 (one number repeated, or n numbers), each checked to lie in [0, 1]; `what` names
    the n things in the message ('images', 'cells')."""
    a = torch.as_tensor(alpha, dtype=torch.float32).flatten()
    if a.numel() == 1:
        a = a.expand(n)
    if a.numel() != n:
        raise ValueError(f"got {a.numel()} alphas for {n} {what}; give one alpha or one per {what.rstrip('s')}")
    for value in a.tolist():
        check_alpha(value)
    return a
