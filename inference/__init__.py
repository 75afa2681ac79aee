"""stylemix inference: the Python API (`Stylizer`), image I/O, style bank, grids and the CLI."""


def __getattr__(name):  # lazy, so `import stylemix.inference.cli` stays light and nothing runs at import time
    if name == "Stylizer":
        from .api import Stylizer

        return Stylizer
    raise AttributeError(name)


__all__ = ["Stylizer"]
