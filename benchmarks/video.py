"""Video benchmark: flicker ("temporal error") and style strength of `Stylizer.stylize_video`, and its speed.

    python benchmarks/video.py                        # 60 frames at 256 px, methods none + both, fps at 512 px
    python benchmarks/video.py --methods none,stats,flow,both --json v.json
    python benchmarks/video.py --models adain-vgg16-v2,adain-fast --fps-frames 8

1. Synthetic pan: scikit-image's astronaut, a window of --size px (long side, 4:3) moved 2 px to the right per
   frame, --frames frames. The true motion is known, so the temporal error is exact: the mean absolute
   difference (0-255) between output t+1 and output t shifted by the 2 px, over the overlap. Per frame, style_stat
   (benchmarks/_metrics.py) says how far the output's VGG statistics are from the style's; stabilisation must
   not buy its calm by losing style. Target: temporal error of 'both' <= 0.5x frame-by-frame
   ('none'), mean style_stat within 5 % of frame-by-frame.
2. "Real" clip: scikit-image's coffee photo under a slow zoom + rotation (true motion not used): the error is
   measured after warping output t onto t+1 with the flow DIS estimates between the input frames, on the pixels
   that flow calls reliable (video.reliable) — what a user's footage is judged by.
3. Speed: frames per second at --fps-size px (long side) for each of --models (a missing one is skipped with a
   message), frame by frame and with the default stabilisation; the first frame (warm-up) is not counted.

Prints the load average: on a shared machine the speed figures are only comparable within one run.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a clean clone
    sys.path.insert(0, str(ROOT))

from benchmarks._cli import run  # noqa: E402
from benchmarks._metrics import Evaluator, style_stat  # noqa: E402
from stylemix.models.io import WeightsError, atomic_write  # noqa: E402
from stylemix.models.pretrained import DEFAULT_MODEL  # noqa: E402

STEP = 2  # px per frame of the synthetic pan


def _photo(name: str) -> torch.Tensor:
    import skimage.data

    return torch.from_numpy(getattr(skimage.data, name)()).permute(2, 0, 1)[None].float() / 255


def pan_clip(frames: int, size: int) -> list[torch.Tensor]:
    """The astronaut, a (3/4 size) x size window moved STEP px right per frame (scaled so the pan fits)."""
    h, w = round(size * 3 / 4), size
    photo = _photo("astronaut")
    need = w + STEP * (frames - 1) + 16
    if need > photo.shape[-1]:
        s = need / photo.shape[-1]
        photo = F.interpolate(photo, scale_factor=s, mode="bilinear", align_corners=False).clamp(0, 1)
    y0 = (photo.shape[-2] - h) // 3
    return [photo[..., y0:y0 + h, 8 + STEP * t:8 + STEP * t + w].clone() for t in range(frames)]


def zoom_clip(frames: int, size: int) -> list[torch.Tensor]:
    """A 4:3 window over 70 % of the coffee photo's width under a zoom (0.4 % per frame) and a rotation (0.3 degree
    per frame) about its centre."""
    photo = _photo("coffee")
    H, W = photo.shape[-2:]
    h, w = round(size * 3 / 4), size
    kx = 0.7
    ky = kx * W / H * h / w  # the window keeps the output's aspect ratio
    out = []
    for t in range(frames):
        s, a = 1 / (1.0 + 0.004 * t), np.deg2rad(0.3 * t)
        theta = torch.tensor([[s * np.cos(a) * kx, -s * np.sin(a) * ky * H / W, 0.0],
                              [s * np.sin(a) * kx * W / H, s * np.cos(a) * ky, 0.0]], dtype=torch.float32)[None]
        grid = F.affine_grid(theta, [1, 3, h, w], align_corners=False)
        out.append(F.grid_sample(photo, grid, mode="bicubic", padding_mode="reflection", align_corners=False).clamp(0, 1))
    return out


def pan_error(outs: torch.Tensor) -> float:
    """Mean |out[t+1] - out[t] moved by the pan| in 0-255 levels, over the overlap."""
    w = outs.shape[-1]
    return float((outs[1:, ..., :w - STEP] - outs[:-1, ..., STEP:]).abs().mean() * 255)


def flow_error(outs: torch.Tensor, inputs: list[torch.Tensor]) -> tuple[float, float]:
    """(mean |out[t+1] - warp(out[t])| in 0-255 on reliable pixels, the fraction reliable), the flow estimated by
    DIS between the input frames."""
    import cv2

    from stylemix.inference import video as V

    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    errs, fracs = [], []
    for t in range(len(inputs) - 1):
        a, b = V.gray8(inputs[t]), V.gray8(inputs[t + 1])
        back, fwd = V.optical_flow(dis, b, a), V.optical_flow(dis, a, b)
        ok = V.reliable(back, fwd)  # (h, w)
        moved = V.warp(outs[t:t + 1], torch.from_numpy(back))
        diff = (outs[t + 1:t + 2] - moved).abs().mean(1)[0]  # (h, w)
        errs.append(float((diff * ok).sum() / ok.sum().clamp_min(1)) * 255)
        fracs.append(float(ok.mean()))
    return float(np.mean(errs)), float(np.mean(fracs))


def style_stats(evaluator: Evaluator, outs: torch.Tensor, style_ref) -> np.ndarray:
    """style_stat of every frame (n,)."""
    vals = []
    for part in outs.split(8):
        feats, _ = evaluator.features(part)
        vals.append(style_stat(feats, style_ref))
    return torch.cat(vals).numpy()


def run_clip(stylizer, frames, style, method: str) -> tuple[torch.Tensor, float]:
    start = time.perf_counter()
    outs = torch.cat(list(stylizer.stylize_video(frames, [style], temporal=method, return_tensor=True)))
    return outs, time.perf_counter() - start


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=60, help="frames of the synthetic pan (default 60)")
    ap.add_argument("--size", type=int, default=256, help="long side of the benchmark clips in px (default 256)")
    ap.add_argument("--real-frames", type=int, default=30, help="frames of the zoom/rotation clip, 0 = skip (default 30)")
    ap.add_argument("--methods", default="none,both", help="temporal modes to compare, 'none' first (default none,both)")
    ap.add_argument("--style", help="style image, e.g. the evaluation set's style/la_muse.jpg (default: "
                                    "scikit-image's chelsea)")
    ap.add_argument("--models", default=f"{DEFAULT_MODEL},adain-fast",
                    help=f"models timed for fps (names or dirs; missing ones are skipped) (default {DEFAULT_MODEL},adain-fast)")
    ap.add_argument("--fps-size", type=int, default=512, help="long side of the timed clip (default 512)")
    ap.add_argument("--fps-frames", type=int, default=6, help="frames timed per model and mode, 0 = skip (default 6)")
    ap.add_argument("--device", default="cpu", help="torch device (default cpu)")
    ap.add_argument("--json", metavar="OUT", help="write every figure as JSON")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    return run("video benchmark", _main, parse_args(argv), (ValueError, FileNotFoundError, WeightsError, ImportError))


def _main(args: argparse.Namespace) -> int:
    from stylemix import Stylizer
    from stylemix.inference.images import load_image
    from stylemix.models.pretrained import resolve_encoder

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if methods[:1] != ["none"]:
        raise ValueError("--methods must start with 'none' (the frame-by-frame reference)")
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    report: dict = {"load_average": os.getloadavg(), "threads": torch.get_num_threads(), "cpus": os.cpu_count()}
    log(f"load average {report['load_average']}, {report['threads']} torch threads on {report['cpus']} CPUs")
    style = load_image(args.style, 512) if args.style else _photo("chelsea")
    report["style"] = args.style or "skimage.data.chelsea"
    stylizer = Stylizer.from_pretrained(device=args.device)
    evaluator = Evaluator.from_dir(resolve_encoder("vgg16-hed", log), args.device)
    style_ref = evaluator.style_ref(style)

    clip = pan_clip(args.frames, args.size)
    pan: dict = {}
    for m in methods:
        outs, seconds = run_clip(stylizer, clip, style, m)
        ss = style_stats(evaluator, outs, style_ref)
        pan[m] = {"temporal_error": pan_error(outs), "style_stat": float(ss.mean()), "style_stat_max": float(ss.max()),
                  "seconds": seconds}
        log(f"pan {m}: temporal error {pan[m]['temporal_error']:.2f} levels, style_stat {pan[m]['style_stat']:.4f} "
            f"({seconds:.0f} s)")
    for m in methods[1:]:
        pan[m]["error_ratio"] = pan[m]["temporal_error"] / pan["none"]["temporal_error"]
        pan[m]["style_stat_change"] = pan[m]["style_stat"] / pan["none"]["style_stat"] - 1
    report["pan"] = {"frames": args.frames, "size": list(clip[0].shape[-2:]), "step_px": STEP, **pan}

    if args.real_frames:
        real = zoom_clip(args.real_frames, args.size)
        zoom: dict = {}
        for m in methods:
            outs, seconds = run_clip(stylizer, real, style, m)
            err, frac = flow_error(outs, real)
            zoom[m] = {"flow_error": err, "reliable": frac, "style_stat": float(style_stats(evaluator, outs, style_ref).mean())}
            log(f"zoom {m}: error along estimated flow {err:.2f} levels on {frac:.0%} of pixels, "
                f"style_stat {zoom[m]['style_stat']:.4f} ({seconds:.0f} s)")
        for m in methods[1:]:
            zoom[m]["error_ratio"] = zoom[m]["flow_error"] / zoom["none"]["flow_error"]
        report["zoom"] = {"frames": args.real_frames, "clip": "skimage coffee, zoom 0.4 %/frame + rotation 0.3 deg/frame",
                          **zoom}

    speed: dict = {}
    if args.fps_frames:
        timed = pan_clip(args.fps_frames + 1, args.fps_size)
        for name in [n.strip() for n in args.models.split(",") if n.strip()]:
            try:
                st = Stylizer.from_pretrained(name, device=args.device)
            except (WeightsError, ValueError, FileNotFoundError) as e:
                log(f"fps {name}: skipped ({e})")
                speed[name] = None
                continue
            speed[name] = {}
            for m in ("none", "both"):
                gen = st.stylize_video(timed, [style], temporal=m, return_tensor=True)
                next(gen)  # warm-up
                start = time.perf_counter()
                n = sum(1 for _ in gen)
                speed[name][m] = n / (time.perf_counter() - start)
                log(f"fps {name} at {args.fps_size} px, temporal {m}: {speed[name][m]:.3f} frames/s")
        report["fps"] = {"size": list(timed[0].shape[-2:]), **speed}
    report["load_average_end"] = os.getloadavg()

    print(f"\nsynthetic pan, {args.frames} frames of {clip[0].shape[-1]}x{clip[0].shape[-2]} px, {STEP} px/frame:")
    print(f"  {'method':8s} {'temporal error':>15s} {'ratio':>7s} {'style_stat':>11s} {'change':>8s}")
    for m in methods:
        r = pan[m]
        print(f"  {m:8s} {r['temporal_error']:15.2f} {r.get('error_ratio', 1):7.3f} {r['style_stat']:11.4f} "
              f"{r.get('style_stat_change', 0):+8.1%}")
    if "zoom" in report:
        print(f"zoom + rotation clip, {args.real_frames} frames, error along DIS flow on reliable pixels:")
        for m in methods:
            r = report["zoom"][m]
            print(f"  {m:8s} {r['flow_error']:15.2f} {r.get('error_ratio', 1):7.3f} {r['style_stat']:11.4f}")
    for name, r in speed.items():
        print(f"fps at {args.fps_size} px, {name}: " + ("missing, skipped" if r is None else
                                                       ", ".join(f"{m} {v:.3f}" for m, v in r.items())))
    print(f"load average at start {report['load_average']}, at end {report['load_average_end']}")
    if args.json:
        atomic_write(args.json, lambda tmp: Path(tmp).write_text(json.dumps(report, indent=2) + "\n"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
