"""Session stores: where a group keeps its shards' sessions so that a restarted process resumes them.

A store maps ``shard_id -> SavedSession`` (session id, last sequence, resume URL) under one shard count: sessions
saved under another count are useless (Discord would refuse the RESUME of a shard whose count changed), so ``load``
returns nothing for them. The token is never stored.

``SessionStore`` is the protocol every backend implements (``FileSessionStore`` here, ``RedisSessionStore`` in
``gateway.redis``); its methods are coroutines so that a backend may do I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from .models import Session

__all__ = ["SavedSession", "SessionStore"]


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
