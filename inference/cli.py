"""`stylemix` command line: a thin layer over the Python API.

Each subcommand lives in its own module under `inference/commands/` exposing
`add_parser(subparsers)` (which sets `func`) ; this file only dispatches and turns expected errors
into one clear line and a non-zero exit.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import re
import signal
import sys
import threading
from typing import Iterator

# Subcommand modules, in the order `stylemix --help` lists them.
COMMANDS = ["demo", "stylize", "grid", "sheet", "styles", "weights", "optimize", "train", "dataset", "video", "app"]


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill`, a scheduler ending the job), raised where the program is, as Ctrl-C raises
    KeyboardInterrupt: the same clean-up runs (temporary files removed, manifests closed, the app's folder
    removed). Exit code 143 (128 + 15)."""


def _terminate(signum, frame):
    raise Terminated()


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM raises `Terminated` (a KeyboardInterrupt) in the main thread instead of killing the
    process on the spot; the previous handler is restored on the way out."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


# What to try when a command runs out of memory (an input too large for this machine, not a bug).
MEMORY_HINTS = {"stylize": "--tile 512 keeps memory bounded at any size; or a smaller --max-size or a larger --style-scale",
                "grid": "a smaller --cell-size or fewer --steps", "sheet": "a smaller --cell-size",
                "optimize": "a smaller --max-size or --style-scale", "video": "a smaller --max-size",
                "demo": "a smaller --max-size"}
MEMORY_HINT = "the input is too large for this machine's memory"


def out_of_memory(e: BaseException) -> str | None:
    """What a failed allocation (CPU or GPU) asked for, in words, or None when `e` is something else."""
    text = str(e)
    if not (isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError" or "can't allocate memory" in text):
        return None
    if m := re.search(r"allocate (\d+) bytes", text):  # the CPU allocator
        return f"could not allocate {int(m.group(1)) / 2**30:.1f} GiB"
    if m := re.search(r"[Tt]ried to allocate ([\d.]+ [KMGT]?i?B)", text):  # CUDA
        return f"could not allocate {m.group(1)}"
    return "an allocation failed"


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
        with _sigterm_as_interrupt():
            if isinstance(getattr(args, "device", None), str):
                resolve_device(args.device)  # every command's --device, checked before any work
            return int(args.func(args) or 0)
    except (UsageError, ValueError, FileNotFoundError, WeightsError, ConversionError, PermissionError, OSError) as e:
        print(f"stylemix {args.command}: error: {e}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as e:
        reason = out_of_memory(e)
        if reason is None:
            raise  # a bug: keep the traceback
        hint = MEMORY_HINTS.get(args.command, MEMORY_HINT)
        print(f"stylemix {args.command}: error: out of memory ({reason}); {hint}", file=sys.stderr)
        return 2
    except Terminated:
        print(f"stylemix {args.command}: terminated (SIGTERM)", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print(f"stylemix {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    # Run through the importable module so `except UsageError` sees the same class the commands raise.
    from .cli import main as _main

    sys.exit(_main())
