"""ShardGroup over real loopback sockets against ``gateway.testing.FakeGateway`` (websocket and GET /gateway/bot on
one port), once with the compiled twins and once with the pure ones (the ``twins`` fixture).

Timing assertions are lower bounds only (an identify never comes early); the identify window is shortened with
``identify_delay`` on both sides.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from gateway import (
    AuthenticationError,
    Event,
    EventTypeFlags,
    FatalCloseError,
    FileSessionStore,
    Intents,
    SavedSession,
    Session,
    ShardClosedError,
    ShardGroup,
    ShardStatus,
    commands,
)
from gateway.http import RetryPolicy
from gateway.testing import FakeGateway
from gateway.testing.server import FakeSession, FakeSessionStartLimit

from shard_helpers import WAIT, run, until

TOKEN = "group-test-token"
INTENTS = int(Intents.GUILDS | Intents.GUILD_MESSAGES)
FAST_RETRY = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05)
MESSAGES = EventTypeFlags.MESSAGE_CREATE


def new_group(gw: FakeGateway, twins: dict[str, ModuleType], **options: Any) -> ShardGroup:
    """A group for ``gw`` (identify window 0 unless given, deterministic jitter, fast HTTP retries)."""
    options.setdefault("identify_delay", 0.0)
    options.setdefault("rng", lambda: 0.5)
    options.setdefault("http_retry", FAST_RETRY)
    token = options.pop("token", TOKEN)
    return ShardGroup(token, options.pop("intents", INTENTS), api_url=gw.api_url, _twins=twins, **options)


@contextlib.asynccontextmanager
async def running(gw: FakeGateway, twins: dict[str, ModuleType], **options: Any) -> AsyncIterator[ShardGroup]:
    """A started group that is always closed when the block exits."""
    group = new_group(gw, twins, **options)
    await group.start()
    try:
        yield group
    finally:
        await asyncio.wait_for(group.close(), WAIT)


async def all_ready(gw: FakeGateway, group: ShardGroup, count: int | None = None) -> list[FakeSession]:
    """Wait until every shard of the group has a live session in the fake; returns them in shard order."""
    count = group.shard_count if count is None else count
    return [await gw.wait_for_shard(number, count) for number in sorted(group.shards)]


def identified_shards(gw: FakeGateway) -> list[list[int]]:
    return [payload["d"]["shard"] for payload in gw.received_payloads(2)]


def message(text: str, guild_id: int | None = None, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"id": "1", "channel_id": "2", "content": text, **extra}
    if guild_id is not None:
        data["guild_id"] = str(guild_id)
    return data


class Collector:
    """Reads ``group.events()`` in a background task and keeps every event (and the error that ended it)."""

    def __init__(self, group: ShardGroup, event_types: int | None = None) -> None:
        self.events: list[Event] = []
        self.error: BaseException | None = None
        self.task = asyncio.get_running_loop().create_task(self._run(group, event_types))

    async def _run(self, group: ShardGroup, event_types: int | None) -> None:
        try:
            async for event in group.events(event_types):
                self.events.append(event)
        except Exception as exc:  # noqa: BLE001 - the test looks at it
            self.error = exc

    def contents(self, shard_id: int | None = None) -> list[str]:
        return [event.data["content"] for event in self.events
                if event.name == "MESSAGE_CREATE" and (shard_id is None or event.shard_id == shard_id)]


# -- start: recommended count, parts, routing ------------------------------------------------------------------


def test_recommended_count_routing_and_per_shard_state(twins: dict[str, ModuleType]) -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN, recommended_shards=3) as gw:
            gw.fail_http(500, 2)  # retried with backoff
            async with running(gw, twins) as group:
                collector = Collector(group)
                await all_ready(gw, group)
                assert group.shard_count == 3 and sorted(group.shards) == [0, 1, 2]
                assert sorted(identified_shards(gw)) == [[0, 3], [1, 3], [2, 3]]
                assert [request.status for request in gw.http_requests] == [500, 500, 200]
                assert gw.http_requests[-1].headers["authorization"] == "Bot <redacted>"
                assert group.fetches == 1 and group.gateway_info is not None and group.gateway_info.shards == 3
                guilds = {}
                guild = 1_200_000_000_000_000_001
                while len(guilds) < 3:
                    guilds.setdefault(group.shard_for_guild(guild), guild)
                    guild += 1 << 22
                for number, guild_id in guilds.items():
                    assert gw.broadcast("MESSAGE_CREATE", message(f"for {number}", guild_id))
                await until(lambda: len(collector.contents()) == 3, what="3 messages")
                for number in range(3):
                    assert collector.contents(number) == [f"for {number}"]
                readies = [event for event in collector.events if event.name == "READY"]
                assert sorted(event.shard_id for event in readies) == [0, 1, 2]
                assert all(event.data["shard"] == [event.shard_id, 3] for event in readies)
                await until(lambda: set(group.status.values()) == {ShardStatus.ACTIVE}, what="all active")
                assert sorted(group.latency) == [0, 1, 2]
                assert str(group.shard_for_guild(str(guilds[2]))) == "2"
                assert repr(group) == "<ShardGroup running shard_count=3 shards=3 generation=0 queued=0>"

    run(body)


def test_shard_ids_run_only_that_part(twins: dict[str, ModuleType]) -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN, recommended_shards=2) as gw:
            async with running(gw, twins, shard_count=6, shard_ids=[4, 2]) as group:
                await all_ready(gw, group)
                assert sorted(identified_shards(gw)) == [[2, 6], [4, 6]]
                assert sorted(group.shards) == [2, 4] and group.shard_count == 6
                with pytest.raises(ValueError, match="shard 3 is not run by this group.*2 of 6: 2, 4"):
                    await group.send(3, commands.update_presence("idle"))
                await group.send(2, commands.update_presence("idle"))
                connection = gw.connection_for_shard(2, 6)
                await gw.wait_for(lambda g: any(p.op == 3 for p in connection.received))
                assert not any(p.op == 3 for p in gw.connection_for_shard(4, 6).received)
                assert group.shard_for_guild(6 << 22) == 0  # routing uses the whole count, not the part

    run(body)


def test_shard_ids_that_do_not_fit_the_recommended_count_fail_at_start(twins: dict[str, ModuleType]) -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN, recommended_shards=2) as gw:
            group = new_group(gw, twins, shard_ids=[1, 3])
            with pytest.raises(ValueError, match=r"shard id 3 is not in \[0, 2\)"):
                await group.start()
            assert gw.connections == []

    run(body)


def test_bad_token_raises_authentication_error_at_start_without_the_token(twins: dict[str, ModuleType]) -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw:
            group = new_group(gw, twins, token="a-wrong-secret-token")
            with pytest.raises(AuthenticationError) as info:
                await group.start()
            assert "a-wrong-secret-token" not in str(info.value) and "a-wrong-secret-token" not in repr(group)
            assert len(gw.http_requests) == 1  # no retry loop
            await group.close()

    run(body)


# -- identify budget -------------------------------------------------------------------------------------------


def test_buckets_identify_in_id_order_one_per_window(twins: dict[str, ModuleType]) -> None:
    async def body() -> None:
        # The fake's window is a little shorter than the group's: it measures arrival, and two IDENTIFYs granted
        # 0.3 s apart may travel the loopback with different delays on a loaded machine.
        async with FakeGateway(token=TOKEN, recommended_shards=10, max_concurrency=4, identify_delay=0.25) as gw:
            async with running(gw, twins, identify_delay=0.3) as group:
                await all_ready(gw, group)
                assert gw.identify_violations == []
                assert sorted(gw.identify_times) == [0, 1, 2, 3]
                for times in gw.identify_times.values():
                    assert all(later - earlier >= 0.25 for earlier, later in zip(times, times[1:]))
                order = [shard for shard, _ in identified_shards(gw)]
                for bucket in range(4):  # within a bucket, the lowest shard id first
                    in_bucket = [shard for shard in order if shard % 4 == bucket]
                    assert in_bucket == sorted(in_bucket)

    run(body)


@pytest.mark.parametrize("code", [4007, 4009])
def test_reidentify_after_a_new_session_close_waits_for_its_bucket(twins: dict[str, ModuleType], code: int) -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN, recommended_shards=2, max_concurrency=1, identify_delay=0.35) as gw:
            async with running(gw, twins, identify_delay=0.4) as group:
                await all_ready(gw, group)
                await gw.close(code, shard=1)  # right after shard 1 identified: bucket 0's window is still shut
                await gw.wait_for(lambda g: len(g.received_payloads(2)) == 3)
                await all_ready(gw, group)
                assert gw.identify_violations == []
                times = gw.identify_times[0]
                assert len(times) == 3 and times[2] - times[1] >= 0.35

    run(body)


def test_resume_uses_no_identify_and_no_session_start(twins: dict[str, ModuleType]) -> None:
    async def body() -> None:
        limit = FakeSessionStartLimit(total=5, remaining=5)
        async with FakeGateway(token=TOKEN, recommended_shards=2, session_start_limit=limit) as gw:
            async with running(gw, twins) as group:
                sessions = await all_ready(gw, group)
                assert limit.remaining == 3
                await gw.drop(shard=0)
                await gw.reconnect(shard=1)
                await gw.wait_for(lambda g: all(session.resumes == 1 for session in sessions))
                assert len(gw.received_payloads(2)) == 2 and len(gw.received_payloads(6)) == 2
                assert limit.remaining == 3
                queue = group.identify_queue
                assert queue is not None and queue.scheduler.remaining == 3  # type: ignore[attr-defined]

    run(body)


def test_64_shards_with_10_session_starts_left_identify_10_wait_refetch_then_the_rest(
    twins: dict[str, ModuleType], caplog: pytest.LogCaptureFixture
) -> None:
    async def body() -> None:
        limit = FakeSessionStartLimit(total=1000, remaining=10, reset_after=1.0)
        async with FakeGateway(token=TOKEN, recommended_shards=64, max_concurrency=16, identify_delay=0.04,
                               session_start_limit=limit, heartbeat_interval=30_000) as gw:
            async with running(gw, twins, identify_delay=0.05, compression=None) as group:
                await all_ready(gw, group, 64)
                assert gw.identify_violations == []  # never an IDENTIFY beyond the budget (the fake would end all)
                identifies = [entry for entry in gw.received if entry.op == 2]
                assert len(identifies) == 64
                first_ten = [entry.payload["d"]["shard"][0] for entry in identifies[:10]]
                assert sorted(first_ten) == list(range(10))
                gap = identifies[10].at - identifies[9].at
                assert gap >= 0.5  # waited for the reset (GET /gateway/bot said about 1 s left)
                gets = [request.at for request in gw.http_requests if request.status == 200]
                assert len(gets) >= 2 and identifies[9].at < gets[1] <= identifies[10].at  # re-fetched, then the rest
                assert group.fetches == len(gets)

    with caplog.at_level(logging.WARNING, logger="gateway"):
        run(body, timeout=60)
    warnings = [record.getMessage() for record in caplog.records if record.name == "gateway.ratelimit"]
    assert any("session start limit spent" in text and "UTC" in text for text in warnings)


# -- the merged stream -----------------------------------------------------------------------------------------


def test_merged_stream_is_exactly_once_and_in_order_per_shard_across_resumes(twins: dict[str, ModuleType]) -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN, recommended_shards=4) as gw:
            async with running(gw, twins, event_types=MESSAGES | EventTypeFlags.RESUMED) as group:
                collector = Collector(group)
                sessions = await all_ready(gw, group)
                for index in range(30):
                    for number, session in enumerate(sessions):
                        gw.dispatch_nowait("MESSAGE_CREATE", message(f"{number}:{index}"), session=session)
                    if index == 10:
                        await gw.drop(shard=1)  # the rest for shard 1 is replayed on RESUME
                    if index == 20:
                        await gw.reconnect(shard=2)
                    await asyncio.sleep(0)
                await until(lambda: len(collector.contents()) == 120, what="120 messages")
                await asyncio.sleep(0.2)
                assert len(collector.contents()) == 120
                for number in range(4):
                    assert collector.contents(number) == [f"{number}:{index}" for index in range(30)]
                    seqs = [event.seq for event in collector.events if event.shard_id == number and event.op == 0
                            and event.name == "MESSAGE_CREATE"]
                    assert seqs == sorted(set(seqs))
                names = {event.name for event in collector.events}
                assert names <= {"MESSAGE_CREATE", "RESUMED"}
                assert sorted(event.shard_id for event in collector.events if event.name == "RESUMED") == [1, 2]

    run(body)


def test_one_filter_for_every_shard_applies_to_queued_events(twins: dict[str, ModuleType]) -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN, recommended_shards=3) as gw:
            async with running(gw, twins, event_types=EventTypeFlags.TYPING_START | MESSAGES) as group:
                sessions = await all_ready(gw, group)
                for session in sessions:
                    gw.dispatch_nowait("TYPING_START", {"channel_id": "2", "user_id": "3", "timestamp": 1}, session=session)
                    gw.dispatch_nowait("MESSAGE_CREATE", message("kept"), session=session)
                await until(lambda: group.queued_events == 6, what="6 queued")
                group.set_event_types(MESSAGES)
                assert group.queued_events == 3
                for session in sessions:
                    gw.dispatch_nowait("TYPING_START", {"channel_id": "2", "user_id": "3", "timestamp": 1}, session=session)
                    gw.dispatch_nowait("MESSAGE_CREATE", message("later"), session=session)
                await until(lambda: group.queued_events == 6, what="6 queued")
                events = [group._queue.popleft() for _ in range(6)]
                assert {event.name for event in events} == {"MESSAGE_CREATE"}
                assert sorted(event.shard_id for event in events) == [0, 0, 1, 1, 2, 2]
                with pytest.raises(RuntimeError, match="belongs to a ShardGroup"):
                    await group.shards[0].next_event()

    run(body)


# -- fatal closes, 4011, resharding ----------------------------------------------------------------------------


@pytest.mark.parametrize("code", [4004, 4010, 4012, 4013, 4014])
def test_fatal_close_on_one_shard_closes_the_group(twins: dict[str, ModuleType], code: int) -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN, recommended_shards=3) as gw:
            group = new_group(gw, twins, event_types=MESSAGES)
            collector = Collector(group)
            await until(lambda: group.shards, what="start")
            sessions = await all_ready(gw, group)
            gw.dispatch_nowait("MESSAGE_CREATE", message("before"), session=sessions[0])
            await until(lambda: collector.contents() == ["before"], what="first message")
            others = [gw.connection_for_shard(number, 3) for number in (0, 2)]
            await gw.close(code, shard=1)
            await asyncio.wait_for(collector.task, WAIT)
            error = collector.error
            assert isinstance(error, FatalCloseError) and error.code == code
            assert error.shard_id == 1  # type: ignore[attr-defined]
            assert TOKEN not in str(error)
            for connection in others:
                assert await connection.wait_closed() == ("client", 1000)
            assert group.closed
            with pytest.raises(FatalCloseError):
                await group.next_event()
            await group.close()

    run(body)


@pytest.mark.parametrize("recommended_after, expected", [(6, 6), (2, 4)])
def test_4011_reshards_to_the_recommended_count(twins: dict[str, ModuleType], recommended_after: int,
                                                 expected: int) -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN, recommended_shards=2) as gw:
            async with running(gw, twins, event_types=MESSAGES) as group:
                collector = Collector(group)
                await all_ready(gw, group)
                survivor = gw.connection_for_shard(1, 2)
                gw.recommended_shards = recommended_after
                await gw.close(4011, shard=0)
                await until(lambda: group.generation == 1, what="the switch")
                assert group.shard_count == expected and sorted(group.shards) == list(range(expected))
                assert await survivor.wait_closed() == ("client", 1000)
                sessions = await all_ready(gw, group)
                for number, session in enumerate(sessions):
                    gw.dispatch_nowait("MESSAGE_CREATE", message(f"new {number}"), session=session)
                await until(lambda: len(collector.contents()) == expected, what="messages of the new generation")
                assert sorted(event.shard_id for event in collector.events) == list(range(expected))
                assert collector.error is None

    run(body)


def test_4011_is_fatal_for_a_group_running_part_of_the_shards(twins: dict[str, ModuleType]) -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN, recommended_shards=4) as gw:
            group = new_group(gw, twins, shard_count=4, shard_ids=range(0, 2))
            collector = Collector(group)
            await until(lambda: group.shards, what="start")
            await all_ready(gw, group)
            with pytest.raises(ValueError, match="shard_ids"):
                await group.reshard(8)  # which part of 8 would this process run?
            await gw.close(4011, shard=1)
            await asyncio.wait_for(collector.task, WAIT)
            assert isinstance(collector.error, FatalCloseError) and collector.error.code == 4011
            await group.close()

    run(body)


def test_reshard_switch_old_until_all_new_ready_then_new_only(twins: dict[str, ModuleType]) -> None:
    """What a consumer sees around a switch: every event the old generation received before it (also those still
    queued), none of what the new one received before it, everything the new one receives after it; the old
    shards close with 1000."""

    async def body() -> None:
        async with FakeGateway(token=TOKEN, recommended_shards=2, max_concurrency=1, identify_delay=0.25) as gw:
            group = new_group(gw, twins, identify_delay=0.3, event_types=MESSAGES)
            await group.start()
            try:
                old = await all_ready(gw, group, 2)
                old_connections = [session.connection for session in old]
                for number, session in enumerate(old):
                    gw.dispatch_nowait("MESSAGE_CREATE", message(f"old {number} before"), session=session)
                reshard = asyncio.ensure_future(group.reshard(3))
                new_first = await gw.wait_for_shard(0, 3)
                assert group.resharding and group.generation == 0
                gw.dispatch_nowait("MESSAGE_CREATE", message("new 0 during"), session=new_first)
                gw.dispatch_nowait("MESSAGE_CREATE", message("old 0 during"), session=old[0])
                await until(lambda: group.queued_events == 3, what="the old generation's events")
                with pytest.raises(LookupError):
                    gw.session_for_shard(2, 3)  # the new generation is not complete yet
                assert await asyncio.wait_for(reshard, WAIT) is True
                assert group.generation == 1 and group.shard_count == 3 and not group.resharding
                for connection in old_connections:
                    assert connection is not None and await connection.wait_closed() == ("client", 1000)
                new = await all_ready(gw, group, 3)
                for number, session in enumerate(new):
                    gw.dispatch_nowait("MESSAGE_CREATE", message(f"new {number} after"), session=session)
                await until(lambda: group.queued_events == 6, what="the new generation's events")
            finally:
                await group.close()
            contents = [event.data["content"] async for event in group.events()]
            old_part, new_part = contents[:3], contents[3:]
            assert sorted(old_part) == ["old 0 before", "old 0 during", "old 1 before"]
            assert old_part.index("old 0 before") < old_part.index("old 0 during")
            assert sorted(new_part) == ["new 0 after", "new 1 after", "new 2 after"]
            assert "new 0 during" not in contents

    run(body)


def test_reshard_arguments_and_no_op(twins: dict[str, ModuleType]) -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN, recommended_shards=2) as gw:
            group = new_group(gw, twins)
            with pytest.raises(RuntimeError, match="not started"):
                await group.reshard(3)
            await group.start()
            try:
                await all_ready(gw, group)
                assert await group.reshard() is False  # the recommended count is the current one
                assert await group.reshard(2) is False
                with pytest.raises(ValueError):
                    await group.reshard(0)
                with pytest.raises(ValueError):
                    await group.reshard(3, shard_ids=[3])
            finally:
                await group.close()
            with pytest.raises(ShardClosedError):
                await group.reshard(3)

    run(body)


def test_presence_is_sent_to_every_shard_and_used_by_later_identifies(twins: dict[str, ModuleType]) -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN, recommended_shards=2) as gw:
            async with running(gw, twins) as group:
                await all_ready(gw, group)
                await group.update_presence("idle", activities=[{"name": "sharding", "type": 0}])
                for number in range(2):
                    connection = gw.connection_for_shard(number, 2)
                    await gw.wait_for(lambda g: any(p.op == 3 for p in connection.received))
                assert await group.reshard(3) is True
                presences = [payload["d"]["presence"] for payload in gw.received_payloads(2)[2:]]
                assert len(presences) == 3 and all(p["status"] == "idle" for p in presences)

    run(body)


def test_periodic_check_reshards_to_a_higher_recommendation(twins: dict[str, ModuleType]) -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN, recommended_shards=1) as gw:
            async with running(gw, twins, reshard_check_interval=0.1) as group:
                await all_ready(gw, group)
                await asyncio.sleep(0.3)
                assert group.generation == 0 and group.fetches >= 2
                gw.recommended_shards = 2
                await until(lambda: group.generation == 1, what="the automatic reshard")
                assert group.shard_count == 2

    run(body)


# -- restarts --------------------------------------------------------------------------------------------------


def test_restart_resumes_every_shard_from_the_file_store_and_identifies_after_op_9(
    twins: dict[str, ModuleType], tmp_path: Path
) -> None:
    async def body() -> None:
        store = FileSessionStore(tmp_path / "sessions.json")
        async with FakeGateway(token=TOKEN, recommended_shards=3) as gw:
            first = new_group(gw, twins, session_store=store)
            await first.start()
            sessions = await all_ready(gw, first)
            for session in sessions:
                gw.dispatch_nowait("MESSAGE_CREATE", message("before the restart"), session=session)
            await until(lambda: first.queued_events >= 9, what="HELLO, READY and a message per shard")
            connections = [session.connection for session in sessions]
            await first.close()  # a store is configured: resumable by default
            for connection in connections:
                assert connection is not None and await connection.wait_closed() == ("client", 4000)
            assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
            saved = await store.load(3)
            assert {number: entry.session.id for number, entry in saved.items()} == {
                number: session.id for number, session in enumerate(sessions)}
            assert all(entry.session.sequence == 2 for entry in saved.values())
            remaining = gw.session_start_limit.remaining

            # Missed while down: replayed on RESUME.
            for session in sessions:
                gw.dispatch_nowait("MESSAGE_CREATE", message("while down"), session=session)
            second = new_group(gw, twins, session_store=store, event_types=MESSAGES | EventTypeFlags.RESUMED)
            collector = Collector(second)
            await until(lambda: len(gw.received_payloads(6)) == 3, what="3 RESUMEs")
            await until(lambda: len(collector.contents()) == 3, what="the replayed messages")
            assert len(gw.received_payloads(2)) == 3  # no new IDENTIFY
            assert gw.session_start_limit.remaining == remaining
            assert collector.contents() == ["while down"] * 3
            assert sorted(e.shard_id for e in collector.events if e.name == "RESUMED") == [0, 1, 2]
            await second.close()

            # One saved session is unknown to the gateway: op 9, then IDENTIFY through the queue; the others resume.
            saved = await store.load(3)
            await store.save(3, {**saved, 1: SavedSession(Session("not-a-session", 2), saved[1].resume_url)})
            third = new_group(gw, twins, session_store=store, rng=lambda: 0.0)
            await third.start()
            try:
                await until(lambda: len(gw.received_payloads(2)) == 4, timeout=WAIT + 2, what="the fallback IDENTIFY")
                assert gw.received_payloads(2)[-1]["d"]["shard"] == [1, 3]
                assert len(gw.received_payloads(6)) == 6
                await all_ready(gw, third)
            finally:
                await third.close(resumable=False)
            assert await store.load(3) == {}  # sessions ended with 1000: nothing to resume

    run(body, timeout=40)


def test_saved_sessions_of_another_count_are_not_resumed(twins: dict[str, ModuleType], tmp_path: Path) -> None:
    async def body() -> None:
        store = FileSessionStore(tmp_path / "sessions.json")
        async with FakeGateway(token=TOKEN, recommended_shards=2) as gw:
            first = new_group(gw, twins, session_store=store)
            await first.start()
            await all_ready(gw, first)
            await first.close()
            second = new_group(gw, twins, session_store=store, shard_count=3)
            await second.start()
            try:
                await all_ready(gw, second)
                assert len(gw.received_payloads(6)) == 0 and len(gw.received_payloads(2)) == 5
            finally:
                await second.close()

    run(body)


# -- arguments -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, error, match", [
    ({"shard_count": 0}, ValueError, "shard_count must be at least 1"),
    ({"shard_count": "4"}, TypeError, "shard_count must be an int"),
    ({"shard_ids": [0, 0]}, ValueError, "duplicates"),
    ({"shard_count": 2, "shard_ids": [2]}, ValueError, r"not in \[0, 2\)"),
    ({"shard_ids": []}, ValueError, "empty"),
    ({"api_url": "ftp://x"}, ValueError, "api_url"),
    ({"gateway_url": "http://x"}, ValueError, "gateway_url"),
    ({"identify_queue": object()}, TypeError, "wait_turn"),
    ({"session_store": object()}, TypeError, "SessionStore"),
    ({"identify_delay": -1}, ValueError, "identify_delay"),
    ({"reshard_check_interval": 0}, ValueError, "reshard_check_interval"),
    ({"compression": "brotli"}, ValueError, "compression"),
    ({"large_threshold": 10}, ValueError, "large_threshold"),
    ({"shard_id": 3}, TypeError, "unexpected option"),
    ({"event_types": "all"}, TypeError, "event_types"),
])
def test_arguments_are_validated(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match) as info:
        ShardGroup("secret-token-value", INTENTS, **kwargs)
    assert "secret-token-value" not in str(info.value)


def test_token_and_intents_are_validated_and_the_token_never_shown() -> None:
    with pytest.raises(ValueError):
        ShardGroup("", INTENTS)
    with pytest.raises(TypeError):
        ShardGroup(None, INTENTS)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="intents"):
        ShardGroup("t", "GUILDS")  # type: ignore[arg-type]
    group = ShardGroup("secret-token-value", INTENTS, shard_count=2)
    assert "secret-token-value" not in repr(group) and group.shard_count == 2
    with pytest.raises(RuntimeError, match="known once"):
        _ = ShardGroup("t", INTENTS).shard_count
