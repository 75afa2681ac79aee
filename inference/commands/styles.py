"""`stylemix styles`: list named styles; `styles add NAME IMAGE...`; `styles remove NAME`.

    stylemix styles                         # built-in and user styles, with their source
    stylemix styles add my-ink a.jpg b.jpg  # one style averaged over several images, saved to the user bank
    stylemix styles remove my-ink
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ..cli import UsageError


def add_parser(sub) -> None:
    p = sub.add_parser("styles", help="list, add or remove named styles (the style bank)",
                       description="Named styles usable anywhere a style is (--style impressionism-01:0.5).")
    p.add_argument("--json", action="store_true", help="list as one JSON object per style")
    p.set_defaults(func=run_list)
    act = p.add_subparsers(dest="action", metavar="ACTION")
    a = act.add_parser("add", help="save a style computed from one or more images (averaged) to the user bank")
    a.add_argument("name", metavar="NAME", help="new style name: lowercase letters, digits, '-' and '_'")
    a.add_argument("images", nargs="+", metavar="IMAGE", help="style image(s); several are averaged into one style")
    a.add_argument("--encoder", default="vgg16-hed",
                   help="encoder preset or dir the statistics are computed with (default: vgg16-hed)")
    a.add_argument("--style-size", type=int, default=512, help="long side images are encoded at (default: 512)")
    a.add_argument("--force", action="store_true", help="replace an existing user style of that name")
    a.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    a.set_defaults(func=run_add)
    r = act.add_parser("remove", help="delete a style from the user bank")
    r.add_argument("name", metavar="NAME")
    r.set_defaults(func=run_remove)


def run_list(args) -> int:
    from .. import styles as S

    index = {e["name"]: e for e in S.builtin_index()}
    infos = {}
    for n in S.list_styles():  # a user file that does not load is skipped with a warning, not fatal halfway
        try:
            infos[n] = {**index[n], "bank": "built-in"} if n in index and not args.json else S.style_info(n)
            if infos[n]["bank"] == "user":
                S.load_style(infos[n]["path"])
        except (ValueError, OSError) as e:  # WeightsError is a ValueError
            infos.pop(n, None)
            print(f"stylemix styles: warning: skipped style {n!r}: {e}", file=sys.stderr)
    if args.json:
        for n, info in infos.items():
            print(json.dumps({"name": n, "bank": info["bank"], "movement": info.get("movement", ""),
                              "source": info.get("source", ""), "encoder": info.get("encoder", "")}))
        return 0
    if not infos:
        print("no named styles installed; add one with 'stylemix styles add NAME IMAGE...'")
        return 0
    users = sum(info["bank"] == "user" for info in infos.values())
    print(f"{len(infos) - users} built-in styles (weights/styles), {users} user styles ({S.user_dir()}):")
    for n, info in infos.items():
        print(f"  {n:<24} {info['bank']:<8}  {info.get('movement', '') or '-':<18} {info.get('source', '')}")
    return 0


def run_add(args) -> int:
    import torch

    from .. import styles as S
    from ..images import load_image

    S.check_name(args.name)
    if args.name in S.builtin_styles():
        raise UsageError(f"{args.name!r} is a built-in style; choose another name")
    if args.name in S.user_styles() and not args.force:
        raise UsageError(f"user style {args.name!r} exists; pass --force to replace it or remove it first")
    if args.style_size < 16:
        raise UsageError("--style-size must be at least 16 pixels")
    images = [load_image(p, args.style_size) for p in args.images]  # all checked before the encoder loads
    model, encoder_id = S.encoder_model(args.encoder, args.device)
    with torch.inference_mode():
        codes = [model.style_code(x.to(args.device))[0] for x in images]
    codes = [S.StyleCode({t: v.float().cpu().clone() for t, v in c.mean.items()},
                         {t: v.float().cpu().clone() for t, v in c.std.items()}) for c in codes]
    sources = ", ".join(Path(p).name for p in args.images)
    path = S.add_style(args.name, codes, {"source": sources, "encoder": encoder_id, "movement": "user"},
                       overwrite=args.force)
    print(f"added style {args.name!r} ({len(codes)} image{'s' if len(codes) > 1 else ''}) -> {path}")
    return 0


def run_remove(args) -> int:
    from .. import styles as S

    path = S.remove_style(args.name)
    print(f"removed style {args.name!r} ({path})")
    return 0
