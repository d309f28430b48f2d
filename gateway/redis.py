"""Scale out on Redis: shards in many processes, events to workers over a stream, commands back, nothing lost.

Needs the optional dependency (``pip install 'gateway[redis]'``: redis-py with the hiredis parser); ``import
gateway`` works without it. The contract (pinned, so that a worker in any language can use it):

- Events: every wanted event is appended to the stream ``{prefix}:events`` with ``XADD ... MAXLEN ~ L`` and exactly
  the fields ``shard`` (decimal), ``t`` (event name or the GATEWAY_* name), ``s`` (decimal sequence, empty when
  none) and ``payload`` (the decompressed gateway payload bytes, never parsed and re-encoded).
- Commands: a worker appends ``payload`` (a JSON command) to ``{prefix}:commands:{shard}``; the process owning that
  shard sends it through the shard's rate limiter, in order. A payload over 4096 bytes or not a JSON command goes to
  ``{prefix}:errors`` (fields ``shard``, ``error``, ``payload``) and is never sent.
- ``{prefix}:shard_count`` holds the fleet's shard count (``CommandSender.shard_for_guild`` reads it).

Other keys (internal): ``{prefix}:sessions`` (hash ``shard -> {"id", "sequence", "resume_url"}``) and
``{prefix}:sessions:shard_count`` (the count they were saved under), ``{prefix}:identify:bucket:{n}`` (an identify
slot, ``PX`` its lifetime), ``{prefix}:identify:remaining`` / ``:total`` (the shared daily session_start_limit).

Delivery guarantee (:class:`RedisForwarder`): the XADDs of a batch and the shard's resume point (session id, last
sequence, resume URL) are written by one Lua script, so Redis holds the events and the point to resume after them
atomically. A shard whose batch Redis does not take (connection lost, OOM, READONLY, ...) is closed with 4000
(the session stays resumable); once Redis takes writes again, it RESUMEs from the point stored in Redis (or the last
one Redis acknowledged, when Redis lost everything) and Discord replays what followed. Nothing is buffered beyond one
in-flight batch per shard, nothing acknowledged is dropped. See ``README.md`` ("Running many processes") for exactly
what can be duplicated and when.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

try:
    import redis.asyncio as aioredis
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import (
        BusyLoadingError,
        OutOfMemoryError,
        ReadOnlyError,
        RedisError,
        ResponseError,
    )
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from redis.retry import Retry
except ImportError as exc:  # pragma: no cover - exercised by tests/test_imports-style subprocess check
    raise ImportError(
        "gateway.redis needs redis-py with hiredis: pip install 'gateway[redis]'"
    ) from exc

from . import _json
from .errors import FatalCloseError, PayloadError, ShardClosedError
from .event import Event
from .flags import FLAG_BY_NAME, EventTypeFlags
from .models import Session, ShardId
from .protocol import GATEWAY_URL
from .ratelimit import IDENTIFY_DELAY, IdentifyScheduler
from .redis_contract import SIDE_STREAM_MAX_LEN, Keys, check_command, parse_shards, redact_url, split_shards
from .sessions import SavedSession
from .shard import Shard

__all__ = [
    "DEFAULT_MAX_LEN",
    "CommandSender",
    "EventConsumer",
    "RedisForwarder",
    "RedisIdentifyQueue",
    "RedisSessionStore",
    "check_command",
    "parse_shards",
    "redact_url",
    "split_shards",
]

logger = logging.getLogger("gateway.redis")

#: Default ``MAXLEN ~`` of the events stream.
DEFAULT_MAX_LEN = 1_000_000
_DAY_MS = 86_400_000
_READY_FLAG = FLAG_BY_NAME["READY"]
_UNKNOWN_FLAG = FLAG_BY_NAME["UNKNOWN"]


def connect(url: str, *, socket_timeout: float | None = 10.0) -> aioredis.Redis:
    """A redis-py asyncio client for ``url`` (RESP2, bytes answers, hiredis when installed).

    Retries are off: a write that may have reached Redis must never be sent twice behind our back (the forwarder
    decides what to resend, from what Redis stored).
    """
    return aioredis.Redis.from_url(
        url,
        protocol=2,
        decode_responses=False,
        retry=Retry(NoBackoff(), 0),
        socket_timeout=socket_timeout,
        socket_connect_timeout=5.0,
    )


def _is_connection_error(exc: BaseException) -> bool:
    return isinstance(exc, (RedisConnectionError, RedisTimeoutError, OSError))


def _error_kind(exc: BaseException) -> str:
    """A short name for counting: ``OOM``, ``READONLY``, ``LOADING``, another Redis error code, or the class name."""
    if isinstance(exc, OutOfMemoryError):
        return "OOM"
    if isinstance(exc, ReadOnlyError):
        return "READONLY"
    if isinstance(exc, BusyLoadingError):
        return "LOADING"
    if isinstance(exc, ResponseError):
        first = str(exc).split(" ", 1)[0]
        return first if first.isupper() else type(exc).__name__
    return type(exc).__name__


def _check_shard_number(shard_id: int, what: str = "shard_id") -> None:
    if isinstance(shard_id, bool) or not isinstance(shard_id, int):
        raise TypeError(f"{what} must be an int, not {type(shard_id).__name__}")
    if shard_id < 0:
        raise ValueError(f"{what} must be >= 0, got {shard_id}")


# ------------------------------------------------------------------------------------------------ identify queue

# KEYS: bucket, remaining, total. ARGV: token, slot lifetime (ms).
# -> {1, 0} granted; {0, ms} the bucket is busy for ms; {-1, ms} the daily budget is spent for ms.
_GRANT = """#!lua
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, redis.call('PTTL', KEYS[1])}
end
local remaining = redis.call('GET', KEYS[2])
if not remaining then
  local total = redis.call('GET', KEYS[3])
  if total then
    remaining = total
    redis.call('SET', KEYS[2], total, 'PX', 86400000)
  end
end
if remaining then
  if tonumber(remaining) <= 0 then
    return {-1, redis.call('PTTL', KEYS[2])}
  end
  redis.call('DECR', KEYS[2])
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {1, 0}
"""

# KEYS: bucket, remaining. ARGV: token. Gives back a grant that was never used (its waiter was cancelled).
_REFUND = """#!lua
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('INCR', KEYS[2]) end
  return 1
