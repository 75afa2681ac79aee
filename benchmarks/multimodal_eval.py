"""Multi-modal style transfer next to plain AdaIN, with the quality benchmark's metrics.

    python benchmarks/multimodal_eval.py --data DATA/eval --checkpoint runs/a/checkpoint.safetensors --pairs 20 --modes 1 3 5
    python benchmarks/multimodal_eval.py --data DATA/eval --model weights/adain-vgg16 --smoothness 0.3 --json mm.json

Scores plain AdaIN and `models.multimodal` with K modes per style on the first N balanced pairs of
--data (benchmarks.quality.select_pairs), at 256 px long side, with style_stat / content /
edges from benchmarks/_metrics.py. Times are generation wall time per image on this machine, split into
the stages multi-modal adds: style modes (style encode + k-means) and matching (graph cut + per-region
AdaIN). Also prints how the content was split: modes used per image and the share of the largest region.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a clean clone
    sys.path.insert(0, str(ROOT))

from benchmarks._metrics import METRICS, Evaluator  # noqa: E402
from benchmarks.quality import (EvalSet, format_table, load_checkpoint_model,  # noqa: E402
                                model_maker, quantize, run_method, select_pairs)
from stylemix.models import multimodal as MM  # noqa: E402
from stylemix.models.io import atomic_write  # noqa: E402


def modes_maker(model: torch.nn.Module, data: EvalSet, device: torch.device, config: MM.MultimodalConfig,
                stages: dict[str, float], splits: list[dict]):
    """Outputs of multi-modal transfer; adds stage seconds to `stages` and one split record per image."""
    from stylemix.models.canvas import crop_to, pad_to_multiple

    taps, one = model.mix_taps, torch.ones(1, device=device)

    @torch.no_grad()
    def make(i: int, styles: list[int]) -> torch.Tensor:
        x, size = pad_to_multiple(data.contents[i][1].to(device), model.stride)
        t0 = time.perf_counter()
        feats = model.encode(x)
        stages["encode+decode"] += time.perf_counter() - t0
        outs = []
        for j in styles:
            t0 = time.perf_counter()
            if config.modes == 1:  # the plain path, as Stylizer runs it
                targets = model.mix(feats, [model.style_code(data.styles[j][1].to(device))[0]], one)
                labels = torch.zeros(1, 1, 1, 1, dtype=torch.long)
                t1 = t2 = time.perf_counter()
            else:
                style_feats = model.encode(data.styles[j][1].to(device))
                modes = MM.style_modes(style_feats, taps, config)
                t1 = time.perf_counter()
                targets, labels = MM.mode_targets(feats, [modes], one, taps, config)
                t2 = time.perf_counter()
            out = model.decode(targets).clamp(0, 1)
            t3 = time.perf_counter()
            stages["style modes"] += t1 - t0
            stages["matching"] += t2 - t1
            stages["encode+decode"] += t3 - t2
            counts = torch.bincount(labels.flatten(), minlength=config.modes)
            splits.append({"used": int((counts > 0).sum()), "largest": float(counts.max() / counts.sum())})
            outs.append(crop_to(out.float(), size))
        return quantize(torch.cat(outs))

    return make


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", metavar="PATH", help="training checkpoint.safetensors")
    src.add_argument("--model", metavar="DIR", help="weights directory or built-in name")
    ap.add_argument("--data", required=True, help="the evaluation set: a folder with content/ and style/")
    ap.add_argument("--size", type=int, default=256, help="long side of every image in pixels (default 256)")
    ap.add_argument("--pairs", type=int, default=20, help="first N balanced pairs (default 20)")
    ap.add_argument("--modes", type=int, nargs="+", default=[1, 3, 5], help="K values to run (default 1 3 5)")
    ap.add_argument("--smoothness", type=float, default=MM.MultimodalConfig.smoothness,
                    help=f"Potts weight (default {MM.MultimodalConfig.smoothness})")
    ap.add_argument("--transform", choices=MM.TRANSFORMS, default="adain", help="per-region matching (default adain)")
    ap.add_argument("--seed", type=int, default=0, help="k-means seed (default 0)")
    ap.add_argument("--encoder", default="vgg16-hed", help="metric encoder (default vgg16-hed)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--device", default="cpu", help="torch device (default cpu)")
    ap.add_argument("--json", metavar="OUT", help="write the figures as JSON")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from stylemix.models.pretrained import load_model, resolve_encoder

    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    if args.checkpoint:
        model, step = load_checkpoint_model(args.checkpoint, device, log)
        label = f"{Path(args.checkpoint).resolve().parent.name}@{step}"
    else:
        model, _ = load_model(args.model, device=device, log=log)
        label = Path(args.model).name
    data = EvalSet.load(args.data, args.size)
    pairs = select_pairs(len(data.contents), len(data.styles), args.pairs)
    evaluator = Evaluator.from_dir(resolve_encoder(args.encoder, log), device)
    content_refs = {i: evaluator.content_ref(data.contents[i][1]) for i in sorted({i for i, _ in pairs})}
    style_refs = {j: evaluator.style_ref(data.styles[j][1]) for j in sorted({j for _, j in pairs})}

    results = [run_method(f"plain AdaIN ({label})", "model", pairs, model_maker(model, data, device), evaluator,
                          content_refs, style_refs, log)]
    extra: dict[str, dict] = {}
    for k in args.modes:
        config = MM.MultimodalConfig(modes=k, smoothness=args.smoothness, seed=args.seed, transform=args.transform)
        stages = {"style modes": 0.0, "matching": 0.0, "encode+decode": 0.0}
        splits: list[dict] = []
        name = f"modes K={k}" + (f" (lambda {args.smoothness:g})" if k > 1 else "")
        res = run_method(name, "model", pairs, modes_maker(model, data, device, config, stages, splits), evaluator,
                         content_refs, style_refs, log)
        results.append(res)
        extra[name] = {"stage_seconds_per_image": {s: v / len(pairs) for s, v in stages.items()},
                       "modes_used_mean": statistics.fmean(s["used"] for s in splits),
                       "largest_region_mean": statistics.fmean(s["largest"] for s in splits)}

    print(f"\nmulti-modal vs plain AdaIN on {len(pairs)} pairs of {args.data}, {args.size} px, model {label}, "
          f"transform {args.transform}, seed {args.seed}")
    print(format_table(results))
    print("\nper image: stage seconds (style modes = style encode + k-means; matching = graph cut + per-region "
          "AdaIN) and the content split at relu4_1")
    for name, e in extra.items():
        st = e["stage_seconds_per_image"]
        print(f"  {name:<22} modes {st['style modes']:.3f}s  matching {st['matching']:.3f}s  "
              f"encode+decode {st['encode+decode']:.3f}s  | modes used {e['modes_used_mean']:.2f}, "
              f"largest region {100 * e['largest_region_mean']:.0f}%")
    if args.json:
        payload = {"model": label, "pairs": len(pairs), "size": args.size, "smoothness": args.smoothness,
                   "transform": args.transform, "seed": args.seed,
                   "methods": {r.label: {**r.summary(), "seconds_per_image": r.seconds, **extra.get(r.label, {}),
                                         "per_pair": [{"content": data.contents[i][0], "style": data.styles[j][0],
                                                       **{m: r.values[m][n] for m in METRICS}}
                                                      for n, (i, j) in enumerate(r.pairs)]}
                               for r in results}}
        atomic_write(args.json, lambda tmp: Path(tmp).write_text(json.dumps(payload, indent=1) + "\n"))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
