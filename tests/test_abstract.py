"""Procedural abstract paintings (training/abstract.py) and `data.style_abstract`: in range, varied, a pure function
of the seed, in the crop's colours at times, and wired into the AdaIN task's style crops."""
from __future__ import annotations

import random

import pytest
import torch

from stylemix.models.io import ConfigError
from stylemix.training import abstract, augment
from stylemix.training.adain_task import DataConfig

import test_training

run_setup = test_training.run_setup  # the tiny-run fixture, shared
train = test_training.train


def test_abstract_paintings_are_in_range_varied_and_a_pure_function_of_the_seed():
    shapes, flat = set(), 0
    for seed in range(10):
        a = abstract.abstract_painting(40, 56, random.Random(seed))
        assert a.shape == (3, 40, 56) and 0 <= float(a.min()) and float(a.max()) <= 1
        assert torch.equal(a, abstract.abstract_painting(40, 56, random.Random(seed)))
        flat += float(a.std((1, 2)).max()) < 0.02
        shapes.add(round(float(a.mean()), 3))
    assert flat <= 1 and len(shapes) == 10  # pictures, not blank canvases, and each seed its own


def test_each_kind_of_element_paints_something_within_the_canvas():
    x, y = torch.meshgrid(torch.linspace(0, 1, 48), torch.linspace(0, 1, 48), indexing="xy")
    for name in ("_field", "_shape", "_band", "_blob"):
        painted = 0
        for seed in range(6):
            m = getattr(abstract, name)(x, y, 0.01, random.Random(seed))
            assert m.shape == (48, 48) and 0 <= float(m.min()) and float(m.max()) <= 1
            painted += 0.02 < float(m.mean()) < 0.98
        assert painted >= 3, name  # most draws cover part of the canvas, not none or all of it
    canvas = torch.zeros(3, 48, 48)
    marks = abstract._strokes(canvas.clone(), x, y, torch.tensor([[1.0, 1.0, 1.0]]), random.Random(0))
    assert float((marks > 0.5).float().mean()) > 0.05  # white marks on black


def test_a_source_palette_gives_the_source_colours():
    source = torch.zeros(3, 32, 32)
    source[0], source[2, :, 16:] = 0.9, 0.6  # red left, magenta right
    colours = abstract._palette(_choose("source"), source)
    assert all(any(torch.allclose(c, want, atol=0.01) for want in (torch.tensor([0.9, 0, 0]), torch.tensor([0.9, 0, 0.6])))
               for c in colours)


def _choose(kind: str) -> random.Random:
    """A Random whose first `choice` among the palette kinds is `kind`."""
    for seed in range(200):
        if random.Random(seed).choice(("source", "vivid", "primary", "two-tone")) == kind:
            return random.Random(seed)
    raise AssertionError(kind)


def test_change_styles_replaces_the_share_asked_and_leaves_the_other_streams_alone():
    crops = [torch.rand(3, 24, 24) for _ in range(8)]
    same = augment.change_styles(crops, 0.0, 0.0, "k", abstract=0.0)
    assert all(a is b for a, b in zip(same, crops))
    half = augment.change_styles(crops, 0.0, 0.0, "k", abstract=0.5)
    kept = [a is b for a, b in zip(half, crops)]
    assert 0 < sum(kept) < len(crops)  # some replaced, some kept as they were
    assert all(torch.equal(a, b) for a, b in zip(half, augment.change_styles(crops, 0.0, 0.0, "k", abstract=0.5)))
    # the ink stream draws the same with or without abstract paintings: the kept crops are inked as without them
    inked = augment.change_styles(crops, 0.5, 0.0, "k")
    both = augment.change_styles(crops, 0.5, 0.0, "k", abstract=0.5)
    assert all(torch.equal(a, b) == k for a, b, k in zip(inked, both, kept))


def test_style_abstract_is_checked_and_trains(run_setup, capsys):
    from stylemix.training.fast_task import FastTrainConfig

    with pytest.raises(ConfigError, match="data.style_abstract"):
        DataConfig(style_abstract=1.5)
    with pytest.raises(ValueError, match="distillation run does not use it"):  # not silently ignored there
        FastTrainConfig(data=DataConfig(style_abstract=0.5))
    config, root = run_setup
    assert train(config, root / "abs", "loop.steps=2", "data.style_abstract=0.5") == 0
    capsys.readouterr()
    assert train(config, root / "cached", "loop.steps=1", "data.style_cache=true", "data.style_abstract=0.5",
                 "loss.style_scales=[1.0]") == 2
    assert "data.style_abstract 0" in capsys.readouterr().err  # cached statistics are of the unchanged files
