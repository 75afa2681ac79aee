"""Writing clips: a video file (PyAV; the source's audio copied packet for packet when the container takes the
codec, else re-encoded), an animated GIF/WebP (Pillow) or a folder of PNG frames, always written to a temporary
file beside the destination and renamed into place only when complete.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image

from ...models.io import atomic_write
from ..images import save_image, to_pil
from .formats import ANIMATION_EXTENSIONS, as_fps, av_reason, require

_CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi"}
_VIDEO_CODEC = {"mp4": "libx264", "mov": "libx264", "matroska": "libx264", "webm": "libvpx-vp9", "avi": "mpeg4"}
# Audio codecs each container takes as they are (copied packet for packet); others are re-encoded to the
# container's default (None: any codec is copied).
_AUDIO_COPY = {"mp4": {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"},
               "mov": {"aac", "mp3", "alac", "ac3", "eac3", "pcm_s16le", "pcm_s24le", "pcm_f32le"},
               "matroska": None, "webm": {"opus", "vorbis"}, "avi": {"mp3", "ac3", "pcm_s16le"}}
_AUDIO_ENCODE = {"mp4": "aac", "mov": "aac", "matroska": "aac", "webm": "libopus", "avi": "libmp3lame"}


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
    path, fps = Path(path), as_fps(fps)
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
        raise ValueError(f"cannot write {path}: {av_reason(e)}") from None
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
