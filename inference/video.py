"""Video: stylise a clip frame by frame without flicker, with style weights keyframed over time.

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

Clips come from and go to: video files through PyAV (its wheel carries FFmpeg, libx264 included; audio
is copied packet for packet when the output container takes the codec, else re-encoded), animated
GIF/WebP through Pillow, and folders of numbered images. A variable frame rate is refused unless `fps`
asks for resampling to a constant rate (each output tick shows the frame nearest in time), so output
timing is never silently wrong. Outputs are written to a temporary file beside the destination and
renamed into place only when complete.

Keyframes (`Keyframe`, `parse_keyframe`): 'TIME:NAME=W[,NAME=W...]', TIME a frame index ('12') or seconds
('5s', '1.5s'), NAME a style by its file stem or built-in name; the weights between keyframes are linear
mixes of the two neighbours' normalised weights, held constant before the first and after the last.

Letters: k - styles, c - channels, h/w - height/width (working size), H/W - full size.
"""
from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, Iterator, Protocol, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from ..models import functional as Fn
from ..models.contract import StyleCodeLike, StyleModel
from ..models.io import atomic_write

from .detail import Frame, guided_upsample, resize, working_size
from .grid import LETTERS
from .images import IMAGE_EXTENSIONS, ImageLike, fit_size, load_image, save_image, to_pil

