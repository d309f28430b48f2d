"""``GET /gateway/bot``: the gateway URL, the recommended shard count and the session start limit.

:func:`fetch_gateway_info` is the only HTTP request this package makes (at start-up and when resharding). Contract:

- headers ``Authorization: Bot <token>`` (a token already starting with ``"Bot "`` is not prefixed twice) and
  ``User-Agent: DiscordBot (url, version)``;
- 200: the body is validated into a frozen :class:`GatewayInfo`; a body that is not what Discord documents raises
  :class:`~gateway.errors.HTTPError` (status 200) naming the bad field, never retried;
- 401: :class:`~gateway.errors.AuthenticationError` at once, no retry;
- 429: waits ``retry_after`` (body, float seconds; else the ``Retry-After`` header) and retries;
- 5xx, connection errors, timeouts and unreadable responses: retried with jittered exponential backoff;
- every retry is bounded by :class:`RetryPolicy` (attempts and total time); then :class:`~gateway.errors.HTTPError`;
- other statuses (400, 403, 404, ...): :class:`~gateway.errors.HTTPError` at once.

The token is kept in a :class:`~gateway.protocol.Token` and appears in no log, repr or exception message.

**Why no HTTP library.** One small GET per start-up or reshard does not justify a dependency (aiohttp, httpx), and
``urllib`` would have to run in a thread that a cancelled start-up cannot stop. So this module speaks just enough
HTTP/1.1 over ``asyncio.open_connection``: one request per connection (``Connection: close``), ``Content-Length``,
chunked or read-to-EOF bodies, a 1 MiB ceiling on the response, TLS with certificate verification by default (the
same ``ssl`` context option as the Shard). It is cancellable like any coroutine and needs no thread.

The retry decision is a pure function, :func:`retry_delay`, with the attempt number, the elapsed time and the
jitter passed in (tested without sockets); :func:`fetch_gateway_info` is the thin driver around it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import ssl as ssl_module
from dataclasses import dataclass
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

from .errors import AuthenticationError, HTTPError
from .protocol import Token

__all__ = [
    "DEFAULT_API_URL",
    "LIBRARY_URL",
    "GatewayInfo",
    "SessionStartLimit",
    "RetryPolicy",
    "retry_delay",
    "user_agent",
    "authorization_header",
    "fetch_gateway_info",
]

logger = logging.getLogger("gateway.http")

DEFAULT_API_URL = "https://discord.com/api/v10"
#: The URL in the ``DiscordBot (url, version)`` User-Agent Discord asks for.
LIBRARY_URL = "https://pypi.org/project/gateway/"
#: Largest response (status line, headers and body) read before giving up on it.
MAX_RESPONSE_SIZE = 1 << 20
_MAX_HEADERS = 100


# ------------------------------------------------------------------------------------------------------- models


def _require_int(data: Mapping[str, Any], key: str, where: str, minimum: int) -> int:
    if key not in data:
        raise ValueError(f"{where}.{key} is missing")
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{where}.{key} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{where}.{key} must be >= {minimum}, got {value}")
    return value


@dataclass(frozen=True)
class SessionStartLimit:
    """How many sessions (IDENTIFYs) the bot may still start: ``remaining`` of ``total`` until ``reset_after``
    seconds have passed (Discord sends milliseconds; this is seconds), and ``max_concurrency`` IDENTIFYs per 5 s
    (one per bucket ``shard_id % max_concurrency``). Construction validates the fields (TypeError/ValueError)."""

    total: int
    remaining: int
    reset_after: float
    max_concurrency: int

    def __post_init__(self) -> None:
        for name, minimum in (("total", 0), ("remaining", 0), ("max_concurrency", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"SessionStartLimit.{name} must be an int, not {type(value).__name__}")
            if value < minimum:
                raise ValueError(f"SessionStartLimit.{name} must be >= {minimum}, got {value}")
        reset_after = self.reset_after
        if isinstance(reset_after, bool) or not isinstance(reset_after, (int, float)):
            raise TypeError(f"SessionStartLimit.reset_after must be a number of seconds, not {type(reset_after).__name__}")
        if not math.isfinite(reset_after) or reset_after < 0:
            raise ValueError(f"SessionStartLimit.reset_after must be a finite number >= 0, got {reset_after}")
        object.__setattr__(self, "reset_after", float(reset_after))

    @classmethod
    def from_dict(cls, data: Any) -> SessionStartLimit:
        """From Discord's JSON object (``reset_after`` in ms). TypeError/ValueError name the bad field."""
        where = "session_start_limit"
        if not isinstance(data, Mapping):
            raise TypeError(f"{where} must be an object, not {type(data).__name__}")
        if "reset_after" not in data:
            raise ValueError(f"{where}.reset_after is missing")
        reset_ms = data["reset_after"]
        if isinstance(reset_ms, bool) or not isinstance(reset_ms, (int, float)):
            raise TypeError(f"{where}.reset_after must be a number of milliseconds, not {type(reset_ms).__name__}")
        if not math.isfinite(reset_ms) or reset_ms < 0:
            raise ValueError(f"{where}.reset_after must be a finite number >= 0, got {reset_ms}")
        return cls(
            total=_require_int(data, "total", where, 0),
            remaining=_require_int(data, "remaining", where, 0),
            reset_after=reset_ms / 1000.0,
            max_concurrency=_require_int(data, "max_concurrency", where, 1),
        )

    def to_dict(self) -> dict[str, Any]:
        """Discord's JSON shape (``reset_after`` back in whole milliseconds)."""
        return {
            "total": self.total,
            "remaining": self.remaining,
            "reset_after": round(self.reset_after * 1000),
            "max_concurrency": self.max_concurrency,
        }


