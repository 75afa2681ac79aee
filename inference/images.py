"""Image I/O: load anything image-like as a (1, 3, h, w) float tensor in [0, 1], pad/crop to a model's
stride, and save atomically.

Loading decodes the whole file (so truncated files fail here, not halfway through a run), applies the
EXIF orientation, composites transparency on white, scales 16-bit images correctly and refuses
decompression bombs. Every error names the file and says what would be accepted.

Letters: b - batch, c - channels, h/w - height/width.
"""
from __future__ import annotations

import functools
import io
import math
import os
import warnings
from pathlib import Path
from typing import Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from PIL import Image, PngImagePlugin, UnidentifiedImageError

from ..models.files import IMAGE_EXTENSIONS
from ..models.io import atomic_write, check_writable

MIN_SIDE = 16  # smallest image side the encoders accept (relu4_1 needs a few pixels after 3 pools)
MAX_PIXELS = 8192 * 8192  # decompression-bomb guard (64 MP); pass max_pixels=... to change it
# Longest side a format can store: libjpeg's JPEG_MAX_DIMENSION, WebP's 14-bit and GIF's 16-bit sizes. Past it
# Pillow fails only while encoding, unclearly ("broken data stream") or with a traceback (GIF's OverflowError).
MAX_SIDE = {"JPEG": 65500, "WEBP": 16383, "GIF": 65535}

ImageLike = Union[str, os.PathLike, Image.Image, np.ndarray, torch.Tensor]


def load_image(src: ImageLike, max_size: int | None = None, *, max_pixels: int | None = MAX_PIXELS,
               min_side: int = MIN_SIDE) -> torch.Tensor:
    """Load an image as RGB float32 in [0, 1].

    Args:
        src: a path, a PIL image, a numpy array (h, w) / (h, w, 3) / (h, w, 4) of uint8, uint16, bool or
            floats in [0, 1], or a tensor (3, h, w) / (1, 3, h, w) / (h, w, 3) (uint8, or floats in [0, 1]).
        max_size: if given, downscale (antialiased) so the long side is at most this.
        max_pixels: refuse files with more pixels than this (None: only PIL's own hard limit).
        min_side: refuse images whose short side is below this.

    Returns:
        (1, 3, h, w) float32 CPU tensor.
    """
    name = str(src) if isinstance(src, (str, os.PathLike)) else f"<{type(src).__name__}>"
    if max_size is not None and max_size < 1:
        raise ValueError(f"max_size must be a positive number of pixels, got {max_size}")
    if isinstance(src, (str, os.PathLike)):
        img, full = _open(Path(src), max_pixels, max_size)  # already reduced towards max_size: memory ~ output
        x = _pil_to_tensor(img, name)
        del img
    else:
        if isinstance(src, Image.Image):
            x = _pil_to_tensor(src, name)
        elif isinstance(src, np.ndarray):
            x = _array_to_tensor(src, name)
        elif isinstance(src, torch.Tensor):
            x = _tensor_to_tensor(src, name)
        else:
            raise ValueError(f"cannot read an image from a {type(src).__name__}; pass a path, PIL image, array or tensor")
        full = tuple(x.shape[-2:])
    size = full if max_size is None else fit_size(full, max_size)
    if min(size) < min_side:
        scaled = "" if size == full else f"; fitted to max_size {max_size} it would be {size[1]}x{size[0]} px"
        raise ValueError(f"{name} is {full[1]}x{full[0]} px{scaled}; images need a short side of at least "
                         f"{min_side} px")
    if tuple(x.shape[-2:]) != size:  # sizes come from the file's own size, however it was decoded
        x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
    return x


def load_mask(src: ImageLike) -> torch.Tensor:
    """Load a (soft) mask as (1, 1, h, w) float32 in [0, 1]: a grey image or file, or an array/tensor
    (h, w) (leading singleton dims allowed); colour images are averaged over channels."""
    if isinstance(src, (np.ndarray, torch.Tensor)):
        arr = src.detach().cpu().float().numpy() if isinstance(src, torch.Tensor) and src.is_floating_point() \
            else np.asarray(src.detach().cpu() if isinstance(src, torch.Tensor) else src)
        while arr.ndim > 2 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.ndim == 2:
            return torch.from_numpy(_scale(arr, f"<mask {type(src).__name__}>"))[None, None].contiguous()
    return load_image(src, min_side=1).mean(1, keepdim=True)


def downscale(x: torch.Tensor, max_size: int) -> torch.Tensor:
    """Antialiased downscale of (b, c, h, w) so the long side is <= max_size (never upscales)."""
    size = fit_size(tuple(x.shape[-2:]), max_size)
    if size == tuple(x.shape[-2:]):
        return x
    return F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)


