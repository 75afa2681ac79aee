"""What the demo shows without any user files: scikit-image's bundled photos and the built-in styles blended
by default. Shared by `stylemix demo` and the app's page; scikit-image is imported on first use."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")  # scikit-image photos; the first is the default
DEFAULT_STYLES = (("post-impressionism-01", 0.6), ("expressionism-02", 0.4))  # built-in (name, weight)


def bundled_photo(name: str) -> np.ndarray:
    """One of PHOTOS as an (h, w, 3) uint8 array; ValueError naming the choices for any other name."""
    if name not in PHOTOS:
        raise ValueError(f"unknown bundled photo {name!r}; choose one of {', '.join(PHOTOS)}")
    from skimage import data

    return getattr(data, name)()
