"""The sans-I/O cores of ShardGroup, without sockets: the identify budget (IdentifyScheduler with the group's
options, IdentifyQueue's refresh of a spent session_start_limit) and FleetCore (generations, reshard switch, what a
stopped shard means)."""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hypothesis_budget import examples

from gateway.fleet import (
    FleetCore,
    StopVerdict,
    check_shard_count,
    check_shard_ids,
    count_after_sharding_required,
)
from gateway.ratelimit import IdentifyQueue, IdentifyScheduler


def drain(scheduler: IdentifyScheduler, start: float = 0.0, until: float = 1e9) -> list[tuple[float, int]]:
    """Advance time from deadline to deadline, granting everything; returns (time, shard) per grant."""
    shard_of = {ticket: shard for ticket, shard in zip(sorted(_tickets(scheduler)), scheduler.waiting_shards())}
    now, grants = start, []
    while True:
        for ticket in scheduler.poll(now):
            grants.append((now, shard_of[ticket]))
        deadline = scheduler.next_deadline()
        if deadline is None or deadline > until:
            return grants
        now = max(now, deadline)


def _tickets(scheduler: IdentifyScheduler) -> list[int]:
    return list(scheduler._shard_of)  # tickets of waiting requests (test helper only)


class TestBuckets:
    def test_shard_order_starts_buckets_in_id_order_whatever_the_request_order(self) -> None:
        scheduler = IdentifyScheduler(16, delay=5.0, order="shard")
        shards = list(range(32))
        random.Random(7).shuffle(shards)
        for shard in shards:
            scheduler.request(shard)
        grants = drain(scheduler)
        assert [shard for at, shard in grants if at == 0.0] == list(range(16))
        assert [shard for at, shard in grants if at == 5.0] == list(range(16, 32))
        assert len(grants) == 32

    def test_fifo_order_is_kept_by_default(self) -> None:
        scheduler = IdentifyScheduler(1)
        scheduler.request(5)
        scheduler.request(0)
        assert [shard for _, shard in drain(scheduler)] == [5, 0]

    @settings(max_examples=examples(60), deadline=None)
    @given(
        concurrency=st.integers(1, 8),
        shards=st.integers(1, 40),
        reidentify=st.lists(st.tuples(st.integers(0, 39), st.floats(0, 30)), max_size=20),
    )
    def test_never_two_identifies_of_one_bucket_within_the_window(
        self, concurrency: int, shards: int, reidentify: list[tuple[int, float]]
    ) -> None:
        scheduler = IdentifyScheduler(concurrency, delay=5.0, order="shard")
        shard_of: dict[int, int] = {scheduler.request(shard): shard for shard in range(shards)}
        later = sorted((at, shard % shards) for shard, at in reidentify)  # op 9 / 4007 / 4009 re-identifies
        grants: list[tuple[float, int]] = []
        now = 0.0
        while True:
            while later and later[0][0] <= now:
                _, shard = later.pop(0)
                shard_of[scheduler.request(shard)] = shard
            grants += [(now, shard_of[ticket]) for ticket in scheduler.poll(now)]
            candidates = [t for t in (scheduler.next_deadline(), later[0][0] if later else None) if t is not None]
            if not candidates:
                break
            now = max(now, min(candidates))
        assert len(grants) == shards + len(reidentify)
        last: dict[int, float] = {}
        for at, shard in grants:
            bucket = shard % concurrency
            assert at - last.get(bucket, -10.0) >= 5.0, (bucket, at)
            last[bucket] = at


