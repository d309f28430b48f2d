"""``ShardProtocol``: the sans-I/O core of a Discord gateway shard.

It owns every protocol decision (heartbeats, zombie detection, IDENTIFY vs RESUME, close-code policy, backoff,
command rate limiting, sequence tracking and replay dedupe) and does no I/O: no sockets, no event loop, no clock.
Every input that depends on time takes ``now`` (monotonic seconds, e.g. ``loop.time()``); randomness comes from the
injected ``rng`` (a ``() -> float`` in [0, 1), default ``random.random``).

Driver contract
===============

The driver (``gateway/shard.py``) owns the websocket connection, ONE timer, the identify queue wait, decompression,
the envelope scan and event delivery. It talks to the protocol only through the calls below.

Inputs (each returns quickly; ``now`` is the driver's monotonic clock)::

    start(now)                                   once, first
    connection_opened(now)                       the websocket handshake succeeded
    connect_failed(now, error=None)              the connect attempt failed (DNS/TCP/TLS/handshake/CONNECT_TIMEOUT)
    receive(op, seq, name, payload, d_start, d_end, now) -> int
                                                 one decompressed payload, scanned by EventFilter.scan (or
                                                 scan_envelope; name is then t or the GATEWAY_* name). Returns bit
                                                 flags: DELIVER when the user should get it (clear for a replayed
                                                 duplicate, a malformed HELLO/READY/op 9, or when not connected; the
                                                 driver still applies the user's filter), PUMP when the outputs below
                                                 may have changed. Only for receive may the driver skip reading the
                                                 outputs, when PUMP is clear (a plain dispatch of a running session).
    fast_lane() -> int | None                    (a query) the sequence of a running session with nothing waiting
                                                 to be sent, or None; while it is not None the driver may take the
                                                 next plain dispatches itself, without receive(): op 0, an integer s
                                                 with sequence < s < 2**63, a name other than READY and RESUMED (what
                                                 receive() would deliver with no output), then report them:
    dispatched(seq, now)                         the last sequence taken in the driver's fast lane
    payload_error(error, now)                    the envelope scan raised PayloadError: reported, skipped
    compression_error(error, now)                the inflater raised CompressionError: leads to Close(4000) + resume
    connection_lost(code, reason, now, *, initiated_by_client=False)
                                                 the connection is finished (exactly once per opened connection):
                                                 code = the peer's close code (1005 if its frame had none), or None
                                                 for a TCP drop/EOF/after Abort; initiated_by_client=True when the
                                                 client side (connection layer) started the close, e.g. on a framing
                                                 ProtocolError (the code is then the one we sent)
    handle_timer(now)                            the timer armed at next_deadline() fired (calling it early is harmless)
    identify_granted(now) -> bool                the identify queue granted the RequestIdentify (False: stale, ignored)
    send_command(payload, now)                   a user command (dict or bytes); ValueError if > 4096 bytes
    close(now, code=1000, reason="")             the user closes the shard

Outputs, to read after EVERY input above (but the query fast_lane and dispatched, which change none), in this order::

    1. for data in proto.data_to_send(): connection.send(data)      # text frames, in order (heartbeats, IDENTIFY,
                                                                     # RESUME, permitted commands)
    2. for action in proto.actions(): ...                            # see below, in order
    3. re-arm the single timer at proto.next_deadline()              # absolute time, or None = no timer

Actions:

- ``Connect(url, resume, attempt)``: open a websocket to ``url`` (with CONNECT_TIMEOUT), reset the inflater, then call
  ``connection_opened`` or ``connect_failed``. Any backoff has already been waited (the protocol emits Connect from
  ``start``/``handle_timer`` only when it is time).
- ``RequestIdentify(shard_number)``: start waiting for an identify slot (``IdentifyQueue.wait_turn``); when it returns
  call ``identify_granted(now)``.
- ``CancelIdentify()``: cancel that wait (the connection went away before the grant).
- ``Close(code, reason)``: send a close frame with ``code`` (never 1000/1001 unless the session is meant to end); the
  connection layer waits for the echo; then ``connection_lost`` must follow. If it has not after CLOSE_TIMEOUT the
  protocol emits ``Abort``.
- ``Abort(reason)``: drop TCP now, no close frame (zombie, missing HELLO, close timeout); ``connection_lost(None, ...)``
  must follow.
- ``Stop(error)``: the shard is finished: cancel any connect in progress, close any remaining connection, stop the timer.
  ``error`` is a ``FatalCloseError`` (fatal close code: raise it from ``events()``/``next_event()``) or None (user close).
  After Stop every input is ignored and ``send_command`` raises.

Decisions (documented because Discord's docs leave them open)
=============================================================

- Zombie rule: Discord's, not twilight's. When the next interval heartbeat is due and no heartbeat ACK has arrived
  since the previous interval heartbeat, the connection is zombied: ``Abort`` (no 1000/1001 close), keep the session,
  resume. An op-1 reply sent just before the tick therefore cannot trip the check before its ACK had time to arrive,
  and an ACK of an op-1 reply proves the connection alive as well. Receiving
  dispatches does not count as liveness: a gateway that streams events but never ACKs is broken by Discord's
  definition. A stalled event loop does not cause false positives in asyncio, which runs ready I/O callbacks before
  expired timers in the same loop iteration.
- A connection that sends no HELLO within HELLO_TIMEOUT is aborted and retried (twilight waits forever).
- Close policy: see ``CLOSE_POLICY`` and ``close_action``. 4007 and 4009 start a new session at once (twilight wastes
  a RESUME). A close we requested ourselves keeps the plan we chose (resume after op 7/op 9 true/compression error,
  new session after op 9 false), unless the peer's code is fatal.
- Backoff: ``attempt`` counts consecutive connections that failed or ended before READY/RESUMED; it is reset to 0 only
  by READY/RESUMED. The delay before a connect is ``backoff_delay(attempt)``: 0 for attempt 0 (reconnect at once after
  a healthy connection), else an "equal jitter" uniform in [d/2, d], d = min(BACKOFF_CAP, BACKOFF_BASE * 2**(attempt-1)).
  So a server that accepts and closes at once gets 0.5-1 s, 1-2 s, 2-4 s, ... never a tight loop. A connection that
  ends before RESUMED but delivered new dispatches (a RESUME's replay, which Discord sends before RESUMED) holds
  ``attempt`` instead, at 1 or more: while events flow the delay stays 0.5-1 s and does not climb to BACKOFF_CAP.
- op 9 false: close 1000, drop the session, reconnect to ``gateway_url`` and IDENTIFY after at least a random
  REIDENTIFY_DELAY (1-5 s, the old Discord rule; it spreads identifies out of the 5 s concurrency window).
- A failed connect clears ``resume_url`` (next attempt goes to ``gateway_url``) but keeps the session (it still resumes).
- Replay dedupe: a dispatch whose ``s`` is <= the last seen sequence is a duplicate (after a resume the server may
  replay events we already delivered) and is not delivered; the sequence never goes backwards within a session.
  Sequence 0 is a real sequence. The sequence is reset when the session is dropped.
- Heartbeat ``d`` is the last sequence (None before any). Heartbeats and close frames bypass the command rate limiter
  but heartbeats are logged in its window; IDENTIFY, RESUME and user commands each take a permit. User commands wait
  (never dropped) until the status is RESUMING or ACTIVE and a permit is free; they are kept across reconnects.
- The token is sent as given (add "Bot " yourself if your server wants it); it is kept in a ``Token`` whose repr/str
  are redacted, and no log record, repr or exception message of this module contains it.
"""

