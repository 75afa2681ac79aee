"""Tiled high-resolution stylisation: seams and memory. Prints figures, asserts nothing.

  seams:  an image that fits untiled (default 768 x 512) stylised untiled and tiled; max and mean absolute
          difference (in [0, 1] and in 8-bit levels), next to the naive way (each tile normalised with its
          own statistics) for contrast.
  large:  a 3840 x 2160 photo with 4 blended built-in styles, tiled, in a subprocess: wall time, CPU time
          and peak resident memory (ru_maxrss of that process).

The photos are scikit-image's (coffee), upscaled. Uses the trained model when it loads, else a random-init
model of the same architecture (memory and seams do not depend on the weights; the output says which).

    nice -n 10 env OMP_NUM_THREADS=1 python benchmarks/tiling.py [--skip-large] [--tile 512 --halo 64]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
STYLES = ["impressionism-01", "baroque-02", "expressionism-03", "symbolism-04"]


def photo(w: int, h: int):
    """scikit-image's coffee photo resized and centre-cropped to w x h: (1, 3, h, w) in [0, 1]."""
    import torch
    import torch.nn.functional as F
    from skimage import data

    x = torch.from_numpy(data.coffee()).permute(2, 0, 1)[None].float() / 255
    s = max(w / x.shape[-1], h / x.shape[-2])
    x = F.interpolate(x, size=(round(x.shape[-2] * s), round(x.shape[-1] * s)), mode="bicubic",
                      align_corners=False).clamp(0, 1)
    top, left = (x.shape[-2] - h) // 2, (x.shape[-1] - w) // 2
    return x[..., top:top + h, left:left + w].contiguous()


def naive_tiles(s, x, codes, tile: int):
    """Each tile (no overlap) stylised on its own: per-tile statistics, the seams tiling avoids."""
    import torch

    out = torch.zeros_like(x)
    for i in range(0, x.shape[-2], tile):
        for j in range(0, x.shape[-1], tile):
            out[..., i:i + tile, j:j + tile] = s.stylize(x[..., i:i + tile, j:j + tile], codes, max_size=None,
                                                         return_tensor=True)
    return out


def seams(args) -> dict:

    from benchmarks.speed import build_model
    from stylemix.inference.api import Stylizer

    model, source = build_model(args.model)
    s = Stylizer(model)
    codes = s.style_codes(STYLES)
    x = photo(args.seam_width, args.seam_height)
    full = s.stylize(x, codes, max_size=None, return_tensor=True)
    res = {"model": source, "size": [args.seam_width, args.seam_height], "tile": args.tile, "halo": args.halo}
    for tile, halo in [(args.tile, args.halo), *[(t, h) for t, h in args.also]]:
        t0 = time.process_time()
        tiled = s.stylize_tiled(x, codes, tile=tile, halo=halo, return_tensor=True)
        d = (tiled - full).abs()
        res[f"tiled_{tile}_{halo}"] = {"max_abs": float(d.max()), "mean_abs": float(d.mean()),
                                       "max_8bit_levels": float((d * 255).round().max()),
                                       "pixels_off_by_more_than_1_level": float((d * 255 > 1).float().mean()),
                                       "cpu_s": round(time.process_time() - t0, 1)}
    d = (naive_tiles(s, x, codes, args.tile - 2 * args.halo) - full).abs()
    res["naive_per_tile_stats"] = {"max_abs": float(d.max()), "mean_abs": float(d.mean())}
    return res


def large_worker(cfg: dict) -> dict:
    import resource

    import torch

    from benchmarks.speed import build_model
    from stylemix.inference.api import Stylizer

    torch.set_num_threads(cfg["threads"])
    model, source = build_model(cfg["model"])
    s = Stylizer(model)
    x = photo(cfg["width"], cfg["height"])
    w0, c0 = time.perf_counter(), time.process_time()
    out = s.stylize_tiled(x, STYLES, weights=[0.4, 0.3, 0.2, 0.1], tile=cfg["tile"], halo=cfg["halo"],
                          return_tensor=True, progress=True)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    if cfg.get("save"):
        from stylemix.inference.images import save_image

        save_image(out, cfg["save"])
    return {"model": source, "size": [cfg["width"], cfg["height"]], "tile": cfg["tile"], "halo": cfg["halo"],
            "styles": 4, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "threads": cfg["threads"],
            "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
            "finite": bool(torch.isfinite(out).all())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tile", type=int, default=512, help="tile side (default 512)")
    p.add_argument("--halo", type=int, default=64, help="halo (default 64)")
    p.add_argument("--also", type=lambda s: tuple(map(int, s.split(","))), nargs="*", default=[],
                   metavar="TILE,HALO", help="more (tile, halo) settings for the seam check, e.g. 256,32 512,96")
    p.add_argument("--seam-width", type=int, default=768)
    p.add_argument("--seam-height", type=int, default=512)
    p.add_argument("--width", type=int, default=3840)
    p.add_argument("--height", type=int, default=2160)
    p.add_argument("--skip-seams", action="store_true")
    p.add_argument("--skip-large", action="store_true")
    p.add_argument("--save", default=None, help="write the large output image here")
    p.add_argument("--model", default=None, help="weights dir or name (default: adain-vgg16, else random init)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(large_worker(json.loads(args.worker))))
        return 0

    import torch

    torch.set_num_threads(args.threads)
    res = {}
    if not args.skip_seams:
        res["seams"] = seams(args)
        print(json.dumps(res["seams"], indent=2))
    if not args.skip_large:
        cfg = {"model": args.model, "width": args.width, "height": args.height, "tile": args.tile,
               "halo": args.halo, "threads": args.threads, "save": args.save}
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(cfg)], capture_output=True,
                              text=True, env=env, cwd=ROOT)
        lines = proc.stdout.strip().splitlines()
        res["large"] = json.loads(lines[-1]) if proc.returncode == 0 and lines else \
            {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1]}
        print(json.dumps(res["large"], indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