VIDEO_EXTENSIONS = (".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi")  # read and written with PyAV
ANIMATION_EXTENSIONS = (".gif", ".webp")  # read and written with Pillow
FOLDER_FPS = Fraction(24)  # frame rate of a folder of images when none is given
MAX_FRAME_PIXELS = 3840 * 2160  # larger frames are scaled down to this (4K UHD) unless max_size says less
MAX_DECODE_PIXELS = 8192 * 8192  # frames larger than this are refused before decoding (as images.MAX_PIXELS)
PIP_VIDEO = "pip install 'stylemix[video]'"
_CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi"}
_VIDEO_CODEC = {"mp4": "libx264", "mov": "libx264", "matroska": "libx264", "webm": "libvpx-vp9", "avi": "mpeg4"}
# Audio codecs each container takes as they are (copied packet for packet); others are re-encoded to the
# container's default (None: any codec is copied).
_AUDIO_COPY = {"mp4": {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"},
               "mov": {"aac", "mp3", "alac", "ac3", "eac3", "pcm_s16le", "pcm_s24le", "pcm_f32le"},
               "matroska": None, "webm": {"opus", "vorbis"}, "avi": {"mp3", "ac3", "pcm_s16le"}}
_AUDIO_ENCODE = {"mp4": "aac", "mov": "aac", "matroska": "aac", "webm": "libopus", "avi": "libmp3lame"}

VideoLike = Union[str, os.PathLike, "VideoSource", Iterable[ImageLike]]


# --- what the stylisation needs ------------------------------------------------------------------------

class VideoStylizer(Protocol):
    """What `stylize_video` needs of a `Stylizer` (inference/api.py): its model, device, precision and
    style resolution. A Protocol, so this module does not import api.py (which delegates to it)."""

    model: StyleModel
    device: torch.device

    @property
    def stride(self) -> int: ...

    def autocast(self) -> contextlib.AbstractContextManager: ...

    def style_codes(self, styles, max_size: int | None = 512) -> list[StyleCodeLike]: ...


def require(module: str, what: str):
    """Import an optional dependency of the `video` extra ('av' or 'cv2'), or ImportError saying what needs it
    and the one pip command that installs it."""
    try:
        if module == "av":
            import av

            return av
        if module == "cv2":
            import cv2

            return cv2
    except ImportError:
        raise ImportError(f"{what} needs the video extra (PyAV and OpenCV), which is not installed; "
                          f"run: {PIP_VIDEO}") from None
    raise KeyError(module)


# --- keyframes -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Keyframe:
    """Blend weights at one moment of the clip.

    Args:
        time: frame index (0 = the first frame), or seconds when `seconds`.
        weights: one non-negative weight per style (normalised when used).
        seconds: `time` is in seconds.
    """

    time: float
    weights: tuple[float, ...]
    seconds: bool = False

    def frame(self, fps: Fraction | float) -> float:
        """Position in frames (fractional for seconds that fall between frames)."""
        return float(self.time) * float(fps) if self.seconds else float(self.time)

    def label(self) -> str:
        return f"{self.time:g}s" if self.seconds else f"frame {self.time:g}"


_TIME = re.compile(r"(?:(\d+)|(\d+(?:\.\d*)?|\.\d+)s)")


def parse_time(text: str) -> tuple[float, bool]:
    """'12' -> (12, False) (a frame index); '5s' or '1.5s' -> (5.0, True) (seconds). ValueError otherwise."""
    m = _TIME.fullmatch(text.strip())
    if not m:
        raise ValueError(f"bad keyframe time {text!r}: give a frame index (12) or seconds (5s, 1.5s)")
    return (float(m.group(1)), False) if m.group(1) is not None else (float(m.group(2)), True)


def style_names(styles: Sequence[object]) -> list[str]:
    """The names keyframes use for styles: a path's file stem ('art/monet.jpg' -> 'monet'), a built-in style's
    own name, and the letter of its position (A, B, ...) for styles given as images or codes."""
    return [Path(s).stem if isinstance(s, (str, os.PathLike)) else LETTERS[i % len(LETTERS)]
            for i, s in enumerate(styles)]


def parse_keyframe(spec: str, names: Sequence[str]) -> Keyframe:
    """'TIME:NAME=W[,NAME=W...]' -> Keyframe; styles not named get weight 0.

    Args:
        spec: e.g. '0:monet=1', '5s:monet=0.3,klimt=0.7'.
        names: the styles' names, in order (`style_names`).

    Raises:
        ValueError naming the spec and what is wrong (time, unknown or ambiguous name, weight, all zero).
    """
    time_text, sep, body = spec.partition(":")
    if not sep or not body.strip():
        raise ValueError(f"bad keyframe {spec!r}: write TIME:NAME=W[,NAME=W...], e.g. 0:{names[0]}=1 or "
                         f"5s:{names[0]}=0.3,{names[-1]}=0.7")
    time, seconds = parse_time(time_text)
    weights = [0.0] * len(names)
    for item in body.split(","):
        name, eq, value = item.strip().partition("=")
        name = name.strip()
        if not eq:
            raise ValueError(f"bad keyframe {spec!r}: {item.strip()!r} needs a weight, as in {name or names[0]}=1")
        hits = [i for i, n in enumerate(names) if n == name]
        if not hits:
            raise ValueError(f"unknown style {name!r} in keyframe {spec!r}; the styles are: {', '.join(names)}")
        if len(hits) > 1:
            raise ValueError(f"style name {name!r} in keyframe {spec!r} is ambiguous ({len(hits)} styles have it); "
                             f"rename one of the files")
        try:
            w = float(value)
        except ValueError:
            w = float("nan")
        if not (math.isfinite(w) and w >= 0):
            raise ValueError(f"bad weight {value.strip()!r} for {name!r} in keyframe {spec!r}: weights are "
                             f"non-negative numbers like 0.7")
        weights[hits[0]] = w
    if sum(weights) <= 0:
        raise ValueError(f"keyframe {spec!r} gives every style weight 0; at least one must be positive")
    return Keyframe(time, tuple(weights), seconds)


def keyframe_schedule(keyframes: Sequence[Keyframe], k: int, fps: Fraction | float) -> Callable[[int], torch.Tensor]:
    """Keyframes -> weights(frame index) (k,) float32, summing to 1.

    Between two keyframes the weights are the linear mix of their normalised weights, by the frame's position
    between them; before the first keyframe its weights hold, after the last the last's.

    Raises:
        ValueError if a keyframe has not k weights, or the times (in frames) are not strictly increasing.
    """
    if not keyframes:
        raise ValueError("keyframes: give at least one")
    rows, pos = [], []
    for kf in keyframes:
        if len(kf.weights) != k:
            raise ValueError(f"keyframe at {kf.label()} has {len(kf.weights)} weights for {k} styles")
        rows.append(Fn.validate_weights(list(kf.weights), k).double())
        pos.append(kf.frame(fps))
    for a, b, ka, kb in zip(pos, pos[1:], keyframes, keyframes[1:]):
        if b <= a:
            raise ValueError(f"keyframes must be in time order: {kb.label()} (frame {b:g}) comes after "
                             f"{ka.label()} (frame {a:g})")
    table = torch.stack(rows)  # (n_keyframes, k)

    def weights(i: int) -> torch.Tensor:
        j = sum(p <= i for p in pos)  # keyframes at or before frame i
        if j == 0:
            return table[0].float()
        if j == len(pos):
            return table[-1].float()
        t = (i - pos[j - 1]) / (pos[j] - pos[j - 1])
        return ((1 - t) * table[j - 1] + t * table[j]).float()

    return weights


# --- temporal stabilisation ----------------------------------------------------------------------------

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


# --- reading -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class VideoInfo:
    """What a clip is: frame size, rate and count (after any resampling and size cap), and whether it has audio.

    Args:
        size: (h, w) of the frames as read (rotation applied), before `max_size`.
        fps: constant frame rate of the frames as yielded.
        frames: number of frames yielded (0 when unknown, e.g. an unsized iterable).
        audio: the source has an audio stream (copied by `write_video`).
        kind: 'video', 'animation', 'folder' or 'frames'.
        variable: the source's frame rate varies (it is then resampled to `fps`).
        declared: seconds the file's header says the clip lasts (0 when it does not say); more than the frames
            cover when the file was cut short (see `truncated`).
    """

    size: tuple[int, int]
    fps: Fraction
    frames: int
    audio: bool = False
    kind: str = "video"
    variable: bool = False
    declared: float = 0.0

    @property
    def seconds(self) -> float:
        """How long the frames last."""
        return self.frames / float(self.fps)

    @property
    def truncated(self) -> bool:
        """The header declares more than the frames cover, by more than 0.5 s and 2 frames (audio may outlast the
        picture a little): the file was cut short, e.g. a copy or a recording stopped before its end."""
        return self.frames > 0 and self.declared - self.seconds > max(0.5, 2 / float(self.fps))


class VideoSource:
    """A clip opened for reading: `info`, and iteration yields frames (1, 3, h, w) float32 in [0, 1], at most
    `max_size` on the long side; read lazily, one frame in memory at a time. Build with `open_video`."""

    def __init__(self, path: Path | None, info: VideoInfo, frames: Callable[[], Iterator[np.ndarray | torch.Tensor]],
                 max_size: int | None, max_frames: int | None = None):
        self.path, self.info, self._frames, self.max_size = path, info, frames, max_size
        self.max_frames = max_frames

    @property
    def out_size(self) -> tuple[int, int]:
        """(h, w) of the frames yielded."""
        return fit_size(self.info.size, self.max_size) if self.max_size else self.info.size

    def __len__(self) -> int:
        n = self.info.frames
        return n if self.max_frames is None else min(n, self.max_frames) if n else self.max_frames

    def __iter__(self) -> Iterator[torch.Tensor]:
        for i, arr in enumerate(self._frames()):
            if self.max_frames is not None and i >= self.max_frames:
                return
            x = load_image(arr, self.max_size)
            if tuple(x.shape[-2:]) != self.out_size:
                where = f" of {self.path}" if self.path else ""
                raise ValueError(f"frame {i}{where} is {x.shape[-1]}x{x.shape[-2]} px but the first is "
                                 f"{self.out_size[1]}x{self.out_size[0]}; all frames must have one size")
            yield x


def open_video(src: VideoLike, fps: float | Fraction | None = None, max_size: int | None = None,
               max_frames: int | None = None) -> VideoSource:
    """Open a clip: a video file (PyAV), an animated GIF/WebP, a folder of images (sorted by name, numbers in
    names compared as numbers), or an iterable of images (arrays, PIL images, tensors).

    Args:
        src: path or frames; an open `VideoSource` is returned as it is.
        fps: resample a file to this constant rate (needed for a variable frame rate); the rate of a folder or
            of frames (default 24).
        max_size: scale frames down so the long side is at most this; frames larger than 4K UHD are scaled down
            to its pixel count anyway (MAX_FRAME_PIXELS).
        max_frames: read at most this many frames (a preview).

    Raises:
        ValueError (one line, naming the file) for a missing file, not a video, no frames, a variable frame
        rate without `fps`, frames too small or too large; ImportError if PyAV is needed but not installed.
    """
    if isinstance(src, VideoSource):
        return src
    if fps is not None:
        fps = _as_fps(fps)
    if max_size is not None and max_size < 16:
        raise ValueError(f"max_size must be at least 16 px, got {max_size}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be at least 1, got {max_frames}")
    if isinstance(src, (str, os.PathLike)):
        path = Path(src)
        if path.is_dir():
            info, frames = _open_folder(path, fps)
        elif not path.exists():
            raise FileNotFoundError(f"no such video: {path}")
        elif not path.is_file():  # a FIFO: it would block, and a clip is read twice (its timing, then its frames)
            raise ValueError(f"{path} is not a regular file (a FIFO, socket or device); give a video file")
        elif path.suffix.lower() in ANIMATION_EXTENSIONS:
            info, frames = _open_animation(path, fps)
        elif path.suffix.lower() in IMAGE_EXTENSIONS:
            raise ValueError(f"{path} is a still image, not a video; use 'stylemix stylize' for images, or give a "
                             f"folder of frames")
        else:
            info, frames = _open_container(path, fps)
    else:
        path = None
        it = iter(src)
        first = next(it, None)
        if first is None:
            raise ValueError("no frames given")
        size = tuple(load_image(first).shape[-2:])
        n = len(src) if isinstance(src, Sequence) else 0
        frames = (lambda: iter(src)) if isinstance(src, Sequence) else _once(first, it)
        info = VideoInfo(size, fps or FOLDER_FPS, n, kind="frames")
    return VideoSource(path, info, frames, capped_max_size(info.size, max_size, path), max_frames)


def _once(first, rest: Iterator) -> Callable[[], Iterator]:
    """frames() for a one-shot iterable whose first item was already taken: readable once."""
    used = [False]

    def frames():
        if used[0]:
            raise ValueError("these frames were given as a one-shot iterator and have been read already")
        used[0] = True
        yield first
        yield from rest
    return frames


def _as_fps(fps: float | Fraction) -> Fraction:
    try:
        f = Fraction(fps).limit_denominator(1001) if not isinstance(fps, Fraction) else fps
    except (TypeError, ValueError):
        raise ValueError(f"fps must be a positive number, got {fps!r}") from None
    if not 0 < f <= 1000:
        raise ValueError(f"fps must be a positive number of frames per second up to 1000, got {fps}")
    return f


def capped_max_size(size: tuple[int, int], max_size: int | None = None, path: Path | None = None) -> int | None:
    """The max_size frames of `size` (h, w) are read at: `max_size`, or smaller if the frames would exceed
    MAX_FRAME_PIXELS (4K UHD). ValueError for frames over MAX_DECODE_PIXELS or with a side under 16 px."""
    h, w = size
    if h * w > MAX_DECODE_PIXELS:
        raise ValueError(f"{path or 'the clip'} has {w}x{h} px frames, more than {MAX_DECODE_PIXELS // 10**6} "
                         f"megapixels; refusing to decode them")
    if h and w and min(fit_size(size, max_size) if max_size else size) < 16:
        raise ValueError(f"{path or 'the clip'} has {w}x{h} px frames; frames need a short side of at least 16 px")
    fh, fw = fit_size(size, max_size) if max_size else size
    if fh * fw > MAX_FRAME_PIXELS:
        long_side = int(max(h, w) * math.sqrt(MAX_FRAME_PIXELS / (h * w)))
        return long_side
    return max_size


def _natural(p: Path) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)]