@dataclass(frozen=True)
class GatewayInfo:
    """The answer of ``GET /gateway/bot``: the gateway ``url`` (``ws://`` or ``wss://``), the recommended number of
    ``shards`` and the :class:`SessionStartLimit`. Construction validates the fields (TypeError/ValueError)."""

    url: str
    shards: int
    session_start_limit: SessionStartLimit

    def __post_init__(self) -> None:
        if not isinstance(self.url, str):
            raise TypeError(f"GatewayInfo.url must be a str, not {type(self.url).__name__}")
        if urlsplit(self.url).scheme not in ("ws", "wss") or not urlsplit(self.url).hostname:
            raise ValueError(f"GatewayInfo.url must be a ws:// or wss:// URL, got {self.url!r}")
        if isinstance(self.shards, bool) or not isinstance(self.shards, int):
            raise TypeError(f"GatewayInfo.shards must be an int, not {type(self.shards).__name__}")
        if self.shards < 1:
            raise ValueError(f"GatewayInfo.shards must be >= 1, got {self.shards}")
        if not isinstance(self.session_start_limit, SessionStartLimit):
            raise TypeError("GatewayInfo.session_start_limit must be a SessionStartLimit")

    @classmethod
    def from_dict(cls, data: Any) -> GatewayInfo:
        """From Discord's JSON object; unknown keys are ignored. TypeError/ValueError name the bad field."""
        if not isinstance(data, Mapping):
            raise TypeError(f"the response must be a JSON object, not {type(data).__name__}")
        if "url" not in data:
            raise ValueError("url is missing")
        if "session_start_limit" not in data:
            raise ValueError("session_start_limit is missing")
        return cls(
            url=data["url"],
            shards=_require_int(data, "shards", "gateway", 1),
            session_start_limit=SessionStartLimit.from_dict(data["session_start_limit"]),
        )

    def to_dict(self) -> dict[str, Any]:
        """Discord's JSON shape."""
        return {"url": self.url, "shards": self.shards, "session_start_limit": self.session_start_limit.to_dict()}


