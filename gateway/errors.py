"""Exceptions raised by ``gateway``.

The tree::

    GatewayError                      every exception of this package
    ├── ProtocolError                 the peer broke RFC 6455 framing; ``.close_code`` is what to send (1002, 1007)
    │   └── MessageTooLargeError      a websocket message over ``max_message_size`` (close code 1009)
    ├── CompressionError              corrupt zlib-stream / zstd-stream data; the connection must be dropped and resumed
    │   └── InflatedTooLargeError     one decompressed gateway message over the inflation ceiling
    ├── PayloadError                  a decompressed payload that is not a valid gateway envelope (bad JSON, no ``op``);
    │                                 ``.payload`` keeps the raw bytes, nothing is lost
    ├── ConnectError                  one connection attempt failed (DNS, TCP, TLS, handshake, 10 s timeout)
    ├── FatalCloseError               the gateway closed with a code that forbids reconnecting (4004, 4010-4014); ``.code``
    ├── ShardClosedError              the shard was closed by the user; no more events will come
    └── HTTPError                     ``GET /gateway/bot`` failed: retries spent (5xx, 429, connection errors), another
        │                             4xx, or a 200 whose body is not what Discord documents; ``.status`` (None: no
        │                             response), ``.attempts``
        └── AuthenticationError       401: Discord refused the bot token; raised at once, never retried (the gateway's
                                      own refusal of a token stays ``FatalCloseError`` with code 4004)

``ValueError``/``TypeError`` are used for wrong arguments (an outgoing payload over 4096 bytes, a bad ``ShardId``).
No message here ever contains the bot token.
"""

from __future__ import annotations

__all__ = [
    "GatewayError",
    "ProtocolError",
    "MessageTooLargeError",
    "CompressionError",
    "InflatedTooLargeError",
    "PayloadError",
    "ConnectError",
    "FatalCloseError",
    "ShardClosedError",
    "HTTPError",
    "AuthenticationError",
]


class GatewayError(Exception):
    """Base class of every exception raised by this package."""


class ProtocolError(GatewayError):
    """The websocket peer sent something RFC 6455 forbids.

    ``close_code`` is the close code the client should send before dropping the connection:
    1002 (protocol error), 1007 (invalid UTF-8) or 1009 (message too big).
    """

    def __init__(self, message: str, close_code: int = 1002) -> None:
        super().__init__(message)
        self.close_code = close_code


class MessageTooLargeError(ProtocolError):
    """A websocket message grew past the configured maximum size (close code 1009)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 1009)


class CompressionError(GatewayError):
    """The transport-compressed stream is corrupt; the inflate context is unusable until reset."""


class InflatedTooLargeError(CompressionError):
    """One decompressed gateway message is larger than the configured ceiling."""


class PayloadError(GatewayError):
    """A decompressed payload is not a valid gateway envelope.

    ``payload`` holds the raw bytes so that nothing is lost.
    """

    def __init__(self, message: str, payload: bytes = b"") -> None:
        super().__init__(message)
        self.payload = payload


class ConnectError(GatewayError):
    """A connection attempt to the gateway failed; the shard retries with backoff."""


class FatalCloseError(GatewayError):
    """The gateway closed the connection with a code that forbids reconnecting.

    ``code`` is the close code (4004, 4010, 4011, 4012, 4013 or 4014) and ``reason`` the text Discord gave.
    """

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"gateway closed the connection with fatal code {code}: {reason or 'no reason given'}")
        self.code = code
        self.reason = reason


class ShardClosedError(GatewayError):
    """The shard was closed with :meth:`gateway.Shard.close`; it delivers no more events."""


class HTTPError(GatewayError):
    """A request to Discord's HTTP API (``GET /gateway/bot``) did not end in a usable answer.

    ``status`` is the last HTTP status received (None when no response came: connection error, timeout, TLS
    failure, unreadable reply; 200 when the body was malformed) and ``attempts`` how many requests were made.
    """

    def __init__(self, message: str, status: int | None = None, attempts: int = 1) -> None:
        super().__init__(message)
        self.status = status
        self.attempts = attempts


class AuthenticationError(HTTPError):
    """Discord answered 401: the bot token is invalid. Raised at once: retrying cannot help."""