def _open_folder(path: Path, fps: Fraction | None):
    files = sorted((p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS), key=_natural)
    if not files:
        raise ValueError(f"no frames in folder {path}: it holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    size = tuple(load_image(files[0], max_pixels=MAX_DECODE_PIXELS, min_side=1).shape[-2:])  # upright, as read
    return VideoInfo(size, fps or FOLDER_FPS, len(files), kind="folder"), lambda: (f for f in files)


def _open_animation(path: Path, fps: Fraction | None):
    try:
        im = Image.open(path)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path} is not a readable {path.suffix[1:].upper()} ({e})") from None
    with im:
        n = getattr(im, "n_frames", 1)
        durations = []
        for i in range(n):
            im.seek(i)
            im.load()  # WebP reads a frame's duration when decoding it
            durations.append(int(im.info.get("duration", 100) or 100))
        size = (im.height, im.width)
    times = np.concatenate([[0], np.cumsum(durations)]).astype(np.int64)  # ms; the last is the end
    rate, variable = _rate([Fraction(int(t), 1000) for t in times[:-1]], Fraction(1, 1000),
                           Fraction(len(durations) * 1000, int(times[-1])))
    info, times_s = _timed_info(path, size, rate, variable, fps, [Fraction(int(t), 1000) for t in times], False, "animation")

    def frames():
        with Image.open(path) as img:
            def seq():
                for i in range(n):
                    img.seek(i)
                    yield img.convert("RGB")
            yield from _resample(zip(times_s, seq()), times_s[-1], info.fps) if fps is not None else seq()
    return info, frames


