"""The pinned Redis contract (key names, entry fields, command checks) and CLI helpers, without redis-py.

See ``gateway/redis.py`` for the contract itself; this module holds what the supervisor and workers in other
languages' terms need without importing the optional dependency.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from . import _json
from .protocol import MAX_PAYLOAD_SIZE

__all__ = ["SIDE_STREAM_MAX_LEN", "Keys", "check_command", "parse_shards", "redact_url", "split_shards"]

#: ``MAXLEN ~`` of the errors stream and of each commands stream.
SIDE_STREAM_MAX_LEN = 10_000
_USER_OPS_REFUSED = frozenset({1, 2, 6})  # heartbeat, identify, resume: the shard's own


def redact_url(url: str) -> str:
    """``url`` without user name or password (for logs and errors)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


class Keys:
    """The key names under one prefix (see the module docstring)."""

    def __init__(self, prefix: str) -> None:
        if not isinstance(prefix, str) or not prefix:
            raise ValueError("prefix must be a non-empty str")
        self.prefix = prefix
        self.events = f"{prefix}:events"
        self.errors = f"{prefix}:errors"
        self.shard_count = f"{prefix}:shard_count"
        self.sessions = f"{prefix}:sessions"
        self.sessions_count = f"{prefix}:sessions:shard_count"
        self.identify_remaining = f"{prefix}:identify:remaining"
        self.identify_total = f"{prefix}:identify:total"
        self.commands_group = f"{prefix}:forwarder"
        self.fences = f"{prefix}:sessions:fences"

    def commands(self, shard: int) -> str:
        return f"{self.prefix}:commands:{shard}"

    def identify_bucket(self, bucket: int) -> str:
        return f"{self.prefix}:identify:bucket:{bucket}"


def check_command(data: bytes) -> str | None:
    """Why ``data`` cannot be sent as a gateway command (None when it can): size, JSON, ``op``."""
    if len(data) > MAX_PAYLOAD_SIZE:
        return f"payload is {len(data)} bytes; the limit is {MAX_PAYLOAD_SIZE}"
    try:
        value = _json.loads(data)
    except _json.DECODE_ERRORS as exc:
        return f"payload is not JSON ({exc})"
    if not isinstance(value, dict):
        return "payload is not a JSON object"
    op = value.get("op")
    if isinstance(op, bool) or not isinstance(op, int):
        return "payload has no int 'op'"
    if op in _USER_OPS_REFUSED:
        return f"op {op} is sent by the shard itself, not as a command"
    return None


def parse_shards(text: str) -> tuple[list[int], int]:
    """``"A-B/N"`` -> ``([A..B], N)``; ``"A/N"`` -> one shard; ``"N"`` -> all of N. ValueError otherwise."""
    text = text.strip()
    try:
        if "/" in text:
            span, total_text = text.split("/", 1)
            total = int(total_text)
            if "-" in span:
                low, high = (int(part) for part in span.split("-", 1))
            else:
                low = high = int(span)
        else:
            total = int(text)
            low, high = 0, total - 1
    except ValueError:
        raise ValueError(f"--shards wants A-B/N (e.g. 0-15/32), A/N or N, got {text!r}") from None
    if total < 1 or not 0 <= low <= high < total:
        raise ValueError(f"--shards {text!r}: need 0 <= A <= B < N")
    return list(range(low, high + 1)), total


def split_shards(shard_ids: Sequence[int], processes: int) -> list[list[int]]:
    """``shard_ids`` in ``processes`` contiguous, near-equal parts (no empty part)."""
    processes = max(1, min(processes, len(shard_ids)))
    size, extra = divmod(len(shard_ids), processes)
    parts, start = [], 0
    for index in range(processes):
        end = start + size + (1 if index < extra else 0)
        parts.append(list(shard_ids[start:end]))
        start = end
    return parts
