"""Dataset throughput: images/s of `stylemix dataset` (inference/dataset.py) at 224 px, the ImageNet size,
for each model, with 1 process and with 2 processes splitting the work (--shard 0/2 + 1/2, torch threads
divided between them). Prints figures, asserts nothing.

The content set is N photos of 224 x 224 cut from skimage.data pictures; the styles are 4 other
skimage.data pictures (style images, so every model can use them: the fast model has its own encoder and
cannot use the built-in bank's VGG statistics). Each configuration writes a fresh DST, in fresh processes:

  loop img/s:  images / the slowest process's stylising loop (model loaded, styles encoded): the rate a
               long run settles at.
  e2e img/s:   images / wall time from starting the processes to the last exit (imports, model load,
               style encoding included): what this short run cost.
  cpu ms/img:  process CPU time of all the processes (all threads, model load and style encoding included)
               per image: the figure that stays meaningful on a machine busy with other work.

A model that is not installed (e.g. adain-fast before its weights are exported) is skipped with the reason.
On a machine busy with other work, wall-time figures measure the scheduler too; the load average at the
start is printed beside them.

    nice -n 5 python benchmarks/dataset.py [--models adain-vgg16-v2 adain-fast] [--images 16] [--size 224]
                                           [--procs 1 2] [--dtype auto]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path



def make_contents(folder: Path, n: int, size: int) -> None:
    """n photos of size x size in two class folders, crops of skimage.data pictures at varied places/scales."""
    import numpy as np
    from PIL import Image
    from skimage import data

    pictures = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), data.cat()]
    rng = np.random.default_rng(0)
    for i in range(n):
        pic = pictures[i % len(pictures)]
        h, w = pic.shape[:2]
        side = int(rng.integers(min(h, w) // 2, min(h, w) + 1))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = Image.fromarray(pic[y:y + side, x:x + side]).resize((size, size), Image.BICUBIC)
        out = folder / f"class{i % 2}" / f"img{i:04d}.jpg"
        out.parent.mkdir(parents=True, exist_ok=True)
        crop.save(out, quality=90)


def make_styles(folder: Path) -> None:
    import numpy as np
    from PIL import Image
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    for name in ("immunohistochemistry", "hubble_deep_field", "brick", "gravel"):
        try:
            arr = getattr(data, name)()
        except Exception as e:  # noqa: BLE001  a picture skimage would have to download
            print(f"  (style {name} unavailable: {type(e).__name__})")
            continue
        Image.fromarray(arr if arr.ndim == 3 else np.stack([arr] * 3, -1)).save(folder / f"{name}.png")


def worker(args) -> None:
    """One process of one configuration: run the dataset API, print its report as JSON."""
    import torch

    from stylemix.inference.dataset import Shard, stylize_dataset

    torch.set_num_threads(args.threads)
    cpu = time.process_time()
    r = stylize_dataset(args.src, args.dst, [args.styles], model=args.model, device="cpu", dtype=args.dtype,
                        max_size=args.size, shard=Shard.parse(args.shard), progress=False)
    print(json.dumps({"written": r.written, "seconds": r.seconds, "cpu_s": time.process_time() - cpu}))


def installed(model: str) -> str | None:
    """None when `model` loads, else why not."""
    from stylemix.models.io import WeightsError
    from stylemix.models.pretrained import load_model

    try:
        load_model(model, log=lambda *_: None)
        return None
    except (WeightsError, ValueError, OSError) as e:
        return str(e)


def run_config(model: str, procs: int, src: Path, styles: Path, args, tmp: Path) -> dict:
    cores = os.cpu_count() or 1
    threads = max(1, cores // procs)
    dst = tmp / f"out-{Path(model).name}-{procs}"
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    jobs = [subprocess.Popen([sys.executable, __file__, "--worker", "--src", str(src), "--dst", str(dst),
                              "--styles", str(styles), "--model", model, "--shard", f"{i}/{procs}",
                              "--threads", str(threads), "--size", str(args.size), "--dtype", args.dtype],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            for i in range(procs)]
    results = []
    for job in jobs:
        out, err = job.communicate()
        if job.returncode != 0:
            return {"error": (err.strip().splitlines() or ["no output"])[-1]}
        results.append(json.loads(out.strip().splitlines()[-1]))
    wall = time.perf_counter() - start
    written = sum(r["written"] for r in results)
    loop = max(r["seconds"] for r in results)
    cpu = sum(r["cpu_s"] for r in results)
    return {"written": written, "threads": threads, "loop_ips": written / loop if loop else 0.0,
            "e2e_ips": written / wall, "wall_s": wall, "cpu_ms_per_img": 1000 * cpu / max(written, 1)}


def main(argv: list[str] | None = None) -> int:
    from stylemix.models.pretrained import DEFAULT_MODEL

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=[DEFAULT_MODEL, "adain-fast"],
                   help=f"weights dirs or names; missing ones are skipped (default: {DEFAULT_MODEL} adain-fast)")
    p.add_argument("--images", type=int, default=16, help="content images (default: 16)")
    p.add_argument("--size", type=int, default=224, help="content size in pixels (default: 224)")
    p.add_argument("--procs", type=int, nargs="+", default=[1, 2], help="process counts to time (default: 1 2)")
    p.add_argument("--dtype", choices=("auto", "fp32", "bf16"), default="auto", help="precision (default: auto)")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    # worker mode (internal)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    for flag in ("--src", "--dst", "--styles", "--model", "--shard"):
        p.add_argument(flag, help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(args)
        return 0

    print(f"dataset throughput: {args.images} images at {args.size} px, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f} at start, dtype {args.dtype}")
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_contents(tmp / "src", args.images, args.size)
        make_styles(tmp / "styles")
        print(f"{'model':<22} {'procs':>5} {'threads':>7} {'loop img/s':>10} {'e2e img/s':>9} {'wall s':>7} "
              f"{'cpu ms/img':>10}")
        for model in args.models:
            why = installed(model)
            if why is not None:
                print(f"{model:<22} skipped: not installed ({why})")
                continue
            for procs in args.procs:
                r = run_config(model, procs, tmp / "src", tmp / "styles", args, tmp)
                figures[f"{model}/{procs}"] = r
                if "error" in r:
                    print(f"{model:<22} {procs:>5} error: {r['error']}")
                else:
                    print(f"{model:<22} {procs:>5} {r['threads']:>7} {r['loop_ips']:>10.2f} {r['e2e_ips']:>9.2f} "
                          f"{r['wall_s']:>7.1f} {r['cpu_ms_per_img']:>10.0f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
