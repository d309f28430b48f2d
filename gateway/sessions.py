"""Session stores: where a group keeps its shards' sessions so that a restarted process resumes them.

A store maps ``shard_id -> SavedSession`` (session id, last sequence, resume URL) under one shard count: sessions
saved under another count are useless (Discord would refuse the RESUME of a shard whose count changed), so ``load``
returns nothing for them. The token is never stored.

``SessionStore`` is the protocol every backend implements (``FileSessionStore`` here, ``RedisSessionStore`` in
``gateway.redis``); its methods are coroutines so that a backend may do I/O.

``FileSessionStore`` keeps one JSON file (``{"version": 1, "shard_count": n, "sessions": {"0": {...}, ...}}``),
replaced atomically on every write (temp file in the same directory, fsync, ``os.replace``, fsync of the
directory) with mode 0600. One process per file: two processes saving to the same path would overwrite each
other's shards (give each process its own file, or use a shared backend such as Redis).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from .models import Session

__all__ = ["SavedSession", "SessionStore", "FileSessionStore"]

logger = logging.getLogger("gateway.sessions")

_FORMAT_VERSION = 1


@dataclass(frozen=True)
class SavedSession:
    """One shard's resumable state: its ``session`` and the ``resume_url`` READY gave it (None: the gateway URL)."""

    session: Session
    resume_url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.session.id, "sequence": self.session.sequence, "resume_url": self.resume_url}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SavedSession:
        """Inverse of :meth:`to_dict`; TypeError/ValueError for malformed data."""
        session = Session.from_dict(data)
        resume_url = data.get("resume_url")
        if resume_url is not None and not isinstance(resume_url, str):
            raise TypeError(f"resume_url must be a str or None, not {type(resume_url).__name__}")
        return cls(session, resume_url)


@runtime_checkable
class SessionStore(Protocol):
    """Where a group saves its shards' sessions (see the module docstring)."""

    async def load(self, shard_count: int) -> dict[int, SavedSession]:
        """The sessions saved under ``shard_count``: ``{}`` when there are none or they were saved under another
        count. Malformed entries are skipped (and logged), never raised."""
        ...

    async def save(self, shard_count: int, sessions: Mapping[int, SavedSession]) -> None:
        """Store these shards' sessions under ``shard_count``. Entries of other shards saved under the same count
        are kept; everything saved under another count is dropped."""
        ...

    async def clear(self, shard_ids: Iterable[int] | None = None) -> None:
        """Forget the sessions of ``shard_ids`` (all when None)."""
        ...


def _check_shard_count(shard_count: object) -> int:
    if isinstance(shard_count, bool) or not isinstance(shard_count, int):
        raise TypeError(f"shard_count must be an int, not {type(shard_count).__name__}")
    if shard_count < 1:
        raise ValueError(f"shard_count must be >= 1, got {shard_count}")
    return shard_count


def _check_shard_id(shard_id: object, shard_count: int | None) -> int:
    if isinstance(shard_id, bool) or not isinstance(shard_id, int):
        raise TypeError(f"shard ids must be ints, not {type(shard_id).__name__}")
    if shard_id < 0 or (shard_count is not None and shard_id >= shard_count):
        bound = f"[0, {shard_count})" if shard_count is not None else ">= 0"
        raise ValueError(f"shard id {shard_id} is not in {bound}")
    return shard_id


