"""CommandRateLimiter, IdentifyScheduler (pure, now-fed) and IdentifyQueue (asyncio wrapper)."""

from __future__ import annotations

import asyncio
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hypothesis_budget import examples

from gateway.ratelimit import CommandRateLimiter, IdentifyQueue, IdentifyScheduler, heartbeat_reserve


class TestCommandRateLimiter:
    @pytest.mark.parametrize("interval, expected_max", [
        (41.25, 117), (60.0, 118), (30.0, 117), (29.999, 116), (0.0, 110), (1.0, 110), (None, 110)])
    def test_reserve_matches_twilight(self, interval: float | None, expected_max: int) -> None:
        assert CommandRateLimiter(interval).max == expected_max
        assert heartbeat_reserve(interval) == 120 - expected_max

    def test_at_one_instant_only_max_permits(self) -> None:
        limiter = CommandRateLimiter(41.25)
        assert all(limiter.acquire(10.0) for _ in range(117))
        assert limiter.available(10.0) == 0
        assert not limiter.acquire(10.0)
        assert limiter.next_available(10.0) == 70.0
        assert not limiter.acquire(69.999)
        assert limiter.available(70.0) == 117
        assert limiter.acquire(70.0)

    def test_window_slides_one_permit_at_a_time(self) -> None:
        limiter = CommandRateLimiter(41.25)
        for i in range(117):
            assert limiter.acquire(float(i))
        # at t=116 the permits from 0..55 have expired (each leaves 60 s after it was taken)
        assert limiter.available(116.0) == 57
        limiter2 = CommandRateLimiter(41.25)
        for i in range(117):
            limiter2.acquire(i * 0.1)
        assert limiter2.next_available(20.0) == pytest.approx(60.0)
        assert limiter2.next_available(60.05) == 60.05  # the permit taken at 0.0 has left the window
        assert limiter2.acquire(60.05)
        assert limiter2.next_available(60.05) == pytest.approx(60.1)

    def test_next_available_is_now_when_free(self) -> None:
        assert CommandRateLimiter(41.25).next_available(5.0) == 5.0

    def test_heartbeats_bypass_but_count(self) -> None:
        limiter = CommandRateLimiter(41.25)
        for _ in range(3):
            limiter.record_unlimited(0.0)
        assert limiter.in_window(0.0) == 3
        assert limiter.available(0.0) == 114
        for _ in range(114):
            assert limiter.acquire(0.0)
        assert not limiter.acquire(0.0)
        limiter.record_unlimited(0.0)  # never refused
        assert limiter.in_window(0.0) == 118

    @settings(max_examples=examples(60), deadline=None)
    @given(interval=st.floats(min_value=60 / 9, max_value=60.0), seed=st.integers(0, 2**32))
    def test_window_never_exceeds_120(self, interval: float, seed: int) -> None:
        """Heartbeats every interval (first jittered), at most one op-1 reply per minute, and a greedy sender.

        The reserve covers this for any interval >= 60/9 s (Discord uses 41.25 s); below that the cap of 10 cannot.
        """
        rng = random.Random(seed)
        limiter = CommandRateLimiter(interval)
        sent: list[float] = []
        next_beat = interval * rng.random()
        last_request = -math.inf
        now = 0.0
        while now < 300.0:
            if now >= next_beat:
                limiter.record_unlimited(now)
                sent.append(now)
                next_beat = now + interval
            if rng.random() < 0.05 and now - last_request > 60.0:  # a server heartbeat request
                last_request = now
                limiter.record_unlimited(now)
                sent.append(now)
            while limiter.acquire(now):
                sent.append(now)
            now = min(next_beat, limiter.next_available(now), now + rng.random())
        sent.sort()
        worst, first = 0, 0
        for last, end in enumerate(sent):
            while sent[first] <= end - 60.0:
                first += 1
            worst = max(worst, last - first + 1)
        assert worst <= 120


