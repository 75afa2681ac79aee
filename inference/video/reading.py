"""Reading clips: video files through PyAV (its wheel carries FFmpeg), animated GIF/WebP through Pillow, folders
of numbered images, or any iterable of images, all as one lazy `VideoSource` of (1, 3, h, w) frames.

A variable frame rate is refused unless `fps` asks for resampling to a constant rate (each output tick shows the
frame nearest in time), so output timing is never silently wrong.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence, Union

import numpy as np
import torch
from PIL import Image

from ...models.files import IMAGE_EXTENSIONS
from ..images import ImageLike, fit_size, load_image
from .formats import ANIMATION_EXTENSIONS, as_fps, av_reason, require

FOLDER_FPS = Fraction(24)  # frame rate of a folder of images when none is given
MAX_FRAME_PIXELS = 3840 * 2160  # larger frames are scaled down to this (4K UHD) unless max_size says less
MAX_DECODE_PIXELS = 8192 * 8192  # frames larger than this are refused before decoding (as images.MAX_PIXELS)

VideoLike = Union[str, os.PathLike, "VideoSource", Iterable[ImageLike]]


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
        fps = as_fps(fps)
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
        raise ValueError(f"{path} is not a video PyAV/FFmpeg can read ({av_reason(e)})") from None
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
                raise ValueError(f"{path}: decoding failed ({av_reason(e)})") from None
    return info, frames
