"""stylemix: arbitrary multi-style neural style transfer.

The repository keeps `models/`, `training/` and `inference/` at its top; pyproject.toml installs them
as `stylemix.models`, `stylemix.training` and `stylemix.inference` (and `weights/` as the package data
`stylemix.weights`), so this folder holds only the root package. Importing it does no work:
`Stylizer` (and torch with it) loads on first use.
"""


def __getattr__(name: str):
    if name == "Stylizer":
        from .inference.api import Stylizer

        return Stylizer
    raise AttributeError(f"module 'stylemix' has no attribute {name!r}")


__all__ = ["Stylizer"]
