"""Keyframes: style weights that change over a clip.

'TIME:NAME=W[,NAME=W...]' (`parse_keyframe`), TIME a frame index ('12') or seconds ('5s', '1.5s'), NAME a style by
its file stem or built-in name (`style_names`); between keyframes the weights are linear mixes of the two
neighbours' normalised weights, held constant before the first and after the last (`keyframe_schedule`).
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Sequence

import torch

from ...models import functional as Fn
from ..grid import LETTERS


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
