"""A run's log.jsonl as training time: cumulative hours with pauses left out.

Training hours add up across runs and machines: a run that starts from a committed weights dir
(`TrainConfig.init`) carries that dir's steps and hours forward (see `cumulative`). They are read once, when the
run starts, into the run's init.json (`record_init`): the usual way to continue a model is to export back into
the dir it started from, and reading that dir again at the next export would count the run's steps twice.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..models import pretrained
from ..models.io import CONFIG_FILE, atomic_write, load_json

MAX_GAP_S = 600.0  # a pause longer than this between two log records is not training time
INIT_FILE = "init.json"  # in a run dir: the totals of the weights the run started from


def read_jsonl(path: str | Path) -> list[dict]:
    """Records of a JSONL file; blank and half-written (last) lines are skipped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such log file: {path}")
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def hours_axis(records: list[dict], max_gap: float = MAX_GAP_S) -> list[float]:
    """Cumulative training hours at each log record (file order): the sum of the time between consecutive
    records, leaving out gaps longer than `max_gap` seconds (the run was stopped and later resumed)."""
    hours, total, prev = [], 0.0, None
    for r in records:
        t = r.get("time")
        if t is not None and prev is not None and 0 < t - prev <= max_gap:
            total += t - prev
        prev = t if t is not None else prev
        hours.append(total / 3600.0)
    return hours


def training_hours(records: list[dict], step: int, max_gap: float = MAX_GAP_S) -> float | None:
    """Training hours spent to reach `step`: the cumulative hours at the last record with step <= `step`
    (after a resume the re-run steps count as time spent). None when no record qualifies."""
    best = None
    for r, h in zip(records, hours_axis(records, max_gap)):
        if r.get("step", 0) <= step:
            best = h
    return best


def cumulative(init_meta: dict, steps: int, hours: float | None) -> dict[str, str]:
    """Metadata of a weights dir trained `steps` more steps (`hours` more hours) from one with `init_meta`
    ({} when trained from scratch): {'steps', 'hours'} as strings, as config.json and safetensors keep them."""
    prev_steps = int(init_meta.get("steps", 0) or 0)
    prev_hours = float(init_meta.get("hours", 0) or 0)
    return {"steps": str(prev_steps + steps), "hours": f"{prev_hours + (hours or 0.0):.3f}"}


def run_totals(run_dir: str | Path, step: int, init_dir: str | Path | None) -> dict[str, str]:
    """Cumulative {'steps', 'hours'} of the run in `run_dir` at `step`, its init weights' own totals included."""
    log_file = Path(run_dir) / "log.jsonl"
    hours = training_hours(read_jsonl(log_file), step) if log_file.is_file() else None
    return cumulative(init_totals(run_dir, init_dir), step, hours)


def resolve_init(init: str) -> Path | None:
    """The weights dir a run's `init` names (a path or a shipped name); None for a run from scratch."""
    return pretrained.resolve_model_dir(init) if init else None


def record_init(run_dir: str | Path, init_dir: str | Path | None) -> dict:
    """Write run_dir/init.json with the steps and hours of the weights dir the run starts from (zero when it
    starts from scratch). Call it when a run starts fresh; returns what was written."""
    meta = load_json(Path(init_dir) / CONFIG_FILE) if init_dir else {}
    rec = {"from": str(init_dir or ""), "steps": int(meta.get("steps", 0) or 0),
           "hours": float(meta.get("hours", 0) or 0)}
    atomic_write(Path(run_dir) / INIT_FILE, lambda tmp: Path(tmp).write_text(json.dumps(rec) + "\n"))
    return rec


def init_totals(run_dir: str | Path, init_dir: str | Path | None) -> dict:
    """Steps and hours a run started from: its init.json when recorded, else (a run older than the record)
    the init dir's config.json as it is now, else {} (from scratch)."""
    rec = Path(run_dir) / INIT_FILE
    if rec.is_file():
        return load_json(rec)
    return load_json(Path(init_dir) / CONFIG_FILE) if init_dir else {}
