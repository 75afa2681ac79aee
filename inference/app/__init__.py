"""`stylemix app`: a local web page to blend styles by eye (server.py + the page in static/).

Needs the optional extra: pip install 'stylemix[app]'. Importing this package does no work and needs no
web framework; `create_app` and `serve` load FastAPI on first use.
"""
import importlib

INSTALL = "pip install 'stylemix[app]'"
FAST_MODEL = "adain-fast-v2"  # the preview model when installed (`stylemix app --preview-model`)
_LAZY = {"create_app": ".server", "serve": ".serving", "AppConfig": ".config"}  # name -> the module that has it


def __getattr__(name: str):  # lazy: `stylemix --help` and the CLI module stay free of FastAPI
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["AppConfig", "create_app", "serve", "FAST_MODEL", "INSTALL"]
