"""Gateway rate limits: the per-connection command limiter and the identify scheduler/queue.

``CommandRateLimiter`` and ``IdentifyScheduler`` are pure: they never read a clock, every time-dependent call takes
``now`` (monotonic seconds). ``IdentifyQueue`` is the thin asyncio wrapper that shares one scheduler between the
shards of one event loop.

Command limit (Discord: 120 payloads per 60 s per connection, close 4008 beyond): a sliding-window log of the
times payloads were sent. Heartbeats are never delayed (``record_unlimited``) but are logged in the window; other
payloads (IDENTIFY, RESUME, user commands) need ``acquire(now)``, which allows them only while the window holds fewer
than ``max = 120 - reserve`` entries, ``reserve = min(ceil(60 / interval_s) + 1, 10)`` (one heartbeat per interval in
any window plus one server-requested heartbeat, as twilight). So the window never exceeds 120 as long as heartbeats
keep to their reserve: true for any interval >= 60/9 s with at most one server-requested heartbeat per minute
(Discord's interval is 41.25 s; below 6.67 s the cap of 10 no longer covers every beat).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable
from typing import Callable, Literal, Protocol, runtime_checkable

__all__ = [
    "COMMAND_PERIOD",
    "COMMAND_LIMIT",
    "IDENTIFY_DELAY",
    "DAY",
    "CommandRateLimiter",
    "IdentifyScheduler",
    "IdentifyQueue",
    "IdentifyQueueProtocol",
    "SessionStartLimitLike",
    "heartbeat_reserve",
]

logger = logging.getLogger("gateway.ratelimit")

COMMAND_PERIOD = 60.0
COMMAND_LIMIT = 120
MAX_RESERVE = 10
IDENTIFY_DELAY = 5.0
DAY = 86400.0


def heartbeat_reserve(heartbeat_interval: float | None) -> int:
    """Slots of the 120 kept for heartbeats: ``min(ceil(60 / interval_s) + 1, 10)``; 10 for None or a non-positive interval."""
    if heartbeat_interval is None or heartbeat_interval <= 0:
        return MAX_RESERVE
    return min(math.ceil(COMMAND_PERIOD / heartbeat_interval) + 1, MAX_RESERVE)


class CommandRateLimiter:
    """Sliding-window limiter of one connection's outgoing payloads (create a new one per HELLO).

    ``acquire(now)`` takes a permit if one is free and returns whether it did; ``record_unlimited(now)`` logs a
    heartbeat without checking; ``available(now)`` and ``next_available(now)`` (absolute time, ``now`` when a permit is
    free) let the caller wait instead of dropping. Each entry leaves the window exactly ``period`` seconds after it was
    taken. ``heartbeat_interval`` is in seconds.
    """

    __slots__ = ("_max", "_period", "_log")

    def __init__(self, heartbeat_interval: float | None = None, *, period: float = COMMAND_PERIOD,
                 limit: int = COMMAND_LIMIT) -> None:
        self._max = limit - heartbeat_reserve(heartbeat_interval)
        self._period = period
        self._log: deque[float] = deque()

    @property
    def max(self) -> int:
        """Permits available to rate-limited payloads in one window (120 minus the heartbeat reserve)."""
        return self._max

    @property
    def reserve(self) -> int:
        return COMMAND_LIMIT - self._max

    def _expire(self, now: float) -> None:
        # Compare entry + period (not now - period) so that it matches next_available() exactly under float rounding:
        # at now == next_available(...) the entry is guaranteed to have left the window.
        log, period = self._log, self._period
        while log and log[0] + period <= now:
            log.popleft()

    def in_window(self, now: float) -> int:
        """Payloads (heartbeats included) sent in ``(now - period, now]``."""
        self._expire(now)
        return len(self._log)

    def available(self, now: float) -> int:
        """How many rate-limited payloads could be sent at ``now``."""
        return max(0, self._max - self.in_window(now))

    def acquire(self, now: float) -> bool:
        """Take a permit at ``now`` if one is free (True), else take nothing (False)."""
        if self.in_window(now) >= self._max:
            return False
        self._log.append(now)
        return True

    def record_unlimited(self, now: float) -> None:
        """Log a payload that must not wait (a heartbeat): it counts against the window but is never refused."""
        self._expire(now)
        self._log.append(now)

    def next_available(self, now: float) -> float:
        """Earliest time >= ``now`` at which ``acquire`` will succeed (assuming no other sends meanwhile)."""
        count = self.in_window(now)
        if count < self._max:
            return now
        # The window must lose (count - max + 1) entries: wait for the one at index count - max to expire.
        return self._log[count - self._max] + self._period

    def __repr__(self) -> str:
        return f"CommandRateLimiter(max={self._max}, in_window={len(self._log)})"


class IdentifyScheduler:
    """Pure identify scheduler: at most one IDENTIFY per bucket (``shard_id % max_concurrency``) per ``delay`` seconds.

    ``request(shard_id) -> ticket`` queues a request (FIFO per bucket); ``poll(now) -> [ticket, ...]`` grants the
    requests whose turn has come (each grant starts the bucket's ``delay``); ``next_deadline()`` is when ``poll`` could
    grant more (None when nothing waits, or when a grant is possible at once: call ``poll``); ``cancel(ticket)`` removes
    a waiting request without using a slot; ``refund(ticket)`` gives back the slot of a grant that was not used (only
    the latest grant of its bucket can be refunded). ``max_concurrency == 0`` grants everything at once with no
    accounting. Optional daily budget: ``set_session_start_limit(remaining, total, reset_after, now)``; every grant
    uses one session start, and while the budget is spent nothing is granted until the reset time. At the reset the
    budget refills to ``total``, or, with ``refresh_on_reset=True``, stays shut (``refresh_due``) until the caller
    applies fresh numbers from ``GET /gateway/bot`` with ``set_session_start_limit``.

    ``order``: within a bucket, ``"fifo"`` grants in request order; ``"shard"`` grants the lowest shard id first, so
    that a group starting its shards identifies them in id order (0-15 together, then 16-31, ... with
    max_concurrency 16, as Discord asks) however their connections raced.
    """

    def __init__(self, max_concurrency: int = 1, *, delay: float = IDENTIFY_DELAY,
                 order: Literal["fifo", "shard"] = "fifo", refresh_on_reset: bool = False) -> None:
        self._check_concurrency(max_concurrency)
        if order not in ("fifo", "shard"):
            raise ValueError(f"order must be 'fifo' or 'shard', got {order!r}")
        if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not delay >= 0:
            raise ValueError(f"delay must be a number of seconds >= 0, got {delay!r}")
        self._max_concurrency = max_concurrency
        self._delay = float(delay)
        self._by_shard = order == "shard"
        self._refresh_on_reset = refresh_on_reset
        self._refresh_due = False
        self._buckets: dict[int, deque[int]] = {}
        self._shard_of: dict[int, int] = {}
        self._next_allowed: dict[int, float] = {}
        self._last_grant: dict[int, tuple[int, float | None, bool]] = {}
        self._next_ticket = 0
        self._remaining: int | None = None
        self._total: int | None = None
        self._reset_at: float | None = None

    @staticmethod
    def _check_concurrency(max_concurrency: int) -> None:
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int):
            raise TypeError(f"max_concurrency must be an int, not {type(max_concurrency).__name__}")
        if max_concurrency < 0:
            raise ValueError(f"max_concurrency must be >= 0, got {max_concurrency}")

    @property
    def max_concurrency(self) -> int:
        return self._max_concurrency

    @property
    def remaining(self) -> int | None:
        """Identifies left in the daily budget (None when no budget was set)."""
        return self._remaining

    @property
    def total(self) -> int | None:
        """The daily budget's size (None when no budget was set)."""
        return self._total

    @property
    def delay(self) -> float:
        return self._delay

    @property
    def exhausted_until(self) -> float | None:
        """When the spent daily budget resets (None while identifies are left or no budget was set)."""
        return self._reset_at if self._remaining == 0 else None

    @property
    def refresh_due(self) -> bool:
        """True when the budget's reset time has passed and (``refresh_on_reset``) fresh numbers are awaited."""
        return self._refresh_due

    @property
    def waiting(self) -> int:
        return len(self._shard_of)

    def waiting_shards(self) -> list[int]:
        """The shard ids of the waiting requests, in ticket order."""
        return [self._shard_of[ticket] for ticket in sorted(self._shard_of)]

    def bucket_of(self, shard_id: int) -> int:
        return shard_id % self._max_concurrency if self._max_concurrency else 0

    def request(self, shard_id: int) -> int:
        """Queue an identify request for ``shard_id`` and return its ticket."""
        if isinstance(shard_id, bool) or not isinstance(shard_id, int):
            raise TypeError(f"shard_id must be an int, not {type(shard_id).__name__}")
        if shard_id < 0:
            raise ValueError(f"shard_id must be >= 0, got {shard_id}")
        ticket = self._next_ticket
        self._next_ticket += 1
        self._shard_of[ticket] = shard_id
        self._buckets.setdefault(self.bucket_of(shard_id), deque()).append(ticket)
        return ticket

    def cancel(self, ticket: int) -> bool:
        """Withdraw a waiting request; True if it was waiting (it then never uses a slot)."""
        shard_id = self._shard_of.pop(ticket, None)
        if shard_id is None:
            return False
        self._buckets[self.bucket_of(shard_id)].remove(ticket)
        return True

    def set_session_start_limit(self, remaining: int, total: int, reset_after: float, now: float) -> None:
        """Apply ``/gateway/bot``'s ``session_start_limit`` (``reset_after`` in seconds)."""
        if remaining < 0 or total < 1 or remaining > total:
            raise ValueError(f"invalid session_start_limit: remaining={remaining}, total={total}")
        self._remaining, self._total = remaining, total
        self._reset_at = now + reset_after if remaining != total else None
        self._refresh_due = False

    def update(self, max_concurrency: int) -> None:
        """Change ``max_concurrency``; waiting requests are redistributed over the new buckets in ticket order."""
        self._check_concurrency(max_concurrency)
        waiting = sorted(self._shard_of.items())
        self._max_concurrency = max_concurrency
        self._buckets = {}
        self._next_allowed = {}
        self._last_grant = {}
        for ticket, shard_id in waiting:
            self._buckets.setdefault(self.bucket_of(shard_id), deque()).append(ticket)

    def _budget_blocked(self, now: float) -> bool:
        if self._remaining is None:
            return False
        if self._remaining == 0 and self._reset_at is not None and now >= self._reset_at:
            if self._refresh_on_reset:
                self._refresh_due = True
            else:
                self._remaining, self._reset_at = self._total, None
        elif self._remaining != 0 and self._reset_at is not None and now >= self._reset_at:
            self._remaining, self._reset_at = self._total, None
        return self._remaining == 0

    def poll(self, now: float) -> list[int]:
        """Grant every request whose turn has come at ``now`` (lowest bucket first) and return their tickets."""
        granted: list[int] = []
        for bucket in sorted(self._buckets):
            queue = self._buckets[bucket]
            if not queue:
                continue
            if self._max_concurrency == 0:
                while queue:
                    ticket = queue.popleft()
                    del self._shard_of[ticket]
                    granted.append(ticket)
                continue
            if self._next_allowed.get(bucket, -math.inf) > now or self._budget_blocked(now):
                continue
            if self._by_shard and len(queue) > 1:
                ticket = min(queue, key=self._shard_of.__getitem__)
                queue.remove(ticket)
            else:
                ticket = queue.popleft()
            del self._shard_of[ticket]
            previous_reset = self._reset_at
            if self._remaining is not None:
                if self._remaining == self._total and self._reset_at is None:
                    self._reset_at = now + DAY
                self._remaining -= 1
            self._last_grant[bucket] = (ticket, self._next_allowed.get(bucket), previous_reset is None)
            self._next_allowed[bucket] = now + self._delay
            granted.append(ticket)
        return granted

    def refund(self, ticket: int) -> bool:
        """Give back the slot of an unused grant (the latest of its bucket): the bucket may grant again at once."""
        for bucket, (granted_ticket, previous_allowed, started_window) in self._last_grant.items():
            if granted_ticket != ticket:
                continue
            del self._last_grant[bucket]
            if previous_allowed is None:
                self._next_allowed.pop(bucket, None)
            else:
                self._next_allowed[bucket] = previous_allowed
            if self._remaining is not None and self._total is not None and self._remaining < self._total:
                self._remaining += 1
                if started_window and self._remaining == self._total:
                    self._reset_at = None
            return True
        return False

    def next_deadline(self) -> float | None:
        """Earliest time a waiting request could be granted (``-inf`` if at once), None when nothing waits."""
        deadlines: list[float] = []
        for bucket, queue in self._buckets.items():
            if not queue:
                continue
            if self._max_concurrency == 0:
                return -math.inf
            deadline = self._next_allowed.get(bucket, -math.inf)
            if self._remaining == 0:
                if self._refresh_due or self._reset_at is None:
                    continue  # only set_session_start_limit can unblock it
                deadline = max(deadline, self._reset_at)
            deadlines.append(deadline)
        return min(deadlines) if deadlines else None

    def __repr__(self) -> str:
        return f"IdentifyScheduler(max_concurrency={self._max_concurrency}, waiting={self.waiting})"


@runtime_checkable
class IdentifyQueueProtocol(Protocol):
    """What a Shard needs of an identify queue (``IdentifyQueue``, ``gateway.redis.RedisIdentifyQueue``, yours).

    ``await wait_turn(shard_id)`` returns when that shard may send IDENTIFY now, and uses one slot of its bucket
    (``shard_id % max_concurrency``) and one session start. It must be cancellation-safe: a waiter cancelled before
    its turn uses no slot.
    """

    async def wait_turn(self, shard_id: int) -> None: ...


class SessionStartLimitLike(Protocol):
    """What :class:`IdentifyQueue` needs of ``GET /gateway/bot``'s ``session_start_limit`` (``reset_after`` in s)."""

    @property
    def total(self) -> int: ...
    @property
    def remaining(self) -> int: ...
    @property
    def reset_after(self) -> float: ...
    @property
    def max_concurrency(self) -> int: ...


class IdentifyQueue:
    """asyncio wrapper of one :class:`IdentifyScheduler` shared by every shard of one event loop.

    ``await queue.wait_turn(shard_id)`` returns when that shard may send IDENTIFY now. Cancellation-safe: a waiter
    cancelled before its grant is withdrawn, and one cancelled after its grant but before it resumed refunds the slot,
    so a cancelled waiter never uses up a slot. ``clock`` defaults to the running loop's ``time()``.

    Daily budget: feed it with :meth:`set_session_start_limit` (or :meth:`apply`). When it is spent, a warning gives
    the UTC time of the reset and nothing is granted until then. With ``refresh`` (a coroutine function returning a
    fresh ``session_start_limit``, e.g. from :func:`gateway.http.fetch_gateway_info`) the queue calls it once the reset
    time has passed and applies the answer, instead of assuming the budget refilled; a failing refresh is retried
    every ``refresh_retry`` seconds. ``order``: see :class:`IdentifyScheduler`.
    """

    def __init__(self, max_concurrency: int = 1, *, delay: float = IDENTIFY_DELAY,
                 clock: Callable[[], float] | None = None, order: Literal["fifo", "shard"] = "fifo",
                 refresh: Callable[[], Awaitable[SessionStartLimitLike]] | None = None,
                 refresh_retry: float = 30.0) -> None:
        self.scheduler = IdentifyScheduler(max_concurrency, delay=delay, order=order,
                                           refresh_on_reset=refresh is not None)
        self._clock = clock
        self._waiters: dict[int, asyncio.Future[None]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._refresh = refresh
        self._refresh_retry = refresh_retry
        self._refresh_task: asyncio.Task[None] | None = None
        self._warned_until: float | None = None
        self.refreshes = 0
        """How many times ``refresh`` was applied after a spent budget."""

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    @property
    def max_concurrency(self) -> int:
        return self.scheduler.max_concurrency

    @property
    def waiting(self) -> int:
        """Shards waiting for their turn."""
        return len(self._waiters)

    async def wait_turn(self, shard_id: int) -> None:
        """Wait until ``shard_id`` may identify. Raises CancelledError (using no slot) if cancelled."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        ticket = self.scheduler.request(shard_id)
        self._waiters[ticket] = future
        self._pump()
        try:
            await future
        except asyncio.CancelledError:
            self._waiters.pop(ticket, None)
            if not self.scheduler.cancel(ticket) and future.done() and not future.cancelled():
                self.scheduler.refund(ticket)
            self._pump()
            raise

    def update(self, max_concurrency: int) -> None:
        self.scheduler.update(max_concurrency)
        self._pump()

    def set_session_start_limit(self, remaining: int, total: int, reset_after: float) -> None:
        self.scheduler.set_session_start_limit(remaining, total, reset_after, self._now())
        self._pump()

    def apply(self, limit: SessionStartLimitLike) -> None:
        """Apply a ``session_start_limit`` (its max_concurrency too, when it changed)."""
        if limit.max_concurrency != self.scheduler.max_concurrency:
            self.scheduler.update(limit.max_concurrency)
        self.set_session_start_limit(limit.remaining, limit.total, limit.reset_after)

    def close(self) -> None:
        """Stop the timer and a running refresh (waiters stay pending; cancel them to withdraw)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._refresh_task is not None:
            self._refresh_task.cancel()
            self._refresh_task = None

    def _pump(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        scheduler = self.scheduler
        while True:
            now = self._now()
            granted = scheduler.poll(now)
            if not granted:
                break
            refunded = False
            for ticket in granted:
                future = self._waiters.pop(ticket, None)
                if future is None or future.done():
                    scheduler.refund(ticket)
                    refunded = True
                else:
                    future.set_result(None)
            if not refunded:
                break
        if self._waiters:
            exhausted_until = scheduler.exhausted_until
            if exhausted_until is not None and exhausted_until != self._warned_until:
                self._warned_until = exhausted_until
                wait = max(0.0, exhausted_until - self._now())
                at = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(time.time() + wait))
                logger.warning("session start limit spent (%s per day): %d shard(s) wait until %s (%.0f s) to identify",
                               scheduler.total, len(self._waiters), at, wait)
            if scheduler.refresh_due and self._refresh_task is None:
                self._refresh_task = asyncio.get_running_loop().create_task(self._run_refresh())
        deadline = scheduler.next_deadline()
        if deadline is not None and self._waiters:
            delay = max(0.0, deadline - self._now())
            self._timer = asyncio.get_running_loop().call_later(delay, self._pump)

    async def _run_refresh(self) -> None:
        assert self._refresh is not None
        while True:
            try:
                limit = await self._refresh()
                break
            except Exception as exc:  # an HTTP failure: keep the budget shut and try again later
                logger.warning("could not refresh the session start limit (%s); retrying in %.0f s",
                               type(exc).__name__, self._refresh_retry)
                await asyncio.sleep(self._refresh_retry)
        self._refresh_task = None
        self.refreshes += 1
        logger.info("session start limit refreshed: %d of %d left", limit.remaining, limit.total)
        self.apply(limit)

    def __repr__(self) -> str:
        return f"IdentifyQueue({self.scheduler!r})"