class TestSessionStartLimit:
    def test_64_shards_with_10_left_identify_10_then_wait_for_a_refresh(self) -> None:
        scheduler = IdentifyScheduler(16, delay=5.0, order="shard", refresh_budget=True)
        scheduler.set_session_start_limit(remaining=10, total=1000, reset_after=60.0, now=0.0)
        for shard in range(64):
            scheduler.request(shard)
        first = drain(scheduler, until=59.0)
        assert [shard for _, shard in first] == list(range(10))
        assert scheduler.remaining == 0 and scheduler.refresh_due and not scheduler.spent_confirmed
        assert scheduler.next_deadline() is None  # our count says spent: only Discord's numbers can go on
        scheduler.set_session_start_limit(remaining=0, total=1000, reset_after=55.0, now=5.0)  # Discord agrees
        assert scheduler.spent_confirmed and not scheduler.refresh_due
        assert scheduler.exhausted_until == 60.0 and scheduler.next_deadline() == 60.0
        assert scheduler.poll(59.9) == []
        assert scheduler.poll(60.0) == []  # the reset time passed: not refilled on a guess
        assert scheduler.refresh_due and scheduler.next_deadline() is None
        scheduler.set_session_start_limit(remaining=1000, total=1000, reset_after=0.0, now=61.0)
        assert not scheduler.refresh_due
        rest = drain(scheduler, start=61.0)
        assert sorted(shard for _, shard in rest) == list(range(10, 64))
        assert scheduler.remaining == 1000 - 54
        assert min(at for at, _ in rest) == 61.0

    def test_a_refresh_that_is_still_spent_waits_again(self) -> None:
        scheduler = IdentifyScheduler(1, refresh_budget=True)
        scheduler.set_session_start_limit(remaining=0, total=5, reset_after=10.0, now=0.0)
        scheduler.request(0)
        assert scheduler.poll(10.0) == [] and scheduler.refresh_due
        scheduler.set_session_start_limit(remaining=0, total=5, reset_after=10.0, now=10.0)
        assert scheduler.next_deadline() == 20.0 and not scheduler.refresh_due
        assert scheduler.poll(20.0) == [] and scheduler.refresh_due
        scheduler.set_session_start_limit(remaining=5, total=5, reset_after=0.0, now=20.0)
        assert len(scheduler.poll(20.0)) == 1 and scheduler.remaining == 4

    def test_every_identify_counts_and_an_unused_grant_is_refunded(self) -> None:
        scheduler = IdentifyScheduler(2, delay=5.0, refresh_budget=True)
        scheduler.set_session_start_limit(remaining=3, total=10, reset_after=100.0, now=0.0)
        tickets = [scheduler.request(shard) for shard in (0, 1, 0, 1)]  # two starts and two re-identifies
        assert scheduler.poll(0.0) == tickets[:2]
        assert scheduler.refund(tickets[1])  # shard 1's connection died before it identified
        assert scheduler.remaining == 2
        assert scheduler.poll(0.0) == [tickets[3]]
        assert scheduler.poll(5.0) == [tickets[2]]
        assert scheduler.remaining == 0 and scheduler.refresh_due

    def test_discord_counting_fewer_starts_than_we_did_lets_the_rest_go_on(self) -> None:
        scheduler = IdentifyScheduler(1, delay=0.0, refresh_budget=True)
        scheduler.set_session_start_limit(remaining=2, total=10, reset_after=100.0, now=0.0)
        tickets = [scheduler.request(0) for _ in range(3)]
        assert scheduler.poll(0.0) == tickets[:1] and scheduler.poll(0.0) == tickets[1:2]
        assert scheduler.refresh_due and scheduler.poll(1.0) == []
        scheduler.set_session_start_limit(remaining=1, total=10, reset_after=99.0, now=1.0)  # one was refused there
        assert scheduler.poll(1.0) == tickets[2:]

    def test_without_refresh_the_budget_refills_at_the_reset(self) -> None:
        scheduler = IdentifyScheduler(1)
        scheduler.set_session_start_limit(remaining=1, total=7, reset_after=30.0, now=0.0)
        a, b = scheduler.request(0), scheduler.request(0)
        assert scheduler.poll(0.0) == [a]
        assert scheduler.poll(29.0) == [] and scheduler.next_deadline() == 30.0
        assert scheduler.poll(30.0) == [b] and scheduler.remaining == 6

    @pytest.mark.parametrize("kwargs, error", [
        ({"order": "random"}, ValueError), ({"delay": -1.0}, ValueError), ({"delay": "5"}, ValueError)])
    def test_bad_options(self, kwargs: dict[str, object], error: type[Exception]) -> None:
        with pytest.raises(error):
            IdentifyScheduler(1, **kwargs)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Limit:
    total: int
    remaining: int
    reset_after: float
    max_concurrency: int


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class TestIdentifyQueueRefresh:
    def test_spent_budget_warns_with_the_time_then_refreshes_once_and_continues(self, caplog: pytest.LogCaptureFixture) -> None:
        async def main() -> None:
            clock = Clock()
            calls: list[float] = []

            async def refresh() -> Limit:
                calls.append(clock.now)
                if len(calls) == 1:  # Discord confirms: spent, 50 s to the reset
                    return Limit(total=100, remaining=0, reset_after=50.0, max_concurrency=1)
                return Limit(total=100, remaining=100, reset_after=0.0, max_concurrency=2)

            queue = IdentifyQueue(1, delay=0.0, clock=clock, order="shard", refresh=refresh)
            queue.apply(Limit(total=100, remaining=2, reset_after=50.0, max_concurrency=1))
            waiters = [asyncio.ensure_future(queue.wait_turn(shard)) for shard in range(4)]
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            assert [w.done() for w in waiters] == [True, True, False, False]
            for _ in range(5):  # spent by our count: it asks Discord after one window (0 s here)
                await asyncio.sleep(0)
            assert calls == [0.0] and queue.refreshes == 1
            assert not any(w.done() for w in waiters[2:])
            clock.now = 50.0
            queue._pump()  # the timer would fire here
            for _ in range(5):
                await asyncio.sleep(0)
            assert calls == [0.0, 50.0] and queue.refreshes == 2
            assert all(w.done() for w in waiters)
            assert queue.max_concurrency == 2 and queue.scheduler.remaining == 98
            queue.close()

        with caplog.at_level(logging.WARNING, logger="gateway.ratelimit"):
            asyncio.run(main())
        warnings = [r.getMessage() for r in caplog.records if "session start limit spent" in r.getMessage()]
        assert len(warnings) == 1
        assert "UTC (50 s)" in warnings[0] and "shard(s) wait until" in warnings[0]

    def test_a_failing_refresh_is_retried(self) -> None:
        async def main() -> None:
            clock = Clock()
            attempts = 0

            async def refresh() -> Limit:
                nonlocal attempts
                attempts += 1
                if attempts < 3:
                    raise OSError("connection refused")
                return Limit(total=10, remaining=10, reset_after=0.0, max_concurrency=1)

            queue = IdentifyQueue(1, delay=0.0, clock=clock, refresh=refresh, refresh_retry=0.01)
            queue.set_session_start_limit(remaining=0, total=10, reset_after=1.0)
            waiter = asyncio.ensure_future(queue.wait_turn(0))
            await asyncio.sleep(0)
            clock.now = 1.0
            queue._pump()
            await asyncio.wait_for(waiter, 2.0)
            assert attempts == 3

        asyncio.run(main())


