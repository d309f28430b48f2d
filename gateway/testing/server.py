"""A fake Discord gateway: a real websocket server on loopback that plays Discord's side of the protocol.

Use it to test a bot (or this package's ``Shard``) offline::

    async with FakeGateway(token="my-token", heartbeat_interval=41_250) as gw:
        shard = Shard(ShardId(0, 1), "my-token", intents, gateway_url=gw.url)
        ...
        identify = await gw.wait_for_op(2)            # the client's IDENTIFY payload
        seq = await gw.dispatch("MESSAGE_CREATE", {"id": "1", "content": "hi"})
        await gw.drop()                               # TCP drop: the client should resume
        resume = await gw.wait_for_op(6)

What it does by itself (gateway-spec.md sections 5-12 and 16): parses ``?v=10&encoding=json&compress=...``
(close 4012 for a bad version), compresses like Discord (``zlib-stream``: one deflate context per connection, every
payload ``Z_SYNC_FLUSH``-ed; ``zstd-stream``: one zstd context per connection, every payload flushed without ending
the frame; no compression: text frames), sends HELLO, checks IDENTIFY (4004 token, 4013/4014 intents, 4010 shard,
4005 second identify, 4003 payload before identify) and answers READY (``resume_gateway_url`` points back here, at
``resume_path``) plus optional GUILD_CREATEs, ACKs heartbeats, checks RESUME (unknown session -> op 9 false, seq
ahead of the server -> 4007), replays missed dispatches then RESUMED, keeps sessions across non-1000/1001 closes
and TCP drops, enforces 120 payloads per 60 s (4008), 4096 bytes per payload (4002), invalid JSON (4002) and
unknown opcodes (4001), and answers ops 4, 8, 31 and 43.

Many sessions at once (one per shard, or several per shard as Discord allows): the shard comes from IDENTIFY's
``shard`` (4010 for an id outside ``[0, n)``; shards of one bot may use different ``n`` at once, as the spec allows
for zero-downtime resharding), identify times are recorded per bucket ``shard_id % max_concurrency``
(``identify_times``), an IDENTIFY within ``identify_delay`` of its bucket's last one gets op 9 false and is recorded
in ``identify_violations``, and every accepted IDENTIFY spends one of ``session_start_limit.remaining``.
``connection_for_shard(i)`` / ``session_for_shard(i)`` and the ``shard=`` keyword of the scripting methods act on
one shard.

It also answers ``GET /api/v10/gateway/bot`` over plain HTTP on the same port (``api_url``) with this gateway's URL,
``recommended_shards``, ``max_concurrency`` and ``session_start_limit``, checks ``Authorization: Bot <token>``
(401 otherwise), can be told to fail (``fail_http(401 | 429 | 500, times, retry_after=...)``) and records every
request in ``http_requests`` (the Authorization value redacted).

Every ``wait_*`` method takes a ``timeout`` (seconds, default ``DEFAULT_TIMEOUT``) and raises ``TimeoutError``
when it expires. Everything stops cleanly when the ``async with`` block exits.
"""

from __future__ import annotations

import asyncio
import http
import json
import logging
import math
import re
import secrets
import zlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping, NamedTuple, Sequence
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

__all__ = [
    "DEFAULT_TIMEOUT",
    "DOCUMENTED_INTENTS",
    "PRIVILEGED_INTENTS",
    "FakeConnection",
    "FakeGateway",
    "FakeHTTPRequest",
    "FakeSession",
    "FakeSessionStartLimit",
    "IdentifyViolation",
    "ReceivedPayload",
]

logger = logging.getLogger("gateway.testing")


class _RedactSecrets(logging.Filter):
    """websockets logs request headers and frame contents at DEBUG: hide Authorization values and IDENTIFY/RESUME
    tokens (frames may be cut short, so a token runs to the closing quote or the end of the text)."""

    _PATTERNS = (
        (re.compile(r"(?i)(authorization:\s*(?:bot\s+)?)\S+"), r"\1<redacted>"),
        (re.compile(r'("token"\s*:\s*")[^"]*'), r"\1<redacted>"),
    )

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = message
        for pattern, replacement in self._PATTERNS:
            redacted = pattern.sub(replacement, redacted)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


#: The logger handed to websockets (its connection and handshake logs), with secrets redacted.
wire_logger = logging.getLogger("gateway.testing.wire")
wire_logger.addFilter(_RedactSecrets())

#: Default timeout (seconds) of every ``wait_*`` method and of awaited sends.
DEFAULT_TIMEOUT = 5.0
#: Every documented intent bit (spec section 11); other bits close the connection with 4013.
DOCUMENTED_INTENTS = 53608447
#: GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT.
PRIVILEGED_INTENTS = 33026

_SYNC_FLUSH_SUFFIX = b"\x00\x00\xff\xff"
_KNOWN_CLIENT_OPS = frozenset({1, 2, 3, 4, 6, 8, 31, 43})
# Server-initiated close codes after which the session cannot be resumed.
_SESSION_ENDING_CLOSE_CODES = frozenset({4004, 4007, 4009, 4010, 4011, 4012, 4013, 4014})
# A zlib block header with BTYPE=11 (reserved) and a zstd block header of reserved type 3: both always fail to inflate.
_CORRUPT_ZLIB = b"\xff\xff\xff\xff" + _SYNC_FLUSH_SUFFIX
_CORRUPT_ZSTD = b"\xff\xff\xff\xff\xff\xff\xff\xff"

Compression = Literal["zlib-stream", "zstd-stream"]
HelloMode = Literal["hello", "reconnect", "none"]


class FakeHTTPRequest(NamedTuple):
    """One HTTP request the fake answered: ``path`` (with the query), ``headers`` (lower-case names; the
    Authorization value is replaced by ``"Bot <redacted>"`` or ``"<redacted>"``), the ``status`` answered and
    ``at`` (``loop.time()``)."""

    path: str
    headers: dict[str, str]
    status: int
    at: float


class IdentifyViolation(NamedTuple):
    """An IDENTIFY the fake refused for a rate limit.

    ``kind``: ``"concurrency"`` (its bucket identified less than ``identify_delay`` s before: op 9 false) or
    ``"session_start_limit"`` (``session_start_limit.remaining`` was 0: every session was terminated);
    ``shard``: IDENTIFY's ``[id, n]`` (None without one); ``bucket``: ``shard_id % max_concurrency``;
    ``at``: ``loop.time()``; ``since_last``: seconds since the bucket's last accepted IDENTIFY (None: none yet).
    """

    kind: Literal["concurrency", "session_start_limit"]
    shard: tuple[int, int] | None
    bucket: int
    at: float
    since_last: float | None


@dataclass
class FakeSessionStartLimit:
    """The fake's daily session budget, mutable: ``remaining`` of ``total`` IDENTIFYs until ``reset_after`` seconds
    after the current window began (at ``start()`` or the last reset); then ``remaining`` goes back to ``total``
    and a new window begins. ``GET /gateway/bot`` reports the time left in milliseconds, like Discord."""

    total: int = 1000
    remaining: int = 1000
    reset_after: float = 86_400.0


class ReceivedPayload(NamedTuple):
    """One websocket message a client sent, in arrival order.

    ``payload`` is the decoded JSON (normally a dict with ``op`` and ``d``) or None when it was not valid JSON;
    ``op`` is ``payload["op"]`` when that is an int, else None; ``raw`` is the message as received (a text message
    is stored UTF-8 encoded); ``at`` is the event loop's clock (``loop.time()``) at arrival.
    """

    connection: int
    op: int | None
    payload: Any
    raw: bytes
    at: float


