"""RedisIdentifyQueue across processes against a real redis-server: one IDENTIFY per bucket per window whichever
process sends it, a dead slot holder blocks no longer than the slot's lifetime, the daily budget is shared, and a
cancelled waiter uses nothing."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest
from redis_server import RedisServer, redis_server, require_redis_server  # noqa: F401 - fixture
from shard_helpers import run, until

from gateway.testing import FakeGateway

TOKEN = "identify-test-token"

# One "machine": runs the given shards, each with the shared RedisIdentifyQueue, until stdin closes.
SHARD_PROCESS = textwrap.dedent("""
    import asyncio, sys
    from gateway import Shard, ShardId, Intents
    from gateway.redis import RedisIdentifyQueue

    async def main(url, gateway_url, ids, count, concurrency, delay):
        queue = RedisIdentifyQueue(url, concurrency, delay=delay)
        shards = [Shard(ShardId(i, count), "identify-test-token", Intents.GUILDS, gateway_url=gateway_url,
                        identify_queue=queue) for i in ids]
        for shard in shards:
            shard.start()
        print("started", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        for shard in shards:
            await shard.close()
        await queue.close()

    url, gateway_url, ids, count, concurrency, delay = sys.argv[1:]
    asyncio.run(main(url, gateway_url, [int(i) for i in ids.split(",")], int(count), int(concurrency), float(delay)))
""")

# Takes one slot, says so, then hangs (to be killed with SIGKILL while holding it).
SLOT_HOLDER = textwrap.dedent("""
    import asyncio, sys
    from gateway.redis import RedisIdentifyQueue

    async def main(url, delay):
        queue = RedisIdentifyQueue(url, 1, delay=delay, margin=0.5)
        await queue.wait_turn(0)
        print("granted", flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main(sys.argv[1], float(sys.argv[2])))
""")


@pytest.fixture(autouse=True)
def _needs_redis() -> None:
    require_redis_server()


def spawn(script: str, *args: str) -> subprocess.Popen[str]:
    process = subprocess.Popen([sys.executable, "-c", script, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True, env=dict(os.environ))
    assert process.stdout is not None
    return process


def finish(process: subprocess.Popen[str]) -> None:
    process.kill()
    process.wait()
    for pipe in (process.stdin, process.stdout):
        if pipe is not None:
            pipe.close()


def identify_times(gateway: FakeGateway) -> list[tuple[int, float]]:
    return sorted((entry.payload["d"]["shard"][0], entry.at) for entry in gateway.received if entry.op == 2)


def check_spacing(times: list[tuple[int, float]], concurrency: int, window: float) -> None:
    by_bucket: dict[int, list[float]] = {}
    for shard, at in times:
        by_bucket.setdefault(shard % concurrency, []).append(at)
    for bucket, moments in by_bucket.items():
        moments.sort()
        gaps = [later - earlier for earlier, later in zip(moments, moments[1:])]
        assert all(gap >= window for gap in gaps), f"bucket {bucket}: IDENTIFYs {gaps} s apart (< {window} s)"


def run_fleet(server: RedisServer, parts: list[list[int]], count: int, concurrency: int, delay: float,
              timeout: float) -> list[tuple[int, float]]:
    async def body() -> list[tuple[int, float]]:
        async with FakeGateway(token=TOKEN) as gateway:
            processes = [spawn(SHARD_PROCESS, server.url, gateway.url, ",".join(map(str, part)), str(count),
                               str(concurrency), str(delay)) for part in parts]
            try:
                await until(lambda: len(identify_times(gateway)) >= count, timeout=timeout, what="every IDENTIFY")
                await asyncio.sleep(0.2)
                return identify_times(gateway)
            finally:
                for process in processes:
                    finish(process)

    result: list[tuple[int, float]] = []

    async def outer() -> None:
        result.extend(await body())

    run(outer, timeout=timeout + 30)
    return result


def test_processes_sharing_the_queue_never_identify_one_bucket_twice_within_the_window(redis_server: RedisServer) -> None:
    # 3 processes x 4 shards, max_concurrency 2, window shortened to 0.6 s (0.6 + 0.5 margin per slot).
    times = run_fleet(redis_server, [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8, 11]], 12, 2, 0.6, timeout=30)
    assert sorted(shard for shard, _ in times) == list(range(12))  # each identified exactly once
    check_spacing(times, 2, 0.6)


def test_default_window_is_five_seconds_across_processes(redis_server: RedisServer) -> None:
    times = run_fleet(redis_server, [[0], [1]], 2, 1, 5.0, timeout=20)
    assert [shard for shard, _ in sorted(times, key=lambda item: item[1])] in ([0, 1], [1, 0])
    check_spacing(times, 1, 5.0)


def test_a_dead_slot_holder_blocks_the_bucket_no_longer_than_the_slot_lifetime(redis_server: RedisServer) -> None:
    holder = spawn(SLOT_HOLDER, redis_server.url, "1.5")  # slot lifetime 1.5 + 0.5 s
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "granted"
        granted_at = time.monotonic()
        holder.kill()  # SIGKILL while holding the slot
        holder.wait()
    finally:
        finish(holder)

    async def body() -> None:
        from gateway.redis import RedisIdentifyQueue

        queue = RedisIdentifyQueue(redis_server.url, 1, delay=1.5, margin=0.5)
        await queue.wait_turn(0)
        waited = time.monotonic() - granted_at
        await queue.close()
        assert 1.5 <= waited <= queue.slot_lifetime + 0.5, waited

    run(body)


def test_the_daily_budget_is_shared_and_only_goes_down(redis_server: RedisServer) -> None:
    async def body() -> None:
        from gateway.redis import RedisIdentifyQueue

        first = RedisIdentifyQueue(redis_server.url, 16, delay=5.0)   # two "processes": nothing shared but Redis
        second = RedisIdentifyQueue(redis_server.url, 16, delay=5.0)
        first.set_session_start_limit(3, 1000, 3600)
        second.set_session_start_limit(3, 1000, 3600)
        waiters = [asyncio.ensure_future((first if shard % 2 else second).wait_turn(shard)) for shard in range(6)]
        await until(lambda: sum(w.done() for w in waiters) >= 3, what="3 grants")
        await asyncio.sleep(1.0)
        assert sum(w.done() for w in waiters) == 3  # the other 3 wait for the reset
        assert await first.remaining() == 0
        second.set_session_start_limit(10, 1000, 3600)  # an older, higher count does not raise the shared one
        await second.apply_session_start_limit()
        assert await second.remaining() == 0
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
        await first.close()
        await second.close()
        assert first.granted + second.granted == 3

    run(body)


def test_no_grant_before_a_new_limit_is_in_redis(redis_server: RedisServer) -> None:
    """Waiters that start together while the limit is being written all wait for it (none is granted unbudgeted)."""
    async def body() -> None:
        from gateway.redis import RedisIdentifyQueue

        queue = RedisIdentifyQueue(redis_server.url, 16, delay=5.0)
        queue.set_session_start_limit(1, 1000, 3600)
        waiters = [asyncio.ensure_future(queue.wait_turn(shard)) for shard in range(8)]
        await until(lambda: any(w.done() for w in waiters), what="the first grant")
        await asyncio.sleep(0.5)
        assert sum(w.done() for w in waiters) == 1
        assert await queue.remaining() == 0
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
        await queue.close()
        assert queue.granted == 1

    run(body)


def test_a_cancelled_waiter_uses_no_slot_and_no_session_start(redis_server: RedisServer) -> None:
    async def body() -> None:
        import redis.asyncio as aioredis

        from gateway.redis import RedisIdentifyQueue

        queue = RedisIdentifyQueue(redis_server.url, 1, delay=5.0)
        await queue.apply_session_start_limit(100, 100, 3600)
        client: Any = aioredis.Redis.from_url(redis_server.url)
        for spins in range(6):  # cancel at various points: before the call, while it is in flight, after
            waiter = asyncio.ensure_future(queue.wait_turn(0))
            for _ in range(spins):
                await asyncio.sleep(0)
            waiter.cancel()
            await asyncio.gather(waiter, return_exceptions=True)
            if waiter.cancelled():
                await until(lambda: not queue._background, what="the refund")  # noqa: SLF001
                assert await client.exists("gateway:identify:bucket:0") == 0
                assert await queue.remaining() == 100
            else:  # it was granted before the cancel landed: that slot was really used
                assert await client.exists("gateway:identify:bucket:0") == 1
                await client.delete("gateway:identify:bucket:0")
                await client.incr("gateway:identify:remaining")
        # A waiter blocked on a busy bucket and then cancelled leaves the holder's slot alone.
        await queue.wait_turn(0)
        blocked = asyncio.ensure_future(queue.wait_turn(0))
        await asyncio.sleep(0.3)
        blocked.cancel()
        await asyncio.gather(blocked, return_exceptions=True)
        assert await queue.remaining() == 99 and await client.exists("gateway:identify:bucket:0") == 1
        await client.aclose()
        await queue.close()

    run(body)