# ------------------------------------------------------------------------------------------------ retry policy


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds of :func:`fetch_gateway_info`'s retries.

    ``max_attempts``: requests in all (the first one included); ``max_elapsed``: seconds from the first request
    after which no retry is started (a wait that would end later is not begun); backoff before retry ``n``
    (1-based) is equal-jittered in ``[d/2, d]`` with ``d = min(max_delay, base_delay * 2**(n-1))``; a 429's
    ``retry_after`` is waited as given (plus nothing), but one over ``max_retry_after`` is not waited at all.
    """

    max_attempts: int = 6
    max_elapsed: float = 60.0
    base_delay: float = 1.0
    max_delay: float = 30.0
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ValueError("RetryPolicy.max_attempts must be an int >= 1")
        for name in ("max_elapsed", "base_delay", "max_delay", "max_retry_after"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 or math.isinf(value):
                raise ValueError(f"RetryPolicy.{name} must be a finite number >= 0")


def retry_delay(
    policy: RetryPolicy,
    status: int | None,
    *,
    attempt: int,
    elapsed: float,
    jitter: float,
    retry_after: float | None = None,
) -> float | None:
    """Seconds to wait before retrying a request that failed, or None to give up. Pure: no clock, no randomness.

    ``status``: the HTTP status (None: no usable response: connection error, timeout, unreadable reply).
    ``attempt``: how many requests were made so far (1 after the first). ``elapsed``: seconds since the first
    request started. ``jitter``: a number in ``[0, 1)`` (``random.random()``). ``retry_after``: a 429's wait.

    200 and 401 are never retried (the caller returns or raises); 429 waits ``retry_after`` (backoff when it is
    unknown); 5xx and None back off; every other status gives up. Any wait that would exceed ``max_attempts`` or
    end after ``max_elapsed`` gives up.
    """
    if attempt >= policy.max_attempts:
        return None
    if status == 429:
        if retry_after is not None and math.isfinite(retry_after) and retry_after >= 0:
            if retry_after > policy.max_retry_after:
                return None
            delay = retry_after
        else:
            delay = _backoff(policy, attempt, jitter)
    elif status is None or 500 <= status <= 599:
        delay = _backoff(policy, attempt, jitter)
    else:
        return None
    if elapsed + delay > policy.max_elapsed:
        return None
    return delay


def _backoff(policy: RetryPolicy, attempt: int, jitter: float) -> float:
    ceiling = min(policy.max_delay, policy.base_delay * 2 ** (attempt - 1))
    return ceiling / 2 + ceiling / 2 * min(max(jitter, 0.0), 1.0)


# ------------------------------------------------------------------------------------------------------ headers


def user_agent() -> str:
    """``DiscordBot (LIBRARY_URL, version)``, the form Discord asks every HTTP client to send."""
    from . import __version__

    return f"DiscordBot ({LIBRARY_URL}, {__version__})"


def authorization_header(token: str | Token) -> str:
    """``"Bot <token>"``; a token already starting with ``"Bot "`` is used as it is. ValueError (without the
    token) for a token that cannot be an HTTP header value."""
    value = Token(token).reveal()
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F or ord(ch) > 0xFF for ch in value):
        raise ValueError("token contains characters that cannot be sent in an HTTP header")
    return value if value.startswith("Bot ") else f"Bot {value}"


# ------------------------------------------------------------------------------------------------------ driver


@dataclass(frozen=True)
class _Response:
    status: int
    headers: dict[str, str]
    body: bytes


class _BadResponse(Exception):
    """The peer's reply is not readable HTTP/1.1 (treated like a connection error)."""


def _parse_retry_after(response: _Response) -> float | None:
    try:
        body = json.loads(response.body)
    except ValueError:
        body = None
    if isinstance(body, dict):
        value = body.get("retry_after")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0:
            return float(value)
    header = response.headers.get("retry-after")
    if header is not None:
        try:
            seconds = float(header)
        except ValueError:
            return None  # an HTTP-date: fall back to backoff
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
    return None


async def fetch_gateway_info(
    token: str | Token,
    *,
    api_url: str = DEFAULT_API_URL,
    timeout: float = 10.0,
    retry: RetryPolicy | None = None,
    ssl: ssl_module.SSLContext | None = None,
    rng: Callable[[], float] = random.random,
) -> GatewayInfo:
    """``GET {api_url}/gateway/bot`` and return the validated :class:`GatewayInfo` (see the module docstring).

    ``timeout``: seconds for one request (connect, send, read). ``retry``: the bounds of retrying (default
    ``RetryPolicy()``). ``ssl``: TLS context for an ``https`` ``api_url`` (default: certificates verified).
    ``rng``: the jitter source. Raises :class:`AuthenticationError` (401), :class:`HTTPError` (anything else that
    does not end in a valid 200), ValueError/TypeError for bad arguments.
    """
    header = authorization_header(token)
    policy = retry if retry is not None else RetryPolicy()
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError("timeout must be a positive number of seconds")
    split = urlsplit(api_url)
    if split.scheme not in ("http", "https") or not split.hostname:
        raise ValueError(f"api_url must be an http:// or https:// URL, got {api_url!r}")
    if split.scheme == "http" and ssl is not None:
        raise ValueError("an ssl context was given for an http:// api_url")
    path = split.path.rstrip("/") + "/gateway/bot"
    where = f"GET {split.scheme}://{split.netloc.rsplit('@', 1)[-1]}{path}"  # never credentials of the URL
    loop = asyncio.get_running_loop()
    started = loop.time()
    attempt = 0
    while True:
        attempt += 1
        status: int | None = None
        retry_after: float | None = None
        failure: BaseException | None = None
        try:
            response = await asyncio.wait_for(_get(split, path, header, ssl), timeout)
        except ssl_module.SSLCertVerificationError as exc:
            raise HTTPError(f"{where} failed: the server's TLS certificate was refused: {exc}", None, attempt) from exc
        except (OSError, EOFError, asyncio.IncompleteReadError, asyncio.TimeoutError, _BadResponse) as exc:
            failure = exc
            problem = "timed out" if isinstance(exc, asyncio.TimeoutError) else f"failed: {type(exc).__name__}: {exc}"
        else:
            status = response.status
            if status == 200:
                try:
                    data = json.loads(response.body)
                    return GatewayInfo.from_dict(data)
                except (ValueError, TypeError) as exc:
                    raise HTTPError(f"{where} answered 200 with a malformed body: {exc}", status, attempt) from None
            if status == 401:
                raise AuthenticationError(f"{where} answered 401: Discord refused the bot token", status, attempt)
            if status == 429:
                retry_after = _parse_retry_after(response)
            problem = f"answered {status}" + (f" (retry_after {retry_after} s)" if retry_after is not None else "")
        delay = retry_delay(
            policy, status, attempt=attempt, elapsed=loop.time() - started, jitter=rng(), retry_after=retry_after
        )
        if delay is None:
            tried = f"after {attempt} attempt{'s' if attempt > 1 else ''}"
            raise HTTPError(f"{where} {problem}; giving up {tried}", status, attempt) from failure
        logger.warning("%s %s; retrying in %.2f s (attempt %d of %d)", where, problem, delay, attempt + 1, policy.max_attempts)
        await asyncio.sleep(delay)


