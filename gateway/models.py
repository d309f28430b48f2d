"""Small value types shared by the protocol core and the driver: ``ShardId``, ``Session``, ``Latency``, ``ShardStatus``.

None of them does I/O or reads a clock; ``Latency`` is fed monotonic times (seconds) by :class:`gateway.protocol.ShardProtocol`.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from typing import Any

__all__ = ["ShardId", "Session", "Latency", "ShardStatus", "bucket"]


def _require_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    return value


class ShardId:
    """Which shard this is: ``number`` in ``[0, total)``. Immutable, hashable, ordered by (total, number).

    Raises TypeError when either part is not an int (bools are refused), ValueError when ``total < 1`` or
    ``number`` is outside ``[0, total)``. ``str(ShardId(0, 1)) == "[0, 1]"``, the form Discord's IDENTIFY uses.
    """

    __slots__ = ("_number", "_total")

    def __init__(self, number: int, total: int) -> None:
        _require_int(number, "ShardId number")
        _require_int(total, "ShardId total")
        if total < 1:
            raise ValueError(f"ShardId total must be at least 1, got {total}")
        if not 0 <= number < total:
            raise ValueError(f"ShardId number must be in [0, {total}), got {number}")
        self._number = number
        self._total = total

    @property
    def number(self) -> int:
        return self._number

    @property
    def total(self) -> int:
        return self._total

    def to_list(self) -> list[int]:
        """``[number, total]``, the value of IDENTIFY's ``shard`` field."""
        return [self._number, self._total]

    def __setattr__(self, name: str, value: object) -> None:
        if hasattr(self, "_total"):
            raise AttributeError("ShardId is immutable")
        object.__setattr__(self, name, value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ShardId):
            return NotImplemented
        return (self._number, self._total) == (other._number, other._total)

    def __lt__(self, other: ShardId) -> bool:
        if not isinstance(other, ShardId):
            return NotImplemented
        return (self._total, self._number) < (other._total, other._number)

    def __hash__(self) -> int:
        return hash((ShardId, self._number, self._total))

    def __str__(self) -> str:
        return f"[{self._number}, {self._total}]"

    def __repr__(self) -> str:
        return f"ShardId({self._number}, {self._total})"


def bucket(bucket_id: int, buckets: int, total: int) -> list[ShardId]:
    """The shards of ``bucket_id`` when ``total`` shards are split into ``buckets`` consecutive ranges.

    The first ``total % buckets`` buckets get one shard more, so the ranges differ in size by at most one
    (twilight-gateway's ``bucket()``): ``bucket(0, 2, 25)`` is shards 0..12, ``bucket(1, 2, 25)`` shards 13..24.
    With more buckets than shards the last buckets are empty. Raises TypeError for non-int arguments (bools are
    refused), ValueError when ``buckets < 1``, ``total < 1`` or ``bucket_id`` is outside ``[0, buckets)``.
    """
    _require_int(bucket_id, "bucket_id")
    _require_int(buckets, "buckets")
    _require_int(total, "total")
    if buckets < 1:
        raise ValueError(f"buckets must be at least 1, got {buckets}")
    if total < 1:
        raise ValueError(f"total must be at least 1, got {total}")
    if not 0 <= bucket_id < buckets:
        raise ValueError(f"bucket_id must be in [0, {buckets}), got {bucket_id}")
    size, extra = divmod(total, buckets)
    start = bucket_id * size + min(extra, bucket_id)
    end = start + size + (1 if bucket_id < extra else 0)
    return [ShardId(number, total) for number in range(start, end)]


