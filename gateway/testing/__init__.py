"""Test helpers: a fake Discord gateway to run a bot (or this package's Shard) against, offline, over loopback.

See :class:`FakeGateway`.
"""

from __future__ import annotations

from .server import (
    DEFAULT_TIMEOUT,
    DOCUMENTED_INTENTS,
    PRIVILEGED_INTENTS,
    FakeConnection,
    FakeGateway,
    FakeHTTPRequest,
    FakeSession,
    FakeSessionStartLimit,
    IdentifyViolation,
    ReceivedPayload,
)

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