from __future__ import annotations

import enum
import logging
import random
import sys
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, Union
from urllib.parse import urlsplit

from . import _json
from .errors import FatalCloseError, PayloadError, ShardClosedError
from .models import Latency, Session, ShardId, ShardStatus
from .ratelimit import CommandRateLimiter

__all__ = [
    "API_VERSION",
    "GATEWAY_URL",
    "CONNECT_TIMEOUT",
    "HELLO_TIMEOUT",
    "CLOSE_TIMEOUT",
    "MAX_PAYLOAD_SIZE",
    "BACKOFF_BASE",
    "BACKOFF_CAP",
    "REIDENTIFY_DELAY",
    "COMPRESSIONS",
    "CloseAction",
    "CLOSE_POLICY",
    "DELIVER",
    "PUMP",
    "FATAL_CLOSE_CODES",
    "close_action",
    "backoff_delay",
    "build_url",
    "safe_gateway_url",
    "gateway_url_refusal",
    "Token",
    "Connect",
    "RequestIdentify",
    "CancelIdentify",
    "Close",
    "Abort",
    "Stop",
    "Action",
    "ShardProtocol",
]

logger = logging.getLogger("gateway.shard")

API_VERSION = 10
GATEWAY_URL = "wss://gateway.discord.gg"
#: Seconds for TCP + TLS + websocket handshake; enforced by the driver.
CONNECT_TIMEOUT = 10.0
#: Seconds to wait for HELLO after the connection opened before aborting it.
HELLO_TIMEOUT = 20.0
#: Seconds to wait for ``connection_lost`` after a Close before emitting Abort.
CLOSE_TIMEOUT = 5.0
MAX_PAYLOAD_SIZE = 4096
BACKOFF_BASE = 1.0
BACKOFF_CAP = 120.0
REIDENTIFY_DELAY = (1.0, 5.0)
COMPRESSIONS = (None, "zlib-stream", "zstd-stream")
DEFAULT_LARGE_THRESHOLD = 50

OP_DISPATCH, OP_HEARTBEAT, OP_IDENTIFY, OP_RESUME = 0, 1, 2, 6
OP_RECONNECT, OP_INVALID_SESSION, OP_HELLO, OP_HEARTBEAT_ACK = 7, 9, 10, 11
CLOSE_RESUME = 4000  # any code but 1000/1001 keeps the session; twilight's choice


class CloseAction(enum.Enum):
    """What a closed connection means for the session."""

    RESUME = "resume"  # reconnect (to resume_gateway_url) and RESUME if a session exists, else IDENTIFY
    NEW_SESSION = "new_session"  # drop the session, reconnect to gateway_url and IDENTIFY
    FATAL = "fatal"  # stop for good: FatalCloseError


#: Close codes sent by the server (Discord gateway close code table). Anything absent resumes.
CLOSE_POLICY: dict[int, CloseAction] = {
    4000: CloseAction.RESUME,  # unknown error
    4001: CloseAction.RESUME,  # unknown opcode
    4002: CloseAction.RESUME,  # decode error
    4003: CloseAction.RESUME,  # not authenticated (if the session is gone, RESUME gets op 9 false)
    4004: CloseAction.FATAL,  # authentication failed
    4005: CloseAction.RESUME,  # already authenticated
    4007: CloseAction.NEW_SESSION,  # invalid seq: "reconnect and start a new session"
    4008: CloseAction.RESUME,  # rate limited
    4009: CloseAction.NEW_SESSION,  # session timed out: "reconnect and start a new one"
    4010: CloseAction.FATAL,  # invalid shard
    4011: CloseAction.FATAL,  # sharding required
    4012: CloseAction.FATAL,  # invalid API version
    4013: CloseAction.FATAL,  # invalid intents
    4014: CloseAction.FATAL,  # disallowed intents
}
FATAL_CLOSE_CODES = frozenset(code for code, action in CLOSE_POLICY.items() if action is CloseAction.FATAL)
#: Codes that end the session when WE send them.
SESSION_ENDING_CODES = frozenset({1000, 1001})


