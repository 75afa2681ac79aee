"""Stylised copies of whole datasets (Stylized-ImageNet and the like): resumable, sharded, audited.

    from stylemix.inference.dataset import stylize_dataset
    report = stylize_dataset("imagenet/train", "sin/train", ["paintings/"], seed=0)

DST mirrors SRC's folder tree (class folders stay class folders): SRC/<dir>/<stem>.<any> becomes
DST/<dir>/<stem>.<ext>, or <stem>_s0.<ext> ... <stem>_s{N-1}.<ext> with `per_image=N` copies.

Decisions, and why:
  * The style(s) of an output are drawn from sha256(seed, relative content path, copy), never from a global
    RNG, so they do not depend on file order, sharding, resuming, or which other files exist.
  * A shard is the set of files whose sha256(relative path) % N equals I: no coordinator, no shared file
    list; each file's shard depends on its own path alone, so the N shards partition any SRC exactly.
  * Each image is stylised on its own with `Stylizer.stylize`, the call `stylemix stylize` makes. Its bytes
    therefore cannot depend on which images share a batch (a sharded, resumed or interrupted run writes the
    same bytes as one clean run on the same hardware), and every manifest row can be rebuilt by that one
    call: `stylemix stylize SRC/<content> --style S1:W1 [--style S2:W2] --alpha A --max-size M --model MODEL`.
    Images go through in batches for loading: `workers` threads decode and resize the next files while
    the model runs. The model itself runs one image at a time: batching it over different images would
    tie an image's bytes to its batch-mates (kernels are chosen by batch shape), the model contract
    offers per-image blends in a batch only as spatial weights (another computation than `stylize`'s),
    and on CPU one by one is the faster way anyway (measured in `Stylizer.render`). Several GPUs or
    machines: one process each, see `Shard`.
  * Style codes are encoded once per process, before any content work, and kept (a code is a few KB): a
    broken style file stops the run at the start, naming the file, instead of turning into a column of
    skipped rows. For a very large style folder, put saved codes (.safetensors) in it instead of images.
  * "Exists" means "complete": outputs are written atomically (`save_image`: temporary file + rename), so a
    rerun skips what exists and finishes the rest, and Ctrl-C loses at most the image in flight.
  * One manifest per shard, `manifest.jsonl` (unsharded) or `manifest-00001-of-00004.jsonl`, one JSON line
    per output, written after its image and flushed, so concurrent shards never share a file and the
    shards' files together list every output: `cat DST/manifest*.jsonl > all.jsonl`. A manifest is locked
    while a run writes it (a second run of the same shard is refused), and a torn last line is repaired when
    it is reopened, so every line is one JSON row. JSON lines rather than CSV: rows hold lists (styles,
    weights) and concatenated files need no header handling.
    A rerun writes no row for an output its manifests already list as "ok" (an output deleted and made
    again is the same image, so its row stands); an output that exists without a row (killed between the
    image and its row) gets its row then, exactly as it would have been written. An unreadable content
    file gets one row with status "skipped" and its error, and is retried on reruns (a new row only when
    the outcome changes). Only `overwrite` can give an output a second row; the last one is current.
  * DST/dataset.json records the settings that decide the pixels (styles, seed, copies, blend, alpha,
    model, sizes, extension). A rerun or another shard with different settings is refused with the
    difference, so one DST never mixes two datasets silently (`overwrite=True` starts DST over).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import torch
from tqdm import tqdm

from ..models import functional as Fn
from ..models.device import local_device
from ..models.files import IMAGE_EXTENSIONS, list_images
from ..models.io import save_json
from ..models.pretrained import DEFAULT_MODEL
from .api import Stylizer
from .images import check_outputs, image_format, load_image, save_image
from .manifest import Manifest, read_manifests
from .styles import builtin_styles, style_path

SETTINGS_FILE = "dataset.json"
STYLE_CODE_SUFFIX = ".safetensors"
BANK = "bank"  # --styles bank: every built-in style (the same on every machine, unlike a user's bank)
_DRAW_SALT = "stylemix-dataset-style"
_SHARD_SALT = "stylemix-dataset-shard"
MAX_SHARDS = 99_999  # manifest-IIIII-of-NNNNN.jsonl: five digits


# --- which files, which shard ------------------------------------------------------------------------

@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count`: the files whose sha256(relative path) % count == index."""

    index: int = 0
    count: int = 1

    def __post_init__(self):
        if not (isinstance(self.count, int) and 1 <= self.count <= MAX_SHARDS and isinstance(self.index, int)
                and 0 <= self.index < self.count):
            raise ValueError(f"shard {self.index}/{self.count} does not exist: use I/N with 1 <= N <= {MAX_SHARDS} "
                             f"and 0 <= I < N, e.g. 0/4 ... 3/4")

    @classmethod
    def parse(cls, text: str) -> "Shard":
        """'I/N' -> Shard(I, N); ValueError for anything else."""
        m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
        if m is None:
            raise ValueError(f"bad shard {text!r}: give I/N, e.g. 0/4 for the first of 4 shards")
        return cls(int(m[1]), int(m[2]))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Shard | None":
        """The shard torchrun (any number of nodes) gives this process: RANK/WORLD_SIZE; None outside torchrun."""
        env = os.environ if env is None else env
        if "WORLD_SIZE" not in env:
            return None
        try:
            return cls(int(env.get("RANK", "0")), int(env["WORLD_SIZE"]))
        except ValueError:
            raise ValueError(f"RANK={env.get('RANK')!r} and WORLD_SIZE={env['WORLD_SIZE']!r} from the environment "
                             f"(torchrun) are not a shard I/N") from None

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def manifest_name(self) -> str:
        """manifest.jsonl for the whole dataset, manifest-IIIII-of-NNNNN.jsonl for one shard of several."""
        return "manifest.jsonl" if self.count == 1 else f"manifest-{self.index:05d}-of-{self.count:05d}.jsonl"

    def __contains__(self, rel: str) -> bool:
        return self.count == 1 or _hash_int(_SHARD_SALT, rel) % self.count == self.index


