"""RedisForwarder against a real redis-server and the FakeGateway over loopback: the stream contract, order, and no
loss when Redis is killed (kill -9) and restarted mid-stream, OOM and READONLY answers, both twins."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from redis_server import (  # noqa: F401 - fixtures
    RedisServer,
    dump_everything,
    persistent_redis,
    redis_server,
    require_redis_server,
    sequences_by_shard,
    shard_sessions,
    stream_entries,
)
from shard_helpers import run, until

from gateway import EventTypeFlags, Intents
from gateway.testing import FakeGateway

TOKEN = "Bot redis-test-token-9f2c4e6a1b3d5f7e"
INTENTS = int(Intents.GUILDS | Intents.GUILD_MESSAGES)


@pytest.fixture(autouse=True)
def _needs_redis() -> None:
    require_redis_server()


def forwarder(server: RedisServer, gateway: FakeGateway, shard_ids: list[int], count: int, twins: Any,
              **options: Any) -> Any:
    from gateway.redis import RedisForwarder

    options.setdefault("identify_delay", 0.05)
    return RedisForwarder(server.url, TOKEN, INTENTS, shard_ids, count, gateway_url=gateway.url, _twins=twins,
                          **options)


async def started(gateway: FakeGateway, count: int) -> dict[int, Any]:
    def live() -> dict[int, Any] | None:
        sessions = shard_sessions(gateway)
        if len(sessions) == count and all(s.connection is not None for s in sessions.values()):
            return sessions
        return None

    return await until(live, timeout=15, what=f"{count} shards READY")


async def wait_stream(server: RedisServer, done: Callable[[list[tuple[bytes, dict[bytes, bytes]]]], bool],
                      timeout: float = 30.0, key: str = "gateway:events") -> list[tuple[bytes, dict[bytes, bytes]]]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        entries = await asyncio.to_thread(stream_entries, server, key)
        if done(entries):
            return entries
        if loop.time() > deadline:
            pytest.fail(f"the stream {key} did not reach the expected state in {timeout} s ({len(entries)} entries)")
        await asyncio.sleep(0.05)


class Producer:
    """Dispatches MESSAGE_CREATEs to every shard's session and remembers the sequences handed out."""

    def __init__(self, gateway: FakeGateway) -> None:
        self.gateway = gateway
        self.sent: dict[int, list[int]] = {}
        self.counter = 0

    async def produce(self, rounds: int, pause_every: int = 25) -> None:
        for index in range(rounds):
            for shard, session in shard_sessions(self.gateway).items():
                self.counter += 1
                seq = self.gateway.dispatch_nowait(
                    "MESSAGE_CREATE", {"id": str(self.counter), "content": f"m{self.counter}", "guild_id": "1"},
                    session=session)
                self.sent.setdefault(shard, []).append(seq)
            if index % pause_every == 0:
                await asyncio.sleep(0.002)

    def total(self) -> int:
        return sum(map(len, self.sent.values()))


def test_every_wanted_event_has_exactly_the_contract_fields_in_order(redis_server: RedisServer, twins: Any) -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gateway:
            fw = forwarder(redis_server, gateway, [0, 1], 2, twins)
            task = asyncio.create_task(fw.run())
            await started(gateway, 2)
            producer = Producer(gateway)
            await producer.produce(200)
            entries = await wait_stream(redis_server, lambda e: sum(map(len, sequences_by_shard(e).values())) >= 400)
            assert sequences_by_shard(entries) == producer.sent
            sent_payloads = {json.loads(raw)["s"]: raw for c in gateway.connections for raw in c.sent
                             if isinstance(raw, bytes) and b'"MESSAGE_CREATE"' in raw}
            names = set()
            for _, fields in entries:
                assert set(fields) == {b"shard", b"t", b"s", b"payload"}
                names.add(fields[b"t"])
                assert fields[b"shard"] in (b"0", b"1")
                if fields[b"t"] == b"MESSAGE_CREATE":
                    assert fields[b"payload"] == sent_payloads[int(fields[b"s"])] or \
                        json.loads(fields[b"payload"])["s"] == int(fields[b"s"])
                    payload = json.loads(fields[b"payload"])
                    assert payload["t"] == "MESSAGE_CREATE" and payload["op"] == 0
                elif fields[b"t"].startswith(b"GATEWAY_"):
                    assert fields[b"s"] == b""
            assert {b"READY", b"GATEWAY_HELLO", b"MESSAGE_CREATE"} <= names
            # The payload bytes are the gateway's own: byte-identical to what the fake sent on the wire.
            wire = {bytes(raw) for c in gateway.connections for raw in c.sent}
            assert all(fields[b"payload"] in wire for _, fields in entries if fields[b"t"] == b"MESSAGE_CREATE")
            await fw.close()
            await task

    run(body, timeout=60)