end
return 0
"""

# KEYS: remaining, total. ARGV: remaining, total, reset_after (ms). Keeps the lower of the stored and given counts.
_LIMIT = """#!lua
redis.call('SET', KEYS[2], ARGV[2])
local current = redis.call('GET', KEYS[1])
if current and tonumber(current) <= tonumber(ARGV[1]) then return tonumber(current) end
redis.call('SET', KEYS[1], ARGV[1], 'PX', math.max(1, tonumber(ARGV[3])))
return tonumber(ARGV[1])
"""


class RedisIdentifyQueue:
    """An identify queue shared through Redis by every process (and machine) running shards of one bot.

    Usable wherever an :class:`~gateway.ratelimit.IdentifyQueue` is (``await wait_turn(shard_id)``, ``update``,
    ``set_session_start_limit``). A grant is an atomic Lua script: it succeeds iff the bucket key
    ``{prefix}:identify:bucket:{shard_id % max_concurrency}`` is absent and the shared daily budget is not spent;
    it then sets the bucket key with a lifetime of ``delay + margin`` seconds and takes one session start. So no two
    shards of one bucket identify within ``delay`` (5 s), whichever process they run in, and a process that dies
    holding a slot blocks its bucket for at most the slot's lifetime. Cancellation-safe: a waiter cancelled while
    its grant was in flight gives the slot and the session start back. Every process must use the same
    ``max_concurrency``. Waiting is by polling the slot's remaining lifetime (no FIFO across processes).
    """

    def __init__(self, url: str, max_concurrency: int = 1, *, prefix: str = "gateway",
                 delay: float = IDENTIFY_DELAY, margin: float = 0.5, client: aioredis.Redis | None = None) -> None:
        self._check_concurrency(max_concurrency)
        if delay < 0 or margin < 0:
            raise ValueError("delay and margin must be >= 0")
        self._keys = Keys(prefix)
        self._url = url
        self._client = client if client is not None else connect(url)
        self._owns_client = client is None
        self._max_concurrency = max_concurrency
        self._slot_ms = max(1, int(round((delay + margin) * 1000)))
        self._grant = self._client.register_script(_GRANT)
        self._refund = self._client.register_script(_REFUND)
        self._limit = self._client.register_script(_LIMIT)
        self._pending_limit: tuple[int, int, float] | None = None
        # Held while a limit is written: no grant may run on a budget that is not in Redis yet.
        self._limit_lock = asyncio.Lock()
        self._background: set[asyncio.Future[Any]] = set()
        self.granted = 0
        """Grants this object obtained (and did not give back)."""

    _check_concurrency = staticmethod(IdentifyScheduler._check_concurrency)

    @property
    def max_concurrency(self) -> int:
        return self._max_concurrency

    @property
    def slot_lifetime(self) -> float:
        """Seconds a granted slot keeps its bucket closed (``delay + margin``)."""
        return self._slot_ms / 1000

    def bucket_of(self, shard_id: int) -> int:
        return shard_id % self._max_concurrency if self._max_concurrency else 0

    def update(self, max_concurrency: int) -> None:
        """Change ``max_concurrency`` (every process sharing the prefix must use the same value)."""
        self._check_concurrency(max_concurrency)
        self._max_concurrency = max_concurrency

    def set_session_start_limit(self, remaining: int, total: int, reset_after: float) -> None:
        """Apply ``/gateway/bot``'s ``session_start_limit`` (``reset_after`` in seconds) to the shared budget.

        Written to Redis before the next grant (or now, with :meth:`apply_session_start_limit`). The shared count
        only goes down: a process that fetched an older, higher ``remaining`` does not raise it.
        """
        if remaining < 0 or total < 1 or remaining > total:
            raise ValueError(f"invalid session_start_limit: remaining={remaining}, total={total}")
        self._pending_limit = (remaining, total, reset_after)

    async def apply_session_start_limit(self, remaining: int | None = None, total: int | None = None,
                                        reset_after: float | None = None) -> None:
        if remaining is not None and total is not None and reset_after is not None:
            self.set_session_start_limit(remaining, total, reset_after)
        async with self._limit_lock:
            pending, self._pending_limit = self._pending_limit, None
            if pending is None:
                return
            remaining_value, total_value, reset = pending
            try:
                await self._limit(keys=[self._keys.identify_remaining, self._keys.identify_total],
                                  args=[remaining_value, total_value, int(reset * 1000)])
            except BaseException:
                self._pending_limit = self._pending_limit or pending
                raise

    async def remaining(self) -> int | None:
        """The shared daily budget left (None when no limit was set)."""
        value = await self._client.get(self._keys.identify_remaining)
        return None if value is None else int(value)

    async def wait_turn(self, shard_id: int) -> None:
        """Wait until ``shard_id`` may IDENTIFY; uses one slot of its bucket and one session start.

        Raises redis-py's errors when Redis cannot be reached (the Shard retries), CancelledError (using nothing)
        when cancelled.
        """
        _check_shard_number(shard_id)
        if self._max_concurrency == 0:
            return
        bucket_key = self._keys.identify_bucket(self.bucket_of(shard_id))
        warned_budget = False
        while True:
            if self._pending_limit is not None or self._limit_lock.locked():
                await self.apply_session_start_limit()  # waits for a write under way, too
            token = secrets.token_hex(12)
            call = asyncio.ensure_future(self._grant(
                keys=[bucket_key, self._keys.identify_remaining, self._keys.identify_total],
                args=[token, self._slot_ms]))
            try:
                status, wait_ms = await asyncio.shield(call)
            except asyncio.CancelledError:
                self._background.add(call)  # until it answers and, if it granted, the slot is given back
                call.add_done_callback(lambda done: self._give_back(done, bucket_key, token))
                raise
            status, wait_ms = int(status), int(wait_ms)
            if status == 1:
                self.granted += 1
                return
            if status == -1:
                if not warned_budget:
                    logger.warning("identify: the shared daily session_start_limit is spent; shard %s waits %.0f s "
                                   "for the reset", shard_id, max(wait_ms, 0) / 1000)
                    warned_budget = True
                delay = min(max(wait_ms, 100) / 1000, 60.0)
            else:
                delay = max(wait_ms, 5) / 1000
            await asyncio.sleep(delay + random.uniform(0, 0.02))

    def _give_back(self, call: asyncio.Future[Any], bucket_key: str, token: str) -> None:
        if not call.cancelled() and call.exception() is None and int(call.result()[0]) == 1:
            task = asyncio.ensure_future(self._refund(keys=[bucket_key, self._keys.identify_remaining],
                                                      args=[token]))
            self._background.add(task)
            task.add_done_callback(self._refund_done)
        self._background.discard(call)

    def _refund_done(self, task: asyncio.Future[Any]) -> None:
        self._background.discard(task)
        error = None if task.cancelled() else task.exception()
        if error is not None:
            logger.warning("identify: could not give back an unused slot (%s); its bucket stays closed for at most "
                           "%.1f s", _error_kind(error), self.slot_lifetime)

    async def close(self) -> None:
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self._owns_client:
            await self._client.aclose()

    def __repr__(self) -> str:
        return (f"RedisIdentifyQueue({redact_url(self._url)!r}, max_concurrency={self._max_concurrency}, "
                f"prefix={self._keys.prefix!r})")


# ------------------------------------------------------------------------------------------------ session store

# KEYS: sessions hash, sessions count. ARGV: count, then shard/session JSON pairs.
_SAVE_SESSIONS = """#!lua
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], ARGV[1])
end
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"""


_ENTRY_ERRORS: tuple[type[BaseException], ...] = (ValueError, TypeError, *_json.DECODE_ERRORS)


def _session_json(session_id: str, sequence: int, resume_url: str | None) -> bytes:
    return _json.dumps({"id": session_id, "sequence": sequence, "resume_url": resume_url})


class RedisSessionStore:
    """The :class:`~gateway.sessions.SessionStore` protocol on Redis: ``{prefix}:sessions`` (hash, one JSON entry
    ``{"id", "sequence", "resume_url"}`` per shard) and ``{prefix}:sessions:shard_count``. The token is never stored.

    The forwarder writes a shard's entry in the same script as the events it covers, so the stored sequence is
    always the last one whose events are in the stream.
    """

    def __init__(self, url: str, *, prefix: str = "gateway", client: aioredis.Redis | None = None) -> None:
        self._keys = Keys(prefix)
        self._url = url
        self._client = client if client is not None else connect(url)
        self._owns_client = client is None
        self._save = self._client.register_script(_SAVE_SESSIONS)

    async def load(self, shard_count: int) -> dict[int, SavedSession]:
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.get(self._keys.sessions_count)
            pipe.hgetall(self._keys.sessions)
            stored_count, entries = await pipe.execute()
        if stored_count is None or stored_count != str(shard_count).encode():
            return {}
        sessions: dict[int, SavedSession] = {}
        for key, value in entries.items():
            try:
                shard = int(key)
                sessions[shard] = SavedSession.from_dict(_json.loads(value))
            except _ENTRY_ERRORS as exc:
                logger.warning("session store: skipping a malformed entry for shard %r (%s)", key, exc)
        return sessions

    async def load_one(self, shard_count: int, shard_id: int) -> SavedSession | None:
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.get(self._keys.sessions_count)
            pipe.hget(self._keys.sessions, str(shard_id))
            stored_count, value = await pipe.execute()
        if value is None or stored_count != str(shard_count).encode():
            return None
        try:
            return SavedSession.from_dict(_json.loads(value))
        except _ENTRY_ERRORS as exc:
            logger.warning("session store: skipping a malformed entry for shard %s (%s)", shard_id, exc)
            return None

    async def save(self, shard_count: int, sessions: Mapping[int, SavedSession]) -> None:
        args: list[Any] = [shard_count]
        for shard, saved in sessions.items():
            args += [shard, _json.dumps(saved.to_dict())]
        await self._save(keys=[self._keys.sessions, self._keys.sessions_count], args=args)

    async def clear(self, shard_ids: Iterable[int] | None = None) -> None:
        if shard_ids is None:
            await self._client.delete(self._keys.sessions, self._keys.sessions_count)
            return
        fields = [str(shard) for shard in shard_ids]
        if fields:
            await self._client.hdel(self._keys.sessions, *fields)

    async def close(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    def __repr__(self) -> str:
        return f"RedisSessionStore({redact_url(self._url)!r}, prefix={self._keys.prefix!r})"


# ---------------------------------------------------------------------------------------------------- consumer

def _backoff(attempt: int, *, base: float = 0.2, cap: float = 30.0) -> float:
    """Equal jitter in [d/2, d], d = min(cap, base * 2^(attempt-1))."""
    delay = min(cap, base * 2 ** max(0, attempt - 1))
    return random.uniform(delay / 2, delay)


class EventConsumer:
    """An async iterator of :class:`~gateway.event.Event` over the consumer group ``group`` of ``{prefix}:events``.

    ``async for event in consumer: ...; await consumer.ack(event)``. Each entry goes to one consumer of the group;
    an entry stays pending until acked, and entries pending longer than ``claim_idle`` seconds (their consumer died
    or hangs) are claimed (``XAUTOCLAIM``) and delivered here again. On start the consumer first re-reads its own
    pending entries (a restarted consumer with the same name gets back what it had not acked). The group is created
    at ``start_id`` (``"0"``: the whole stream, so nothing published before the first worker started is missed).
    Entries whose type ``event_types`` does not want are acked without being parsed. Connection errors are retried
    with backoff (logged); ``stats`` counts what happened.
    """

    def __init__(self, url: str, *, prefix: str = "gateway", group: str, consumer: str,
                 event_types: int = EventTypeFlags.all(), claim_idle: float = 30.0, count: int = 256,
                 block: float = 1.0, start_id: str = "0", client: aioredis.Redis | None = None) -> None:
        if not group or not consumer:
            raise ValueError("group and consumer must be non-empty")
        if claim_idle <= 0 or block <= 0 or count < 1:
            raise ValueError("claim_idle and block must be > 0, count >= 1")
        self._keys = Keys(prefix)
        self._url = url
        self._client = client if client is not None else connect(url, socket_timeout=block + 10.0)
        self._owns_client = client is None
        self.group = group
        self.consumer = consumer
        self._wanted = int(EventTypeFlags(int(event_types)))
        self._claim_idle_ms = int(claim_idle * 1000)
        self._claim_every = max(0.05, claim_idle / 2)
        self._count = count
        self._block_ms = max(1, int(block * 1000))
        self._start_id = start_id
        self._buffer: deque[tuple[bytes, dict[bytes, bytes]]] = deque()
        self._ids: dict[Event, bytes] = {}
        self._skip: list[bytes] = []
        self._ready = False
        self._own_pending_done = False
        self._next_claim = 0.0
        self._claim_cursor = b"0-0"
        self._failures = 0
        self._closed = False
        self.stats: Counter[str] = Counter()
        """``delivered``, ``claimed``, ``acked``, ``skipped`` (unwanted types), ``malformed``, ``redis_errors``."""

    def __aiter__(self) -> EventConsumer:
        return self

    async def __anext__(self) -> Event:
        while True:
            if self._closed:
                raise StopAsyncIteration
            while self._buffer:
                entry_id, fields = self._buffer.popleft()
                event = self._to_event(entry_id, fields)
                if event is not None:
                    self.stats["delivered"] += 1
                    return event
            await self._fill()

    def entry_id(self, event: Event) -> str:
        """The stream entry id of a delivered, not yet acked event (KeyError otherwise)."""
        return self._ids[event].decode()

    @property
    def unacked(self) -> int:
        return len(self._ids)

    async def ack(self, event: Event) -> None:
        """Acknowledge ``event`` (XACK): it will not be delivered again. KeyError if it is not pending here."""
        entry_id = self._ids[event]
        await self._client.xack(self._keys.events, self.group, entry_id)
        del self._ids[event]
        self.stats["acked"] += 1

    async def ack_many(self, events: Iterable[Event]) -> None:
        ids = [self._ids[event] for event in events]
        if ids:
            await self._client.xack(self._keys.events, self.group, *ids)
        for event in events:
            self._ids.pop(event, None)
        self.stats["acked"] += len(ids)

    def _to_event(self, entry_id: bytes, fields: dict[bytes, bytes] | None) -> Event | None:
        if not fields:  # trimmed away while pending
            self._skip.append(entry_id)
            return None
        name = fields.get(b"t", b"").decode("utf-8", "replace")
        if not FLAG_BY_NAME.get(name, _UNKNOWN_FLAG) & self._wanted:
            self.stats["skipped"] += 1
            self._skip.append(entry_id)
            return None
        try:
            shard = int(fields[b"shard"])
            event = Event.from_payload(fields[b"payload"], shard)
        except (KeyError, ValueError, PayloadError) as exc:
            self.stats["malformed"] += 1
            if self.stats["malformed"] in (1, 10, 100) or self.stats["malformed"] % 1000 == 0:
                logger.warning("consumer %s: skipping malformed entry %s (%s); %d so far", self.consumer,
                               entry_id.decode(), type(exc).__name__, self.stats["malformed"])
            self._skip.append(entry_id)
            return None
        self._ids[event] = entry_id
        return event

    async def _fill(self) -> None:
        try:
            if self._skip:
                skip, self._skip = self._skip, []
                await self._client.xack(self._keys.events, self.group, *skip)
            if not self._ready:
                await self._create_group()
            if not self._own_pending_done:
                entries = await self._read("0")
                if entries:
                    self._buffer.extend(entries)
                    return
                self._own_pending_done = True
            now = time.monotonic()
            if now >= self._next_claim:
                claimed = await self._claim()
                if claimed:
                    self.stats["claimed"] += len(claimed)
                    self._buffer.extend(claimed)
                    return
                self._next_claim = now + self._claim_every
            block = min(self._block_ms, max(1, int((self._next_claim - time.monotonic()) * 1000)))
            self._buffer.extend(await self._read(">", block))
            self._failures = 0
        except ResponseError as exc:
            if "NOGROUP" in str(exc):
                logger.warning("consumer %s: group %s is gone (Redis lost its data?); recreating it", self.consumer,
                               self.group)
                self._ready = False
                return
            await self._failed(exc)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            await self._failed(exc)

    async def _failed(self, exc: BaseException) -> None:
        self._failures += 1
        self.stats["redis_errors"] += 1
        delay = _backoff(self._failures)
        logger.warning("consumer %s: Redis at %s failed (%s: %s); retrying in %.1f s", self.consumer,
                       redact_url(self._url), _error_kind(exc), exc, delay)
        await asyncio.sleep(delay)

    async def _create_group(self) -> None:
        try:
            await self._client.xgroup_create(self._keys.events, self.group, id=self._start_id, mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._ready = True

    async def _read(self, start: str, block: int | None = None) -> list[tuple[bytes, dict[bytes, bytes]]]:
        answer: Any = await self._client.xreadgroup(self.group, self.consumer, {self._keys.events: start},
                                                    count=self._count, block=block)
        if not answer:
            return []
        return list(answer[0][1])

    async def _claim(self) -> list[tuple[bytes, dict[bytes, bytes]]]:
        answer: Any = await self._client.xautoclaim(self._keys.events, self.group, self.consumer, self._claim_idle_ms,
                                               start_id=self._claim_cursor, count=self._count)
        self._claim_cursor = answer[0]
        return [(entry_id, fields) for entry_id, fields in answer[1]]

    async def close(self) -> None:
        """Stop iterating; unacked events stay pending (another consumer claims them after ``claim_idle``)."""
        self._closed = True
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> EventConsumer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


# ---------------------------------------------------------------------------------------------------- commands

def _encode_command(payload: Mapping[str, Any] | bytes | str) -> bytes:
    if isinstance(payload, str):
        data = payload.encode()
    elif isinstance(payload, (bytes, bytearray, memoryview)):
        data = bytes(payload)
    elif isinstance(payload, Mapping):
        data = _json.dumps(dict(payload))
    else:
        raise TypeError(f"a command must be a dict, str or bytes, not {type(payload).__name__}")
    return data


class CommandSender:
    """Appends commands for the shards to ``{prefix}:commands:{shard}`` (field ``payload``).

    ``await send(shard_id, payload)`` (a dict, or JSON text/bytes) validates like the forwarder does (4096 bytes,
    a JSON object with an int ``op``) and raises ValueError instead of appending what would be rejected; a shard
    number outside the fleet's count (``{prefix}:shard_count``, when known) is refused too. Returns the entry id.
    ``await shard_for_guild(guild_id)`` is ``(guild_id >> 22) % shard_count``.
    """

    def __init__(self, url: str, *, prefix: str = "gateway", shard_count: int | None = None,
                 client: aioredis.Redis | None = None) -> None:
        self._keys = Keys(prefix)
        self._url = url
        self._client = client if client is not None else connect(url)
        self._owns_client = client is None
        self._shard_count = shard_count

    async def shard_count(self, *, refresh: bool = False) -> int | None:
        """The fleet's shard count as the forwarders published it (cached; None when none ran yet)."""
        if self._shard_count is None or refresh:
            value = await self._client.get(self._keys.shard_count)
            if value is not None:
                self._shard_count = int(value)
        return self._shard_count

    async def shard_for_guild(self, guild_id: int | str) -> int:
        count = await self.shard_count()
        if count is None:
            raise RuntimeError(f"no shard count in {self._keys.shard_count}: no forwarder has started yet")
        return (int(guild_id) >> 22) % count

    async def send(self, shard_id: int, payload: Mapping[str, Any] | bytes | str) -> str:
        _check_shard_number(shard_id)
        data = _encode_command(payload)
        problem = check_command(data)
        if problem is not None:
            raise ValueError(problem)
        count = await self.shard_count()
        if count is not None and shard_id >= count:
            count = await self.shard_count(refresh=True)
            if count is not None and shard_id >= count:
                raise ValueError(f"shard {shard_id} does not exist (the fleet has {count} shards)")
        entry_id = await self._client.xadd(self._keys.commands(shard_id), {"payload": data},
                                           maxlen=SIDE_STREAM_MAX_LEN, approximate=True)
        return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)

    async def close(self) -> None:
        if self._owns_client:
            await self._client.aclose()


