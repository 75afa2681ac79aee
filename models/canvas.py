"""Where an image sits in the canvas a model sees: a reflected border around it (`pad_border`, so the encoder's
zero padding falls outside the image) and bottom/right padding to the model's stride (`pad_to_multiple`), each
with its inverse. The Stylizer, tiling, video, ONNX export and training's teacher and student all frame
their images here.

Letters: b - batch, c - channels, h/w - the image, H/W - the canvas.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def pad_to_multiple(x: torch.Tensor, m: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad (b, c, h, w) at the bottom/right to multiples of m (reflection; replication when the image is
    too small to reflect). Returns (padded, (h, w)) so `crop_to` can undo it."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % m, (-w) % m
    if ph == 0 and pw == 0:
        return x, (h, w)
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode), (h, w)


def crop_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Undo `pad_to_multiple`: keep the top-left (h, w) of (b, c, H, W)."""
    return x[..., : size[0], : size[1]]


def pad_border(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Reflect-pad (b, c, h, w) by `pad` px on every side (replicate where the image is too small), so the
    image's own border is not where a zero-padded encoder sees its edge."""
    if pad <= 0:
        return x
    mode = "reflect" if min(x.shape[-2:]) > pad else "replicate"
    return F.pad(x, (pad, pad, pad, pad), mode=mode)


def unpad_border(x: torch.Tensor, pad: int, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Undo `pad_border` (and any bottom/right padding after it): the (h, w) = `size` interior; without `size`,
    everything inside the `pad` px on every side."""
    if size is None:
        return x[..., pad:x.shape[-2] - pad, pad:x.shape[-1] - pad] if pad else x
    return x[..., pad:pad + size[0], pad:pad + size[1]]


@dataclass(frozen=True)
class Frame:
    """Where an image sits in the canvas the model sees: `pad` px of reflection on every side, then
    bottom/right padding to a multiple of the model's stride.

    A VGG encoder zero-pads every conv, so the outer ~16-24 px of its features differ from the interior and
    the decoder paints bright or dark frames there (border score 7-10 on 512 px outputs, photos ~3). With
    32 px of reflected image around the content those frames fall outside the crop (measured: 3.0); 16 px
    is not enough (the frame reaches back into the image).
    """

    size: tuple[int, int]  # the image's (h, w)
    pad: int = 32

    def apply(self, x: torch.Tensor, stride: int) -> torch.Tensor:
        """(b, c, h, w) at `size` -> the padded canvas (b, c, H, W), H and W multiples of `stride`."""
        return pad_to_multiple(pad_border(x, self.pad), stride)[0]

    def crop(self, y: torch.Tensor) -> torch.Tensor:
        """The image's own (h, w) out of a canvas-sized (b, c, H, W)."""
        return unpad_border(y, self.pad, self.size)