def test_filter_publishes_only_wanted_types_and_still_saves_the_resume_point(redis_server: RedisServer,
                                                                             twins: Any) -> None:
    async def body() -> None:
        from gateway.redis import RedisSessionStore

        async with FakeGateway(token=TOKEN) as gateway:
            fw = forwarder(redis_server, gateway, [0], 1, twins, event_types=EventTypeFlags.TYPING_START,
                           save_interval=0.1)
            task = asyncio.create_task(fw.run())
            sessions = await started(gateway, 1)
            for index in range(50):
                gateway.dispatch_nowait("MESSAGE_CREATE", {"id": str(index)}, session=sessions[0])
            last = gateway.dispatch_nowait("TYPING_START", {"user_id": "1"}, session=sessions[0])
            for index in range(10):
                last = gateway.dispatch_nowait("MESSAGE_CREATE", {"id": str(index)}, session=sessions[0])
            entries = await wait_stream(redis_server, lambda e: len(e) >= 1)
            store = RedisSessionStore(redis_server.url)
            saved = None
            for _ in range(100):
                saved = (await store.load(1)).get(0)
                if saved is not None and saved.session.sequence == last:
                    break
                await asyncio.sleep(0.05)
            await store.close()
            assert saved is not None and saved.session.sequence == last and saved.session.id == sessions[0].id
            await asyncio.sleep(0.2)
            entries = await asyncio.to_thread(stream_entries, redis_server, "gateway:events")
            assert [fields[b"t"] for _, fields in entries] == [b"TYPING_START"]
            await fw.close()
            await task

    run(body, timeout=60)


