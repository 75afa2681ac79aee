"""The manifests of a dataset run (`stylize_dataset`): one JSON-lines file per shard, one row per output, each
row on disk (line + flush) before the next image; locked while a run writes it, a torn last line repaired when
it is reopened, and `read_manifests` to see what every shard has recorded."""
from __future__ import annotations

import json
import os
from pathlib import Path

try:
    import fcntl  # advisory locks: one writer per manifest (POSIX)
except ImportError:  # Windows: runs of one shard must simply not overlap
    fcntl = None


def read_manifests(dst: str | os.PathLike) -> dict[str, str]:
    """{output: status of its last row} over every manifest*.jsonl in `dst` (all shards'); a torn last line
    (a writer killed mid-line, or still writing) is ignored."""
    recorded: dict[str, str] = {}
    for path in sorted(Path(dst).glob("manifest*.jsonl")):
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    r = json.loads(line)
                    recorded[r["output"]] = r["status"]
                except (ValueError, KeyError, TypeError):
                    continue
    return recorded


class Manifest:
    """A shard's manifest, opened for appending; `write` puts one row on disk (line + flush).

    A run killed while writing a row leaves a last line without its newline. Opening repairs it, so every line
    of the file stays one JSON row: a complete row gets its newline, a torn one is cut off (its output exists,
    so this run writes its row again, see `dataset.stylize_dataset`). The file is locked while open: a second run of
    the same shard into the same DST is refused, since it would log each row twice (and its repair could cut
    a row the first run is writing)."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self) -> "Manifest":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "ab")
        try:
            self._lock()
            tail = _last_line(self.path)
            if tail is not None:
                if _is_row(tail[1]):
                    self._f.write(b"\n")
                else:
                    self._f.truncate(tail[0])
        except BaseException:
            self._f.close()
            raise
        return self

    def _lock(self) -> None:
        """Released when the file is closed or the process dies (even by SIGKILL): a stale lock cannot stay."""
        if fcntl is None:
            return
        try:
            fcntl.flock(self._f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(f"another run is writing {self.path} (the same shard of the same DST); wait for it to "
                             f"finish, or give this process another --shard") from None
        except OSError:  # a file system without locks (some network mounts): as without fcntl
            pass

    def write(self, row: dict) -> None:
        self._f.write((json.dumps(row) + "\n").encode())
        self._f.flush()

    def __exit__(self, *exc) -> None:
        self._f.close()


def _last_line(path: Path, block: int = 1 << 16) -> tuple[int, bytes] | None:
    """(offset, bytes) of the file's last line when it lacks its newline (a torn write); None when the file is
    empty or ends with a newline. Reads backwards from the end: a large manifest is not read whole."""
    with open(path, "rb") as f:
        end = f.seek(0, os.SEEK_END)
        f.seek(max(0, end - 1))
        if end == 0 or f.read(1) == b"\n":
            return None
        tail, pos = b"", end
        while pos > 0 and b"\n" not in tail:
            step = min(block, pos)
            pos -= step
            f.seek(pos)
            tail = f.read(step) + tail
    cut = tail.rfind(b"\n") + 1  # 0 when the whole file is one line
    return pos + cut, tail[cut:]


def _is_row(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False
