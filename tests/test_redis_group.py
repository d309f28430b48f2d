"""RedisSessionStore and RedisIdentifyQueue under a ShardGroup (the group's store and queue protocols), against a
real redis-server and the FakeGateway, both twins."""

from __future__ import annotations

import asyncio
from types import ModuleType

import pytest
from redis_server import RedisServer, dump_everything, redis_server, require_redis_server  # noqa: F401 - fixture
from shard_helpers import run, until

from gateway import EventTypeFlags, Intents, ShardGroup
from gateway.models import Session
from gateway.sessions import SavedSession, SessionStore
from gateway.testing import FakeGateway

TOKEN = "redis-group-token-77ab"


@pytest.fixture(autouse=True)
def _needs_redis() -> None:
    require_redis_server()


def test_session_store_protocol_semantics(redis_server: RedisServer) -> None:
    async def body() -> None:
        from gateway.redis import RedisSessionStore

        store = RedisSessionStore(redis_server.url, prefix="bot")
        assert isinstance(store, SessionStore)
        assert await store.load(4) == {}
        one = SavedSession(Session("s1", 10), "wss://resume.example/1")
        two = SavedSession(Session("s2", 0), None)
        await store.save(4, {1: one})
        await store.save(4, {2: two})  # other shards of the same count are kept
        assert await store.load(4) == {1: one, 2: two}
        assert await store.load(8) == {}  # another count: nothing
        await asyncio.to_thread(redis_server.cli, "HSET", "bot:sessions", "3", "{broken")
        assert await store.load(4) == {1: one, 2: two}  # malformed entries are skipped
        await store.clear([1])
        assert await store.load(4) == {2: two}
        await store.save(8, {0: one})  # a new count drops everything saved under the old one
        assert await store.load(4) == {} and await store.load(8) == {0: one}
        await store.clear()
        assert await store.load(8) == {}
        await store.close()

    run(body)


def test_a_group_on_redis_resumes_every_shard_after_a_restart(redis_server: RedisServer,
                                                              twins: dict[str, ModuleType]) -> None:
    async def body() -> None:
        from gateway.redis import RedisIdentifyQueue, RedisSessionStore

        async with FakeGateway(token=TOKEN, recommended_shards=3) as gw:
            owned: list[RedisIdentifyQueue | RedisSessionStore] = []

            def group() -> ShardGroup:
                queue, store = RedisIdentifyQueue(redis_server.url, 1, delay=0.05), RedisSessionStore(redis_server.url)
                owned.extend((queue, store))
                return ShardGroup(TOKEN, int(Intents.GUILDS), api_url=gw.api_url, _twins=twins,
                                  identify_queue=queue, session_store=store, event_types=EventTypeFlags.MESSAGE_CREATE)

            first = group()
            await first.start()
            for number in range(3):
                await gw.wait_for_shard(number, 3)
            await first.close()  # 4000 + sessions saved to Redis
            for number in range(3):
                gw.dispatch_nowait("MESSAGE_CREATE", {"id": str(number), "content": "while down"},
                                   session=gw.session_for_shard(number, 3))
            second = group()
            got: list[int | None] = []

            async def collect() -> None:
                async for event in second.events():
                    got.append(event.shard_id)

            reader = asyncio.ensure_future(collect())
            await until(lambda: len(got) == 3, timeout=15, what="the replayed messages")
            assert sorted(got) == [0, 1, 2]  # type: ignore[type-var]
            assert len(gw.received_payloads(2)) == 3 and len(gw.received_payloads(6)) == 3
            await second.close()
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            for resource in owned:
                await resource.close()
            assert not [value for value in await asyncio.to_thread(dump_everything, redis_server)
                        if TOKEN.encode() in value]

    run(body, timeout=40)
