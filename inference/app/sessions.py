"""The app's sessions: one per browser tab, each with its own folder of uploads and renders and its caches
(style codes, the content encoding), least recently used dropped beyond a limit with its folder."""
from __future__ import annotations

import secrets
import shutil
import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

EXPIRED = "this page's session has expired (the server restarted or too many tabs were opened); reload the page"


class AppError(Exception):
    """A message for the page (shown to the person) with an HTTP status; the server keeps serving."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class Session:
    """One tab's images and caches. `folder` holds its uploads and renders under server-chosen names."""

    id: str
    folder: Path
    uploads: OrderedDict = field(default_factory=OrderedDict)  # id -> file
    results: OrderedDict = field(default_factory=OrderedDict)  # id -> rendered PNG
    codes: OrderedDict = field(default_factory=OrderedDict)  # (model role, ref) -> style code
    content: OrderedDict = field(default_factory=OrderedDict)  # (model role, ref, size) -> EncodedContent
    latest_seq: int = -1  # the newest preview the page asked for
    dropped: bool = False  # evicted: its folder is gone and nothing may be written for it any more
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def ask(self, seq: int) -> None:
        """Record that the page asked for preview number `seq`."""
        with self.lock:
            self.latest_seq = max(self.latest_seq, seq)

    @contextmanager
    def writing(self) -> Iterator[Path]:
        """Hold the session while writing into its folder (yielded, created on first use): AppError 404 once it
        was dropped, so a request that raced the eviction never recreates the removed folder."""
        with self.lock:
            if self.dropped:
                raise AppError(404, EXPIRED)
            self.folder.mkdir(parents=True, exist_ok=True)
            yield self.folder

    def drop(self) -> None:
        """Forget the session and remove its folder (waits for a write in progress)."""
        with self.lock:
            self.dropped = True
            shutil.rmtree(self.folder, ignore_errors=True)


class Sessions:
    """Sessions by id, least recently used first; dropping one removes its folder."""

    def __init__(self, root: Path, limit: int):
        self.root, self.limit = root, limit
        self._items: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def new(self) -> Session:
        sid = secrets.token_urlsafe(18)
        s = Session(sid, self.root / sid)
        with self._lock:
            self._items[sid] = s
            while len(self._items) > self.limit:
                _, old = self._items.popitem(last=False)
                old.drop()
        return s

    def get(self, sid: str) -> Session:
        with self._lock:
            s = self._items.get(sid)
            if s is None:
                raise AppError(404, EXPIRED)
            self._items.move_to_end(sid)
            return s

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._items)


def lru_put(cache: OrderedDict, key, value, limit: int) -> list:
    """Add to an LRU cache of at most `limit` entries; returns the values dropped."""
    cache[key] = value
    cache.move_to_end(key)
    return [cache.popitem(last=False)[1] for _ in range(len(cache) - limit)]