def output_name(rel: str, copy: int, per_image: int, ext: str) -> str:
    """Where content `rel` (relative to SRC) goes, relative to DST: same folder and stem, extension `ext`,
    `_s<copy>` before it when there are several copies per image."""
    p = Path(rel)
    tail = f"_s{copy}" if per_image > 1 else ""
    return (p.parent / f"{p.stem}{tail}.{ext}").as_posix()


# --- styles ------------------------------------------------------------------------------------------

def expand_styles(items: Sequence[str | os.PathLike]) -> list[str]:
    """Style arguments -> the ordered list of styles a dataset draws from (duplicates dropped).

    Each item is, in this order of precedence: an existing folder (its images and saved codes, recursively,
    sorted; labelled '<folder>/<relative path>'), an existing file (a style image or saved code), 'bank'
    (every built-in style, sorted), or a style name (built-in or user).

    Raises:
        FileNotFoundError for a missing path, ValueError for an unknown name, an empty folder or an empty list.
    """
    out: list[str] = []
    for item in map(str, items):
        path = Path(item).expanduser()
        if path.is_dir():
            found = list_images(path, (*IMAGE_EXTENSIONS, STYLE_CODE_SUFFIX))
            if not found:
                raise ValueError(f"no style images ({', '.join(IMAGE_EXTENSIONS)}) or saved style codes "
                                 f"({STYLE_CODE_SUFFIX}) in folder {item}")
            out += [f"{item.rstrip('/')}/{rel}" for rel in found]
        elif path.is_file():
            out.append(item)
        elif item == BANK:
            names = sorted(builtin_styles())
            if not names:
                raise ValueError("'bank': no built-in styles are installed (weights/styles is empty)")
            out += names
        elif "/" in item or os.sep in item or path.suffix.lower() in (*IMAGE_EXTENSIONS, STYLE_CODE_SUFFIX):
            raise FileNotFoundError(f"no such style image or folder: {item}")
        else:
            style_path(item)  # ValueError naming the closest names
            out.append(item)
    if not out:
        raise ValueError("no styles given: name a folder of paintings, style images, built-in names or 'bank'")
    return list(dict.fromkeys(out))


@dataclass(frozen=True)
class Draw:
    """The styles of one output: indices into the style list and their blend weights (summing to 1)."""

    indices: tuple[int, ...]
    weights: tuple[float, ...]


