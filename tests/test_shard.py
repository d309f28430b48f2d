"""Tests of ``gateway.shard.Shard`` over real loopback websockets against ``gateway.testing.FakeGateway``.

Nothing is mocked: every test runs a real FakeGateway server and a real Shard in one event loop, once with the
compiled twins and once with the pure ones (the ``twins`` fixture). Timing assertions are only lower bounds (a timer
never fires early) or loose upper bounds on counts, so the tests stay robust on a loaded machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from types import ModuleType
from typing import Any

import pytest

import gateway.protocol
from gateway import (
    Event,
    EventTypeFlags,
    FatalCloseError,
    IdentifyQueue,
    Intents,
    Session,
    Shard,
    ShardClosedError,
    ShardId,
    ShardStatus,
    ConnectError,
    commands,
)
from gateway.testing import FakeConnection, FakeGateway

from shard_helpers import WAIT, next_named, run, until

TOKEN = "test-token"
INTENTS = int(Intents.GUILDS | Intents.GUILD_MESSAGES)


def new_shard(gw: FakeGateway, twins: dict[str, ModuleType], **options: Any) -> Shard:
    """A Shard for ``gw`` with a delay-free identify queue (override any option)."""
    shard_id = options.pop("shard_id", ShardId(0, 1))
    token = options.pop("token", TOKEN)
    intents = options.pop("intents", INTENTS)
    options.setdefault("identify_queue", IdentifyQueue(delay=0))
    options.setdefault("rng", lambda: 0.5)
    return Shard(shard_id, token, intents, gateway_url=gw.url, _twins=twins, **options)


@contextlib.asynccontextmanager
async def running(gw: FakeGateway, twins: dict[str, ModuleType], **options: Any) -> AsyncIterator[Shard]:
    """A Shard that is always closed (code 1000) when the block exits, even on failure."""
    shard = new_shard(gw, twins, **options)
    try:
        yield shard
    finally:
        await asyncio.wait_for(shard.close(), WAIT)


async def connection(gw: FakeGateway, number: int, timeout: float = WAIT) -> FakeConnection:
    """Connection ``number`` (1-based) once it exists."""
    await gw.wait_for(lambda g: len(g.connections) >= number, timeout)
    return gw.connections[number - 1]


def current_session(shard: Shard) -> Session:
    session = shard.session
    assert session is not None, "the shard has no session"
    return session


def ops(gw: FakeGateway, op: int) -> list[Any]:
    return gw.received_payloads(op)


class Collector:
    """Reads ``shard.events()`` in a background task and keeps every event."""

    def __init__(self, shard: Shard) -> None:
        self.shard = shard
        self.events: list[Event] = []
        self.error: BaseException | None = None
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            async for event in self.shard.events():
                self.events.append(event)
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def count(self, name: str) -> int:
        return sum(1 for event in self.events if event.name == name)

    def dispatch_seqs(self) -> list[int]:
        return [event.seq for event in self.events if event.op == 0 and event.seq is not None]


# -- connecting ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", [None, "zlib-stream", "zstd-stream"])
def test_connect_url_and_events_for_each_compression(twins: dict[str, ModuleType], compression: str | None) -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw:
            async with running(gw, twins, compression=compression) as shard:
                ready = await next_named(shard, "READY")
                first = gw.connections[0]
                expected_query = {"v": "10", "encoding": "json"}
                if compression is not None:
                    expected_query["compress"] = compression
                assert first.path == "/"
                assert first.query == expected_query
                assert first.compression == compression
                assert ready.data["session_id"] == current_session(shard).id

                big = "x" * 200_000  # spans many inflate output chunks
                payloads = [{"id": "1", "content": "hi"}, {"id": "2", "content": "h\u00e9llo \u2603 \U0001f600"},
                            {"id": "3", "content": big}]
                seqs = [await gw.dispatch("MESSAGE_CREATE", data) for data in payloads]
                for data, seq in zip(payloads, seqs):
                    event = await next_named(shard, "MESSAGE_CREATE")
                    assert (event.seq, event.data) == (seq, data)

                # A new connection needs a new inflater; the resume URL carries the same query.
                await gw.drop()
                await next_named(shard, "RESUMED")
                second = gw.connections[1]
                assert second.path == "/resume"
                assert second.query == expected_query
                seq = await gw.dispatch("MESSAGE_CREATE", payloads[1])
                event = await next_named(shard, "MESSAGE_CREATE")
                assert (event.seq, event.data) == (seq, payloads[1])

    run(body)


def test_identify_payload_content(twins: dict[str, ModuleType]) -> None:
    presence = commands.presence("idle", activities=[{"name": "tests", "type": 0}])
    properties = {"os": "plan9", "browser": "test-browser", "device": "test-device"}
    intents = int(Intents.GUILDS | Intents.GUILD_MEMBERS | Intents.MESSAGE_CONTENT)

    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw:
            async with running(gw, twins, shard_id=ShardId(2, 4), intents=intents, large_threshold=250,
                               presence=presence, properties=properties) as shard:
                ready = await next_named(shard, "READY")
                assert ready.data["shard"] == [2, 4]
                identify = await gw.wait_for_op(2)
                d = identify["d"]
                assert d["token"] == TOKEN
                assert d["intents"] == intents
                assert d["shard"] == [2, 4]
                assert d["properties"] == properties
                assert d["large_threshold"] == 250
                assert d["presence"] == presence
                assert d.get("compress", False) is False
                assert shard.status is ShardStatus.ACTIVE

            # Defaults: large_threshold 50, the three properties, no presence.
            async with running(gw, twins) as shard:
                await next_named(shard, "READY")
                d = (await gw.wait_for_op(2))["d"]
                assert d["shard"] == [0, 1]
                assert d["intents"] == INTENTS
                assert d["large_threshold"] == 50
                assert set(d["properties"]) == {"os", "browser", "device"}
                assert d.get("presence") is None

    run(body)


# -- heartbeats ------------------------------------------------------------------------------------------------


class GatedIdentifyQueue(IdentifyQueue):
    """An identify queue that grants nothing until ``gate`` is set (to observe a shard before it identifies)."""

    def __init__(self) -> None:
        super().__init__(delay=0)
        self.gate = asyncio.Event()

    async def wait_turn(self, shard_id: int) -> None:
        await self.gate.wait()
        await super().wait_turn(shard_id)


def test_heartbeats_are_periodic_and_carry_the_last_sequence(twins: dict[str, ModuleType]) -> None:
    interval = 0.2

    def beats(gw: FakeGateway) -> list[int | None]:
        return [payload["d"] for payload in ops(gw, 1)]  # every connection's, in arrival order

    async def body() -> None:
        async with FakeGateway(token=TOKEN, heartbeat_interval=int(interval * 1000)) as gw:
            queue = GatedIdentifyQueue()
            async with running(gw, twins, identify_queue=queue, rng=lambda: 0.0) as shard:
                shard.start()
                await gw.wait_for(lambda g: len(beats(g)) >= 3)
                now = asyncio.get_running_loop().time()
                # Before any dispatch d is null; never more beats than one per interval (a timer never fires early).
                assert beats(gw) == [None] * len(beats(gw))
                for conn in gw.connections:
                    assert len(conn.heartbeats) <= 2 + (now - conn.opened_at) / interval
                assert ops(gw, 2) == []
                assert shard.status is ShardStatus.IDENTIFYING

                queue.gate.set()
                ready = await next_named(shard, "READY")
                seq = await gw.dispatch("MESSAGE_CREATE", {"id": "1"})
                assert (await next_named(shard, "MESSAGE_CREATE")).seq == seq
                await gw.wait_for(lambda g: seq in beats(g))
                sent = beats(gw)
                first_set = next(i for i, d in enumerate(sent) if d is not None)
                later = [d for d in sent[first_set:] if d is not None]
                assert later == sent[first_set:]  # never null again once a dispatch was seen
                assert later == sorted(later)
                assert set(later) <= {ready.seq, seq}

                await until(lambda: shard.latency.periods >= 2, what="two heartbeat round trips")
                latency = shard.latency
                assert 1 <= len(latency.recent) <= 5
                assert all(period >= 0 for period in latency.recent)
                assert latency.average is not None and latency.average >= 0

    run(body)


def test_server_heartbeat_request_is_answered_at_once(twins: dict[str, ModuleType]) -> None:
    async def body() -> None:
        # The regular first beat is due only after 30 s (interval 60 s * rng 0.5): any beat seen is the answer.
        async with FakeGateway(token=TOKEN, heartbeat_interval=60_000) as gw:
            async with running(gw, twins, rng=lambda: 0.5) as shard:
                ready = await next_named(shard, "READY")
                conn = gw.connections[0]
                assert conn.heartbeats == []
                assert shard.latency.periods == 0 and shard.latency.average is None

                await gw.request_heartbeat()
                await next_named(shard, "GATEWAY_HEARTBEAT")
                await gw.wait_for(lambda g: len(conn.heartbeats) == 1)
                assert conn.heartbeats == [ready.seq]

                await next_named(shard, "GATEWAY_HEARTBEAT_ACK")
                latency = shard.latency
                assert latency.periods == 1
                assert len(latency.recent) == 1 and latency.recent[0] >= 0
                assert latency.average == latency.recent[0]
                assert shard.status is ShardStatus.ACTIVE

    run(body)


def test_zombied_connection_is_dropped_and_resumed(twins: dict[str, ModuleType]) -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN, heartbeat_interval=150) as gw:
            async with running(gw, twins, rng=lambda: 0.0) as shard:
                ready = await next_named(shard, "READY")
                session_id = ready.data["session_id"]
                seq = await gw.dispatch("MESSAGE_CREATE", {"id": "1"})
                assert (await next_named(shard, "MESSAGE_CREATE")).seq == seq

                first = gw.connections[0]
                gw.ack_heartbeats = False

                async def stream() -> None:  # dispatches are not a sign of life (Discord's zombie rule)
                    while not first.closed:
                        gw.dispatch_nowait("TYPING_START", {"channel_id": "1"})
                        await asyncio.sleep(0.02)

                streamer = asyncio.create_task(stream())
                closed_by, code = await first.wait_closed(timeout=WAIT)
                await streamer
                # Dropped without a close frame (so never 1000/1001), after at least one unanswered beat.
                assert (closed_by, code) == ("drop", None)
                assert len(first.heartbeats) >= 1
                gw.ack_heartbeats = True

                resume = await gw.wait_for_op(6)
                second = gw.connections[1]
                assert resume["d"]["token"] == TOKEN
                assert resume["d"]["session_id"] == session_id
                assert seq <= resume["d"]["seq"] <= gw.sessions[session_id].seq
                assert second.path == "/resume" and second.used_resume_url
                assert [p.op for p in second.received if p.op != 1][0] == 6
                await next_named(shard, "RESUMED")
                assert len(ops(gw, 2)) == 1
                assert current_session(shard).id == session_id

    run(body)


# -- identify wait and commands -------------------------------------------------------------------------------


def test_close_while_waiting_for_an_identify_slot(twins: dict[str, ModuleType]) -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw:
            queue = GatedIdentifyQueue()
            shard = new_shard(gw, twins, identify_queue=queue)
            await next_named(shard, "GATEWAY_HELLO")  # the identify wait has begun
            first = gw.connections[0]
            await asyncio.wait_for(shard.close(), WAIT)
            assert await first.wait_closed() == ("client", 1000)
            assert shard.closed and shard.session is None
            queue.gate.set()  # the cancelled wait must not IDENTIFY later
            await asyncio.sleep(0.2)
            assert ops(gw, 2) == []
            assert len(gw.connections) == 1

    run(body)


def test_commands_over_the_rate_limit_wait_instead_of_closing_4008(twins: dict[str, ModuleType]) -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw:  # the fake closes 4008 on a 121st payload within 60 s
            async with running(gw, twins) as shard:
                await next_named(shard, "READY")
                first = gw.connections[0]
                for index in range(130):
                    await shard.send({"op": 3, "d": {"since": index, "activities": [], "status": "idle", "afk": False}})
                await gw.wait_for(lambda g: len(first.received) >= 100)
                await asyncio.sleep(0.3)
                assert first.open
                assert len(first.received) <= 120
                sent_first = len(ops(gw, 3))
                assert 100 <= sent_first < 130

                # The rest are kept, not dropped: they go out on the next connection, after the RESUME.
                await gw.drop()
                await next_named(shard, "RESUMED")
                await gw.wait_for(lambda g: len(ops(g, 3)) == 130)
                assert [p["d"]["since"] for p in ops(gw, 3)] == list(range(130))
                assert [p.op for p in gw.connections[1].received if p.op != 1][0] == 6
                assert all(conn.close_code != 4008 for conn in gw.connections)

    run(body)


# -- resuming and re-identifying -------------------------------------------------------------------------------


def test_reconnect_in_place_of_hello(twins: dict[str, ModuleType]) -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN, hello="reconnect") as gw:
            async with running(gw, twins, rng=lambda: 0.0) as shard:
                shard.start()
                first = await connection(gw, 1)
                assert await first.wait_closed() == ("client", 4000)
                gw.hello = "hello"  # the retry comes after a backoff of at least 0.5 s
                seen: list[Event] = []
                await next_named(shard, "READY", seen=seen)
                assert [event.name for event in seen][:2] == ["GATEWAY_RECONNECT", "GATEWAY_CLOSE"]
                assert len(gw.connections) == 2
                assert [p.op for p in first.received] == []
                assert len(ops(gw, 2)) == 1

    run(body)


def test_commands_wait_across_a_reconnect(twins: dict[str, ModuleType]) -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw:
            async with running(gw, twins) as shard:
                await next_named(shard, "READY")
                await shard.update_presence("idle")
                assert (await gw.wait_for_op(3))["d"]["status"] == "idle"
                await gw.drop()
                await next_named(shard, "GATEWAY_CLOSE")  # the shard knows it is disconnected
                await shard.update_presence("dnd")  # queued until the RESUME went out
                assert (await gw.wait_for_op(3))["d"]["status"] == "dnd"
                sent = [p.op for p in gw.connections[1].received if p.op != 1]
                assert sent == [6, 3]
                await next_named(shard, "RESUMED")

    run(body)


@pytest.mark.parametrize("trigger", ["drop", "op7", "op9-true"])
def test_resume_after_drop_reconnect_and_resumable_invalid_session(twins: dict[str, ModuleType], trigger: str) -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw:
            async with running(gw, twins) as shard:
                ready = await next_named(shard, "READY")
                session_id = ready.data["session_id"]
                assert shard.resume_url == gw.resume_gateway_url
                seq = await gw.dispatch("MESSAGE_CREATE", {"id": "1"})
                await next_named(shard, "MESSAGE_CREATE")
                first = gw.connections[0]

                if trigger == "drop":
                    await gw.drop()
                    expected_close: tuple[Any, Any] = ("server", None)
                elif trigger == "op7":
                    await gw.reconnect()
                    expected_close = ("client", 4000)
                else:
                    await gw.invalidate_session(True)
                    expected_close = ("client", 4000)
                assert await first.wait_closed() == expected_close

                resume = await gw.wait_for_op(6)
                assert resume["d"] == {"token": TOKEN, "session_id": session_id, "seq": seq}
                resumed = await next_named(shard, "RESUMED")
                second = gw.connections[1]
                assert second.used_resume_url
                assert [p.op for p in second.received if p.op != 1][0] == 6
                assert len(gw.connections) == 2
                assert len(ops(gw, 2)) == 1
                assert shard.status is ShardStatus.ACTIVE
                assert resumed.seq is not None
                assert shard.session == Session(session_id, resumed.seq)

    run(body)


def test_invalid_session_false_starts_a_new_session_after_a_delay(twins: dict[str, ModuleType]) -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw:
            # rng 0: the re-identify delay is its minimum, 1 s.
            async with running(gw, twins, rng=lambda: 0.0) as shard:
                ready = await next_named(shard, "READY")
                old_id = ready.data["session_id"]
                first = gw.connections[0]
                started = asyncio.get_running_loop().time()
                await gw.invalidate_session(False)
                assert await first.wait_closed() == ("client", 1000)

                new_ready = await next_named(shard, "READY")
                second = gw.connections[1]
                assert second.opened_at - started >= 0.95  # at least REIDENTIFY_DELAY[0]
                assert second.path == "/" and not second.used_resume_url
                assert [p.op for p in second.received].count(2) == 1
                assert ops(gw, 6) == []
                assert new_ready.data["session_id"] != old_id
                assert current_session(shard).id == new_ready.data["session_id"]
                assert shard.status is ShardStatus.ACTIVE

    run(body)


@pytest.mark.parametrize("code", [4000, 4001, 4002, 4003, 4005, 4008, 1000, 4999])
def test_resumable_close_codes_resume(twins: dict[str, ModuleType], code: int) -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw:
            async with running(gw, twins) as shard:
                ready = await next_named(shard, "READY")
                session_id = ready.data["session_id"]
                first = gw.connections[0]
                await gw.close(code, "test close")
                assert await first.wait_closed() == ("server", code)
                resume = await gw.wait_for_op(6)
                assert resume["d"]["session_id"] == session_id
                assert resume["d"]["seq"] == ready.seq
                await next_named(shard, "RESUMED")
                assert gw.connections[1].used_resume_url
                assert len(ops(gw, 2)) == 1
                assert current_session(shard).id == session_id

    run(body)


@pytest.mark.parametrize("code", [4007, 4009])
def test_session_ending_close_codes_identify_a_new_session(twins: dict[str, ModuleType], code: int) -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw:
            async with running(gw, twins) as shard:
                ready = await next_named(shard, "READY")
                old_id = ready.data["session_id"]
                await gw.close(code)
                new_ready = await next_named(shard, "READY")
                second = gw.connections[1]
                assert second.path == "/" and not second.used_resume_url
                assert ops(gw, 6) == []
                assert len(ops(gw, 2)) == 2
                assert new_ready.data["session_id"] != old_id
                assert current_session(shard).id == new_ready.data["session_id"]

    run(body)


@pytest.mark.parametrize("code", [4004, 4010, 4011, 4012, 4013, 4014])
def test_fatal_close_codes_stop_the_shard(twins: dict[str, ModuleType], code: int) -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw:
            async with running(gw, twins) as shard:
                await next_named(shard, "READY")
                await gw.close(code, "fatal")
                seen: list[Event] = []
                with pytest.raises(FatalCloseError) as info:
                    await next_named(shard, "never", seen=seen)
                assert info.value.code == code
                closes = [event.data for event in seen if event.name == "GATEWAY_CLOSE"]
                assert closes == [{"code": code, "reason": "fatal"}]
                assert shard.status is ShardStatus.FATALLY_CLOSED
                assert shard.closed
                with pytest.raises(FatalCloseError) as again:
                    async for _ in shard.events():
                        pass
                assert again.value.code == code
                with pytest.raises(FatalCloseError):
                    await shard.send(commands.update_presence("idle"))
                await asyncio.sleep(0.4)
                assert len(gw.connections) == 1

    run(body)


def test_fatal_close_codes_from_identify(twins: dict[str, ModuleType]) -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN, disallowed_intents=int(Intents.GUILD_PRESENCES)) as gw:
            cases: list[tuple[dict[str, Any], int]] = [
                ({"token": "wrong-token"}, 4004),
                ({"intents": int(Intents.GUILDS | Intents.GUILD_PRESENCES)}, 4014),
                ({"intents": 1 << 40}, 4013),
            ]
            for options, code in cases:
                before = len(gw.connections)
                async with running(gw, twins, **options) as shard:
                    with pytest.raises(FatalCloseError) as info:
                        await next_named(shard, "never")
                    assert info.value.code == code
                    assert shard.status is ShardStatus.FATALLY_CLOSED
                    await asyncio.sleep(0.2)
                    assert len(gw.connections) == before + 1

    run(body)


# -- backoff ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [4000, "drop"])
def test_accept_then_close_gets_backoff_not_a_tight_loop(twins: dict[str, ModuleType], mode: int | str) -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw:
            gw.close_on_connect = mode  # type: ignore[assignment]
            # rng 0: the shortest jitter, 0.5 s then 1 s then 2 s.
            async with running(gw, twins, rng=lambda: 0.0) as shard:
                shard.start()
                await connection(gw, 1)
                await asyncio.sleep(1.5)
                opened = [conn.opened_at for conn in gw.connections]
                assert 2 <= len(opened) <= 4, opened
                gaps = [later - earlier for earlier, later in zip(opened, opened[1:])]
                for attempt, gap in enumerate(gaps, start=1):
                    assert gap >= 0.5 * 2 ** (attempt - 1) * 0.95, gaps
                assert ops(gw, 2) == []

    run(body)


@pytest.mark.parametrize("via", ["READY", "RESUMED"])
def test_backoff_resets_after_ready_or_resumed(twins: dict[str, ModuleType], via: str) -> None:
    jitter = [0.0]  # rng 0 while connections fail: 0.5 s then 1 s

    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw:
            async with running(gw, twins, rng=lambda: jitter[0]) as shard:
                failed = 0
                if via == "READY":
                    gw.close_on_connect = 4000
                    shard.start()
                else:
                    await next_named(shard, "READY")
                    failed = 1
                    gw.close_on_connect = 4000
                    await gw.drop()  # after a healthy connection: reconnect at once (attempt 0), which fails
                await connection(gw, failed + 2)  # two failed connections: attempt 2
                gw.close_on_connect = None
                await next_named(shard, via)
                assert len(gw.connections) == failed + 3
                # Without the reset the next delay would be backoff_delay(2) ~ 2 s with this jitter.
                jitter[0] = 0.999
                before = asyncio.get_running_loop().time()
                await gw.drop()
                await next_named(shard, "RESUMED")
                assert gw.connections[-1].opened_at - before < 1.5
                assert len(gw.connections) == failed + 4

    run(body)


# -- delivery --------------------------------------------------------------------------------------------------


def test_events_delivered_exactly_once_and_in_order_across_resumes(twins: dict[str, ModuleType]) -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw:
            shard = new_shard(gw, twins)
            collector = Collector(shard)
            try:
                await until(lambda: collector.count("READY") == 1, what="READY")
                counter = iter(range(10_000))

                def burst(size: int) -> list[int]:
                    return [gw.dispatch_nowait("MESSAGE_CREATE", {"id": str(next(counter))}) for _ in range(size)]

                async def close_4000() -> None:
                    await gw.close(4000)

                async def op7() -> None:
                    await gw.reconnect()

                async def op9() -> None:
                    await gw.invalidate_session(True)

                disruptions: list[Callable[[], Awaitable[Any]]] = [gw.drop, op7, op9, close_4000, gw.drop]
                for number, disrupt in enumerate(disruptions, start=1):
                    burst(20)  # some may still be in flight when the connection goes
                    await disrupt()
                    burst(5)  # sent while closing or detached: replayed on RESUME
                    await until(lambda: collector.count("RESUMED") == number, what=f"RESUMED {number}")
                last = burst(10)[-1]
                await until(lambda: collector.dispatch_seqs()[-1] == last, what="the last dispatch")

                # A stale dispatch (already delivered sequence) is a replayed duplicate: not delivered again.
                stale = [event for event in collector.events if event.op == 0][5]
                await gw.send({"t": stale.name, "s": stale.seq, "op": 0, "d": {"id": "duplicate"}})
                final = gw.dispatch_nowait("MESSAGE_CREATE", {"id": "final"})
                await until(lambda: collector.dispatch_seqs()[-1] == final, what="the final dispatch")

                seqs = collector.dispatch_seqs()
                assert seqs == list(range(1, final + 1))
                assert all(event.data.get("id") != "duplicate" for event in collector.events if event.op == 0)
                ids = [int(e.data["id"]) for e in collector.events
                       if e.name == "MESSAGE_CREATE" and e.data["id"].isdigit()]
                assert ids == list(range(len(ids)))
                assert len(ops(gw, 2)) == 1
                assert len(ops(gw, 6)) == len(disruptions)
                assert current_session(shard).sequence == final
                assert collector.error is None
            finally:
                await shard.close()
                await asyncio.wait_for(collector.task, WAIT)

    run(body)


def test_first_sequence_zero_is_a_real_sequence(twins: dict[str, ModuleType]) -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN, first_seq=0) as gw:
            async with running(gw, twins) as shard:
                ready = await next_named(shard, "READY")
                assert ready.seq == 0
                assert shard.session == Session(ready.data["session_id"], 0)
                conn = gw.connections[0]
                await gw.request_heartbeat()
                await gw.wait_for(lambda g: len(conn.heartbeats) == 1)
                assert conn.heartbeats == [0]

                await gw.drop()
                missed = gw.dispatch_nowait("MESSAGE_CREATE", {"id": "1"})  # detached: replayed on RESUME
                resume = await gw.wait_for_op(6)
                assert resume["d"]["seq"] == 0
                seen: list[Event] = []
                resumed = await next_named(shard, "RESUMED", seen=seen)
                after = await gw.dispatch("MESSAGE_CREATE", {"id": "2"})
                event = await next_named(shard, "MESSAGE_CREATE")
                assert [e.seq for e in seen if e.op == 0] == [missed] == [1]
                assert (resumed.seq, event.seq) == (2, after)

    run(body)


def test_gateway_close_events_only_when_wanted(twins: dict[str, ModuleType]) -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw:
            async with running(gw, twins) as shard:
                await next_named(shard, "READY")
                await gw.close(4000, "first")
                event = await next_named(shard, "GATEWAY_CLOSE")
                assert event.op == -1 and event.seq is None
                assert event.data == {"code": 4000, "reason": "first"}
                await next_named(shard, "RESUMED")
                await gw.drop()
                event = await next_named(shard, "GATEWAY_CLOSE")
                assert event.data["code"] is None
                await next_named(shard, "RESUMED")

            wanted = EventTypeFlags.READY | EventTypeFlags.RESUMED | EventTypeFlags.MESSAGE_CREATE
            async with running(gw, twins, event_types=wanted) as shard:
                assert (await shard.next_event()).name == "READY"
                await gw.close(4000)
                assert (await asyncio.wait_for(shard.next_event(), WAIT)).name == "RESUMED"
                await gw.drop()
                assert (await asyncio.wait_for(shard.next_event(), WAIT)).name == "RESUMED"
                await gw.dispatch("MESSAGE_CREATE", {"id": "1"})
                assert (await asyncio.wait_for(shard.next_event(), WAIT)).name == "MESSAGE_CREATE"
                assert shard.queued_events == 0

    run(body)


def test_every_event_carries_its_shard_number(twins: dict[str, ModuleType]) -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw:
            async with running(gw, twins, shard_id=ShardId(3, 4)) as shard:
                ready = await next_named(shard, "READY")
                await gw.dispatch("MESSAGE_CREATE", {"id": "1"})
                message = await next_named(shard, "MESSAGE_CREATE")
                await gw.drop()
                closed = await next_named(shard, "GATEWAY_CLOSE")
                assert [ready.shard_id, message.shard_id, closed.shard_id] == [3, 3, 3]
                assert "shard=3" in repr(message)
        assert Event.from_payload(b'{"op":11}').shard_id is None
        assert Event.from_payload(b'{"op":11}', 7).shard_id == 7

    run(body)


def test_any_object_with_an_async_wait_turn_is_an_identify_queue(twins: dict[str, ModuleType]) -> None:
    class Recording:
        def __init__(self) -> None:
            self.turns: list[int] = []

        async def wait_turn(self, shard_id: int) -> None:
            self.turns.append(shard_id)

    async def body() -> None:
        queue = Recording()
        async with FakeGateway(token=TOKEN) as gw:
            async with running(gw, twins, shard_id=ShardId(2, 3), identify_queue=queue) as shard:
                await next_named(shard, "READY")
                assert queue.turns == [2]
        with pytest.raises(TypeError, match="wait_turn"):
            Shard(ShardId(0, 1), TOKEN, INTENTS, identify_queue=object())  # type: ignore[arg-type]

    run(body)


# -- closing and restoring -------------------------------------------------------------------------------------


def test_close_1000_ends_the_session_and_the_stream(twins: dict[str, ModuleType]) -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw:
            shard = new_shard(gw, twins)
            collector = Collector(shard)
            await until(lambda: collector.count("READY") == 1, what="READY")
            session_id = current_session(shard).id
            await asyncio.wait_for(shard.close(), WAIT)
            await asyncio.wait_for(collector.task, WAIT)  # events() ended
            assert collector.error is None
            assert shard.session is None
            assert shard.closed
            assert shard.status is ShardStatus.DISCONNECTED
            with pytest.raises(ShardClosedError):
                await shard.next_event()
            with pytest.raises(ShardClosedError):
                await shard.send(commands.update_presence("idle"))
            assert await gw.connections[0].wait_closed() == ("client", 1000)
            assert gw.sessions[session_id].invalidated
            await asyncio.sleep(0.3)
            assert len(gw.connections) == 1

    run(body)


def test_close_4000_keeps_the_session_and_a_new_shard_resumes_it(twins: dict[str, ModuleType]) -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw:
            old = new_shard(gw, twins)
            ready = await next_named(old, "READY")
            session_id = ready.data["session_id"]
            for index in range(3):
                last = await gw.dispatch("MESSAGE_CREATE", {"id": str(index)})
            for index in range(3):
                assert (await next_named(old, "MESSAGE_CREATE")).data == {"id": str(index)}
            await asyncio.wait_for(old.close(4000, "restarting"), WAIT)
            assert await gw.connections[0].wait_closed() == ("client", 4000)
            assert old.session == Session(session_id, last)
            assert old.resume_url == gw.resume_gateway_url
            rest = [event async for event in old.events()]  # what was queued, then the stream ends
            assert rest[-1].name == "GATEWAY_CLOSE" and rest[-1].data["code"] == 4000
            with pytest.raises(ShardClosedError):
                await old.next_event()

            saved = current_session(old).to_json()
            restored = Session.from_json(saved)
            assert restored == old.session
            assert json.loads(saved) == {"id": session_id, "sequence": last}
            missed = [gw.dispatch_nowait("MESSAGE_CREATE", {"id": f"missed-{i}"}) for i in range(2)]

            async with running(gw, twins, session=restored, resume_url=old.resume_url) as new:
                seen: list[Event] = []
                resumed = await next_named(new, "RESUMED", seen=seen)
                resume = await gw.wait_for_op(6)
                assert resume["d"] == {"token": TOKEN, "session_id": session_id, "seq": last}
                assert gw.connections[1].used_resume_url
                assert len(ops(gw, 2)) == 1
                assert [e.seq for e in seen if e.op == 0] == missed
                assert resumed.seq == missed[-1] + 1
                assert new.session == Session(session_id, resumed.seq)

    run(body)


def test_close_before_start(twins: dict[str, ModuleType]) -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw:
            saved = Session("0123456789abcdef0123456789abcdef", 7)
            for code, kept in ((4000, saved), (1000, None)):
                shard = new_shard(gw, twins, session=saved, resume_url=gw.resume_gateway_url)
                await shard.close(code)
                assert shard.closed
                assert shard.session == kept
                with pytest.raises(ShardClosedError):
                    await shard.next_event()
                with pytest.raises(ShardClosedError):
                    await shard.send(commands.update_presence("idle"))
                with pytest.raises(ShardClosedError):
                    shard.start()
            await asyncio.sleep(0.1)
            assert gw.connections == []

    run(body)


def test_restored_session_the_server_forgot_falls_back_to_identify(twins: dict[str, ModuleType]) -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw:
            stale = Session("0123456789abcdef0123456789abcdef", 42)
            # rng 0: after op 9 false the new IDENTIFY waits the minimum re-identify delay, 1 s.
            async with running(gw, twins, session=stale, resume_url=gw.resume_gateway_url, rng=lambda: 0.0) as shard:
                seen: list[Event] = []
                ready = await next_named(shard, "READY", seen=seen)
                assert "GATEWAY_INVALIDATE_SESSION" in [event.name for event in seen]
                resume = await gw.wait_for_op(6)
                assert resume["d"]["session_id"] == stale.id and resume["d"]["seq"] == 42
                first, second = gw.connections
                assert first.used_resume_url and await first.wait_closed() == ("client", 1000)
                assert second.path == "/" and [p.op for p in second.received if p.op != 1] == [2]
                assert ready.seq is not None
                assert shard.session == Session(ready.data["session_id"], ready.seq)

    run(body)


def test_failed_connect_to_the_resume_url_retries_the_gateway_url(twins: dict[str, ModuleType]) -> None:
    async def body() -> None:
        # A loopback port nobody listens on: the connect is refused at once.
        server = await asyncio.start_server(lambda reader, writer: None, "127.0.0.1", 0)
        dead_port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        async with FakeGateway(token=TOKEN) as gw:
            async with running(gw, twins) as shard:
                await next_named(shard, "READY")
                session = current_session(shard)
                await shard.close(4000)
            started = asyncio.get_running_loop().time()
            async with running(gw, twins, session=session, resume_url=f"ws://127.0.0.1:{dead_port}/resume",
                               rng=lambda: 0.0) as shard:
                await next_named(shard, "RESUMED")
                retry = gw.connections[-1]
                assert retry.path == "/" and not retry.used_resume_url
                assert shard.connect_failures == 1
                assert isinstance(shard.last_connect_error, ConnectError)
                assert str(dead_port) in str(shard.last_connect_error)
                assert shard.attempt == 0  # reset by RESUMED
                assert retry.opened_at - started >= 0.45  # backoff after a failed connect (attempt 1, rng 0)
                resume = await gw.wait_for_op(6)
                assert resume["d"]["session_id"] == session.id

    run(body)


def test_missing_hello_gives_up_and_reconnects(twins: dict[str, ModuleType], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gateway.protocol, "HELLO_TIMEOUT", 0.3)

    async def body() -> None:
        async with FakeGateway(token=TOKEN, hello="none") as gw:
            async with running(gw, twins, rng=lambda: 0.0) as shard:
                shard.start()
                first = await connection(gw, 1)
                assert await first.wait_closed() == ("drop", None)
                assert first.received == []
                gw.hello = "hello"  # the retry comes after a backoff of at least 0.5 s
                await next_named(shard, "READY")
                assert len(gw.connections) == 2
                assert len(ops(gw, 2)) == 1

    run(body)


class FailingOnceQueue(IdentifyQueue):
    """An identify queue (say, one backed by a service) whose first wait fails."""

    def __init__(self) -> None:
        super().__init__(delay=0)
        self.calls = 0

    async def wait_turn(self, shard_id: int) -> None:
        self.calls += 1
        if self.calls == 1:
            raise ConnectionError("identify service unavailable")
        await super().wait_turn(shard_id)


def test_a_failing_identify_queue_is_retried_not_a_hang(twins: dict[str, ModuleType]) -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw:
            queue = FailingOnceQueue()
            async with running(gw, twins, identify_queue=queue) as shard:
                await next_named(shard, "READY")
                assert queue.calls == 2
                assert len(ops(gw, 2)) == 1
                assert shard.connect_failures == 0 and shard.last_connect_error is None

    run(body)