def fit_size(size: tuple[int, int], max_size: int) -> tuple[int, int]:
    """(h, w) scaled so the long side is <= max_size, keeping the aspect ratio (never upscales)."""
    if max_size < 1:
        raise ValueError(f"max_size must be a positive number of pixels, got {max_size}")
    h, w = size
    if max(h, w) <= max_size:
        return h, w
    s = max_size / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


def to_pil(t: torch.Tensor) -> Image.Image:
    """(3, h, w) or (1, 3, h, w) RGB in [0, 1] -> 8-bit PIL image (rounded, clamped)."""
    if t.dim() == 4:
        if t.shape[0] != 1:
            raise ValueError(f"to_pil converts one image; got a batch of {t.shape[0]}")
        t = t[0]
    if t.dim() != 3 or t.shape[0] != 3:
        raise ValueError(f"to_pil expects (3, h, w) or (1, 3, h, w), got {tuple(t.shape)}")
    arr = (t.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()
    return Image.fromarray(rearrange(arr, "c h w -> h w c").numpy(), "RGB")


def image_format(path: str | Path) -> str:
    """PIL format name for a path's extension, e.g. 'PNG' for out.png; ValueError if the extension is unknown
    or names a format Pillow cannot write an RGB image in (.xbm is 1-bit only; .bufr has no writer)."""
    ext = Path(path).suffix.lower()
    fmt = Image.registered_extensions().get(ext)
    if not ext or fmt is None:
        raise ValueError(f"cannot tell the image format of {path}: use an extension like {', '.join(IMAGE_EXTENSIONS[:4])}")
    if fmt not in Image.SAVE or not _writes_rgb(fmt):
        raise ValueError(f"cannot write {path}: Pillow cannot save an RGB image as {fmt} ({ext}); use an extension "
                         f"like {', '.join(IMAGE_EXTENSIONS[:4])}")
    return fmt


@functools.lru_cache(maxsize=None)
def _writes_rgb(fmt: str) -> bool:
    """Whether Pillow can save a small RGB image in `fmt` (tried in memory, as `save_image` would)."""
    try:
        Image.new("RGB", (16, 16)).save(io.BytesIO(), format=fmt)
        return True
    except Exception:  # noqa: BLE001  each plugin fails its own way (OSError, KeyError, ValueError, ...)
        return False


def check_outputs(outputs: Sequence[str | Path], inputs: Sequence[str | Path] = ()) -> list[Path]:
    """Check image outputs before any work: a format Pillow writes, a folder that can be created and written,
    no output twice, no output that is one of `inputs` (through symlinks and hard links too).

    Args:
        outputs: image files about to be written.
        inputs: files that must not be overwritten (contents, styles, masks).

    Returns:
        The outputs as Paths.

    Raises:
        ValueError naming the path and what is wrong.
    """
    paths = [Path(p) for p in outputs]
    taken = {k: Path(q) for q in inputs for k in _identities(Path(q))}  # inputs by real path and by inode
    seen: dict = {}
    probed: set[Path] = set()
    for p in paths:
        if p.is_dir():
            raise ValueError(f"output {p} is a folder; give an image file such as {p / 'out.png'}")
        image_format(p)
        keys = _identities(p) or [p.resolve()]
        if any(k in taken for k in keys):
            raise ValueError(f"output {p} is one of the inputs; refusing to overwrite it")
        first = next((seen[k] for k in keys if k in seen), None)
        if first is not None:
            same = f"output {p} is given twice" if str(first) == str(p) else f"outputs {first} and {p} are the same file"
            raise ValueError(f"{same} (e.g. -o and --save-labels); give each output its own name")
        seen.update((k, p) for k in keys)
        folder = next(f for f in (p.parent, *p.parent.parents) if f.exists())  # '.' or '/' at the latest
        if folder not in probed:  # one probe per folder
            check_writable(p)
            probed.add(folder)
    return paths


def check_side_limit(path: str | Path, size: tuple[int, int]) -> None:
    """Refuse an image of `size` (h, w) for `path` when its format cannot store it (JPEG, WebP and GIF cap the side);
    Pillow would fail only while encoding, with a message that does not say why. Raises ValueError."""
    fmt = image_format(path)
    h, w = size
    if max(h, w) > MAX_SIDE.get(fmt, math.inf):
        raise ValueError(f"cannot write {path}: the image is {w}x{h} px and {fmt} stores at most {MAX_SIDE[fmt]} px "
                         f"on a side; use .png")


def planned_size(path: str | Path, max_size: int | None = None) -> tuple[int, int] | None:
    """(h, w) that `load_image(path, max_size)` will give, upright, read from the file's header without decoding
    it (to refuse an output before the work); None when the header cannot be read (loading it says why)."""
    if not Path(path).is_file():  # a FIFO would block here
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                w, h = img.size
                if img.getexif().get(0x0112, 1) in _SIDEWAYS:
                    h, w = w, h
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError):
        return None
    return fit_size((h, w), max_size) if max_size else (h, w)