class TestFleetCore:
    def test_switch_when_every_pending_shard_was_ready(self) -> None:
        core = FleetCore(2, range(2), owns_all_shards=True)
        assert not core.shard_ready(core.current, 0)  # the delivering generation never "switches"
        pending, aborted = core.begin_reshard(4)
        assert aborted is None and pending.shard_ids == (0, 1, 2, 3) and core.resharding
        assert [core.shard_ready(pending, n) for n in (0, 1, 2)] == [False, False, False]
        assert not core.shard_ready(pending, 1)  # twice the same shard counts once
        assert core.shard_ready(pending, 3)
        old = core.switch()
        assert old.shard_count == 2 and core.current is pending and not core.resharding and core.switches == 1
        assert not core.is_live(old)
        assert core.shard_stopped(old, 0, None) is StopVerdict.IGNORE

    def test_a_new_reshard_replaces_the_pending_one(self) -> None:
        core = FleetCore(1, [0], owns_all_shards=True)
        first, _ = core.begin_reshard(2)
        second, aborted = core.begin_reshard(3)
        assert aborted is first and core.pending is second
        assert not core.shard_ready(first, 0) and not core.shard_ready(first, 1)
        assert core.shard_stopped(first, 0, 4004) is StopVerdict.IGNORE  # an abandoned generation means nothing

    def test_sharding_required_reshards_once(self) -> None:
        core = FleetCore(2, range(2), owns_all_shards=True)
        assert core.shard_stopped(core.current, 0, 4011) is StopVerdict.RESHARD
        assert core.shard_stopped(core.current, 1, 4011) is StopVerdict.IGNORE  # already asked for
        pending, _ = core.begin_reshard(4)
        assert core.shard_stopped(pending, 2, 4011) is StopVerdict.RESHARD  # still too few: again, bigger
        assert core.shard_stopped(pending, 2, 4011) is StopVerdict.IGNORE  # the same stop reported twice

    def test_sharding_required_is_fatal_for_a_part_of_the_shards(self) -> None:
        core = FleetCore(8, [2, 3], owns_all_shards=False)
        assert core.shard_stopped(core.current, 2, 4011) is StopVerdict.FATAL

    @pytest.mark.parametrize("code", [4004, 4010, 4012, 4013, 4014])
    def test_fatal_codes(self, code: int) -> None:
        core = FleetCore(2, range(2), owns_all_shards=True)
        assert core.shard_stopped(core.current, 1, code) is StopVerdict.FATAL

    def test_user_close_and_closing_group_are_ignored(self) -> None:
        core = FleetCore(2, range(2), owns_all_shards=True)
        assert core.shard_stopped(core.current, 0, None) is StopVerdict.IGNORE
        live = core.begin_close()
        assert live == [core.current]
        assert core.shard_stopped(core.current, 1, 4004) is StopVerdict.IGNORE
        with pytest.raises(RuntimeError):
            core.begin_reshard(4)

    def test_no_switch_once_closing(self) -> None:
        core = FleetCore(1, [0], owns_all_shards=True)
        pending, _ = core.begin_reshard(2)
        core.shard_ready(pending, 0)
        core.begin_close()
        assert not core.shard_ready(pending, 1)

    def test_count_after_sharding_required(self) -> None:
        assert count_after_sharding_required(4, 6) == 6
        assert count_after_sharding_required(4, 4) == 8
        assert count_after_sharding_required(4, 2) == 8

    @pytest.mark.parametrize("ids, count, error", [
        ([], 4, ValueError), ([0, 0], 4, ValueError), ([4], 4, ValueError), ([-1], None, ValueError),
        (["0"], 4, TypeError), ([True], 4, TypeError), ("01", 4, TypeError), (5, 4, TypeError)])
    def test_bad_shard_ids(self, ids: object, count: int | None, error: type[Exception]) -> None:
        with pytest.raises(error):
            check_shard_ids(ids, count)  # type: ignore[arg-type]

    def test_shard_ids_are_sorted(self) -> None:
        assert check_shard_ids({3, 1, 2}, 4) == (1, 2, 3)

    @pytest.mark.parametrize("count, error", [(0, ValueError), (1.0, TypeError), (True, TypeError)])
    def test_bad_shard_count(self, count: object, error: type[Exception]) -> None:
        with pytest.raises(error):
            check_shard_count(count)
