"""Shared pytest fixtures. Tests never need ~/.cache, ../shared or the network.

Every test runs with STYLEMIX_CACHE pointing at an empty temporary folder and STYLEMIX_OFFLINE=1
(autouse `_isolated_cache`), so a test that silently depends on the developer's weight cache or on
PyPI fails here exactly as it would on a clean CI machine. Add new fixtures below; keep them cheap.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylemix.models import precision
from stylemix.models.adain import AdaINConfig, AdaINModel  # the package installed: pip install -e '.[test]'
from stylemix.models.convert import ENCODER_PRESETS
from stylemix.models.io import save_json, save_tensors, to_dict
from stylemix.models.vgg import EncoderConfig, VGGEncoder


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty weights cache, offline: no test reads ~/.cache/stylemix or downloads anything."""
    cache = tmp_path_factory.mktemp("stylemix-cache")
    monkeypatch.setenv("STYLEMIX_CACHE", str(cache))
    monkeypatch.setenv("STYLEMIX_OFFLINE", "1")
    return cache


@pytest.fixture(autouse=True)
def _no_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    """Precision 'auto' means fp32 in every test, whatever this CPU offers (tests/test_precision.py covers
    the decision itself); a test that wants bf16 asks for it."""
    monkeypatch.setattr(precision, "_cpu_flags", lambda: frozenset())
    monkeypatch.setattr(precision, "_cpu_capability", lambda: "DEFAULT")


@pytest.fixture
def stylemix_cache(_isolated_cache: Path) -> Path:
    """The (empty) folder STYLEMIX_CACHE points at for this test; write encoder dirs under encoders/<name>."""
    return _isolated_cache


@pytest.fixture
def random_cached_encoder(stylemix_cache: Path) -> None:
    """vgg16-hed's layout and preprocessing with random weights, where the cache would hold it (shipped models that
    load it, e.g. adain-fast's style hint, run offline; built-in names use their banked codes, not the encoder)."""
    torch.manual_seed(0)
    cfg = ENCODER_PRESETS["vgg16-hed"]
    enc = VGGEncoder(cfg, ("relu5_3",))
    d = stylemix_cache / "encoders" / "vgg16-hed"
    save_json(d / "config.json", {"kind": "encoder", "encoder": to_dict(cfg)})
    save_tensors(d / "encoder.safetensors", {k: v.contiguous() for k, v in enc.state_dict().items()})


@pytest.fixture
def tiny_model() -> AdaINModel:
    """A randomly initialised AdaINModel with the default architecture (VGG16 to relu4_1 + mirror
    decoder), seeded with torch.manual_seed(0), in eval mode. Use images <= 64 px (multiples of 8)."""
    torch.manual_seed(0)
    return AdaINModel(AdaINConfig()).eval()


def _calibrated_adain(seed: int = 0, config: AdaINConfig | None = None) -> tuple[AdaINModel, AdaINConfig]:
    """A random AdaINModel whose outputs are informative: He-initialised convs keep activation scale
    through the encoder (so different styles give different statistics), and the decoder's last conv is
    rescaled so a reconstruction lands around 0.5 +- 0.2 instead of being clamped to 0 or 1."""
    from torch import nn

    from stylemix.models.decoder import DecoderConfig

    torch.manual_seed(seed)
    config = config or AdaINConfig(decoder=DecoderConfig(width=0.25))
    model = AdaINModel(config).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
        raw = model.decode(model.encode(torch.rand(1, 3, 32, 32)))
        last, k = model.decoder.convs[-1], 0.2 / raw.std()
        last.weight.mul_(k)
        last.bias.copy_(0.5 - raw.mean((0, 2, 3)) * k)
    return model, config


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model dir (config.json + encoder.safetensors + decoder.safetensors) of a small random AdaIN model
    (VGG16 encoder to relu4_1, decoder width 0.25) that `Stylizer.from_pretrained(dir)` loads offline.
    Read-only: copy it before changing anything."""
    from stylemix.models.io import save_model_dir

    model, config = _calibrated_adain()
    out = tmp_path_factory.mktemp("tiny-adain")
    return save_model_dir(model, "adain", config, out, encoder="vgg16-hed", with_encoder=True)


@pytest.fixture
def make_calibrated_model():
    """Factory: make_calibrated_model(config=None, seed=0) -> a random AdaINModel with informative outputs
    (see `_calibrated_adain`; default config: VGG16 to relu4_1, decoder width 0.25). Use it instead of
    `tiny_model` when a test compares output images: tiny_model's outputs are nearly constant."""
    return lambda config=None, seed=0: _calibrated_adain(seed, config)[0]


