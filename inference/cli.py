"""`stylemix` command line: a thin layer over the Python API.

Each subcommand lives in its own module under `inference/commands/` exposing
`add_parser(subparsers)` (which sets `func`) ; this file only dispatches and turns expected errors
into one clear line and a non-zero exit.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# Subcommand modules, in the order `stylemix --help` lists them.
COMMANDS = ["demo", "stylize", "grid", "sheet", "styles", "weights", "optimize", "train", "dataset", "video", "app"]


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stylemix", description="Arbitrary multi-style neural style transfer.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f".commands.{name}", __package__).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    if argv[:1] == ["train"]:  # the training CLI parses its own flags (see commands/train.py)
        from .commands.train import forward

        return forward(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from ..models.convert import ConversionError
    from ..models.device import resolve_device
    from ..models.io import WeightsError

    try:
        if isinstance(getattr(args, "device", None), str):
            resolve_device(args.device)  # every command's --device, checked before any work
        return int(args.func(args) or 0)
    except (UsageError, ValueError, FileNotFoundError, WeightsError, ConversionError, PermissionError, OSError) as e:
        print(f"stylemix {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"stylemix {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    # Run through the importable module so `except UsageError` sees the same class the commands raise.
    from .cli import main as _main

    sys.exit(_main())