def _timed_info(path, size, rate, variable, fps, times, audio, kind):
    """VideoInfo of a timed source; refuses a variable rate unless `fps` resamples it."""
    if variable and fps is None:
        raise ValueError(f"{path} has a variable frame rate (frame intervals from {_ms(times, min)} to "
                         f"{_ms(times, max)} ms); pass --fps (fps=) to resample it to a constant rate, e.g. --fps "
                         f"{max(1, round(float(rate)))}")
    if fps is None:
        return VideoInfo(size, rate, len(times) - 1, audio, kind, variable), times
    n = math.ceil((times[-1] - times[0]) * fps)
    return VideoInfo(size, fps, max(1, n), audio, kind, variable), times


def _ms(times, pick) -> str:
    return f"{float(pick(b - a for a, b in zip(times, times[1:]))) * 1000:.1f}"


def _rate(pts: Sequence[Fraction], tick: Fraction, average: Fraction) -> tuple[Fraction, bool]:
    """(frame rate, variable?) from presentation times (sorted): constant when every interval is within
    max(1.5 ticks of the time base, 10 %) of 1 / rate."""
    if len(pts) < 2:
        return average, False
    gaps = [b - a for a, b in zip(pts, pts[1:])]
    step = 1 / average
    tol = max(tick * 3 / 2, step / 10)
    return average, any(abs(g - step) > tol for g in gaps)


