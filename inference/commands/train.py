"""`stylemix train ...`: forwards to the training CLI (see `python -m stylemix.training --help`)."""
from __future__ import annotations


def add_parser(sub) -> None:
    # Only lists the command in `stylemix --help`: `cli.main` hands `stylemix train ARGS` to `forward` before
    # parsing, because a subparser cannot pass '-h' or leading options ('--config X') through to another parser.
    sub.add_parser("train", help="train a decoder (see 'stylemix train -h')", add_help=False)


def forward(argv: list[str]) -> int:
    """Run the training CLI (training/cli.py, the same as `python -m stylemix.training`) on `argv`."""
    from ...training.cli import main  # imported here: `stylemix --help` stays free of the training stack

    return main(argv)
