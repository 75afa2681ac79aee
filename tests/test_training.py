"""Training pipeline on tiny synthetic images: data, loop, checkpoints, resume, signals, retired config fields.

Every run uses a randomly initialised VGG16 encoder cut at relu2_1 (saved into tmp as an ordinary
encoder dir, so nothing is special-cased), a half-width decoder, 32 px crops and batches of 2.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylemix.models.io import load_tensors, save_tensors
from stylemix.training import cli
from stylemix.training.adain_task import AdaINTask
from stylemix.training.checkpoint import checkpoint_config, read_metadata
from stylemix.training.data import ImageFolder, PairBatches, image_files
from stylemix.training.trainer import LoopConfig, Trainer, diff_configs, fill_defaults


# -- fixtures ---------------------------------------------------------------------------------------
def train(config: Path, out: Path, *sets: str, extra: tuple[str, ...] = ()) -> int:
    return cli.main(["--config", str(config), "--out", str(out), *extra, *(a for s in sets for a in ("--set", s))])


def model_tensors(run: Path) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_tensors(run / "checkpoint.safetensors").items() if not k.startswith("rng.")}


def log_records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


# -- data -------------------------------------------------------------------------------------------
def test_data_finds_images_recursively_and_crops(run_setup):
    _, root = run_setup
    files = image_files(root / "style")
    assert sorted(p.suffix for p in files) == [".jpg", ".png", ".webp"]
    folder = ImageFolder(root / "content", 32, (32, 48))
    batches = PairBatches(folder, ImageFolder(root / "style", 32, (32, 48)), 3, seed=0, rank=0)
    c, s = batches.batch(5)
    assert c.shape == s.shape == (3, 3, 32, 32) and c.dtype == torch.float32
    assert 0 <= c.min() and c.max() <= 1 and c.std() > 0.05
    assert torch.equal(batches.batch(5)[0], c)  # a pure function of the step
    assert not torch.equal(batches.batch(6)[0], c)
    other_rank = PairBatches(batches.content, batches.style, 3, seed=0, rank=1)
    assert not torch.equal(other_rank.batch(5)[0], c)  # each DDP rank draws its own stream


def test_data_flips_and_resizes(tmp_path):
    # A left-dark/right-bright image: a flipped crop is bright on the left.
    img = np.zeros((64, 96, 3), np.uint8)
    img[:, 48:] = 255
    Image.fromarray(img).save(tmp_path / "a.png")
    folder = ImageFolder(tmp_path, 32, (32, 32))  # short side 64 -> 32: the whole height, half the width
    import random
    crops = [folder.sample(random.Random(i)) for i in range(40)]
    left_bright = [bool(c[:, :, :4].mean() > c[:, :, -4:].mean()) for c in crops if c[:, :, :4].mean() != c[:, :, -4:].mean()]
    assert any(left_bright) and not all(left_bright)
    full = folder.full(0, 16)
    assert full.shape == (3, 16, 24)


@pytest.mark.slow
def test_corrupt_images_are_logged_and_skipped(run_setup, write_image, caplog):
    config, root = run_setup
    (root / "content" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    good = write_image(root / "content" / "truncated.png", 48, 48, 99)
    good.write_bytes(good.read_bytes()[:200])
    folder = ImageFolder(root / "content", 32, (32, 48))
    import random
    rng = random.Random(0)
    with caplog.at_level(logging.WARNING, logger="stylemix.data"):
        crops = [folder.sample(rng) for _ in range(30)]
    assert all(c.shape == (3, 32, 32) for c in crops)
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "broken.jpg" in logged and "truncated.png" in logged
    assert sum("broken.jpg" in r.getMessage() for r in caplog.records) == 1  # logged once, then skipped
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="stylemix.data"):
        assert train(config, root / "run", "loop.steps=4") == 0  # a full run survives them too
    assert read_metadata(root / "run" / "checkpoint.safetensors")["step"] == "4"


def test_all_unreadable_is_a_clear_error(tmp_path):
    (tmp_path / "x.png").write_bytes(b"nope")
    with pytest.raises(ValueError, match="no readable image"):
        ImageFolder(tmp_path, 32, (32, 48)).sample(__import__("random").Random(0))


# -- loop -------------------------------------------------------------------------------------------
def test_a_few_steps_reduce_the_loss(run_setup, write_image, tmp_path):
    config, root = run_setup
    one = tmp_path / "one"  # overfit a single pair: crop = the whole image, only the flip varies
    write_image(one / "c" / "c.png", 32, 32, 1)
    write_image(one / "s" / "s.png", 32, 32, 2)
    rc = train(config, tmp_path / "fit", "loop.steps=30", "loop.lr=3e-3", "loop.checkpoint_every=100",
               f"data.content_dir={one / 'c'}", f"data.style_dir={one / 's'}",
               "data.content_short_side=[32,32]", "data.style_short_side=[32,32]")
    assert rc == 0
    losses = [r["loss"] for r in log_records(tmp_path / "fit")]
    assert len(losses) == 30 and all(np.isfinite(losses))
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5]), losses
    rec = log_records(tmp_path / "fit")[-1]
    assert {"step", "loss", "lr", "img_per_s", "content", "style"} <= set(rec) and rec["img_per_s"] > 0


def test_learning_rate_inverse_decay_and_warmup():
    model = torch.nn.Linear(2, 2)
    task = types.SimpleNamespace(model=model)
    t = Trainer(task, LoopConfig(lr=1e-3, lr_decay=0.5, warmup=0, channels_last=False), "/nonexistent", {})
    assert isinstance(t.optimizer, torch.optim.Adam)
    assert [t.lr_at(s) for s in (0, 2, 6)] == pytest.approx([1e-3, 5e-4, 2.5e-4])
    t.loop.warmup = 4
    assert t.lr_at(0) == pytest.approx(1e-3 * 0.25 / 1.0)
    with pytest.raises(ValueError, match="precision"):
        Trainer(task, LoopConfig(precision="fp8"), "/nonexistent", {})
    with pytest.raises(ValueError, match="CUDA"):
        Trainer(task, LoopConfig(precision="fp16"), "/nonexistent", {})


def test_cpu_runs_bf16_autocast_and_channels_last(run_setup):
    config, root = run_setup
    seen = {}
    orig = AdaINTask.loss

    def spy(self, step):
        loss, logs = orig(self, step)
        seen["autocast"] = torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
        seen["cl"] = self.model.decoder.convs[0].weight.is_contiguous(memory_format=torch.channels_last)
        return loss, logs

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(AdaINTask, "loss", spy)
        # with the v2 recipe's half-size style loss: its antialiased downscaling has no bf16 kernel in PyTorch
        assert train(config, root / "run", "loop.steps=1", "loop.precision=bf16", "loss.style_scales=[1.0,0.5]") == 0
    assert seen == {"autocast": True, "cl": True}
    assert np.isfinite(log_records(root / "run")[-1]["loss"])


def test_sample_grid_every_n_steps(run_setup):
    config, root = run_setup
    assert train(config, root / "run", "loop.steps=4", "loop.sample_every=2") == 0
    grids = sorted(p.name for p in (root / "run" / "samples").iterdir())
    assert grids == ["step0000002.png", "step0000004.png"]
    w, h = Image.open(root / "run" / "samples" / grids[0]).size
    assert (w, h) == (2 + 2 * 34, 2 + 3 * 34)  # rows content/style/output, a column per pair of the batch


def test_tensorboard_only_when_installed(run_setup, monkeypatch):
    config, root = run_setup
    calls = []

    class FakeWriter:
        def __init__(self, log_dir, purge_step=None):
            calls.append(("open", Path(log_dir).name, purge_step))

        def add_scalar(self, tag, value, step):
            calls.append((tag, step))

        def add_images(self, tag, images, step):
            calls.append((tag, step))

        def close(self):
            calls.append("close")

    fake = types.ModuleType("torch.utils.tensorboard")
    fake.SummaryWriter = FakeWriter
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
    assert train(config, root / "off", "loop.steps=2") == 0  # the test config sets loop.tensorboard=false
    assert calls == []
    assert train(config, root / "on", "loop.steps=2", "loop.tensorboard=true", "loop.sample_every=2") == 0
    assert calls[0] == ("open", "tensorboard", 0) and calls[-1] == "close"
    assert ("train/loss", 2) in calls and ("samples", 2) in calls


# -- checkpoints & resume ----------------------------------------------------------------------------
def test_checkpoint_holds_model_optimizer_rng_step_and_config(run_setup):
    config, root = run_setup
    assert train(config, root / "run", "loop.steps=3") == 0
    tensors = load_tensors(root / "run" / "checkpoint.safetensors")
    meta = read_metadata(root / "run" / "checkpoint.safetensors")
    assert any(k.startswith("model.decoder.") for k in tensors) and "rng.torch" in tensors
    assert {k.split(".", 2)[2] for k in tensors if k.startswith("optim.")} == {"step", "exp_avg", "exp_avg_sq"}
    assert meta["step"] == "3" and "rng.python" in meta and json.loads(meta["param_groups"])[0]["lr"] > 0
    cfg = checkpoint_config(root / "run" / "checkpoint.safetensors")
    assert cfg["data"]["crop"] == 32 and cfg["model"]["encoder"]["name"] == "tiny-random"
    assert not [p for p in (root / "run").iterdir() if p.name.endswith(".tmp")]  # atomic: no leftovers


def test_a_checkpoint_names_its_recipe_and_model_and_the_export_follows_the_name(run_setup):
    from stylemix.models.io import WeightsError

    config, root = run_setup
    assert train(config, root / "run", "loop.steps=1") == 0
    path = root / "run" / "checkpoint.safetensors"
    meta = read_metadata(path)
    assert (meta["recipe"], meta["model"]) == ("adain", "adain")
    recipe, cfg = cli.checkpoint_recipe(path)
    assert recipe is cli.ADAIN_RECIPE and isinstance(cfg, cli.TrainConfig) and cfg.data.crop == 32
    # the name decides, not a search: named as the teacher recipe, this config is read as that recipe's and refused
    save_tensors(path, load_tensors(path), {**meta, "recipe": "adain-teacher"})
    with pytest.raises(WeightsError, match="does not fit the training recipe it names.*adain-teacher: unknown"):
        cli.checkpoint_recipe(path)
    assert train(config, root / "run", extra=("--export", str(root / "w"))) == 2


def test_a_checkpoint_that_names_no_recipe_is_found_by_its_config_and_exports(run_setup):
    config, root = run_setup
    assert train(config, root / "run", "loop.steps=1") == 0
    path = root / "run" / "checkpoint.safetensors"
    older = {k: v for k, v in read_metadata(path).items() if k not in ("recipe", "model")}  # as written before
    save_tensors(path, load_tensors(path), older)
    assert "recipe" not in read_metadata(path)
    assert cli.checkpoint_recipe(path)[0] is cli.ADAIN_RECIPE
    assert train(config, root / "run", extra=("--export", str(root / "w"))) == 0
    assert json.loads((root / "w" / "config.json").read_text())["model"] == "adain"


def test_resume_is_bit_exact(run_setup):
    config, root = run_setup
    assert train(config, root / "straight") == 0  # 6 steps
    assert train(config, root / "split", "loop.steps=3") == 0
    assert train(config, root / "split") == 0  # resumes at 3 (loop.steps may change), runs to 6
    a, b = model_tensors(root / "straight"), model_tensors(root / "split")
    assert a.keys() == b.keys() and any(k.startswith("optim.") for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]
    assert [r["loss"] for r in log_records(root / "straight")] == [r["loss"] for r in log_records(root / "split")]
    assert [r["step"] for r in log_records(root / "split")] == [1, 2, 3, 4, 5, 6]
    # --no-resume starts over: same trajectory as the first run, from step 0
    assert train(config, root / "split", extra=("--no-resume",)) == 0
    assert all(torch.equal(a[k], v) for k, v in model_tensors(root / "split").items())


def test_changed_config_refuses_to_resume_naming_the_field(run_setup, capsys):
    config, root = run_setup
    assert train(config, root / "run", "loop.steps=3") == 0
    capsys.readouterr()
    assert train(config, root / "run", "data.crop=40", "loss.style_weight=7") == 2
    err = capsys.readouterr().err
    assert "data.crop: checkpoint 32, now 40" in err and "loss.style_weight" in err and "Traceback" not in err
    assert read_metadata(root / "run" / "checkpoint.safetensors")["step"] == "3"  # untouched
    # fields that cannot change the trajectory are free; others only with --allow-change
    assert train(config, root / "run", "loop.steps=4", "loop.log_every=2", "loop.checkpoint_every=1") == 0
    assert train(config, root / "run", "loop.steps=5", "data.crop=40", extra=("--allow-change", "data.crop")) == 0
    assert read_metadata(root / "run" / "checkpoint.safetensors")["step"] == "5"


def test_checkpoint_from_before_a_new_config_field_still_resumes(run_setup):
    # A run saved configs without loss.tv_weight / loop.tensorboard: defaults fill them.
    config, root = run_setup
    assert train(config, root / "run", "loop.steps=2") == 0
    path = root / "run" / "checkpoint.safetensors"
    meta, tensors = read_metadata(path), load_tensors(path)
    cfg = json.loads(meta["config"])
    del cfg["loss"]["tv_weight"], cfg["loop"]["tensorboard"]
    save_tensors(path, tensors, {**meta, "config": json.dumps(cfg)})
    assert train(config, root / "run", "loop.steps=3", "loop.tensorboard=true") == 0  # tensorboard is free
    assert read_metadata(path)["step"] == "3"
    assert fill_defaults({"a": {"b": 1}}, {"a": {"b": 2, "c": 3}, "d": 4}) == {"a": {"b": 1, "c": 3}, "d": 4}
    assert diff_configs({"a": {"b": 1}}, {"a": {"b": 2}}) == ["a.b: checkpoint 1, now 2"]


def test_sigterm_writes_a_checkpoint_and_stops(run_setup):
    config, root = run_setup
    orig, before = AdaINTask.loss, signal.getsignal(signal.SIGTERM)

    def kill_at_step_4(self, step):
        if step == 4:  # a real SIGTERM, delivered to this process mid-step
            os.kill(os.getpid(), signal.SIGTERM)
        return orig(self, step)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(AdaINTask, "loss", kill_at_step_4)
        assert train(config, root / "run", "loop.steps=10", "loop.checkpoint_every=100") == 0
    assert signal.getsignal(signal.SIGTERM) is before  # handlers restored
    assert read_metadata(root / "run" / "checkpoint.safetensors")["step"] == "4"  # steps 1-4 done, 5 abandoned
    assert [r["step"] for r in log_records(root / "run")] == [1, 2, 3, 4]
    assert train(config, root / "run", "loop.steps=6") == 0  # and it resumes from there
    assert train(config, root / "straight", "loop.steps=6") == 0
    a, b = model_tensors(root / "straight"), model_tensors(root / "run")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_killed_run_loses_at_most_checkpoint_every_steps(run_setup):
    config, root = run_setup
    orig = AdaINTask.loss

    def crash(self, step):
        if step == 5:
            raise MemoryError("simulated kill")
        return orig(self, step)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(AdaINTask, "loss", crash)
        with pytest.raises(MemoryError):
            train(config, root / "run", "loop.steps=10", "loop.checkpoint_every=2")
    assert read_metadata(root / "run" / "checkpoint.safetensors")["step"] == "4"


# -- retired config fields (models/io.RETIRED) -----------------------------------------------------
RETIRED_OFF = {"model": {"style_hint": [], "decoder_modulation": [], "modulation_rank": 128},
               "data": {"style_cache": False, "style_ink": 0.0, "style_augment": 0.0, "style_abstract": 0.0},
               "loop": {"lr_scales": {}}}


def _with_retired(cfg: dict, retired: dict) -> dict:
    """A run config as a checkpoint of an older version saved it: every section with its retired fields."""
    return {k: {**v, **retired.get(k, {})} if isinstance(v, dict) else v for k, v in cfg.items()}


def test_a_checkpoint_with_retired_fields_off_resumes_bit_exactly_and_exports(run_setup, capsys):
    config, root = run_setup
    assert train(config, root / "straight", "loop.steps=4") == 0
    assert train(config, root / "run", "loop.steps=2") == 0
    path = root / "run" / "checkpoint.safetensors"
    meta, tensors = read_metadata(path), load_tensors(path)
    groups = [{**g, "lr_scale": 1.0} for g in json.loads(meta["param_groups"])]  # what such a checkpoint holds
    old = _with_retired(json.loads(meta["config"]), RETIRED_OFF)
    save_tensors(path, tensors, {**meta, "config": json.dumps(old), "param_groups": json.dumps(groups)})
    assert train(config, root / "run", "loop.steps=4") == 0
    a, b = model_tensors(root / "straight"), model_tensors(root / "run")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    save_tensors(path, load_tensors(path), {**read_metadata(path), "config": json.dumps(old)})
    assert train(config, root / "run", extra=("--export", str(root / "w"))) == 0
    trained_with = json.loads(json.loads((root / "w" / "config.json").read_text())["trained_with"])
    assert "style_hint" not in trained_with["model"] and "lr_scales" not in trained_with["loop"]
    # one that was on names the field, and nothing runs
    on = _with_retired(old, {"model": {"decoder_modulation": ["relu1_1"]}})
    save_tensors(path, load_tensors(path), {**read_metadata(path), "config": json.dumps(on)})
    capsys.readouterr()
    assert train(config, root / "run", "loop.steps=5") == 2
    err = capsys.readouterr().err
    assert "config field model.decoder_modulation was removed" in err and "Traceback" not in err
    assert read_metadata(path)["step"] == "4"


# -- the command line as people type it ------------------------------------------------------------
def test_stylemix_train_runs_through_the_cli_entry_point(run_setup, capsys):
    from stylemix.inference.cli import main as stylemix

    config, root = run_setup
    with pytest.raises(SystemExit) as e:
        stylemix(["train", "-h"])
    assert e.value.code == 0 and "usage: stylemix train" in capsys.readouterr().out
    assert stylemix(["train", "--config", config, "--out", root / "run", "--print-config", "--set", "loop.steps=2"]) == 0
    assert json.loads(capsys.readouterr().out)["loop"]["steps"] == 2
    assert stylemix(["train", "--config", config, "--out", root / "run", "--set", "loop.steps=2"]) == 0
    assert read_metadata(root / "run" / "checkpoint.safetensors")["step"] == "2"
    assert stylemix(["train", "--config", config, "--out", root / "run", "--export", root / "exported"]) == 0
    assert (root / "exported" / "decoder.safetensors").is_file()


@pytest.mark.parametrize("file_text, sets, needle", [
    ('{"loop": {"steps": "ten"}}', [], 'config field loop.steps must be an integer, got "ten" (a string)'),
    ("{}", ["loop.steps=ten"], 'config field loop.steps must be an integer, got "ten"'),
    ('{"data": [1, 2]}', [], "config field data must be a JSON object (DataConfig), got [1, 2] (a list)"),
    ("[1, 2]", [], "must hold a JSON object of TrainConfig fields, got list"),
    ('{"data": {"crop": -5}}', [], "config field data.crop must be a positive number of pixels, got -5"),
    ("{}", ["data.crop=0"], "config field data.crop must be a positive number"),
    ("{}", ["loop.steps=-1"], "config field loop.steps must be an integer >= 0, got -1"),
    ("{}", ["loop.lr=0"], "config field loop.lr must be a finite number > 0"),
    ("{}", ["loop.checkpoint_every=0"], "config field loop.checkpoint_every must be an integer >= 1"),
    ("{}", ["data.content_short_side=[64,32]"], "config field data.content_short_side must be [min, max]"),
    ("{}", ["data.content_short_side=[64]"], "must be a list of 2 items"),
    ("{}", ["loss.style_weight=-1"], "config field loss.style_weight must be a finite number >= 0"),
    ("{}", ["loss.style_kind=gramm"], 'config field loss.style_kind must be "mean_std" or "gram"'),
    ("{}", ["loop.channels_last=1"], "config field loop.channels_last must be true or false, got 1"),
    ('{"data": {"style_abstract": 0.3}}', [],
     "config field data.style_abstract was removed, and only its off value 0.0 still loads; got 0.3"),
    ('{"loop": {"lr_scales": {"hint.": 10}}}', [], "config field loop.lr_scales was removed"),
    ('{"model": {"style_hint": ["relu1_1"]}}', [], 'config field model.style_hint was removed, and only its off '
                                                   'value [] still loads; got ["relu1_1"] (a list)'),
    ('{"model": {"decoder": {"width": "1.0"}}}', [], "config field model.decoder.width must be a number"),
])
def test_bad_training_configs_fail_before_anything_runs(tmp_path, capsys, file_text, sets, needle):
    (tmp_path / "c.json").write_text(file_text)
    argv = ["--config", str(tmp_path / "c.json"), "--out", str(tmp_path / "run"), *(a for s in sets for a in ("--set", s))]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("stylemix train: error:") and len(err.strip().splitlines()) == 1, err
    assert needle in err, err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("argv, needle", [
    (["--threads", "-1"], "--threads must be a number of CPU threads >= 1 (0 = torch's choice), got -1"),
    (["--config", "."], "is a folder, not a JSON config file"),
])
def test_bad_training_flags_fail_before_anything_runs(tmp_path, capsys, monkeypatch, argv, needle):
    monkeypatch.chdir(tmp_path)
    assert cli.main([*argv, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("stylemix train: error:") and len(err.strip().splitlines()) == 1, err
    assert needle in err, err
    assert not (tmp_path / "run").exists()


def test_stytr2_training_configs_are_checked_too(tmp_path, capsys):
    assert cli.main(["--model", "stytr2", "--out", str(tmp_path / "run"), "--set", "model.heads=two"]) == 2
    assert "config field model.heads must be an integer" in capsys.readouterr().err
    assert cli.main(["--model", "stytr2", "--out", str(tmp_path / "run"), "--set", "loss.content_weight=-1"]) == 2
    assert "config field loss.content_weight must be a finite number >= 0" in capsys.readouterr().err


def test_a_bad_training_device_is_one_line(run_setup, capsys):
    config, root = run_setup
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    for device, needle in (("cuda", "needs a CUDA GPU"), ("bogus", "unknown device 'bogus'")):
        assert cli.main(["--config", str(config), "--out", str(root / "run"), "--device", device]) == 2
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1
    assert not (root / "run").exists()


def test_max_minutes_stops_with_a_checkpoint(run_setup):
    config, root = run_setup
    assert train(config, root / "run", "loop.steps=50", "loop.max_minutes=1e-9", "loop.checkpoint_every=100") == 0
    assert read_metadata(root / "run" / "checkpoint.safetensors")["step"] == "0"  # deadline before the first step
    assert train(config, root / "run", "loop.steps=2") == 0  # max_minutes is free on resume
    assert read_metadata(root / "run" / "checkpoint.safetensors")["step"] == "2"


def test_init_starts_from_a_weights_dir_and_totals_accumulate(run_setup):
    config, root = run_setup
    assert train(config, root / "first", "loop.steps=3") == 0
    assert train(config, root / "first", extra=("--export", str(root / "w1"))) == 0
    first = json.loads((root / "w1" / "config.json").read_text())
    assert first["steps"] == "3" and float(first["hours"]) >= 0
    first_decoder = load_tensors(root / "w1" / "decoder.safetensors")
    # a second run from those weights: step 0 holds the exported decoder, totals add up on export
    model = cli.build_model(cli.build_config(str(config), [f"init={root / 'w1'}"]), log=lambda *a: None)
    state = model.state_dict()
    assert first_decoder and all(torch.equal(state[k].to(v.dtype), v) for k, v in first_decoder.items())
    assert train(config, root / "second", "loop.steps=2", f"init={root / 'w1'}") == 0
    assert train(config, root / "second", f"init={root / 'w1'}", extra=("--export", str(root / "w2"))) == 0
    second = json.loads((root / "w2" / "config.json").read_text())
    assert second["steps"] == "5" and float(second["hours"]) >= float(first["hours"])


@pytest.mark.slow
def test_exporting_back_into_the_init_dir_counts_each_step_once(run_setup):
    """The usual way to continue a model: start from its dir, export into the same dir, resume, export again."""
    config, root = run_setup
    assert train(config, root / "first", "loop.steps=3") == 0
    assert train(config, root / "first", extra=("--export", str(root / "w"))) == 0
    w = str(root / "w")
    assert train(config, root / "more", "loop.steps=2", f"init={w}") == 0
    assert json.loads((root / "more" / "init.json").read_text())["steps"] == 3  # read once, at the start
    assert train(config, root / "more", f"init={w}", extra=("--export", w)) == 0
    assert json.loads((root / "w" / "config.json").read_text())["steps"] == "5"
    assert train(config, root / "more", "loop.steps=4", f"init={w}") == 0  # resumed: init.json is kept
    assert train(config, root / "more", f"init={w}", extra=("--export", w)) == 0
    assert json.loads((root / "w" / "config.json").read_text())["steps"] == "7"  # 3 + 4, not 5 + 4


@pytest.mark.slow
def test_multi_scale_style_loss_runs(run_setup):
    config, root = run_setup
    assert train(config, root / "ms", "loop.steps=2", "loss.style_scales=[1.0,0.5]") == 0
    assert [r["step"] for r in log_records(root / "ms")] == [1, 2]
    assert train(config, root / "bad2", "loop.steps=1", "loss.style_scales=[0]") == 2


def test_pack_data_shrinks_keeps_folders_and_respects_the_limit(run_setup, tmp_path):
    from stylemix.training.pack_data import pack

    _, root = run_setup
    n, size = pack(root, tmp_path / "packed", short=16, limit=10**9)
    files = sorted((tmp_path / "packed").rglob("*.jpg"))
    assert n == len(files) == 7 and size == sum(f.stat().st_size for f in files)
    assert (tmp_path / "packed" / "style" / "deep" / "er").is_dir()
    assert all(min(Image.open(f).size) <= 16 for f in files)
    n2, size2 = pack(root, tmp_path / "small", short=16, limit=size // 2)
    assert 0 < n2 < n and size2 <= size // 2

