"""Clip formats and the optional libraries behind them: which suffixes are videos (PyAV) or animations (Pillow),
`require` for the `video` extra's modules, and the checks both reading and writing share."""
from __future__ import annotations

from fractions import Fraction

VIDEO_EXTENSIONS = (".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi")  # read and written with PyAV
ANIMATION_EXTENSIONS = (".gif", ".webp")  # read and written with Pillow
PIP_VIDEO = "pip install 'stylemix[video]'"


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


def as_fps(fps: float | Fraction) -> Fraction:
    """`fps` as a Fraction (limited to denominators up to 1001, as 30000/1001); ValueError unless in (0, 1000]."""
    try:
        f = Fraction(fps).limit_denominator(1001) if not isinstance(fps, Fraction) else fps
    except (TypeError, ValueError):
        raise ValueError(f"fps must be a positive number, got {fps!r}") from None
    if not 0 < f <= 1000:
        raise ValueError(f"fps must be a positive number of frames per second up to 1000, got {fps}")
    return f


def av_reason(e: Exception) -> str:
    """The short reason of a PyAV/FFmpeg error, for a one-line message."""
    return getattr(e, "strerror", None) or str(e).split(":")[0] or type(e).__name__