class Session:
    """A resumable gateway session: ``id`` (READY's ``session_id``) and ``sequence`` (last dispatch ``s`` seen).

    Immutable; the protocol hands out a fresh one whenever the sequence moves. ``to_dict()``/``from_dict()`` and
    ``to_json()``/``from_json()`` round-trip it so a restarted process can resume (pass it to the Shard/ShardProtocol
    together with the ``resume_gateway_url`` it came with). ``from_dict`` raises TypeError/ValueError for bad data.
    """

    __slots__ = ("_id", "_sequence")

    def __init__(self, id: str, sequence: int) -> None:  # noqa: A002 - Discord's name
        if not isinstance(id, str):
            raise TypeError(f"Session id must be a str, not {type(id).__name__}")
        if not id:
            raise ValueError("Session id must not be empty")
        _require_int(sequence, "Session sequence")
        if sequence < 0:
            raise ValueError(f"Session sequence must be >= 0, got {sequence}")
        self._id = id
        self._sequence = sequence

    @property
    def id(self) -> str:
        return self._id

    @property
    def sequence(self) -> int:
        return self._sequence

    def with_sequence(self, sequence: int) -> Session:
        return Session(self._id, sequence)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self._id, "sequence": self._sequence}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Session:
        if not isinstance(data, Mapping):
            raise TypeError(f"Session.from_dict needs a mapping, not {type(data).__name__}")
        missing = {"id", "sequence"} - set(data)
        if missing:
            raise ValueError(f"Session data lacks {', '.join(sorted(missing))}")
        return cls(data["id"], data["sequence"])

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str | bytes) -> Session:
        return cls.from_dict(json.loads(text))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Session):
            return NotImplemented
        return (self._id, self._sequence) == (other._id, other._sequence)

    def __hash__(self) -> int:
        return hash((Session, self._id, self._sequence))

    def __setattr__(self, name: str, value: object) -> None:
        if hasattr(self, "_sequence"):
            raise AttributeError("Session is immutable")
        object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        return f"Session(id={self._id!r}, sequence={self._sequence})"


class Latency:
    """Heartbeat round trips of the current connection (reset on every HELLO).

    ``recent``: up to 5 most recent round trips in seconds, newest first; ``average``: mean of every round trip on this
    connection (None before the first); ``periods``: how many round trips; ``sent``/``received``: monotonic times of the
    last heartbeat sent and of its ACK (``received`` is None while that heartbeat is outstanding).
    The protocol calls ``record_sent``/``record_received``; users only read.
    """

    __slots__ = ("_recent", "_total", "_periods", "_sent", "_received")

    RECENT_SIZE = 5

    def __init__(self) -> None:
        self._recent: tuple[float, ...] = ()
        self._total = 0.0
        self._periods = 0
        self._sent: float | None = None
        self._received: float | None = None

    @property
    def recent(self) -> tuple[float, ...]:
        return self._recent

    @property
    def average(self) -> float | None:
        return self._total / self._periods if self._periods else None

    @property
    def periods(self) -> int:
        return self._periods

    @property
    def sent(self) -> float | None:
        return self._sent

    @property
    def received(self) -> float | None:
        return self._received

    @property
    def outstanding(self) -> bool:
        """True when a heartbeat was sent and its ACK has not arrived."""
        return self._sent is not None and self._received is None

    def record_sent(self, now: float) -> None:
        self._sent = now
        self._received = None

    def record_received(self, now: float) -> float | None:
        """Record the ACK of the outstanding heartbeat and return its round trip; None (ignored) if none is outstanding."""
        if not self.outstanding:
            return None
        assert self._sent is not None
        period = max(0.0, now - self._sent)
        self._received = now
        self._periods += 1
        self._total += period
        self._recent = (period, *self._recent)[: self.RECENT_SIZE]
        return period

    def copy(self) -> Latency:
        clone = Latency()
        clone._recent, clone._total, clone._periods = self._recent, self._total, self._periods
        clone._sent, clone._received = self._sent, self._received
        return clone

    def __repr__(self) -> str:
        average = "None" if self.average is None else f"{self.average:.3f}"
        return f"Latency(average={average}, periods={self._periods}, recent={[round(p, 3) for p in self._recent]})"


class ShardStatus(enum.Enum):
    """Where a shard is in its lifecycle.

    DISCONNECTED: no connection (starting, waiting to reconnect, or closed by the user). IDENTIFYING: connected, a new
    session is being set up (waiting for HELLO, the identify queue, or READY). RESUMING: RESUME sent, waiting for
    RESUMED. ACTIVE: READY or RESUMED received. FATALLY_CLOSED: a fatal close code ended the shard for good.
    """

    DISCONNECTED = "disconnected"
    IDENTIFYING = "identifying"
    RESUMING = "resuming"
    ACTIVE = "active"
    FATALLY_CLOSED = "fatally_closed"

    @property
    def is_identified(self) -> bool:
        """ACTIVE or RESUMING: user commands may be sent (Discord accepts them right after RESUME)."""
        return self in (ShardStatus.ACTIVE, ShardStatus.RESUMING)
