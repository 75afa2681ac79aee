"""The Python API: `Stylizer` turns a content image and K weighted styles into one stylised image.

    from stylemix import Stylizer
    s = Stylizer.from_pretrained()                       # the default: models.pretrained.DEFAULT_MODEL
    img = s.stylize("photo.jpg", ["a.jpg", "b.jpg"], weights=[0.7, 0.3], alpha=0.9)

Styles are encoded once into codes (`StyleCode`s, per-tap channel mean/std, for AdaIN models); any
number of cached codes then costs one content pass, because blending happens in the statistics
(models.functional.mix). The Stylizer talks to its model only through the contract in
models/contract.py; optional features (tiling, modes, saved styles) are checked against the model's
`capabilities` and refused with a message naming the models that offer them.
Letters: k - styles, n - cells (output images), b - batch, c - channels, h/w - height/width.
"""
from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
from PIL import Image

from ..models import functional as Fn
from ..models import pretrained
from ..models.canvas import Frame
from ..models.contract import StyleCodeLike, StyleModel, per_image_alpha
from ..models.device import resolve_device
from ..models.io import WeightsError
from ..models.multimodal import MultimodalConfig, label_colors, require_maxflow, stylize_modes
from ..models.precision import auto_dtype
from ..models.registry import require_capability, weights_help

from . import grid as G
from . import tiling
from . import video as V
from .detail import lift, resize, work_size, working_size
from .images import ImageLike, load_image, save_image, to_pil
from .masks import mask_weights
from .style_inputs import StyleLike, check_style_path, style_images
from .styles import load_style, read_metadata, resolve_style

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
PRESERVE_COLOR = Fn.PRESERVE_COLOR


@dataclass(frozen=True)
class EncodedContent:
    """A content image encoded once (`Stylizer.encode_content`), to be stylised with any number of blends
    (`Stylizer.stylize_encoded`) for the cost of the mixing and decoding alone: what an interactive preview
    re-runs on every slider move."""

    image: torch.Tensor  # (1, 3, h, w) in [0, 1] on the stylizer's device: the content as loaded
    frame: Frame  # where the image sits in the padded canvas the model saw
    features: object  # the model's `encode_content` result for that canvas