class FileSessionStore:
    """A :class:`SessionStore` in one JSON file at ``path`` (see the module docstring).

    ``load`` never raises on what it reads: a missing, unreadable or corrupt file, or one saved under another shard
    count, gives ``{}``; malformed entries are skipped with a warning. ``save``/``clear`` raise TypeError/ValueError
    for bad arguments and OSError when the file cannot be written (the previous file is then left as it was).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, not {type(path).__name__}")
        self._path = Path(path)
        self._lock = asyncio.Lock()

    @property
    def path(self) -> Path:
        return self._path

    def __repr__(self) -> str:
        return f"FileSessionStore({str(self._path)!r})"

    async def load(self, shard_count: int) -> dict[int, SavedSession]:
        shard_count = _check_shard_count(shard_count)
        async with self._lock:
            document = await asyncio.to_thread(self._read)
        if document is None:
            return {}
        saved_count, entries = document
        if saved_count != shard_count:
            logger.info("%r: sessions were saved under %d shards, not %d: none loaded", self, saved_count, shard_count)
            return {}
        sessions: dict[int, SavedSession] = {}
        for key, value in entries.items():
            try:
                shard_id = int(key) if isinstance(key, str) and key.isdigit() else None
                if shard_id is None or shard_id >= shard_count:
                    raise ValueError(f"shard id {key!r} is not in [0, {shard_count})")
                sessions[shard_id] = SavedSession.from_dict(value)
            except (TypeError, ValueError) as exc:
                logger.warning("%r: skipped a malformed entry for shard %r: %s", self, key, exc)
        return sessions

    async def save(self, shard_count: int, sessions: Mapping[int, SavedSession]) -> None:
        shard_count = _check_shard_count(shard_count)
        if not isinstance(sessions, Mapping):
            raise TypeError(f"sessions must be a mapping of shard id to SavedSession, not {type(sessions).__name__}")
        new_entries: dict[str, Any] = {}
        for shard_id, saved in sessions.items():
            _check_shard_id(shard_id, shard_count)
            if not isinstance(saved, SavedSession):
                raise TypeError(f"sessions[{shard_id}] must be a SavedSession, not {type(saved).__name__}")
            new_entries[str(shard_id)] = saved.to_dict()
        async with self._lock:
            await asyncio.to_thread(self._merge_and_write, shard_count, new_entries)

    async def clear(self, shard_ids: Iterable[int] | None = None) -> None:
        if shard_ids is None:
            async with self._lock:
                await asyncio.to_thread(self._remove)
            return
        if isinstance(shard_ids, (str, bytes)) or not isinstance(shard_ids, Iterable):
            raise TypeError(f"shard_ids must be an iterable of ints or None, not {type(shard_ids).__name__}")
        doomed = {str(_check_shard_id(shard_id, None)) for shard_id in shard_ids}
        async with self._lock:
            await asyncio.to_thread(self._drop_entries, doomed)

    # -------------------------------------------------------------------------------- blocking file work (threads)

    def _read(self) -> tuple[int, dict[Any, Any]] | None:
        """``(shard_count, raw entries)`` or None for a missing, unreadable or corrupt file (logged)."""
        try:
            text = self._path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            logger.warning("%r: cannot read the file (%s): no sessions loaded", self, exc.strerror or type(exc).__name__)
            return None
        try:
            document = json.loads(text)
        except ValueError:
            logger.warning("%r: the file is not valid JSON: no sessions loaded", self)
            return None
        if not isinstance(document, dict):
            logger.warning("%r: the file does not hold a JSON object: no sessions loaded", self)
            return None
        if document.get("version") != _FORMAT_VERSION:
            logger.warning("%r: unknown format version %r: no sessions loaded", self, document.get("version"))
            return None
        shard_count, entries = document.get("shard_count"), document.get("sessions")
        if isinstance(shard_count, bool) or not isinstance(shard_count, int) or shard_count < 1 or not isinstance(entries, dict):
            logger.warning("%r: the file lacks a valid shard_count or sessions object: no sessions loaded", self)
            return None
        return shard_count, entries

    def _merge_and_write(self, shard_count: int, new_entries: dict[str, Any]) -> None:
        current = self._read()
        entries = dict(current[1]) if current is not None and current[0] == shard_count else {}
        entries.update(new_entries)
        self._write({"version": _FORMAT_VERSION, "shard_count": shard_count, "sessions": entries})

    def _drop_entries(self, doomed: set[str]) -> None:
        current = self._read()
        if current is None:
            return
        shard_count, entries = current
        kept = {key: value for key, value in entries.items() if key not in doomed}
        if len(kept) != len(entries):
            self._write({"version": _FORMAT_VERSION, "shard_count": shard_count, "sessions": kept})

    def _remove(self) -> None:
        try:
            self._path.unlink()
        except FileNotFoundError:
            pass

    def _write(self, document: dict[str, Any]) -> None:
        """Replace the file atomically: a crash at any point leaves either the old or the new file."""
        data = json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
        directory = self._path.parent
        fd, temp_name = tempfile.mkstemp(prefix=f".{self._path.name}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as handle:
                os.fchmod(handle.fileno(), 0o600)
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp_name, self._path)
        except BaseException:
            try:
                os.unlink(temp_name)
            except FileNotFoundError:
                pass
            raise
        _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable (POSIX); a no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
