"""A model-agnostic training loop.

A *task* owns the model and its loss: `task.model` (nn.Module), `task.loss(step) -> (loss, logs)`,
and optionally `task.samples(step) -> (b, 3, h, w)` images for the sample grid. The loop does the
rest: Adam with inverse-time decay, bf16 autocast + channels_last on CPU (AMP on CUDA), atomic
checkpoints every N steps and on SIGINT/SIGTERM, bit-exact resume, DDP under torchrun, JSONL
(+ TensorBoard) logs.

Under `torchrun --nproc_per_node N` the same code runs data-parallel: every rank starts from rank 0's
weights, draws its own batches (the task keys them on RANK), averages gradients with one flat
all-reduce per step, and only rank 0 writes files. Stop requests and non-finite losses are agreed
on by all ranks each step, so no rank is left waiting in a collective.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist
from torch import nn

from ..models.device import resolve_device
from ..models.io import ConfigError, atomic_write, check_value, from_dict, to_dict
from ..models.precision import auto_dtype

from .checkpoint import checkpoint_config, load_checkpoint, save_checkpoint

try:
    from tqdm import tqdm
except ImportError:  # pragma: no cover
    tqdm = None

log = logging.getLogger("stylemix.train")

# Config fields that never change the trajectory: a resume may change them freely.
RESUME_FREE = ("loop.steps", "loop.checkpoint_every", "loop.sample_every", "loop.log_every", "loop.tensorboard",
               "loop.max_minutes")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


class Task(Protocol):
    model: nn.Module

    def loss(self, step: int) -> tuple[torch.Tensor, dict[str, float]]: ...


@dataclass
class LoopConfig:
    """How long and how to optimise."""

    steps: int = 10000  # total optimiser steps
    lr: float = 1e-4  # Adam learning rate at step 0
    lr_decay: float = 5e-5  # lr_t = lr / (1 + lr_decay * t)
    warmup: int = 0  # linear warm-up steps
    precision: str = "auto"  # 'fp32', 'bf16' (autocast), 'fp16' (CUDA AMP) or 'auto' (bf16 where the device
    #                          computes it natively, models/precision.py; else fp16 AMP on CUDA, fp32 on CPU)
    channels_last: bool = True
    checkpoint_every: int = 100  # a killed run loses at most this many steps
    sample_every: int = 500  # 0 = no sample grids
    log_every: int = 10
    grad_clip: float = 0.0  # 0 = off
    tensorboard: bool = True  # also write TensorBoard events (RUN_DIR/tensorboard) when `tensorboard` is installed
    max_minutes: float = 0.0  # stop (with a checkpoint) after this much wall time in this process; 0 = no limit

    def __post_init__(self):  # value checks, before anything runs; from_dict has checked the types
        inf = float("inf")
        check_value("loop.steps", self.steps, self.steps >= 0, "an integer >= 0")
        check_value("loop.lr", self.lr, 0 < self.lr < inf, "a finite number > 0")
        for name in ("lr_decay", "grad_clip", "max_minutes"):
            check_value(f"loop.{name}", getattr(self, name), 0 <= getattr(self, name) < inf, "a finite number >= 0")
        for name in ("warmup", "sample_every"):
            check_value(f"loop.{name}", getattr(self, name), getattr(self, name) >= 0, "an integer >= 0 (0 = off)")
        for name in ("checkpoint_every", "log_every"):
            check_value(f"loop.{name}", getattr(self, name), getattr(self, name) >= 1, "an integer >= 1")


class ResumeMismatch(ValueError):
    """A run's config differs from the checkpoint it would resume."""


def diff_configs(saved: Any, now: Any, prefix: str = "") -> list[str]:
    """Every differing leaf of two nested dicts, as 'dotted.field: checkpoint X, now Y'."""
    if isinstance(saved, dict) and isinstance(now, dict):
        out = []
        for k in sorted(set(saved) | set(now)):
            out += diff_configs(saved.get(k), now.get(k), f"{prefix}{k}.")
        return out
    return [] if saved == now else [f"{prefix[:-1]}: checkpoint {saved!r}, now {now!r}"]


