"""Numerical facts of multi-modal style transfer (models/multimodal.py) and its functional helpers."""
from __future__ import annotations

import sys

import pytest
import torch

from stylemix.models import functional as Fn
from stylemix.models import multimodal as MM
from stylemix.models.adain import AdaINConfig, AdaINModel
from stylemix.models.decoder import DecoderConfig

SKIPS = ("relu3_1", "relu2_1", "relu1_1")


def _image(seed: int, size: int = 64) -> torch.Tensor:
    """A smooth random RGB image (1, 3, size, size) in [0, 1] with large regions (so modes differ)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, 3, 4, 4, generator=g)
    img = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    return (img + 0.05 * torch.rand(1, 3, size, size, generator=g)).clamp(0, 1)


@pytest.fixture(scope="module")
def skip_model() -> AdaINModel:
    """Random VGG16 to relu4_1 + decoder with all skips, like the trained model (seeded)."""
    torch.manual_seed(0)
    return AdaINModel(AdaINConfig(decoder=DecoderConfig(skips=SKIPS))).eval()


def _modes(model: AdaINModel, style: torch.Tensor, **cfg) -> tuple[MM.StyleModes, MM.MultimodalConfig]:
    config = MM.MultimodalConfig(**cfg)
    with torch.no_grad():
        return MM.style_modes(model.encode(style), model.mix_taps, config), config


# --- functional helpers ---------------------------------------------------------------------------

def test_masked_mean_std_equals_mean_std_per_region():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 6, 9, 11, generator=g) * 3 + 1
    labels = torch.randint(0, 3, (2, 9, 11), generator=g)
    masks = MM._one_hot(labels, 3)
    mean, std = Fn.masked_mean_std(x, masks)
    assert mean.shape == std.shape == (2, 3, 6)
    for b in range(2):
        for r in range(3):
            pix = x[b][:, labels[b] == r]  # (c, n)
            torch.testing.assert_close(mean[b, r], pix.mean(1), rtol=0, atol=1e-5)
            torch.testing.assert_close(std[b, r], (pix.var(1, unbiased=False) + Fn.EPS).sqrt(), rtol=0, atol=1e-5)
    whole_m, whole_s = Fn.masked_mean_std(x, torch.ones(2, 1, 9, 11))
    ref_m, ref_s = Fn.mean_std(x)
    torch.testing.assert_close(whole_m[:, 0], ref_m, rtol=0, atol=1e-5)
    torch.testing.assert_close(whole_s[:, 0], ref_s, rtol=0, atol=1e-5)
    empty_m, empty_s = Fn.masked_mean_std(x, torch.zeros(2, 1, 9, 11))  # empty region: finite, no NaN
    assert torch.isfinite(empty_m).all() and torch.isfinite(empty_s).all()


def test_region_adain_gives_each_region_its_target():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 5, 12, 12, generator=g) * 4 - 2
    labels = torch.zeros(1, 12, 12, dtype=torch.long)
    labels[:, :, 6:] = 1
    labels[:, 8:, :3] = 2
    mean, std = torch.randn(3, 5, generator=g) * 3, torch.rand(3, 5, generator=g) * 2 + 0.5
    out = Fn.region_adain(x, MM._one_hot(labels, 3), mean, std)
    got_m, got_s = Fn.masked_mean_std(out, MM._one_hot(labels, 3), eps=0.0)
    torch.testing.assert_close(got_m[0], mean, rtol=0, atol=1e-4)
    torch.testing.assert_close(got_s[0], std, rtol=0, atol=1e-4)
    m1, s1 = mean[:1], std[:1]  # one all-ones region is plain AdaIN
    torch.testing.assert_close(Fn.region_adain(x, torch.ones(1, 1, 12, 12), m1, s1), Fn.adain(x, m1, s1),
                               rtol=0, atol=1e-5)


# --- clustering and assignment -------------------------------------------------------------------------

def test_kmeans_finds_separated_clusters_and_is_seeded():
    g = torch.Generator().manual_seed(2)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    truth = torch.arange(3).repeat_interleave(40)
    x = centres[truth] + 0.3 * torch.randn(120, 2, generator=g)
    c1, l1 = MM.kmeans(x, 3, seed=5)
    c2, l2 = MM.kmeans(x, 3, seed=5)
    assert torch.equal(c1, c2) and torch.equal(l1, l2)
    for j in range(3):  # each true cluster maps to exactly one found cluster, and back
        assert l1[truth == j].unique().numel() == 1
    assert l1.unique().numel() == 3
    torch.testing.assert_close(c1[l1], centres[truth], rtol=0, atol=0.2)
    with pytest.raises(ValueError, match="cannot make 5 modes from 4"):
        MM.kmeans(x[:4], 5)


def test_kmeans_never_returns_empty_clusters_on_duplicates():
    x = torch.tensor([[0.0, 0.0]] * 6 + [[1.0, 1.0]])  # 2 distinct points, 3 clusters
    centres, labels = MM.kmeans(x, 3, seed=0)
    assert torch.bincount(labels, minlength=3).min() >= 1
    assert torch.isfinite(centres).all()


def test_assign_smoothness(skip_model):
    with torch.no_grad():
        feat = skip_model.encode(torch.cat([_image(3), _image(4)]))["relu4_1"]
    modes, _ = _modes(skip_model, _image(5), modes=4)
    cost = MM.data_cost(feat, modes.centres)  # (2, 8, 8, 4)
    assert cost.shape == (2, 8, 8, 4)
    torch.testing.assert_close(cost.mean((1, 2, 3)), torch.ones(2), rtol=0, atol=1e-5)  # normalised
    nearest = MM.assign(cost, 0.0)
    assert torch.equal(nearest, cost.argmin(-1))
    huge = MM.assign(cost, 1e6)
    for lab in huge:  # very large smoothness: one label per image, the best single label
        assert lab.unique().numel() == 1
        assert int(lab[0, 0]) == int(cost[0 if lab is huge[0] else 1].sum((0, 1)).argmin())

    def energy(lab, c, lam):
        data = c.gather(-1, lab[..., None]).sum()
        cuts = (lab[:, 1:] != lab[:, :-1]).sum() + (lab[1:] != lab[:-1]).sum()
        return float(data + lam * cuts)

    lam = 0.3
    cut = MM.assign(cost, lam)
    assert cut.dtype == torch.long and int(cut.min()) >= 0 and int(cut.max()) < 4  # only existing modes
    for i in range(2):  # alpha-expansion never ends above its starting point (the per-pixel argmin)
        assert energy(cut[i], cost[i], lam) <= energy(nearest[i], cost[i], lam) + 1e-6


# --- the whole method ---------------------------------------------------------------------------------

def test_one_mode_equals_plain_adain(skip_model):
    content, styles = _image(10), [_image(11), _image(12)]
    w = Fn.validate_weights([0.3, 0.7], 2)
    with torch.no_grad():
        feats = skip_model.encode(content)
        codes = [skip_model.style_code(s)[0] for s in styles]
        plain = skip_model.mix(feats, codes, w, alpha=0.6)
        modes = [_modes(skip_model, s, modes=1)[0] for s in styles]
        targets, labels = MM.mode_targets(feats, modes, w, skip_model.mix_taps, MM.MultimodalConfig(modes=1), 0.6)
        image, _ = MM.stylize_modes(skip_model, content, styles, w, MM.MultimodalConfig(modes=1), alpha=0.6)
    assert labels.shape == (2, 1, 8, 8) and int(labels.max()) == 0
    for tap in skip_model.mix_taps:  # the general per-region path with one region is AdaIN
        scale = float(plain[tap].abs().max())
        torch.testing.assert_close(targets[tap], plain[tap], rtol=0, atol=1e-5 * scale)
    with torch.no_grad():  # the K=1 shortcut is exactly the plain model
        assert torch.equal(image, skip_model(content, codes, [0.3, 0.7], alpha=0.6))


def test_regions_take_their_modes_statistics(skip_model):
    content, style = _image(20), _image(21)
    modes, config = _modes(skip_model, style, modes=3, smoothness=0.2, edges="hard")
    assert sorted(modes.mean) == sorted(skip_model.mix_taps)
    with torch.no_grad():
        feats = skip_model.encode(content)
        targets, labels = MM.mode_targets(feats, [modes], torch.ones(1), skip_model.mix_taps, config)
    assert labels.shape == (1, 1, 8, 8)
    assert int(labels.min()) >= 0 and int(labels.max()) < 3
    for tap in skip_model.mix_taps:
        lab = MM._resize_labels(labels[0], targets[tap].shape[-2:])
        if tap != "relu4_1":  # skip taps: the relu4_1 partition, nearest-upsampled
            f = targets[tap].shape[-1] // 8
            assert torch.equal(lab, labels[0].repeat_interleave(f, -1).repeat_interleave(f, -2))
        got_m, got_s = Fn.masked_mean_std(targets[tap], MM._one_hot(lab, 3), eps=0.0)
        _, content_s = Fn.masked_mean_std(feats[tap], MM._one_hot(lab, 3), eps=0.0)
        for k in lab.unique().tolist():
            scale = float(modes.std[tap][k].max()) + float(modes.mean[tap][k].abs().max())
            torch.testing.assert_close(got_m[0, k], modes.mean[tap][k], rtol=0, atol=1e-4 * scale)
            # std: the mode's, shrunk only by the eps of the content normalisation: s * sqrt(v / (v + eps))
            v = content_s[0, k].square()
            want = modes.std[tap][k] * (v / (v + Fn.EPS)).sqrt()
            torch.testing.assert_close(got_s[0, k], want, rtol=1e-3, atol=1e-4 * scale)


def test_soft_edges_blend_regions_only_at_boundaries(skip_model):
    labels = torch.zeros(1, 8, 8, dtype=torch.long)
    labels[:, :, 4:], labels[:, 6:, :] = 1, 2
    soft = MM._region_masks(labels, 3, (32, 32), "soft")
    hard = MM._region_masks(labels, 3, (32, 32), "hard")
    torch.testing.assert_close(soft.sum(1), torch.ones(1, 32, 32), rtol=0, atol=1e-6)  # a partition of unity
    assert float(soft.min()) >= 0 and float(soft.max()) <= 1
    interior = (torch.nn.functional.max_pool2d(hard, 9, 1, 4) == hard).all(1)  # no other label within 4 px
    assert torch.equal(soft.permute(0, 2, 3, 1)[interior], hard.permute(0, 2, 3, 1)[interior])
    assert not torch.equal(soft, hard)
    content, style = _image(25), _image(26)
    modes, _ = _modes(skip_model, style, modes=3)
    with torch.no_grad():
        feats = skip_model.encode(content)
        t_soft, l_soft = MM.mode_targets(feats, [modes], torch.ones(1), skip_model.mix_taps, MM.MultimodalConfig(modes=3))
        t_hard, l_hard = MM.mode_targets(feats, [modes], torch.ones(1), skip_model.mix_taps,
                                         MM.MultimodalConfig(modes=3, edges="hard"))
    assert torch.equal(l_soft, l_hard) and torch.equal(t_soft["relu4_1"], t_hard["relu4_1"])
    assert all(torch.isfinite(t).all() for t in t_soft.values())


def test_style_modes_at_skip_taps(skip_model):
    style = _image(30)
    modes, _ = _modes(skip_model, style, modes=3)
    with torch.no_grad():
        feats = skip_model.encode(style)
    base = modes.labels["relu4_1"]
    assert torch.bincount(base.flatten(), minlength=3).min() >= 1  # every mode exists
    for tap in SKIPS:
        f = feats[tap].shape[-1] // base.shape[-1]
        assert torch.equal(modes.labels[tap], base.repeat_interleave(f, -1).repeat_interleave(f, -2))
        m, s = Fn.masked_mean_std(feats[tap], MM._one_hot(modes.labels[tap][None], 3))
        assert torch.equal(modes.mean[tap], m[0]) and torch.equal(modes.std[tap], s[0])


def test_same_seed_same_output_and_blend_weights(skip_model):
    content, a, b = _image(40), _image(41), _image(42)
    cfg = MM.MultimodalConfig(modes=3, smoothness=0.3, seed=7)
    with torch.no_grad():
        one, lab1 = MM.stylize_modes(skip_model, content, [a, b], torch.tensor([1.0, 0.0]), cfg)
        two, lab2 = MM.stylize_modes(skip_model, content, [a, b], torch.tensor([1.0, 0.0]), cfg)
        alone, _ = MM.stylize_modes(skip_model, content, [a], torch.ones(1), cfg)
        mixed, lab3 = MM.stylize_modes(skip_model, content, [a, b], torch.tensor([0.5, 0.5]), cfg)
    assert torch.equal(one, two) and torch.equal(lab1, lab2)  # same seed, same output
    assert torch.equal(one, alone)  # weights (1, 0) are the first style alone
    assert lab3.shape == (2, 1, 8, 8) and torch.isfinite(mixed).all()
    assert (mixed - one).abs().max() > 1e-3  # the second style matters at weight 0.5


def test_blend_is_weighted_sum_and_alpha_zero_is_content(skip_model):
    content, a, b = _image(50), _image(51), _image(52)
    cfg = MM.MultimodalConfig(modes=2)
    ma, mb = _modes(skip_model, a, modes=2)[0], _modes(skip_model, b, modes=2)[0]
    taps = skip_model.mix_taps
    with torch.no_grad():
        feats = skip_model.encode(content)
        ta, _ = MM.mode_targets(feats, [ma], torch.ones(1), taps, cfg)
        tb, _ = MM.mode_targets(feats, [mb], torch.ones(1), taps, cfg)
        tab, _ = MM.mode_targets(feats, [ma, mb], torch.tensor([0.25, 0.75]), taps, cfg)
        spatial = torch.zeros(2, 1, 1, 64, 64)
        spatial[0, ..., :32], spatial[1, ..., 32:] = 1.0, 1.0  # left half style a, right half style b
        tsp, _ = MM.mode_targets(feats, [ma, mb], spatial, taps, cfg)
        t0, _ = MM.mode_targets(feats, [ma, mb], torch.tensor([0.25, 0.75]), taps, cfg, alpha=0.0)
    for tap in taps:
        torch.testing.assert_close(tab[tap], 0.25 * ta[tap] + 0.75 * tb[tap], rtol=0, atol=1e-4)
        half = tsp[tap].shape[-1] // 2
        torch.testing.assert_close(tsp[tap][..., : half - 1], ta[tap][..., : half - 1], rtol=0, atol=1e-4)
        torch.testing.assert_close(tsp[tap][..., half + 1:], tb[tap][..., half + 1:], rtol=0, atol=1e-4)
        assert torch.equal(t0[tap], feats[tap].float())


def test_wct_transform_matches_mode_means(skip_model):
    content, style = _image(60), _image(61)
    modes, config = _modes(skip_model, style, modes=2, transform="wct")
    with torch.no_grad():
        feats = skip_model.encode(content)
        targets, labels = MM.mode_targets(feats, [modes], torch.ones(1), ("relu4_1",), config)
    out = targets["relu4_1"]
    assert torch.isfinite(out).all()
    m, _ = Fn.masked_mean_std(out, MM._one_hot(labels[0], 2))
    for k in labels.unique().tolist():
        scale = float(modes.mean["relu4_1"][k].abs().max()) + 1e-3
        torch.testing.assert_close(m[0, k], modes.mean["relu4_1"][k], rtol=0, atol=1e-3 * scale)


# --- label maps, config, missing dependency ---------------------------------------------------------------

def test_label_map_saves_one_colour_per_label(tmp_path):
    from stylemix.inference.images import load_image, save_image

    labels = torch.tensor([[0, 0, 1, 1], [2, 2, 1, 1], [2, 2, 0, 0], [4, 4, 0, 0]])
    img = MM.label_colors(labels, 5, size=(16, 16))
    assert img.shape == (1, 3, 16, 16) and float(img.min()) >= 0 and float(img.max()) <= 1
    pal = MM.label_palette(5)
    assert torch.cdist(pal, pal).add(torch.eye(5)).min() > 0.1  # colours are distinct
    path = save_image(img, tmp_path / "labels.png")
    back = (load_image(path, min_side=1)[0] * 255).round()
    colours = {tuple(v) for v in back.reshape(3, -1).T.tolist()}
    assert len(colours) == 4  # labels 0, 1, 2, 4 present; one colour each
    assert torch.equal(back[:, 0, 0], (pal[0] * 255).round())


def test_config_validation():
    for bad in ({"modes": 0}, {"modes": MM.MAX_MODES + 1}, {"modes": 2.5}, {"smoothness": -1.0},
                {"smoothness": float("inf")}, {"smoothness": float("nan")}, {"transform": "gram"},
                {"edges": "blurry"}):
        with pytest.raises(ValueError):
            MM.MultimodalConfig(**bad)


def test_missing_pymaxflow_is_a_clear_error(skip_model, monkeypatch):
    monkeypatch.setitem(sys.modules, "maxflow", None)  # import maxflow -> ImportError
    with pytest.raises(ImportError, match="pip install PyMaxflow"):
        MM.require_maxflow()
    content, style = _image(70), _image(71)
    with pytest.raises(ImportError, match="pip install PyMaxflow"), torch.no_grad():
        MM.stylize_modes(skip_model, content, [style], torch.ones(1), MM.MultimodalConfig(modes=3))
    with torch.no_grad():  # one mode needs no graph cut
        out, _ = MM.stylize_modes(skip_model, content, [style], torch.ones(1), MM.MultimodalConfig(modes=1))
    assert out.shape == (1, 3, 64, 64)


# --- API and CLI ------------------------------------------------------------------------------------------

def _png(path, seed: int, h: int = 40, w: int = 48):
    from stylemix.inference.images import save_image

    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, 3, 3, 3, generator=g)
    save_image(torch.nn.functional.interpolate(low, size=(h, w), mode="bilinear", align_corners=False), path)
    return path


def test_stylizer_modes_and_label_map(skip_model, tmp_path):
    from stylemix.inference.api import Stylizer
    from stylemix.inference.images import load_image

    s = Stylizer(skip_model)
    content, a, b = _png(tmp_path / "c.png", 0, 44, 60), _png(tmp_path / "a.png", 1, 64, 64), _png(tmp_path / "b.png", 2)
    plain = s.stylize(content, [a, b], [0.4, 0.6], alpha=0.9, return_tensor=True)
    assert torch.equal(s.stylize(content, [a, b], [0.4, 0.6], alpha=0.9, return_tensor=True, modes=1), plain)
    out = s.stylize(content, [a, b], [0.4, 0.6], alpha=0.9, return_tensor=True, modes=3, smoothness=0.3,
                    label_map_path=tmp_path / "labels.png")
    again = s.stylize(content, [a, b], [0.4, 0.6], alpha=0.9, return_tensor=True, modes=3, smoothness=0.3)
    assert out.shape == plain.shape == (1, 3, 44, 60) and torch.isfinite(out).all()
    assert torch.equal(out, again)  # same seed, same image
    labels = load_image(tmp_path / "labels.png", min_side=1)
    assert labels.shape == (1, 3, 44, 120)  # one map per style, side by side
    pal = {tuple(v) for v in (MM.label_palette(3) * 255).round().tolist()}
    found = {tuple(v) for v in (labels[0] * 255).round().reshape(3, -1).T.tolist()}
    assert found <= pal  # every pixel is one of the 3 mode colours
    with pytest.raises(ValueError, match="needs modes > 1"):
        s.stylize(content, [a], label_map_path=tmp_path / "x.png")
    with pytest.raises(ValueError, match="pass the style image"):
        s.stylize(content, [s.encode_style(a)], modes=3)
    with pytest.raises(ValueError, match="modes must be"):
        s.stylize(content, [a], modes=0)


def test_cli_modes(tiny_model_dir, tmp_path, capsys, monkeypatch):
    from stylemix.inference.cli import main
    from stylemix.inference.images import load_image

    content, a = _png(tmp_path / "c.png", 3), _png(tmp_path / "a.png", 4, 48, 48)

    def run(*argv):
        rc = main([str(x) for x in argv])
        return rc, capsys.readouterr().err

    out, lab = tmp_path / "o.png", tmp_path / "labels.png"
    rc, err = run("stylize", content, "-s", a, "--model", tiny_model_dir, "-o", out, "--modes", 3, "--smoothness", 0.5,
                  "--save-labels", lab)
    assert rc == 0, err
    assert load_image(out).shape == load_image(lab, min_side=1).shape == (1, 3, 40, 48)
    for argv, needle in ((["--modes", 0], "--modes must be"), (["--modes", 2, "--smoothness", -1], "--smoothness must"),
                         (["--save-labels", lab], "--save-labels needs --modes"),
                         (["--modes", 2, "--save-labels", tmp_path / "l.xyz"], "cannot tell the image format")):
        rc, err = run("stylize", content, "-s", a, "--model", tiny_model_dir, "-o", out, *argv)
        assert rc == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1 and needle in err, err
    code = tmp_path / "a.safetensors"
    code.write_bytes(b"")
    rc, err = run("stylize", content, "-s", code, "--model", tiny_model_dir, "-o", out, "--modes", 2)
    assert rc == 2 and "not a style image file" in err, err
    monkeypatch.setitem(sys.modules, "maxflow", None)
    rc, err = run("stylize", content, "-s", a, "--model", tiny_model_dir, "-o", out, "--modes", 2)
    assert rc == 2 and "pip install PyMaxflow" in err and len(err.strip().splitlines()) == 1, err
