"""`stylemix train` / `python -m stylemix.training`: train a decoder from a JSON config plus --set overrides.

    stylemix train --config run.json --set loop.steps=20000 --set data.crop=192 --out runs/a
    stylemix train --out runs/a --export weights/my-model      # write a weights dir from the checkpoint
    torchrun --nproc_per_node 2 -m training --config run.json --out runs/a   # data-parallel, same flags

A run resumes from RUN_DIR/checkpoint.safetensors when there is one (bit-exactly; --no-resume starts
over) and refuses to if the config differs, naming the field. SIGINT/SIGTERM save a checkpoint and stop.
"""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..models import pretrained
from ..models.adain import AdaINConfig
from ..models.device import resolve_device
from ..models.io import (CONFIG_FILE, DECODER_FILE, RetiredField, WeightsError, check_state, from_dict, load_into,
                         load_json, save_model_dir, to_dict)
from ..models.decoder import drop_skips
from ..models.registry import list_models, model_recipes
from .adain_task import AdaINLossConfig, AdaINTask
from .checkpoint import MODEL_KEY, RECIPE_KEY, checkpoint_config, load_tensors, read_metadata
from .data import DataConfig
from .recipe import Recipe
from .recipe import build_config as recipe_config
from .runlog import record_init, resolve_init, run_totals
from .fast_task import make_task as distillation_task
from .teacher_task import TeacherTrainConfig
from .teacher_task import build_config as teacher_config
from .trainer import RESUME_FREE, LoopConfig, ResumeMismatch, Trainer