def _resample(timed: Iterable[tuple[Fraction, object]], end: Fraction, fps: Fraction) -> Iterator[object]:
    """Frames at presentation times -> frames at a constant `fps` from the first time to `end`: each output tick
    shows the frame whose time is nearest (frames repeat or drop)."""
    i, prev, t0 = 0, None, None
    for t, frame in timed:
        if prev is None:
            prev, t0 = (t, frame), t
            continue
        mid = (prev[0] + t) / 2
        while t0 + i / fps < mid:
            yield prev[1]
            i += 1
        prev = (t, frame)
    if prev is not None:
        while t0 + i / fps < end or i == 0:
            yield prev[1]
            i += 1


def _open_container(path: Path, fps: Fraction | None):
    av = require("av", f"reading {path.suffix or 'video'} files")
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise ValueError(f"{path} has no video stream")
            vs = c.streams.video[0]
            if (vs.codec_context.width or 0) * (vs.codec_context.height or 0) > MAX_DECODE_PIXELS:
                capped_max_size((vs.codec_context.height, vs.codec_context.width), None, path)  # refuses before decoding
            audio = bool(c.streams.audio)
            tb = vs.time_base or Fraction(1, 1000)
            pts = sorted(p.pts for p in c.demux(vs) if p.pts is not None)
            rotation = 0
            first = None
            c.seek(0)
            for fr in c.decode(vs):
                first, rotation = fr, int(round(fr.rotation or 0))
                break
            if first is None:
                raise ValueError(f"{path} has no video frames")
            size = (first.height, first.width)
            nominal = vs.average_rate or vs.guessed_rate
            # the video stream's own length where the container keeps one (mp4), else the container's (mkv)
            declared = float(vs.duration * tb) if vs.duration else (c.duration or 0) / 1e6
    except av.FFmpegError as e:
        raise ValueError(f"{path} is not a video PyAV/FFmpeg can read ({_av_reason(e)})") from None
    if rotation % 180:
        size = size[::-1]
    if len(pts) < 1:
        pts = []
    times = [Fraction(p) * tb for p in pts]
    rate = Fraction(nominal) if nominal else (Fraction(len(times) - 1) / (times[-1] - times[0]) if len(times) > 1
                                              else FOLDER_FPS)
    rate, variable = _rate(times, tb, rate)
    if not times:  # no timestamps (raw streams): count frames on the fly, constant rate assumed
        info = VideoInfo(size, fps or rate, 0, audio, "video", False)
        ends = None
    else:
        ends = times + [times[-1] + 1 / rate]
        info, _ = _timed_info(path, size, rate, variable, fps, ends, audio, "video")
        info = replace(info, declared=declared)

    def frames():
        with av.open(str(path)) as cont:
            stream = cont.streams.video[0]
            stream.thread_type = "AUTO"

            def seq():
                for k, fr in enumerate(cont.decode(stream)):
                    arr = fr.to_ndarray(format="rgb24")
                    turn = round((fr.rotation or 0) / 90) % 4
                    t = Fraction(fr.pts) * stream.time_base if fr.pts is not None else Fraction(k) / rate
                    yield t, (np.ascontiguousarray(np.rot90(arr, turn)) if turn else arr)
            try:
                if fps is not None and ends is not None:
                    yield from _resample(seq(), ends[-1], info.fps)
                else:
                    yield from (a for _, a in seq())
            except av.FFmpegError as e:
                raise ValueError(f"{path}: decoding failed ({_av_reason(e)})") from None
    return info, frames


