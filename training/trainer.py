"""A model-agnostic training loop.

A *task* owns the model and its loss: `task.model` (nn.Module), `task.loss(step) -> (loss, logs)`,
and optionally `task.samples(step) -> (b, 3, h, w)` images for the sample grid. The loop does the
rest: Adam with inverse-time decay, bf16 autocast + channels_last on CPU (AMP on CUDA), atomic
checkpoints every N steps and on SIGINT/SIGTERM, bit-exact resume, DDP under torchrun, JSONL logs.
"""
from __future__ import annotations

import json
import os
import signal
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist
from torch import nn

from .checkpoint import checkpoint_config, load_checkpoint, save_checkpoint

try:
    from tqdm import tqdm
except ImportError:  # pragma: no cover
    tqdm = None


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
    precision: str = "auto"  # 'fp32', 'bf16' (autocast) or 'auto' (bf16 on CPU, AMP fp16 on CUDA)
    channels_last: bool = True
    checkpoint_every: int = 100  # a killed run loses at most this many steps
    sample_every: int = 500
    log_every: int = 10
    grad_clip: float = 0.0  # 0 = off


class ResumeMismatch(ValueError):
    """A run's config differs from the checkpoint it would resume."""


def diff_configs(saved: Any, now: Any, prefix: str = "") -> list[str]:
    if isinstance(saved, dict) and isinstance(now, dict):
        out = []
        for k in sorted(set(saved) | set(now)):
            out += diff_configs(saved.get(k), now.get(k), f"{prefix}{k}.")
        return out
    return [] if saved == now else [f"{prefix[:-1]}: checkpoint {saved!r}, now {now!r}"]


class Trainer:
    """Runs a task for `loop.steps` steps, writing into `out_dir` (checkpoint.safetensors, log.jsonl, samples/)."""

    def __init__(self, task: Task, loop: LoopConfig, out_dir: str | Path, run_config: dict[str, Any],
                 device: str = "cpu", resume_ignore: tuple[str, ...] = ("loop.steps",)):
        self.task, self.loop, self.out = task, loop, Path(out_dir)
        self.run_config, self.device, self.resume_ignore = run_config, torch.device(device), resume_ignore
        self.distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
        if self.distributed and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        self.rank = dist.get_rank() if self.distributed else 0
        model = task.model.to(self.device)
        if loop.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.params = [p for p in model.parameters() if p.requires_grad]
        if self.distributed:  # every rank starts from rank 0's weights
            for p in model.state_dict().values():
                dist.broadcast(p, 0)
        self.optimizer = torch.optim.Adam(self.params, lr=loop.lr)
        self.stop_requested = False

    # -- schedule & precision -------------------------------------------------------------
    def lr_at(self, step: int) -> float:
        warm = min(1.0, (step + 1) / self.loop.warmup) if self.loop.warmup else 1.0
        return self.loop.lr * warm / (1.0 + self.loop.lr_decay * step)

    def autocast(self):
        p = self.loop.precision
        if p == "fp32":
            return nullcontext()
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16 if p == "bf16" else torch.float16)
        return torch.autocast("cpu", dtype=torch.bfloat16)

    # -- checkpoints ----------------------------------------------------------------------
    @property
    def ckpt_path(self) -> Path:
        return self.out / "checkpoint.safetensors"

    def resume(self) -> int:
        if not self.ckpt_path.is_file():
            return 0
        saved = checkpoint_config(self.ckpt_path)
        diffs = [d for d in diff_configs(saved, self.run_config) if not d.startswith(self.resume_ignore)]
        if diffs:
            raise ResumeMismatch(f"refusing to resume {self.ckpt_path}: config differs ({'; '.join(diffs)})")
        return load_checkpoint(self.ckpt_path, self.task.model, self.optimizer)

    def save(self, step: int) -> None:
        if self.rank == 0:
            save_checkpoint(self.ckpt_path, self.task.model, self.optimizer, step, self.run_config)

    def _on_signal(self, signum, frame):
        self.stop_requested = True

    # -- loop -----------------------------------------------------------------------------
    def fit(self, resume: bool = True) -> int:
        """Train until loop.steps (or a signal). Returns the last completed step."""
        self.out.mkdir(parents=True, exist_ok=True)
        start = self.resume() if resume else 0
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        log = open(self.out / "log.jsonl", "a") if self.rank == 0 else None
        bar = tqdm(total=self.loop.steps, initial=start, disable=self.rank != 0 or tqdm is None, dynamic_ncols=True)
        step, t0, seen = start, time.time(), 0
        try:
            while step < self.loop.steps and not self.stop_requested:
                for g in self.optimizer.param_groups:
                    g["lr"] = self.lr_at(step)
                with self.autocast():
                    loss, logs = self.task.loss(step)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if self.distributed:
                    self._allreduce_grads()
                if self.loop.grad_clip:
                    torch.nn.utils.clip_grad_norm_(self.params, self.loop.grad_clip)
                self.optimizer.step()
                step += 1
                seen += int(logs.pop("batch", 1))
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"loss became {loss.item()} at step {step}; lower the learning rate")
                if step % self.loop.log_every == 0 and log is not None:
                    rate = seen / max(time.time() - t0, 1e-9)
                    rec = {"step": step, "loss": float(loss), "lr": self.lr_at(step - 1), "img_per_s": rate,
                           "time": time.time(), **{k: float(v) for k, v in logs.items()}}
                    log.write(json.dumps(rec) + "\n")
                    log.flush()
                    bar.set_postfix(loss=f"{float(loss):.3f}", img_s=f"{rate:.1f}")
                bar.update(1)
                if step % self.loop.checkpoint_every == 0 or step == self.loop.steps:
                    self.save(step)
                if self.rank == 0 and self.loop.sample_every and step % self.loop.sample_every == 0:
                    self._write_samples(step)
            if self.stop_requested:
                self.save(step)
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            bar.close()
            if log is not None:
                log.close()
        return step

    def _allreduce_grads(self) -> None:
        # The task calls the bare model, so average the gradients across ranks explicitly.
        world = dist.get_world_size()
        for p in self.params:
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= world

    def _write_samples(self, step: int) -> None:
        samples = getattr(self.task, "samples", None)
        if samples is None:
            return
        from torchvision.utils import save_image

        with torch.no_grad(), self.autocast():
            grid = samples(step).float().clamp(0, 1)
        path = self.out / "samples" / f"step{step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_image(grid, path, nrow=grid.shape[0] // 3 if grid.shape[0] >= 3 else 1)
