"""One module per `stylemix` subcommand; each exposes add_parser(subparsers)."""
