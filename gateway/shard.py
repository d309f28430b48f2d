"""``Shard``: the asyncio driver of one gateway connection (the sans-I/O decisions live in ``gateway.protocol``).

The driver owns the websocket connection (``gateway._connection``), the receive path (``gateway._receive``: inflate,
envelope scan, event filter), one timer, the identify-queue wait and the event queue. It follows the contract in
``gateway/protocol.py``: after every input to :class:`~gateway.protocol.ShardProtocol` it writes
``data_to_send()``, carries out ``actions()`` and re-arms its timer at ``next_deadline()``.

Messages are handled synchronously in the socket's ``data_received`` callback: inflate, scan, hand the envelope to
the protocol, and queue an :class:`~gateway.event.Event` if the user's filter wants it. No task or future is created
per message; ``data`` is decoded only when the user reads it.

Decisions:

- The connection starts on the first ``next_event()``/``events()`` call (or an explicit :meth:`Shard.start`).
- The event-type filter is the shard's: ``events(flags)``/``next_event(flags)`` replace it; it applies to what is
  received from then on and to what is queued. Events the filter rejects are never JSON-decoded.
- The event queue is unbounded (an event is never dropped); ``queued_events`` tells how far the consumer is behind.
  Reading is not paused when it grows, because a paused socket would hold back heartbeat ACKs and end in a false
  zombie verdict.
- ``GATEWAY_CLOSE`` events (op ``-1``) report each closed connection: ``data == {"code": int | None, "reason": str}``
  (``code`` None for a dropped TCP connection).
- Shards of one event loop share one :class:`~gateway.ratelimit.IdentifyQueue` (max_concurrency 1) unless given
  their own; give every shard of a bot the same queue built with the bot's ``max_concurrency``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl as ssl_module
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from types import ModuleType
from typing import Any

from . import _envelope, _framing, _json, commands
from ._connection import GatewayConnection, open_connection
from ._framing import OP_CLOSE, OP_TEXT
from ._inflate import DEFAULT_MAX_INFLATED_SIZE
from ._receive import Receiver
from .errors import CompressionError, ConnectError, FatalCloseError, PayloadError, ShardClosedError
from .event import Event
from .flags import FLAG_BY_NAME, EventTypeFlags
from .models import Latency, Session, ShardId, ShardStatus
from .protocol import (
    CONNECT_TIMEOUT,
    DEFAULT_LARGE_THRESHOLD,
    DELIVER,
    GATEWAY_URL,
    PUMP,
    Abort,
    CancelIdentify,
    Close,
    Connect,
    RequestIdentify,
    ShardProtocol,
    Stop,
)
from .ratelimit import CommandRateLimiter, IdentifyQueue, IdentifyQueueProtocol

__all__ = ["Shard"]

logger = logging.getLogger("gateway.shard")

_UNKNOWN_FLAG = FLAG_BY_NAME["UNKNOWN"]
_CLOSE_FLAG = FLAG_BY_NAME["GATEWAY_CLOSE"]
_DEFAULT_QUEUES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, IdentifyQueue] = weakref.WeakKeyDictionary()


# The permanent ``_waiter`` of a shard in a group: never awaited (the group's stream has its own waiter).
_GROUP_WAITER: Any = object()


def _loop_clock(loop: asyncio.AbstractEventLoop) -> Callable[[], float]:
    """``loop.time``, or ``time.monotonic`` itself when that is all ``loop.time`` does (asyncio's own loops): one
    Python call less per received message. Other loops (uvloop) keep their own clock."""
    if getattr(type(loop), "time", None) is asyncio.BaseEventLoop.time and "time" not in getattr(loop, "__dict__", {}):
        return time.monotonic
    return loop.time


def _default_identify_queue(loop: asyncio.AbstractEventLoop) -> IdentifyQueue:
    queue = _DEFAULT_QUEUES.get(loop)
    if queue is None:
        queue = _DEFAULT_QUEUES[loop] = IdentifyQueue(1)
    return queue


def _close_event(code: int | None, reason: str, shard_id: int, event_type: type[Event] = Event) -> Event:
    body = _json.dumps({"code": code, "reason": reason})
    raw = b'{"op":-1,"d":' + body + b"}"
    return event_type("GATEWAY_CLOSE", -1, None, raw, 13, 13 + len(body), shard_id)


def _flag_of(name: str) -> int:
    return FLAG_BY_NAME.get(name, _UNKNOWN_FLAG)


class Shard:
    """One gateway shard: connects, identifies or resumes, heartbeats, reconnects, and yields events.

    ``compression``: ``"zstd-stream"`` (default), ``"zlib-stream"`` or None. ``event_types``: the initial filter
    (all events). ``session``/``resume_url``: a saved session (``Session.from_json(...)``) to resume after a restart.
    ``identify_queue``: shared between the shards of a bot. ``max_inflated_size``: ceiling for one decompressed
    payload. ``max_message_size``: ceiling for one websocket message (None: no limit beyond the inflation ceiling).
    ``ssl``: TLS context for ``wss://`` (default: certificates verified).

    Raises TypeError/ValueError at construction for invalid arguments (see :class:`~gateway.protocol.ShardProtocol`).
    The token is never logged or shown in a repr or exception message.
    """

    def __init__(
        self,
        shard_id: ShardId,
        token: str,
        intents: int,
        *,
        gateway_url: str = GATEWAY_URL,
        compression: str | None = "zstd-stream",
        event_types: int = EventTypeFlags.all(),
        large_threshold: int = DEFAULT_LARGE_THRESHOLD,
        presence: Mapping[str, Any] | None = None,
        properties: Mapping[str, str] | None = None,
        session: Session | None = None,
        resume_url: str | None = None,
        identify_queue: IdentifyQueueProtocol | None = None,
        max_inflated_size: int = DEFAULT_MAX_INFLATED_SIZE,
        max_message_size: int | None = None,
        ssl: ssl_module.SSLContext | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
        ratelimit_commands: bool = True,
        rng: Callable[[], float] = random.random,
        _twins: Mapping[str, ModuleType] | None = None,
    ) -> None:
        if identify_queue is not None and not isinstance(identify_queue, IdentifyQueueProtocol):
            raise TypeError(f"identify_queue must have an async wait_turn(shard_id), not {type(identify_queue).__name__}")
        if isinstance(connect_timeout, bool) or not isinstance(connect_timeout, (int, float)) or connect_timeout <= 0:
            raise ValueError("connect_timeout must be a positive number of seconds")
        self._proto = ShardProtocol(
            shard_id,
            token,
            intents,
            gateway_url=gateway_url,
            compression=compression,
            large_threshold=large_threshold,
            presence=presence,
            properties=properties,
            session=session,
            resume_url=resume_url,
            rng=rng,
            ratelimit_commands=ratelimit_commands,
        )
        self._number = shard_id.number
        self._wanted = int(EventTypeFlags(int(event_types)))
        self._receiver = Receiver(compression, self._wanted, max_inflated_size=max_inflated_size, twins=_twins)
        self._reader_factory = (_twins or {}).get("framing", _framing).FrameReader
        self._event_type: type[Event] = (_twins or {}).get("envelope", _envelope).Event
        self._identify_queue = identify_queue
        self._max_message_size = max_message_size
        self._ssl = ssl
        self._connect_timeout = float(connect_timeout)

        self._loop: asyncio.AbstractEventLoop | None = None
        self._clock: Callable[[], float] = time.monotonic  # the loop's clock, set with _loop (see _loop_clock)
        self._connection: GatewayConnection | None = None
        self._connect_task: asyncio.Task[None] | None = None
        self._identify_task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._queue: deque[Event] = deque()
        self._waiter: asyncio.Future[None] | None = None
        # What a new event wakes: this shard's own consumer, or (``_attach_to_group``) a group's merged stream.
        self._wake: Callable[[], None] = self._wake_consumer
        # Called (by a ShardGroup) after every protocol step and when the shard stops; None for a lone shard.
        self._group_hook: Callable[[Shard], None] | None = None
        self._started = False
        self._stopped = False
        self._fatal: FatalCloseError | None = None
        self._stopped_event: asyncio.Event | None = None
        self.connect_failures = 0
        """Connection attempts that failed (DNS, TCP, TLS, handshake, timeout) since the shard started."""
        self.last_connect_error: BaseException | None = None
        """The error of the last failed connection attempt (its message never contains the token), or None."""

    # -- state ---------------------------------------------------------------------------------------------------

    @property
    def id(self) -> ShardId:
        return self._proto.shard_id

    @property
    def status(self) -> ShardStatus:
        return self._proto.status

    @property
    def session(self) -> Session | None:
        """The session to resume (id and last sequence), or None; ``session.to_json()`` survives a restart."""
        return self._proto.session

    @property
    def resume_url(self) -> str | None:
        """Discord's ``resume_gateway_url`` for the current session, or None."""
        return self._proto.resume_url

    @property
    def latency(self) -> Latency:
        """Heartbeat round trips of the current connection (``recent`` newest first, ``average``)."""
        return self._proto.latency

    @property
    def payload_errors(self) -> int:
        """How many payloads were malformed (reported in the log and skipped): ones the envelope scan refused and
        ones the protocol refused (e.g. a READY without session_id, an op 9 whose d is not a boolean)."""
        return self._proto.payload_errors

    @property
    def pending_commands(self) -> int:
        """Commands sent with :meth:`send` that wait for the rate limiter or for the shard to be identified."""
        return self._proto.pending_commands

    @property
    def ratelimiter(self) -> CommandRateLimiter | None:
        """The current connection's command rate limiter (its methods take ``loop.time()``), or None."""
        return self._proto.ratelimiter

    @property
    def attempt(self) -> int:
        """Consecutive connections that failed or ended before READY/RESUMED (the backoff exponent)."""
        return self._proto.attempt

    @property
    def event_types(self) -> EventTypeFlags:
        """The current event-type filter."""
        return EventTypeFlags(self._wanted)

    @property
    def queued_events(self) -> int:
        """Events received and not yet taken by ``next_event``/``events``."""
        return len(self._queue)

    @property
    def closed(self) -> bool:
        """True once the shard has stopped (user close or fatal close code)."""
        return self._stopped

    @property
    def fatal_error(self) -> FatalCloseError | None:
        """The FatalCloseError that stopped the shard (a fatal close code), or None."""
        return self._fatal

    def __repr__(self) -> str:
        return f"<Shard {self._proto.shard_id} status={self._proto.status.name} queued={len(self._queue)}>"

    # -- lifecycle -----------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start connecting (needs a running event loop). Called by the first ``next_event``; calling again is a no-op.

        Raises ShardClosedError (or the FatalCloseError) once the shard has stopped.
        """
        if self._stopped:
            self._raise_stopped()
        if self._started:
            return
        self._loop = asyncio.get_running_loop()
        self._clock = _loop_clock(self._loop)
        self._stopped_event = asyncio.Event()
        if self._identify_queue is None:
            self._identify_queue = _default_identify_queue(self._loop)
        self._started = True
        self._proto.start(self._loop.time())
        self._pump()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the shard and wait until the connection is gone.

        Code 1000/1001 ends the session (the bot goes offline); any other code (e.g. 4000) keeps :attr:`session`
        resumable by a new Shard. Events already queued can still be taken; then ``events()`` ends and
        ``next_event()`` raises ShardClosedError.
        """
        if not self._started:
            # Stop the protocol too: send() must raise from now on, and 1000/1001 drop a restored session.
            self._proto.close(asyncio.get_running_loop().time(), code, reason)
            self._proto.actions()  # just Stop: nothing to carry out without a connection
            self._stopped = True
            self._wake()
            return
        assert self._loop is not None and self._stopped_event is not None
        self._proto.close(self._loop.time(), code, reason)
        self._pump()
        await self._stopped_event.wait()
        connection = self._connection
        if connection is not None:
            await connection.wait_closed()

    async def __aenter__(self) -> Shard:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- receiving -----------------------------------------------------------------------------------------------

    async def next_event(self, event_types: int | None = None) -> Event:
        """The next event the filter wants (``event_types`` replaces the filter when given).

        Raises FatalCloseError (``.code``) once a fatal close code ended the shard, ShardClosedError after
        :meth:`close` once the queue is empty.
        """
        if event_types is not None:
            self.set_event_types(event_types)
        if not self._started and not self._stopped:
            self.start()
        queue = self._queue
        while True:
            if queue:
                return queue.popleft()
            if self._stopped:
                self._raise_stopped()
            waiter = self._waiter
            if waiter is None:
                waiter = self._waiter = asyncio.get_running_loop().create_future()
            await waiter

    async def events(self, event_types: int | None = None) -> AsyncIterator[Event]:
        """Yield events the filter wants until the shard is closed; raises FatalCloseError on a fatal close code."""
        if event_types is not None:
            self.set_event_types(event_types)
        while True:
            queue = self._queue  # read each time: set_event_types replaces it
            if queue:  # next_event's first step, without a coroutine per event
                yield queue.popleft()
                continue
            try:
                event = await self.next_event()
            except ShardClosedError:
                return
            yield event

    async def next_raw(self, event_types: int | None = None) -> bytes:
        """The next wanted payload as decompressed JSON bytes, never decoded (for forwarding to other services)."""
        return (await self.next_event(event_types)).raw

    async def raw_events(self, event_types: int | None = None) -> AsyncIterator[bytes]:
        """Like :meth:`events`, yielding each payload's decompressed bytes."""
        async for event in self.events(event_types):
            yield event.raw

    def set_event_types(self, event_types: int) -> None:
        """Replace the event-type filter; queued events it rejects are dropped."""
        if isinstance(event_types, bool) or not isinstance(event_types, int):
            raise TypeError(f"event_types must be EventTypeFlags, not {type(event_types).__name__}")
        wanted = int(EventTypeFlags(int(event_types)))
        if wanted == self._wanted:
            return
        self._set_wanted(wanted)
        if self._queue:
            self._queue = deque(event for event in self._queue if _flag_of(event.name) & wanted)

    # -- sending -------------------------------------------------------------------------------------------------

    async def send(self, payload: Mapping[str, Any] | bytes) -> None:
        """Queue a command (a payload dict, e.g. from :mod:`gateway.commands`, or its JSON bytes).

        It is written as soon as the shard is identified and the command rate limiter (120 per 60 s, with slots kept
        for heartbeats) allows; it waits across reconnects and is never dropped. Raises ValueError for a payload over
        4096 bytes (nothing is sent), TypeError for another type, ShardClosedError/FatalCloseError once stopped.
        """
        now = self._loop.time() if self._loop is not None else asyncio.get_running_loop().time()
        self._proto.send_command(payload, now)
        if self._started:
            self._pump()

    async def request_guild_members(self, guild_id: int | str, **options: Any) -> None:
        """op 8; see :func:`gateway.commands.request_guild_members` for the options."""
        await self.send(commands.request_guild_members(guild_id, **options))

    async def update_presence(self, status: str = "online", **options: Any) -> None:
        """op 3; see :func:`gateway.commands.update_presence`."""
        await self.send(commands.update_presence(status, **options))

    async def update_voice_state(self, guild_id: int | str, channel_id: int | str | None, **options: Any) -> None:
        """op 4; see :func:`gateway.commands.update_voice_state`."""
        await self.send(commands.update_voice_state(guild_id, channel_id, **options))

    async def request_soundboard_sounds(self, guild_ids: int | str | Iterable[int | str]) -> None:
        """op 31; see :func:`gateway.commands.request_soundboard_sounds`."""
        await self.send(commands.request_soundboard_sounds(guild_ids))

    async def request_channel_info(self, guild_id: int | str, fields: Iterable[str] = ("status", "voice_start_time")) -> None:
        """op 43; see :func:`gateway.commands.request_channel_info`."""
        await self.send(commands.request_channel_info(guild_id, fields))

    # -- driver internals ----------------------------------------------------------------------------------------

    def _raise_stopped(self) -> None:
        if self._fatal is not None:
            raise FatalCloseError(self._fatal.code, self._fatal.reason, self._number)
        raise ShardClosedError("the shard is closed")

    def _set_wanted(self, wanted: int) -> None:
        """Replace the filter of what is received from now on (the queue is left as it is)."""
        self._wanted = wanted
        self._receiver.wanted = wanted

    def _attach_to_group(self, queue: deque[Event], wake: Callable[[], None], hook: Callable[[Shard], None]) -> None:
        """Hand this shard's events to a ShardGroup (before it starts): they are appended to the group's ``queue``
        and ``wake`` is called after each; ``hook(shard)`` runs after every protocol step and when the shard stops.
        The shard's own ``next_event``/``events`` are refused from then on (the group's stream owns the queue)."""
        if self._started:
            raise RuntimeError("a shard can only join a group before it starts")
        self._queue = queue
        self._wake = wake
        self._group_hook = hook
        # _on_message wakes only when a waiter is set: keep one set for good, so that every event calls ``wake``.
        self._waiter = _GROUP_WAITER

        def refuse(*_args: object, **_kwargs: object) -> Any:
            raise RuntimeError(f"shard {self._proto.shard_id} belongs to a ShardGroup: read group.events()")

        self.next_event = refuse  # type: ignore[method-assign]
        self.events = refuse  # type: ignore[method-assign]

    def _wake_consumer(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _pump(self) -> None:
        """Carry out the protocol's outputs: write its payloads, run its actions, re-arm the timer."""
        proto = self._proto
        data = proto.data_to_send()
        if data:
            connection = self._connection
            if connection is not None and not connection.closing:
                for payload in data:
                    connection.send(payload)
        for action in proto.actions():
            self._run(action)
        self._arm_timer(proto.next_deadline())
        if self._group_hook is not None:
            self._group_hook(self)

    def _run(self, action: object) -> None:
        loop = self._loop
        assert loop is not None
        if isinstance(action, Connect):
            self._connect_task = loop.create_task(self._connect(action.url))
        elif isinstance(action, RequestIdentify):
            self._identify_task = loop.create_task(self._wait_identify(action.shard_number))
        elif isinstance(action, CancelIdentify):
            if self._identify_task is not None:
                self._identify_task.cancel()
                self._identify_task = None
        elif isinstance(action, Close):
            if self._connection is not None:
                self._connection.close(action.code, action.reason)
        elif isinstance(action, Abort):
            if self._connection is not None:
                logger.debug("shard %s: dropping the connection (%s)", self._proto.shard_id, action.reason)
                self._connection.abort()
        elif isinstance(action, Stop):
            self._on_stop(action.error)

    def _arm_timer(self, deadline: float | None) -> None:
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None and self._loop is not None:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        assert self._loop is not None
        self._proto.handle_timer(self._loop.time())
        self._pump()

    async def _connect(self, url: str) -> None:
        loop = self._loop
        assert loop is not None
        self._receiver.reset()
        try:
            connection = await open_connection(
                url,
                on_message=self._on_message,
                on_messages=self._on_messages,
                on_close=self._on_connection_close,
                timeout=self._connect_timeout,
                ssl=self._ssl,
                max_message_size=self._max_message_size,
                _reader_factory=self._reader_factory,
            )
        except (ConnectError, OSError, ValueError) as exc:
            self._connect_task = None
            self.connect_failures += 1
            self.last_connect_error = exc
            logger.info("shard %s: connect failed: %s", self._proto.shard_id, exc)
            self._proto.connect_failed(loop.time(), exc)
            self._pump()
            return
        self._connect_task = None
        if self._stopped:
            connection.abort()
            return
        self._connection = connection
        self._proto.connection_opened(loop.time())
        self._pump()

    async def _wait_identify(self, shard_number: int) -> None:
        assert self._identify_queue is not None and self._loop is not None
        while True:
            try:
                await self._identify_queue.wait_turn(shard_number)
                break
            except Exception as exc:  # a custom queue (e.g. one backed by a service) failed: retry, never hang
                logger.warning("shard %s: identify queue failed (%s); retrying in 1 s", self._proto.shard_id,
                               type(exc).__name__)
                await asyncio.sleep(1.0)
        self._identify_task = None
        self._proto.identify_granted(self._loop.time())
        self._pump()

    def _on_messages(self, messages: list[tuple[int, bytes]], start: int) -> int:
        """GatewayConnection's batch callback: ``messages[start:]`` up to the first control frame, through the fast
        lane (``EventFilter.run``: inflate, scan and Event in C, no Python per message) while the protocol's
        ``fast_lane()`` allows it, else one by one through :meth:`_on_message`. Returns the index of the first
        message not handled (a control frame, the end, or the connection stopped being open). Must not raise."""
        proto = self._proto
        receiver = self._receiver
        queue = self._queue
        count = len(messages)
        index = start
        queued = len(queue)
        now = self._clock()
        try:
            while index < count:
                last = proto.fast_lane()
                if last is None:
                    opcode, message = messages[index]
                    if opcode >= OP_CLOSE:
                        return index
                    index += 1
                    self._on_message(opcode, message)
                else:
                    lane = receiver.filter
                    try:
                        pending = lane.run(messages, index, receiver.inflate, last, queue.append, self._number)
                    except Exception as exc:  # not expected: deliver (queue.append) failed
                        pending = None
                        self._unexpected(exc, b"", now, stream_suspect=False)
                    index = lane.position
                    if lane.sequence != last:
                        proto.dispatched(lane.sequence, now)
                    if pending is None:
                        if index < count and messages[index][0] >= OP_CLOSE:
                            return index
                        continue
                    if isinstance(pending, Exception):
                        self._inflate_failed(pending, messages[index - 1][1], now)
                    else:
                        self._on_payload(pending, now)
                connection = self._connection
                if connection is not None and connection.closing:
                    return index
            return index
        finally:
            if len(queue) != queued and self._waiter is not None:
                self._wake()

    def _on_message(self, opcode: int, message: bytes) -> None:
        """One websocket message, through the per-message path (see :meth:`_on_messages` for the fast lane). Must not
        raise (see GatewayConnection): only PayloadError and CompressionError are expected here; any other exception
        is a bug or a hostile payload reaching one, logged with its traceback by _unexpected."""
        now = self._clock()
        inflate = self._receiver.inflate
        if inflate is not None and opcode != OP_TEXT:
            try:
                payload = inflate(message)
            except Exception as exc:
                self._inflate_failed(exc, message, now)
                return
            if payload is None:
                return
        else:
            payload = message
        self._on_payload(payload, now)

    def _inflate_failed(self, error: Exception, message: bytes, now: float) -> None:
        if isinstance(error, CompressionError):
            self._proto.compression_error(error, now)
            self._pump()
        else:
            self._unexpected(error, message, now, stream_suspect=True)

    def _on_payload(self, payload: bytes, now: float) -> None:
        """One decompressed payload: scanned, given to the protocol, delivered when both want it."""
        proto = self._proto
        try:
            op, seq, name, d_start, d_end, wanted = self._receiver.scan(payload)
        except PayloadError as exc:
            proto.payload_error(exc, now)  # counts it in payload_errors
            return
        except Exception as exc:
            self._unexpected(exc, payload, now, stream_suspect=False)
            return
        try:
            flags = proto.receive(op, seq, name, payload, d_start, d_end, now)
            if flags & DELIVER and wanted:
                self._queue.append(self._event_type(name, op, seq, payload, d_start, d_end, self._number))
                if self._waiter is not None:
                    self._wake()
            if flags & PUMP:  # clear for a plain dispatch of a running session that released no command
                self._pump()
        except Exception as exc:
            self._unexpected(exc, payload, now, stream_suspect=False)

    def _unexpected(self, error: Exception, payload: bytes, now: float, *, stream_suspect: bool) -> None:
        """An exception _on_message does not expect: logged with its traceback, counted in ``payload_errors`` and
        the payload skipped; when it came out of the inflater (``stream_suspect``) the stream state is unknown, so
        the connection is replaced and the session resumed, as for a CompressionError."""
        logger.error("shard %s: unexpected %s while receiving a %d-byte message (a bug: please report it)",
                     self._proto.shard_id, type(error).__name__, len(payload), exc_info=error)
        self._proto.payload_errors += 1
        if stream_suspect:
            self._proto.compression_error(CompressionError(f"unexpected {type(error).__name__}"), now)
            self._pump()

    def _on_connection_close(self, code: int | None, reason: str) -> None:
        connection = self._connection
        self._connection = None
        # Ours only when we ended it and the peer sent no close frame of its own (an echo carries the peer's code).
        by_client = connection is None or (connection.closed_by_us and connection.close_received is None)
        if self._wanted & _CLOSE_FLAG:
            self._queue.append(_close_event(code, reason, self._number, self._event_type))
            self._wake()
        assert self._loop is not None
        self._proto.connection_lost(code, reason, self._loop.time(), initiated_by_client=by_client)
        self._pump()

    def _on_stop(self, error: FatalCloseError | None) -> None:
        self._stopped = True
        self._fatal = error
        if self._connect_task is not None:
            self._connect_task.cancel()
            self._connect_task = None
        if self._identify_task is not None:
            self._identify_task.cancel()
            self._identify_task = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._timer_at = None
        if self._connection is not None and not self._connection.closing:
            self._connection.close(1000)
        if self._stopped_event is not None:
            self._stopped_event.set()
        self._wake()
        if self._group_hook is not None:
            self._group_hook(self)

    def _attach_replay(self, loop: asyncio.AbstractEventLoop) -> None:
        """Benchmarks only (``bench/suite.py``): act as if a websocket had just opened, without a socket.

        Binds the shard to ``loop`` (which need not be running), starts the protocol and reports the connection as
        open, dropping the Connect action. The caller then feeds messages with ``_on_message(opcode, message)``:
        HELLO (the identify-queue wait then runs as a task when ``loop`` runs), READY, then recorded frames.
        """
        self._loop = loop
        self._clock = _loop_clock(loop)
        self._stopped_event = asyncio.Event()
        if self._identify_queue is None:
            self._identify_queue = _default_identify_queue(loop)
        self._started = True
        self._proto.start(loop.time())
        self._proto.actions()
        self._receiver.reset()
        self._proto.connection_opened(loop.time())
        self._pump()
