"""Micro-benchmarks of the envelope scan (both twins), the JSON backends, Event.data and the fast path (get, decode).

Run explicitly (not part of the test suite)::

    cd /work/main && python -m pytest bench/bench_envelope.py --benchmark-only --benchmark-columns=median,iqr,ops

The payloads are built here, deterministically, shaped like Discord's (no network, no corpus file needed).
"""

from __future__ import annotations

import importlib
import json
from types import ModuleType
from typing import Any, Callable

import pytest

from gateway.flags import EventTypeFlags

TWINS = ("gateway._speedups._envelope", "gateway._envelope_py")


def _user(i: int) -> dict[str, Any]:
    return {
        "username": f"member{i}",
        "public_flags": 0,
        "id": str(1_000_000_000_000_000_000 + i),
        "global_name": f"Member \"{i}\"",
        "discriminator": "0",
        "avatar": "0123456789abcdef0123456789abcdef",
    }


def message_create(content: str = "hello there, this is an ordinary message") -> bytes:
    """About 850-950 bytes, t/s/op before d as Discord sends it."""
    d = {
        "type": 0,
        "tts": False,
        "timestamp": "2026-11-28T05:00:00.000000+00:00",
        "referenced_message": None,
        "pinned": False,
        "nonce": "1311111111111111111",
        "mentions": [],
        "mention_roles": [],
        "mention_everyone": False,
        "member": {
            "roles": ["1111111111111111111", "2222222222222222222"],
            "premium_since": None,
            "pending": False,
            "nick": None,
            "mute": False,
            "joined_at": "2021-01-01T00:00:00.000000+00:00",
            "flags": 0,
            "deaf": False,
            "communication_disabled_until": None,
            "avatar": None,
        },
        "id": "1311111111111111112",
        "flags": 0,
        "embeds": [],
        "edited_timestamp": None,
        "content": content,
        "components": [],
        "channel_id": "1011111111111111111",
        "author": _user(1),
        "attachments": [],
        "guild_id": "1000000000000000000",
    }
    return json.dumps({"t": "MESSAGE_CREATE", "s": 12345, "op": 0, "d": d}, separators=(",", ":")).encode()


def presence_update() -> bytes:
    d = {
        "user": {"id": "1000000000000000042"},
        "status": "online",
        "guild_id": "1000000000000000000",
        "client_status": {"desktop": "online"},
        "activities": [{"type": 0, "name": "A Game", "id": "abc", "created_at": 1700000000000}],
    }
    return json.dumps({"t": "PRESENCE_UPDATE", "s": 99, "op": 0, "d": d}, separators=(",", ":")).encode()


def guild_create(members: int = 5000) -> bytes:
    d = {
        "id": "1000000000000000000",
        "name": "A [big] {guild}",
        "members": [{"user": _user(i), "roles": ["1", "2"], "joined_at": "2021-01-01T00:00:00+00:00"} for i in range(members)],
        "channels": [{"id": str(i), "name": f"chan-{i}", "type": 0} for i in range(200)],
    }
    return json.dumps({"t": "GUILD_CREATE", "s": 2, "op": 0, "d": d}, separators=(",", ":")).encode()


PAYLOADS: dict[str, bytes] = {
    "heartbeat_ack": b'{"t":null,"s":null,"op":11,"d":null}',
    "message_create": message_create(),
    "message_escapes": message_create('line one\nline "two" \\ with \\"escapes\\" and {brackets} [too]' * 3),
    "presence_update": presence_update(),
    "guild_create_5k": guild_create(),
}


@pytest.fixture(params=TWINS, ids=["speedups", "pure"])
def twin(request: pytest.FixtureRequest) -> ModuleType:
    return importlib.import_module(request.param)


@pytest.mark.parametrize("kind", list(PAYLOADS))
def test_scan_envelope(benchmark: Any, twin: ModuleType, kind: str) -> None:
    payload = PAYLOADS[kind]
    if twin.__name__.endswith("_py") and kind == "guild_create_5k":
        benchmark.pedantic(twin.scan_envelope, (payload,), rounds=5, iterations=1)
    else:
        benchmark(twin.scan_envelope, payload)
    benchmark.extra_info["bytes"] = len(payload)


@pytest.mark.parametrize("wanted", ["wanted", "unwanted"])
def test_event_filter_scan_message_create(benchmark: Any, twin: ModuleType, wanted: str) -> None:
    flags = EventTypeFlags.MESSAGE_CREATE if wanted == "wanted" else EventTypeFlags.PRESENCE_UPDATE
    event_filter = twin.EventFilter(flags)
    payload = PAYLOADS["message_create"]
    benchmark(event_filter.scan, payload)
    benchmark.extra_info["bytes"] = len(payload)


# ---- JSON backends and the Event.data strategy ----


def _backends() -> dict[str, Callable[[bytes], Any]]:
    found: dict[str, Callable[[bytes], Any]] = {"json": json.loads}
    try:
        import orjson

        found["orjson"] = orjson.loads
    except ImportError:
        pass
    try:
        import msgspec

        found["msgspec"] = msgspec.json.Decoder().decode
    except ImportError:
        pass
    try:
        import simdjson

        found["simdjson"] = simdjson.loads
        parser = simdjson.Parser()
        found["simdjson_parser_one_key"] = lambda text: parser.parse(text)["content"]
        found["simdjson_new_parser_one_key"] = lambda text: simdjson.Parser().parse(text)["content"]
    except ImportError:
        pass
    return found


BACKENDS = _backends()


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("part", ["d_slice", "whole"])
def test_json_decode_message_create(benchmark: Any, backend: str, part: str) -> None:
    payload = PAYLOADS["message_create"]
    if part == "whole" and backend.startswith("simdjson_"):
        pytest.skip("the one-key proxy reads d's key")
    loads = BACKENDS[backend]
    if part == "whole":
        benchmark(loads, payload)
    else:
        start = payload.index(b'"d":') + 4
        end = len(payload) - 1
        benchmark(lambda: loads(payload[start:end]))


def test_event_from_payload_and_data(benchmark: Any) -> None:
    from gateway.event import Event

    payload = PAYLOADS["message_create"]
    benchmark(lambda: Event.from_payload(payload).data)


def test_event_from_payload_without_data(benchmark: Any) -> None:
    from gateway.event import Event

    payload = PAYLOADS["message_create"]
    benchmark(Event.from_payload, payload)


# ---- the fast path for handlers (issue 11): one key with get, a Struct with decode, against data ----


@pytest.mark.parametrize("key", ["id", "guild_id", "absent"])
def test_find_member_message_create(benchmark: Any, twin: ModuleType, key: str) -> None:
    payload = PAYLOADS["message_create"]
    _, _, _, d_start, d_end = twin.scan_envelope(payload)
    benchmark(twin.find_member, payload, d_start, d_end, key)


@pytest.mark.parametrize("access", ["data_one_key", "get_one_key", "decode_struct"])
def test_event_fast_path_message_create(benchmark: Any, access: str) -> None:
    from gateway.event import Event

    payload = PAYLOADS["message_create"]
    if access == "data_one_key":
        benchmark(lambda: Event.from_payload(payload).data["channel_id"])
    elif access == "get_one_key":
        benchmark(lambda: Event.from_payload(payload).get("channel_id"))
    else:
        pytest.importorskip("msgspec")
        from bench.live import MessageCreate

        benchmark(lambda: Event.from_payload(payload).decode(MessageCreate))
