"""``ShardGroup``: every shard of a bot (or this process's part of them) in one event loop, with one merged stream.

The coordination decisions live in sans-I/O cores with time passed in: the identify budget in
:class:`gateway.ratelimit.IdentifyScheduler` (one IDENTIFY per bucket ``shard_id % max_concurrency`` per 5 s across
the whole group, re-identifies included; RESUMEs use no slot; every IDENTIFY spends one of ``session_start_limit``'s
``remaining``, and a spent budget waits for ``reset_after`` and a fresh ``GET /gateway/bot``), and the generations
and the resharding switch in :class:`gateway.fleet.FleetCore`. This module is the thin asyncio driver.

Merged stream: every shard appends its events to one deque owned by the group and wakes the group's one waiter, in
the same socket callback that decoded them (see ``Shard._attach_to_group``): no task, queue hop or copy per event
compared with a single Shard. Each shard appends in its own order, so per-shard order and exactly-once delivery
(replay dedupe after RESUME) are the Shard's; events of different shards interleave in arrival order.

Decisions:

- ``close()`` keeps the sessions (close code 4000, saved to ``session_store``) when a store is configured, else ends
  them (1000); ``close(resumable=...)`` chooses explicitly. A session store is cleared on a non-resumable close.
- Resharding (``reshard()``, close 4011, ``reshard_check_interval``): a new generation identifies alongside the old
  one through the same identify budget and delivers nothing until every one of its shards has been READY. At that
  instant delivery switches: what the old generation received before the switch is delivered (also what is still
  queued), nothing after; what the new generation receives from the switch on is delivered, nothing before (its
  READYs and early GUILD_CREATEs included; the old generation delivered the same guilds' updates meanwhile). The old
  shards close with 1000. An event Discord sends to both generations in the last moments can therefore be seen
  twice or not at all; the window is the difference of two sockets' delivery times in one process.
- 4011 reshards to Discord's recommended count, or to twice the count when the recommendation is not higher. A group
  running a part of a bot's shards (``shard_ids``) cannot pick the other processes' parts, so 4011 is fatal for it.
- Any other fatal close (4004, 4010, 4012, 4013, 4014) on one shard closes the group (1000) and ``events()`` raises
  :class:`FatalCloseError` with ``shard_id`` after the events already queued.
- ``update_presence`` also becomes the IDENTIFY presence of shards started later (reshards).
- Within a bucket the default identify queue lets the lowest shard id go first, so shards identify in id order
  (0-15, then 16-31, ... with max_concurrency 16) as Discord asks.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping
from types import MappingProxyType
from typing import Any

from . import commands
from .errors import FatalCloseError, ShardClosedError
from .event import Event
from .fleet import FleetCore, Generation, StopVerdict, check_shard_count, check_shard_ids, count_after_sharding_required
from .flags import FLAG_BY_NAME, EventTypeFlags
from .http import DEFAULT_API_URL, GatewayInfo, RetryPolicy, SessionStartLimit, fetch_gateway_info
from .models import Latency, ShardId, ShardStatus
from .protocol import Token
from .ratelimit import IDENTIFY_DELAY, IdentifyQueue, IdentifyQueueProtocol
from .sessions import SavedSession, SessionStore
from .shard import Shard

__all__ = ["ShardGroup", "SHARD_OPTIONS", "GROUP_IDENTIFY_DELAY"]

logger = logging.getLogger("gateway.group")

#: Keyword options a group passes on to each of its shards.
SHARD_OPTIONS = frozenset({
    "large_threshold", "presence", "properties", "max_inflated_size", "max_message_size", "ssl", "connect_timeout",
    "ratelimit_commands", "rng", "_twins",
})
#: The default bucket window of a group's identify queue: Discord's 5 s plus 0.25 s for the time between a grant and
#: the IDENTIFY reaching Discord, which grows while a starting group's loop is busy (handshakes, READYs, GUILD_CREATE
#: bursts): an IDENTIFY sent late after one grant must not arrive less than 5 s before the next one.
GROUP_IDENTIFY_DELAY = IDENTIFY_DELAY + 0.25
_UNKNOWN_FLAG = FLAG_BY_NAME["UNKNOWN"]
_NOTHING = 0  # the filter of shards that must not deliver (a pending or retired generation)


def _flag_of(name: str) -> int:
    return FLAG_BY_NAME.get(name, _UNKNOWN_FLAG)


def _positive_seconds(value: object, what: str, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number of seconds, not {type(value).__name__}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{what} must be a finite number of seconds {'>=' if allow_zero else '>'} 0, got {value}")
    return float(value)


class ShardGroup:
    """Runs a bot's shards (all of ``range(shard_count)`` or this process's ``shard_ids``) in one event loop.

    ``shard_count``: None takes Discord's recommended count from ``GET /gateway/bot`` (``api_url``);
    ``gateway_url``: None takes the URL from the same answer. ``identify_queue``: None builds an
    :class:`~gateway.ratelimit.IdentifyQueue` with the answer's ``max_concurrency``, fed by its
    ``session_start_limit`` and refreshed when the budget is spent (``identify_delay``: the bucket window,
    ``GROUP_IDENTIFY_DELAY`` = 5.25 s; shorten it only against a fake gateway). ``session_store``: where ``close()`` saves the sessions and ``start()``
    loads them to RESUME instead of IDENTIFY. ``reshard_check_interval``: seconds between checks of the recommended
    count (None: never); a higher one starts a reshard. ``http_retry``: retry bounds of ``GET /gateway/bot``.
    Other keyword options go to every :class:`Shard` (``large_threshold``, ``presence``, ``properties``,
    ``max_inflated_size``, ``max_message_size``, ``ssl``, ``connect_timeout``, ...).

    Raises TypeError/ValueError at construction for invalid arguments (never showing the token).
    """

    def __init__(
        self,
        token: str,
        intents: int,
        *,
        shard_count: int | None = None,
        shard_ids: Iterable[int] | None = None,
        api_url: str = DEFAULT_API_URL,
        gateway_url: str | None = None,
        compression: str | None = "zstd-stream",
        event_types: int = EventTypeFlags.all(),
        identify_queue: IdentifyQueueProtocol | None = None,
        session_store: SessionStore | None = None,
        identify_delay: float = GROUP_IDENTIFY_DELAY,
        reshard_check_interval: float | None = None,
        http_retry: RetryPolicy | None = None,
        **shard_options: Any,
    ) -> None:
        self._token = Token(token)
        if isinstance(intents, bool) or not isinstance(intents, int):
            raise TypeError(f"intents must be an int (Intents), not {type(intents).__name__}")
        self._intents = int(intents)
        self._requested_count = None if shard_count is None else check_shard_count(shard_count)
        self._requested_ids = None if shard_ids is None else check_shard_ids(shard_ids, self._requested_count)
        if not isinstance(api_url, str) or not api_url.startswith(("http://", "https://")):
            raise ValueError(f"api_url must be an http:// or https:// URL, got {api_url!r}")
        if gateway_url is not None and (not isinstance(gateway_url, str)
                                        or not gateway_url.startswith(("ws://", "wss://"))):
            raise ValueError(f"gateway_url must be a ws:// or wss:// URL or None, got {gateway_url!r}")
        if isinstance(event_types, bool) or not isinstance(event_types, int):
            raise TypeError(f"event_types must be EventTypeFlags, not {type(event_types).__name__}")
        if identify_queue is not None and not isinstance(identify_queue, IdentifyQueueProtocol):
            raise TypeError(f"identify_queue must have an async wait_turn(shard_id), not {type(identify_queue).__name__}")
        if session_store is not None and not isinstance(session_store, SessionStore):
            raise TypeError(f"session_store must implement SessionStore (load/save/clear), not "
                            f"{type(session_store).__name__}")
        self._identify_delay = _positive_seconds(identify_delay, "identify_delay", allow_zero=True)
        self._check_interval = (None if reshard_check_interval is None
                                else _positive_seconds(reshard_check_interval, "reshard_check_interval"))
        if http_retry is not None and not isinstance(http_retry, RetryPolicy):
            raise TypeError(f"http_retry must be a RetryPolicy, not {type(http_retry).__name__}")
        unknown = sorted(set(shard_options) - SHARD_OPTIONS)
        if unknown:
            raise TypeError(f"unexpected option(s) {', '.join(map(repr, unknown))}; a group passes on only "
                            f"{', '.join(sorted(name for name in SHARD_OPTIONS if not name.startswith('_')))}")
        presence = shard_options.pop("presence", None)
        # Build (and drop) one shard now so that bad shard options fail here, not at start().
        Shard(ShardId(0, 1), self._token.reveal(), self._intents, compression=compression, presence=presence,
              event_types=event_types, **shard_options)
        self._presence: Any = presence
        self._api_url = api_url
        self._gateway_url = gateway_url
        self._compression = compression
        self._wanted = int(EventTypeFlags(int(event_types)))
        self._identify_queue: IdentifyQueueProtocol | None = identify_queue
        self._own_queue: IdentifyQueue | None = None
        self._store = session_store
        self._http_retry = http_retry
        self._shard_options = shard_options

        self._loop: asyncio.AbstractEventLoop | None = None
        self._core: FleetCore | None = None
        self._info: GatewayInfo | None = None
        self._url_in_use: str | None = None
        self._shards: dict[int, Shard] = {}
        self._pending: dict[int, Shard] = {}
        self._queue: deque[Event] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._fatal: FatalCloseError | None = None
        self._started = False
        self._closing = False
        self._closed = False
        self._closed_event: asyncio.Event | None = None
        self._switched: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()  # background work, cancelled by close()
        self._closers: set[asyncio.Task[Any]] = set()  # closing retired shards, awaited by close()
        self.fetches = 0
        """How many times ``GET /gateway/bot`` answered (start, budget refresh, reshard, periodic check)."""

    # -- state ---------------------------------------------------------------------------------------------------

    @property
    def shard_count(self) -> int:
        """The shard count of the delivering generation (known once :meth:`start` fetched it)."""
        if self._core is not None:
            return self._core.current.shard_count
        if self._requested_count is not None:
            return self._requested_count
        raise RuntimeError("the shard count is known once the group has started (it is Discord's recommended count)")

    @property
    def shards(self) -> Mapping[int, Shard]:
        """The delivering shards by number (read-only; use them for ``send``, ``status``, ``session``...)."""
        return MappingProxyType(self._shards)

    @property
    def status(self) -> dict[int, ShardStatus]:
        """Each delivering shard's status."""
        return {number: shard.status for number, shard in self._shards.items()}

    @property
    def latency(self) -> dict[int, Latency]:
        """Each delivering shard's heartbeat latency."""
        return {number: shard.latency for number, shard in self._shards.items()}

    @property
    def gateway_info(self) -> GatewayInfo | None:
        """The last answer of ``GET /gateway/bot`` (None before start)."""
        return self._info

    @property
    def identify_queue(self) -> IdentifyQueueProtocol | None:
        """The identify queue every shard of the group shares (None before start unless one was given)."""
        return self._identify_queue

    @property
    def generation(self) -> int:
        """The delivering generation's number: 0 at start, +1 at each completed reshard."""
        return self._core.current.number if self._core is not None else 0

    @property
    def resharding(self) -> bool:
        """True while a new generation identifies alongside the delivering one."""
        return self._core is not None and self._core.resharding

    @property
    def queued_events(self) -> int:
        """Events received and not yet taken from :meth:`events`."""
        return len(self._queue)

    @property
    def closed(self) -> bool:
        return self._closed

    def shard_for_guild(self, guild_id: int | str) -> int:
        """The number of the shard that receives ``guild_id``'s events: ``(guild_id >> 22) % shard_count``."""
        return (int(commands.snowflake(guild_id, "guild_id")) >> 22) % self.shard_count

    def __repr__(self) -> str:
        count = self._core.current.shard_count if self._core is not None else self._requested_count
        state = "closed" if self._closed else "closing" if self._closing else "running" if self._started else "new"
        return (f"<ShardGroup {state} shard_count={count} shards={len(self._shards)} generation={self.generation}"
                f"{' resharding' if self.resharding else ''} queued={len(self._queue)}>")

    # -- lifecycle -----------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Fetch ``GET /gateway/bot``, build the shards (resuming the sessions the store holds for this count) and
        start them in id order; returns without waiting for READY. Calling it again is a no-op.

        Raises :class:`~gateway.errors.AuthenticationError` (401), :class:`~gateway.errors.HTTPError`, ValueError
        when ``shard_ids`` do not fit the recommended count, ShardClosedError once closed.
        """
        if self._closed or self._closing:
            raise ShardClosedError("the group is closed")
        if self._started:
            return
        self._started = True
        try:
            await self._start()
        except BaseException:
            self._started = False
            raise

    async def _start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._closed_event = asyncio.Event()
        info = await self._fetch_info()
        count = self._requested_count if self._requested_count is not None else info.shards
        ids = (check_shard_ids(self._requested_ids, count) if self._requested_ids is not None else tuple(range(count)))
        self._url_in_use = self._gateway_url or info.url
        if self._identify_queue is None:
            limit = info.session_start_limit
            queue = IdentifyQueue(limit.max_concurrency, delay=self._identify_delay, order="shard",
                                  refresh=self._refresh_session_start_limit)
            queue.apply(limit)
            self._own_queue = queue
            self._identify_queue = queue
            if limit.remaining < len(ids):
                logger.warning("%d shards to start and %d of %d session starts left: the rest waits for the reset",
                               len(ids), limit.remaining, limit.total)
        core = FleetCore(count, ids, owns_all_shards=self._requested_ids is None)
        saved = await self._store.load(count) if self._store is not None else {}
        if self._closing:
            return  # close() was called while we fetched: it has already finished the group
        self._core = core
        self._shards = self._build(core.current, saved, deliver=True)
        logger.info("starting %d of %d shards (%d to resume)", len(ids), count,
                    sum(1 for number in ids if number in saved))
        for shard in self._shards.values():
            shard.start()
        if self._check_interval is not None:
            self._spawn(self._check_recommended_count(self._check_interval))

    async def close(self, resumable: bool | None = None) -> None:
        """Close every shard and wait until they are gone.

        ``resumable`` (default: True when a session store is configured): close with 4000 and save
        ``{shard_id: SavedSession}`` under the shard count to the store, so that a new group with the same store
        and count RESUMEs every shard; False closes with 1000 (the sessions end) and clears the store. A pending
        reshard is abandoned (its shards close with 1000). Events already queued can still be read; then
        ``events()`` ends. Calling it again waits for the first call.
        """
        if resumable is not None and not isinstance(resumable, bool):
            raise TypeError(f"resumable must be a bool or None, not {type(resumable).__name__}")
        if self._closing:
            if self._closed_event is not None:
                await self._closed_event.wait()
            return
        self._closing = True
        if not self._started or self._core is None:
            self._finish_close()
            return
        keep = self._store is not None if resumable is None else resumable
        core = self._core
        core.begin_close()
        for task in list(self._tasks):
            task.cancel()
        pending, current = list(self._pending.values()), list(self._shards.values())
        self._pending = {}
        closes = [shard.close(1000) for shard in pending]
        closes += [shard.close(4000 if keep else 1000) for shard in current]
        try:
            await asyncio.gather(*closes, *self._closers)
            if self._store is not None:
                if keep:
                    sessions = {
                        number: SavedSession(shard.session, shard.resume_url)
                        for number, shard in self._shards.items()
                        if shard.session is not None
                    }
                    await self._store.save(core.current.shard_count, sessions)
                    logger.info("saved %d sessions of %d shards to %r", len(sessions), core.current.shard_count, self._store)
                else:
                    await self._store.clear(core.current.shard_ids)
        finally:
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            self._finish_close()

    def _finish_close(self) -> None:
        if self._own_queue is not None:
            self._own_queue.close()
        self._closed = True
        if self._switched is not None and not self._switched.done():
            self._switched.set_exception(ShardClosedError("the group closed before the reshard completed"))
            self._switched.exception()  # retrieved: nobody may be awaiting it
        if self._closed_event is not None:
            self._closed_event.set()
        self._wake()

    async def __aenter__(self) -> ShardGroup:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- receiving -----------------------------------------------------------------------------------------------

    async def events(self, event_types: int | None = None) -> AsyncIterator[Event]:
        """Yield the events of every delivering shard (``event.shard_id`` says which) until the group is closed.

        ``event_types`` replaces the filter of every shard. Raises FatalCloseError (``.code``, ``.shard_id``) after
        the queued events once a fatal close code ended the group. Starts the group if needed.
        """
        if event_types is not None:
            self.set_event_types(event_types)
        if not self._started:
            await self.start()
        queue = self._queue
        loop = asyncio.get_running_loop()
        while True:
            if queue:
                yield queue.popleft()
                continue
            if self._fatal is not None:
                raise self._copy_fatal()
            if self._closed:
                return
            waiter = self._waiter = loop.create_future()
            await waiter

    async def next_event(self, event_types: int | None = None) -> Event:
        """The next event of any delivering shard; ShardClosedError once closed and drained, FatalCloseError."""
        if event_types is not None:
            self.set_event_types(event_types)
        if not self._started:
            await self.start()
        queue = self._queue
        while True:
            if queue:
                return queue.popleft()
            if self._fatal is not None:
                raise self._copy_fatal()
            if self._closed:
                raise ShardClosedError("the group is closed")
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            await waiter

    def set_event_types(self, event_types: int) -> None:
        """Replace the filter of every delivering shard; queued events it rejects are dropped."""
        if isinstance(event_types, bool) or not isinstance(event_types, int):
            raise TypeError(f"event_types must be EventTypeFlags, not {type(event_types).__name__}")
        wanted = int(EventTypeFlags(int(event_types)))
        if wanted == self._wanted:
            return
        self._wanted = wanted
        for shard in self._shards.values():
            shard._set_wanted(wanted)
        queue = self._queue
        if queue:
            kept = [event for event in queue if _flag_of(event.name) & wanted]
            queue.clear()  # in place: the shards hold this deque
            queue.extend(kept)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _copy_fatal(self) -> FatalCloseError:
        assert self._fatal is not None
        error = FatalCloseError(self._fatal.code, self._fatal.reason)
        error.shard_id = self._fatal.shard_id  # type: ignore[attr-defined]
        return error

    # -- sending -------------------------------------------------------------------------------------------------

    async def send(self, shard_id: int, payload: Mapping[str, Any] | bytes) -> None:
        """Send a command on shard ``shard_id`` (see :meth:`Shard.send`); ValueError if this group does not run it."""
        await self._shard(shard_id).send(payload)

    async def update_presence(self, status: str = "online", **options: Any) -> None:
        """op 3 on every shard (pending ones of a reshard too); later shards IDENTIFY with it. Arguments as
        :func:`gateway.commands.update_presence`."""
        payload = commands.update_presence(status, **options)
        self._presence = payload["d"]
        for shard in [*self._shards.values(), *self._pending.values()]:
            if not shard.closed:
                await shard.send(payload)

    def _shard(self, shard_id: int) -> Shard:
        if isinstance(shard_id, bool) or not isinstance(shard_id, int):
            raise TypeError(f"shard_id must be an int, not {type(shard_id).__name__}")
        shard = self._shards.get(shard_id)
        if shard is None:
            if not self._started:
                raise RuntimeError("the group has not started")
            raise ValueError(f"shard {shard_id} is not run by this group (it runs {len(self._shards)} of "
                             f"{self.shard_count}: {_ranges(self._shards)})")
        return shard

    # -- resharding ----------------------------------------------------------------------------------------------

    async def reshard(self, shard_count: int | None = None, *, shard_ids: Iterable[int] | None = None) -> bool:
        """Move to ``shard_count`` shards (None: Discord's recommended count) with no downtime: a new generation
        identifies alongside the delivering one and takes over when all its shards are READY (see the module
        docstring for what the stream shows around the switch). Returns when the switch is done: True, or False
        when the count and ids are already the current ones.

        A group running a part of the shards needs the new part: ``shard_ids``. A reshard started while another
        is pending replaces it. Raises ShardClosedError if the group closes first, RuntimeError before start.
        """
        if not self._started or self._core is None:
            raise RuntimeError("the group has not started")
        if self._closing:
            raise ShardClosedError("the group is closed")
        if shard_count is None:
            shard_count = (await self._fetch_info()).shards
        count = check_shard_count(shard_count)
        if shard_ids is None and not self._core.owns_all_shards:
            raise ValueError("this group runs a part of the shards: pass the part it should run under the new count "
                             "(shard_ids)")
        ids = check_shard_ids(range(count) if shard_ids is None else shard_ids, count)
        current = self._core.current
        if count == current.shard_count and ids == current.shard_ids and not self._core.resharding:
            return False
        self._begin_reshard(count, ids)
        assert self._switched is not None
        await asyncio.shield(self._switched)
        return True

    def _begin_reshard(self, count: int, ids: tuple[int, ...]) -> None:
        assert self._core is not None and self._loop is not None
        generation, aborted = self._core.begin_reshard(count, ids)
        if aborted is not None:
            logger.warning("reshard to %d shards abandoned for a reshard to %d", aborted.shard_count, count)
            self._close_later(list(self._pending.values()), 1000)
        if self._switched is None or self._switched.done():
            self._switched = self._loop.create_future()
        logger.info("resharding from %d to %d shards: the new generation identifies alongside",
                    self._core.current.shard_count, count)
        self._pending = self._build(generation, {}, deliver=False)
        for shard in self._pending.values():
            shard.start()

    def _switch(self) -> None:
        assert self._core is not None
        old_generation = self._core.switch()
        old, new = self._shards, self._pending
        for shard in old.values():
            shard._set_wanted(_NOTHING)  # from this instant the old generation delivers nothing more
        for shard in new.values():
            shard._set_wanted(self._wanted)
        self._shards, self._pending = new, {}
        logger.info("reshard done: %d shards deliver (generation %d); closing the %d of generation %d",
                    self._core.current.shard_count, self._core.current.number, len(old), old_generation.number)
        self._close_later(list(old.values()), 1000)
        if self._switched is not None and not self._switched.done():
            self._switched.set_result(None)

    async def _reshard_after_sharding_required(self, generation: Generation, number: int,
                                               error: FatalCloseError) -> None:
        try:
            info = await self._fetch_info()
        except Exception as exc:  # without Discord's recommendation the group cannot pick a count: 4011 stands
            logger.error("close 4011 on shard %d and GET /gateway/bot failed (%s)", number, type(exc).__name__)
            self._fail(number, error)
            return
        assert self._core is not None
        count = count_after_sharding_required(generation.shard_count, info.shards)
        logger.warning("close 4011 (sharding required) at %d shards: resharding to %d", generation.shard_count, count)
        self._begin_reshard(count, tuple(range(count)))

    async def _check_recommended_count(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                info = await self._fetch_info()
            except Exception as exc:
                logger.warning("periodic GET /gateway/bot failed (%s); next check in %.0f s", type(exc).__name__, interval)
                continue
            core = self._core
            if core is None or core.resharding or not core.owns_all_shards:
                continue
            if info.shards > core.current.shard_count:
                logger.info("Discord recommends %d shards (running %d): resharding", info.shards,
                            core.current.shard_count)
                self._begin_reshard(info.shards, tuple(range(info.shards)))

    def _attach_replay(self, loop: asyncio.AbstractEventLoop, shard_count: int) -> dict[int, Shard]:
        """Benchmarks only (``bench/group.py``): build ``shard_count`` delivering shards bound to ``loop`` without
        fetching anything or opening sockets (each as ``Shard._attach_replay``); feed them with
        ``shard._on_message(opcode, message)`` and read :meth:`next_event`/:meth:`events`."""
        self._loop = loop
        self._started = True
        self._url_in_use = self._gateway_url or "ws://127.0.0.1:1"
        if self._identify_queue is None:
            self._identify_queue = IdentifyQueue(0)
        self._core = FleetCore(shard_count, range(shard_count), owns_all_shards=True)
        self._shards = self._build(self._core.current, {}, deliver=True)
        for shard in self._shards.values():
            shard._attach_replay(loop)
        return self._shards

    # -- internals -----------------------------------------------------------------------------------------------

    async def _fetch_info(self) -> GatewayInfo:
        info = await fetch_gateway_info(self._token, api_url=self._api_url, retry=self._http_retry)
        self._info = info
        self.fetches += 1
        return info

    async def _refresh_session_start_limit(self) -> SessionStartLimit:
        return (await self._fetch_info()).session_start_limit

    def _build(self, generation: Generation, saved: Mapping[int, SavedSession], *, deliver: bool) -> dict[int, Shard]:
        assert self._url_in_use is not None
        shards: dict[int, Shard] = {}
        for number in generation.shard_ids:
            resume = saved.get(number)
            shard = Shard(
                ShardId(number, generation.shard_count), self._token.reveal(), self._intents,
                gateway_url=self._url_in_use, compression=self._compression,
                event_types=self._wanted if deliver else _NOTHING, presence=self._presence,
                session=resume.session if resume is not None else None,
                resume_url=resume.resume_url if resume is not None else None,
                identify_queue=self._identify_queue, **self._shard_options,
            )
            shard._attach_to_group(self._queue, self._wake, functools.partial(self._on_shard_step, generation, number))
            shards[number] = shard
        return shards

    def _on_shard_step(self, generation: Generation, number: int, shard: Shard) -> None:
        """Runs after every protocol step of a shard of ``generation`` and when it stops."""
        core = self._core
        if core is None:
            return
        if shard.closed:
            error = shard.fatal_error
            verdict = core.shard_stopped(generation, number, error.code if error is not None else None)
            if verdict is StopVerdict.FATAL and error is not None:
                self._fail(number, error)
            elif verdict is StopVerdict.RESHARD and error is not None:
                self._spawn(self._reshard_after_sharding_required(generation, number, error))
            return
        if number not in generation.ready and shard.status is ShardStatus.ACTIVE:
            if core.shard_ready(generation, number):
                self._switch()

    def _fail(self, number: int, error: FatalCloseError) -> None:
        if self._fatal is not None:
            return
        fatal = FatalCloseError(error.code, error.reason)
        fatal.shard_id = number  # type: ignore[attr-defined]
        self._fatal = fatal
        logger.error("shard %d closed with fatal code %d: closing the group", number, error.code)
        self._wake()
        loop = self._loop
        assert loop is not None
        task = loop.create_task(self.close(resumable=False))
        task.add_done_callback(_log_failure)

    def _spawn(self, coroutine: Any) -> None:
        assert self._loop is not None
        task = self._loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_failure)

    def _close_later(self, shards: list[Shard], code: int) -> None:
        async def close_all() -> None:
            await asyncio.gather(*(shard.close(code) for shard in shards))

        assert self._loop is not None
        task = self._loop.create_task(close_all())
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)
        task.add_done_callback(_log_failure)


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("group task failed: %r", task.exception())


def _ranges(shards: Mapping[int, Shard]) -> str:
    """``"0-3, 7"`` for shards 0, 1, 2, 3 and 7."""
    spans: list[list[int]] = []
    for number in sorted(shards):
        if spans and spans[-1][1] == number - 1:
            spans[-1][1] = number
        else:
            spans.append([number, number])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans) or "none"