# --------------------------------------------------------------------------------------------------- forwarder

# KEYS: events, sessions hash, sessions count, fleet shard count, fences hash. ARGV: max_len, shard_count, groups, then
# per group: shard, session JSON ('' = unchanged), fence expected ('' = no check), new fence, n, then n times
# (t, s, payload). A group whose shard's fence is not the expected one (the batch before it was not taken) is skipped.
# Returns one status per group: 1 taken, 0 skipped.
_PUBLISH = """#!lua
local maxlen = ARGV[1]
if redis.call('GET', KEYS[3]) ~= ARGV[2] then
  redis.call('DEL', KEYS[2])
  redis.call('SET', KEYS[3], ARGV[2])
  redis.call('SET', KEYS[4], ARGV[2])
end
local i = 4
local statuses = {}
for g = 1, tonumber(ARGV[3]) do
  local shard, session, expect, fence, n = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], tonumber(ARGV[i + 4])
  i = i + 5
  if expect ~= '' and redis.call('HGET', KEYS[5], shard) ~= expect then
    statuses[g] = 0
    i = i + 3 * n
  else
    for k = 1, n do
      redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', 'shard', shard, 't', ARGV[i], 's', ARGV[i + 1],
                 'payload', ARGV[i + 2])
      i = i + 3
    end
    if session ~= '' then redis.call('HSET', KEYS[2], shard, session) end
    if fence ~= '' then redis.call('HSET', KEYS[5], shard, fence) end
    statuses[g] = 1
  end
end
return statuses
"""

