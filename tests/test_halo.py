"""The halo score (benchmarks/_metrics.HaloProbe): overshoot of the average profile across a photo's strong edges."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from benchmarks._metrics import HALO_MIN_EDGES, HaloProbe, artefacts


def _discs(size: int = 256, radius: float = 30.0) -> tuple[torch.Tensor, torch.Tensor]:
    """A grey photo of four bright discs (1, 3, size, size) and, per pixel, the distance to the nearest disc's rim."""
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    rim = torch.full((size, size), float("inf"))
    photo = torch.full((size, size), 0.2)
    for cy in (size / 4, 3 * size / 4):
        for cx in (size / 4, 3 * size / 4):
            r = ((yy - cy) ** 2 + (xx - cx) ** 2).sqrt()
            photo = torch.where(r < radius, torch.tensor(0.8), photo)
            rim = torch.minimum(rim, (r - radius).abs() * torch.where(r < radius, -1.0, 1.0).sign())
    return photo.expand(3, size, size)[None].clone(), rim


def test_the_photo_a_blur_and_a_fade_have_no_halo():
    photo, _ = _discs()
    probe = HaloProbe.of(photo)
    assert len(probe.points) >= HALO_MIN_EDGES
    assert probe.score(photo) < 1e-4
    assert probe.score(F.avg_pool2d(photo, 5, 1, 2)) < 1e-4  # a monotone, softer edge
    assert probe.score(0.5 + 0.3 * (photo - 0.5)) < 1e-4  # less contrast, same shape


def test_a_bright_ring_outside_the_edge_scores_its_height_in_units_of_the_step():
    photo, rim = _discs()
    probe = HaloProbe.of(photo)
    ring = torch.exp(-((rim.abs() - 3) ** 2) / 2) * (rim > 0)  # a glow 3 px outside each disc, on the dark side
    weak, strong = probe.score(photo + 0.06 * ring), probe.score(photo + 0.18 * ring)
    assert 0.03 < weak < strong  # step 0.6: the ring's height is 0.1 or 0.3 steps, its fall back partly counted
    assert strong > 2.5 * weak
    assert strong < 0.35


def test_a_texture_with_no_relation_to_the_edges_adds_little():
    photo, rim = _discs()
    probe = HaloProbe.of(photo)
    torch.manual_seed(0)
    texture = 0.05 * torch.randn(1, 1, *photo.shape[-2:])
    ring = torch.exp(-((rim.abs() - 3) ** 2) / 2) * (rim > 0)
    assert probe.score(photo + texture) < 0.5 * probe.score(photo + 0.18 * ring)


def test_a_photo_without_enough_edges_has_no_score():
    flat = torch.full((1, 3, 128, 128), 0.5)
    assert math.isnan(HaloProbe.of(flat).score(flat))
    photo, _ = _discs()
    scores = artefacts(torch.cat([photo, torch.full_like(photo, 0.5)]), photo)  # halo against the photo's edges
    assert scores["halo"].shape == (2,) and scores["halo"][0] < 1e-4
    assert math.isnan(artefacts(flat, flat)["halo"][0])
