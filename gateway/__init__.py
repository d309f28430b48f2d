"""gateway: a fast, dependable client for Discord's websocket gateway.

Quick start::

    from gateway import Shard, ShardId, Intents, EventTypeFlags

    shard = Shard(ShardId(0, 1), token, Intents.GUILDS | Intents.GUILD_MESSAGES)
    async for event in shard.events(EventTypeFlags.MESSAGE_CREATE):
        print(event.name, event.data["content"])

The hot path (websocket framing, zlib/zstd stream inflation, envelope scan) runs in Cython twins when they are
compiled; :func:`speedups_enabled` says which are loaded, and ``GATEWAY_NO_SPEEDUPS=1`` forces the pure twins.
"""

from __future__ import annotations

from . import _envelope, _framing, _inflate
from .errors import (
    CompressionError,
    AuthenticationError,
    ConnectError,
    FatalCloseError,
    GatewayError,
    HTTPError,
    InflatedTooLargeError,
    MessageTooLargeError,
    PayloadError,
    ProtocolError,
    ShardClosedError,
)
from .event import Event
from .flags import EventTypeFlags, Intents
from .group import ShardGroup
from .http import GatewayInfo, SessionStartLimit, fetch_gateway_info
from .models import Latency, Session, ShardId, ShardStatus, bucket
from .ratelimit import IdentifyQueue, IdentifyQueueProtocol
from .sessions import FileSessionStore, SavedSession, SessionStore
from .shard import Shard


__version__ = "0.1.0"

__all__ = [
    "Shard",
    "ShardGroup",
    "GatewayInfo",
    "SessionStartLimit",
    "fetch_gateway_info",
    "FileSessionStore",
    "SavedSession",
    "SessionStore",
    "IdentifyQueue",
    "IdentifyQueueProtocol",
    "ShardId",
    "bucket",
    "ShardStatus",
    "Session",
    "Latency",
    "Event",
    "EventTypeFlags",
    "Intents",
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
    "speedups_enabled",
    "__version__",
]


def speedups_enabled() -> dict[str, bool]:
    """Which hot modules run on their compiled twin: ``{"framing": bool, "inflate": bool, "envelope": bool}``."""
    return {
        "framing": _framing.IMPLEMENTATION == "speedups",
        "inflate": _inflate.IMPLEMENTATION == "speedups",
        "envelope": _envelope.IMPLEMENTATION == "speedups",
    }
