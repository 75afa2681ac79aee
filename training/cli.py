"""`stylemix train` / `python -m training`: train a decoder from a JSON config plus --set overrides.

    stylemix train --config run.json --set loop.steps=20000 --set data.crop=192 --out runs/a
    stylemix train --out runs/a --export weights/my-model      # write a weights dir from the checkpoint
    torchrun --nproc_per_node 2 -m training --config run.json --out runs/a   # data-parallel, same flags

A run resumes from RUN_DIR/checkpoint.safetensors when there is one (bit-exactly; --no-resume starts
over) and refuses to if the config differs, naming the field. SIGINT/SIGTERM save a checkpoint and stop.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable
from pathlib import Path

import torch

from models import pretrained
from models.adain import AdaINConfig
from models.io import WeightsError, from_dict, load_into, load_json, to_dict
from models.registry import create_model

from .adain_task import AdaINLossConfig, AdaINTask, DataConfig
from .checkpoint import load_tensors
from .trainer import RESUME_FREE, LoopConfig, ResumeMismatch, Trainer, resolve_device


@dataclass
class TrainConfig:
    """Everything a run needs; saved in every checkpoint so resumes can be checked."""

    model: AdaINConfig = field(default_factory=AdaINConfig)
    encoder: str = "vgg16-hed"  # encoder preset name or directory
    data: DataConfig = field(default_factory=DataConfig)
    loss: AdaINLossConfig = field(default_factory=AdaINLossConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)


def apply_override(cfg: dict, assignment: str) -> None:
    """'loop.lr=2e-4' -> cfg['loop']['lr'] = 2e-4 (values parsed as JSON when possible)."""
    if "=" not in assignment:
        raise ValueError(f"--set expects KEY=VALUE, got {assignment!r}")
    key, raw = assignment.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    node = cfg
    parts = key.split(".")
    for p in parts[:-1]:
        if not isinstance(node.get(p), dict):
            raise ValueError(f"--set {key}: no config section {p!r}")
        node = node[p]
    if parts[-1] not in node:
        raise ValueError(f"--set {key}: unknown field {parts[-1]!r}; fields: {', '.join(node)}")
    node[parts[-1]] = value


def build_config(config_file: str | None, overrides: list[str], config_cls: type = TrainConfig):
    """Defaults of `config_cls`, then a JSON file's fields, then KEY=VALUE overrides."""
    data = to_dict(config_cls())
    if config_file:
        _merge(data, load_json(config_file))
    for o in overrides:
        apply_override(data, o)
    return from_dict(config_cls, data)


def _merge(base: dict, new: dict) -> None:
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v


def build_model(cfg: TrainConfig, log=print):
    enc_dir = pretrained.resolve_encoder(cfg.encoder, log)
    cfg.model.encoder = pretrained.load_encoder_config(enc_dir)
    model = create_model("adain", cfg.model)
    load_into(model.encoder, enc_dir / "encoder.safetensors")
    return model


