"""I/O tests of ``gateway.shard.Shard`` over real loopback sockets against ``gateway.testing.FakeGateway``.

The transport is never mocked: each test runs a real FakeGateway (websockets server) and a real Shard in one event
loop, once with the compiled twins and once with the pure ones (the ``twins`` fixture). These tests are about the
receive path (compression, framing, malformed input, filtering, raw bytes), sending (commands, rate limit, identify
queue), token secrecy, argument validation and TLS verification. Timing assertions are lower bounds or loose bounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import gateway._json
import gateway.protocol
from gateway import (
    Event,
    EventTypeFlags,
    FatalCloseError,
    IdentifyQueue,
    Intents,
    PayloadError,
    Shard,
    ShardId,
    ShardStatus,
    commands,
)
from gateway.ratelimit import CommandRateLimiter
from gateway.testing import FakeGateway

from shard_helpers import WAIT, next_named, run, until

TOKEN = "shard-io-token"
INTENTS = int(Intents.GUILDS | Intents.GUILD_MESSAGES)
COMPRESSIONS = [None, "zlib-stream", "zstd-stream"]
COMPRESSED = ["zlib-stream", "zstd-stream"]


def new_shard(gw: FakeGateway, twins: dict[str, ModuleType], **options: Any) -> Shard:
    shard_id = options.pop("shard_id", ShardId(0, 1))
    token = options.pop("token", TOKEN)
    intents = options.pop("intents", INTENTS)
    options.setdefault("identify_queue", IdentifyQueue(delay=0))
    options.setdefault("rng", lambda: 0.5)
    options.setdefault("gateway_url", gw.url)
    return Shard(shard_id, token, intents, _twins=twins, **options)


@contextlib.asynccontextmanager
async def running(gw: FakeGateway, twins: dict[str, ModuleType], **options: Any) -> AsyncIterator[Shard]:
    """A started Shard that is closed when the block exits, even on failure."""
    shard = new_shard(gw, twins, **options)
    shard.start()
    try:
        yield shard
    finally:
        await asyncio.wait_for(shard.close(), WAIT)


async def active(shard: Shard, gw: FakeGateway) -> None:
    """Wait until the shard is ACTIVE on a session the fake knows (whatever the shard's filter)."""
    await gw.wait_for_session()
    await until(lambda: shard.status is ShardStatus.ACTIVE, what="shard ACTIVE")


async def take(shard: Shard, count: int, timeout: float = WAIT) -> list[Event]:
    async def collect() -> list[Event]:
        return [await shard.next_event() for _ in range(count)]

    return await asyncio.wait_for(collect(), timeout)


def message(index: int, **extra: Any) -> dict[str, Any]:
    return {"id": str(1000 + index), "channel_id": "42", "content": f"message {index}", **extra}


def sample_events() -> list[tuple[str, Any]]:
    rnd = random.Random(7)
    noise = "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz0123456789 ") for _ in range(50_000))
    return [
        ("MESSAGE_CREATE", message(1, content="h\u00e9llo \u2603 \U0001d11e \"quoted\" \\ back\nslash")),
        ("TYPING_START", {"channel_id": "42", "user_id": "7", "timestamp": 1700000000}),
        ("GUILD_CREATE", {"id": "99", "channels": [{"id": str(i), "name": f"c{i}"} for i in range(200)]}),
        ("MESSAGE_DELETE", {"id": "1001", "channel_id": "42"}),
        ("MESSAGE_CREATE", message(2, content=noise)),
        ("PRESENCE_UPDATE", {"user": {"id": "7"}, "status": "idle", "activities": [], "nested": [[[{}]]]}),
        ("MESSAGE_CREATE", message(3, numbers=[0, -1, 1.5, 1e300, True, False, None])),
        ("RESOURCE_NULL", None),
    ]


def big_guild(size_bytes: int) -> dict[str, Any]:
    """A GUILD_CREATE-like body of about ``size_bytes`` of JSON, not trivially compressible."""
    rnd = random.Random(size_bytes)
    members = []
    total = 0
    index = 0
    while total < size_bytes:
        name = "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz_\u00e9\u4e2d") for _ in range(rnd.randint(4, 24)))
        member = {
            "user": {"id": str(10**17 + index), "username": name, "avatar": "%032x" % rnd.getrandbits(128)},
            "roles": [str(rnd.getrandbits(60)) for _ in range(rnd.randint(0, 4))],
            "joined_at": "2024-01-01T00:00:00+00:00",
        }
        members.append(member)
        total += len(json.dumps(member))
        index += 1
    return {"id": "4242", "name": "big", "member_count": len(members), "members": members}


# -- compression and framing --------------------------------------------------------------------------------------


