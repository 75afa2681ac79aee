"""Grid speed: an N x N grid of 4 blended built-in styles (`Stylizer.grid`: one content encoding, batched
decoding) against N*N separate `Stylizer.stylize` calls with the same weights. Prints figures, asserts nothing.

Both sides get the style codes precomputed (built-in styles), so the difference is the content encoding
done once instead of N*N times, plus batched decoding. Wall time AND process CPU time are reported: on a
shared machine the CPU time is the stable figure. Also checks that both give the same cells.

    nice -n 10 env OMP_NUM_THREADS=1 python benchmarks/grid_speed.py [--steps 5] [--cell-size 256]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def timed(fn):
    """(result, wall seconds, process CPU seconds)."""
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=5, help="grid side (default 5: 25 cells)")
    p.add_argument("--cell-size", type=int, default=256, help="long side of each cell (default 256)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8], help="grid decode batch sizes to time (default 1 8)")
    p.add_argument("--repeats", type=int, default=1, help="alternating repeats; the best time is reported (default 1)")
    p.add_argument("--styles", nargs=4, default=["impressionism-01", "baroque-02", "expressionism-03", "symbolism-04"],
                   help="4 corner styles (built-in names)")
    p.add_argument("--model", default=None, help="weights dir or name (default: adain-vgg16, else random init)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = p.parse_args(argv)

    import numpy as np
    import torch
    from skimage import data

    from benchmarks.speed import build_model
    from stylemix.inference.api import Stylizer
    from stylemix.inference.grid import bilinear_grid

    torch.set_num_threads(args.threads)
    model, source = build_model(args.model)
    s = Stylizer(model)
    content = np.asarray(data.astronaut())
    codes = s.style_codes(args.styles)
    weights = bilinear_grid(args.steps)
    s.stylize(content, codes, max_size=64)  # warm-up
    runs: dict[str, list[tuple[float, float]]] = {}
    cells = singles = None
    for _ in range(args.repeats):  # alternate the variants so a change in machine load hits all of them
        for bs in args.batch_sizes:
            (cells, _), wall, cpu = timed(lambda: s.grid(content, codes, args.steps, max_size=args.cell_size,
                                                         batch_size=bs))
            runs.setdefault(f"grid_batch{bs}", []).append((wall, cpu))
        singles, wall, cpu = timed(lambda: [s.stylize(content, codes, weights=w.tolist(), max_size=args.cell_size,
                                                      return_tensor=True) for w in weights])
        runs.setdefault("separate", []).append((wall, cpu))
    diff = float((torch.cat(singles) - cells).abs().max())
    best = {k: (min(w for w, _ in v), min(c for _, c in v)) for k, v in runs.items()}
    n = args.steps ** 2
    res = {"cells": n, "cell_px": list(cells.shape[-2:]), "model": source, "threads": args.threads,
           "repeats": args.repeats, "best_wall_s": {k: round(v[0], 2) for k, v in best.items()},
           "best_cpu_s": {k: round(v[1], 2) for k, v in best.items()}, "max_abs_diff": diff}
    print(f"{args.steps} x {args.steps} grid, {tuple(cells.shape[-2:])} px cells, 4 blended styles, "
          f"{args.threads} thread(s), best of {args.repeats}; model: {source}")
    sep_wall, sep_cpu = best["separate"]
    for k, (wall, cpu) in best.items():
        print(f"  {k:<14} wall {wall:8.2f} s  cpu {cpu:7.2f} s   separate/this: {sep_wall / wall:5.2f}x wall, "
              f"{sep_cpu / cpu:5.2f}x cpu")
    print(f"  max |grid - separate| = {diff:.2e}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
