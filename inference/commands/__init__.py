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