def close_action(code: int | None, *, by_client: bool = False) -> CloseAction:
    """Policy for a finished connection: ``code`` None (TCP drop) resumes; our own 1000/1001 end the session; a
    server code is looked up in CLOSE_POLICY (other 4xxx, 1xxx from the server: resume)."""
    if code is None:
        return CloseAction.RESUME
    if by_client:
        return CloseAction.NEW_SESSION if code in SESSION_ENDING_CODES else CloseAction.RESUME
    return CLOSE_POLICY.get(code, CloseAction.RESUME)


def backoff_delay(attempt: int, rng: Callable[[], float] = random.random) -> float:
    """Seconds to wait before connect attempt ``attempt`` (0 = at once); equal jitter on a capped exponential."""
    if attempt <= 0:
        return 0.0
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** min(attempt - 1, 32))
    return ceiling * (0.5 + 0.5 * rng())


def build_url(base: str, compression: str | None) -> str:
    """``base + "/?v=10&encoding=json" [+ "&compress=..."]`` (also for resume_gateway_url, keeping the query)."""
    url = f"{base.rstrip('/')}/?v={API_VERSION}&encoding=json"
    return url + f"&compress={compression}" if compression else url


def _redacted_url(url: str) -> str:
    """``scheme://host[:port]/path`` of ``url``, without user info, query or fragment (safe to log)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        return "<unparsable URL>"
    return f"{parts.scheme}://{host}{port}{parts.path}"[:200]


def gateway_url_refusal(candidate: object, configured: str) -> str | None:
    """Why ``candidate`` (a URL the server or a store handed us) must not replace ``configured``, or None if it may.

    Refused: anything but a str; a scheme other than ws/wss; ``ws://`` when ``configured`` is ``wss://`` (a downgrade
    would send the token of the next IDENTIFY/RESUME in clear text); no host; whitespace or control characters.
    """
    if not isinstance(candidate, str):
        return f"not a string ({type(candidate).__name__})"
    if not candidate or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in candidate):
        return "empty or containing whitespace/control characters"
    try:
        parts = urlsplit(candidate)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in 0..65535
    except ValueError:
        return "not a valid URL"
    scheme = parts.scheme.lower()
    if scheme not in ("ws", "wss"):
        return f"scheme {scheme or '(none)'!r} is not ws or wss"
    if scheme == "ws" and configured.lower().startswith("wss://"):
        return "ws:// would downgrade the configured wss:// (the token would travel in clear text)"
    if not host:
        return "no host"
    return None


def safe_gateway_url(candidate: object, configured: str, *, source: str = "gateway URL") -> str:
    """``candidate`` if it may replace ``configured`` (see :func:`gateway_url_refusal`), else ``configured``.

    A refusal is logged as a warning naming ``source`` and the candidate without its user info or query. Use it for
    every URL that comes from the network or from storage: READY's ``resume_gateway_url``, GET /gateway/bot's
    ``url``, a saved session's resume URL.
    """
    reason = gateway_url_refusal(candidate, configured)
    if reason is None:
        assert isinstance(candidate, str)
        return candidate
    shown = _redacted_url(candidate) if isinstance(candidate, str) else type(candidate).__name__
    logger.warning("refused %s %s: %s; using %s", source, shown, reason, _redacted_url(configured))
    return configured


class Token:
    """The bot token, kept out of every repr/str. ``reveal()`` is the only way to read it."""

    __slots__ = ("_value",)

    def __init__(self, value: str | Token) -> None:
        if isinstance(value, Token):
            value = value.reveal()
        if not isinstance(value, str):
            raise TypeError(f"token must be a str, not {type(value).__name__}")
        if not value.strip():
            raise ValueError("token must not be empty")
        if any(ch in value for ch in "\r\n\t\0"):
            raise ValueError("token must not contain control characters")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Token(<redacted>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Token) and other._value == self._value

    def __hash__(self) -> int:
        return hash((Token, self._value))

    def __reduce__(self) -> Any:
        raise TypeError("Token objects are not picklable (that would write the token out)")


# Connection actions -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Connect:
    """Open a websocket to ``url`` now. ``resume``: a RESUME will follow HELLO; ``attempt``: backoff attempt number."""

    url: str
    resume: bool
    attempt: int


@dataclass(frozen=True)
class RequestIdentify:
    """Wait for an identify slot for ``shard_number``, then call ``identify_granted(now)``."""

    shard_number: int


@dataclass(frozen=True)
class CancelIdentify:
    """Cancel the pending identify wait."""


@dataclass(frozen=True)
class Close:
    """Send a websocket close frame with ``code``; ``connection_lost`` must follow."""

    code: int
    reason: str = ""


@dataclass(frozen=True)
class Abort:
    """Drop TCP now without a close frame; ``connection_lost(None, ...)`` must follow."""

    reason: str = ""


@dataclass(frozen=True)
class Stop:
    """The shard is finished; ``error`` is the FatalCloseError, or None after a user close."""

    error: FatalCloseError | None = None


Action = Union[Connect, RequestIdentify, CancelIdentify, Close, Abort, Stop]


class _Phase(enum.Enum):
    IDLE = "idle"  # no connection; a Connect is scheduled at _reconnect_at (or start() not called yet)
    CONNECTING = "connecting"  # Connect emitted, waiting for connection_opened / connect_failed
    OPEN = "open"
    CLOSING = "closing"  # Close/Abort emitted, waiting for connection_lost
    STOPPED = "stopped"


#: Sequences are echoed in heartbeats and RESUME; one of 64 bits or more cannot be encoded there.
_SEQ_LIMIT = 2**63

_OPEN = _Phase.OPEN
_CLOSING = _Phase.CLOSING

#: Bits of :meth:`ShardProtocol.receive`'s result: deliver the payload to the user; read the outputs now.
DELIVER = 1
PUMP = 2


def _default_properties() -> dict[str, str]:
    return {"os": sys.platform, "browser": "gateway", "device": "gateway"}


class ShardProtocol:
    """Sans-I/O state machine of one shard; see the module docstring for the driver contract.

    Raises at construction: TypeError/ValueError for a bad ``shard_id``, token, ``intents``, ``compression``,
    ``large_threshold`` (50..250), ``properties`` or ``presence``, or an IDENTIFY over 4096 bytes.
    ``session``/``resume_url``: a saved session (``Session.from_json``) to RESUME after a process restart.
    ``ratelimit_commands=False`` disables the command limiter (for proxies that do their own).
    """

    def __init__(
        self,
        shard_id: ShardId,
        token: str | Token,
        intents: int,
        *,
        gateway_url: str = GATEWAY_URL,
        compression: str | None = None,
        large_threshold: int = DEFAULT_LARGE_THRESHOLD,
        presence: Mapping[str, Any] | None = None,
        properties: Mapping[str, str] | None = None,
        session: Session | None = None,
        resume_url: str | None = None,
        rng: Callable[[], float] = random.random,
        ratelimit_commands: bool = True,
    ) -> None:
        if not isinstance(shard_id, ShardId):
            raise TypeError(f"shard_id must be a ShardId, not {type(shard_id).__name__}")
        self._shard_id = shard_id
        self._token = Token(token)
        if isinstance(intents, bool) or not isinstance(intents, int):
            raise TypeError(f"intents must be an int or Intents, not {type(intents).__name__}")
        if intents < 0:
            raise ValueError(f"intents must be >= 0, got {int(intents)}")
        if compression not in COMPRESSIONS:
            raise ValueError(f"compression must be None, 'zlib-stream' or 'zstd-stream', got {compression!r}")
        if not isinstance(gateway_url, str) or not gateway_url.startswith(("ws://", "wss://")):
            raise ValueError("gateway_url must be a ws:// or wss:// URL")
        if isinstance(large_threshold, bool) or not isinstance(large_threshold, int):
            raise TypeError(f"large_threshold must be an int, not {type(large_threshold).__name__}")
        if not 50 <= large_threshold <= 250:
            raise ValueError(f"large_threshold must be in 50..250, got {large_threshold}")
        if session is not None and not isinstance(session, Session):
            raise TypeError(f"session must be a Session, not {type(session).__name__}")
        self._intents = int(intents)
        self._compression = compression
        self._gateway_url = gateway_url
        self._large_threshold = large_threshold
        self._properties = self._check_properties(properties)
        self._presence = self._check_presence(presence)
        self._rng = rng
        self._ratelimit_commands = ratelimit_commands
        identify_size = len(self._identify_payload())
        if identify_size > MAX_PAYLOAD_SIZE:
            raise ValueError(f"IDENTIFY would be {identify_size} bytes; Discord's limit is {MAX_PAYLOAD_SIZE}")

        self._status = ShardStatus.DISCONNECTED
        self._phase = _Phase.IDLE
        self._started = False
        self._now = 0.0
        self._session_id: str | None = session.id if session is not None else None
        self._sequence: int | None = session.sequence if session is not None else None
        if resume_url is not None and not isinstance(resume_url, str):
            raise TypeError(f"resume_url must be a str or None, not {type(resume_url).__name__}")
        self._resume_url: str | None = None
        if session is not None and resume_url:
            self._resume_url = self._checked_resume_url(resume_url, "saved resume_url")
        self._attempt = 0
        self._reconnect_at: float | None = None
        self._reidentify_delay = False
        self._reached_active = False
        self._sequence_at_open: int | None = None
        self._plan_after_close = CloseAction.RESUME
        self._close_deadline: float | None = None
        self._user_closing = False
        self._user_close_code = 1000
        self._fatal: FatalCloseError | None = None
        # per connection
        self._got_hello = False
        self._hello_deadline: float | None = None
        self._interval: float | None = None
        self._next_heartbeat_at: float | None = None
        self._limiter: CommandRateLimiter | None = None
        self._awaiting_identify = False
        self._identify_ready = False
        self._resume_pending = False
        self._latency = Latency()
        self._beat_unacked = False  # an interval heartbeat went out and no ACK has arrived since (zombie check)
        self._close_code_sent: int | None = None  # code of the Close we emitted for the connection being closed
        # queues
        self._commands: deque[bytes] = deque()
        self._outgoing: list[bytes] = []
        self._actions: list[Action] = []
        self.payload_errors = 0

    # -- validation helpers ------------------------------------------------------------------------------------

    @staticmethod
    def _check_properties(properties: Mapping[str, str] | None) -> dict[str, str]:
        merged = _default_properties()
        if properties is None:
            return merged
        if not isinstance(properties, Mapping):
            raise TypeError(f"properties must be a mapping, not {type(properties).__name__}")
        for key, value in properties.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise TypeError("properties keys and values must be str")
            merged[key] = value
        return merged

    @staticmethod
    def _check_presence(presence: Mapping[str, Any] | None) -> dict[str, Any] | None:
        if presence is None:
            return None
        if not isinstance(presence, Mapping):
            raise TypeError(f"presence must be a mapping, not {type(presence).__name__}")
        if presence.get("op") == 3 and isinstance(presence.get("d"), Mapping):
            presence = presence["d"]  # accept commands.update_presence(...) as well as commands.presence(...)
        return dict(presence)

    # -- public read-only state --------------------------------------------------------------------------------

    @property
    def shard_id(self) -> ShardId:
        return self._shard_id

    @property
    def status(self) -> ShardStatus:
        return self._status

    @property
    def session(self) -> Session | None:
        """The resumable session (id + last sequence), or None."""
        if self._session_id is None:
            return None
        return Session(self._session_id, self._sequence if self._sequence is not None else 0)

    @property
    def sequence(self) -> int | None:
        return self._sequence

    @property
    def resume_url(self) -> str | None:
        return self._resume_url

    @property
    def gateway_url(self) -> str:
        return self._gateway_url

    @property
    def latency(self) -> Latency:
        """A snapshot of the heartbeat round trips of the current connection."""
        return self._latency.copy()

    @property
    def heartbeat_interval(self) -> float | None:
        """Seconds, from the last HELLO; None when not connected."""
        return self._interval

    @property
    def ratelimiter(self) -> CommandRateLimiter | None:
        return self._limiter

    @property
    def attempt(self) -> int:
        """Consecutive connections that failed or ended before READY/RESUMED."""
        return self._attempt

    @property
    def reconnect_at(self) -> float | None:
        return self._reconnect_at if self._phase is _Phase.IDLE else None

    @property
    def pending_commands(self) -> int:
        return len(self._commands)

    @property
    def fatal_error(self) -> FatalCloseError | None:
        return self._fatal

    @property
    def stopped(self) -> bool:
        return self._phase is _Phase.STOPPED

    @property
    def connected(self) -> bool:
        return self._phase in (_Phase.OPEN, _Phase.CLOSING)

    def connect_url(self) -> str:
        """The URL the next Connect uses: resume_gateway_url when resuming (and known), else gateway_url."""
        base = self._resume_url if self._session_id is not None and self._resume_url else self._gateway_url
        return build_url(base, self._compression)

    def __repr__(self) -> str:
        return (
            f"ShardProtocol(shard={self._shard_id}, status={self._status.name}, phase={self._phase.value}, "
            f"sequence={self._sequence}, attempt={self._attempt})"
        )

    # -- outputs -----------------------------------------------------------------------------------------------

    def data_to_send(self) -> list[bytes]:
        """Drain the payloads to write now, in order (each one websocket text frame)."""
        out, self._outgoing = self._outgoing, []
        return out

    def actions(self) -> list[Action]:
        """Drain the connection actions to carry out, in order."""
        out, self._actions = self._actions, []
        return out

    def next_deadline(self) -> float | None:
        """Absolute time at which the driver must call ``handle_timer``; None = no timer needed."""
        phase = self._phase
        if phase is _Phase.IDLE:
            return self._reconnect_at
        if phase is _Phase.CLOSING:
            return self._close_deadline
        if phase is not _Phase.OPEN:
            return None
        deadlines = [t for t in (self._hello_deadline, self._next_heartbeat_at) if t is not None]
        if self._limiter is not None and self._blocked_on_limiter():
            deadlines.append(self._limiter.next_available(self._now))
        return min(deadlines) if deadlines else None

    def _blocked_on_limiter(self) -> bool:
        if self._identify_ready or self._resume_pending:
            return True
        return bool(self._commands) and self._status.is_identified

    # -- inputs: lifecycle -------------------------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Begin: emits Connect at once."""
        self._now = now
        if self._started or self._phase is _Phase.STOPPED:
            return
        self._started = True
        self._schedule_connect(now, 0.0)

    def connection_opened(self, now: float) -> None:
        self._now = now
        if self._phase is not _Phase.CONNECTING:
            logger.debug("shard %s: connection_opened ignored in phase %s", self._shard_id, self._phase.value)
            return
        self._phase = _Phase.OPEN
        self._status = ShardStatus.IDENTIFYING
        self._reached_active = False
        self._sequence_at_open = self._sequence
        self._got_hello = False
        self._hello_deadline = now + HELLO_TIMEOUT
        self._latency = Latency()
        logger.debug("shard %s: connected, waiting for HELLO", self._shard_id)

    def connect_failed(self, now: float, error: BaseException | None = None) -> None:
        self._now = now
        if self._phase is not _Phase.CONNECTING:
            return
        self._resume_url = None
        self._attempt += 1
        self._status = ShardStatus.DISCONNECTED
        delay = backoff_delay(self._attempt, self._rng)
        logger.warning(
            "shard %s: connect failed (%s); retrying in %.2f s (attempt %d)",
            self._shard_id, type(error).__name__ if error is not None else "unknown error", delay, self._attempt,
        )
        self._schedule_connect(now, delay)

    def connection_lost(self, code: int | None, reason: str, now: float, *, initiated_by_client: bool = False) -> None:
        self._now = now
        if self._phase not in (_Phase.OPEN, _Phase.CLOSING):
            logger.debug("shard %s: connection_lost ignored in phase %s", self._shard_id, self._phase.value)
            return
        we_closed = self._phase is _Phase.CLOSING
        self._end_connection()
        if self._user_closing:
            if self._user_close_code in SESSION_ENDING_CODES:
                self._drop_session()
            self._stop(None)
            logger.info("shard %s: closed by the user (code %s)", self._shard_id, self._user_close_code)
            return
        # The code is ours (not the peer's) only for a close the connection layer started, or when it is the code of
        # our own Close echoed back; a fatal code the peer sends in answer to our Close still ends the shard.
        ours = initiated_by_client and (not we_closed or code == self._close_code_sent)
        if code in FATAL_CLOSE_CODES and not ours:
            plan = CloseAction.FATAL
        elif we_closed:
            plan = self._plan_after_close
        else:
            plan = close_action(code, by_client=initiated_by_client)
        if plan is CloseAction.FATAL:
            assert code is not None
            self._status = ShardStatus.FATALLY_CLOSED
            self._stop(FatalCloseError(code, reason, self._shard_id.number))
            logger.error("shard %s: fatal close code %d (%s); not reconnecting", self._shard_id, code, reason)
            return
        if plan is CloseAction.NEW_SESSION:
            self._drop_session()
        if not self._reached_active:
            if self._replay_progressed():  # a RESUME's replay was flowing: hold, do not climb
                self._attempt = max(self._attempt, 1)
            else:
                self._attempt += 1
        delay = backoff_delay(self._attempt, self._rng)
        if self._reidentify_delay:
            self._reidentify_delay = False
            low, high = REIDENTIFY_DELAY
            delay = max(delay, low + (high - low) * self._rng())
        self._status = ShardStatus.DISCONNECTED
        logger.info(
            "shard %s: connection lost (code %s, %s); %s in %.2f s",
            self._shard_id, code, "closed by us" if we_closed or initiated_by_client else "by peer",
            "resuming" if self._session_id is not None else "identifying", delay,
        )
        self._schedule_connect(now, delay)

    def close(self, now: float, code: int = 1000, reason: str = "") -> None:
        """User close. 1000/1001 end the session (Discord shows the bot offline); other codes keep it resumable,
        e.g. to save ``session`` for a restart. Emits Close (then Stop after connection_lost), or Stop at once."""
        self._now = now
        if self._phase is _Phase.STOPPED or self._user_closing:
            return
        self._user_closing = True
        self._user_close_code = code
        if self._phase is _Phase.OPEN:
            self._begin_close(now, Close(code, reason), CloseAction.RESUME)
        elif self._phase is _Phase.CLOSING:
            pass  # Stop follows connection_lost
        else:
            if code in SESSION_ENDING_CODES:
                self._drop_session()
            self._stop(None)

    # -- inputs: messages --------------------------------------------------------------------------------------

    def receive(self, op: int, seq: int | None, name: str | None, payload: bytes, d_start: int, d_end: int,
                now: float) -> int:
        """Process one scanned payload; return :data:`DELIVER` and/or :data:`PUMP` (see the driver contract)."""
        self._now = now
        # Fast path for the steady state: the next dispatch of an established session (the general path below
        # decides the same; this one skips its branches; fast_lane() states the same rule for the driver, without
        # queued commands). Module aliases of the phases: an Enum attribute costs more than the rest of this test.
        if op == 0 and self._phase is _OPEN and seq is not None and name != "READY" and name != "RESUMED":
            last = self._sequence
            if last is not None and last < seq < _SEQ_LIMIT and not self._resume_pending and not self._identify_ready:
                self._sequence = seq
                if self._commands and self._got_hello:
                    self._flush(now)
                    return DELIVER | PUMP if self._outgoing or self._actions else DELIVER
                return DELIVER
        if self._phase is not _OPEN and self._phase is not _CLOSING:
            logger.debug("shard %s: payload op %d ignored in phase %s", self._shard_id, op, self._phase.value)
            return 0
        closing = self._phase is _CLOSING
        if op == OP_DISPATCH:
            deliver = self._on_dispatch(seq, name, payload, d_start, d_end, now, closing)
        elif op == OP_HEARTBEAT_ACK:
            self._beat_unacked = False
            if self._latency.record_received(now) is None:
                logger.debug("shard %s: unrequested heartbeat ACK ignored", self._shard_id)
            deliver = True
        elif closing:
            deliver = True  # a connection we are closing: its control messages change nothing
        elif op == OP_HELLO:
            deliver = self._on_hello(payload, d_start, d_end, now)
        elif op == OP_HEARTBEAT:
            self._send_heartbeat(now)
            deliver = True
        elif op == OP_RECONNECT:
            logger.info("shard %s: server asked to reconnect (op 7)", self._shard_id)
            self._begin_close(now, Close(CLOSE_RESUME, "reconnect requested"), CloseAction.RESUME)
            deliver = True
        elif op == OP_INVALID_SESSION:
            deliver = self._on_invalid_session(payload, d_start, d_end, now)
        else:
            logger.info("shard %s: received an unknown opcode: %d", self._shard_id, op)
            deliver = True
        self._flush(now)
        return DELIVER | PUMP if deliver else PUMP

    def fast_lane(self) -> int | None:
        """The sequence when the driver may take plain dispatches itself (see the driver contract), else None."""
        if self._phase is _OPEN and not self._resume_pending and not self._identify_ready and not self._commands:
            return self._sequence
        return None

    def dispatched(self, seq: int, now: float) -> None:
        """The driver's fast lane took plain dispatches up to ``seq`` (each one receive() would have delivered with
        no output: only the sequence moves)."""
        self._now = now
        self._sequence = seq

    def payload_error(self, error: BaseException, now: float) -> None:
        """A payload that could not be scanned: reported (logged, counted) and skipped; the session lives on."""
        self._now = now
        self.payload_errors += 1
        size = len(getattr(error, "payload", b"") or b"")
        logger.warning("shard %s: skipped a malformed payload (%d bytes): %s", self._shard_id, size, error)

    def compression_error(self, error: BaseException, now: float) -> None:
        """The compressed stream is corrupt: close with 4000 and resume on a fresh connection."""
        self._now = now
        if self._phase is not _Phase.OPEN:
            return
        logger.warning("shard %s: corrupt compressed stream (%s); reconnecting to resume", self._shard_id, error)
        self._begin_close(now, Close(CLOSE_RESUME, "corrupt compressed stream"), CloseAction.RESUME)

    def handle_timer(self, now: float) -> None:
        """The timer armed at ``next_deadline()`` fired; does whatever is due at ``now``."""
        self._now = now
        phase = self._phase
        if phase is _Phase.IDLE:
            if self._reconnect_at is not None and now >= self._reconnect_at:
                self._emit_connect()
        elif phase is _Phase.CLOSING:
            if self._close_deadline is not None and now >= self._close_deadline:
                self._close_deadline = None
                logger.warning("shard %s: close handshake timed out; dropping the connection", self._shard_id)
                self._actions.append(Abort("close timed out"))
        elif phase is _Phase.OPEN:
            if self._hello_deadline is not None and now >= self._hello_deadline:
                logger.warning("shard %s: no HELLO within %.0f s; reconnecting", self._shard_id, HELLO_TIMEOUT)
                self._begin_close(now, Abort("no HELLO"), CloseAction.RESUME)
                return
            if self._next_heartbeat_at is not None and now >= self._next_heartbeat_at:
                if self._beat_unacked:
                    logger.warning(
                        "shard %s: no heartbeat ACK within an interval; connection zombied, reconnecting to resume",
                        self._shard_id,
                    )
                    self._begin_close(now, Abort("zombied connection"), CloseAction.RESUME)
                    return
                self._send_heartbeat(now)
                self._beat_unacked = True
                assert self._interval is not None
                self._next_heartbeat_at = now + self._interval
            self._flush(now)

    def identify_granted(self, now: float) -> bool:
        """The identify queue granted our turn: IDENTIFY goes out (as soon as the limiter permits)."""
        self._now = now
        if not self._awaiting_identify or self._phase is not _Phase.OPEN:
            logger.debug("shard %s: stale identify grant ignored", self._shard_id)
            return False
        self._awaiting_identify = False
        self._identify_ready = True
        self._flush(now)
        return True

    def send_command(self, payload: Mapping[str, Any] | bytes | bytearray | memoryview, now: float) -> None:
        """Queue a user command (a payload dict, e.g. from gateway.commands, or its JSON bytes).

        Raises ValueError if it serialises to more than 4096 bytes or is an IDENTIFY/RESUME/HEARTBEAT dict, TypeError
        for another type, ShardClosedError/FatalCloseError once the shard stopped. Nothing is queued on error.
        """
        self._now = now
        if isinstance(payload, (bytes, bytearray, memoryview)):
            data = bytes(payload)
        elif isinstance(payload, Mapping):
            op = payload.get("op")
            if isinstance(op, bool) or not isinstance(op, int):
                raise ValueError("a command payload needs an int 'op'")
            if op in (OP_HEARTBEAT, OP_IDENTIFY, OP_RESUME):
                raise ValueError(f"op {op} is sent by the shard itself, not as a user command")
            data = _json.dumps(dict(payload))
        else:
            raise TypeError(f"a command must be a dict or bytes, not {type(payload).__name__}")
        if len(data) > MAX_PAYLOAD_SIZE:
            raise ValueError(f"command payload is {len(data)} bytes; Discord's limit is {MAX_PAYLOAD_SIZE}")
        if self._phase is _Phase.STOPPED:
            if self._fatal is not None:
                raise FatalCloseError(self._fatal.code, self._fatal.reason, self._fatal.shard_id)
            raise ShardClosedError("the shard is closed; no more commands can be sent")
        self._commands.append(data)
        self._flush(now)

    # -- handlers ----------------------------------------------------------------------------------------------

    def _decode_d(self, payload: bytes, d_start: int, d_end: int) -> Any:
        if d_start < 0:
            return None
        try:
            return _json.loads(payload[d_start:d_end])
        except _json.DECODE_ERRORS as exc:
            raise PayloadError(f"invalid JSON in d: {exc}", payload) from None

    def _report(self, message: str, payload: bytes, now: float) -> bool:
        self.payload_error(PayloadError(message, payload), now)
        return False

    def _on_hello(self, payload: bytes, d_start: int, d_end: int, now: float) -> bool:
        if self._got_hello:
            logger.warning("shard %s: second HELLO on one connection ignored", self._shard_id)
            return True
        try:
            d = self._decode_d(payload, d_start, d_end)
        except PayloadError as exc:
            return self._report(f"HELLO: {exc}", payload, now)
        interval_ms = d.get("heartbeat_interval") if isinstance(d, dict) else None
        if isinstance(interval_ms, bool) or not isinstance(interval_ms, (int, float)) or interval_ms <= 0:
            return self._report("HELLO without a positive heartbeat_interval", payload, now)
        self._got_hello = True
        self._hello_deadline = None
        self._interval = interval_ms / 1000.0
        self._next_heartbeat_at = now + self._interval * self._rng()
        self._limiter = CommandRateLimiter(self._interval) if self._ratelimit_commands else None
        self._latency = Latency()
        self._beat_unacked = False
        if self._session_id is not None:
            self._status = ShardStatus.RESUMING
            self._resume_pending = True
            logger.debug("shard %s: HELLO (interval %.3f s), resuming", self._shard_id, self._interval)
        else:
            self._status = ShardStatus.IDENTIFYING
            self._awaiting_identify = True
            self._actions.append(RequestIdentify(self._shard_id.number))
            logger.debug("shard %s: HELLO (interval %.3f s), waiting for an identify slot",
                         self._shard_id, self._interval)
        return True

    def _on_invalid_session(self, payload: bytes, d_start: int, d_end: int, now: float) -> bool:
        try:
            resumable = self._decode_d(payload, d_start, d_end)
        except PayloadError as exc:
            return self._report(f"INVALID_SESSION: {exc}", payload, now)
        if not isinstance(resumable, bool):
            return self._report("INVALID_SESSION whose d is not a boolean", payload, now)
        if resumable:
            logger.info("shard %s: session invalidated (resumable); reconnecting to resume", self._shard_id)
            self._begin_close(now, Close(CLOSE_RESUME, "invalid session, resuming"), CloseAction.RESUME)
        else:
            logger.info("shard %s: session invalidated; starting a new session", self._shard_id)
            self._drop_session()
            self._reidentify_delay = True
            self._begin_close(now, Close(1000, "invalid session"), CloseAction.NEW_SESSION)
        return True

    def _on_dispatch(self, seq: int | None, name: str | None, payload: bytes, d_start: int, d_end: int,
                     now: float, closing: bool) -> bool:
        if seq is not None and not 0 <= seq < _SEQ_LIMIT:
            # It would be echoed in every heartbeat and RESUME (orjson cannot even encode one over 64 bits).
            return self._report(f"dispatch {name} with an out-of-range sequence number", payload, now)
        if seq is not None and self._sequence is not None and seq <= self._sequence:
            logger.debug("shard %s: duplicate dispatch %s (s=%d <= %d) not delivered",
                         self._shard_id, name, seq, self._sequence)
            return False
        if closing and self._plan_after_close is CloseAction.NEW_SESSION:
            return True  # late events of a session being dropped: delivered, but they must not move the sequence
        if name == "READY" and not closing:
            try:
                d = self._decode_d(payload, d_start, d_end)
            except PayloadError as exc:
                return self._report(f"READY: {exc}", payload, now)
            session_id = d.get("session_id") if isinstance(d, dict) else None
            if not isinstance(session_id, str) or not session_id:
                return self._report("READY without a session_id", payload, now)
            resume_url = d.get("resume_gateway_url")
            self._session_id = session_id
            self._resume_url = self._checked_resume_url(resume_url, "READY resume_gateway_url") if resume_url else None
            self._become_active("READY")
        elif name == "RESUMED" and not closing:
            self._become_active("RESUMED")
        if seq is not None:
            self._sequence = seq
        else:
            logger.warning("shard %s: dispatch %s without a sequence", self._shard_id, name)
        return True

    def _checked_resume_url(self, candidate: object, source: str) -> str | None:
        """``candidate`` if it is a safe resume URL for this shard, else None (resume on ``gateway_url``)."""
        checked = safe_gateway_url(candidate, self._gateway_url, source=f"shard {self._shard_id}: {source}")
        return checked if checked == candidate else None

    def _replay_progressed(self) -> bool:
        """This connection delivered new dispatches (the sequence moved up; a dropped session does not count)."""
        at_open, now_at = self._sequence_at_open, self._sequence
        return now_at is not None and (at_open is None or now_at > at_open)

    def _become_active(self, via: str) -> None:
        self._status = ShardStatus.ACTIVE
        self._reached_active = True
        self._attempt = 0
        logger.info("shard %s: %s, active", self._shard_id, via)

    # -- internals ---------------------------------------------------------------------------------------------

    def _identify_payload(self) -> bytes:
        d: dict[str, Any] = {
            "token": self._token.reveal(),
            "properties": self._properties,
            "compress": False,
            "large_threshold": self._large_threshold,
            "shard": self._shard_id.to_list(),
            "intents": self._intents,
        }
        if self._presence is not None:
            d["presence"] = self._presence
        return _json.dumps({"op": OP_IDENTIFY, "d": d})

    def _resume_payload(self) -> bytes:
        seq = self._sequence if self._sequence is not None else 0
        return _json.dumps(
            {"op": OP_RESUME, "d": {"token": self._token.reveal(), "session_id": self._session_id, "seq": seq}}
        )

    def _send_heartbeat(self, now: float) -> None:
        self._outgoing.append(_json.dumps({"op": OP_HEARTBEAT, "d": self._sequence}))
        if self._limiter is not None:
            self._limiter.record_unlimited(now)
        self._latency.record_sent(now)

    def _permit(self, now: float) -> bool:
        return self._limiter is None or self._limiter.acquire(now)

    def _flush(self, now: float) -> None:
        if self._phase is not _OPEN or not self._got_hello:
            return
        if self._resume_pending:
            if not self._permit(now):
                return
            self._resume_pending = False
            self._outgoing.append(self._resume_payload())
        if self._identify_ready:
            if not self._permit(now):
                return
            self._identify_ready = False
            self._outgoing.append(self._identify_payload())
            logger.debug("shard %s: IDENTIFY sent", self._shard_id)
        if not self._status.is_identified:
            return
        commands = self._commands
        while commands and self._permit(now):
            self._outgoing.append(commands.popleft())

    def _begin_close(self, now: float, action: Close | Abort, plan: CloseAction) -> None:
        if self._phase is not _Phase.OPEN:
            return
        self._phase = _Phase.CLOSING
        self._plan_after_close = plan
        self._close_deadline = now + CLOSE_TIMEOUT if isinstance(action, Close) else None
        self._close_code_sent = action.code if isinstance(action, Close) else None
        self._stop_timers()
        self._actions.append(action)

    def _stop_timers(self) -> None:
        self._hello_deadline = None
        self._next_heartbeat_at = None
        self._resume_pending = False
        self._identify_ready = False
        if self._awaiting_identify:
            self._awaiting_identify = False
            self._actions.append(CancelIdentify())

    def _end_connection(self) -> None:
        self._stop_timers()
        self._close_deadline = None
        self._limiter = None
        self._interval = None
        self._got_hello = False
        self._phase = _Phase.IDLE

    def _drop_session(self) -> None:
        self._session_id = None
        self._sequence = None
        self._resume_url = None

    def _schedule_connect(self, now: float, delay: float) -> None:
        self._phase = _Phase.IDLE
        self._reconnect_at = now + delay
        if delay <= 0:
            self._emit_connect()

    def _emit_connect(self) -> None:
        resume = self._session_id is not None
        self._actions.append(Connect(self.connect_url(), resume, self._attempt))
        self._phase = _Phase.CONNECTING
        self._reconnect_at = None

    def _stop(self, error: FatalCloseError | None) -> None:
        self._stop_timers()
        self._phase = _Phase.STOPPED
        self._reconnect_at = None
        self._close_deadline = None
        self._fatal = error
        if self._status is not ShardStatus.FATALLY_CLOSED:
            self._status = ShardStatus.DISCONNECTED
        self._actions.append(Stop(error))