Entry = tuple[str, "int | None", bytes]


@dataclass(eq=False)
class _Item:
    shard: int
    entries: list[Entry]
    session: bytes
    expect: bytes
    fence: bytes
    size: int
    future: asyncio.Future[None]


class _Fenced(RedisError):
    """Redis skipped a batch: the batch before it (same shard) was not taken."""


class _Publisher:
    """Sends the batches of every shard of a process to Redis, coalesced, with up to ``depth`` script calls in flight
    on one connection (Redis answers them in order, so per-shard order holds); each batch learns whether Redis took
    it. A batch carries the fence its shard's previous batch set: if that one was not taken, Redis skips this one
    too, so a shard's stream never has a gap followed by later events."""

    def __init__(self, client: aioredis.Redis, keys: Keys, max_len: int, shard_count: int,
                 max_call_bytes: int = 8 << 20, depth: int = 2) -> None:
        self._client = client
        self._script = client.register_script(_PUBLISH)
        self._keys = [keys.events, keys.sessions, keys.sessions_count, keys.shard_count, keys.fences]
        self._head = [_bulk(b"EVALSHA"), _bulk(self._script.sha.encode()), _bulk(b"5"),
                      *(_bulk(key.encode()) for key in self._keys)]
        self._max_len = max_len
        self._shard_count = shard_count
        self._max_call_bytes = max_call_bytes
        self._depth = depth
        self._pending: deque[_Item] = deque()
        self._inflight: deque[list[_Item]] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._connection: Any = None
        self.calls = 0
        self.published = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            for _ in range(10):  # see ../shared/reference/fleet-anchors.md section 9: a cancel can be swallowed
                try:
                    await asyncio.wait_for(asyncio.shield(self._task), 1.0)
                    break
                except asyncio.CancelledError:
                    break
                except asyncio.TimeoutError:
                    self._task.cancel()
        error = ShardClosedError("forwarder stopped")
        for items in self._inflight:
            self._fail(items, error)
        self._inflight.clear()
        self._fail(list(self._pending), error)
        self._pending.clear()
        await self._drop_connection()

    def enqueue(self, shard: int, entries: list[Entry], session: bytes, expect: bytes = b"",
                fence: bytes = b"") -> asyncio.Future[None]:
        """Queue ``entries`` of ``shard`` (with ``session`` stored after them); the future fails with the Redis error
        (or :class:`_Fenced`) if Redis did not take them."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        size = sum(len(raw) for _, _, raw in entries) + 64 * len(entries)
        self._pending.append(_Item(shard, entries, session, expect, fence, size, future))
        self._wakeup.set()
        return future

    async def submit(self, shard: int, entries: list[Entry], session: bytes) -> None:
        """Publish and wait (no fence: only when nothing else of this shard is queued or in flight)."""
        await self.enqueue(shard, entries, session)

    @staticmethod
    def _fail(items: list[_Item], error: BaseException) -> None:
        for item in items:
            if not item.future.done():
                item.future.set_exception(error)
                item.future.exception()  # retrieved: a caller that gave up on it must not log "never retrieved"

    async def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.disconnect()
            await self._client.connection_pool.release(connection)

    async def _open(self) -> Any:
        connection = await self._client.connection_pool.get_connection()
        try:
            await connection.send_command("SCRIPT", "LOAD", _PUBLISH)
            await connection.read_response()
        except BaseException:
            await connection.disconnect()
            await self._client.connection_pool.release(connection)
            raise
        return connection

    def _take(self) -> list[_Item]:
        items = [self._pending.popleft()]
        size = items[0].size
        while self._pending and size + self._pending[0].size <= self._max_call_bytes:
            item = self._pending.popleft()
            size += item.size
            items.append(item)
        return items

    async def _run(self) -> None:
        """Send while fewer than ``depth`` calls are in flight; read the answers (in order) concurrently."""
        inflight = self._inflight
        reading: asyncio.Future[Any] | None = None
        while True:
            sending: list[_Item] = []
            try:
                if not self._pending and not inflight:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                if self._connection is None:
                    self._connection = await self._open()
                if self._pending and len(inflight) < self._depth:
                    sending = self._take()
                    await self._connection.send_packed_command(self._pack(sending), check_health=False)
                    inflight.append(sending)
                    sending = []
                    continue
                if reading is None:
                    reading = asyncio.ensure_future(self._connection.read_response())
                if not self._pending and len(inflight) < self._depth:  # also wake up for new batches to send
                    self._wakeup.clear()
                    woken = asyncio.ensure_future(self._wakeup.wait())
                    await asyncio.wait([reading, woken], return_when=asyncio.FIRST_COMPLETED)
                    woken.cancel()
                else:
                    await asyncio.wait([reading])
                if not reading.done():
                    continue
                answer, reading = reading, None
                try:
                    statuses = answer.result()
                except ResponseError as exc:  # an error answer (OOM, READONLY, NOSCRIPT, ...): the connection is fine
                    self._fail(inflight.popleft(), exc)
                    continue
                items = inflight.popleft()
                self.calls += 1
                for item, status in zip(items, statuses):
                    if item.future.done():
                        continue
                    if int(status) == 1:
                        self.published += len(item.entries)
                        item.future.set_result(None)
                    else:
                        self._fail([item], _Fenced(f"shard {item.shard}: the batch before this one was not taken"))
            except (RedisError, OSError) as exc:
                if reading is not None:
                    reading.cancel()
                    reading = None
                self._fail(sending, exc)
                for items in inflight:
                    self._fail(items, exc)
                inflight.clear()
                await self._drop_connection()
            except asyncio.CancelledError:
                if reading is not None:
                    reading.cancel()
                self._fail(sending, ShardClosedError("forwarder stopped"))
                raise

    def _pack(self, items: list[_Item]) -> list[bytes]:
        """The EVALSHA command in RESP, built in one pass (redis-py's generic packer costs ~20x more per event)."""
        chunks = self._head[:]
        append = chunks.append
        count = len(chunks) + 3
        append(_bulk(str(self._max_len).encode()))
        append(_bulk(str(self._shard_count).encode()))
        append(_bulk(str(len(items)).encode()))
        for item in items:
            append(_bulk(str(item.shard).encode()))
            append(_bulk(item.session))
            append(_bulk(item.expect))
            append(_bulk(item.fence))
            append(_bulk(str(len(item.entries)).encode()))
            count += 5 + 3 * len(item.entries)
            for name, seq, raw in item.entries:
                append(_bulk(name.encode()))
                append(_bulk(b"" if seq is None else str(seq).encode()))
                append(b"$%d\r\n" % len(raw))
                append(raw)
                append(b"\r\n")
        chunks.insert(0, b"*%d\r\n" % count)
        return chunks


def _bulk(data: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(data), data)


class _PublishFailed(Exception):
    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(eq=False)
class _Outstanding:
    """A batch in flight: its future, the resume point after it, what it stored, its size, its READY (if first)."""

    future: asyncio.Future[None]
    state: tuple[str | None, int | None, str | None]
    saved: tuple[str, int, str | None] | None
    count: int
    ready: Entry | None


@dataclass(eq=False)
class _Link:
    """One owned shard: its current Shard and the resume point Redis acknowledged."""

    number: int
    shard: Shard | None = None
    session_id: str | None = None
    sequence: int | None = None
    resume_url: str | None = None
    saved: tuple[str, int, str | None] | None = None
    pending_ready: Entry | None = None
    in_flight: bool = False
    fence: bytes = b""
    failures: int = 0
    fatal: FatalCloseError | None = None
    commands: deque[tuple[bytes, bytes | None]] = field(default_factory=deque)
    commands_waiting: asyncio.Event = field(default_factory=asyncio.Event)
    shard_ready: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def session_state(self) -> tuple[str, int, str | None] | None:
        if self.session_id is None or self.sequence is None:
            return None
        return (self.session_id, self.sequence, self.resume_url)


class RedisForwarder:
    """Runs the shards ``shard_ids`` (of ``shard_count``) of this process and forwards them through Redis.

    Every wanted event goes to ``{prefix}:events`` (see the module docstring for the fields), commands are read
    from ``{prefix}:commands:{shard}``, identifies go through a :class:`RedisIdentifyQueue`, and sessions are
    resumed from / saved to the Redis session store, atomically with the events. ``await run()`` runs until
    :meth:`close` (or every shard ended fatally: it then raises the first :class:`FatalCloseError`).
    ``stats`` counts what happened (``events``, ``batches``, ``publish_failures``, ``redis_errors:KIND``,
    ``commands_sent``, ``commands_rejected``, ``recoveries``).
    """

    def __init__(
        self,
        url: str,
        token: str,
        intents: int,
        shard_ids: Sequence[int],
        shard_count: int,
        *,
        prefix: str = "gateway",
        event_types: int = EventTypeFlags.all(),
        max_len: int = DEFAULT_MAX_LEN,
        gateway_url: str = GATEWAY_URL,
        max_concurrency: int = 1,
        identify_queue: Any = None,
        identify_delay: float = IDENTIFY_DELAY,
        batch_events: int = 2048,
        batch_bytes: int = 4 << 20,
        save_interval: float = 1.0,
        publish_depth: int = 2,
        sweep_commands: bool | None = None,
        **shard_options: Any,
    ) -> None:
        if isinstance(shard_count, bool) or not isinstance(shard_count, int) or shard_count < 1:
            raise ValueError(f"shard_count must be an int >= 1, got {shard_count!r}")
        numbers = list(shard_ids)
        for number in numbers:
            _check_shard_number(number)
            if number >= shard_count:
                raise ValueError(f"shard {number} is outside 0..{shard_count - 1}")
        if len(set(numbers)) != len(numbers) or not numbers:
            raise ValueError("shard_ids must be distinct and not empty")
        if max_len < 1:
            raise ValueError("max_len must be >= 1")
        self._url = url
        self._token = token
        self._intents = intents
        self._keys = Keys(prefix)
        self._count = shard_count
        self._wanted = int(EventTypeFlags(int(event_types)))
        self._shard_filter = self._wanted | _READY_FLAG
        self._max_len = max_len
        self._gateway_url = gateway_url
        self._shard_options = shard_options
        self._batch_events = batch_events
        self._batch_bytes = batch_bytes
        self._save_interval = save_interval
        self._publish_depth = max(1, publish_depth)
        self._sweep = (0 in numbers) if sweep_commands is None else sweep_commands
        self._client = connect(url)
        self._command_client = connect(url, socket_timeout=15.0)
        self.identify_queue = identify_queue if identify_queue is not None else RedisIdentifyQueue(
            url, max_concurrency, prefix=prefix, delay=identify_delay, client=self._client)
        self.store = RedisSessionStore(url, prefix=prefix, client=self._client)
        self._publisher = _Publisher(self._client, self._keys, max_len, shard_count, depth=self._publish_depth)
        self._links = {number: _Link(number) for number in sorted(numbers)}
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._stopped = asyncio.Event()
        self._saved_at_start: dict[int, SavedSession] = {}
        self.stats: Counter[str] = Counter()

    # -- public --------------------------------------------------------------------------------------------------

    @property
    def shards(self) -> dict[int, Shard | None]:
        """The current Shard of each owned shard number (None while it waits for Redis)."""
        return {number: link.shard for number, link in self._links.items()}

    def resume_point(self, shard_id: int) -> tuple[str, int, str | None] | None:
        """``(session id, sequence, resume_url)`` Redis last acknowledged for ``shard_id``."""
        return self._links[shard_id].session_state()

    async def wait_connected(self, timeout: float = 10.0) -> None:
        """Wait until every owned shard has a Shard running (not waiting for Redis)."""
        await asyncio.wait_for(asyncio.gather(*(link.shard_ready.wait() for link in self._links.values())), timeout)

    async def run(self) -> None:
        if not await self._wait_for_redis():
            await self._client.aclose()
            await self._command_client.aclose()
            return
        saved = self._saved_at_start
        for number, link in self._links.items():
            if number in saved:
                entry = saved[number]
                link.session_id, link.sequence, link.resume_url = entry.session.id, entry.session.sequence, entry.resume_url
                link.saved = link.session_state()
                logger.info("shard %s: resuming session from the Redis store (seq %s)", number, link.sequence)
        loop = asyncio.get_running_loop()
        self._publisher.start()
        for link in self._links.values():
            link.task = loop.create_task(self._run_link(link))
            self._tasks.append(link.task)
        self._tasks.append(loop.create_task(self._save_idle_sessions()))
        self._tasks.append(loop.create_task(self._read_commands()))
        for link in self._links.values():
            self._tasks.append(loop.create_task(self._send_commands(link)))
        try:
            link_tasks = [link.task for link in self._links.values() if link.task is not None]
            stopped = loop.create_task(self._stopped.wait())
            while not self._closing and not all(task.done() for task in link_tasks):
                await asyncio.wait([*link_tasks, stopped], return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if not self._closing:
                fatal = next((link.fatal for link in self._links.values() if link.fatal is not None), None)
                if fatal is not None:
                    raise fatal
        finally:
            await self._shutdown()

    async def close(self) -> None:
        """Stop: every shard closes with 4000 (resumable from the store by the next process)."""
        self._closing = True
        self._stopped.set()

    # -- startup -------------------------------------------------------------------------------------------------

    async def _wait_for_redis(self) -> bool:
        """Retry (with backoff, logged) until Redis takes a write: unreachable, loading, OOM, READONLY all wait.
        False if :meth:`close` was called meanwhile."""
        attempt = 0
        while not self._closing:
            try:
                await self._client.set(self._keys.shard_count, self._count)
                saved = await self.store.load(self._count)
                if attempt:
                    logger.warning("Redis at %s takes writes now", redact_url(self._url))
                self._saved_at_start = saved
                return True
            except (RedisError, OSError) as exc:
                attempt += 1
                self.stats[f"redis_errors:{_error_kind(exc)}"] += 1
                delay = _backoff(attempt, base=0.5)
                what = "is unreachable" if _is_connection_error(exc) else "refuses writes"
                logger.error("Redis at %s %s (%s: %s); retrying in %.1f s", redact_url(self._url), what,
                             _error_kind(exc), exc, delay)
                try:
                    await asyncio.wait_for(self._stopped.wait(), delay)
                except asyncio.TimeoutError:
                    pass
        return False

    # -- one shard -----------------------------------------------------------------------------------------------

    def _new_shard(self, link: _Link) -> Shard:
        session = None
        if link.session_id is not None and link.sequence is not None:
            session = Session(link.session_id, link.sequence)
        return Shard(
            ShardId(link.number, self._count), self._token, self._intents,
            gateway_url=self._gateway_url, event_types=self._shard_filter, session=session,
            resume_url=link.resume_url if session is not None else None, identify_queue=self.identify_queue,
            **self._shard_options,
        )

    async def _run_link(self, link: _Link) -> None:
        while not self._closing:
            if link.pending_ready is not None:
                if not await self._recover(link):
                    return
            shard = link.shard = self._new_shard(link)
            link.shard_ready.set()
            try:
                await self._pump(link, shard)
                return
            except FatalCloseError as exc:
                logger.error("shard %s: the gateway closed it for good (%s %s)", link.number, exc.code, exc.reason)
                link.fatal = exc
                return
            except _PublishFailed as failure:
                link.failures += 1
                self.stats["publish_failures"] += 1
                self.stats[f"redis_errors:{_error_kind(failure.error)}"] += 1
                logger.warning("shard %s: Redis did not take its events (%s: %s); closing with 4000, it resumes "
                               "from seq %s once Redis takes writes again", link.number, _error_kind(failure.error),
                               failure.error, link.sequence)
                link.shard_ready.clear()
                link.shard = None
                await shard.close(4000, "redis unavailable")
                if not await self._recover(link):
                    return

    async def _recover(self, link: _Link) -> bool:
        """Wait (with backoff) until Redis takes a write again; reload the resume point Redis holds."""
        attempt = 0
        while not self._closing:
            attempt += 1
            delay = _backoff(min(attempt + link.failures - 1, 12), base=0.25, cap=10.0)
            await asyncio.sleep(delay)
            try:
                stored = await self.store.load_one(self._count, link.number)
                if stored is not None and stored.session.id == link.session_id:
                    link.sequence, link.resume_url = stored.session.sequence, stored.resume_url
                ready = link.pending_ready
                entries = [ready] if ready is not None else []
                state = link.session_state()
                session = _session_json(*state) if state is not None and ready is not None else b""
                await self._publisher.submit(link.number, entries, session)  # a write: refused under OOM/READONLY
            except (RedisError, OSError) as exc:
                self.stats[f"redis_errors:{_error_kind(exc)}"] += 1
                logger.warning("shard %s: Redis still refuses (%s); next try in up to %.1f s", link.number,
                               _error_kind(exc), min(10.0, 0.25 * 2 ** min(attempt + link.failures, 12)))
                continue
            link.pending_ready = None
            link.saved = link.session_state()
            self.stats["recoveries"] += 1
            logger.warning("shard %s: Redis takes writes again; resuming session from seq %s", link.number,
                           link.sequence)
            return True
        return False

    async def _pump(self, link: _Link, shard: Shard) -> None:
        """Publish the shard's events in batches, up to ``publish_depth`` batches in flight; commit each batch's
        resume point in order once Redis took it. Raises _PublishFailed (after every batch in flight settled)."""
        link.fence = b""  # nothing of this shard is in flight: the first batch needs no fence check
        outstanding: deque[_Outstanding] = deque()
        next_event: asyncio.Future[Event] | None = None
        carry: Event | None = None
        try:
            while True:
                while outstanding and outstanding[0].future.done():
                    self._settle(link, outstanding.popleft())
                link.in_flight = bool(outstanding)
                if len(outstanding) >= self._publish_depth:
                    await asyncio.wait([outstanding[0].future])
                    continue
                if carry is not None:
                    first, carry = carry, None
                elif shard.queued_events:
                    first = await shard.next_event()
                else:
                    if next_event is None:
                        next_event = asyncio.ensure_future(shard.next_event())
                    waits: list[asyncio.Future[Any]] = [next_event]
                    if outstanding:
                        waits.append(outstanding[0].future)
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                    if not next_event.done():
                        continue
                    done, next_event = next_event, None
                    try:
                        first = done.result()
                    except ShardClosedError:
                        while outstanding:
                            await asyncio.wait([outstanding[0].future])
                            self._settle(link, outstanding.popleft())
                        return
                carry = await self._publish_batch(link, shard, first, outstanding)
        except BaseException:
            if next_event is not None and not next_event.done():
                next_event.cancel()  # the Shard is abandoned after this
            if outstanding:  # let Redis answer what is in flight: the stored resume point must be final
                await asyncio.wait([item.future for item in outstanding])
            raise

    async def _publish_batch(self, link: _Link, shard: Shard, first: Event,
                             outstanding: deque[_Outstanding]) -> Event | None:
        """Drain a batch (it ends before a READY, which is returned to start the next one) and enqueue it."""
        wanted = self._wanted
        batch = [first]
        size = len(first.raw)
        carry: Event | None = None
        while shard.queued_events and len(batch) < self._batch_events and size < self._batch_bytes:
            event = await shard.next_event()  # returns at once (queued): the batch is taken without a pause
            if event.name == "READY":  # a new session starts a new batch
                carry = event
                break
            batch.append(event)
            size += len(event.raw)
        drained = carry is None and not shard.queued_events
        previous = outstanding[-1].state if outstanding else (link.session_id, link.sequence, link.resume_url)
        session_id, sequence, resume_url = previous
        entries: list[Entry] = []
        ready: Entry | None = None
        for event in batch:
            name = event.name
            if name == "READY":
                data = event.data
                session_id = data.get("session_id") if isinstance(data, dict) else None
                resume_url = data.get("resume_gateway_url") if isinstance(data, dict) else None
                sequence = event.seq
                if _READY_FLAG & wanted:
                    ready = (name, event.seq, event.raw)
                    entries.append(ready)
                continue
            if event.seq is not None:
                sequence = event.seq
            if FLAG_BY_NAME.get(name, _UNKNOWN_FLAG) & wanted:
                entries.append((name, event.seq, event.raw))
        current = shard.session
        if drained and current is not None and current.id == session_id:
            sequence = current.sequence if sequence is None else max(sequence, current.sequence)
        state = (session_id, sequence, resume_url)
        saved = outstanding[-1].saved if outstanding else link.saved
        full = None if session_id is None or sequence is None else (session_id, sequence, resume_url)
        session = _session_json(*full) if full is not None and full != saved else b""
        if not entries and not session:
            return carry
        fence = secrets.token_bytes(6).hex().encode()
        future = self._publisher.enqueue(link.number, entries, session, link.fence, fence)
        link.fence = fence
        outstanding.append(_Outstanding(future, state, full if session else saved, len(entries),
                                        ready if batch[0].name == "READY" else None))
        link.in_flight = True
        return carry

    def _settle(self, link: _Link, done: _Outstanding) -> None:
        """Commit a settled batch (in order) or raise _PublishFailed."""
        error = done.future.exception()
        if error is not None:
            if done.ready is not None and done.state[0] is not None:
                # Discord does not replay READY: keep it (one payload) and publish it first once Redis is back.
                link.session_id, link.sequence, link.resume_url = done.state[0], done.ready[1], done.state[2]
                link.pending_ready = done.ready
            raise _PublishFailed(error)
        link.session_id, link.sequence, link.resume_url = done.state
        link.saved = done.saved
        link.failures = 0
        self.stats["events"] += done.count
        self.stats["batches"] += 1

    async def _save_idle_sessions(self) -> None:
        """Store the resume point of shards whose every received event is in Redis (the filter dropped the rest)."""
        while True:
            await asyncio.sleep(self._save_interval)
            for link in self._links.values():
                shard = link.shard
                if shard is None or link.in_flight or shard.queued_events or link.session_id is None:
                    continue
                current = shard.session
                if current is None or current.id != link.session_id or current.sequence == link.sequence:
                    continue
                state = (current.id, current.sequence, link.resume_url)
                link.in_flight = True
                fence = secrets.token_bytes(6).hex().encode()
                future = self._publisher.enqueue(link.number, [], _session_json(*state), link.fence, fence)
                link.fence = fence
                try:
                    await future
                except (RedisError, OSError, ShardClosedError):
                    continue
                finally:
                    link.in_flight = False
                if link.sequence is None or state[1] > link.sequence:
                    link.sequence = state[1]
                    link.saved = state

    # -- commands ------------------------------------------------------------------------------------------------

    async def _read_commands(self) -> None:
        client, keys = self._command_client, self._keys
        failures = 0
        created = False
        own_pending = True
        next_sweep = 0.0
        while True:
            try:
                if not created:
                    for number in self._links:
                        try:
                            await client.xgroup_create(keys.commands(number), keys.commands_group, id="0",
                                                       mkstream=True)
                        except ResponseError as exc:
                            if "BUSYGROUP" not in str(exc):
                                raise
                    created = True
                if self._sweep and time.monotonic() >= next_sweep:
                    await self._sweep_foreign_commands()
                    next_sweep = time.monotonic() + 5.0
                streams = {keys.commands(number): ("0" if own_pending else ">")
                           for number, link in self._links.items() if len(link.commands) < 256}
                if not streams:
                    await asyncio.sleep(0.05)
                    continue
                answer: Any = await client.xreadgroup(keys.commands_group, "owner", streams,  # type: ignore[arg-type]
                                                      count=128, block=None if own_pending else 1000)
                got = 0
                for stream, entries in answer or []:
                    number = int(stream.rsplit(b":", 1)[1])
                    link = self._links[number]
                    for entry_id, fields in entries:
                        link.commands.append((entry_id, fields.get(b"payload") if fields else None))
                        got += 1
                    if entries:
                        self._notify_commands(link)
                if own_pending and not got:
                    own_pending = False
                failures = 0
            except ResponseError as exc:
                if "NOGROUP" in str(exc):
                    created = False
                    continue
                failures += 1
                self.stats[f"redis_errors:{_error_kind(exc)}"] += 1
                await asyncio.sleep(_backoff(failures))
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                failures += 1
                self.stats[f"redis_errors:{_error_kind(exc)}"] += 1
                logger.debug("commands: Redis failed (%s); retrying", _error_kind(exc))
                own_pending = True
                await asyncio.sleep(_backoff(failures))

    def _notify_commands(self, link: _Link) -> None:
        link.commands_waiting.set()

    async def _send_commands(self, link: _Link) -> None:
        waiter = link.commands_waiting
        while True:
            if not link.commands:
                waiter.clear()
                await waiter.wait()
                continue
            entry_id, payload = link.commands[0]
            problem = "entry has no payload field" if payload is None else check_command(payload)
            if problem is None:
                await link.shard_ready.wait()
                shard = link.shard
                if shard is None:
                    continue
                try:
                    await shard.send(payload)  # type: ignore[arg-type]
                except ShardClosedError:
                    await asyncio.sleep(0.05)  # being replaced after a Redis failure: wait for the new Shard
                    continue
                except FatalCloseError:
                    problem = "the shard was closed for good by the gateway"
                except (ValueError, TypeError) as exc:
                    problem = str(exc)
                else:
                    self.stats["commands_sent"] += 1
            if problem is not None:
                self.stats["commands_rejected"] += 1
                logger.warning("shard %s: rejected command %s: %s", link.number, entry_id.decode(), problem)
            if not await self._finish_command(link.number, entry_id, payload, problem):
                continue
            link.commands.popleft()

    async def _finish_command(self, number: int, entry_id: bytes, payload: bytes | None, problem: str | None) -> bool:
        """Record the rejection (if any) and XACK; False (retry later) if Redis did not take it."""
        try:
            async with self._command_client.pipeline(transaction=True) as pipe:
                if problem is not None:
                    pipe.xadd(self._keys.errors, {"shard": number, "error": problem, "payload": payload or b""},
                              maxlen=SIDE_STREAM_MAX_LEN, approximate=True)
                pipe.xack(self._keys.commands(number), self._keys.commands_group, entry_id)
                await pipe.execute()
            return True
        except (RedisError, OSError) as exc:
            self.stats[f"redis_errors:{_error_kind(exc)}"] += 1
            await asyncio.sleep(0.5)
            return problem is None  # a sent command must not be sent twice; a rejection is retried

    async def _sweep_foreign_commands(self) -> None:
        """Commands for shard numbers outside the fleet go to the errors stream (their key is deleted)."""
        prefix = f"{self._keys.prefix}:commands:"
        async for key in self._command_client.scan_iter(match=f"{prefix}*", count=500):
            suffix = key.decode("utf-8", "replace")[len(prefix):]
            if suffix.isdigit() and int(suffix) < self._count and suffix == str(int(suffix)):
                continue
            entries: Any = await self._command_client.xrange(key, count=SIDE_STREAM_MAX_LEN)
            async with self._command_client.pipeline(transaction=True) as pipe:
                for _, fields in entries:
                    pipe.xadd(self._keys.errors, {
                        "shard": suffix, "error": f"no shard {suffix!r} in a fleet of {self._count} shards",
                        "payload": fields.get(b"payload", b"")}, maxlen=SIDE_STREAM_MAX_LEN, approximate=True)
                pipe.delete(key)
                await pipe.execute()
            self.stats["commands_rejected"] += len(entries)
            logger.warning("commands: %d entries for unknown shard %r rejected", len(entries), suffix)

    # -- shutdown ------------------------------------------------------------------------------------------------

    async def _shutdown(self) -> None:
        self._closing = True
        for link in self._links.values():
            if link.task is not None and not link.task.done():
                shard = link.shard
                if shard is not None and not shard.closed:
                    try:
                        await asyncio.wait_for(shard.close(4000, "forwarder stopping"), 5.0)
                    except (asyncio.TimeoutError, RedisError, OSError):
                        pass
        # Let the pumps publish what their shards had queued before the close (bounded wait).
        pending = [link.task for link in self._links.values() if link.task is not None and not link.task.done()]
        if pending:
            await asyncio.wait(pending, timeout=5.0)
        for task in self._tasks:
            task.cancel()
        for _ in range(10):
            alive = [task for task in self._tasks if not task.done()]
            if not alive:
                break
            for task in alive:
                task.cancel()
            await asyncio.wait(alive, timeout=1.0)
        await self._publisher.stop()
        for link in self._links.values():
            if link.shard is not None and not link.shard.closed:
                await link.shard.close(4000)
        await self._client.aclose()
        await self._command_client.aclose()

    def __repr__(self) -> str:
        return (f"RedisForwarder({redact_url(self._url)!r}, shards={list(self._links)}, count={self._count}, "
                f"prefix={self._keys.prefix!r})")
