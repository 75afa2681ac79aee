"""The server's own folder for uploads and renders: made new when the server starts (in the system's temporary
folder, or as `stylemix-app-*` inside `AppConfig.upload_dir`, creating that folder if needed) and removed on exit
with the folders it had to create. Nothing the server did not create is ever touched."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path


class ServerFolder:
    """A new folder `root` inside `parent` (None: the system's temporary folder).

    Raises:
        ValueError, naming the folder, when it cannot be made (nothing made is left behind).
    """

    def __init__(self, parent: Path | None = None):
        self._made: list[Path] = []  # `parent` and the parents of it created here, outermost first
        try:
            if parent is not None:
                _make_folders(parent, self._made)
            self.root = Path(tempfile.mkdtemp(prefix="stylemix-app-", dir=parent)).resolve()
        except OSError as e:
            self._remove_made()
            where = f"upload folder {parent}" if parent is not None else f"temporary folder {tempfile.gettempdir()}"
            raise ValueError(f"cannot keep uploads in the {where} ({e.strerror or e}); give --upload-dir a folder "
                             f"this user can write in") from None

    def close(self) -> None:
        """Remove `root` and the parent folders made for it when they are empty."""
        shutil.rmtree(self.root, ignore_errors=True)
        self._remove_made()

    def _remove_made(self) -> None:
        for folder in reversed(self._made):  # deepest first; one that holds something else stays
            try:
                folder.rmdir()
            except OSError:
                break


def _make_folders(folder: Path, made: list[Path]) -> None:
    """mkdir -p `folder`, appending each folder it creates to `made` (outermost first), so a caller can remove
    exactly those, even when a deeper one fails (OSError)."""
    for f in [f for f in (folder, *folder.parents) if not f.exists()][::-1]:
        f.mkdir(exist_ok=True)
        made.append(f.resolve())