def test_redis_killed_and_restarted_mid_stream_loses_nothing(persistent_redis: RedisServer, twins: Any,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.redis")

    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gateway:
            fw = forwarder(persistent_redis, gateway, [0, 1], 2, twins)
            task = asyncio.create_task(fw.run())
            await started(gateway, 2)
            producer = Producer(gateway)
            await producer.produce(300)
            await asyncio.to_thread(persistent_redis.kill)  # kill -9, mid-stream
            await producer.produce(300)  # Discord goes on while Redis is down
            await asyncio.sleep(0.5)
            await asyncio.to_thread(persistent_redis.start)
            await producer.produce(300)
            expected = producer.total()
            entries = await wait_stream(persistent_redis,
                                        lambda e: sum(map(len, sequences_by_shard(e).values())) >= expected, 45)
            await asyncio.sleep(0.3)
            entries = await asyncio.to_thread(stream_entries, persistent_redis, "gateway:events")
            # At least once, in order per shard; with the resume point stored atomically with the events: exactly once.
            assert sequences_by_shard(entries) == producer.sent
            assert fw.stats["publish_failures"] >= 1 and fw.stats["recoveries"] >= 1
            assert len(gateway.received_payloads(2)) == 2  # never re-identified: every shard resumed
            await fw.close()
            await task

    run(body, timeout=120)
    assert "Redis did not take its events" in caplog.text and "resuming session from seq" in caplog.text


def test_oom_answers_are_counted_and_nothing_acknowledged_is_lost(redis_server: RedisServer, twins: Any,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.redis")

    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gateway:
            fw = forwarder(redis_server, gateway, [0, 1], 2, twins)
            task = asyncio.create_task(fw.run())
            await started(gateway, 2)
            producer = Producer(gateway)
            await producer.produce(100)
            await wait_stream(redis_server, lambda e: sum(map(len, sequences_by_shard(e).values())) >= 200)
            await asyncio.to_thread(redis_server.cli, "CONFIG", "SET", "maxmemory", "1")
            await producer.produce(100)
            await until(lambda: fw.stats["redis_errors:OOM"] >= 1, timeout=10, what="an OOM answer")
            await producer.produce(100)
            await asyncio.to_thread(redis_server.cli, "CONFIG", "SET", "maxmemory", "0")
            entries = await wait_stream(redis_server,
                                        lambda e: sum(map(len, sequences_by_shard(e).values())) >= producer.total())
            assert sequences_by_shard(entries) == producer.sent
            assert not task.done()
            await fw.close()
            await task

    run(body, timeout=90)
    assert "OOM" in caplog.text


def test_readonly_replica_is_retried_until_promoted(tmp_path: Path, twins: Any) -> None:
    require_redis_server()
    with RedisServer(tmp_path / "primary") as primary, RedisServer(tmp_path / "replica") as replica:
        replica.cli("REPLICAOF", "127.0.0.1", str(primary.port))

        async def body() -> None:
            async with FakeGateway(token=TOKEN) as gateway:
                fw = forwarder(replica, gateway, [0], 1, twins)
                task = asyncio.create_task(fw.run())
                await until(lambda: fw.stats["redis_errors:READONLY"] >= 1, timeout=10, what="a READONLY answer")
                assert not gateway.connections  # no shard runs before Redis takes writes
                await asyncio.to_thread(replica.cli, "REPLICAOF", "NO", "ONE")  # failover: promoted
                await started(gateway, 1)
                producer = Producer(gateway)
                await producer.produce(100)
                entries = await wait_stream(replica, lambda e: len(sequences_by_shard(e).get(0, [])) >= 100)
                assert sequences_by_shard(entries) == producer.sent
                await fw.close()
                await task

        run(body, timeout=60)


def test_the_token_is_never_written_to_redis(redis_server: RedisServer, twins: Any) -> None:
    async def body() -> None:
        from gateway.redis import CommandSender, EventConsumer

        async with FakeGateway(token=TOKEN) as gateway:
            fw = forwarder(redis_server, gateway, [0, 1], 2, twins)
            task = asyncio.create_task(fw.run())
            await started(gateway, 2)
            producer = Producer(gateway)
            await producer.produce(20)
            sender = CommandSender(redis_server.url)
            await sender.send(0, {"op": 3, "d": {"since": None, "activities": [], "status": "idle", "afk": False}})
            await gateway.wait_for_op(3)
            consumer = EventConsumer(redis_server.url, group="g", consumer="c")
            async for event in consumer:
                await consumer.ack(event)
                if consumer.stats["delivered"] >= 10:
                    break
            await consumer.close()
            await sender.close()
            await fw.close()
            await task
            values = await asyncio.to_thread(dump_everything, redis_server)
            secret = TOKEN.split()[-1].encode()
            assert values and not [value for value in values if secret in value]
            assert any(b"gateway:sessions" == value for value in values)

    run(body, timeout=60)


def test_a_batch_whose_predecessor_was_not_taken_is_skipped(redis_server: RedisServer) -> None:
    """The publish script's fence: with two batches of a shard in flight, if Redis did not take the first, it skips
    the second too (no gap followed by later events), and it never writes the resume point of a skipped batch."""
    import redis

    from gateway.redis import _PUBLISH

    client = redis.Redis(port=redis_server.port, protocol=2)
    keys = ["gateway:events", "gateway:sessions", "gateway:sessions:shard_count", "gateway:shard_count",
            "gateway:sessions:fences"]

    def publish(expect: str, fence: str, seq: int) -> list[int]:
        session = json.dumps({"id": "s", "sequence": seq, "resume_url": None})
        return client.eval(_PUBLISH, 5, *keys, 1000, 1, 1, 0, session, expect, fence, 1,
                           "MESSAGE_CREATE", seq, b'{"t":"MESSAGE_CREATE","s":%d,"op":0,"d":{}}' % seq)

    try:
        assert publish("", "a", 1) == [1]           # first batch: no check, sets fence a
        assert publish("a", "b", 2) == [1]          # its successor
        assert publish("x", "c", 3) == [0]          # expects a batch that was never taken: skipped
        assert publish("c", "d", 4) == [0]          # and so is the one after it
        assert publish("b", "e", 3) == [1]          # the resent batch after b goes through
        seqs = [int(fields[b"s"]) for _, fields in client.xrange("gateway:events")]
        assert seqs == [1, 2, 3]
        assert json.loads(client.hget("gateway:sessions", "0"))["sequence"] == 3
        assert client.get("gateway:shard_count") == b"1"
    finally:
        client.close()