@dataclass(eq=False)
class FakeSession:
    """A gateway session created by a successful IDENTIFY.

    ``seq`` is the last sequence number handed out (``first_seq - 1`` before READY); ``replay`` holds the
    dispatches after READY as ``(seq, name, encoded payload)``, bounded by ``FakeGateway.replay_buffer_size``;
    ``connection`` is the live connection currently receiving its dispatches (None while detached).
    """

    id: str
    shard: tuple[int, int] | None
    intents: int
    identify: dict[str, Any]
    seq: int
    replay: deque[tuple[int, str, bytes]]
    connection: FakeConnection | None = None
    invalidated: bool = False
    detached_at: float | None = None
    resumes: int = 0

    def __repr__(self) -> str:
        return (
            f"FakeSession(id={self.id!r}, shard={self.shard}, seq={self.seq}, invalidated={self.invalidated}, "
            f"connection={self.connection.number if self.connection else None})"
        )


@dataclass(eq=False)
class _Outgoing:
    kind: Literal["message", "close", "drop", "marker"]
    data: bytes = b""
    compress: bool = True
    text: bool = True
    code: int = 1000
    reason: str = ""
    done: asyncio.Future[bool] | None = None


@dataclass(eq=False)
class FakeConnection:
    """One client websocket connection to the fake gateway (numbered from 1 in connect order).

    Attributes: ``path`` (URL path, trailing ``/`` stripped, ``"/"`` at least), ``query`` (the query parameters,
    last value wins), ``compression``, ``used_resume_url`` (the path was the gateway's ``resume_path``),
    ``session`` (the session identified or resumed on it), ``received`` (what the client sent on it),
    ``sent`` (the last 10 000 payloads sent to it, as uncompressed bytes, e.g. ``json.loads(sent[0])``), ``heartbeats`` (the ``d`` of each
    op 1 received). After it ended: ``closed_by`` is ``"client"`` (the client sent the first close frame),
    ``"server"`` (this fake closed or dropped it) or ``"drop"`` (the TCP connection ended without a close frame
    from either side before the fake acted); ``close_code`` is the code of the close frame that started the closing
    handshake (None when there was none, i.e. a TCP drop).
    """

    number: int
    path: str
    query: dict[str, str]
    compression: Compression | None
    used_resume_url: bool
    opened_at: float
    session: FakeSession | None = None
    identified: bool = False
    received: list[ReceivedPayload] = field(default_factory=list)
    sent: deque[Any] = field(default_factory=lambda: deque(maxlen=10_000))
    heartbeats: list[int | None] = field(default_factory=list)
    closed_by: Literal["client", "server", "drop"] | None = None
    close_code: int | None = None
    close_reason: str = ""
    closing: bool = False
    _websocket: ServerConnection | None = field(default=None, repr=False)
    _queue: asyncio.Queue[_Outgoing] = field(default_factory=asyncio.Queue, repr=False)
    _closed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    _send_times: deque[float] = field(default_factory=deque, repr=False)
    _zlib: Any = field(default=None, repr=False)
    _zstd: Any = field(default=None, repr=False)
    _server_initiated: bool = field(default=False, repr=False)
    _heartbeat_deadline: asyncio.TimerHandle | None = field(default=None, repr=False)
    _writer_done: bool = field(default=False, repr=False)

    @property
    def open(self) -> bool:
        """True until the connection ended or the fake decided to close it."""
        return not self._closed.is_set() and not self.closing

    @property
    def closed(self) -> bool:
        """True once the connection has fully ended."""
        return self._closed.is_set()

    async def wait_closed(self, timeout: float = DEFAULT_TIMEOUT) -> tuple[Literal["client", "server", "drop"] | None, int | None]:
        """Wait until the connection ended; returns ``(closed_by, close_code)``. Raises TimeoutError."""
        try:
            await asyncio.wait_for(self._closed.wait(), timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"connection {self.number} still open after {timeout} s") from None
        return self.closed_by, self.close_code

    def __repr__(self) -> str:
        return (
            f"FakeConnection(number={self.number}, path={self.path!r}, compression={self.compression!r}, "
            f"session={self.session.id if self.session else None!r}, closed_by={self.closed_by!r}, "
            f"close_code={self.close_code})"
        )