@pytest.fixture
def hint_reference():
    """hint_reference(hint, code, tap) -> (mean', std'): models/hint.py's documented formula for one StyleCode at one
    tap, written out independently (float64, returned in the code's dtype), to check StyleHint against."""
    def corrected(hint, code, tap):
        def standard(x):
            y = torch.log1p(x.double())
            return (y - y.mean()) / y.std()
        z = torch.cat([standard(code.mean[t]) for t in hint.taps] + [standard(code.std[t]) for t in hint.taps])
        m = hint.maps[tap]
        out = (m.weight.double() @ z + m.bias.double()) / len(z) ** 0.5
        c, mean, std = len(code.mean[tap]), code.mean[tap].double(), code.std[tap].double()
        return (mean + out[:c]).to(code.mean[tap].dtype), (std * out[c:].exp()).to(code.std[tap].dtype)
    return corrected


@pytest.fixture
def unblock_fifo():
    """unblock_fifo(path, seconds=15): if a reader still waits on the FIFO `path` after `seconds`, open it for
    writing and close it (the reader sees an empty file), so a test of code that would block on a FIFO fails
    instead of hanging the run."""
    import os
    import threading

    timers = []

    def later(path: Path, seconds: float = 15.0) -> None:
        def unblock():
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:  # no reader waiting
                pass
        timers.append(threading.Timer(seconds, unblock))
        timers[-1].start()

    yield later
    for t in timers:
        t.cancel()


# --- a tiny training run ---------------------------------------------------------------------------

def _write_image(path: Path, h: int, w: int, seed: int) -> Path:
    """A smooth random colour image (blurred noise, so JPEG/WebP keep it recognisable)."""
    rng = np.random.default_rng(seed)
    small = rng.random((h // 8 + 1, w // 8 + 1, 3))
    img = Image.fromarray((small * 255).astype(np.uint8)).resize((w, h), Image.BICUBIC)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def _encoder_dir(root: Path) -> Path:
    """A random-weights VGG16 encoder (layers up to relu2_1) saved like a real encoder dir."""
    torch.manual_seed(123)
    cfg = EncoderConfig(arch="vgg16", name="tiny-random")
    enc = VGGEncoder(cfg, ("relu2_1",))
    out = root / "encoder"
    save_tensors(out / "encoder.safetensors", enc.state_dict())
    save_json(out / "config.json", {"kind": "encoder", "encoder": to_dict(cfg)})
    return out


@pytest.fixture
def write_image():
    """`write_image(path, h, w, seed) -> path`: a smooth random colour image (tests/test_training.py)."""
    return _write_image


@pytest.fixture
def run_setup(tmp_path: Path):
    """(config file, root) of a tiny training run (tests/test_training.py, tests/test_training_ddp.py): nested
    content/style folders with PNG, JPEG and WebP images, a random VGG16 encoder cut at relu2_1, 32 px crops."""
    exts = ["png", "jpg", "webp"]
    for i in range(4):
        _write_image(tmp_path / "content" / f"sub{i % 2}" / f"c{i}.{exts[i % 3]}", 40 + 8 * i, 48, i)
    for i in range(3):
        _write_image(tmp_path / "style" / ("deep/er" if i else "") / f"s{i}.{exts[(i + 1) % 3]}", 48, 36 + 8 * i, 10 + i)
    cfg = {
        "encoder": str(_encoder_dir(tmp_path)),
        "model": {"style_taps": ["relu1_1", "relu2_1"], "decoder": {"from_tap": "relu2_1", "width": 0.5}},
        "data": {"content_dir": str(tmp_path / "content"), "style_dir": str(tmp_path / "style"), "crop": 32,
                 "content_short_side": [32, 48], "style_short_side": [32, 48], "batch_size": 2},
        "loop": {"steps": 6, "lr": 1e-3, "checkpoint_every": 3, "sample_every": 0, "log_every": 1,
                 "tensorboard": False},
    }
    path = tmp_path / "run.json"
    path.write_text(json.dumps(cfg))
    return path, tmp_path
