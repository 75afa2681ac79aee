"""`stylemix train ...`: forwards to the training CLI (see `python -m training --help`)."""
from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a decoder (see 'stylemix train -h')", add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=lambda args: __import__("training.cli", fromlist=["main"]).main(args.rest))
