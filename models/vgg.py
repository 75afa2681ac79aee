"""VGG encoders described as data, with named taps (relu1_1 ... relu5_4).

Each encoder's weights carry their own input preprocessing (`InputSpec`), so callers always pass
RGB images in [0, 1].

Letters: b - batch, c - channels, h/w - height/width.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

# Architecture as data: numbers are conv widths, 'M' a 2x2 max-pool.
VGG_CFGS: dict[str, list[int | str]] = {
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512],
}

DEFAULT_TAPS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")


@dataclass
class InputSpec:
    """How an RGB image in [0, 1] becomes the network's input."""

    order: str = "rgb"  # channel order the weights expect: 'rgb' or 'bgr'
    scale: float = 1.0  # multiply [0, 1] pixels by this (255 for Caffe-trained weights)
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)  # subtracted after scaling, in `order`
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)  # divided after the mean, in `order`
    input_conv: bool = False  # a learned 1x1 conv first (AdaIN's vgg_normalised)


@dataclass
class EncoderConfig:
    """A VGG encoder: which architecture, how it pads and pools, how inputs are prepared."""

    arch: str = "vgg16"  # key of VGG_CFGS
    padding: str = "zeros"  # 'zeros' (Caffe/Keras/torchvision) or 'reflect' (AdaIN's vgg_normalised)
    ceil_mode: bool = True  # max-pool rounding; Keras 'same' pooling equals ceil_mode on these sizes
    input: InputSpec = field(default_factory=InputSpec)
    name: str = ""  # identifier of the weights, e.g. 'vgg16-hed'


def layer_names(arch: str) -> list[str]:
    """Names of the layers of an architecture in order: conv1_1, relu1_1, ..., pool1, ..."""
    names, block, idx = [], 1, 1
    for v in VGG_CFGS[arch]:
        if v == "M":
            names.append(f"pool{block}")
            block, idx = block + 1, 1
        else:
            names += [f"conv{block}_{idx}", f"relu{block}_{idx}"]
            idx += 1
    return names


def conv_shapes(arch: str) -> list[tuple[str, int, int]]:
    """(name, in_channels, out_channels) of every 3x3 conv of an architecture, in order."""
    shapes, c_in = [], 3
    convs = [n for n in layer_names(arch) if n.startswith("conv")]
    for name, v in zip(convs, [v for v in VGG_CFGS[arch] if v != "M"]):
        shapes.append((name, c_in, int(v)))
        c_in = int(v)
    return shapes


def tap_channels(arch: str, tap: str) -> int:
    """Channels of a named tap, e.g. tap_channels('vgg16', 'relu4_1') == 512."""
    return dict((n.replace("conv", "relu"), c) for n, _, c in conv_shapes(arch))[tap]


def tap_stride(tap: str) -> int:
    """Downsampling factor of a tap: relu{b}_{i} has stride 2**(b-1)."""
    return 2 ** (int(tap[4:].split("_")[0]) - 1)


class VGGEncoder(nn.Module):
    """A frozen VGG feature extractor that returns named taps and stops at the deepest one.

    Args:
        config: architecture, padding, pooling and input preprocessing.
        taps: names of the ReLU outputs to return, e.g. ('relu1_1', 'relu4_1').
    """

    def __init__(self, config: EncoderConfig, taps: tuple[str, ...] = DEFAULT_TAPS):
        super().__init__()
        if config.arch not in VGG_CFGS:
            raise ValueError(f"unknown VGG architecture {config.arch!r}; choose from {sorted(VGG_CFGS)}")
        names = layer_names(config.arch)
        unknown = [t for t in taps if t not in names or not t.startswith("relu")]
        if unknown:
            raise ValueError(f"unknown tap {unknown[0]!r} for {config.arch}; taps are relu names like relu4_1")
        self.config, self.taps = config, tuple(sorted(taps, key=names.index))
        spec = config.input
        self.input_conv = nn.Conv2d(3, 3, 1) if spec.input_conv else None
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(spec.std).view(1, 3, 1, 1), persistent=False)
        last = names.index(self.taps[-1])
        shapes = {n: (i, o) for n, i, o in conv_shapes(config.arch)}
        layers: dict[str, nn.Module] = {}
        for name in names[: last + 1]:
            if name.startswith("conv"):
                layers[name] = nn.Conv2d(*shapes[name], 3, padding=1, padding_mode=config.padding)
            elif name.startswith("relu"):
                layers[name] = nn.ReLU()
            else:
                layers[name] = nn.MaxPool2d(2, 2, ceil_mode=config.ceil_mode)
        self.layers = nn.ModuleDict(layers)
        self.requires_grad_(False)

    def filter_state(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Drop the weights of layers deeper than this encoder's deepest tap (files hold the full VGG)."""
        deeper = {f"layers.{n}.{p}" for n in layer_names(self.config.arch) if n not in self.layers for p in ("weight", "bias")}
        return {k: v for k, v in state.items() if k not in deeper}

    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        """RGB [0, 1] (b, 3, h, w) -> the input these weights were trained on."""
        spec = self.config.input
        x = image.flip(1) if spec.order == "bgr" else image
        x = (x * spec.scale - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        return self.input_conv(x) if self.input_conv is not None else x

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Args: image (b, 3, h, w) RGB in [0, 1]. Returns: {tap: (b, c, h/stride, w/stride)}."""
        x, out = self.preprocess(image), {}
        for name, layer in self.layers.items():
            x = layer(x)
            if name in self.taps:
                out[name] = x
        return out