class Stylizer:
    """A loaded style model plus the image handling around it.

    Every model offers the contract (models/contract.py): `stylize`, the grids (`render`, `sweep`, `grid`,
    `alpha_sweep`) and `encode_style` work with any of them. Some options need a capability the model
    declares (`model.capabilities`): `stylize_tiled` needs `tiling`, `modes > 1` needs `modes`, saved
    codes (.safetensors) and built-in style names need `style_bank`; a model without it refuses them
    with a message (AdaIN models offer all three; StyTr² none).

    Args:
        model: a style model (`models.contract.StyleModel`, e.g. from `models.create_model`).
        device: torch device to run on.
        dtype: 'auto' (bf16 where the device computes it natively, see models/precision.py; else fp32), 'fp32'
            or 'bf16' (autocast; statistics and blending stay in float32). `self.dtype` is 'fp32' or 'bf16'.
        styles: the model's own codes for built-in style names ({name: code}), used before the shared bank
            (weights/styles/ holds vgg16-hed statistics): what a weights dir with its own encoder ships in its
            styles.safetensors (e.g. adain-fast; `from_pretrained` passes them).
    """

    def __init__(self, model: StyleModel, device: str | torch.device = "cpu", dtype: str = "auto",
                 styles: dict[str, StyleCodeLike] | None = None):
        if not isinstance(model, StyleModel):
            raise TypeError(f"{type(model).__name__} is not a style model: it must offer stride, capabilities, "
                            f"style_code, check_codes, encode_content and stylize (models/contract.py)")
        if dtype not in ("auto", *DTYPES):
            raise ValueError(f"dtype must be one of {['auto', *sorted(DTYPES)]}, got {dtype!r}")
        self.device = resolve_device(device)
        if dtype == "auto":
            dtype = "bf16" if auto_dtype(self.device) == torch.bfloat16 else "fp32"
        self.model = model.to(self.device).eval()
        self.dtype = dtype
        self.model_styles = dict(styles or {})

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                        encoder: str | None = None, dtype: str = "auto") -> "Stylizer":
        """Load a weights dir (a path, or a name under weights/; default models.pretrained.DEFAULT_MODEL).

        Args:
            name_or_path: model dir or name.
            encoder: encoder preset or dir overriding the one the model names (models with
                capabilities.encoder_choice only; others refuse it).
            device, dtype: see the class.

        Raises:
            WeightsError if the weights are not installed (saying how to get them: the model's registry entry,
            models/registry.weights_help) or the files do not fit; ValueError for `encoder` with a model that
            cannot use it.
        """
        try:
            pretrained.resolve_model_dir(None if name_or_path is None else str(name_or_path))
        except WeightsError as e:
            asked = str(name_or_path or pretrained.DEFAULT_MODEL)
            help_text = weights_help(asked, pretrained.shipped_weights() / asked)
            raise WeightsError(help_text or f"{e}; pass a model directory (config.json + decoder.safetensors)") from None
        name = None if name_or_path is None else str(name_or_path)
        model, _ = pretrained.load_model(name, encoder, device, log=_log_stderr)
        return cls(model, device, dtype, styles=pretrained.model_styles(name))

    @property
    def stride(self) -> int:
        """Content sizes are padded to multiples of this internally."""
        return int(self.model.stride)

    def autocast(self) -> contextlib.AbstractContextManager:
        """The precision context every model call runs in (bf16 autocast, or nothing for fp32)."""
        if self.dtype == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=DTYPES[self.dtype])

    # --- styles ---------------------------------------------------------------------------------------

    def encode_style(self, image: ImageLike, max_size: int | None = 512) -> StyleCodeLike:
        """One style image -> its code (float32, CPU): a StyleCode for AdaIN models (save it with
        inference.styles.save_style), StyleTokens for StyTr²."""
        x = load_image(image, max_size).to(self.device)
        with torch.inference_mode(), self.autocast():
            code = self.model.style_code(x)[0]
        return code.cpu_copy()

    def encode_styles(self, images: Sequence[ImageLike], max_size: int | None = 512) -> list[StyleCodeLike]:
        """Several style images -> their codes, in order."""
        return [self.encode_style(im, max_size) for im in images]

    def style_codes(self, styles: StyleLike | Sequence[StyleLike], max_size: int | None = 512) -> list[StyleCodeLike]:
        """Resolve one or a list of styles (image, path, code, saved code .safetensors, or built-in name) into
        codes this model can use (checked by `model.check_codes`)."""
        items = list(styles) if isinstance(styles, (list, tuple)) else [styles]
        if not items:
            raise ValueError("at least one style is needed")
        codes = [s if isinstance(s, StyleCodeLike) else self._resolve_style(s, max_size) for s in items]
        self.model.check_codes(codes)
        return codes

    def _resolve_style(self, style: ImageLike, max_size: int | None) -> StyleCodeLike:
        """An image, an image path, a saved code (.safetensors) or a built-in style name -> a code."""
        if isinstance(style, (str, os.PathLike)):
            path = check_style_path(style)
            saved = path.suffix.lower() == ".safetensors" and path.is_file()
            if saved or not path.exists():
                require_capability(self.model, "style_bank", f"saved or built-in styles ({str(style)!r}: statistics "
                                                             f"codes); pass a style image instead")
                encoder = self.model.encoder_name or None
                if not saved:
                    own = self.model_styles.get(str(style))
                    return own if own is not None else resolve_style(str(style), encoder=encoder)
                got = read_metadata(path).get("encoder")
                if encoder and got and got != encoder:
                    raise ValueError(f"style code {path} was computed with encoder {got!r}, but this model uses "
                                     f"{encoder!r}; use an image of the style instead")
                return load_style(path)
        return self.encode_style(style, max_size)

    # --- stylisation ----------------------------------------------------------------------------------

    def stylize(self, content: ImageLike, styles: StyleLike | Sequence[StyleLike],
                weights: Sequence[float] | None = None, alpha: float = 1.0, max_size: int | None = 1024,
                preserve_color: str | None = None, masks: Sequence[ImageLike] | None = None,
                return_tensor: bool = False, style_size: int | None = 512, modes: int = 1,
                smoothness: float | None = None, label_map_path: str | os.PathLike | None = None,
                style_scale: float | None = 1.0) -> Image.Image | torch.Tensor:
        """Stylise one content image with a weighted blend of K styles, in one forward pass.

        Args:
            content: path, PIL image, array or tensor; any size and aspect ratio.
            styles: one style or a list (paths, images, codes; saved codes and built-in names need a model with
                capabilities.style_bank).
            weights: K non-negative weights (normalised); None = equal.
            alpha: 0 = the content image itself (exactly; preserve_color then has nothing to do), 1 = fully
                stylised.
            max_size: downscale the content so its long side is at most this (None: keep).
            preserve_color: None, 'luminance' (keep the content's chroma), 'match' (the content's colour mean and
                covariance) or 'histogram' (the content's per-channel histograms); applied to the blended output.
            masks: K masks (soft allowed) giving where each style applies; resized if they have the
                content's aspect ratio. Combined with `weights` per pixel.
            return_tensor: return (1, 3, h, w) float in [0, 1] instead of a PIL image.
            style_size: long side style images are encoded at.
            modes: split each style into this many modes and give each content region the mode that fits it
                (models/multimodal.py; needs style images, PyMaxflow and capabilities.modes). 1 = plain transfer.
            smoothness: with modes > 1, how strongly neighbouring content pixels keep the same mode (default 0.3);
                refused with modes = 1, where it would do nothing.
            label_map_path: with modes > 1, save the content's mode labels here as an image, a colour per
                mode (several styles: their maps side by side).
            style_scale: stroke size. The model paints at a long side of at most 512 / style_scale px and a
                larger image is lifted to its size by guided upsampling, which restores the photo's detail:
                1 (default) gives the same strokes relative to the image at any size; 2 doubles them, 0.5
                halves them; None paints at full resolution (strokes a fixed number of pixels wide).

        Returns:
            PIL RGB image (or tensor) of the content's (possibly max_size-reduced) size.
        """
        Fn.check_preserve_color(preserve_color)
        work = work_size(style_scale)
        Fn.check_alpha(alpha)
        mm = self._multimodal_config(modes, smoothness, label_map_path)  # None for plain transfer
        codes = self.style_codes(styles, style_size) if mm is None else style_images(styles, style_size)
        w = Fn.validate_weights(weights, len(codes))
        x = load_image(content, max_size).to(self.device)
        xw = resize(x, working_size(tuple(x.shape[-2:]), work))  # the image the model paints
        frame = Frame(tuple(xw.shape[-2:]))
        padded = frame.apply(xw, self.stride)
        if masks is not None:
            w = mask_weights(masks, w, frame, self.stride).to(self.device)  # (k, 1, 1, H, W)
        out, labels = self._forward(padded, codes, w, float(alpha), modes=mm)
        with torch.inference_mode():
            out = Fn.preserve_color(lift(frame.crop(out), xw, x), x, preserve_color)
            if float(alpha) == 0.0:  # alpha 0 is the content image itself, exactly: decoding the content's own
                out = x  # features would only add the decoder's reconstruction error (~32/255 mean, shipped model)
        if labels is not None and label_map_path is not None:
            maps = [frame.crop(label_colors(lab, mm.modes, tuple(padded.shape[-2:]))) for lab in labels]
            save_image(torch.cat(maps, -1).cpu(), label_map_path)
        out = out.clone()  # a normal tensor, usable outside inference mode
        return out.cpu() if return_tensor else to_pil(out)

    def stylize_tiled(self, content: ImageLike, styles: StyleLike | Sequence[StyleLike],
                      weights: Sequence[float] | None = None, alpha: float = 1.0, tile: int = 512, halo: int = 64,
                      max_size: int | None = None, preserve_color: str | None = None,
                      masks: Sequence[ImageLike] | None = None, return_tensor: bool = False,
                      style_size: int | None = 512, progress: bool = False,
                      style_scale: float | None = None) -> Image.Image | torch.Tensor:
        """`stylize` for images larger than memory allows: overlapping tiles of at most `tile` px with
        `halo` px of context, whole-image content statistics, seamless crossfades (inference/tiling.py).
        The content is kept at full size unless `max_size` is given, and painted at full resolution unless
        `style_scale` is given (as in `stylize`: then the tiles cover the working size). Needs
        capabilities.tiling."""
        require_capability(self.model, "tiling", "tiled stylisation (stylize_tiled, --tile)")
        Fn.check_preserve_color(preserve_color)
        Fn.check_alpha(alpha)
        codes = self.style_codes(styles, style_size)
        w = Fn.validate_weights(weights, len(codes))
        x = load_image(content, max_size)
        xw = resize(x, working_size(tuple(x.shape[-2:]), work_size(style_scale)))
        frame = Frame(tuple(xw.shape[-2:]))
        padded = frame.apply(xw, self.stride)
        if masks is not None:
            w = mask_weights(masks, w, frame, self.stride)  # (k, 1, 1, H, W), cropped per window
        if float(alpha) == 0.0:  # the content itself, as in `stylize`
            return x if return_tensor else to_pil(x)
        out = tiling.stylize_tiled(self.model, padded, codes, w, float(alpha), tile, halo, device=self.device,
                                   autocast=self.autocast, progress=progress)
        with torch.inference_mode():
            out = Fn.preserve_color(lift(frame.crop(out), xw, x), x, preserve_color).clone()
        return out if return_tensor else to_pil(out)

    def stylize_video(self, video: V.VideoLike, styles: StyleLike | Sequence[StyleLike],
                      weights: Sequence[float] | None = None, *, keyframes: Sequence[V.Keyframe | str] | None = None,
                      alpha: float = 1.0, temporal: V.TemporalConfig | str = "both", fps: float | None = None,
                      max_size: int | None = None, max_frames: int | None = None, preserve_color: str | None = None,
                      style_size: int | None = 512, style_scale: float | None = 1.0, progress: bool = False,
                      return_tensor: bool = False) -> Iterator[Image.Image | torch.Tensor]:
        """Stylise a clip (video file, animated GIF/WebP, folder of frames or iterable of images) without flicker:
        a generator of frames, one at a time (write them with `inference.video.write_video`). See
        inference/video/ for the temporal stabilisation, keyframes and formats.

        Args:
            keyframes: instead of `weights`, 'TIME:NAME=W[,NAME=W...]' strings or `video.Keyframe`s; weights are
                interpolated linearly between them (TIME a frame index or seconds like '5s').
            temporal: 'both' (default), 'stats', 'flow', 'none' (frame by frame) or a `video.TemporalConfig`.
            fps: resample to this constant rate (a variable frame rate is refused without it).
            max_size: scale frames down to this long side (None: keep; over 4K UHD is scaled down).
            max_frames: stop after this many frames.
            styles, weights, alpha, preserve_color, style_size, style_scale, return_tensor: as in `stylize`.
        """
        Fn.check_preserve_color(preserve_color)
        return V.stylize_video(self, video, styles, weights, keyframes=keyframes, alpha=alpha, temporal=temporal,
                               fps=fps, max_size=max_size, max_frames=max_frames, preserve_color=preserve_color,
                               style_size=style_size, work_size=work_size(style_scale), progress=progress,
                               return_tensor=return_tensor)

    def render(self, content: ImageLike, codes: Sequence[StyleCodeLike], weights: torch.Tensor,
               alphas: torch.Tensor, max_size: int | None = 512, preserve_color: str | None = None,
               batch_size: int | None = None) -> torch.Tensor:
        """Stylise one content with n (weights, alpha) cells: one content encoding, batched stylisation.

        Args:
            content: the content image (anything `load_image` reads).
            codes: K codes (`style_codes`).
            weights: (n, k) normalised weights, one row per cell.
            alphas: (n,) alphas in [0, 1].
            max_size: long side the content is processed at (the cell size).
            preserve_color: as in `stylize`.
            batch_size: cells stylised together (bounds memory). Default: 1 on CPU, where batching is slower
                (measured: 25 cells at 256 px in 7.4 s one by one vs 11.0 s in batches of 8: the batch's
                full-resolution activations fall out of cache), 8 on accelerators.

        Returns:
            (n, 3, h, w) float32 CPU tensor in [0, 1].
        """
        Fn.check_preserve_color(preserve_color)
        if weights.dim() != 2 or weights.shape[1] != len(codes) or weights.shape[0] != alphas.numel():
            raise ValueError(f"weights must be (cells, {len(codes)}) with one alpha per cell, got "
                             f"{tuple(weights.shape)} and {alphas.numel()} alphas")
        if batch_size is None:
            batch_size = 1 if self.device.type == "cpu" else 8
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        x = load_image(content, max_size).to(self.device)
        frame = Frame(tuple(x.shape[-2:]))
        cells, _ = self._forward(frame.apply(x, self.stride), codes, weights.T, alphas, batch_size=batch_size)
        with torch.inference_mode():
            cells = Fn.preserve_color(frame.crop(cells), x.expand(len(cells), -1, -1, -1), preserve_color)
            cells[torch.as_tensor(alphas).flatten().expand(len(cells)).to(cells.device) == 0] = x  # as in `stylize`
        return cells.cpu().clone()

    def encode_content(self, content: ImageLike, max_size: int | None = 512) -> EncodedContent:
        """Encode a content image once for `stylize_encoded` (one encoder pass; keep it while only the blend
        changes). The image is painted at its own (max_size-reduced) size, as `stylize` does up to 512 px.

        Args:
            content: anything `load_image` reads.
            max_size: long side the content is processed at (None: keep).
        """
        x = load_image(content, max_size).to(self.device)
        frame = Frame(tuple(x.shape[-2:]))
        with torch.inference_mode(), self.autocast():
            features = self.model.encode_content(frame.apply(x, self.stride))
        return EncodedContent(x, frame, features)

    def stylize_encoded(self, content: EncodedContent, codes: Sequence[StyleCodeLike],
                        weights: Sequence[float] | None = None, alpha: float = 1.0,
                        preserve_color: str | None = None) -> torch.Tensor:
        """Stylise an `encode_content` result with a blend of K codes (`style_codes`): no encoder pass.

        Args:
            content: from `encode_content` on this stylizer.
            codes: K codes; weights, alpha, preserve_color: as in `stylize`.

        Returns:
            (1, 3, h, w) float32 CPU tensor in [0, 1], equal to `stylize(..., return_tensor=True)` of the same
            content at the same size (up to 512 px, where `stylize` paints at full size).
        """
        Fn.check_preserve_color(preserve_color)
        Fn.check_alpha(alpha)
        self.model.check_codes(list(codes))
        w = Fn.validate_weights(weights, len(codes))
        if float(alpha) == 0.0:  # the content itself, exactly (as in `stylize`)
            return content.image.cpu().clone()
        with torch.inference_mode(), self.autocast():
            out = self.model.stylize(content.features, list(codes), w, float(alpha)).float()
        with torch.inference_mode():
            out = Fn.preserve_color(content.frame.crop(out), content.image, preserve_color)
        return out.cpu().clone()

    def sweep(self, content: ImageLike, styles: Sequence[StyleLike], steps: int = 5,
              path: Sequence[Sequence[float]] | torch.Tensor | None = None, alpha: float | Sequence[float] = 1.0,
              max_size: int | None = 512, preserve_color: str | None = None, labels: bool = False,
              names: Sequence[str] | None = None, style_size: int | None = 512,
              batch_size: int | None = None) -> tuple[torch.Tensor, Image.Image]:
        """Sweep the blend weights along a path (default: style 1 -> 2 -> ... -> K) in one row; one content
        encoding, batched stylisation.

        Args:
            styles: K >= 2 styles (or K >= 1 with an explicit path).
            steps: cells along the default path (not used when `path` is given).
            path: explicit (n, K) weight vectors, one per cell.
            alpha: one alpha, or one per cell.
            labels: write the weights under each cell; `names` replace the letters A, B, ...
            max_size, preserve_color, style_size, batch_size: as in `stylize` and `render`.

        Returns:
            (cells (n, 3, h, w) in [0, 1], the 1 x n grid image).
        """
        codes = self.style_codes(styles, style_size)
        return G.figure(self, content, codes, G.sweep_layout(len(codes), steps, path, alpha, labels, names),
                            max_size, preserve_color, batch_size)

    def grid(self, content: ImageLike, styles: Sequence[StyleLike], steps: int = 5, alpha: float = 1.0,
             alpha_axis: bool = False, max_size: int | None = 256, preserve_color: str | None = None,
             labels: bool = False, names: Sequence[str] | None = None, style_size: int | None = 512,
             batch_size: int | None = None) -> tuple[torch.Tensor, Image.Image]:
        """A steps x steps grid: the bilinear blend of 4 corner styles (A top-left, B top-right, C bottom-left,
        D bottom-right), or with `alpha_axis` and 2 styles: A -> B across, alpha 0 -> `alpha` down.

        Returns:
            (cells (steps*steps, 3, h, w) row-major, the grid image).
        """
        G.check_steps(steps)
        codes = self.style_codes(styles, style_size)
        return G.figure(self, content, codes, G.grid_layout(len(codes), steps, alpha, alpha_axis, labels, names),
                            max_size, preserve_color, batch_size)

    def alpha_sweep(self, content: ImageLike, style: StyleLike | Sequence[StyleLike], steps: int = 5,
                    weights: Sequence[float] | None = None, end: float = 1.0, max_size: int | None = 512,
                    preserve_color: str | None = None, labels: bool = False, names: Sequence[str] | None = None,
                    style_size: int | None = 512, batch_size: int | None = None) -> tuple[torch.Tensor, Image.Image]:
        """alpha from 0 (the content itself) to `end` (default 1, full style) in one row; `style` may be
        one style or a list blended with `weights`.

        Returns:
            (cells (steps, 3, h, w), the 1 x steps grid image).
        """
        codes = self.style_codes(style, style_size)
        return G.figure(self, content, codes, G.alpha_sweep_layout(len(codes), steps, weights, end, labels, names),
                            max_size, preserve_color, batch_size)

    def _forward(self, content: torch.Tensor, codes: Sequence, weights: torch.Tensor,
                 alpha: float | torch.Tensor, modes: MultimodalConfig | None = None,
                 batch_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The model step, the one place where every stylisation but the tiled one runs the model: padded
        content (1, 3, H, W) + K codes + weights + alpha -> stylised images, float32 in [0, 1].

        Args:
            content: (1, 3, H, W) on the device, H and W multiples of `stride`.
            codes: K codes; with `modes`, K style images (1, 3, h, w) instead.
            weights: (k,) or (k, 1, 1, H, W) for one image; (k, n) for n cells (then `alpha` is (n,)).
            alpha: in [0, 1]; one per cell with (k, n) weights.
            modes: multi-modal settings (capabilities.modes), or None.
            batch_size: cells stylised per model call with (k, n) weights (None: all).

        Returns:
            (images (1 or n, 3, H, W), labels (k, 1, h, w) at the label tap with `modes`, else None).
        """
        with torch.inference_mode(), self.autocast():
            if modes is not None:
                images = [c.to(self.device) for c in codes]
                out, labels = stylize_modes(self.model, content, images, weights, modes, float(alpha))
                return out.float(), labels
            if weights.dim() != 2 and float(alpha) == 0.0:  # the content itself (see `stylize`): no model work
                return content.float().clone(), None
            encoded = self.model.encode_content(content)
            if weights.dim() != 2:
                return self.model.stylize(encoded, codes, weights, float(alpha)).float(), None
            n = weights.shape[1]
            alphas, step = per_image_alpha(alpha, n), batch_size or n
            return torch.cat([self.model.stylize(encoded, codes, weights[:, i:i + step], alphas[i:i + step]).float()
                              for i in range(0, n, step)]), None

    def _multimodal_config(self, modes: int, smoothness: float | None,
                           label_map_path: str | os.PathLike | None) -> MultimodalConfig | None:
        """Validated multi-modal settings, or None for plain transfer (modes == 1)."""
        if isinstance(modes, int) and not isinstance(modes, bool) and modes == 1:
            if smoothness is not None:
                raise ValueError("smoothness only applies with modes > 1 (it weighs neighbouring pixels keeping "
                                 "the same mode); drop it or set modes")
            if label_map_path is not None:
                raise ValueError("a label map needs modes > 1 (with one mode every pixel has the same label)")
            return None
        config = MultimodalConfig(modes=modes, **({} if smoothness is None else {"smoothness": smoothness}))
        require_capability(self.model, "modes", "multi-modal transfer (modes > 1)")
        require_maxflow()
        return config


# --- helpers -----------------------------------------------------------------------------------------

def _log_stderr(msg: str) -> None:
    print(msg, file=sys.stderr)