def test_every_compression_delivers_identical_events(twins: dict[str, ModuleType]) -> None:
    """None, zlib-stream and zstd-stream give the same events (name, seq, data, raw) for the same dispatches."""
    samples = sample_events()

    async def one(compression: str | None) -> list[tuple[str, int | None, Any, Any]]:
        async with FakeGateway(token=TOKEN) as gw, running(gw, twins, compression=compression) as shard:
            await next_named(shard, "READY")
            assert gw.connections[0].compression == compression
            seqs = [await gw.dispatch(name, data) for name, data in samples]
            events = await take(shard, len(samples))
            assert [event.seq for event in events] == seqs
            return [(event.name, event.seq, event.data, json.loads(event.raw)) for event in events]

    async def body() -> None:
        results = {compression: await one(compression) for compression in COMPRESSIONS}
        expected = [(name, index + 2, data, None) for index, (name, data) in enumerate(samples)]
        for compression, got in results.items():
            assert [(n, s, d) for n, s, d, _ in got] == [(n, s, d) for n, s, d, _ in expected], compression
            for (name, seq, data, parsed) in got:
                assert parsed == {"t": name, "s": seq, "op": 0, "d": data}
        assert results[None] == results["zlib-stream"] == results["zstd-stream"]

    run(body, 30.0)


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_split_and_fragmented_messages_arrive_intact(twins: dict[str, ModuleType], compression: str | None) -> None:
    """A zlib payload split over several websocket messages and a message fragmented into continuation frames."""
    rnd = random.Random(3)
    text = "".join(rnd.choice("abcdefghij \u00e9\u2603") for _ in range(20_000))

    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw, running(gw, twins, compression=compression) as shard:
            await next_named(shard, "READY")
            sent: list[tuple[int, dict[str, Any]]] = []
            for index, kind in enumerate(["split", "fragment", "plain", "split", "fragment", "fragment", "plain"]):
                data = message(index, content=f"{kind} {index} {text[: 1000 * (index + 1)]}")
                if kind == "split":
                    gw.split_next(2 + index)
                elif kind == "fragment":
                    gw.fragment_next(2 + index)
                sent.append((await gw.dispatch("MESSAGE_CREATE", data), data))
            events = await take(shard, len(sent))
            assert [(event.seq, event.data) for event in events] == sent
            assert shard.payload_errors == 0
            assert len(gw.connections) == 1 and gw.connections[0].open

    run(body)


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_large_payload_arrives_intact(twins: dict[str, ModuleType], compression: str | None) -> None:
    """A ~4 MB GUILD_CREATE-like dispatch (also fragmented, and split on zlib) arrives byte for byte."""
    guild = big_guild(4_000_000)

    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw, running(gw, twins, compression=compression) as shard:
            await next_named(shard, "READY")
            conn = gw.connections[0]
            seq1 = await gw.dispatch("GUILD_CREATE", guild, timeout=15)
            gw.fragment_next(7)
            seq2 = await gw.dispatch("GUILD_CREATE", guild, timeout=15)
            gw.split_next(5)
            seq3 = await gw.dispatch("GUILD_CREATE", guild, timeout=15)
            events = await take(shard, 3, timeout=15)
            assert [event.seq for event in events] == [seq1, seq2, seq3]
            for event in events:
                assert len(event.raw) > 3_000_000
                assert event.data == guild
            sent_raw = {json.loads(raw)["s"]: raw for raw in conn.sent if b'"GUILD_CREATE"' in raw[:40]}
            assert [event.raw for event in events] == [sent_raw[seq1], sent_raw[seq2], sent_raw[seq3]]

    run(body, 60.0)


def test_zstd_end_frames(twins: dict[str, ModuleType]) -> None:
    """A server that ends the zstd frame after every message (and a resume on a fresh context) works."""

    async def body() -> None:
        async with FakeGateway(token=TOKEN, zstd_end_frames=True) as gw, running(
            gw, twins, compression="zstd-stream"
        ) as shard:
            await next_named(shard, "READY")
            first = [(await gw.dispatch("MESSAGE_CREATE", message(i)), message(i)) for i in range(5)]
            gw.fragment_next(3)
            first.append((await gw.dispatch("MESSAGE_CREATE", message(5)), message(5)))
            events = await take(shard, len(first))
            assert [(event.seq, event.data) for event in events] == first
            await gw.drop()
            await gw.wait_for_op(6)
            await next_named(shard, "RESUMED")
            more = [(await gw.dispatch("MESSAGE_CREATE", message(i)), message(i)) for i in range(6, 9)]
            events = await take(shard, len(more))
            assert [(event.seq, event.data) for event in events] == more
            assert shard.payload_errors == 0

    run(body)


