"""Commands through Redis: in order through the shard's rate limiter; malformed entries and wrong shard numbers go
to ``{prefix}:errors`` and are never sent; an unreachable Redis at start is a clear, retried error."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from redis_server import (  # noqa: F401 - fixtures
    RedisServer,
    redis_server,
    require_redis_server,
    shard_sessions,
    stream_entries,
)
from shard_helpers import run, until

from gateway import Intents
from gateway.testing import FakeGateway

TOKEN = "commands-test-token"
PRESENCE = {"op": 3, "d": {"since": None, "activities": [], "status": "idle", "afk": False}}


@pytest.fixture(autouse=True)
def _needs_redis() -> None:
    require_redis_server()


def make_forwarder(server: RedisServer, gateway: FakeGateway, shard_ids: list[int], count: int, **options: Any) -> Any:
    from gateway.redis import RedisForwarder

    return RedisForwarder(server.url, TOKEN, int(Intents.GUILDS), shard_ids, count, gateway_url=gateway.url,
                          identify_delay=0.05, **options)


async def ready(gateway: FakeGateway, count: int) -> None:
    await until(lambda: len(shard_sessions(gateway)) == count, timeout=15, what="READY")


def sent_ops(gateway: FakeGateway, op: int) -> list[dict[str, Any]]:
    return gateway.received_payloads(op)


def test_commands_reach_their_shard_in_order_and_bad_entries_go_to_errors(redis_server: RedisServer) -> None:
    async def body() -> None:
        from gateway.redis import CommandSender

        async with FakeGateway(token=TOKEN) as gateway:
            fw = make_forwarder(redis_server, gateway, [0, 1], 2)
            task = asyncio.create_task(fw.run())
            await ready(gateway, 2)
            sender = CommandSender(redis_server.url)
            cli = redis_server.cli
            statuses = ["online", "idle", "dnd"]
            await sender.send(1, {**PRESENCE, "d": {**PRESENCE["d"], "status": statuses[0]}})
            # Written by a worker in another language, bypassing CommandSender's checks:
            await asyncio.to_thread(cli, "XADD", "gateway:commands:1", "*", "payload", b"{not json")
            await asyncio.to_thread(cli, "XADD", "gateway:commands:1", "*", "payload",
                                    json.dumps({"op": 3, "d": {"x": "y" * 5000}}))
            await asyncio.to_thread(cli, "XADD", "gateway:commands:1", "*", "other", "field")
            await asyncio.to_thread(cli, "XADD", "gateway:commands:1", "*", "payload",
                                    json.dumps({"op": 2, "d": {"token": "x"}}))
            for status in statuses[1:]:
                await sender.send(1, {**PRESENCE, "d": {**PRESENCE["d"], "status": status}})
            await until(lambda: len(sent_ops(gateway, 3)) == 3, what="3 presence updates")
            assert [payload["d"]["status"] for payload in sent_ops(gateway, 3)] == statuses
            connection_of = {entry.connection for entry in gateway.received if entry.op == 3}
            shard_one = shard_sessions(gateway)[1].connection.number
            assert connection_of == {shard_one}
            errors = await asyncio.to_thread(stream_entries, redis_server, "gateway:errors")
            assert [set(fields) for _, fields in errors] == [{b"shard", b"error", b"payload"}] * 4
            reasons = [fields[b"error"].decode() for _, fields in errors]
            assert "not JSON" in reasons[0] and "limit is 4096" in reasons[1]
            assert "no payload" in reasons[2] and "op 2" in reasons[3]
            assert errors[0][1][b"payload"] == b"{not json" and {fields[b"shard"] for _, fields in errors} == {b"1"}
            assert len(gateway.received_payloads(2)) == 2  # the smuggled IDENTIFY was never sent
            assert fw.stats["commands_rejected"] == 4 and fw.stats["commands_sent"] == 3
            pending = await asyncio.to_thread(cli, "XPENDING", "gateway:commands:1", "gateway:forwarder")
            assert pending["pending"] == 0
            await sender.close()
            await fw.close()
            await task

    run(body, timeout=40)


def test_wrong_shard_numbers_are_refused_by_the_sender_and_swept_to_errors(redis_server: RedisServer) -> None:
    async def body() -> None:
        from gateway.redis import CommandSender

        async with FakeGateway(token=TOKEN) as gateway:
            fw = make_forwarder(redis_server, gateway, [0, 1], 2)
            task = asyncio.create_task(fw.run())
            await ready(gateway, 2)
            sender = CommandSender(redis_server.url)
            assert await sender.shard_for_guild(1 << 22) == 1 and await sender.shard_for_guild("0") == 0
            with pytest.raises(ValueError, match="shard 7 does not exist"):
                await sender.send(7, PRESENCE)
            with pytest.raises(ValueError, match="4096"):
                await sender.send(0, {"op": 3, "d": "x" * 5000})
            with pytest.raises(ValueError, match="not JSON"):
                await sender.send(0, b"{")
            await asyncio.to_thread(redis_server.cli, "XADD", "gateway:commands:7", "*", "payload",
                                    json.dumps(PRESENCE))
            await asyncio.to_thread(redis_server.cli, "XADD", "gateway:commands:abc", "*", "payload", "{}")
            await until(lambda: fw.stats["commands_rejected"] >= 2, timeout=15, what="the sweep")
            errors = await asyncio.to_thread(stream_entries, redis_server, "gateway:errors")
            assert sorted(fields[b"shard"] for _, fields in errors) == [b"7", b"abc"]
            assert all(b"no shard" in fields[b"error"] for _, fields in errors)
            assert await asyncio.to_thread(redis_server.cli, "EXISTS", "gateway:commands:7") == 0
            assert not sent_ops(gateway, 3)
            await sender.close()
            await fw.close()
            await task

    run(body, timeout=40)


def test_unreachable_redis_at_start_is_a_clear_error_retried_with_backoff(redis_server: RedisServer,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="gateway.redis")
    redis_server.kill()

    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gateway:
            fw = make_forwarder(redis_server, gateway, [0], 1)
            task = asyncio.create_task(fw.run())
            await until(lambda: fw.stats["redis_errors:ConnectionError"] >= 2, timeout=15, what="two retries")
            assert not gateway.connections and not task.done()
            await asyncio.to_thread(redis_server.start)
            await ready(gateway, 1)
            await fw.close()
            await task

    run(body, timeout=40)
    lines = [record.getMessage() for record in caplog.records if "unreachable" in record.getMessage()]
    assert lines and f"127.0.0.1:{redis_server.port}" in lines[0] and "retrying in" in lines[0]