def export(cfg: TrainConfig, run_dir: Path, out_dir: Path, dtype: torch.dtype = torch.float16) -> Path:
    """Checkpoint -> weights dir (config.json + fp16 decoder.safetensors)."""
    model = build_model(cfg)
    state = {k[len("model."):]: v for k, v in load_tensors(run_dir / "checkpoint.safetensors").items()
             if k.startswith("model.")}
    model.load_state_dict(state)
    from .checkpoint import read_metadata
    step = read_metadata(run_dir / "checkpoint.safetensors")["step"]
    meta = {"steps": step, "encoder_id": cfg.encoder, "trained_with": json.dumps(to_dict(cfg))}
    return pretrained.save_model_dir(model, "adain", cfg.model, out_dir, cfg.encoder, meta, dtype=dtype)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="stylemix train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", help="JSON file with any TrainConfig fields (default: built-in defaults)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a field, e.g. loop.lr=2e-4")
    ap.add_argument("--out", required=True, help="run directory: checkpoint, log.jsonl, samples/")
    ap.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (default: torch's choice)")
    ap.add_argument("--allow-change", action="append", default=[], metavar="FIELD",
                    help="config field that may differ from the checkpoint on resume, e.g. data.crop (a schedule "
                         f"step); always free: {', '.join(RESUME_FREE)}")
    ap.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
    ap.add_argument("--export", metavar="DIR", help="write a weights dir from the run's checkpoint and exit")
    ap.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")
    ap.add_argument("--model", choices=RECIPE_NAMES, default="adain",
                    help="model to train (default: adain); stytr2 uses training/stytr2_task.py's config")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return drive(args, recipe_for(args.model))


@dataclass
class Recipe:
    """What differs between models in a training run; `drive` does the rest."""

    name: str  # shown in error messages, e.g. 'stylemix train --model stytr2'
    config_cls: type  # the run's TrainConfig dataclass
    build_config: Callable[[str | None, list[str]], Any]
    build_model: Callable[[Any], torch.nn.Module]
    make_task: Callable[[Any, torch.nn.Module, torch.device, Path], Any]  # (cfg, model, device, run_dir) -> Task
    export: Callable[[Any, Path, Path], Path]


def _adain_task(cfg: TrainConfig, model, device, run: Path) -> AdaINTask:
    cache = run / "style_cache.safetensors" if cfg.data.style_cache else None
    return AdaINTask(model, cfg.data, cfg.loss, rank=int(os.environ.get("RANK", 0)), device=device,
                     channels_last=cfg.loop.channels_last, cache_path=cache)


ADAIN_RECIPE = Recipe("stylemix train", TrainConfig, build_config, build_model, _adain_task, export)


RECIPE_NAMES = ("adain", "stytr2")


def recipe_for(model: str) -> Recipe:
    """The training recipe of a model name in RECIPE_NAMES."""
    if model == "stytr2":
        from .stytr2_task import RECIPE  # imported on demand: it imports this module

        return RECIPE
    if model == "adain":
        return ADAIN_RECIPE
    raise ValueError(f"no training recipe for model {model!r}; choose one of {', '.join(RECIPE_NAMES)}")


def recipe_of(config: dict) -> tuple[Recipe, Any]:
    """The recipe whose config class a checkpoint's saved config parses as (configs reject unknown fields),
    and that parsed config."""
    errors = []
    for name in RECIPE_NAMES:
        r = recipe_for(name)
        try:
            return r, from_dict(r.config_cls, config)
        except (WeightsError, TypeError) as e:
            errors.append(f"{name}: {e}")
    raise WeightsError("the checkpoint's config matches no training recipe (" + "; ".join(errors) + ")")


def drive(args: argparse.Namespace, recipe: Recipe) -> int:
    """Print the config, export a checkpoint, or train, as the flags say. Returns the exit code."""
    try:
        cfg = recipe.build_config(args.config, args.set)
        if args.print_config:
            print(json.dumps(to_dict(cfg), indent=2))
            return 0
        if args.threads:
            torch.set_num_threads(args.threads)
        run = Path(args.out)
        if args.export:
            if (run / "checkpoint.safetensors").is_file():  # the checkpoint says which model it holds
                from .checkpoint import checkpoint_config
                recipe, cfg = recipe_of(checkpoint_config(run / "checkpoint.safetensors"))
            print(f"wrote {recipe.export(cfg, run, Path(args.export))}")
            return 0
        torch.manual_seed(cfg.data.seed)
        device = resolve_device(args.device)
        task = recipe.make_task(cfg, recipe.build_model(cfg), device, run)
        trainer = Trainer(task, cfg.loop, run, to_dict(cfg), device=device,
                          resume_ignore=(*RESUME_FREE, *args.allow_change),
                          config_defaults=to_dict(recipe.config_cls()))
        step = trainer.fit(resume=not args.no_resume)
        if trainer.rank == 0:
            print(f"stopped at step {step}; checkpoint {trainer.ckpt_path}")
        return 0
    except ResumeMismatch as e:
        print(f"{recipe.name}: error: {e}; use a new --out, --no-resume to start over, or --allow-change FIELD",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{recipe.name}: interrupted (no checkpoint written since the last save)", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, WeightsError, FloatingPointError) as e:
        print(f"{recipe.name}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
