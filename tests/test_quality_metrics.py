"""Quality metrics (benchmarks/_metrics.py), the pair selection and report of benchmarks/quality.py, and the
training plots: numerical facts on tiny images with randomly initialised VGG16 weights."""
from __future__ import annotations

import json

import pytest
import torch

from benchmarks import quality
from benchmarks._metrics import (STAT_TAPS, Evaluator, content_distance, edge_correlation, style_stat)
from benchmarks.plot_training import hours_axis, training_hours
from stylemix.models import functional as Fn
from stylemix.models.adain import AdaINConfig, AdaINModel
from stylemix.models.io import save_json, save_tensors, to_dict
from stylemix.models.io import save_model_dir
from stylemix.models.vgg import EncoderConfig


def _random_evaluator(seed: int = 0) -> Evaluator:
    """Random VGG16 + HED heads; He-initialised convs keep activations alive down to relu5_3."""
    torch.manual_seed(seed)
    ev = Evaluator(EncoderConfig(name="random"))
    for m in ev.hed.encoder.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    return ev


@pytest.fixture(scope="module")
def evaluator() -> Evaluator:
    return _random_evaluator()


def _img(seed: int, h: int = 40, w: int = 48) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 3, h // 8, w // 8, generator=g)  # smooth-ish images have real edges
    up = torch.nn.functional.interpolate(base, size=(h, w), mode="bilinear", align_corners=False)
    return (up + 0.1 * torch.rand(1, 3, h, w, generator=g)).clamp(0, 1)


def test_identical_images_score_perfectly(evaluator):
    a = _img(1)
    got = evaluator.score(a, evaluator.content_ref(a), [evaluator.style_ref(a)])
    assert got["style_stat"].item() == pytest.approx(0.0, abs=1e-6)
    assert got["content"].item() == pytest.approx(0.0, abs=1e-6)
    assert got["edges"].item() == pytest.approx(1.0, abs=1e-5)


def test_different_images_score_worse(evaluator):
    a, b = _img(1), _img(2)
    got = evaluator.score(b, evaluator.content_ref(a), [evaluator.style_ref(a)])
    assert got["style_stat"].item() > 0.01
    assert got["content"].item() > 0.01
    assert -1.0 <= got["edges"].item() < 0.99


def test_content_and_edges_are_symmetric(evaluator):
    a, b = _img(3), _img(4)
    fa, ea = evaluator.features(a)
    fb, eb = evaluator.features(b)
    assert torch.allclose(content_distance(fa["relu4_1"], fb["relu4_1"]), content_distance(fb["relu4_1"], fa["relu4_1"]))
    assert torch.allclose(edge_correlation(ea, eb), edge_correlation(eb, ea))
    assert (content_distance(fa["relu4_1"], fb["relu4_1"]) >= 0).all()


def test_style_stat_is_relative_and_zero_on_itself():
    torch.manual_seed(0)
    out = {t: torch.rand(2, 4, 5, 6) for t in STAT_TAPS}
    sty = {t: torch.rand(2, 4, 7, 3) * 3 + 1 for t in STAT_TAPS}
    stats = {t: Fn.mean_std(v) for t, v in sty.items()}
    base = style_stat(out, stats)
    assert base.shape == (2,) and (base > 0).all()
    scaled = style_stat({t: 10 * v for t, v in out.items()}, {t: Fn.mean_std(10 * v) for t, v in sty.items()})
    assert torch.allclose(base, scaled, rtol=1e-4)  # same value whatever the feature scale
    assert torch.allclose(style_stat(sty, stats), torch.zeros(2), atol=1e-6)


def test_edge_correlation_is_pearson():
    a = torch.rand(1, 1, 9, 11)
    assert edge_correlation(a, 3 * a + 1).item() == pytest.approx(1.0, abs=1e-5)
    assert edge_correlation(a, -a).item() == pytest.approx(-1.0, abs=1e-5)
    assert edge_correlation(a, torch.full_like(a, 0.5)).item() == 0.0  # constant map: no correlation, no NaN


def test_one_output_against_many_styles_equals_one_by_one(evaluator):
    c, s1, s2 = _img(5), _img(6), _img(7)
    ref, styles = evaluator.content_ref(c), [evaluator.style_ref(s1), evaluator.style_ref(s2)]
    many = evaluator.score(c, ref, styles)
    for k, s in enumerate(styles):
        one = evaluator.score(c, ref, [s])
        for m in many:
            assert many[m][k].item() == pytest.approx(one[m].item(), abs=1e-5)


