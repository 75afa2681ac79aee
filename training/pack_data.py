"""Pack the training images small enough to copy to a remote GPU machine with a size limit (e.g. 64 MiB of
untracked files): every image re-encoded as JPEG with its short side at most `--short` px, into
OUT/content and OUT/style (sub-folders kept), until the total reaches `--limit-mib`.

    python -m stylemix.training.pack_data ../shared/data/train .data/train --short 256 --limit-mib 60

The images are the training set's own (research-use terms, see ../shared/data/SOURCES.md): pack them into
an ignored folder (.data/ is in .gitignore), never into the repository.
"""
from __future__ import annotations

import argparse
import io
import random
import sys
from itertools import zip_longest
from pathlib import Path

from PIL import Image

from .data import image_files


def pack(src: Path, out: Path, short: int, limit: int, quality: int = 85, seed: int = 0) -> tuple[int, int]:
    """Re-encode SRC/{content,style} into OUT, alternating content and style files in a seeded order so a
    size limit keeps both in proportion. Returns (files written, bytes)."""
    lists = {part: image_files(src / part) for part in ("content", "style")}
    for files in lists.values():
        random.Random(seed).shuffle(files)
    tagged = [[(part, f) for f in files] for part, files in lists.items()]
    order = [item for pair in zip_longest(*tagged) for item in pair if item is not None]
    written = total = 0
    for part, f in order:
        try:
            with Image.open(f) as im:
                im = im.convert("RGB")
                s = short / min(im.size)
                if s < 1:
                    im = im.resize((max(1, round(im.width * s)), max(1, round(im.height * s))), Image.BICUBIC)
                buf = io.BytesIO()
                im.save(buf, format="JPEG", quality=quality)
        except OSError:
            continue  # unreadable files are skipped at training time too
        if total + buf.tell() > limit:
            break
        dst = out / part / f.relative_to(src / part).with_suffix(".jpg")
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(buf.getvalue())
        written, total = written + 1, total + buf.tell()
    return written, total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", type=Path, help="folder with content/ and style/")
    ap.add_argument("out", type=Path, help="output folder (an ignored path such as .data/train)")
    ap.add_argument("--short", type=int, default=256, help="short side at most this many pixels (default 256)")
    ap.add_argument("--limit-mib", type=float, default=60.0, help="stop before the total exceeds this (default 60)")
    args = ap.parse_args(argv)
    if not (args.src / "content").is_dir() or not (args.src / "style").is_dir():
        print(f"pack_data: error: {args.src} needs content/ and style/ folders", file=sys.stderr)
        return 2
    n, size = pack(args.src, args.out, args.short, int(args.limit_mib * 2**20))
    print(f"packed {n} images, {size / 2**20:.1f} MiB into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