def _av_reason(e: Exception) -> str:
    return getattr(e, "strerror", None) or str(e).split(":")[0] or type(e).__name__


# --- writing -------------------------------------------------------------------------------------------

def output_kind(path: str | os.PathLike) -> str:
    """'video', 'animation' or 'folder' from the path (a name without an extension or ending in '/' is a folder
    of PNG frames). ValueError for an unknown extension."""
    p = Path(path)
    ext = p.suffix.lower()
    if ext in _CONTAINERS:
        return "video"
    if ext in ANIMATION_EXTENSIONS:
        return "animation"
    if p.is_dir() or not ext or str(path).endswith(("/", os.sep)):
        return "folder"
    raise ValueError(f"cannot write a clip as {p.name}: use a video ({', '.join(_CONTAINERS)}), an animation "
                     f"({', '.join(ANIMATION_EXTENSIONS)}) or a folder for PNG frames")


def check_output(path: str | os.PathLike, inputs: Sequence[str | os.PathLike] = ()) -> str:
    """Check a clip output before any work: a known kind, not an input, a folder that accepts new files, a frames
    folder that is new or empty. Returns the kind (`output_kind`). ValueError naming the path otherwise."""
    p = Path(path)
    kind = output_kind(p)
    if kind == "video":
        require("av", f"writing {p.suffix} files")
    for q in inputs:
        q = Path(q)
        if q.exists() and p.exists() and os.path.samefile(p, q):
            raise ValueError(f"output {p} is one of the inputs; refusing to overwrite it")
    if kind == "folder":
        if p.exists() and (not p.is_dir() or any(p.iterdir())):
            raise ValueError(f"output folder {p} exists and is not empty; give a new folder for the frames")
    elif p.is_dir():
        raise ValueError(f"output {p} is a folder; give a file such as {p / 'out.mp4'}")
    folder = next(f for f in (p.parent, *p.parent.parents) if f.exists())
    try:
        if not folder.is_dir():
            raise NotADirectoryError(20, "not a folder")
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise ValueError(f"cannot write {p}: {folder} is not a writable folder ({e.strerror or e})") from None
    return kind