def check_image_file(path: str | Path, what: str = "image") -> Path:
    """`path` as a Path if it names a file, for checking inputs before any work (decoding checks the content):
    FileNotFoundError 'no such {what}: path', ValueError for a folder or another non-file (a FIFO)."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{what} {path} is a folder, not an image file")
    if not path.exists():
        raise FileNotFoundError(f"no such {what}: {path}")
    if not path.is_file():
        raise ValueError(f"{what} {path} is not a regular file (a FIFO, socket or device); images are read from files")
    return path


def _identities(p: Path) -> list:
    """What makes two paths one file: the real path (symlinks followed) and, for an existing file, its
    (device, inode) (hard links). [] for a path that does not exist."""
    try:
        st = p.stat()
    except OSError:
        return []
    return [p.resolve(), (st.st_dev, st.st_ino)]


def save_image(img: Image.Image | torch.Tensor, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write an image atomically (temp file + rename); the format comes from the extension.

    Args:
        img: PIL image or (1, 3, h, w) / (3, h, w) tensor in [0, 1].
        path: destination; missing parent folders are created.
        metadata: text to record in the file (PNG text chunks, read back with `Image.open(path).text`), e.g.
            the styles and weights of a blend; PNG only.

    Returns:
        The path written.
    """
    path = Path(path)
    fmt = image_format(path)
    if metadata and fmt != "PNG":
        raise ValueError(f"cannot record metadata in {path}: text metadata is written to .png files only")
    if isinstance(img, torch.Tensor):
        img = to_pil(img)
    check_side_limit(path, img.size[::-1])
    if fmt == "JPEG" and img.mode not in ("RGB", "L", "CMYK"):
        img = img.convert("RGB")
    opts = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    if metadata:
        info = PngImagePlugin.PngInfo()
        for key, value in metadata.items():
            info.add_itxt(str(key), str(value))  # iTXt: UTF-8 (style names and paths need not be Latin-1)
        opts["pnginfo"] = info
    try:
        atomic_write(path, lambda tmp: img.save(tmp, format=fmt, **opts))
    except (PermissionError, NotADirectoryError, FileExistsError, FileNotFoundError) as e:
        raise ValueError(f"cannot write {path}: folder {path.parent} is not writable ({e.strerror or e})") from None
    return path


# --- decoding ---------------------------------------------------------------------------------------

# EXIF orientation -> the transpose that makes the image upright (as ImageOps.exif_transpose does)
_UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
            5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_90}
_SIDEWAYS = (5, 6, 7, 8)  # EXIF orientations stored on their side: width and height swap once upright
# Modes Image.reduce averages correctly; others are converted first (as _pil_to_tensor would convert them).
_REDUCIBLE = ("L", "I", "F", "RGB", "RGBA", "LA")


def _open(path: Path, max_pixels: int | None, max_size: int | None = None) -> tuple[Image.Image, tuple[int, int]]:
    """Open and fully decode a file, upright (EXIF orientation applied).

    With `max_size`, memory follows the output size rather than the file's: JPEGs are decoded at 1/2, 1/4 or
    1/8 scale (`Image.draft`, DCT-domain: no aliasing) still at least `max_size` on the long side, and any
    image is then box-reduced by an integer factor that keeps it at least twice `max_size` (the caller's
    antialiased resize does the rest). Returns (image, the file's upright size (h, w))."""
    if not path.exists():
        raise FileNotFoundError(f"no such image file: {path}")
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not an image file")
    if not path.is_file():  # opening a FIFO would wait for a writer forever
        raise ValueError(f"{path} is not a regular file (a FIFO, socket or device); images are read from files")
    too_large = (f"{path} is too large to load safely (decompression-bomb guard, limit {max_pixels or 'PIL default'} "
                 f"pixels); resize it first or use --max-size with a smaller image")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(path)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ValueError(too_large) from None
        except UnidentifiedImageError:
            raise ValueError(f"{path} is not an image file (or not a format Pillow can read)") from None
        except OSError as e:
            raise ValueError(f"cannot read {path}: {e}") from None
        w, h = img.size
        if max_pixels is not None and w * h > max_pixels:
            raise ValueError(f"{path} is {w}x{h} px, too large to load safely (limit {max_pixels} pixels); "
                             f"resize it first")
        try:
            orientation = img.getexif().get(0x0112, 1)  # EXIF Orientation
            if max_size is not None and max(w, h) > max_size:
                s = max_size / max(w, h)
                img.draft(None, (math.ceil(w * s), math.ceil(h * s)))  # JPEG only; a no-op for other formats
            img.load()  # full decode: truncated or corrupt data fails here
            factor = 1 if max_size is None else max(img.size) // (2 * max_size)
            if factor > 1:
                img = (img if img.mode in _REDUCIBLE else img.convert(_working_mode(img))).reduce(factor)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ValueError(too_large) from None
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as e:
            raise ValueError(f"{path} is corrupt or truncated ({e})") from None
    if orientation in _UPRIGHT:
        img = img.transpose(_UPRIGHT[orientation])
    return img, ((w, h) if orientation in _SIDEWAYS else (h, w))