class TestIdentifyScheduler:
    def test_same_bucket_is_serial_five_seconds_apart(self) -> None:
        scheduler = IdentifyScheduler(1)
        first, second = scheduler.request(0), scheduler.request(0)
        assert scheduler.poll(0.0) == [first]
        assert scheduler.poll(4.999) == []
        assert scheduler.next_deadline() == 5.0
        assert scheduler.poll(5.0) == [second]
        assert scheduler.next_deadline() is None

    def test_different_buckets_in_parallel_lowest_first(self) -> None:
        scheduler = IdentifyScheduler(2)
        one, zero = scheduler.request(1), scheduler.request(0)
        assert scheduler.poll(0.0) == [zero, one]

    def test_twilight_ordering_vector(self) -> None:
        scheduler = IdentifyScheduler(4)
        tickets = [scheduler.request(shard) for shard in (0, 1, 3, 3)]
        assert scheduler.poll(0.0) == tickets[:3]
        assert scheduler.poll(4.0) == []
        assert scheduler.poll(5.0) == [tickets[3]]

    def test_fifo_per_bucket(self) -> None:
        scheduler = IdentifyScheduler(2)
        a, b, c = scheduler.request(0), scheduler.request(2), scheduler.request(4)
        granted = [scheduler.poll(t) for t in (0.0, 5.0, 10.0)]
        assert granted == [[a], [b], [c]]

    def test_cancelled_request_uses_no_slot(self) -> None:
        scheduler = IdentifyScheduler(1)
        a, b, c = scheduler.request(0), scheduler.request(0), scheduler.request(0)
        assert scheduler.poll(0.0) == [a]
        assert scheduler.cancel(b)
        assert not scheduler.cancel(b)
        assert scheduler.poll(5.0) == [c]
        assert scheduler.waiting == 0

    def test_refund_frees_the_bucket(self) -> None:
        scheduler = IdentifyScheduler(1)
        a, b = scheduler.request(0), scheduler.request(0)
        assert scheduler.poll(0.0) == [a]
        assert scheduler.refund(a)
        assert scheduler.poll(0.0) == [b]
        assert not scheduler.refund(a)

    def test_zero_concurrency_grants_everything(self) -> None:
        scheduler = IdentifyScheduler(0)
        tickets = [scheduler.request(i) for i in range(5)]
        assert scheduler.next_deadline() == -math.inf
        assert scheduler.poll(0.0) == tickets

    def test_update_redistributes_waiting_requests(self) -> None:
        scheduler = IdentifyScheduler(1)
        tickets = [scheduler.request(i) for i in range(3)]
        assert scheduler.poll(0.0) == [tickets[0]]
        scheduler.update(4)
        assert scheduler.poll(0.0) == tickets[1:]

    def test_daily_budget(self) -> None:
        scheduler = IdentifyScheduler(4)
        scheduler.set_session_start_limit(remaining=2, total=1000, reset_after=100.0, now=0.0)
        tickets = [scheduler.request(i) for i in range(3)]
        assert scheduler.poll(0.0) == tickets[:2]
        assert scheduler.remaining == 0
        assert scheduler.poll(50.0) == []
        assert scheduler.next_deadline() == 100.0
        assert scheduler.poll(100.0) == [tickets[2]]
        assert scheduler.remaining == 999

    @pytest.mark.parametrize("value, error", [(-1, ValueError), (1.5, TypeError), (True, TypeError)])
    def test_bad_concurrency(self, value: object, error: type[Exception]) -> None:
        with pytest.raises(error):
            IdentifyScheduler(value)  # type: ignore[arg-type]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class TestIdentifyQueue:
    def test_spacing_and_sharing(self) -> None:
        async def main() -> list[tuple[int, float]]:
            queue = IdentifyQueue(1, delay=0.05)
            loop = asyncio.get_running_loop()
            start = loop.time()
            order: list[tuple[int, float]] = []

            async def shard(number: int) -> None:
                await queue.wait_turn(number)
                order.append((number, loop.time() - start))

            await asyncio.gather(*(shard(n) for n in range(3)))
            return order

        order = asyncio.run(main())
        assert [n for n, _ in order] == [0, 1, 2]
        assert order[1][1] >= 0.045 and order[2][1] >= 0.095

    def test_cancelled_waiter_uses_no_slot(self) -> None:
        async def main() -> None:
            clock = FakeClock()
            queue = IdentifyQueue(1, delay=5.0, clock=clock)
            await queue.wait_turn(0)  # takes the slot at t=0
            waiting = asyncio.ensure_future(queue.wait_turn(0))
            after = asyncio.ensure_future(queue.wait_turn(0))
            await asyncio.sleep(0)
            waiting.cancel()
            await asyncio.sleep(0)
            clock.now = 5.0
            queue._pump()
            await asyncio.sleep(0)
            assert after.done() and not after.cancelled()
            assert waiting.cancelled()

        asyncio.run(main())

    def test_waiter_cancelled_after_grant_refunds_the_slot(self) -> None:
        async def main() -> None:
            clock = FakeClock()
            queue = IdentifyQueue(1, delay=5.0, clock=clock)
            await queue.wait_turn(0)
            granted_late = asyncio.ensure_future(queue.wait_turn(0))
            next_one = asyncio.ensure_future(queue.wait_turn(0))
            await asyncio.sleep(0)
            clock.now = 5.0
            queue._pump()  # grants granted_late's future; its task has not resumed yet
            granted_late.cancel()
            for _ in range(3):
                await asyncio.sleep(0)
            assert granted_late.cancelled()
            assert next_one.done(), "the refunded slot went to the next waiter at once"
            assert clock.now == 5.0

        asyncio.run(main())


@settings(max_examples=examples(50), deadline=None)
@given(times=st.lists(st.floats(min_value=0.0, max_value=1e6, allow_nan=False), min_size=117, max_size=117))
def test_acquire_succeeds_exactly_at_next_available(times: list[float]) -> None:
    """Regression: float rounding must never leave next_available() pointing at a time when acquire() still fails."""
    limiter = CommandRateLimiter(41.25)
    times.sort()
    for t in times:
        limiter.record_unlimited(t)
    now = times[-1]
    at = limiter.next_available(now)
    assert at > now or limiter.available(now) > 0
    assert limiter.acquire(at)
