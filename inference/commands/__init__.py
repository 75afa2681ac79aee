"""One module per `stylemix` subcommand; each exposes add_parser(subparsers)."""

from __future__ import annotations

import argparse

from ...models.pretrained import DEFAULT_MODEL


def add_model_options(p: argparse.ArgumentParser) -> None:
    """The flags every command that loads a style model shares: --model, --encoder, --device, --dtype."""
    p.add_argument("--model", default=None, metavar="DIR_OR_NAME",
                   help=f"weights dir or name under weights/ (default: {DEFAULT_MODEL})")
    p.add_argument("--encoder", default=None, help="encoder preset or dir overriding the model's (default: the model's)")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    p.add_argument("--dtype", choices=("auto", "fp32", "bf16"), default="auto",
                   help="compute precision; auto = bf16 where the CPU/GPU has it natively, else fp32 (default: auto)")


def add_style_and_output_options(p: argparse.ArgumentParser, *, style_metavar: str, style_help: str,
                                 output_help: str) -> None:
    """-s/--style (repeatable, required) and -o/--output (required), as every command that stylises takes them;
    what a style and the output may be is the command's own help."""
    p.add_argument("-s", "--style", action="append", required=True, metavar=style_metavar, help=style_help)
    p.add_argument("-o", "--output", required=True, metavar="OUT", help=output_help)