def _working_mode(img: Image.Image) -> str:
    """The mode `_pil_to_tensor` reads `img` in: 'I' (16-bit), 'L', 'RGBA' (transparency) or 'RGB'."""
    if img.mode.startswith("I;16"):
        return "I"
    if img.mode == "1":
        return "L"
    if img.mode in ("LA", "La", "RGBa", "PA") or (img.mode == "P" and "transparency" in img.info):
        return "RGBA"
    return "RGB"


def _pil_to_tensor(img: Image.Image, name: str) -> torch.Tensor:
    mode = img.mode
    if mode.startswith("I;16"):
        arr = np.asarray(img).astype(np.float32) / 65535.0
    elif mode == "I":  # 32-bit integer mode: Pillow's mode for 16-bit data from some decoders
        arr = np.clip(np.asarray(img).astype(np.float32) / 65535.0, 0, 1)
    elif mode == "F":
        arr = np.asarray(img)
    elif mode in ("1", "L"):
        arr = np.asarray(img if mode == "L" else img.convert("L"))
    elif mode in ("RGBA", "LA", "La", "RGBa", "PA") or (mode == "P" and "transparency" in img.info):
        arr = np.asarray(img if mode == "RGBA" else img.convert("RGBA"))
    else:  # RGB, P, CMYK, YCbCr, LAB, HSV, ...
        arr = np.asarray(img if mode == "RGB" else img.convert("RGB"))
    return _array_to_tensor(arr, name)


def _array_to_tensor(arr: np.ndarray, name: str) -> torch.Tensor:
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 3, 4):
        raise ValueError(f"{name}: expected an array (h, w), (h, w, 3) or (h, w, 4), got shape {arr.shape}")
    x = torch.from_numpy(_scale(arr, name))  # (h, w, c) in [0, 1]
    if x.shape[-1] == 1:
        x = x.expand(-1, -1, 3)
    elif x.shape[-1] == 4:  # composite on white
        rgb, a = x[..., :3], x[..., 3:]
        x = rgb * a + (1.0 - a)
    return rearrange(x, "h w c -> 1 c h w").contiguous()


def _tensor_to_tensor(t: torch.Tensor, name: str) -> torch.Tensor:
    t = t.detach().cpu()
    t = t.float() if t.is_floating_point() else t
    if t.dim() == 4 and t.shape[0] == 1:
        t = t[0]
    if t.dim() == 3 and t.shape[0] in (1, 3, 4):
        t = rearrange(t, "c h w -> h w c")
    elif not (t.dim() == 2 or (t.dim() == 3 and t.shape[-1] in (1, 3, 4))):
        raise ValueError(f"{name}: expected a tensor (3, h, w), (1, 3, h, w) or (h, w, 3), got shape {tuple(t.shape)}")
    return _array_to_tensor(t.numpy(), name)


def _scale(arr: np.ndarray, name: str) -> np.ndarray:
    """uint8 / uint16 / bool / float-in-[0, 1] pixels -> float32 in [0, 1]."""
    if arr.dtype.kind == "b":
        return arr.astype(np.float32)
    if arr.dtype.kind == "u" and arr.dtype.itemsize in (1, 2):  # uint8 / uint16 (any byte order)
        x = arr.astype(np.float32)
        x /= 255.0 if arr.dtype.itemsize == 1 else 65535.0  # in place: one float copy of the image, not two
        return x
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{name}: integer pixels must be uint8 or uint16, got {arr.dtype}")
    x = arr.astype(np.float32)
    if not np.isfinite(x).all():
        raise ValueError(f"{name}: pixel values must be finite (found NaN or inf)")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise ValueError(f"{name}: float pixels must be in [0, 1], got range [{lo:.3g}, {hi:.3g}] "
                         f"(divide 8-bit values by 255)")
    return np.clip(x, 0, 1)
