"""Preview latency of `stylemix app`: N weight-slider changes at 256 px, through the real FastAPI routes
(in-process TestClient: HTTP parsing, JSON, PNG encoding included, no network). Prints figures, asserts
nothing.

The first preview of a photo pays for loading and encoding it and the style codes; every later change
only mixes and decodes (the content encoding and codes are cached per tab), which is what a person moving
a slider waits for. Reported per model: that first preview, then median and p90 of the changes, wall and
the server's own compute time (header X-Compute-Ms), the process CPU time per change (all threads: on an
idle machine wall ~ CPU / threads), and the load average, since the machine may be busy.

    nice -n 5 python benchmarks/app_latency.py [--changes 30] [--size 256] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by linear interpolation between order statistics."""
    s = sorted(values)
    i = q * (len(s) - 1)
    lo = int(i)
    return s[lo] + (s[min(lo + 1, len(s) - 1)] - s[lo]) * (i - lo)


def measure(name: str | None, args) -> dict:
    from fastapi.testclient import TestClient

    from stylemix.inference.api import Stylizer
    from stylemix.inference.app.server import AppConfig, create_app
    from stylemix.models.pretrained import DEFAULT_MODEL

    stylizer = Stylizer.from_pretrained(name, dtype=args.dtype)
    app = create_app(stylizer, config=AppConfig(preview_size=args.size))
    client = TestClient(app)
    try:
        sid = client.post("/api/session").json()["session"]
        styles = [f"builtin:{s}" for s in args.styles]

        def preview(i: int, weights: list[float]) -> tuple[float, float, float]:
            body = {"photo": f"bundled:{args.photo}", "seq": i,
                    "styles": [{"ref": r, "weight": w} for r, w in zip(styles, weights)]}
            t0, c0 = time.perf_counter(), time.process_time()
            r = client.post(f"/api/s/{sid}/preview", json=body)
            wall, cpu = (time.perf_counter() - t0) * 1000, (time.process_time() - c0) * 1000
            if r.status_code != 200:
                raise SystemExit(f"preview failed: {r.status_code} {r.text}")
            return wall, float(r.headers["x-compute-ms"]), cpu

        first = preview(0, [0.5, 0.5])[0]
        walls, computes, cpus = [], [], []
        for i in range(1, args.changes + 1):
            a = (i % 21) / 20  # the slider swept back and forth over 0 .. 1
            wall, compute, cpu = preview(i, [a, 1 - a + 0.05])
            walls.append(wall)
            computes.append(compute)
            cpus.append(cpu)
    finally:
        app.state.blender.close()
    return {"model": name or f"default ({DEFAULT_MODEL})", "size": args.size, "changes": args.changes,
            "first_ms": round(first, 1), "median_ms": round(statistics.median(walls), 1),
            "p90_ms": round(percentile(walls, 0.9), 1), "compute_median_ms": round(statistics.median(computes), 1),
            "compute_p90_ms": round(percentile(computes, 0.9), 1),
            "cpu_median_ms": round(statistics.median(cpus), 1)}  # process CPU time: the load-independent figure


def main(argv: list[str] | None = None) -> int:
    from stylemix.inference.app import FAST_MODEL  # the package's __init__ only: no FastAPI at import time

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--changes", type=int, default=30, help="weight changes timed per model (default 30)")
    p.add_argument("--size", type=int, default=256, help="preview long side in px (default 256)")
    p.add_argument("--photo", default="astronaut", help="bundled photo (default astronaut)")
    p.add_argument("--styles", nargs=2, default=["post-impressionism-01", "expressionism-02"],
                   help="two built-in styles (default: the page's preselected ones)")
    p.add_argument("--models", nargs="+", default=["default", FAST_MODEL],
                   help=f"weights dirs or names; 'default' = the shipped default (default: default {FAST_MODEL})")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--dtype", default="auto", choices=("auto", "fp32", "bf16"), help="precision (default auto)")
    args = p.parse_args(argv)

    import torch

    from stylemix.models.io import WeightsError
    from stylemix.models.pretrained import resolve_model_dir

    if args.threads:
        torch.set_num_threads(args.threads)
    print(json.dumps({"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                      "loadavg_before": [round(x, 2) for x in os.getloadavg()]}))
    for m in args.models:
        name = None if m == "default" else m
        try:
            resolve_model_dir(name)
        except WeightsError as e:
            print(json.dumps({"model": m, "skipped": f"not installed ({e})"}))
            continue
        result = measure(name, args)
        result["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