# -- corrupt and malformed input ------------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", COMPRESSED)
def test_corrupt_compressed_frame_resumes_without_loss_or_duplicates(
    twins: dict[str, ModuleType], compression: str
) -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw, running(gw, twins, compression=compression) as shard:
            await next_named(shard, "READY")
            session_id = shard.session.id  # type: ignore[union-attr]
            expected = [await gw.dispatch("MESSAGE_CREATE", message(i)) for i in range(3)]
            seen: list[Event] = []
            for _ in expected:
                seen.append(await next_named(shard, "MESSAGE_CREATE"))
            assert await gw.send_corrupt()
            # Dispatched at once: on the dying connection or after it; the resume replay must bring them exactly once.
            expected += [gw.dispatch_nowait("MESSAGE_CREATE", message(i)) for i in range(3, 6)]
            resume = await gw.wait_for_op(6)
            assert resume["d"]["session_id"] == session_id
            await until(lambda: shard.status is ShardStatus.ACTIVE and gw.connection is not None, what="resumed")
            await gw.wait_for_session()
            expected += [await gw.dispatch("MESSAGE_CREATE", message(i)) for i in range(6, 9)]
            sentinel = await gw.dispatch("TYPING_START", {"channel_id": "42"})
            await next_named(shard, "TYPING_START", seen=seen)
            delivered = [event.seq for event in seen if event.name == "MESSAGE_CREATE"]
            assert delivered == expected  # each exactly once, in order
            assert sentinel > expected[-1]
            assert [event.data["id"] for event in seen if event.name == "MESSAGE_CREATE"] == [
                message(i)["id"] for i in range(9)
            ]
            first = gw.connections[0]
            assert first.closed_by == "client" and first.close_code == 4000
            assert len(gw.received_payloads(2)) == 1  # never identified again
            assert shard.session is not None and shard.session.id == session_id

    run(body)


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_malformed_payloads_are_reported_and_skipped(
    twins: dict[str, ModuleType], compression: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.shard")
    bad: list[tuple[bytes | str, bool]] = [
        (b"this is not json", True),
        (b'{"no_op": true}', True),
        (b"[1, 2, 3]", True),
        (b'{"op": "ten", "d": null}', True),
        ("text message, not json", False),  # a text message, never decompressed
    ]

    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw, running(gw, twins, compression=compression) as shard:
            await next_named(shard, "READY")
            session_id = shard.session.id  # type: ignore[union-attr]
            before = await gw.dispatch("MESSAGE_CREATE", message(1))
            assert (await next_named(shard, "MESSAGE_CREATE")).seq == before
            caplog.clear()
            for data, compress in bad:
                assert await gw.send_raw(data, compress=compress)
            after = [await gw.dispatch("MESSAGE_CREATE", message(i)) for i in range(2, 5)]
            seen: list[Event] = []
            for seq in after:
                assert (await next_named(shard, "MESSAGE_CREATE", seen=seen)).seq == seq
            assert shard.payload_errors == len(bad)
            assert seen == []  # nothing else was delivered
            warnings = [r for r in caplog.records if r.name == "gateway.shard" and r.levelno == logging.WARNING]
            assert len(warnings) == len(bad), [r.getMessage() for r in warnings]
            assert all("malformed" in r.getMessage() for r in warnings)
            # The session is unchanged: same connection, no RESUME, no second IDENTIFY.
            assert len(gw.connections) == 1 and gw.connections[0].open
            assert gw.received_payloads(6) == [] and len(gw.received_payloads(2)) == 1
            assert shard.status is ShardStatus.ACTIVE and shard.session.id == session_id  # type: ignore[union-attr]

    run(body)


def test_malformed_control_payloads_are_counted_and_skipped(
    twins: dict[str, ModuleType], caplog: pytest.LogCaptureFixture
) -> None:
    """Envelopes that scan but that the protocol must refuse (op 9 whose d is not a bool, READY without a
    session_id, a dispatch whose s is negative or over 64 bits) are reported like any malformed payload: counted in
    shard.payload_errors, logged, not delivered; the session goes on."""
    caplog.set_level(logging.WARNING, logger="gateway.shard")

    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw, running(gw, twins, compression="zlib-stream") as shard:
            await next_named(shard, "READY")
            session_id = shard.session.id  # type: ignore[union-attr]
            caplog.clear()
            assert await gw.send({"t": None, "s": None, "op": 9, "d": "maybe"})
            session = gw.session
            assert session is not None
            session.seq += 1
            assert await gw.send({"t": "READY", "s": session.seq, "op": 0, "d": {"v": 10}})
            # Sequence numbers that could never be echoed back in a heartbeat or RESUME.
            assert await gw.send({"t": "MESSAGE_CREATE", "s": 10**22, "op": 0, "d": message(0)})
            assert await gw.send({"t": "MESSAGE_CREATE", "s": -5, "op": 0, "d": message(0)})
            seq = await gw.dispatch("MESSAGE_CREATE", message(1))
            seen: list[Event] = []
            assert (await next_named(shard, "MESSAGE_CREATE", seen=seen)).seq == seq
            assert [event.name for event in seen] == []
            assert shard.payload_errors == 4
            warnings = [r for r in caplog.records if r.name == "gateway.shard" and r.levelno == logging.WARNING]
            assert len(warnings) == 4 and all("malformed" in r.getMessage() for r in warnings)
            # Heartbeats still work and carry the last good sequence; later events still arrive.
            assert await gw.request_heartbeat()
            assert (await gw.wait_for_op(1))["d"] == seq
            seq = await gw.dispatch("MESSAGE_CREATE", message(2))
            assert (await next_named(shard, "MESSAGE_CREATE")).seq == seq
            assert len(gw.connections) == 1 and gw.connections[0].open
            assert shard.status is ShardStatus.ACTIVE and shard.session.id == session_id  # type: ignore[union-attr]

    run(body)


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_event_with_invalid_d_is_delivered_and_data_raises(
    twins: dict[str, ModuleType], compression: str | None
) -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw, running(gw, twins, compression=compression) as shard:
            await next_named(shard, "READY")
            session = gw.session
            assert session is not None
            bad_seqs = []
            for bad_d in (b'{"id": tru}', b'{"a":1,,}'):
                session.seq += 1  # the fake's next sequence, so later dispatches keep increasing
                bad_seqs.append(session.seq)
                raw = b'{"t":"MESSAGE_CREATE","s":%d,"op":0,"d":%s}' % (session.seq, bad_d)
                assert await gw.send_raw(raw)
            good = await gw.dispatch("MESSAGE_CREATE", message(1))
            events = await take(shard, 3)
            assert [event.seq for event in events] == bad_seqs + [good]
            for event, bad_d in zip(events[:2], (b'{"id": tru}', b'{"a":1,,}')):
                assert event.name == "MESSAGE_CREATE"
                assert event.raw_data == bad_d
                with pytest.raises(PayloadError):
                    event.data
            assert events[2].data == message(1)
            assert shard.payload_errors == 0
            assert len(gw.connections) == 1 and gw.connections[0].open

    run(body)


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_valid_but_unusual_envelopes_are_delivered(twins: dict[str, ModuleType], compression: str | None) -> None:
    """Reordered keys, whitespace and an escaped event name: filtered and delivered by their real name."""
    templates = [
        b'{"op":0,"d":{"n":@N@},"s":@SEQ@,"t":"MESSAGE_CREATE"}',
        b' {"t" : "MESSAGE\\u005fCREATE" ,\n "s" : @SEQ@ , "op" : 0 , "d" : {"n": @N@} } ',
        b'{"t":"TYPING_START","s":@SEQ@,"op":0,"d":{"n":@N@}}',  # not wanted
        b'{"d":{"n":@N@},"t":"MESSAGE_CREATE","op":0,"s":@SEQ@}',
    ]

    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw, running(
            gw, twins, compression=compression, event_types=EventTypeFlags.MESSAGE_CREATE
        ) as shard:
            await active(shard, gw)
            session = gw.session
            assert session is not None
            expected = []
            for n, template in enumerate(templates):
                session.seq += 1
                raw = template.replace(b"@SEQ@", str(session.seq).encode()).replace(b"@N@", str(n).encode())
                assert await gw.send_raw(raw)
                if b"TYPING" not in raw:
                    expected.append((session.seq, {"n": n}))
            events = await take(shard, len(expected))
            assert [(event.name, event.seq, event.data) for event in events] == [
                ("MESSAGE_CREATE", seq, data) for seq, data in expected
            ]
            assert shard.payload_errors == 0 and shard.queued_events == 0

    run(body)


# -- filtering --------------------------------------------------------------------------------------------------


MARKER = "unwanted-marker-7f3a"


def test_unwanted_events_are_not_delivered_nor_decoded(
    twins: dict[str, ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[bytes] = []
    marked_stdlib: list[Any] = []
    real_loads = gateway._json.loads
    real_stdlib_loads = json.loads

    def counting_loads(data: Any) -> Any:
        calls.append(bytes(data))
        return real_loads(data)

    def counting_stdlib_loads(data: Any, *args: Any, **kwargs: Any) -> Any:
        text = data if isinstance(data, str) else bytes(data).decode("utf-8", "replace")
        if MARKER in text:
            marked_stdlib.append(data)
        return real_stdlib_loads(data, *args, **kwargs)

    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw, running(
            gw, twins, compression="zlib-stream", event_types=EventTypeFlags.TYPING_START
        ) as shard:
            await active(shard, gw)
            # From here on every decode goes through the counters (the envelope twins' slow path uses stdlib json).
            monkeypatch.setattr(gateway._json, "loads", counting_loads)
            monkeypatch.setattr(json, "loads", counting_stdlib_loads)
            for index in range(300):
                gw.dispatch_nowait("MESSAGE_CREATE", message(index, content=f"{MARKER} {index}"))
            sentinel = await gw.dispatch("TYPING_START", {"channel_id": "42", "user_id": "1"})
            event = await asyncio.wait_for(shard.next_event(), WAIT)
            assert (event.name, event.seq) == ("TYPING_START", sentinel)  # READY and 300 MESSAGE_CREATEs skipped
            assert shard.queued_events == 0
            assert calls == [] and marked_stdlib == []  # not one JSON decode for the unwanted events
            # The counter does see a decode once an event is wanted and its data read.
            shard.set_event_types(EventTypeFlags.MESSAGE_CREATE)
            seq = await gw.dispatch("MESSAGE_CREATE", message(999, content=MARKER))
            event = await asyncio.wait_for(shard.next_event(), WAIT)
            assert event.seq == seq and calls == []
            assert event.data["content"] == MARKER
            assert len(calls) == 1 and MARKER.encode() in calls[0]

    run(body)


def test_internal_ops_are_handled_whatever_the_filter(twins: dict[str, ModuleType]) -> None:
    """With a MESSAGE_CREATE-only filter the shard still handles HELLO, READY, op 1, op 7, op 9 and RESUMED."""

    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw, running(
            gw, twins, event_types=EventTypeFlags.MESSAGE_CREATE
        ) as shard:
            await active(shard, gw)
            expected = [await gw.dispatch("MESSAGE_CREATE", message(0))]
            beats = len(gw.received_payloads(1))
            assert await gw.request_heartbeat()
            await gw.wait_for(lambda g: len(g.received_payloads(1)) > beats)
            assert await gw.reconnect()  # op 7
            await gw.wait_for_op(6)
            await until(lambda: len(gw.connections) == 2 and shard.status is ShardStatus.ACTIVE, what="resume 1")
            await gw.wait_for_session()
            expected.append(await gw.dispatch("MESSAGE_CREATE", message(1)))
            assert await gw.invalidate_session(True)  # op 9 true
            await gw.wait_for_op(6)
            await until(lambda: len(gw.connections) == 3 and shard.status is ShardStatus.ACTIVE, what="resume 2")
            await gw.wait_for_session()
            expected.append(await gw.dispatch("TYPING_START", {"channel_id": "1"}))  # unwanted
            expected.append(await gw.dispatch("MESSAGE_CREATE", message(2)))
            del expected[-2]
            events = await take(shard, 3)
            assert [event.name for event in events] == ["MESSAGE_CREATE"] * 3
            assert [event.seq for event in events] == expected
            assert shard.queued_events == 0
            assert len(gw.received_payloads(2)) == 1  # one IDENTIFY; the rest were resumes
            assert [c.close_code for c in gw.connections[:2]] == [4000, 4000]

    run(body)


def test_unknown_dispatch_name_follows_the_unknown_flag(twins: dict[str, ModuleType]) -> None:
    async def body() -> None:
        without_unknown = EventTypeFlags.all() & ~EventTypeFlags.UNKNOWN
        async with FakeGateway(token=TOKEN) as gw, running(gw, twins, event_types=without_unknown) as shard:
            await next_named(shard, "READY")
            await gw.dispatch("BRAND_NEW_EVENT", {"x": 1})
            assert await gw.send({"t": None, "s": None, "op": 99, "d": {"x": 1}})  # an unknown opcode
            sentinel = await gw.dispatch("TYPING_START", {"channel_id": "1"})
            seen: list[Event] = []
            assert (await next_named(shard, "TYPING_START", seen=seen)).seq == sentinel
            assert seen == []
            # Now wanted.
            shard.set_event_types(EventTypeFlags.UNKNOWN | EventTypeFlags.TYPING_START)
            seq = await gw.dispatch("BRAND_NEW_EVENT", {"x": 2})
            await gw.dispatch("MESSAGE_CREATE", message(1))  # unwanted
            assert await gw.send({"t": None, "s": None, "op": 99, "d": {"x": 3}})
            sentinel = await gw.dispatch("TYPING_START", {"channel_id": "2"})
            events = await take(shard, 3)
            assert [(event.name, event.op, event.seq) for event in events] == [
                ("BRAND_NEW_EVENT", 0, seq), ("UNKNOWN", 99, None), ("TYPING_START", 0, sentinel)
            ]
            assert events[0].data == {"x": 2} and events[1].data == {"x": 3}
            assert len(gw.connections) == 1 and gw.connections[0].open

    run(body)


def test_events_and_next_event_change_the_filter(twins: dict[str, ModuleType]) -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw, running(gw, twins) as shard:
            await next_named(shard, "READY")
            assert shard.event_types == EventTypeFlags.all()
            await gw.dispatch("TYPING_START", {"channel_id": "1"})
            wanted = await gw.dispatch("MESSAGE_CREATE", message(1))
            await until(lambda: shard.queued_events >= 2, what="two queued events")
            # next_event(flags) replaces the filter; the queued TYPING_START it rejects is dropped.
            event = await asyncio.wait_for(shard.next_event(EventTypeFlags.MESSAGE_CREATE), WAIT)
            assert (event.name, event.seq) == ("MESSAGE_CREATE", wanted)
            assert shard.event_types == EventTypeFlags.MESSAGE_CREATE and shard.queued_events == 0
            # The filter applies on receipt: a TYPING_START received now is never queued.
            await gw.dispatch("TYPING_START", {"channel_id": "2"})
            await gw.dispatch("MESSAGE_CREATE", message(2))
            await until(lambda: shard.queued_events == 1, what="one queued MESSAGE_CREATE")
            # events(flags) replaces it again (dropping the queued MESSAGE_CREATE).
            typing_only = shard.events(EventTypeFlags.TYPING_START)
            async with contextlib.aclosing(typing_only) as stream:  # type: ignore[type-var]
                first = asyncio.ensure_future(stream.__anext__())
                await until(lambda: shard.event_types == EventTypeFlags.TYPING_START, what="events() filter")
                assert shard.queued_events == 0
                await gw.dispatch("MESSAGE_CREATE", message(3))
                typing = await gw.dispatch("TYPING_START", {"channel_id": "3"})
                event = await asyncio.wait_for(first, WAIT)
                assert (event.name, event.seq) == ("TYPING_START", typing)
            assert shard.event_types == EventTypeFlags.TYPING_START
            # next_event() without flags keeps the current filter.
            await gw.dispatch("MESSAGE_CREATE", message(4))
            typing = await gw.dispatch("TYPING_START", {"channel_id": "4"})
            event = await asyncio.wait_for(shard.next_event(), WAIT)
            assert (event.name, event.seq) == ("TYPING_START", typing)
            with pytest.raises(TypeError):
                shard.set_event_types("MESSAGE_CREATE")  # type: ignore[arg-type]

    run(body)


# -- raw stream -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_raw_stream_is_the_decompressed_payload_the_fake_sent(
    twins: dict[str, ModuleType], compression: str | None
) -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw, running(gw, twins, compression=compression) as shard:
            samples = sample_events()
            raws = [await asyncio.wait_for(shard.next_raw(), WAIT) for _ in range(2)]  # HELLO, READY
            for name, data in samples:
                await gw.dispatch(name, data)
            raws += [await asyncio.wait_for(shard.next_raw(), WAIT) for _ in range(len(samples) - 2)]
            async with contextlib.aclosing(shard.raw_events()) as stream:  # type: ignore[type-var]
                async for raw in stream:
                    raws.append(raw)
                    if len(raws) == len(samples) + 2:
                        break
            sent = list(gw.connections[0].sent)[: len(raws)]
            assert all(isinstance(raw, bytes) for raw in raws)
            assert [json.loads(raw) for raw in raws] == [json.loads(raw) for raw in sent]
            assert raws == sent
            assert json.loads(raws[0])["op"] == 10 and json.loads(raws[1])["t"] == "READY"
            # raw_events(flags) filters too.
            await gw.dispatch("TYPING_START", {"channel_id": "9"})
            seq = await gw.dispatch("MESSAGE_CREATE", message(9))
            messages_only = shard.raw_events(EventTypeFlags.MESSAGE_CREATE)
            async with contextlib.aclosing(messages_only) as stream:  # type: ignore[type-var]
                async for raw in stream:
                    assert json.loads(raw) == {"t": "MESSAGE_CREATE", "s": seq, "op": 0, "d": message(9)}
                    break

    run(body)


# -- sending ----------------------------------------------------------------------------------------------------


def test_send_and_typed_command_helpers_reach_the_fake(twins: dict[str, ModuleType]) -> None:
    members = [{"user": {"id": str(500 + i), "username": f"user{i}"}, "roles": []} for i in range(3)]

    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw, running(gw, twins) as shard:
            await next_named(shard, "READY")
            gw.guild_members = {"123": members}
            gw.soundboard_sounds = {"123": [{"sound_id": "1", "name": "boop"}]}
            gw.channel_info = {"123": [{"id": "77", "status": "live", "voice_start_time": None}]}

            payload = commands.update_presence("dnd")
            await shard.send(payload)
            assert await gw.wait_for_op(3) == payload
            await shard.send(b'{"op":3,"d":{"since":null,"activities":[],"status":"idle","afk":false}}')
            assert (await gw.wait_for_op(3))["d"]["status"] == "idle"

            # Over 4096 bytes: ValueError and nothing is sent or queued.
            with pytest.raises(ValueError):
                await shard.send({"op": 3, "d": {"status": "online", "x": "y" * 5000}})
            with pytest.raises(ValueError):
                await shard.send(b'{"op":3,"d":"' + b"z" * 5000 + b'"}')
            # The shard's own ops and other types are refused too.
            with pytest.raises(ValueError):
                await shard.send({"op": 2, "d": {"token": TOKEN}})
            with pytest.raises(ValueError):
                await shard.send({"op": 1, "d": None})
            with pytest.raises(TypeError):
                await shard.send('{"op":3}')  # type: ignore[arg-type]
            assert shard._proto.pending_commands == 0

            await shard.request_guild_members(123, query="", limit=0, nonce="n-1")
            d = (await gw.wait_for_op(8))["d"]
            assert d == commands.request_guild_members(123, query="", limit=0, nonce="n-1")["d"]
            chunk = await next_named(shard, "GUILD_MEMBERS_CHUNK")
            assert chunk.data["members"] == members and chunk.data["nonce"] == "n-1"

            await shard.request_guild_members("123", user_ids=[501, 999])
            d = (await gw.wait_for_op(8))["d"]
            assert d["user_ids"] == ["501", "999"]
            chunk = await next_named(shard, "GUILD_MEMBERS_CHUNK")
            assert chunk.data["members"] == [members[1]] and chunk.data["not_found"] == ["999"]

            activities = [{"name": "tests", "type": 0}]
            await shard.update_presence("idle", activities=activities, afk=True, since=1234)
            d = (await gw.wait_for_op(3))["d"]
            assert d == {"since": 1234, "activities": activities, "status": "idle", "afk": True}

            await shard.update_voice_state(123, 456, self_mute=True)
            d = (await gw.wait_for_op(4))["d"]
            assert d == {"guild_id": "123", "channel_id": "456", "self_mute": True, "self_deaf": False}
            voice = await next_named(shard, "VOICE_STATE_UPDATE")
            assert voice.data["channel_id"] == "456" and voice.data["self_mute"] is True
            await next_named(shard, "VOICE_SERVER_UPDATE")

            await shard.request_soundboard_sounds([123, "124"])
            assert (await gw.wait_for_op(31))["d"] == {"guild_ids": ["123", "124"]}
            sounds = [await next_named(shard, "SOUNDBOARD_SOUNDS") for _ in range(2)]
            assert [s.data["guild_id"] for s in sounds] == ["123", "124"]
            assert sounds[0].data["soundboard_sounds"] == [{"sound_id": "1", "name": "boop"}]

            await shard.request_channel_info(123, ["status"])
            assert (await gw.wait_for_op(43))["d"] == {"guild_id": "123", "fields": ["status"]}
            info = await next_named(shard, "CHANNEL_INFO")
            assert info.data == {"guild_id": "123", "channels": [{"id": "77", "status": "live"}]}

            # Nothing oversized ever reached the fake; the connection never closed.
            assert not any(b"y" * 5000 in r.raw or b"z" * 5000 in r.raw for r in gw.received)
            assert len(gw.received_payloads(2)) == 1 and gw.received_payloads(1) == []
            assert len(gw.connections) == 1 and gw.connections[0].open

    run(body)


def test_commands_beyond_the_rate_limit_wait_and_are_not_dropped(twins: dict[str, ModuleType]) -> None:
    """150 quick commands: the fake (120 per 60 s) never closes 4008; the excess stays queued."""

    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw, running(gw, twins) as shard:
            await next_named(shard, "READY")
            limiter = shard._proto.ratelimiter
            assert limiter is not None
            for index in range(150):
                await shard.update_presence("online", since=index)
            pending = shard._proto.pending_commands  # the permitted ones were written at once
            written = 150 - pending
            assert written <= 120 - limiter.reserve - 1  # the IDENTIFY took a permit too
            assert written >= 100 and pending > 0
            await gw.wait_for(lambda g: len(g.received_payloads(3)) >= written)
            await asyncio.sleep(0.5)
            sent = gw.received_payloads(3)
            assert len(sent) == written and shard._proto.pending_commands == pending  # the rest wait, queued
            assert [p["d"]["since"] for p in sent] == list(range(written))  # in order, none skipped
            assert gw.connections[0].open and len(gw.connections) == 1

    run(body)


def test_queued_commands_drain_in_order_when_the_window_moves(
    twins: dict[str, ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a 1 s limiter window (fake: 120 per 0.7 s) all 150 commands arrive, in order, without a 4008."""

    def short_window_limiter(heartbeat_interval: float | None = None) -> CommandRateLimiter:
        return CommandRateLimiter(heartbeat_interval, period=1.0)

    monkeypatch.setattr(gateway.protocol, "CommandRateLimiter", short_window_limiter)

    async def body() -> None:
        async with FakeGateway(token=TOKEN, rate_limit=(120, 0.7)) as gw, running(gw, twins) as shard:
            await next_named(shard, "READY")
            for index in range(150):
                await shard.update_presence("online", since=index)
            await gw.wait_for(lambda g: len(g.received_payloads(3)) == 150, timeout=8)
            assert [p["d"]["since"] for p in gw.received_payloads(3)] == list(range(150))
            assert shard._proto.pending_commands == 0
            times = [r.at for r in gw.received if r.op == 3]
            assert times[-1] - times[0] >= 0.5  # they did wait for the window
            assert len(gw.connections) == 1 and gw.connections[0].open

    run(body)


def test_commands_sent_before_identify_wait_for_ready(twins: dict[str, ModuleType]) -> None:
    async def body() -> None:
        queue = IdentifyQueue(delay=1.0)
        await queue.wait_turn(0)  # use up the slot: the shard's IDENTIFY waits about 1 s
        async with FakeGateway(token=TOKEN) as gw:
            shard = new_shard(gw, twins, identify_queue=queue)
            try:
                await shard.send(commands.update_presence("idle"))  # before start
                assert shard._proto.pending_commands == 1
                shard.start()
                await gw.wait_for_connection()
                await until(lambda: shard._proto.heartbeat_interval is not None, what="HELLO")
                await shard.send(commands.update_presence("dnd"))  # connected, not identified
                await asyncio.sleep(0.2)
                assert gw.received_payloads(3) == [] and shard._proto.pending_commands == 2
                assert shard.status is ShardStatus.IDENTIFYING
                first = await gw.wait_for_op(3)
                second = await gw.wait_for_op(3)
                assert [first["d"]["status"], second["d"]["status"]] == ["idle", "dnd"]
                order = [r.op for r in gw.received if r.op in (2, 3)]
                assert order == [2, 3, 3]
                conn = gw.connections[0]
                assert conn.open and conn.identified  # a command before READY would have closed 4003
                await next_named(shard, "READY")
            finally:
                await shard.close()

    run(body)


# -- identify queue ---------------------------------------------------------------------------------------------


def test_shared_identify_queue_spaces_identifies(twins: dict[str, ModuleType]) -> None:
    delay = 0.3

    async def body() -> None:
        queue = IdentifyQueue(max_concurrency=1, delay=delay)
        async with FakeGateway(token=TOKEN) as gw:
            shards = [new_shard(gw, twins, shard_id=ShardId(i, 3), identify_queue=queue) for i in range(3)]
            try:
                for shard in shards:
                    shard.start()
                await gw.wait_for(lambda g: len(g.received_payloads(2)) == 3, timeout=10)
                await until(lambda: all(s.status is ShardStatus.ACTIVE for s in shards), what="3 shards active")
                identifies = [r for r in gw.received if r.op == 2]
                assert sorted(r.payload["d"]["shard"][0] for r in identifies) == [0, 1, 2]
                times = [r.at for r in identifies]
                gaps = [b - a for a, b in zip(times, times[1:])]
                assert all(gap >= delay - 0.05 for gap in gaps), gaps
                assert len(gw.sessions) == 3
            finally:
                await asyncio.gather(*(shard.close() for shard in shards))

    run(body)


def test_identify_queue_with_concurrency_two_identifies_buckets_together(twins: dict[str, ModuleType]) -> None:
    async def body() -> None:
        queue = IdentifyQueue(max_concurrency=2, delay=5.0)
        async with FakeGateway(token=TOKEN, max_concurrency=2) as gw:
            shards = [new_shard(gw, twins, shard_id=ShardId(i, 2), identify_queue=queue) for i in range(2)]
            try:
                for shard in shards:
                    shard.start()
                await gw.wait_for(lambda g: len(g.received_payloads(2)) == 2, timeout=WAIT)
                await until(lambda: all(s.status is ShardStatus.ACTIVE for s in shards), what="2 shards active")
                times = [r.at for r in gw.received if r.op == 2]
                assert abs(times[1] - times[0]) < 2.5  # not spaced by the 5 s delay
                for conn in gw.connections:
                    assert not any(json.loads(raw)["op"] == 9 for raw in conn.sent)  # no op 9 false
                assert len(gw.sessions) == 2 and len(gw.connections) == 2
            finally:
                await asyncio.gather(*(shard.close() for shard in shards))

    run(body)


# -- token secrecy -----------------------------------------------------------------------------------------------


SECRET = "MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_token_never_appears_in_logs_reprs_or_exceptions(
    twins: dict[str, ModuleType], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []
    reprs: list[str] = []

    async def body() -> None:
        # 1. A normal session: connect, identify, events, a resume (RESUME carries the token too), close.
        async with FakeGateway(token=SECRET) as gw, running(
            gw, twins, token=SECRET, compression="zlib-stream"
        ) as shard:
            await next_named(shard, "READY")
            reprs.extend([repr(shard), str(shard), repr(shard._proto), repr(shard.session)])
            await gw.reconnect()
            await next_named(shard, "RESUMED")
            assert gw.received_payloads(2)[0]["d"]["token"] == SECRET  # the token did go on the wire
        # 2. An invalid token: close 4004 -> FatalCloseError.
        async with FakeGateway(token="the-right-token") as gw:
            shard = new_shard(gw, twins, token=SECRET)
            try:
                with pytest.raises(FatalCloseError) as info:
                    await asyncio.wait_for(next_named(shard, "NEVER"), WAIT)
                assert info.value.code == 4004
                errors.append(info.value)
                reprs.append(repr(shard))
                with pytest.raises(FatalCloseError) as again:
                    await shard.send(commands.update_presence())
                errors.append(again.value)
            finally:
                await shard.close()
        # 3. A connect failure to a closed port.
        shard = Shard(ShardId(0, 1), SECRET, INTENTS, gateway_url=f"ws://127.0.0.1:{_free_port()}",
                      identify_queue=IdentifyQueue(delay=0), rng=lambda: 0.5, _twins=twins)
        shard.start()
        try:
            await until(lambda: shard._proto.attempt >= 1, what="a failed connect")
            reprs.append(repr(shard))
        finally:
            await shard.close()
        # 4. Argument errors raised with the token at hand.
        for kwargs in ({"compression": "brotli"}, {"gateway_url": "http://x"}, {"large_threshold": 10}):
            with pytest.raises((TypeError, ValueError)) as bad:
                Shard(ShardId(0, 1), SECRET, INTENTS, _twins=twins, **kwargs)
            errors.append(bad.value)

    run(body)
    formatter = logging.Formatter()
    texts = list(reprs)
    for error in errors:
        texts += [str(error), repr(error), repr(error.args)]
    client_records = [r for r in caplog.records if not r.name.startswith("gateway.testing")]
    assert any(r.name == "gateway.shard" for r in client_records)  # the shard did log (DEBUG included)
    assert any("connect failed" in r.getMessage() for r in client_records)
    for record in client_records:
        texts += [record.getMessage(), repr(record.args), str(record.msg)]
        if record.exc_info:
            texts.append(formatter.formatException(record.exc_info))
    for text in texts:
        assert SECRET not in text
        assert SECRET[-12:] not in text


# -- argument validation ------------------------------------------------------------------------------------------


def test_shard_id_validation(twins: dict[str, ModuleType]) -> None:
    for args, error in [((-1, 1), ValueError), ((1, 1), ValueError), ((0, 0), ValueError), ((3, 2), ValueError),
                        ((0.0, 1), TypeError), (("0", 1), TypeError), ((True, 2), TypeError), ((0, "1"), TypeError)]:
        with pytest.raises(error, match="ShardId"):
            ShardId(*args)  # type: ignore[arg-type]
    assert ShardId(1, 2).to_list() == [1, 2]
    with pytest.raises(TypeError, match="ShardId"):
        Shard((0, 1), TOKEN, INTENTS, _twins=twins)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"compression": "gzip"}, ValueError, "compression"),
        ({"compression": "zlib"}, ValueError, "compression"),
        ({"gateway_url": "http://gateway.discord.gg"}, ValueError, "gateway_url"),
        ({"gateway_url": "gateway.discord.gg"}, ValueError, "gateway_url"),
        ({"large_threshold": 49}, ValueError, "large_threshold"),
        ({"large_threshold": 251}, ValueError, "large_threshold"),
        ({"large_threshold": 100.0}, TypeError, "large_threshold"),
        ({"intents": "GUILDS"}, TypeError, "intents"),
        ({"intents": 1.0}, TypeError, "intents"),
        ({"intents": None}, TypeError, "intents"),
        ({"intents": -1}, ValueError, "intents"),
        ({"token": ""}, ValueError, "token"),
        ({"token": 123}, TypeError, "token"),
        ({"identify_queue": object()}, TypeError, "identify_queue"),
        ({"connect_timeout": 0}, ValueError, "connect_timeout"),
        ({"event_types": "all"}, (TypeError, ValueError), None),
    ],
)
def test_shard_constructor_argument_errors(
    twins: dict[str, ModuleType], kwargs: dict[str, Any], error: Any, match: str | None
) -> None:
    options = dict(kwargs)
    token = options.pop("token", TOKEN)
    intents = options.pop("intents", INTENTS)
    with pytest.raises(error, match=match):
        Shard(ShardId(0, 1), token, intents, _twins=twins, **options)


def test_valid_constructor_arguments_are_accepted(twins: dict[str, ModuleType]) -> None:
    for compression in COMPRESSIONS:
        for threshold in (50, 250):
            shard = Shard(ShardId(2, 3), TOKEN, Intents.GUILDS, compression=compression, large_threshold=threshold,
                          gateway_url="wss://example.invalid", _twins=twins)
            assert shard.id == ShardId(2, 3) and shard.status is ShardStatus.DISCONNECTED and not shard.closed


# -- TLS ----------------------------------------------------------------------------------------------------------


def _make_cert_with_cryptography(cert: Path, key: Path) -> bool:
    try:
        import datetime
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        return False
    private_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private_key, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return True


@pytest.fixture(scope="module")
def self_signed_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost/127.0.0.1: made with ``cryptography`` if installed, else ``openssl``."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    if _make_cert_with_cryptography(cert, key):
        return cert, key
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("neither cryptography nor openssl is available to make a self-signed certificate")
    result = subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        capture_output=True, timeout=60,
    )
    if result.returncode != 0:
        pytest.skip(f"openssl could not make a certificate: {result.stderr.decode(errors='replace')[:200]}")
    return cert, key


def test_wss_verifies_certificates_by_default(
    twins: dict[str, ModuleType], self_signed_cert: tuple[Path, Path]
) -> None:
    cert, key = self_signed_cert
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    requests: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Reached only after a completed TLS handshake: record the HTTP upgrade request, then hang up.
        with contextlib.suppress(Exception):
            requests.append(await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT))
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()

    async def body() -> None:
        server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=server_context)
        port = server.sockets[0].getsockname()[1]
        url = f"wss://localhost:{port}"
        try:
            # Default: certificates verified, so the self-signed server is refused before any HTTP is sent.
            shard = Shard(ShardId(0, 1), TOKEN, INTENTS, gateway_url=url, identify_queue=IdentifyQueue(delay=0),
                          rng=lambda: 0.0, _twins=twins)
            shard.start()
            try:
                await until(lambda: shard._proto.attempt >= 2, timeout=10, what="two failed connects")
                assert requests == []
                assert shard.status is ShardStatus.DISCONNECTED and shard.session is None
            finally:
                await asyncio.wait_for(shard.close(), WAIT)
            # Control: trusting this certificate, the same server does get the websocket upgrade request.
            trusting = ssl.create_default_context(cafile=str(cert))
            shard = Shard(ShardId(0, 1), TOKEN, INTENTS, gateway_url=url, identify_queue=IdentifyQueue(delay=0),
                          rng=lambda: 0.0, ssl=trusting, _twins=twins)
            shard.start()
            try:
                await until(lambda: requests, timeout=WAIT, what="the upgrade request over TLS")
                assert requests[0].startswith(b"GET /?v=10&encoding=json")
                assert TOKEN.encode() not in requests[0]
            finally:
                await asyncio.wait_for(shard.close(), WAIT)
        finally:
            server.close()
            await server.wait_closed()

    run(body)
