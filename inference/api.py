"""The Python API: `Stylizer` turns a content image and K weighted styles into one stylised image.

    from inference import Stylizer
    s = Stylizer.from_pretrained()                       # weights/adain-vgg16
    img = s.stylize("photo.jpg", ["a.jpg", "b.jpg"], weights=[0.7, 0.3], alpha=0.9)

Styles are encoded once into `StyleCode`s (per-tap channel mean/std); any number of cached codes
then costs one content pass, because blending happens in the statistics (models.functional.mix).
Letters: k - styles, b - batch, c - channels, h/w - height/width.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Sequence, Union

import torch
from einops import rearrange
from PIL import Image
from torch import nn

from models import functional as Fn
from models.io import WeightsError
from models.mixing import StyleCode
from models.multimodal import MultimodalConfig, label_colours, require_maxflow, stylize_modes
from models.stytr2 import StyleTokens
from models.vgg import tap_channels

from .images import IMAGE_EXTENSIONS, ImageLike, crop_to, load_image, load_mask, pad_to_multiple, to_pil

StyleLike = Union[ImageLike, StyleCode]
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
PRESERVE_COLOR = ("luminance", "histogram", "match")
NO_DECODER = ("no trained decoder is installed (looked for {where}); train one with "
              "'stylemix train --out runs/a' then 'stylemix train --out runs/a --export weights/adain-vgg16', "
              "or convert the original AdaIN weights with 'stylemix weights convert adain --vgg vgg_normalised.pth "
              "--decoder decoder.pth -o DIR' and pass --model DIR")
NO_STYTR2 = ("no StyTr² weights are installed (looked for {where}); convert the published release with "
             "'stylemix weights convert stytr2 --vgg vgg_normalised.pth --decoder decoder_iter_160000.pth "
             "--transformer transformer_iter_160000.pth --embedding embedding_iter_160000.pth -o weights/stytr2', "
             "or train one with 'python -m training.stytr2_task --out runs/stytr2' and export it there")


class Stylizer:
    """A loaded model plus the image handling around it.

    Args:
        model: a model with `stride`, `encode`, `style_code`, `mix` and `decode` (e.g. AdaINModel).
        device: torch device to run on.
        dtype: 'fp32' or 'bf16' (autocast; statistics and blending stay in float32).
    """

    def __init__(self, model: nn.Module, device: str | torch.device = "cpu", dtype: str = "fp32"):
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.dtype = dtype

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                        encoder: str | None = None, dtype: str = "fp32") -> "Stylizer":
        """Load a weights dir (a path, or a name under weights/; default 'adain-vgg16').

        Args:
            name_or_path: model dir or name.
            encoder: encoder preset or dir overriding the one the model names.
            device, dtype: see the class.

        Raises:
            WeightsError if no decoder is installed or the files do not fit.
        """
        from models import pretrained

        try:
            pretrained.resolve_model_dir(None if name_or_path is None else str(name_or_path))
        except WeightsError as e:
            if name_or_path is None or str(name_or_path) == pretrained.DEFAULT_MODEL:
                raise WeightsError(NO_DECODER.format(where=pretrained.REPO_WEIGHTS / pretrained.DEFAULT_MODEL)) from None
            if str(name_or_path) == "stytr2":
                raise WeightsError(NO_STYTR2.format(where=pretrained.REPO_WEIGHTS / "stytr2")) from None
            raise WeightsError(f"{e}; pass a model directory (config.json + decoder.safetensors)") from None
        model, _ = pretrained.load_model(None if name_or_path is None else str(name_or_path), encoder, device,
                                         log=_log_stderr)
        return cls(model, device, dtype)

    @property
    def stride(self) -> int:
        """Content sizes are padded to multiples of this internally."""
        return int(self.model.stride)

    # --- styles ---------------------------------------------------------------------------------------

    def encode_style(self, image: ImageLike, max_size: int | None = 512) -> StyleCode:
        """One style image -> its StyleCode (float32, CPU; save with inference.styles.save_style)."""
        x = load_image(image, max_size).to(self.device)
        with torch.inference_mode(), self._autocast():
            code = self.model.style_code(x)[0]
        return _plain_code(code) if isinstance(code, StyleCode) else code.cpu_copy()  # StyTr²: StyleTokens

    def encode_styles(self, images: Sequence[ImageLike], max_size: int | None = 512) -> list[StyleCode]:
        """Several style images -> their StyleCodes, in order."""
        return [self.encode_style(im, max_size) for im in images]

    def style_codes(self, styles: StyleLike | Sequence[StyleLike], max_size: int | None = 512) -> list[StyleCode]:
        """Resolve one or a list of styles (image, path, StyleCode, saved code .safetensors, or built-in name)."""
        items = list(styles) if isinstance(styles, (list, tuple)) else [styles]
        if not items:
            raise ValueError("at least one style is needed")
        codes = [s if isinstance(s, (StyleCode, StyleTokens)) else _resolve_style(self, s, max_size) for s in items]
        _check_codes(codes, self.model)
        return codes

    # --- stylisation ----------------------------------------------------------------------------------

    def stylize(self, content: ImageLike, styles: StyleLike | Sequence[StyleLike],
                weights: Sequence[float] | None = None, alpha: float = 1.0, max_size: int | None = 1024,
                preserve_color: str | None = None, masks: Sequence[ImageLike] | None = None,
                return_tensor: bool = False, style_size: int | None = 512, modes: int = 1,
                smoothness: float = 0.3, label_map_path: str | os.PathLike | None = None) -> Image.Image | torch.Tensor:
        """Stylise one content image with a weighted blend of K styles, in one forward pass.

        Args:
            content: path, PIL image, array or tensor; any size and aspect ratio.
            styles: one style or a list (paths, images, StyleCodes, saved codes, built-in names).
            weights: K non-negative weights (normalised); None = equal.
            alpha: 0 = content reconstruction, 1 = fully stylised.
            max_size: downscale the content so its long side is at most this (None: keep).
            preserve_color: None, 'luminance' (keep the content's chroma) or 'histogram'/'match' (match the
                content's colour statistics); applied to the blended output.
            masks: K masks (soft allowed) giving where each style applies; resized if they have the
                content's aspect ratio. Combined with `weights` per pixel.
            return_tensor: return (1, 3, h, w) float in [0, 1] instead of a PIL image.
            style_size: long side style images are encoded at.
            modes: split each style into this many modes and give each content region the mode that fits it
                (models/multimodal.py; needs style images and PyMaxflow). 1 = plain AdaIN.
            smoothness: how strongly neighbouring content pixels keep the same mode (modes > 1).
            label_map_path: with modes > 1, save the content's mode labels here as an image, a colour per
                mode (several styles: their maps side by side).

        Returns:
            PIL RGB image (or tensor) of the content's (possibly max_size-reduced) size.
        """
        if preserve_color is not None and preserve_color not in PRESERVE_COLOR:
            raise ValueError(f"preserve_color must be None or one of {PRESERVE_COLOR}, got {preserve_color!r}")
        if not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        mm = _multimodal_config(self.model, modes, smoothness, label_map_path)  # None for plain AdaIN
        codes = self.style_codes(styles, style_size) if mm is None else _style_images(styles, style_size)
        w = Fn.validate_weights(weights, len(codes))
        x = load_image(content, max_size).to(self.device)
        padded, size = pad_to_multiple(x, self.stride)
        if masks is not None:
            w = _mask_weights(masks, w, size, self.stride).to(self.device)  # (k, 1, 1, H, W)
        with torch.inference_mode():
            with self._autocast():
                if mm is None:
                    out = self._forward(padded, codes, w, float(alpha))
                else:
                    images = [c.to(self.device) for c in codes]
                    out, labels = stylize_modes(self.model, padded, images, w, mm, float(alpha))
            out = apply_preserve_color(crop_to(out.float(), size), x, preserve_color)
        if mm is not None and label_map_path is not None:
            from .images import save_image

            maps = [crop_to(label_colours(lab, mm.modes, tuple(padded.shape[-2:])), size) for lab in labels]
            save_image(torch.cat(maps, -1).cpu(), label_map_path)
        out = out.clone()  # a normal tensor, usable outside inference mode
        return out.cpu() if return_tensor else to_pil(out)

    def stylize_tiled(self, content: ImageLike, styles: StyleLike | Sequence[StyleLike],
                      weights: Sequence[float] | None = None, alpha: float = 1.0, tile: int = 512, halo: int = 64,
                      max_size: int | None = None, preserve_color: str | None = None,
                      masks: Sequence[ImageLike] | None = None, return_tensor: bool = False,
                      style_size: int | None = 512, progress: bool = False) -> Image.Image | torch.Tensor:
        """`stylize` for images larger than memory allows: overlapping tiles of at most `tile` px with
        `halo` px of context, whole-image content statistics, seamless crossfades (inference/tiling.py).
        The content is kept at full size unless `max_size` is given."""
        from .tiling import stylize_tiled

        if preserve_color is not None and preserve_color not in PRESERVE_COLOR:
            raise ValueError(f"preserve_color must be None or one of {PRESERVE_COLOR}, got {preserve_color!r}")
        codes = self.style_codes(styles, style_size)
        out = stylize_tiled(self, content, codes, Fn.validate_weights(weights, len(codes)), alpha, tile, halo,
                            max_size=max_size, masks=masks, preserve_color=preserve_color, progress=progress)
        return out if return_tensor else to_pil(out)

    def sweep(self, content: ImageLike, styles: Sequence[StyleLike], steps: int = 5, **kw):
        """Blend weights swept along a path (style 1 -> 2 -> ... -> K, or an explicit `path` of weight
        vectors); one content encoding, batched decoding. Returns (cells (n, 3, h, w), grid PIL image).
        Options: see inference.grid.sweep."""
        from .grid import sweep

        return sweep(self, content, styles, steps, **kw)

    def grid(self, content: ImageLike, styles: Sequence[StyleLike], steps: int = 5, **kw):
        """steps x steps bilinear blend of 4 corner styles (or 2 styles x alpha with alpha_axis=True).
        Returns (cells row-major, grid PIL image). Options: see inference.grid.grid."""
        from .grid import grid

        return grid(self, content, styles, steps, **kw)

    def alpha_sweep(self, content: ImageLike, style: StyleLike | Sequence[StyleLike], steps: int = 5, **kw):
        """alpha from 0 (content) to 1 (full style) in one row. Returns (cells, grid PIL image).
        Options: see inference.grid.alpha_sweep."""
        from .grid import alpha_sweep

        return alpha_sweep(self, content, style, steps, **kw)

    def _forward(self, content: torch.Tensor, codes: Sequence[StyleCode], weights: torch.Tensor,
                 alpha: float) -> torch.Tensor:
        """The model step: padded content (1, 3, H, W) + K codes + weights ((k,) or (k, 1, 1, H, W))
        -> stylised (1, 3, H, W) in [0, 1]. One encode, one blend, one decode."""
        if not hasattr(self.model, "mix"):  # StyTr²: blends inside its attention, in its own forward
            return self.model(content, codes, weights, alpha).float()
        feats = self.model.encode(content)
        return self.model.decode(self.model.mix(feats, codes, weights, alpha)).float().clamp(0, 1)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=DTYPES[self.dtype])


# --- helpers -----------------------------------------------------------------------------------------

def apply_preserve_color(out: torch.Tensor, content: torch.Tensor, mode: str | None) -> torch.Tensor:
    """Colour preservation on stylised images (b, 3, h, w) against the content (b, 3, h, w), both in [0, 1]:
    None (unchanged), 'luminance' (content chroma) or 'histogram'/'match' (content colour statistics)."""
    if mode in ("histogram", "match"):
        return Fn.match_colour(out, content)
    if mode == "luminance":
        return Fn.keep_luminance(out, content)
    if mode is not None:
        raise ValueError(f"preserve_color must be None or one of {PRESERVE_COLOR}, got {mode!r}")
    return out


def _multimodal_config(model: nn.Module, modes: int, smoothness: float,
                       label_map_path: str | os.PathLike | None) -> MultimodalConfig | None:
    """Validated multi-modal settings, or None for plain AdaIN (modes == 1)."""
    config = MultimodalConfig(modes=modes, smoothness=smoothness)
    if config.modes == 1:
        if label_map_path is not None:
            raise ValueError("a label map needs modes > 1 (with one mode every pixel has the same label)")
        return None
    if not hasattr(model, "mix_taps"):
        raise ValueError(f"modes > 1 needs an AdaIN model (per-tap statistics + decoder), not {type(model).__name__}")
    require_maxflow()
    return config


def _style_images(styles: StyleLike | Sequence[StyleLike], max_size: int | None) -> list[torch.Tensor]:
    """Style images (1, 3, h, w) for multi-modal transfer, which clusters a style's pixels: saved codes and
    built-in styles hold statistics only, so they are refused with a clear message."""
    items = list(styles) if isinstance(styles, (list, tuple)) else [styles]
    if not items:
        raise ValueError("at least one style is needed")
    images = []
    for i, s in enumerate(items):
        if isinstance(s, (str, os.PathLike)):
            path = Path(s).expanduser()
            if not path.exists() and (path.suffix.lower() in IMAGE_EXTENSIONS or "/" in str(s) or os.sep in str(s)):
                raise FileNotFoundError(f"style image not found: {s}")
            if path.suffix.lower() == ".safetensors" or not path.exists():
                raise ValueError(f"modes > 1 splits style images into modes, but {s!r} is a saved or built-in style "
                                 f"(statistics only); pass the style image instead")
            s = path
        elif isinstance(s, (StyleCode, StyleTokens)):
            raise ValueError(f"modes > 1 splits style images into modes, but style {i + 1} is a "
                             f"{type(s).__name__} (statistics only); pass the style image instead")
        images.append(load_image(s, max_size))
    return images


def _log_stderr(msg: str) -> None:
    import sys

    print(msg, file=sys.stderr)


def _plain_code(code: StyleCode) -> StyleCode:
    """Detach a code from inference mode and the device: float32 CPU copies."""
    return StyleCode({t: v.detach().float().cpu().clone() for t, v in code.mean.items()},
                     {t: v.detach().float().cpu().clone() for t, v in code.std.items()})


def _resolve_style(stylizer: Stylizer, style: ImageLike, max_size: int | None) -> StyleCode:
    """An image, an image path, a saved code (.safetensors) or a built-in style name -> StyleCode."""
    if isinstance(style, (str, os.PathLike)):
        path = Path(style).expanduser()
        encoder = getattr(getattr(getattr(stylizer.model, "encoder", None), "config", None), "name", None) or None
        if path.suffix.lower() == ".safetensors" and path.is_file():
            from .styles import load_style, read_metadata

            got = read_metadata(path).get("encoder")
            if encoder and got and got != encoder:
                raise ValueError(f"style code {path} was computed with encoder {got!r}, but this model uses "
                                 f"{encoder!r}; use an image of the style instead")
            return load_style(path)
        if not path.exists():
            if path.suffix.lower() in IMAGE_EXTENSIONS or os.sep in str(style) or "/" in str(style):
                raise FileNotFoundError(f"style image not found: {style}")
            from .styles import resolve_style

            return resolve_style(str(style), encoder=encoder)
    return stylizer.encode_style(style, max_size)


def _check_codes(codes: Sequence[StyleCode], model: nn.Module) -> None:
    """Every code must carry the taps the model mixes, with the model's channel counts."""
    arch = getattr(getattr(getattr(model, "encoder", None), "config", None), "arch", None)
    if arch is None or not hasattr(model, "mix_taps"):
        return
    for i, code in enumerate(codes):
        for tap in model.mix_taps:
            c = tap_channels(arch, tap)
            if tap not in code.mean:
                raise ValueError(f"style {i + 1} has no statistics for {tap} (it has {list(code.taps)}); "
                                 f"re-encode it with this model")
            if code.mean[tap].numel() != c:
                raise ValueError(f"style {i + 1} has {code.mean[tap].numel()} channels at {tap}, the model {c}; "
                                 f"it was encoded with a different encoder")


def _mask_weights(masks: Sequence[ImageLike], weights: torch.Tensor, size: tuple[int, int], stride: int) -> torch.Tensor:
    """K masks + K global weights -> spatial weights (k, 1, 1, H, W) at the padded content size.

    Per pixel, weight_k = w_k m_k / sum_j w_j m_j; where no mask covers a pixel the global weights apply.
    Masks of a different resolution are resized when their aspect ratio matches the content's.
    """
    k, (h, w) = len(weights), size
    masks = list(masks) if isinstance(masks, (list, tuple)) else [masks]
    if len(masks) != k:
        raise ValueError(f"got {len(masks)} masks for {k} styles; give one mask per style")
    stack = []
    for i, src in enumerate(masks):
        m = load_mask(src)  # (1, 1, hm, wm)
        hm, wm = m.shape[-2:]
        if (hm, wm) != (h, w):
            if abs(hm * w - wm * h) > max(hm, wm, h, w):  # aspect ratios differ by more than a pixel
                raise ValueError(f"mask {i + 1} is {wm}x{hm} px but the content is {w}x{h} px; masks need the "
                                 f"content's size or at least its aspect ratio")
            m = torch.nn.functional.interpolate(m, size=(h, w), mode="bilinear", align_corners=False,
                                                antialias=hm > h)
        stack.append(m[0])
    m, _ = pad_to_multiple(torch.stack(stack), stride)  # (k, 1, H, W)
    num = weights.view(k, 1, 1, 1) * m.clamp_min(0)
    den = num.sum(0, keepdim=True)
    glob = weights.view(k, 1, 1, 1).expand_as(num)
    spatial = torch.where(den > 1e-6, num / den.clamp_min(1e-6), glob)
    return rearrange(spatial, "k 1 h w -> k 1 1 h w")