@dataclass
class TrainConfig:
    """Everything a run needs; saved in every checkpoint so resumes can be checked."""

    model: AdaINConfig = field(default_factory=AdaINConfig)
    encoder: str = "vgg16-hed"  # encoder preset name or directory
    data: DataConfig = field(default_factory=DataConfig)
    loss: AdaINLossConfig = field(default_factory=AdaINLossConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    # A weights dir (path or built-in name, e.g. 'adain-vgg16') whose decoder starts the run instead of a
    # random one; its steps and hours are carried into the exported model's totals.
    init: str = ""


def build_config(config_file: str | None, overrides: list[str]) -> TrainConfig:
    """Defaults, then a JSON file's fields, then KEY=VALUE overrides (training/recipe.py)."""
    return recipe_config(config_file, overrides, TrainConfig)


def build_model(cfg: TrainConfig, log=print):
    model = pretrained.create_with_encoder("adain", cfg.model, cfg.encoder, log)
    if cfg.init:
        init_dir = resolve_init(cfg.init)
        decoder, meta = pretrained.decoder_part(model), load_json(init_dir / CONFIG_FILE)
        old = from_dict(AdaINConfig, meta.get("config", {}), "config").decoder
        if old.skips != cfg.model.decoder.skips:  # e.g. shallow skips dropped: the rest of the decoder is kept
            path = init_dir / DECODER_FILE
            state = drop_skips(load_tensors(path), old, cfg.model.decoder, "decoder.")
            check_state(decoder, state, str(path))
            decoder.load_state_dict(state)
            log(f"skips {list(old.skips)} -> {list(cfg.model.decoder.skips)}")
        else:
            load_into(decoder, init_dir / DECODER_FILE)
        log(f"decoder initialised from {init_dir} ({meta.get('steps', '?')} steps)")
    return model


def init_meta(cfg) -> dict:
    """config.json of the run's init weights dir ({} when the run starts from scratch)."""
    return load_json(resolve_init(cfg.init) / CONFIG_FILE) if cfg.init else {}


def export(cfg: TrainConfig, run_dir: Path, out_dir: Path, dtype: torch.dtype = torch.float16) -> Path:
    """Checkpoint -> weights dir (config.json + fp16 decoder.safetensors)."""
    model = build_model(cfg)
    state = {k[len("model."):]: v for k, v in load_tensors(run_dir / "checkpoint.safetensors").items()
             if k.startswith("model.")}
    model.load_state_dict(state)
    step = int(read_metadata(run_dir / "checkpoint.safetensors")["step"])
    meta = {**run_totals(run_dir, step, resolve_init(cfg.init)), "encoder_id": cfg.encoder,
            "trained_with": json.dumps(to_dict(cfg))}
    return save_model_dir(model, "adain", cfg.model, out_dir, cfg.encoder, meta, dtype=dtype)


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
    ap.add_argument("--model", choices=recipe_names(), default="adain",
                    help="the recipe to train (default: adain): a model's, named in its registry entry "
                         "(models/registry.py); adain-fast distils a teacher model (training/fast_task.py), "
                         "adain-teacher trains the default model toward an external teacher (training/teacher_task.py)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return drive(args, recipe_for(args.model))


def _adain_task(cfg: TrainConfig, model, device, run: Path) -> AdaINTask:
    return AdaINTask(model, cfg.data, cfg.loss, rank=int(os.environ.get("RANK", 0)), device=device,
                     channels_last=cfg.loop.channels_last)


ADAIN_RECIPE = Recipe("stylemix train", TrainConfig, build_config, build_model, _adain_task, export)


# the default model's decoder toward an external teacher's paintings (training/teacher_task.py)
TEACHER_RECIPE = Recipe("stylemix train --model adain-teacher", TeacherTrainConfig, teacher_config, build_model,
                        distillation_task, export)


def _recipes() -> dict[str, tuple[str, str]]:
    """{recipe name: (registered model, 'module:ATTRIBUTE')} of every registered model's recipes (their registry
    entries name them: a new trainable model needs no edit here)."""
    found: dict[str, tuple[str, str]] = {}
    for model in list_models():
        for name, where in model_recipes(model).items():
            if name in found:
                raise ValueError(f"training recipe {name!r} is named by both model {found[name][0]!r} and {model!r}")
            found[name] = (model, where)
    return found


def recipe_names() -> tuple[str, ...]:
    """Names of every training recipe (`stylemix train --model NAME`)."""
    return tuple(_recipes())


def recipe_model(name: str) -> str:
    """The registered model a recipe trains (e.g. 'adain' for 'adain-teacher')."""
    return _recipe_entry(name)[0]


def recipe_for(name: str) -> Recipe:
    """The training recipe called `name` (one of `recipe_names()`), imported from where its model's registry
    entry says."""
    module, _, attribute = _recipe_entry(name)[1].partition(":")
    recipe = getattr(importlib.import_module(module), attribute, None)
    if not isinstance(recipe, Recipe):
        raise ValueError(f"training recipe {name!r} names {module}:{attribute}, which is not a training.recipe.Recipe")
    return recipe


def _recipe_entry(name: str) -> tuple[str, str]:
    recipes = _recipes()
    if name not in recipes:
        raise ValueError(f"no training recipe {name!r}; choose one of {', '.join(recipes)}")
    return recipes[name]


def recipe_of(config: dict, name: str | None = None) -> tuple[Recipe, Any]:
    """A checkpoint's recipe and its saved config parsed by it: the recipe called `name` (what the checkpoint
    records, see `checkpoint_recipe`), or without a name the recipe whose config class the config parses as
    (configs reject unknown fields)."""
    errors = []
    for candidate in recipe_names() if name is None else (name,):
        r = recipe_for(candidate)
        try:
            return r, from_dict(r.config_cls, config)
        except RetiredField:  # the recipe's config, with a field that is gone: that, not a list of mismatches
            raise
        except (WeightsError, TypeError) as e:
            errors.append(f"{candidate}: {e}")
    what = "matches no training recipe" if name is None else "does not fit the training recipe it names"
    raise WeightsError(f"the checkpoint's config {what} (" + "; ".join(errors) + ")")


def checkpoint_recipe(path: str | Path) -> tuple[Recipe, Any]:
    """The recipe a checkpoint was written by and its config: the one its metadata names, or for a checkpoint
    that names none, the one its config parses as (`recipe_of`)."""
    meta = read_metadata(path)
    return recipe_of(checkpoint_config(path, meta), meta.get(RECIPE_KEY))


def drive(args: argparse.Namespace, recipe: Recipe) -> int:
    """Print the config, export a checkpoint, or train, as the flags say. Returns the exit code."""
    try:
        if args.threads < 0:
            raise ValueError(f"--threads must be a number of CPU threads >= 1 (0 = torch's choice), got {args.threads}")
        cfg = recipe.build_config(args.config, args.set)
        if args.print_config:
            print(json.dumps(to_dict(cfg), indent=2))
            return 0
        if args.threads:
            torch.set_num_threads(args.threads)
        run = Path(args.out)
        if args.export:
            if (run / "checkpoint.safetensors").is_file():  # the checkpoint says which model it holds
                recipe, cfg = checkpoint_recipe(run / "checkpoint.safetensors")
            print(f"wrote {recipe.export(cfg, run, Path(args.export))}")
            return 0
        cfg.data.require_folders()
        torch.manual_seed(cfg.data.seed)
        device = resolve_device(args.device)
        if device.type == "cuda":
            torch.cuda.set_device(device)  # before the task builds anything on the GPU
        if args.no_resume or not (run / "checkpoint.safetensors").is_file():  # a fresh start
            record_init(run, resolve_init(getattr(cfg, "init", "")))
        task = recipe.make_task(cfg, recipe.build_model(cfg), device, run)
        trainer = Trainer(task, cfg.loop, run, to_dict(cfg), device=device,
                          resume_ignore=(*RESUME_FREE, *args.allow_change),
                          config_cls=recipe.config_cls,
                          metadata={RECIPE_KEY: args.model, MODEL_KEY: recipe_model(args.model)})
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