def test_select_pairs_balanced_and_deterministic():
    pairs = quality.select_pairs(10, 17)
    assert sorted(pairs) == [(i, j) for i in range(10) for j in range(17)]
    first = quality.select_pairs(10, 17, 10)
    assert first == pairs[:10]
    assert len({i for i, _ in first}) == 10 and len({j for _, j in first}) == 10
    with pytest.raises(ValueError, match="--pairs"):
        quality.select_pairs(10, 17, 171)


def test_training_hours_skip_pauses():
    recs = [{"step": 10, "time": 0.0}, {"step": 20, "time": 1800.0 / 5}, {"step": 30, "time": 7200.0},
            {"step": 40, "time": 7200.0 + 360.0}]
    assert hours_axis(recs, max_gap=600) == pytest.approx([0.0, 0.1, 0.1, 0.2])
    assert training_hours(recs, 35, max_gap=600) == pytest.approx(0.1)
    assert training_hours(recs, 5) is None


def _write_encoder_dir(path, seed: int = 0) -> None:
    ev = _random_evaluator(seed)
    save_tensors(path / "encoder.safetensors", ev.hed.encoder.state_dict())
    save_tensors(path / "hed.safetensors", {k: v for k, v in ev.hed.state_dict().items() if not k.startswith("encoder.")})
    save_json(path / "config.json", {"kind": "encoder", "encoder": to_dict(ev.hed.encoder.config)})


@pytest.mark.slow
def test_quality_end_to_end_on_tiny_data(tmp_path, capsys):
    from stylemix.inference.images import save_image

    enc = tmp_path / "enc"
    _write_encoder_dir(enc)
    for k in range(2):
        save_image(_img(10 + k, 40, 56), tmp_path / "data" / "content" / f"c{k}.png")
    for k in range(3):
        save_image(_img(20 + k, 48, 40), tmp_path / "data" / "style" / f"s{k}.png")
    torch.manual_seed(0)
    model = AdaINModel(AdaINConfig())
    save_model_dir(model, "adain", model.config, tmp_path / "m", str(enc))
    out = tmp_path / "q.json"
    rc = quality.main(["--data", str(tmp_path / "data"), "--size", "48", "--encoder", str(enc), "--model",
                       str(tmp_path / "m"), "--no-stl", "--gatys-pairs", "0", "--json", str(out),
                       "--save-grid", str(tmp_path / "grid.png"), "--grid-size", "2"])
    assert rc == 0
    res = json.loads(out.read_text())
    assert set(res["methods"]) == {"m", "content image (reference)", "style image (reference)"}
    ref = res["methods"]["content image (reference)"]
    assert ref["n"] == 6 and ref["median"]["content"] == pytest.approx(0.0, abs=1e-6)
    assert ref["median"]["edges"] == pytest.approx(1.0, abs=1e-5)
    assert len(res["methods"]["m"]["per_pair"]) == 6
    assert (tmp_path / "grid.png").is_file()
    assert "style_stat" in capsys.readouterr().out


def test_quality_bad_data_folder_is_a_clear_error(tmp_path, capsys):
    assert quality.main(["--data", str(tmp_path / "nope"), "--no-stl"]) == 2
    assert "quality: error: no images in" in capsys.readouterr().err


def test_crop_sheet_without_the_paintings_is_a_clear_error(tmp_path, capsys):
    from benchmarks import crop_sheet

    out = tmp_path / "sheet.png"
    assert crop_sheet.main(["--model", "adain-fast", "--stl", "--data", str(tmp_path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("crop_sheet: error:") and repr(crop_sheet.PAIRS[0][1]) in err and str(tmp_path) in err
    assert not out.exists()


def test_plots_are_written(tmp_path):
    pytest.importorskip("matplotlib")
    from benchmarks.plot_training import main

    run = tmp_path / "run"
    run.mkdir()
    lines = [{"step": 10 * k, "loss": 5.0 / k, "content": 1.0 / k, "style": 0.4 / k, "time": 60.0 * k, "img_per_s": 3.0}
             for k in range(1, 30)]
    (run / "log.jsonl").write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    (run / "eval_history.jsonl").write_text("\n".join(json.dumps({"hours": h, "style_stat": 1 / (h + 1), "content": 0.9,
                                                                   "edges": 0.5}) for h in (0.1, 0.3)) + "\n")
    assert main([str(run)]) == 0
    assert (run / "loss_curve.png").stat().st_size > 1000
    assert (run / "metrics_vs_hours.png").stat().st_size > 1000