def write_video(frames: Iterable[Image.Image | torch.Tensor], path: str | os.PathLike, fps: float | Fraction,
                audio_from: str | os.PathLike | None = None, quality: int = 18) -> int:
    """Write frames as a video file, an animated GIF/WebP or a folder of PNGs (by `output_kind`), atomically:
    into a temporary file (folder) beside `path`, renamed into place when every frame is written; removed if
    anything fails or is interrupted, so no partial output is left.

    Args:
        frames: PIL images or (1, 3, h, w) / (3, h, w) tensors in [0, 1], all one size, consumed lazily (GIF/WebP
            hold the encoded frames until the end).
        path: the output.
        fps: constant frame rate.
        audio_from: a video whose audio stream is copied into a video output (cut to the video's length).
        quality: x264 CRF / VP9 CRF + 12 (lower is better; 18 is visually lossless for x264).

    Returns:
        The number of frames written. ValueError if there were none.
    """
    path, fps = Path(path), _as_fps(fps)
    kind = output_kind(path)
    pil = (f if isinstance(f, Image.Image) else to_pil(f) for f in frames)
    count = [0]

    def counted():
        for im in pil:
            count[0] += 1
            yield im

    if kind == "folder":
        _write_folder(counted(), path)
    else:
        writer = _write_container if kind == "video" else _write_animation
        try:
            atomic_write(path, lambda tmp: writer(counted(), tmp, path, fps, audio_from, quality))
        except (PermissionError, NotADirectoryError, FileExistsError) as e:
            raise ValueError(f"cannot write {path}: {e.strerror or e}") from None
    return count[0]


