"""Image files on disk: which suffixes count as images, and the one recursive lister that training's data,
`stylemix dataset` and style folders all use. No torch here: it is plain file-system work."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")


def list_images(src: str | os.PathLike, suffixes: Sequence[str] = IMAGE_EXTENSIONS,
                skip: Sequence[str | os.PathLike] = ()) -> list[str]:
    """Every file with one of `suffixes` (default: images) under `src`, recursively and following symlinked
    folders, as sorted POSIX paths relative to `src` (the same strings on every OS: they key the style
    draw and the shard). Each folder is listed once: a link to a folder already listed (a loop such as
    `ln -s .. loop`, or a second name for the same folder) is not followed; the walk goes in sorted order, so
    which name a folder keeps does not depend on the file system. Folders in `skip` (and links to them) are not
    walked. Files that are not regular files (FIFOs, sockets) are listed too: loading them fails, so they are
    reported, never read.

    Args:
        src: the folder to walk.
        suffixes: lower-case suffixes with the dot.
        skip: folders not to walk.

    Returns:
        Sorted POSIX paths relative to `src`.
    """
    root = Path(src)
    found = []
    seen = {_folder_id(root), *(_folder_id(Path(f)) for f in skip if Path(f).is_dir())}
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs.sort()
        dirs[:] = [d for d in dirs if _first_visit(Path(folder, d), seen)]
        rel_dir = Path(folder).relative_to(root)
        found += [(rel_dir / f).as_posix() for f in files if Path(f).suffix.lower() in suffixes]
    return sorted(found)


def _folder_id(folder: Path) -> tuple[int, int] | Path:
    """What makes two paths one folder: (device, inode) through links; the path when it cannot be read."""
    try:
        st = folder.stat()
    except OSError:
        return folder
    return st.st_dev, st.st_ino


def _first_visit(folder: Path, seen: set) -> bool:
    key = _folder_id(folder)
    if key in seen:
        return False
    seen.add(key)
    return True
