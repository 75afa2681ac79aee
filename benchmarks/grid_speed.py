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
    p.add_argument("--batch-size", type=int, default=8, help="cells decoded together (default 8)")
    p.add_argument("--styles", nargs=4, default=["impressionism-01", "baroque-02", "expressionism-03", "symbolism-04"],
                   help="4 corner styles (built-in names)")
    p.add_argument("--model", default=None, help="weights dir or name (default: adain-vgg16, else random init)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = p.parse_args(argv)

    import numpy as np
    import torch
    from skimage import data

    from benchmarks.speed import _build_model
    from inference.api import Stylizer
    from inference.grid import bilinear_grid

    torch.set_num_threads(args.threads)
    model, source = _build_model(args.model)
    s = Stylizer(model)
    content = np.asarray(data.astronaut())
    codes = s.style_codes(args.styles)
    weights = bilinear_grid(args.steps)
    s.stylize(content, codes, max_size=64)  # warm-up
    (cells, _), g_wall, g_cpu = timed(lambda: s.grid(content, codes, args.steps, max_size=args.cell_size,
                                                      batch_size=args.batch_size))
    singles, s_wall, s_cpu = timed(lambda: [s.stylize(content, codes, weights=w.tolist(), max_size=args.cell_size,
                                                      return_tensor=True) for w in weights])
    diff = float((torch.cat(singles) - cells).abs().max())
    n = args.steps ** 2
    res = {"cells": n, "cell_px": list(cells.shape[-2:]), "model": source, "threads": args.threads,
           "grid_wall_s": round(g_wall, 2), "grid_cpu_s": round(g_cpu, 2),
           "separate_wall_s": round(s_wall, 2), "separate_cpu_s": round(s_cpu, 2),
           "speedup_wall": round(s_wall / g_wall, 2), "speedup_cpu": round(s_cpu / g_cpu, 2),
           "max_abs_diff": diff}
    print(f"{args.steps} x {args.steps} grid, {tuple(cells.shape[-2:])} px cells, 4 blended styles, "
          f"{args.threads} thread(s); model: {source}")
    print(f"  grid (1 encode, batches of {args.batch_size}): wall {g_wall:7.2f} s  cpu {g_cpu:7.2f} s")
    print(f"  {n} separate stylize calls:          wall {s_wall:7.2f} s  cpu {s_cpu:7.2f} s")
    print(f"  speed-up: {s_wall / g_wall:.2f}x wall, {s_cpu / g_cpu:.2f}x cpu; max |grid - separate| = {diff:.2e}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