def _write_folder(frames: Iterator[Image.Image], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        n = 0
        for n, im in enumerate(frames, 1):
            save_image(im, tmp / f"frame_{n:06d}.png")
        if n == 0:
            raise ValueError(f"no frames to write to {path}")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; give it a normal folder's permissions
        if path.exists():
            path.rmdir()  # empty (checked by check_output); os.replace needs it gone or empty
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write_animation(frames: Iterator[Image.Image], tmp: str, path: Path, fps: Fraction, audio_from, quality) -> None:
    first = next(frames, None)
    if first is None:
        raise ValueError(f"no frames to write to {path}")
    ms = max(1, round(1000 / float(fps)))
    if path.suffix.lower() == ".gif":
        # One palette for the clip, from the first frame, no dithering: per-frame palettes and dither noise flicker.
        palette = first.quantize(256, method=Image.Quantize.MEDIANCUT)
        rest = (im.quantize(palette=palette, dither=Image.Dither.NONE) for im in frames)
        palette.save(tmp, format="GIF", save_all=True, append_images=rest, duration=ms, loop=0, optimize=False)
    else:
        first.save(tmp, format="WEBP", save_all=True, append_images=frames, duration=ms, loop=0, quality=90)


def _write_container(frames: Iterator[Image.Image], tmp: str, path: Path, fps: Fraction, audio_from,
                     quality: int) -> None:
    av = require("av", f"writing {path.suffix} files")
    fmt = _CONTAINERS[path.suffix.lower()]
    first = next(frames, None)
    if first is None:
        raise ValueError(f"no frames to write to {path}")
    w, h = first.size
    w2, h2 = w - w % 2, h - h % 2  # 4:2:0 chroma needs even sides: an odd side loses its last pixel
    src = av.open(str(audio_from)) if audio_from is not None else None
    try:
        with av.open(tmp, "w", format=fmt) as out:
            vs = out.add_stream(_VIDEO_CODEC[fmt], rate=fps)
            vs.width, vs.height, vs.pix_fmt = w2, h2, "yuv420p"
            if fmt == "webm":
                vs.options = {"crf": str(quality + 12), "b:v": "0"}
            elif fmt != "avi":
                vs.options = {"crf": str(quality), "preset": "medium"}
            else:
                vs.bit_rate = 8_000_000
            audio = _audio_plan(out, src, fmt, av)
            end = Fraction(0)
            for i, im in enumerate(_chain(first, frames)):
                if im.size != (w, h):
                    raise ValueError(f"frame {i} is {im.size[0]}x{im.size[1]} px, the first {w}x{h}")
                vf = av.VideoFrame.from_ndarray(np.asarray(im)[:h2, :w2], format="rgb24")
                vf.pts = i
                vf.time_base = 1 / fps
                for pkt in vs.encode(vf):
                    out.mux(pkt)
                end = (i + 1) / fps
                if audio is not None:
                    audio.until(end)
            for pkt in vs.encode():
                out.mux(pkt)
            if audio is not None:
                audio.until(end, flush=True)
    except av.FFmpegError as e:
        raise ValueError(f"cannot write {path}: {_av_reason(e)}") from None
    finally:
        if src is not None:
            src.close()


def _chain(first, rest):
    yield first
    yield from rest


class _AudioCopy:
    """Moves the source's audio into the output up to a time (seconds from the source's first video frame, which
    is the output's time 0): packets copied as they are (shifted by the video's start time, so they stay in sync),
    or decoded and re-encoded when the output container does not take the codec."""

    def __init__(self, out, stream, encoder, av):
        self.out, self.src_stream, self.av = out, stream, av
        self.packets = stream.container.demux(stream)
        self.pending = None
        if encoder is None:
            self.dst = out.add_stream_from_template(stream)
            self.encoder = None
        else:
            rate = stream.codec_context.sample_rate or 48000
            self.dst = out.add_stream(encoder, rate=48000 if encoder == "libopus" else rate)
            self.dst.layout = "stereo" if encoder == "libopus" else (stream.codec_context.layout.name or "stereo")
            self.encoder = av.AudioResampler(format=self.dst.codec_context.format, layout=self.dst.layout,
                                             rate=self.dst.codec_context.sample_rate)
        video = stream.container.streams.video
        first = video[0].start_time if video else None  # the source's video starts at output time 0
        self.start = Fraction(first) * video[0].time_base if first is not None else Fraction(0)
        self.shift = round(self.start / stream.time_base)  # in the audio's time base

    def until(self, end: Fraction, flush: bool = False) -> None:
        """Mux source audio whose time is before `end` (seconds from the start)."""
        for pkt in self._before(end):
            if self.encoder is None:
                pkt.stream = self.dst
                pkt.pts = None if pkt.pts is None else pkt.pts - self.shift
                pkt.dts -= self.shift
                self.out.mux(pkt)
            else:
                for frame in pkt.decode():
                    frame.pts = None
                    for f in self.encoder.resample(frame):
                        self.out.mux(self.dst.encode(f))
        if flush and self.encoder is not None:
            for f in self.encoder.resample(None):
                self.out.mux(self.dst.encode(f))
            self.out.mux(self.dst.encode(None))

    def _before(self, end: Fraction):
        while True:
            pkt = self.pending if self.pending is not None else next(self.packets, None)
            self.pending = None
            if pkt is None:
                return
            if pkt.dts is None:
                continue
            t = Fraction(pkt.pts if pkt.pts is not None else pkt.dts) * pkt.time_base - self.start
            if t >= end:
                self.pending = pkt
                return
            yield pkt


def _audio_plan(out, src, fmt: str, av) -> _AudioCopy | None:
    if src is None or not src.streams.audio:
        return None
    stream = src.streams.audio[0]
    name = stream.codec_context.name
    allowed = _AUDIO_COPY[fmt]
    return _AudioCopy(out, stream, None if allowed is None or name in allowed else _AUDIO_ENCODE[fmt], av)


# --- the whole clip ------------------------------------------------------------------------------------

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
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
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
