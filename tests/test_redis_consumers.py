"""EventConsumer against a real redis-server: one group shares the stream with no entry delivered twice, a consumer
killed before acking has its entries claimed by another, filters ack unwanted types, and Events are the Shard's."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap

import pytest
from redis_server import RedisServer, redis_server, require_redis_server  # noqa: F401 - fixture
from shard_helpers import run, until

from gateway import Event, EventTypeFlags

# Reads N events of group g as consumer "doomed" without acking them, prints their seqs, then hangs (to be killed).
DOOMED_CONSUMER = textwrap.dedent("""
    import asyncio, sys
    from gateway.redis import EventConsumer

    async def main(url, count):
        consumer = EventConsumer(url, group="g", consumer="doomed", count=count)
        seqs = []
        async for event in consumer:
            seqs.append(event.seq)
            if len(seqs) == count:
                break
        print(",".join(map(str, seqs)), flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
""")


@pytest.fixture(autouse=True)
def _needs_redis() -> None:
    require_redis_server()


def payload(name: str, seq: int) -> bytes:
    return b'{"t":"%s","s":%d,"op":0,"d":{"id":"%d","content":"x"}}' % (name.encode(), seq, seq)


def publish(server: RedisServer, count: int, shard: int = 0, name: str = "MESSAGE_CREATE", first: int = 1) -> None:
    """Append entries in the contract's format (what the forwarder writes)."""
    for seq in range(first, first + count):
        server.cli("XADD", "gateway:events", "*", "shard", shard, "t", name, "s", seq, "payload", payload(name, seq))


def test_events_are_the_shard_event_class_with_shard_seq_raw_and_lazy_data(redis_server: RedisServer) -> None:
    publish(redis_server, 3, shard=5)

    async def body() -> None:
        from gateway.redis import EventConsumer

        consumer = EventConsumer(redis_server.url, group="g", consumer="c")
        events: list[Event] = []
        async for event in consumer:
            events.append(event)
            if len(events) == 3:
                break
        assert all(type(event) is Event for event in events)
        assert [(e.name, e.seq, e.shard_id, e.op) for e in events] == [("MESSAGE_CREATE", s, 5, 0) for s in (1, 2, 3)]
        assert events[0].raw == payload("MESSAGE_CREATE", 1) and events[0].data == {"id": "1", "content": "x"}
        assert consumer.entry_id(events[0]).count("-") == 1
        await consumer.ack(events[0])
        with pytest.raises(KeyError):
            await consumer.ack(events[0])
        await consumer.ack_many(events[1:])
        assert consumer.unacked == 0
        await consumer.close()
        pending = await asyncio.to_thread(redis_server.cli, "XPENDING", "gateway:events", "g")
        assert pending["pending"] == 0

    run(body)


def test_two_consumers_in_one_group_share_with_no_entry_delivered_to_both(redis_server: RedisServer) -> None:
    publish(redis_server, 600)

    async def body() -> None:
        from gateway.redis import EventConsumer

        seen: dict[str, list[int]] = {"a": [], "b": []}

        async def consume(name: str) -> None:
            consumer = EventConsumer(redis_server.url, group="g", consumer=name, count=20, block=0.2)
            async for event in consumer:
                seen[name].append(event.seq)  # type: ignore[arg-type]
                await consumer.ack(event)
                await asyncio.sleep(0)  # a worker doing some work
                if len(seen["a"]) + len(seen["b"]) >= 600:
                    break
            await consumer.close()

        tasks = [asyncio.ensure_future(consume(name)) for name in ("a", "b")]
        await until(lambda: len(seen["a"]) + len(seen["b"]) >= 600, timeout=20, what="every entry")
        await asyncio.sleep(0.5)  # nothing more arrives
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert not set(seen["a"]) & set(seen["b"])
        assert sorted(seen["a"] + seen["b"]) == list(range(1, 601))
        assert seen["a"] and seen["b"]
        assert seen["a"] == sorted(seen["a"]) and seen["b"] == sorted(seen["b"])

    run(body, timeout=40)


def test_a_consumer_killed_before_acking_has_its_entries_claimed_by_another(redis_server: RedisServer) -> None:
    publish(redis_server, 30)
    doomed = subprocess.Popen([sys.executable, "-c", DOOMED_CONSUMER, redis_server.url, "10"], stdout=subprocess.PIPE,
                              text=True, env=dict(os.environ))
    try:
        assert doomed.stdout is not None
        taken = [int(seq) for seq in doomed.stdout.readline().split(",")]
        doomed.kill()
        doomed.wait()
    finally:
        doomed.kill()
        if doomed.stdout is not None:
            doomed.stdout.close()
    assert len(taken) == 10

    async def body() -> None:
        from gateway.redis import EventConsumer

        survivor = EventConsumer(redis_server.url, group="g", consumer="survivor", claim_idle=0.5, block=0.2)
        got: list[int] = []
        async for event in survivor:
            got.append(event.seq)  # type: ignore[arg-type]
            await survivor.ack(event)
            if len(got) == 30:
                break
        assert sorted(got) == list(range(1, 31))
        assert survivor.stats["claimed"] == 10
        assert sorted(got[-10:]) == sorted(taken) or set(taken) <= set(got)
        pending = await asyncio.to_thread(redis_server.cli, "XPENDING", "gateway:events", "g")
        assert pending["pending"] == 0
        await survivor.close()

    run(body, timeout=30)


def test_a_restarted_consumer_gets_back_its_own_unacked_entries_first(redis_server: RedisServer) -> None:
    publish(redis_server, 5)

    async def body() -> None:
        from gateway.redis import EventConsumer

        first = EventConsumer(redis_server.url, group="g", consumer="c")
        taken = [(await first.__anext__()).seq for _ in range(3)]
        await first.close()  # no ack
        again = EventConsumer(redis_server.url, group="g", consumer="c", claim_idle=60)
        got = [(await again.__anext__()).seq for _ in range(5)]
        assert taken == [1, 2, 3] and got == [1, 2, 3, 4, 5]
        await again.close()

    run(body)


def test_unwanted_types_are_acked_unparsed_and_malformed_entries_skipped(redis_server: RedisServer) -> None:
    publish(redis_server, 3, name="TYPING_START")
    redis_server.cli("XADD", "gateway:events", "*", "shard", "0", "t", "MESSAGE_CREATE", "s", "9", "payload", b"not json")
    publish(redis_server, 2, first=10)

    async def body() -> None:
        from gateway.redis import EventConsumer

        consumer = EventConsumer(redis_server.url, group="g", consumer="c", event_types=EventTypeFlags.MESSAGE_CREATE)
        got = []
        async for event in consumer:
            got.append(event.seq)
            await consumer.ack(event)
            if len(got) == 2:
                break
        assert got == [10, 11]
        assert consumer.stats["skipped"] == 3 and consumer.stats["malformed"] == 1
        await consumer.close()

    run(body)


def test_a_consumer_rides_out_a_redis_restart(redis_server: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    async def body() -> None:
        from gateway.redis import EventConsumer

        consumer = EventConsumer(redis_server.url, group="g", consumer="c", block=0.2)
        reader = asyncio.ensure_future(consumer.__anext__())
        await asyncio.sleep(0.3)
        await asyncio.to_thread(redis_server.kill)
        await asyncio.sleep(0.5)
        await asyncio.to_thread(redis_server.start)  # empty: no persistence, the group is recreated
        await asyncio.to_thread(publish, redis_server, 1)
        event = await asyncio.wait_for(reader, 20)
        assert event.seq == 1 and consumer.stats["redis_errors"] >= 1
        await consumer.close()

    run(body, timeout=40)
    assert "retrying in" in caplog.text
