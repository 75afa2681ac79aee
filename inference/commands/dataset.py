"""`stylemix dataset SRC -o DST --styles STYLES`: a stylised copy of a whole dataset (Stylized-ImageNet style).

    stylemix dataset imagenet/train -o sin/train --styles paintings/ --seed 0
    stylemix dataset imagenet/train -o sin/train --styles bank --shard 2/8     # machine 3 of 8
    torchrun --nnodes 2 --nproc-per-node 8 ... --no-python stylemix dataset imagenet/train -o sin/train \\
        --styles paintings/                                                    # shards from RANK/WORLD_SIZE

DST mirrors SRC's folders; each output is stylised with a style drawn from (seed, relative path). A rerun
skips complete outputs; DST/manifest*.jsonl list every output's content, styles, weights, alpha and model
(concatenate the shards' files: cat DST/manifest*.jsonl). The logic is inference/dataset.py (a Python API).
"""
from __future__ import annotations

import sys

from ...models.pretrained import DEFAULT_MODEL
from ..cli import UsageError


def add_parser(sub) -> None:
    p = sub.add_parser("dataset", help="stylise a whole dataset folder tree: resumable, sharded, with a manifest",
                       description=__doc__.split("\n\n", 1)[1],
                       formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    p.add_argument("src", metavar="SRC", help="folder of content images (class sub-folders allowed, any depth)")
    p.add_argument("-o", "--output", required=True, metavar="DST",
                   help="output folder: SRC's tree, same file names with the --ext extension (not inside SRC)")
    p.add_argument("--styles", required=True, nargs="+", action="extend", metavar="STYLE",
                   help="where styles are drawn from: folders of paintings (or saved .safetensors codes), style "
                        "images, style names, or 'bank' for every built-in style; an existing path wins over a name")
    p.add_argument("--per-image", type=int, default=1, metavar="N",
                   help="stylised copies per content image, NAME_s0 ... NAME_s{N-1}, each with its own drawn "
                        "style (default: 1, same name as the content)")
    p.add_argument("--blend", action="store_true",
                   help="blend 2 drawn styles per output with a drawn weight, instead of 1 style (default: off)")
    p.add_argument("--alpha", type=float, default=1.0, help="stylisation strength in [0, 1] (default: 1.0)")
    p.add_argument("--seed", type=int, default=0,
                   help="picks every output's style(s), independent of order and sharding (default: 0)")
    p.add_argument("--shard", default=None, metavar="I/N",
                   help="do only shard I of N (0 <= I < N), e.g. one machine of N; the N shards together are the "
                        "whole run (default: RANK/WORLD_SIZE under torchrun, else everything)")
    p.add_argument("--max-size", type=int, default=512,
                   help="downscale contents to this long side in pixels, 0 = keep their size (default: 512)")
    p.add_argument("--style-size", type=int, default=512, help="long side of style images in pixels (default: 512)")
    p.add_argument("--ext", default="png", help="output format by extension: png, jpg, webp, ... (default: png)")
    p.add_argument("--model", default=None, metavar="DIR_OR_NAME",
                   help=f"weights dir or name under weights/ (default: {DEFAULT_MODEL})")
    p.add_argument("--device", default=None,
                   help="torch device (default: one GPU per process when present, cuda:LOCAL_RANK under torchrun; "
                        "else cpu)")
    p.add_argument("--dtype", choices=("auto", "fp32", "bf16"), default="auto",
                   help="compute precision; auto = bf16 where the CPU/GPU has it natively, else fp32 (default: auto)")
    p.add_argument("--workers", type=int, default=2,
                   help="threads decoding images ahead of the model, 0 = none (default: 2)")
    p.add_argument("--overwrite", action="store_true",
                   help="stylise again outputs that already exist, and accept new settings for DST (default: "
                        "keep them, so an interrupted run resumes)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr (default: shown on a terminal)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..dataset import Shard, stylize_dataset

    try:
        shard = None if args.shard is None else Shard.parse(args.shard)
    except ValueError as e:
        raise UsageError(f"--shard: {e}") from None
    report = stylize_dataset(args.src, args.output, args.styles, seed=args.seed, per_image=args.per_image,
                             blend=args.blend, alpha=args.alpha, model=args.model, device=args.device,
                             dtype=args.dtype, max_size=args.max_size, style_size=args.style_size, ext=args.ext,
                             shard=shard, overwrite=args.overwrite, workers=args.workers,
                             progress=not args.no_progress)
    rate = f" in {report.seconds:.1f} s ({report.images_per_s:.2f} img/s)" if report.written else ""
    print(f"wrote {report.written} of {report.total} images to {args.output}{rate}; {report.existing} already "
          f"complete; manifest {report.manifest}")
    if report.skipped:
        print(f"stylemix dataset: warning: {report.skipped} unreadable content files skipped "
              f"(status \"skipped\" in {report.manifest})", file=sys.stderr)
    return 0