def fill_defaults(saved: Any, defaults: Any) -> Any:
    """`saved` with any field it lacks taken from `defaults` (a checkpoint written before the field existed)."""
    if not (isinstance(saved, dict) and isinstance(defaults, dict)):
        return saved
    out = {k: fill_defaults(v, defaults.get(k)) for k, v in saved.items()}
    return {**{k: v for k, v in defaults.items() if k not in saved}, **out}


def open_tensorboard(log_dir: Path, purge_step: int | None = None):
    """A SummaryWriter when the `tensorboard` package is installed, else None."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(log_dir), purge_step=purge_step)


class Trainer:
    """Runs a task for `loop.steps` steps, writing into `out_dir` (checkpoint.safetensors, log.jsonl, samples/).

    Args:
        task: owns `model` and `loss(step)`; see the module docstring.
        loop: schedule, precision and cadence.
        out_dir: the run directory.
        run_config: JSON-ready config saved in checkpoints and compared on resume.
        device: torch device.
        resume_ignore: dotted config fields (or sections) allowed to differ from the checkpoint.
        config_cls: the dataclass `run_config` was made from: a checkpoint's config is read as one before it is
            compared (fields it predates take the defaults, so adding a config field with a default keeps old runs
            resumable; retired fields at their off value are dropped, models/io.RETIRED).
        metadata: strings every checkpoint records besides its own (`stylemix train`: the recipe and model names).
    """

    def __init__(self, task: Task, loop: LoopConfig, out_dir: str | Path, run_config: dict[str, Any],
                 device: str | torch.device = "cpu", resume_ignore: tuple[str, ...] = RESUME_FREE,
                 config_cls: type | None = None, metadata: dict[str, str] | None = None):
        if loop.precision not in PRECISIONS:
            raise ValueError(f"loop.precision must be one of {', '.join(PRECISIONS)}, got {loop.precision!r}")
        self.task, self.loop, self.out = task, loop, Path(out_dir)
        self.run_config, self.resume_ignore, self.config_cls = run_config, resume_ignore, config_cls
        self.metadata = dict(metadata or {})
        self.device = resolve_device(device)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)  # this rank's GPU for NCCL and un-indexed allocations
        if loop.precision == "fp16" and self.device.type != "cuda":
            raise ValueError("loop.precision 'fp16' needs a CUDA device; use 'bf16' or 'auto' on CPU")
        self.distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
        if self.distributed and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        self.rank = dist.get_rank() if self.distributed else 0
        self.world = dist.get_world_size() if self.distributed else 1
        model = task.model.to(self.device)
        if self.distributed:  # every rank starts from rank 0's weights
            for v in model.state_dict().values():
                dist.broadcast(v, 0)
        if loop.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(self.params, lr=loop.lr)
        self.amp_dtype = self._amp_dtype()
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.stop_requested = False

    # -- schedule & precision -------------------------------------------------------------
    def lr_at(self, step: int) -> float:
        """Learning rate of step `step` (0-based): linear warm-up, then lr / (1 + lr_decay * step)."""
        warm = min(1.0, (step + 1) / self.loop.warmup) if self.loop.warmup else 1.0
        return self.loop.lr * warm / (1.0 + self.loop.lr_decay * step)

    def _amp_dtype(self) -> torch.dtype | None:
        p = self.loop.precision
        if p == "fp32":
            return None
        if p == "auto":  # emulated bf16 is slower than fp32: only where native
            return auto_dtype(self.device) or (torch.float16 if self.device.type == "cuda" else None)
        return torch.bfloat16 if p == "bf16" else torch.float16

    def autocast(self):
        """The forward pass's autocast context (a no-op in fp32)."""
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    # -- checkpoints ----------------------------------------------------------------------
    @property
    def ckpt_path(self) -> Path:
        return self.out / "checkpoint.safetensors"

    def _ignored(self, field: str) -> bool:
        return any(field == f or field.startswith(f + ".") for f in self.resume_ignore)

    def resume(self) -> int:
        """Load the run's checkpoint if there is one, after checking its config. Returns the step."""
        if not self.ckpt_path.is_file():
            return 0
        saved = checkpoint_config(self.ckpt_path)
        if self.config_cls is not None:
            try:
                saved = to_dict(from_dict(self.config_cls, fill_defaults(saved, to_dict(self.config_cls()))))
            except ConfigError as e:
                raise ConfigError(f"cannot resume {self.ckpt_path}: {e}") from None
        diffs = [d for d in diff_configs(saved, self.run_config) if not self._ignored(d.split(":", 1)[0])]
        if diffs:
            raise ResumeMismatch(f"refusing to resume {self.ckpt_path}: config differs ({'; '.join(diffs)})")
        return load_checkpoint(self.ckpt_path, self.task.model, self.optimizer, self.scaler)

    def save(self, step: int) -> None:
        """Checkpoint on rank 0 (every rank must call this: it first checks that ranks agree)."""
        if self.distributed:
            self._check_ranks_in_sync(step)
        if self.rank == 0:
            save_checkpoint(self.ckpt_path, self.task.model, self.optimizer, step, self.run_config, self.scaler,
                            self.metadata)

    def _on_signal(self, signum, frame):
        if self.stop_requested:  # a second signal aborts at once
            raise KeyboardInterrupt
        self.stop_requested = True

    # -- loop -----------------------------------------------------------------------------
    def fit(self, resume: bool = True) -> int:
        """Train until loop.steps (or a signal). Returns the last completed step."""
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
        start = self.resume() if resume else 0
        handlers = {}
        if threading.current_thread() is threading.main_thread():
            handlers = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        logs_out = self._open_logs(start) if self.rank == 0 else None
        bar = tqdm(total=self.loop.steps, initial=start, disable=self.rank != 0, dynamic_ncols=True) if tqdm else None
        step, window_t, window_n = start, time.time(), 0
        deadline = window_t + 60 * self.loop.max_minutes if self.loop.max_minutes > 0 else float("inf")
        try:
            while step < self.loop.steps:
                if time.time() >= deadline:  # like a signal, so every DDP rank stops at the same step
                    self.stop_requested = True
                for g in self.optimizer.param_groups:
                    g["lr"] = self.lr_at(step)
                with self.autocast():
                    loss, logs = self.task.loss(step)
                window_n += int(logs.pop("batch", 1)) * self.world
                loss_val, logs, stop, finite = self._agree(loss, logs)
                if not finite:
                    raise FloatingPointError(f"loss became non-finite at step {step + 1}; lower the learning rate")
                if stop:
                    break
                self.optimizer.zero_grad(set_to_none=True)
                self.scaler.scale(loss).backward()
                if self.distributed:
                    self._allreduce_grads()
                if self.loop.grad_clip:
                    self.scaler.unscale_(self.optimizer)
                    torch.nn.utils.clip_grad_norm_(self.params, self.loop.grad_clip)
                self.scaler.step(self.optimizer)
                self.scaler.update()
                step += 1
                if step % self.loop.log_every == 0:
                    now = time.time()
                    rate, window_t, window_n = window_n / max(now - window_t, 1e-9), now, 0
                    if logs_out is not None:
                        rec = {"step": step, "loss": loss_val, "lr": self.lr_at(step - 1), "img_per_s": rate,
                               "time": now, **logs}
                        self._write_log(logs_out, rec)
                    if bar is not None:
                        bar.set_postfix(loss=f"{loss_val:.3f}", img_s=f"{rate:.1f}")
                if bar is not None:
                    bar.update(1)
                if step % self.loop.checkpoint_every == 0 or step == self.loop.steps:
                    self.save(step)
                if self.rank == 0 and self.loop.sample_every and step % self.loop.sample_every == 0:
                    self._write_samples(step, logs_out)
            if step < self.loop.steps:  # a rank was asked to stop (signal or loop.max_minutes)
                log.warning("stop requested: checkpoint at step %d in %s", step, self.ckpt_path)
                self.save(step)
        finally:
            for s, h in handlers.items():
                signal.signal(s, h)
            if bar is not None:
                bar.close()
            if logs_out is not None:
                logs_out[0].close()
                if logs_out[1] is not None:
                    logs_out[1].close()
        return step

    def _agree(self, loss: torch.Tensor, logs: dict[str, float]) -> tuple[float, dict[str, float], bool, bool]:
        """Loss and logs averaged over ranks, and whether any rank wants to stop / saw a non-finite loss."""
        names = sorted(logs)
        vals = torch.tensor([float(loss.detach()), *(float(logs[k]) for k in names)], dtype=torch.float64)
        flags = torch.tensor([float(self.stop_requested), float(not torch.isfinite(vals).all())], dtype=torch.float64)
        if self.distributed:
            packed = torch.cat([vals, flags]).to(self.device)
            dist.all_reduce(packed)
            packed = packed.cpu()
            vals, flags = packed[: len(vals)] / self.world, packed[len(vals):]
        return float(vals[0]), {k: float(v) for k, v in zip(names, vals[1:])}, bool(flags[0] > 0), bool(flags[1] == 0)

    def _allreduce_grads(self) -> None:
        # The task calls the bare model, so average the gradients across ranks explicitly: one flat
        # all-reduce (every rank receives the same sums, so the weights stay bit-identical).
        grads = [p.grad for p in self.params if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for g in grads:
            g.copy_(flat[offset: offset + g.numel()].view(g.shape))
            offset += g.numel()

    def _check_ranks_in_sync(self, step: int) -> None:
        # An exact, order-independent checksum of the weights' bits: min == max over ranks.
        total = torch.zeros((), dtype=torch.int64)
        for p in self.params:
            bits = p.detach().cpu().contiguous()
            bits = bits.view(torch.int32) if bits.element_size() == 4 else bits.view(torch.uint8)
            total += bits.to(torch.int64).sum()
        lo, hi = total.clone().to(self.device), total.clone().to(self.device)
        dist.all_reduce(lo, dist.ReduceOp.MIN)
        dist.all_reduce(hi, dist.ReduceOp.MAX)
        if lo.item() != hi.item():
            raise RuntimeError(f"DDP ranks hold different weights at step {step}; not saving a checkpoint")

    # -- logs -----------------------------------------------------------------------------
    def _open_logs(self, start: int):
        """(JSONL file, TensorBoard writer or None), with records after `start` dropped (they will be redone)."""
        path = self.out / "log.jsonl"
        if path.is_file():
            kept = [line for line in path.read_text().splitlines() if _log_step(line) <= start]
            atomic_write(path, lambda tmp: Path(tmp).write_text("".join(f"{line}\n" for line in kept)))
        writer = open_tensorboard(self.out / "tensorboard", purge_step=start) if self.loop.tensorboard else None
        return open(path, "a"), writer

    @staticmethod
    def _write_log(logs_out, rec: dict[str, Any]) -> None:
        logs_out[0].write(json.dumps(rec) + "\n")
        logs_out[0].flush()
        if logs_out[1] is not None:
            for k, v in rec.items():
                if k not in ("step", "time"):
                    logs_out[1].add_scalar(f"train/{k}", v, rec["step"])

    def _write_samples(self, step: int, logs_out=None) -> None:
        samples = getattr(self.task, "samples", None)
        if samples is None:
            return
        from torchvision.utils import save_image

        with torch.no_grad(), self.autocast():
            grid = samples(step).float().clamp(0, 1).cpu()
        path = self.out / "samples" / f"step{step:07d}.png"
        atomic_write(path, lambda tmp: save_image(grid, tmp, nrow=grid.shape[0] // 3 if grid.shape[0] >= 3 else 1,
                                                  format="png"))
        if logs_out is not None and logs_out[1] is not None:
            logs_out[1].add_images("samples", grid, step)


def _log_step(line: str) -> float:
    try:
        return float(json.loads(line).get("step", 0))
    except (json.JSONDecodeError, AttributeError, TypeError, ValueError):
        return float("inf")  # an unreadable line (e.g. cut by a kill) is dropped

