"""Build the built-in style bank (weights/styles/) from the WikiArt paintings in ../shared/data.

For each movement folder of train/style/: score every painting on its pixels (colourfulness, texture,
not too dark or washed out, not tiny), encode the best `--candidates` with the VGG16 encoder at short
side `--short-side`, then pick `--per-movement` of them by farthest-point sampling in style-code space
(so the picks differ from each other, not five near-identical brown portraits). Each pick becomes
weights/styles/<movement>-NN.safetensors (NN = pick order, 01 = highest scored) and an entry of
weights/styles/index.json. Images are read, never copied.

    nice -n 15 env OMP_NUM_THREADS=1 python benchmarks/build_style_bank.py --data ../shared/data
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stylemix.inference.styles import INDEX_FILE, SUFFIX, encoder_model, index_entry, save_style  # noqa: E402
from stylemix.models.io import save_json  # noqa: E402
from stylemix.models.mixing import StyleCode  # noqa: E402

MIN_SIDE = 150  # thumbnails smaller than this are skipped


def pixel_score(path: Path) -> float | None:
    """Higher = more colourful and textured; None for tiny, greyscale (drawings, prints, text),
    paper-white, near-black or flat images."""
    img = Image.open(path)
    if min(img.size) < MIN_SIDE:
        return None
    rgb = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    hsv = np.asarray(img.convert("HSV"), dtype=np.float32) / 255.0
    lum = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    chroma = hsv[..., 1] * hsv[..., 2]  # saturated AND bright
    paper = ((lum > 0.85) & (hsv[..., 1] < 0.15)).mean()
    if chroma.mean() < 0.2 or paper > 0.1 or (lum < 0.1).mean() > 0.15 or lum.std() < 0.1:
        return None
    texture = float(np.abs(np.diff(lum, axis=0)).mean() + np.abs(np.diff(lum, axis=1)).mean())
    angle = 2 * np.pi * hsv[..., 0]
    one_hue = float(np.hypot((np.cos(angle) * chroma).mean(), (np.sin(angle) * chroma).mean()))  # big if monochrome
    return float(chroma.mean()) + 2.0 * texture + 0.5 * float(lum.std()) - 0.5 * one_hue


def image_tensor(path: Path, short_side: int) -> torch.Tensor:
    img = Image.open(path).convert("RGB")
    s = short_side / min(img.size)
    img = img.resize((max(16, round(img.width * s)), max(16, round(img.height * s))), Image.BICUBIC)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)
    return x.permute(2, 0, 1)[None].contiguous()


def code_vector(code: StyleCode) -> torch.Tensor:
    """Concatenated means and log-stds, for distances between codes."""
    return torch.cat([torch.cat([code.mean[t], code.std[t].log()]) for t in code.taps])


def farthest_points(vectors: torch.Tensor, k: int) -> list[int]:
    """Greedy farthest-point picks (standardised dims), starting from row 0 (the best scored)."""
    z = (vectors - vectors.mean(0)) / vectors.std(0).clamp_min(1e-6)
    picks = [0]
    dist = (z - z[0]).norm(dim=1)
    while len(picks) < min(k, len(z)):
        i = int(dist.argmax())
        picks.append(i)
        dist = torch.minimum(dist, (z - z[i]).norm(dim=1))
    return picks


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="data root: the paintings are under train/style/<movement>/")
    p.add_argument("--out", default=str(ROOT / "weights" / "styles"), help="bank folder (default weights/styles)")
    p.add_argument("--encoder", default="vgg16-hed", help="encoder id (default vgg16-hed)")
    p.add_argument("--per-movement", type=int, default=5, help="styles per movement (default 5)")
    p.add_argument("--candidates", type=int, default=25, help="top-scored paintings encoded per movement (default 25)")
    p.add_argument("--short-side", type=int, default=256, help="short side the codes are computed at (default 256)")
    p.add_argument("--with-eval", action="store_true",
                   help="also add eval/style artworks as 'classic-<name>' (off by default: several are not public domain)")
    args = p.parse_args(argv)

    torch.set_grad_enabled(False)
    data, out = Path(args.data), Path(args.out)
    movements = sorted(d for d in (data / "train" / "style").iterdir() if d.is_dir())
    if not movements:
        raise SystemExit(f"no movement folders under {data / 'train' / 'style'}")
    model, _ = encoder_model(args.encoder)
    out.mkdir(parents=True, exist_ok=True)
    index, t0 = [], time.time()
    for mdir in movements:
        movement = mdir.name
        scored = [(s, f) for f in sorted(mdir.iterdir()) if (s := pixel_score(f)) is not None]
        scored.sort(key=lambda sf: -sf[0])
        cands = [f for _, f in scored[: args.candidates]]
        codes = [model.style_code(image_tensor(f, args.short_side))[0] for f in cands]
        picks = farthest_points(torch.stack([code_vector(c) for c in codes]), args.per_movement)
        slug = movement.replace("_", "-")
        for n, i in enumerate(picks, 1):
            name, source = f"{slug}-{n:02d}", str(cands[i].relative_to(data))
            path = save_style(codes[i], out / f"{name}{SUFFIX}",
                              {"name": name, "source": source, "movement": movement, "encoder": args.encoder,
                               "short_side": str(args.short_side)})
            index.append(index_entry(name, path, movement, source))
        print(f"{movement}: {len(scored)} usable of {len(list(mdir.iterdir()))}, picked "
              f"{[cands[i].name for i in picks]} ({time.time() - t0:.0f}s)")
    if args.with_eval:
        for f in sorted((data / "eval" / "style").glob("*.jpg")):
            name = "classic-" + f.stem.lower().replace("_", "-")
            code = model.style_code(image_tensor(f, args.short_side))[0]
            path = save_style(code, out / f"{name}{SUFFIX}", {"name": name, "source": str(f.relative_to(data)),
                                                                "movement": "classic", "encoder": args.encoder})
            index.append(index_entry(name, path, "classic", str(f.relative_to(data))))
    for stale in set(out.glob(f"*{SUFFIX}")) - {out / e["file"] for e in index}:  # a rebuild replaces the bank
        stale.unlink()
    save_json(out / INDEX_FILE, {
        "about": "Built-in style codes (per-tap channel mean/std) computed from WikiArt paintings in "
                 "../shared/data by benchmarks/build_style_bank.py; the images are not in the repository.",
        "encoder": args.encoder, "short_side": args.short_side, "styles": index})
    print(f"wrote {len(index)} styles to {out} in {time.time() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