def draw_styles(seed: int, rel: str, copy: int, n_styles: int, blend: bool = False) -> Draw:
    """The style(s) of copy `copy` of content `rel`, from sha256(seed, rel, copy) alone.

    One style: index = h0 % n. A blend: a second, different style (h1 % (n - 1) steps after the first) and
    weights (w, 1 - w) with w = 0.001 ... 0.999 (h2 % 999 + 1) / 1000, so the manifest holds them exactly.
    Each h is a 64-bit slice of the digest, so the modulo bias (about n / 2**64) is negligible.
    """
    if n_styles < (2 if blend else 1):
        raise ValueError(f"{'a blend needs at least 2' if blend else 'at least 1 style is needed'}; got {n_styles}")
    digest = hashlib.sha256(f"{_DRAW_SALT}\0{seed}\0{rel}\0{copy}".encode()).digest()
    h = [int.from_bytes(digest[i:i + 8], "big") for i in (0, 8, 16)]
    first = h[0] % n_styles
    if not blend:
        return Draw((first,), (1.0,))
    second = (first + 1 + h[1] % (n_styles - 1)) % n_styles
    w = (h[2] % 999 + 1) / 1000
    return Draw((first, second), (w, round(1.0 - w, 3)))


# --- the run -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DatasetReport:
    """What one run (one shard) did."""

    total: int  # outputs this shard is responsible for
    written: int  # stylised and written in this run
    existing: int  # already complete, kept
    skipped: int  # unreadable content files (rows with status "skipped")
    seconds: float  # time spent stylising (model loaded, styles encoded)
    manifest: Path

    @property
    def images_per_s(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else 0.0


def stylize_dataset(src: str | os.PathLike, dst: str | os.PathLike, styles: Sequence[str | os.PathLike], *,
                    seed: int = 0, per_image: int = 1, blend: bool = False, alpha: float = 1.0,
                    model: str | os.PathLike | None = None,
                    device: str | None = None, dtype: str = "auto", max_size: int | None = 512,
                    style_size: int = 512, ext: str = "png", shard: Shard | None = None, overwrite: bool = False,
                    workers: int = 2, progress: bool = True) -> DatasetReport:
    """Stylise every image under `src` into the mirrored tree `dst` (see the module docstring).

    Args:
        src: folder of content images (any depth).
        dst: output folder; may not be inside `src` or contain it.
        styles: style arguments (see `expand_styles`): folders, files, 'bank', names.
        seed: picks the drawn styles; the same seed gives the same dataset.
        per_image: stylised copies per content image, each with its own draw.
        blend: each output blends 2 drawn styles with a drawn weight, instead of 1 style.
        alpha: stylisation strength in [0, 1].
        model: weights dir or name (default: models.pretrained.DEFAULT_MODEL).
        device: torch device (default: see `models.device.local_device`). dtype: 'auto', 'fp32' or 'bf16'.
        max_size: long side contents are downscaled to (None or 0: keep their size).
        style_size: long side style images are encoded at.
        ext: output extension (png, jpg, webp, ...).
        shard: the part of the files this process does (default: torchrun's RANK/WORLD_SIZE, else all).
        overwrite: stylise again outputs that exist, and accept new settings for `dst`.
        workers: threads loading images ahead of the model (0: load in the main thread).
        progress: show a progress bar (images/s) on stderr.

    Returns:
        A DatasetReport. Raises ValueError / FileNotFoundError (one clear line) before any work for bad input.
    """
    src, dst = Path(src), Path(dst)
    launched = Shard.from_env()
    if shard is not None and launched is not None and launched.count > 1 and shard != launched:
        raise ValueError(f"this process is rank {launched.index} of {launched.count} in a torchrun launch "
                         f"(RANK/WORLD_SIZE), which gives it shard {launched.label}; drop the explicit shard "
                         f"{shard.label}")
    shard = shard or launched or Shard()
    ext = ext.lstrip(".").lower()
    max_size = max_size or None
    _check_args(src, dst, per_image, alpha, ext, max_size, style_size, workers)
    labels = expand_styles(styles)
    if blend and len(labels) < 2:
        raise ValueError(f"blend needs at least 2 styles, got 1 ({labels[0]})")
    files = list_images(src, skip=[dst])  # a link in SRC to DST: its outputs must not become inputs
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {src}")
    _check_collisions(files, per_image, ext)
    model_label = str(model) if model is not None else DEFAULT_MODEL
    settings = {"styles": labels, "seed": seed, "per_image": per_image, "blend": blend, "alpha": alpha,
                "model": model_label, "max_size": max_size, "style_size": style_size, "ext": ext}
    _check_settings(dst, settings, overwrite)

    mine = [rel for rel in files if rel in shard]
    recorded = read_manifests(dst)
    todo: list[tuple[str, list[int]]] = []  # (content, copies to stylise)
    existing, missing_rows = 0, []
    for rel in mine:
        copies = []
        for c in range(per_image):
            out = output_name(rel, c, per_image, ext)
            if not overwrite and (dst / out).is_file():
                existing += 1
                if recorded.get(out) != "ok":
                    missing_rows.append((rel, c))
            else:
                copies.append(c)
        if copies:
            todo.append((rel, copies))

    manifest = dst / shard.manifest_name
    if not todo and not missing_rows:  # this shard is complete: no model needed
        return DatasetReport(total=len(mine) * per_image, written=0, existing=existing, skipped=0, seconds=0.0,
                             manifest=manifest)
    stylizer = Stylizer.from_pretrained(model, device=local_device(device), dtype=dtype)
    codes = _encode_styles(stylizer, labels, style_size, progress and len(labels) > 16)
    save_json(dst / SETTINGS_FILE, {"settings": settings, "source": str(src.resolve())})
    common = {"seed": seed, "alpha": alpha, "model": model_label, "dtype": stylizer.dtype, "max_size": max_size}

    def row(rel: str, c: int, status: str = "ok", error: str | None = None) -> dict:
        d = draw_styles(seed, rel, c, len(labels), blend)
        r = {"output": output_name(rel, c, per_image, ext), "content": rel, "copy": c,
             "styles": [labels[i] for i in d.indices], "weights": list(d.weights), **common, "status": status}
        return r if error is None else {**r, "error": error}

    written = skipped = 0
    start = time.perf_counter()
    loads = _prefetch([src / rel for rel, _ in todo], max_size, workers)
    bar = tqdm(total=sum(len(c) for _, c in todo), unit="img", file=sys.stderr, dynamic_ncols=True,
               desc=f"shard {shard.label}" if shard.count > 1 else "stylising", disable=None if progress else True)
    with Manifest(manifest) as log:
        try:
            for rel, c in missing_rows:  # complete before this run, but its row was lost (killed in between)
                log.write(row(rel, c))
            for (rel, copies), image in zip(todo, loads):
                if isinstance(image, Exception):  # unreadable content: logged, the run goes on
                    skipped += 1
                    for c in copies:
                        if recorded.get(output_name(rel, c, per_image, ext)) != "skipped":
                            log.write(row(rel, c, "skipped", str(image)))
                    bar.update(len(copies))
                    bar.set_postfix(skipped=skipped, refresh=False)
                    continue
                for c in copies:
                    d = draw_styles(seed, rel, c, len(labels), blend)
                    img = stylizer.stylize(image, [codes[i] for i in d.indices], list(d.weights), alpha=alpha,
                                           max_size=None)  # `image` is already at max_size
                    save_image(img, dst / output_name(rel, c, per_image, ext))
                    if overwrite or recorded.get(output_name(rel, c, per_image, ext)) != "ok":
                        log.write(row(rel, c))  # after the image: a row always means a complete output
                    written += 1
                    bar.update(1)
        finally:
            loads.close()
            bar.close()
    return DatasetReport(total=len(mine) * per_image, written=written, existing=existing, skipped=skipped,
                         seconds=time.perf_counter() - start, manifest=manifest)


# --- helpers -----------------------------------------------------------------------------------------

def _hash_int(salt: str, text: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{salt}\0{text}".encode()).digest()[:8], "big")


def _check_args(src: Path, dst: Path, per_image: int, alpha: float, ext: str, max_size: int | None,
                style_size: int, workers: int) -> None:
    if not src.is_dir():
        raise (FileNotFoundError(f"no such folder: {src}") if not src.exists() else
               ValueError(f"SRC must be a folder of images, {src} is a file"))
    if dst.exists() and not dst.is_dir():
        raise ValueError(f"DST {dst} is a file; give a folder")
    s, d = src.resolve(), dst.resolve()
    if d == s or s in d.parents:
        raise ValueError(f"DST {dst} is inside SRC {src}: its outputs would become inputs; choose a folder outside")
    if d in s.parents:
        raise ValueError(f"SRC {src} is inside DST {dst}: outputs would be written among the inputs; choose "
                         f"a folder that does not contain SRC")
    if not (isinstance(per_image, int) and per_image >= 1):
        raise ValueError(f"per-image must be a whole number >= 1, got {per_image}")
    Fn.check_alpha(alpha)
    if (max_size is not None and max_size < 16) or style_size < 16:
        raise ValueError(f"max-size (0 = keep the size) and style-size must be at least 16 pixels, got "
                         f"{max_size} and {style_size}")
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    try:
        image_format(f"x.{ext}")
    except ValueError:
        raise ValueError(f"ext {ext!r} is not an image format Pillow can write an RGB image in; use png, jpg, "
                         f"webp, ...") from None
    check_outputs([dst / f"probe.{ext}"])  # DST (or the folder it would be made in) is writable


def _check_collisions(files: Sequence[str], per_image: int, ext: str) -> None:
    seen: dict[str, str] = {}
    for rel in files:
        out = output_name(rel, 0, per_image, ext)
        if out in seen:
            raise ValueError(f"{seen[out]} and {rel} would both be written to {out}; rename one (outputs keep the "
                             f"file name and take the extension .{ext})")
        seen[out] = rel


def _check_settings(dst: Path, settings: dict, overwrite: bool) -> None:
    """Refuse to continue a DST made with other settings (see the module docstring)."""
    path = dst / SETTINGS_FILE
    if overwrite or not path.is_file():
        return
    try:
        old = json.loads(path.read_text()).get("settings", {})
    except (ValueError, AttributeError):
        raise ValueError(f"{path} is not readable JSON; remove it (or pass --overwrite) to start {dst} over") from None
    diff = [k for k in settings if old.get(k) != settings[k]]
    if diff:
        what = ", ".join(_difference(k, old.get(k), settings[k]) for k in diff)
        raise ValueError(f"{dst} was made with other settings ({what}); resume with the same settings, choose "
                         f"another DST, or pass --overwrite to start it over")


def _difference(key: str, old, new) -> str:
    """'seed 0 -> 1'; for long style lists, their lengths and the first place they differ."""
    if not (isinstance(old, list) and isinstance(new, list) and max(len(old), len(new)) > 3):
        return f"{key} {json.dumps(old)} -> {json.dumps(new)}"
    i = next((i for i, (a, b) in enumerate(zip(old, new)) if a != b), min(len(old), len(new)))
    at = lambda v: repr(v[i]) if i < len(v) else "nothing"  # noqa: E731
    return f"{key}: {len(old)} -> {len(new)}, #{i + 1} was {at(old)}, now {at(new)}"


def _encode_styles(stylizer: Stylizer, labels: Sequence[str], style_size: int, progress: bool) -> list:
    """One code per style label, in order (images encoded, saved codes and names loaded)."""
    bar = tqdm(labels, desc="encoding styles", unit="style", file=sys.stderr, disable=None if progress else True)
    return [stylizer.style_codes(label, style_size)[0] for label in bar]


def _load(path: Path, max_size: int | None) -> torch.Tensor | Exception:
    """The content at its output size, or the error that makes it unusable (the run goes on)."""
    try:
        return load_image(path, max_size)
    except (ValueError, OSError) as e:
        return e


def _prefetch(paths: Sequence[Path], max_size: int | None, workers: int) -> Iterator[torch.Tensor | Exception]:
    """`_load` of each path, in order, with `workers` threads decoding up to 4 * workers files ahead."""
    if workers == 0:
        yield from (_load(p, max_size) for p in paths)
        return
    pool = ThreadPoolExecutor(workers, thread_name_prefix="stylemix-load")
    ahead: deque[Future] = deque()
    it = iter(paths)

    def submit() -> None:
        p = next(it, None)
        if p is not None:
            ahead.append(pool.submit(_load, p, max_size))

    try:
        for _ in range(4 * workers):
            submit()
        while ahead:
            result = ahead.popleft().result()
            submit()
            yield result
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # Ctrl-C: pending loads are dropped, not waited for
