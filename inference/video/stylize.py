"""The whole clip: `stylize_video` opens it, resolves the styles and the weights schedule, and yields the frames
a `TemporalPainter` paints, one at a time."""
from __future__ import annotations

import sys
from fractions import Fraction
from typing import Iterator, Sequence

import torch
from PIL import Image
from tqdm import tqdm

from ...models import functional as Fn
from ..images import to_pil
from .keyframes import Keyframe, keyframe_schedule, parse_keyframe, style_names
from .reading import VideoLike, VideoSource, open_video
from .temporal import TemporalConfig, TemporalPainter, VideoStylizer


def stylize_video(stylizer: VideoStylizer, video: VideoLike, styles, weights: Sequence[float] | None = None, *,
                  keyframes: Sequence[Keyframe | str] | None = None, alpha: float = 1.0,
                  temporal: TemporalConfig | str | None = "both", fps: float | Fraction | None = None,
                  max_size: int | None = None, max_frames: int | None = None, preserve_color: str | None = None,
                  style_size: int | None = 512, work_size: int | None = 512, progress: bool = False,
                  return_tensor: bool = False) -> Iterator[Image.Image | torch.Tensor]:
    """Stylise a clip with a weighted (or keyframed) blend of styles (`Stylizer.stylize_video` calls this); frames
    are yielded one by one, so a long clip never sits in memory. Everything is checked when this is called; the
    frames come when iterated.

    Args:
        stylizer: a `Stylizer`.
        video: a video file, animated GIF/WebP, folder of frames, iterable of images, or a `VideoSource`.
        styles: one style or a list (anything `Stylizer.stylize` takes).
        weights: K weights (normalised); None = equal. Not with `keyframes`.
        keyframes: `Keyframe`s, or strings 'TIME:NAME=W[,NAME=W...]' naming styles by `style_names(styles)`.
        alpha: 0 = the content, 1 = fully stylised.
        temporal: a TemporalConfig, or 'both' (default), 'stats', 'flow', 'none' (frame by frame).
        fps, max_size, max_frames: as in `open_video`.
        preserve_color, style_size: as in `Stylizer.stylize`.
        work_size: long side the model paints at (None: full resolution), then guided upsampling to full size.
        progress: a tqdm bar on stderr.
        return_tensor: yield (1, 3, h, w) float tensors in [0, 1] instead of PIL images.

    Returns:
        An iterator of the stylised frames, at the source's (possibly max_size-reduced) size.
    """
    Fn.check_alpha(alpha)
    temporal = TemporalConfig.named(temporal) if isinstance(temporal, str) else temporal or TemporalConfig.off()
    items = list(styles) if isinstance(styles, (list, tuple)) else [styles]
    if keyframes and weights is not None:
        raise ValueError("give the weights either as `weights` or as `keyframes`, not both")
    source = open_video(video, fps, max_size, max_frames)
    codes = stylizer.style_codes(items, style_size)
    if keyframes:
        names = style_names(items)
        kfs = [parse_keyframe(k, names) if isinstance(k, str) else k for k in keyframes]
        schedule = keyframe_schedule(kfs, len(codes), source.info.fps)
    else:
        fixed = Fn.validate_weights(weights, len(codes))
        schedule = lambda i: fixed  # noqa: E731
    painter = TemporalPainter(stylizer, codes, temporal, float(alpha), preserve_color, work_size)
    return _frames(source, painter, schedule, progress, return_tensor)


def _frames(source: VideoSource, painter: TemporalPainter, schedule, progress: bool, return_tensor: bool):
    bar = tqdm(total=len(source) or None, unit="frame", file=sys.stderr, disable=not progress, desc="video")
    try:
        for i, x in enumerate(source):
            out = painter(x, schedule(i))
            bar.update(1)
            yield out if return_tensor else to_pil(out)
    finally:
        bar.close()