async def _get(split: Any, path: str, authorization: str, ssl: ssl_module.SSLContext | None) -> _Response:
    """One HTTP/1.1 GET on a fresh connection (``Connection: close``)."""
    host: str = split.hostname
    tls = split.scheme == "https"
    port = split.port or (443 if tls else 80)
    context = (ssl if ssl is not None else ssl_module.create_default_context()) if tls else None
    reader, writer = await asyncio.open_connection(
        host, port, ssl=context, server_hostname=host if tls else None, limit=MAX_RESPONSE_SIZE
    )
    try:
        host_header = split.netloc.rsplit("@", 1)[-1]
        request = (
            f"GET {path} HTTP/1.1\r\n"
            f"Host: {host_header}\r\n"
            f"Authorization: {authorization}\r\n"
            f"User-Agent: {user_agent()}\r\n"
            "Accept: application/json\r\n"
            "Accept-Encoding: identity\r\n"
            "Connection: close\r\n"
            "\r\n"
        )
        writer.write(request.encode("latin-1"))
        await writer.drain()
        return await _read_response(reader)
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (OSError, ssl_module.SSLError):
            pass


async def _read_response(reader: asyncio.StreamReader) -> _Response:
    budget = MAX_RESPONSE_SIZE

    async def line() -> bytes:
        nonlocal budget
        try:
            raw = await reader.readuntil(b"\n")
        except asyncio.LimitOverrunError:
            raise _BadResponse("response line too long") from None
        budget -= len(raw)
        if budget < 0:
            raise _BadResponse("response too large")
        return raw.rstrip(b"\r\n")

    status_line = (await line()).decode("latin-1")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit() or len(parts[1]) != 3:
        raise _BadResponse(f"bad status line {status_line[:80]!r}")
    status = int(parts[1])
    headers: dict[str, str] = {}
    for _ in range(_MAX_HEADERS + 1):
        raw = await line()
        if not raw:
            break
        name, sep, value = raw.decode("latin-1").partition(":")
        if not sep or not name.strip():
            raise _BadResponse("bad header line")
        headers[name.strip().lower()] = value.strip()
    else:
        raise _BadResponse("too many headers")

    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = bytearray()
        while True:
            size_text = (await line()).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise _BadResponse("bad chunk size") from None
            if size == 0:
                while await line():  # trailers
                    pass
                return _Response(status, headers, bytes(body))
            budget -= size + 2
            if budget < 0 or size < 0:
                raise _BadResponse("response too large")
            body += await reader.readexactly(size)
            if await reader.readexactly(2) != b"\r\n":
                raise _BadResponse("bad chunk terminator")
    length = headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise _BadResponse("bad Content-Length")
        if int(length) > budget:
            raise _BadResponse("response too large")
        return _Response(status, headers, await reader.readexactly(int(length)))
    body_bytes = await reader.read(budget + 1)
    while len(body_bytes) <= budget:
        more = await reader.read(budget + 1 - len(body_bytes))
        if not more:
            break
        body_bytes += more
    if len(body_bytes) > budget:
        raise _BadResponse("response too large")
    return _Response(status, headers, body_bytes)