class _Violation(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _encode(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def _strip_bot_prefix(token: str) -> str:
    return token[4:] if token.startswith("Bot ") else token


def _split_points(data: bytes, parts: int) -> list[bytes]:
    """Split ``data`` into at most ``parts`` non-empty pieces of which only the last ends with 00 00 ff ff."""
    parts = max(1, min(parts, len(data)))
    size = len(data) // parts
    cuts = [i * size for i in range(1, parts)]
    pieces: list[bytes] = []
    start = 0
    for cut in cuts:
        while cut < len(data) and data[start:cut].endswith(_SYNC_FLUSH_SUFFIX):
            cut += 1
        if cut <= start or cut >= len(data):
            continue
        pieces.append(data[start:cut])
        start = cut
    pieces.append(data[start:])
    return pieces


class FakeGateway:
    """A fake Discord gateway serving websocket clients on ``host:port`` (port 0 picks a free one).

    Use it as ``async with FakeGateway(...) as gw``; ``gw.url`` is the gateway URL to give the client
    (``ws://host:port``; the client appends ``/?v=10&encoding=json[&compress=...]``). Constructor options:

    - ``token``: the expected bot token (a ``"Bot "`` prefix is ignored on both sides); None accepts any token.
    - ``heartbeat_interval``: ms, sent in HELLO (mutable attribute, applies to the next connection).
    - ``hello``: ``"hello"`` (default), ``"reconnect"`` (send op 7 instead of HELLO, then keep the connection open)
      or ``"none"`` (send nothing); mutable attribute.
    - ``first_seq``: the sequence number of READY (1 like Discord, 0 like some compatible servers).
    - ``guilds``: guild objects (each with an ``"id"``); READY lists them as unavailable stubs and a GUILD_CREATE
      for each follows READY.
    - ``zstd_end_frames``: end the zstd frame after every message (as some compatible servers do).
    - ``minimal_envelopes``: leave out null ``t``/``s``/``d`` in non-dispatch payloads (``{"op":11}``).
    - ``disallowed_intents``: intent bits whose request closes 4014 (default none: every privileged intent is
      "enabled in the portal").
    - ``max_concurrency``: when set, a second IDENTIFY in the same bucket (``shard_id % max_concurrency``) within
      ``identify_delay`` seconds (5.0, Discord's window) gets op 9 false and is recorded in ``identify_violations``;
      None (default) enforces nothing and reports 1 in ``GET /gateway/bot``. Mutable attribute.
    - ``recommended_shards``: the ``shards`` of ``GET /gateway/bot`` (1). Mutable attribute.
    - ``session_start_limit``: a :class:`FakeSessionStartLimit` (default 1000 of 1000, resetting after 24 h).
      Every accepted IDENTIFY spends one; an IDENTIFY when none remains does what the spec says Discord does at the
      daily limit: every session is terminated and the token is reset (all connections close 4004, later
      IDENTIFY/RESUME get 4004 and HTTP 401 until ``token_reset`` is set back to False); it is recorded in
      ``identify_violations``.
    - ``max_guilds_per_shard``: a shard whose share of ``guilds`` would exceed it is closed with 4011 (2500).
    - ``shard_count_multiple``: when set, a shard count that is not a multiple of it closes 4010 (large bots).
    - ``rate_limit``: ``(payloads, seconds)`` allowed per connection (120, 60); one more closes 4008.
    - ``max_payload_size``: bytes per client payload (4096); larger closes 4002.
    - ``replay_buffer_size``: dispatches kept per session for RESUME; resuming from further back gets op 9 false.
    - ``session_timeout``: seconds a detached session stays resumable.
    - ``resume_path``: path of ``resume_gateway_url`` (``ws://host:port/resume`` by default).
    - ``close_timeout``: seconds to wait for the client's close frame after the fake sends one.
    - ``heartbeat_grace``: when set, a connection that sent no heartbeat for ``heartbeat_interval`` ms plus this
      many seconds (counted from HELLO, then from each heartbeat) is closed with 4000; the session survives.
      None (default) never closes for that.

    Mutable behaviour switches: ``ack_heartbeats`` (False: stop answering op 1 with op 11, for zombie tests),
    ``hello``, ``heartbeat_interval``, ``close_on_connect`` (an int close code or ``"drop"``: end every new
    connection right after the handshake, before HELLO), ``guild_members`` / ``soundboard_sounds`` /
    ``channel_info`` (per guild id: the data ops 8, 31 and 43 answer with).
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        heartbeat_interval: int = 41_250,
        host: str = "127.0.0.1",
        port: int = 0,
        hello: HelloMode = "hello",
        first_seq: int = 1,
        guilds: Sequence[Mapping[str, Any]] = (),
        user: Mapping[str, Any] | None = None,
        application_id: str = "1000000000000000001",
        zstd_end_frames: bool = False,
        minimal_envelopes: bool = False,
        disallowed_intents: int = 0,
        max_concurrency: int | None = None,
        identify_delay: float = 5.0,
        recommended_shards: int = 1,
        session_start_limit: FakeSessionStartLimit | None = None,
        max_guilds_per_shard: int = 2500,
        shard_count_multiple: int | None = None,
        rate_limit: tuple[int, float] = (120, 60.0),
        max_payload_size: int = 4096,
        replay_buffer_size: int = 10_000,
        session_timeout: float = 180.0,
        resume_path: str = "/resume",
        close_timeout: float = 2.0,
        heartbeat_grace: float | None = None,
    ) -> None:
        if first_seq < 0:
            raise ValueError("first_seq must be >= 0")
        if max_concurrency is not None and (not isinstance(max_concurrency, int) or max_concurrency < 1):
            raise ValueError("max_concurrency must be None or an int >= 1")
        if not isinstance(recommended_shards, int) or recommended_shards < 1:
            raise ValueError("recommended_shards must be an int >= 1")
        if isinstance(identify_delay, bool) or not isinstance(identify_delay, (int, float)) or not identify_delay >= 0:
            raise ValueError("identify_delay must be a number of seconds >= 0")
        if session_start_limit is not None and not isinstance(session_start_limit, FakeSessionStartLimit):
            raise TypeError("session_start_limit must be a FakeSessionStartLimit")
        if not resume_path.startswith("/") or resume_path.rstrip("/") == "":
            raise ValueError("resume_path must be an absolute path other than '/'")
        self._token = None if token is None else _strip_bot_prefix(token)
        self.heartbeat_interval = heartbeat_interval
        self.host = host
        self.port = port
        self.hello: HelloMode = hello
        self.first_seq = first_seq
        self.guilds: list[dict[str, Any]] = [dict(guild) for guild in guilds]
        self.user: dict[str, Any] = dict(user) if user is not None else {
            "id": "1000000000000000000",
            "username": "fake-bot",
            "discriminator": "0",
            "global_name": None,
            "avatar": None,
            "bot": True,
            "verified": True,
            "flags": 0,
            "mfa_enabled": False,
            "email": None,
        }
        self.application_id = application_id
        self.zstd_end_frames = zstd_end_frames
        self.minimal_envelopes = minimal_envelopes
        self.disallowed_intents = disallowed_intents
        self.max_concurrency = max_concurrency
        self.identify_delay = identify_delay
        self.recommended_shards = recommended_shards
        self.session_start_limit = session_start_limit if session_start_limit is not None else FakeSessionStartLimit()
        self.max_guilds_per_shard = max_guilds_per_shard
        self.shard_count_multiple = shard_count_multiple
        #: Set when an IDENTIFY came with no session start left: IDENTIFY/RESUME get 4004, HTTP gets 401.
        self.token_reset = False
        self.rate_limit = rate_limit
        self.max_payload_size = max_payload_size
        self.replay_buffer_size = replay_buffer_size
        self.session_timeout = session_timeout
        self.resume_path = resume_path.rstrip("/")
        self.close_timeout = close_timeout
        self.heartbeat_grace = heartbeat_grace

        self.ack_heartbeats = True
        self.close_on_connect: int | Literal["drop"] | None = None
        self.guild_members: dict[str, list[dict[str, Any]]] = {}
        self.soundboard_sounds: dict[str, list[dict[str, Any]]] = {}
        self.channel_info: dict[str, list[dict[str, Any]]] = {}
        self.voice_endpoint = "voice.fake-gateway.invalid"

        #: Every client connection, in connect order (``connections[i].number == i + 1``).
        self.connections: list[FakeConnection] = []
        #: Sessions by id, including invalidated ones.
        self.sessions: dict[str, FakeSession] = {}
        #: Everything every client sent, in arrival order.
        self.received: list[ReceivedPayload] = []
        #: Accepted IDENTIFYs per bucket (``shard_id % (max_concurrency or 1)``): their ``loop.time()``, in order.
        self.identify_times: dict[int, list[float]] = {}
        #: IDENTIFYs refused for a rate limit (concurrency window or session start limit).
        self.identify_violations: list[IdentifyViolation] = []
        #: Every HTTP request answered, in arrival order.
        self.http_requests: list[FakeHTTPRequest] = []
        #: Scripted HTTP failures still to answer, oldest first: ``(status, retry_after)``.
        self.http_failures: deque[tuple[int, float | None]] = deque()

        self._server: Server | None = None
        self._session: FakeSession | None = None
        self._split_next = 0
        self._fragment_next = 0
        self._waiters: set[asyncio.Future[None]] = set()
        self._op_cursor: dict[int, int] = {}
        self._connection_cursor = 0
        self._limit_window_started: float | None = None
        self._member_request_times: dict[str, float] = {}

    # ----------------------------------------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> FakeGateway:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start listening (``async with`` does this). Sets ``port`` to the bound port."""
        if self._server is not None:
            raise RuntimeError("FakeGateway already started")
        self._limit_window_started = asyncio.get_running_loop().time()
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            process_request=self._process_request,
            compression=None,
            max_size=2**24,
            ping_interval=None,
            ping_timeout=None,
            close_timeout=self.close_timeout,
            open_timeout=self.close_timeout + 3,
            logger=wire_logger,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close every connection (code 1001, or abort), stop listening and wait for the handlers to finish."""
        server, self._server = self._server, None
        if server is None:
            return
        for connection in self.connections:
            if not connection.closed and connection._websocket is not None:
                connection._server_initiated = True
                connection.closing = True
        server.close(close_connections=True)
        try:
            await asyncio.wait_for(server.wait_closed(), self.close_timeout + 0.5)
        except asyncio.TimeoutError:
            for connection in self.connections:
                if connection._websocket is not None and connection._websocket.transport is not None:
                    connection._websocket.transport.abort()
            await asyncio.wait_for(server.wait_closed(), 2)
        self._notify()  # pending waits re-check their condition and time out normally

    @property
    def url(self) -> str:
        """The gateway URL, ``ws://host:port`` (available once started)."""
        if self._server is None:
            raise RuntimeError("FakeGateway is not started")
        return f"ws://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """The REST base for ``fetch_gateway_info(api_url=...)``: ``http://host:port/api/v10``."""
        if self._server is None:
            raise RuntimeError("FakeGateway is not started")
        return f"http://{self.host}:{self.port}/api/v10"

    @property
    def resume_gateway_url(self) -> str:
        """The ``resume_gateway_url`` sent in READY: ``ws://host:port`` + ``resume_path``."""
        return self.url + self.resume_path

    def __repr__(self) -> str:
        where = f"{self.host}:{self.port}" if self._server is not None else "stopped"
        return f"FakeGateway({where}, connections={len(self.connections)}, sessions={len(self.sessions)})"

    # ------------------------------------------------------------------------------------------- introspection

    @property
    def connection(self) -> FakeConnection | None:
        """The newest connection that is still open, or None."""
        for connection in reversed(self.connections):
            if connection.open:
                return connection
        return None

    @property
    def session(self) -> FakeSession | None:
        """The newest session that was identified or resumed and is not invalidated, or None."""
        session = self._session
        return session if session is not None and not session.invalidated else None

    def session_for_shard(self, shard_id: int, shard_count: int | None = None) -> FakeSession:
        """The newest live (not invalidated) session identified as shard ``shard_id`` (of ``shard_count`` shards,
        any count when None). Raises LookupError when there is none."""
        for session in reversed(list(self.sessions.values())):
            if session.invalidated or session.shard is None or session.shard[0] != shard_id:
                continue
            if shard_count is None or session.shard[1] == shard_count:
                return session
        of = f" of {shard_count}" if shard_count is not None else ""
        raise LookupError(f"FakeGateway: no live session for shard {shard_id}{of}")

    def connection_for_shard(self, shard_id: int, shard_count: int | None = None) -> FakeConnection:
        """The open connection currently carrying :meth:`session_for_shard`'s session. Raises LookupError when the
        shard has no live session or its session is detached (between a drop and the RESUME)."""
        connection = self.session_for_shard(shard_id, shard_count).connection
        if connection is None or not connection.open:
            raise LookupError(f"FakeGateway: shard {shard_id} has no open connection right now")
        return connection

    async def wait_for_shard(self, shard_id: int, shard_count: int | None = None, timeout: float = DEFAULT_TIMEOUT) -> FakeSession:
        """Wait until shard ``shard_id`` has a live session on an open connection (READY or RESUMED queued) and
        return the session. Raises TimeoutError."""

        def ready() -> FakeSession | None:
            try:
                return self.connection_for_shard(shard_id, shard_count).session
            except LookupError:
                return None

        return await self._wait_until(ready, timeout, f"session for shard {shard_id}")

    def received_payloads(self, op: int | None = None, *, connection: int | None = None) -> list[Any]:
        """The decoded payloads received so far, optionally only those with ``op`` / on connection number ``connection``."""
        return [
            entry.payload
            for entry in self.received
            if (op is None or entry.op == op) and (connection is None or entry.connection == connection)
        ]

    # --------------------------------------------------------------------------------------------------- waits

    async def _wait_until(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = predicate()
            if result is not None:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"FakeGateway: no {what} within {timeout} s")
            waiter = loop.create_future()
            self._waiters.add(waiter)
            try:
                await asyncio.wait_for(waiter, remaining)
            except asyncio.TimeoutError:
                pass
            finally:
                self._waiters.discard(waiter)

    def _notify(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    async def wait_for_connection(self, timeout: float = DEFAULT_TIMEOUT) -> FakeConnection:
        """Return the next connection not yet returned by this method (the n-th call returns connection n).

        Returns as soon as the websocket handshake is done (HELLO may still be in flight). Raises TimeoutError.
        """

        def next_connection() -> FakeConnection | None:
            if self._connection_cursor < len(self.connections):
                self._connection_cursor += 1
                return self.connections[self._connection_cursor - 1]
            return None

        return await self._wait_until(next_connection, timeout, "new connection")

    async def wait_for_op(self, op: int, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """Return the next payload with opcode ``op`` not yet returned by this method for that op.

        The n-th call for op 2 returns the n-th IDENTIFY received (however long ago it arrived). It returns after
        the fake has handled the payload (for a valid IDENTIFY, READY is already queued, so ``session`` is set and
        ``dispatch`` works; for a RESUME the replay is queued; for an invalid payload the close is queued). Raises TimeoutError.
        """

        def next_payload() -> dict[str, Any] | None:
            start = self._op_cursor.get(op, 0)
            for index in range(start, len(self.received)):
                entry = self.received[index]
                if entry.op == op:
                    self._op_cursor[op] = index + 1
                    return entry.payload
            self._op_cursor[op] = len(self.received)
            return None

        return await self._wait_until(next_payload, timeout, f"op {op} payload")

    async def wait_for(self, predicate: Callable[[FakeGateway], Any], timeout: float = DEFAULT_TIMEOUT) -> Any:
        """Wait until ``predicate(self)`` returns something other than None/False and return it. Raises TimeoutError.

        The predicate is re-checked whenever a connection opens or ends or a payload is received.
        """

        def check() -> Any:
            result = predicate(self)
            return None if result is None or result is False else result

        return await self._wait_until(check, timeout, "matching state")

    async def wait_for_session(self, timeout: float = DEFAULT_TIMEOUT) -> FakeSession:
        """Wait until a session is current (READY or RESUMED sent) and return it. Raises TimeoutError."""
        return await self._wait_until(lambda: self.session, timeout, "session")

    # ------------------------------------------------------------------------------------------ scripting API

    def _live_connection(self, connection: FakeConnection | None, shard: int | None = None) -> FakeConnection:
        if shard is not None:
            if connection is not None:
                raise ValueError("give connection or shard, not both")
            return self.connection_for_shard(shard)
        target = connection if connection is not None else self.connection
        if target is None:
            raise RuntimeError("FakeGateway: no open connection")
        return target

    def _resolve_session(self, session: FakeSession | str | None, shard: int | None = None) -> FakeSession:
        if shard is not None:
            if session is not None:
                raise ValueError("give session or shard, not both")
            return self.session_for_shard(shard)
        if isinstance(session, str):
            found = self.sessions.get(session)
            if found is None:
                raise KeyError(f"unknown session {session!r}")
            return found
        if session is not None:
            return session
        current = self.session
        if current is None:
            raise RuntimeError("FakeGateway: no current session (wait for READY first, e.g. wait_for_session())")
        return current

    def dispatch_nowait(
        self, name: str, data: Any, *, session: FakeSession | str | None = None, shard: int | None = None
    ) -> int:
        """Give ``name``/``data`` the session's next sequence number, keep it for replay, and queue it on the
        session's live connection (if any). ``session`` (default: the newest) or ``shard`` (that shard's live
        session) picks the session. Returns the sequence number. Raises RuntimeError without a session,
        LookupError for a shard without one."""
        target = self._resolve_session(session, shard)
        seq = self._next_seq(target)
        encoded = _encode({"t": name, "s": seq, "op": 0, "d": data})
        target.replay.append((seq, name, encoded))
        if target.connection is not None and target.connection.open:
            self._enqueue(target.connection, _Outgoing("message", encoded))
        return seq

    async def dispatch(
        self,
        name: str,
        data: Any,
        *,
        session: FakeSession | str | None = None,
        shard: int | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> int:
        """Like ``dispatch_nowait`` but waits until the payload was written to the live connection (if any).

        Returns the sequence number. Raises TimeoutError if the write does not finish in time (it still happens).
        """
        target = self._resolve_session(session, shard)
        connection = target.connection if target.connection is not None and target.connection.open else None
        seq = self.dispatch_nowait(name, data, session=target)
        if connection is not None:
            await self._await_last(connection, timeout)
        return seq

    def broadcast(self, name: str, data: Any) -> dict[str, int]:
        """Dispatch to every live (not invalidated) session that would receive it from Discord: the event's intent
        (gateway.flags.INTENT_EVENTS; events without an intent, and unknown names, always pass) must be in the
        session's intents, and the shard must match ``(guild_id >> 22) % num_shards`` (no ``guild_id``: shard 0
        only). Returns ``{session_id: seq}`` for the sessions it was queued to (like ``dispatch_nowait``)."""
        from gateway.flags import EVENTS_WITHOUT_INTENT, FLAG_BY_NAME, INTENT_EVENTS

        flag = FLAG_BY_NAME.get(name)
        guild_id = data.get("guild_id") if isinstance(data, dict) else None
        sent: dict[str, int] = {}
        for session in list(self.sessions.values()):
            if session.invalidated:
                continue
            if flag is not None and not flag & EVENTS_WITHOUT_INTENT:
                if not any(session.intents & intent and flag & events for intent, events in INTENT_EVENTS.items()):
                    continue
            if not self._routes_to(session, guild_id):
                continue
            sent[session.id] = self.dispatch_nowait(name, data, session=session)
        return sent

    async def send(
        self,
        payload: Mapping[str, Any],
        *,
        connection: FakeConnection | None = None,
        shard: int | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> bool:
        """Send any JSON payload as is (no sequence bookkeeping) on ``connection`` (default: newest open one).

        Returns True if it was written, False if the connection ended first. Raises RuntimeError without a
        connection.
        """
        target = self._live_connection(connection, shard)
        return await self._send(target, _Outgoing("message", _encode(payload)), timeout)

    async def send_raw(
        self,
        data: bytes | str,
        *,
        compress: bool = True,
        connection: FakeConnection | None = None,
        shard: int | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> bool:
        """Send arbitrary bytes (e.g. invalid JSON). With ``compress`` (default) they go through the connection's
        compressor like any payload; otherwise they are sent as they are: ``str`` as a text message, ``bytes`` as a
        binary message (on an uncompressed connection, bytes with ``compress=True`` go out as a text message).
        Returns True if written."""
        target = self._live_connection(connection, shard)
        raw = data.encode() if isinstance(data, str) else bytes(data)
        text = isinstance(data, str) if not compress else True
        return await self._send(target, _Outgoing("message", raw, compress=compress, text=text), timeout)

    async def send_corrupt(
        self, *, connection: FakeConnection | None = None, shard: int | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> bool:
        """Send one binary message that cannot be decompressed by the connection's inflater (zlib: a reserved
        block type followed by 00 00 ff ff; zstd: a reserved block type). On an uncompressed connection this sends
        a text message that is not JSON. Returns True if written."""
        target = self._live_connection(connection, shard)
        if target.compression == "zlib-stream":
            item = _Outgoing("message", _CORRUPT_ZLIB, compress=False, text=False)
        elif target.compression == "zstd-stream":
            item = _Outgoing("message", _CORRUPT_ZSTD, compress=False, text=False)
        else:
            item = _Outgoing("message", b"{not json", compress=False, text=True)
        return await self._send(target, item, timeout)

    def split_next(self, parts: int = 2) -> None:
        """Split the next payload sent on a zlib-stream connection into ``parts`` websocket messages (only the last
        one ends with 00 00 ff ff). Ignored by zstd-stream and uncompressed connections, where one websocket message
        is always one payload."""
        if parts < 2:
            raise ValueError("parts must be >= 2")
        self._split_next = parts

    def fragment_next(self, frames: int = 2) -> None:
        """Send the next payload (on any connection kind) as one websocket message fragmented into ``frames`` frames
        of data plus a final empty continuation frame (that is how websockets fragments), so a client's frame
        reassembly is exercised below any compression."""
        if frames < 2:
            raise ValueError("frames must be >= 2")
        self._fragment_next = frames

    async def request_heartbeat(
        self, *, connection: FakeConnection | None = None, shard: int | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> bool:
        """Send op 1 (the client must heartbeat at once)."""
        target = self._live_connection(connection, shard)
        seq = target.session.seq if target.session is not None else None
        return await self._send(target, self._control(1, seq), timeout)

    async def reconnect(
        self, *, connection: FakeConnection | None = None, shard: int | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> bool:
        """Send op 7 Reconnect (the connection stays open; the client should close it and resume)."""
        return await self._send(self._live_connection(connection, shard), self._control(7, None), timeout)

    async def invalidate_session(
        self,
        resumable: bool,
        *,
        connection: FakeConnection | None = None,
        shard: int | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> bool:
        """Send op 9 with ``d = resumable``. With False the connection's session is invalidated first (a later
        RESUME of it gets op 9 false); with True it stays resumable."""
        target = self._live_connection(connection, shard)
        if not resumable and target.session is not None:
            self._invalidate(target.session)
        return await self._send(target, self._control(9, resumable), timeout)

    async def close(
        self,
        code: int = 4000,
        reason: str = "",
        *,
        connection: FakeConnection | None = None,
        shard: int | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> bool:
        """Send a close frame with ``code`` (any code websockets allows on the wire) after everything queued before
        it, and wait for the closing handshake (at most ``close_timeout``). The session survives unless the code
        ends it (4004, 4007, 4009-4014). Returns True if the close frame was sent."""
        target = self._live_connection(connection, shard)
        return await self._send(target, self._close_item(target, code, reason), timeout + self.close_timeout)

    async def drop(
        self, *, connection: FakeConnection | None = None, shard: int | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> bool:
        """End the TCP connection without a close frame (``transport.abort()``). The session survives."""
        target = self._live_connection(connection, shard)
        target.closing = True
        target._server_initiated = True
        return await self._send(target, _Outgoing("drop"), timeout)

    # ------------------------------------------------------------------------------------------------ sending

    def _control(self, op: int, data: Any) -> _Outgoing:
        if self.minimal_envelopes:
            payload: dict[str, Any] = {"op": op} if data is None else {"op": op, "d": data}
        else:
            payload = {"t": None, "s": None, "op": op, "d": data}
        return _Outgoing("message", _encode(payload))

    def _close_item(self, connection: FakeConnection, code: int, reason: str) -> _Outgoing:
        connection.closing = True
        connection._server_initiated = True
        if code in _SESSION_ENDING_CLOSE_CODES and connection.session is not None:
            self._invalidate(connection.session)
        return _Outgoing("close", code=code, reason=reason)

    def _enqueue(self, connection: FakeConnection, item: _Outgoing) -> None:
        if item.done is None:
            item.done = asyncio.get_running_loop().create_future()
        if connection._writer_done:
            item.done.set_result(False)  # the connection is gone: nothing will be written
            return
        connection._queue.put_nowait(item)

    async def _send(self, connection: FakeConnection, item: _Outgoing, timeout: float) -> bool:
        self._enqueue(connection, item)
        assert item.done is not None
        try:
            return await asyncio.wait_for(asyncio.shield(item.done), timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"FakeGateway: send on connection {connection.number} not done within {timeout} s") from None

    async def _await_last(self, connection: FakeConnection, timeout: float) -> None:
        # The item just queued by dispatch_nowait is the newest one; a marker after it resolves once it was written.
        await self._send(connection, _Outgoing("marker"), timeout)

    async def _writer(self, connection: FakeConnection, websocket: ServerConnection) -> None:
        """Write the connection's queue in order (compression contexts need the send order)."""
        item: _Outgoing | None = None
        try:
            while True:
                item = await connection._queue.get()
                if item.kind == "message":
                    await self._write_message(connection, websocket, item)
                elif item.kind == "close":
                    await websocket.close(item.code, item.reason)
                elif item.kind == "drop":
                    transport = websocket.transport
                    if transport is not None:
                        transport.abort()
                if item.done is not None and not item.done.done():
                    item.done.set_result(True)
                item = None
        except ConnectionClosed:
            pass
        finally:
            connection._writer_done = True
            pending = [item] if item is not None else []
            while not connection._queue.empty():
                pending.append(connection._queue.get_nowait())
            for leftover in pending:
                if leftover.done is not None and not leftover.done.done():
                    leftover.done.set_result(False)

    async def _write_message(self, connection: FakeConnection, websocket: ServerConnection, item: _Outgoing) -> None:
        data = item.data
        connection.sent.append(data)
        fragments, self._fragment_next = self._fragment_next, 0
        if connection.compression is None or not item.compress:
            await self._write_frames(websocket, data, item.text, fragments)
            return
        if connection.compression == "zlib-stream":
            compressed = connection._zlib.compress(data) + connection._zlib.flush(zlib.Z_SYNC_FLUSH)
            parts, self._split_next = self._split_next, 0
            if parts >= 2:
                for piece in _split_points(compressed, parts):
                    await websocket.send(piece, text=False)
                return
            await self._write_frames(websocket, compressed, False, fragments)
        else:
            import zstandard

            compressor = connection._zstd
            if self.zstd_end_frames:
                compressed = compressor.compress(data) + compressor.flush(zstandard.COMPRESSOBJ_FLUSH_FINISH)
                connection._zstd = zstandard.ZstdCompressor().compressobj()
            else:
                compressed = compressor.compress(data) + compressor.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
            await self._write_frames(websocket, compressed, False, fragments)

    @staticmethod
    async def _write_frames(websocket: ServerConnection, data: bytes, text: bool, fragments: int) -> None:
        if fragments < 2 or len(data) < 2:
            await websocket.send(data, text=text)
            return
        if text:
            decoded = data.decode()
            size = max(1, -(-len(decoded) // fragments))
            await websocket.send([decoded[i : i + size] for i in range(0, len(decoded), size)])
        else:
            size = max(1, -(-len(data) // fragments))
            await websocket.send([data[i : i + size] for i in range(0, len(data), size)])

    # ------------------------------------------------------------------------------------------------ sessions

    def _next_seq(self, session: FakeSession) -> int:
        session.seq += 1
        return session.seq

    def _invalidate(self, session: FakeSession) -> None:
        session.invalidated = True
        session.connection = None
        if self._session is session:
            self._session = None

    def _send_dispatch(self, connection: FakeConnection, session: FakeSession, name: str, data: Any, *, replay: bool = True) -> int:
        seq = self._next_seq(session)
        encoded = _encode({"t": name, "s": seq, "op": 0, "d": data})
        if replay:
            session.replay.append((seq, name, encoded))
        self._enqueue(connection, _Outgoing("message", encoded))
        return seq

    # ------------------------------------------------------------------------------------------------- HTTP

    def fail_http(self, status: int, times: int = 1, *, retry_after: float | None = None) -> None:
        """Answer the next ``times`` authorized ``GET /gateway/bot`` requests with ``status`` (e.g. 401, 429, 500,
        502) instead of the info. A 429 carries ``retry_after`` (seconds, default 0.1) in its JSON body and a
        ``Retry-After`` header (whole seconds, rounded up), like Discord."""
        if status < 400 or status > 599:
            raise ValueError("fail_http takes an HTTP error status (400-599)")
        http.HTTPStatus(status)  # ValueError for a status Python does not know
        if not isinstance(times, int) or times < 1:
            raise ValueError("times must be an int >= 1")
        if status == 429 and retry_after is None:
            retry_after = 0.1
        for _ in range(times):
            self.http_failures.append((status, retry_after))

    def gateway_bot_payload(self) -> dict[str, Any]:
        """What ``GET /gateway/bot`` answers right now."""
        limit = self._current_session_start_limit(asyncio.get_running_loop().time())
        started = self._limit_window_started or 0.0
        left = max(0.0, started + limit.reset_after - asyncio.get_running_loop().time())
        return {
            "url": self.url,
            "shards": self.recommended_shards,
            "session_start_limit": {
                "total": limit.total,
                "remaining": max(0, limit.remaining),
                "reset_after": int(left * 1000),
                "max_concurrency": self.max_concurrency or 1,
            },
        }

    def _process_request(self, websocket: ServerConnection, request: Request) -> Response | None:
        """websockets' hook: answer ``/api/...`` as plain HTTP, let everything else go on to the websocket handshake."""
        path = urlsplit(request.path).path.rstrip("/")
        if not path.startswith("/api/"):
            return None
        now = asyncio.get_running_loop().time()
        headers = {name.lower(): value for name, value in request.headers.raw_items()}
        authorization = headers.get("authorization")
        if authorization is not None:
            headers["authorization"] = "Bot <redacted>" if authorization.startswith("Bot ") else "<redacted>"
        status, body, extra = self._http_answer(path, authorization)
        self.http_requests.append(FakeHTTPRequest(request.path, headers, status, now))
        self._notify()
        response = websocket.respond(status, "")
        response.body = _encode(body)
        del response.headers["Content-Type"]
        del response.headers["Content-Length"]
        response.headers["Content-Type"] = "application/json"
        response.headers["Content-Length"] = str(len(response.body))
        for name, value in extra.items():
            response.headers[name] = value
        return response

    def _http_answer(self, path: str, authorization: str | None) -> tuple[int, Any, dict[str, str]]:
        if path == "/api/v10/gateway":
            return 200, {"url": self.url}, {}
        if path != "/api/v10/gateway/bot":
            return 404, {"message": "404: Not Found", "code": 0}, {}
        expected = None if self._token is None else f"Bot {self._token}"
        valid = authorization is not None and authorization.startswith("Bot ") and len(authorization) > 4
        if self.token_reset or not valid or (expected is not None and authorization != expected):
            return 401, {"message": "401: Unauthorized", "code": 0}, {}
        if self.http_failures:
            status, retry_after = self.http_failures.popleft()
            if status == 429:
                assert retry_after is not None
                body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": False}
                return 429, body, {"Retry-After": str(math.ceil(retry_after))}
            return status, {"message": f"{status}: {http.HTTPStatus(status).phrase}", "code": 0}, {}
        return 200, self.gateway_bot_payload(), {}

    # ------------------------------------------------------------------------------------------- connections

    async def _handle(self, websocket: ServerConnection) -> None:
        loop = asyncio.get_running_loop()
        request_path = websocket.request.path if websocket.request is not None else "/"
        split = urlsplit(request_path)
        path = split.path.rstrip("/") or "/"
        query = {key: values[-1] for key, values in parse_qs(split.query, keep_blank_values=True).items()}
        compress_param = query.get("compress")
        compression: Compression | None = (
            compress_param if compress_param in ("zlib-stream", "zstd-stream") else None  # type: ignore[assignment]
        )
        connection = FakeConnection(
            number=len(self.connections) + 1,
            path=path,
            query=query,
            compression=compression,
            used_resume_url=path == self.resume_path,
            opened_at=loop.time(),
            _websocket=websocket,
        )
        if compression == "zlib-stream":
            connection._zlib = zlib.compressobj()
        elif compression == "zstd-stream":
            import zstandard

            connection._zstd = zstandard.ZstdCompressor().compressobj()
        self.connections.append(connection)
        writer = asyncio.create_task(self._writer(connection, websocket), name=f"fake-gateway-writer-{connection.number}")
        self._notify()
        try:
            self._open(connection, query)
            async for message in websocket:
                self._on_message(connection, message, loop.time())
        except ConnectionClosed:
            pass
        finally:
            await self._finish(connection, websocket, writer)

    def _arm_heartbeat_deadline(self, connection: FakeConnection) -> None:
        if self.heartbeat_grace is None:
            return
        if connection._heartbeat_deadline is not None:
            connection._heartbeat_deadline.cancel()
        delay = self.heartbeat_interval / 1000 + self.heartbeat_grace
        connection._heartbeat_deadline = asyncio.get_running_loop().call_later(delay, self._heartbeat_overdue, connection)

    def _heartbeat_overdue(self, connection: FakeConnection) -> None:
        connection._heartbeat_deadline = None
        if connection.open:
            self._enqueue(connection, self._close_item(connection, 4000, "Heartbeat overdue."))
            self._notify()

    def _open(self, connection: FakeConnection, query: dict[str, str]) -> None:
        if self.close_on_connect is not None:
            if self.close_on_connect == "drop":
                connection.closing = True
                connection._server_initiated = True
                self._enqueue(connection, _Outgoing("drop"))
            else:
                self._enqueue(connection, self._close_item(connection, self.close_on_connect, "close_on_connect"))
            return
        if query.get("v") != "10":
            self._enqueue(connection, self._close_item(connection, 4012, "Invalid API version."))
            return
        if query.get("encoding", "json") != "json":
            self._enqueue(connection, self._close_item(connection, 4002, "FakeGateway supports encoding=json only."))
            return
        if "compress" in query and connection.compression is None:
            self._enqueue(connection, self._close_item(connection, 4002, "Unknown compress value."))
            return
        if self.hello == "hello":
            self._enqueue(connection, self._control(10, {"heartbeat_interval": self.heartbeat_interval}))
            self._arm_heartbeat_deadline(connection)
        elif self.hello == "reconnect":
            self._enqueue(connection, self._control(7, None))

    async def _finish(self, connection: FakeConnection, websocket: ServerConnection, writer: asyncio.Task[None]) -> None:
        try:
            await asyncio.wait_for(websocket.wait_closed(), self.close_timeout + 1)
        except asyncio.TimeoutError:
            if websocket.transport is not None:
                websocket.transport.abort()
        if connection._heartbeat_deadline is not None:
            connection._heartbeat_deadline.cancel()
        writer.cancel()
        try:
            await writer
        except asyncio.CancelledError:
            pass
        protocol = websocket.protocol
        received, sent = protocol.close_rcvd, protocol.close_sent
        client_first = received is not None and (sent is None or bool(protocol.close_rcvd_then_sent))
        if client_first:
            assert received is not None
            connection.closed_by = "client"
            connection.close_code, connection.close_reason = received.code, received.reason
        elif connection._server_initiated:
            connection.closed_by = "server"
            if sent is not None:
                connection.close_code, connection.close_reason = sent.code, sent.reason
        else:
            connection.closed_by = "drop"
        session = connection.session
        if session is not None and session.connection is connection:
            session.connection = None
            session.detached_at = asyncio.get_running_loop().time()
            if connection.closed_by == "client" and connection.close_code in (1000, 1001):
                self._invalidate(session)
        connection.closing = True
        connection._closed.set()
        self._notify()

    # ------------------------------------------------------------------------------------------ client payloads

    def _on_message(self, connection: FakeConnection, message: str | bytes, now: float) -> None:
        raw = message.encode() if isinstance(message, str) else bytes(message)
        payload: Any = None
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = None
        op = payload.get("op") if isinstance(payload, dict) else None
        op = op if isinstance(op, int) and not isinstance(op, bool) else None
        entry = ReceivedPayload(connection.number, op, payload, raw, now)
        connection.received.append(entry)
        self.received.append(entry)
        try:
            if connection.closing:
                return
            self._check_limits(connection, raw, now)
            if not isinstance(payload, dict):
                raise _Violation(4002, "Error while decoding payload.")
            if op is None or op not in _KNOWN_CLIENT_OPS:
                raise _Violation(4001, "Unknown opcode.")
            self._handle_op(connection, op, payload.get("d"), now)
        except _Violation as violation:
            self._enqueue(connection, self._close_item(connection, violation.code, violation.reason))
        finally:
            self._notify()

    def _check_limits(self, connection: FakeConnection, raw: bytes, now: float) -> None:
        limit, window = self.rate_limit
        times = connection._send_times
        times.append(now)
        while times and times[0] <= now - window:
            times.popleft()
        if len(times) > limit:
            raise _Violation(4008, "Rate limited.")
        if len(raw) > self.max_payload_size:
            raise _Violation(4002, "Payload too large.")

    def _handle_op(self, connection: FakeConnection, op: int, data: Any, now: float) -> None:
        if op == 1:
            if data is not None and (not isinstance(data, int) or isinstance(data, bool)):
                raise _Violation(4001, "Invalid heartbeat sequence.")
            connection.heartbeats.append(data)
            self._arm_heartbeat_deadline(connection)
            if self.ack_heartbeats:
                self._enqueue(connection, self._control(11, None))
            return
        if op == 2:
            self._identify(connection, data, now)
            return
        if op == 6:
            self._resume(connection, data, now)
            return
        if not connection.identified or connection.session is None:
            raise _Violation(4003, "Not authenticated.")
        if not isinstance(data, dict):
            raise _Violation(4001, f"Invalid payload for opcode {op}.")
        session = connection.session
        if op == 3:
            return
        if op == 4:
            self._voice_state(connection, session, data)
        elif op == 8:
            self._request_members(connection, session, data, now)
        elif op == 31:
            self._soundboard(connection, session, data)
        elif op == 43:
            self._channel_info(connection, session, data)

    def _check_token(self, token: Any) -> None:
        if self.token_reset or not isinstance(token, str):
            raise _Violation(4004, "Authentication failed.")
        if self._token is not None and _strip_bot_prefix(token) != self._token:
            raise _Violation(4004, "Authentication failed.")

    def _identify(self, connection: FakeConnection, data: Any, now: float) -> None:
        if connection.identified:
            raise _Violation(4005, "Already authenticated.")
        if not isinstance(data, dict):
            raise _Violation(4001, "Invalid identify payload.")
        self._check_token(data.get("token"))
        intents = data.get("intents")
        if not isinstance(intents, int) or isinstance(intents, bool) or intents < 0 or intents & ~DOCUMENTED_INTENTS:
            raise _Violation(4013, "Invalid intent(s).")
        if intents & self.disallowed_intents:
            raise _Violation(4014, "Disallowed intent(s).")
        shard_value = data.get("shard")
        shard: tuple[int, int] | None = None
        if shard_value is not None:
            if (
                not isinstance(shard_value, list)
                or len(shard_value) != 2
                or not all(isinstance(part, int) and not isinstance(part, bool) for part in shard_value)
                or not 0 <= shard_value[0] < shard_value[1]
            ):
                raise _Violation(4010, "Invalid shard.")
            shard = (shard_value[0], shard_value[1])
            if self.shard_count_multiple is not None and shard[1] % self.shard_count_multiple:
                raise _Violation(4010, "Invalid shard.")
        if len(self.guilds) > self.max_guilds_per_shard:
            share = sum(1 for guild in self.guilds if self._routes_to_shard(shard, guild.get("id")))
            if share > self.max_guilds_per_shard:
                raise _Violation(4011, "Sharding required.")
        bucket = (shard[0] if shard else 0) % (self.max_concurrency or 1)
        times = self.identify_times.setdefault(bucket, [])
        since_last = now - times[-1] if times else None
        if self.max_concurrency is not None and since_last is not None and since_last < self.identify_delay:
            self.identify_violations.append(IdentifyViolation("concurrency", shard, bucket, now, since_last))
            logger.warning("FakeGateway: IDENTIFY of shard %s %.3f s after its bucket's last: op 9", shard, since_last)
            self._enqueue(connection, self._control(9, False))
            return
        limit = self._current_session_start_limit(now)
        if limit.remaining <= 0:
            self.identify_violations.append(IdentifyViolation("session_start_limit", shard, bucket, now, since_last))
            logger.warning("FakeGateway: IDENTIFY of shard %s with no session start left: terminating every session", shard)
            self._terminate_everything(connection)
            return
        limit.remaining -= 1
        times.append(now)
        session = FakeSession(
            id=secrets.token_hex(16),
            shard=shard,
            intents=intents,
            identify=data,
            seq=self.first_seq - 1,
            replay=deque(maxlen=self.replay_buffer_size),
            connection=connection,
        )
        self.sessions[session.id] = session
        connection.session = session
        connection.identified = True
        self._session = session
        guilds = [guild for guild in self.guilds if self._routes_to(session, guild.get("id"))]
        ready: dict[str, Any] = {
            "v": 10,
            "user": self.user,
            "guilds": [{"id": guild["id"], "unavailable": True} for guild in guilds],
            "session_id": session.id,
            "resume_gateway_url": self.resume_gateway_url,
            "session_type": "normal",
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "user_settings": {},
            "application": {"id": self.application_id, "flags": 0},
        }
        if shard is not None:
            ready["shard"] = list(shard)
        self._send_dispatch(connection, session, "READY", ready, replay=False)
        for guild in guilds:
            self._send_dispatch(connection, session, "GUILD_CREATE", guild)

    def _routes_to(self, session: FakeSession, guild_id: Any) -> bool:
        return self._routes_to_shard(session.shard, guild_id)

    @staticmethod
    def _routes_to_shard(shard: tuple[int, int] | None, guild_id: Any) -> bool:
        if shard is None:
            return True
        try:
            snowflake = int(guild_id)
        except (TypeError, ValueError):
            return shard[0] == 0
        return (snowflake >> 22) % shard[1] == shard[0]

    def _current_session_start_limit(self, now: float) -> FakeSessionStartLimit:
        """The limit after applying a reset that is due (remaining back to total, a new window from now)."""
        limit = self.session_start_limit
        started = self._limit_window_started if self._limit_window_started is not None else now
        if now - started >= limit.reset_after:
            limit.remaining = limit.total
            started = now
        self._limit_window_started = started
        return limit

    def reset_session_start_limit(self) -> None:
        """Start a new session-start window now: ``remaining = total``."""
        self.session_start_limit.remaining = self.session_start_limit.total
        self._limit_window_started = asyncio.get_running_loop().time()

    def _terminate_everything(self, connection: FakeConnection) -> None:
        """The daily limit was exceeded: every session ends and the token is reset (spec section 7)."""
        self.token_reset = True
        for session in self.sessions.values():
            self._invalidate(session)
        for other in self.connections:
            if other.open:
                self._enqueue(other, self._close_item(other, 4004, "Authentication failed."))
        if connection.open:
            self._enqueue(connection, self._close_item(connection, 4004, "Authentication failed."))

    def _resume(self, connection: FakeConnection, data: Any, now: float) -> None:
        if connection.identified:
            raise _Violation(4005, "Already authenticated.")
        if not isinstance(data, dict):
            raise _Violation(4001, "Invalid resume payload.")
        self._check_token(data.get("token"))
        session_id, seq = data.get("session_id"), data.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise _Violation(4001, "Invalid resume payload.")
        session = self.sessions.get(session_id) if isinstance(session_id, str) else None
        if session is not None and not session.invalidated and session.connection is None and session.detached_at is not None:
            if now - session.detached_at > self.session_timeout:
                self._invalidate(session)
        if session is None or session.invalidated:
            self._enqueue(connection, self._control(9, False))
            return
        if seq > session.seq:
            self._invalidate(session)  # 4007 means "start a new session"
            raise _Violation(4007, "Invalid seq.")
        replay = [encoded for event_seq, _, encoded in session.replay if event_seq > seq]
        oldest_kept = session.replay[0][0] if session.replay else session.seq + 1
        if replay and oldest_kept > seq + 1 and len(session.replay) == session.replay.maxlen:
            self._enqueue(connection, self._control(9, False))  # the replay buffer no longer reaches back to seq
            return
        previous = session.connection
        if previous is not None and previous is not connection and previous.open:
            self._enqueue(previous, self._close_item(previous, 4000, "Session resumed elsewhere."))
        session.connection = connection
        session.detached_at = None
        session.resumes += 1
        connection.session = session
        connection.identified = True
        self._session = session
        for encoded in replay:
            self._enqueue(connection, _Outgoing("message", encoded))
        self._send_dispatch(connection, session, "RESUMED", {}, replay=False)

    # ---------------------------------------------------------------------------------------- command answers

    def _voice_state(self, connection: FakeConnection, session: FakeSession, data: dict[str, Any]) -> None:
        guild_id = data.get("guild_id")
        if guild_id is None:
            raise _Violation(4001, "Invalid voice state payload.")
        channel_id = data.get("channel_id")
        voice_session = secrets.token_hex(16)
        self._send_dispatch(
            connection,
            session,
            "VOICE_STATE_UPDATE",
            {
                "guild_id": str(guild_id),
                "channel_id": None if channel_id is None else str(channel_id),
                "user_id": self.user.get("id"),
                "session_id": voice_session,
                "deaf": False,
                "mute": False,
                "self_deaf": bool(data.get("self_deaf", False)),
                "self_mute": bool(data.get("self_mute", False)),
                "self_video": False,
                "suppress": False,
                "request_to_speak_timestamp": None,
            },
        )
        if channel_id is not None:
            self._send_dispatch(
                connection,
                session,
                "VOICE_SERVER_UPDATE",
                {"token": secrets.token_hex(8), "guild_id": str(guild_id), "endpoint": self.voice_endpoint},
            )

    def _request_members(self, connection: FakeConnection, session: FakeSession, data: dict[str, Any], now: float) -> None:
        guild_id = data.get("guild_id")
        query, user_ids = data.get("query"), data.get("user_ids")
        if guild_id is None or (query is None and user_ids is None):
            raise _Violation(4001, "Invalid request guild members payload.")
        guild_id = str(guild_id)
        nonce = data.get("nonce")
        nonce = nonce if isinstance(nonce, str) and len(nonce.encode()) <= 32 else None
        limit = data.get("limit", 0)
        limit = limit if isinstance(limit, int) and limit >= 0 else 0
        if user_ids is None and query == "" and limit == 0:
            last = self._member_request_times.get(guild_id)
            if last is not None and now - last < 30.0:
                meta: dict[str, Any] = {"guild_id": guild_id}
                if nonce is not None:
                    meta["nonce"] = nonce
                self._send_dispatch(
                    connection, session, "RATE_LIMITED", {"opcode": 8, "retry_after": round(30.0 - (now - last), 3), "meta": meta}
                )
                return
            self._member_request_times[guild_id] = now
        members = self.guild_members.get(guild_id, [])
        not_found: list[str] | None = None
        if user_ids is not None:
            wanted = [str(user_ids)] if not isinstance(user_ids, list) else [str(uid) for uid in user_ids]
            by_id = {str(member.get("user", {}).get("id")): member for member in members}
            chosen = [by_id[uid] for uid in wanted if uid in by_id][:100]
            not_found = [uid for uid in wanted if uid not in by_id]
        else:
            prefix = str(query).lower()
            chosen = [m for m in members if str(m.get("user", {}).get("username", "")).lower().startswith(prefix)]
            if query != "" or limit:
                chosen = chosen[: min(limit or 100, 100) if query != "" else limit]
        chunks = [chosen[i : i + 1000] for i in range(0, len(chosen), 1000)] or [[]]
        for index, chunk in enumerate(chunks):
            body: dict[str, Any] = {
                "guild_id": guild_id,
                "members": chunk,
                "chunk_index": index,
                "chunk_count": len(chunks),
            }
            if not_found is not None and index == 0:
                body["not_found"] = not_found
            if data.get("presences"):
                body["presences"] = []
            if nonce is not None:
                body["nonce"] = nonce
            self._send_dispatch(connection, session, "GUILD_MEMBERS_CHUNK", body)

    def _soundboard(self, connection: FakeConnection, session: FakeSession, data: dict[str, Any]) -> None:
        guild_ids = data.get("guild_ids")
        if not isinstance(guild_ids, list):
            raise _Violation(4001, "Invalid request soundboard sounds payload.")
        for guild_id in guild_ids:
            self._send_dispatch(
                connection,
                session,
                "SOUNDBOARD_SOUNDS",
                {"soundboard_sounds": self.soundboard_sounds.get(str(guild_id), []), "guild_id": str(guild_id)},
            )

    def _channel_info(self, connection: FakeConnection, session: FakeSession, data: dict[str, Any]) -> None:
        guild_id, fields = data.get("guild_id"), data.get("fields")
        if guild_id is None or not isinstance(fields, list):
            raise _Violation(4001, "Invalid request channel info payload.")
        wanted = {name for name in fields if name in ("status", "voice_start_time")}
        channels = [
            {"id": channel["id"], **{key: value for key, value in channel.items() if key in wanted}}
            for channel in self.channel_info.get(str(guild_id), [])
        ]
        self._send_dispatch(connection, session, "CHANNEL_INFO", {"guild_id": str(guild_id), "channels": channels})

