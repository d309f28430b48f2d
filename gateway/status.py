"""Live status of a group of shards: a pure snapshot -> text core plus a thin asyncio task that draws it.

- :class:`StatusSource` is all the view reads: ``shard_count``, ``shards`` (a mapping of shard number to an object
  with ``status``, ``latency`` and ``session``, as :class:`gateway.Shard` has) and ``identify_queue`` (an
  :class:`gateway.ratelimit.IdentifyQueue`, or None). :class:`GroupSource` adapts a ``ShardGroup`` (whose count
  is unknown before it starts); :class:`ShardListSource` makes one of plain shards.
- :class:`StatusTracker` turns successive readings into a :class:`Snapshot` (time passed in, no I/O): events/s
  from the growth of each shard's session sequence (every dispatch received, including those the filter drops;
  nothing is added to the receive path), new sessions from session ids, and exact reconnect and resume counts
  from the consumer's events when it passes them to :meth:`StatusTracker.observe` (RESUMED, and READY after a
  shard's first; the others cost two comparisons).
- :func:`render_live` (a few lines for a terminal) and :func:`render_line` (one plain log line, printable
  characters only) are pure functions of a snapshot.
- :func:`run_status` is the driver (:func:`status_view`: the same around a block, handing out ``observe``): every ``interval`` seconds it takes a snapshot and, on a terminal, redraws the
  block in place with two ANSI sequences (cursor to the start of a previous line, erase line); elsewhere it writes
  one plain line every ``plain_interval`` seconds. No terminal library is used: two escape sequences do not earn a
  dependency, and the plain mode is the fallback anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO, runtime_checkable

from .flags import EventTypeFlags
from .models import ShardStatus

__all__ = [
    "StatusSource", "ShardListSource", "GroupSource", "StatusTracker", "Snapshot", "IdentifyState", "render_live", "render_line",
    "run_status", "status_view", "shared_terminal",
]

# How many shards the live view lists one by one; above this it shows counts and only the shards not ACTIVE.
LIST_EACH_UP_TO = 8
# The live view redraws at most this often (seconds) when READY / RESUMED events arrive in a burst.
MIN_REDRAW_GAP = 0.1
# events/s is measured over at least this many seconds.
RATE_WINDOW = 1.0
_STATUS_ORDER = (ShardStatus.ACTIVE, ShardStatus.IDENTIFYING, ShardStatus.RESUMING, ShardStatus.DISCONNECTED,
                 ShardStatus.FATALLY_CLOSED)
_SHORT = {ShardStatus.ACTIVE: "ACTIVE", ShardStatus.IDENTIFYING: "IDENTIFYING", ShardStatus.RESUMING: "RESUMING",
          ShardStatus.DISCONNECTED: "DISCONNECTED", ShardStatus.FATALLY_CLOSED: "FATAL"}


# ----------------------------------------------------------------------------------------------------------------
# what the view reads
# ----------------------------------------------------------------------------------------------------------------


class _SessionLike(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def sequence(self) -> int: ...


class _LatencyLike(Protocol):
    @property
    def recent(self) -> tuple[float, ...]: ...


class ShardLike(Protocol):
    """What the view reads of one shard (``gateway.Shard`` has all of it)."""

    @property
    def status(self) -> ShardStatus: ...
    @property
    def latency(self) -> _LatencyLike: ...
    @property
    def session(self) -> _SessionLike | None: ...


class _SchedulerLike(Protocol):
    """The public read side of :class:`gateway.ratelimit.IdentifyScheduler`. Read when present (a newer scheduler
    has them): ``waiting_shards()`` (which shards wait, else only how many), ``total`` (the budget's size),
    ``reset_at`` or ``exhausted_until`` (when the budget refills, in the scheduler's clock)."""

    @property
    def max_concurrency(self) -> int: ...
    @property
    def remaining(self) -> int | None: ...
    @property
    def waiting(self) -> int: ...
    def bucket_of(self, shard_id: int) -> int: ...
    def next_deadline(self) -> float | None: ...


class IdentifyQueueLike(Protocol):
    @property
    def scheduler(self) -> _SchedulerLike: ...


@runtime_checkable
class StatusSource(Protocol):
    """Everything the status view needs of a group of shards."""

    @property
    def shard_count(self) -> int: ...
    @property
    def shards(self) -> Mapping[int, ShardLike]: ...
    @property
    def identify_queue(self) -> IdentifyQueueLike | None: ...


class ShardListSource:
    """A :class:`StatusSource` over plain shards (``gateway.Shard`` objects) sharing one identify queue."""

    def __init__(self, shards: Iterable[Any], identify_queue: IdentifyQueueLike | None = None,
                 shard_count: int | None = None) -> None:
        self._shards = {int(shard.id.number): shard for shard in shards}
        self._queue = identify_queue
        self._count = shard_count if shard_count is not None else len(self._shards)

    @property
    def shard_count(self) -> int:
        return self._count

    @property
    def shards(self) -> Mapping[int, ShardLike]:
        return self._shards

    @property
    def identify_queue(self) -> IdentifyQueueLike | None:
        return self._queue


class GroupSource:
    """The :class:`StatusSource` of a :class:`gateway.ShardGroup`: its delivering shards (a generation being
    resharded in is not shown until it takes over), its shard count (before ``start()`` has fetched the recommended
    count: the shards built so far), and its identify queue when that queue's state can be read (an
    :class:`~gateway.ratelimit.IdentifyQueue`; another kind, e.g. a Redis queue, shows as "no queue")."""

    def __init__(self, group: Any) -> None:
        self.group = group

    @property
    def shard_count(self) -> int:
        try:
            return int(self.group.shard_count)
        except RuntimeError:  # not started: the recommended count is not known yet
            return len(self.group.shards)

    @property
    def shards(self) -> Mapping[int, ShardLike]:
        shards: Mapping[int, ShardLike] = self.group.shards
        return shards

    @property
    def closed(self) -> bool:
        return bool(getattr(self.group, "closed", False))

    @property
    def identify_queue(self) -> IdentifyQueueLike | None:
        queue = self.group.identify_queue
        return queue if queue is not None and hasattr(queue, "scheduler") else None


# ----------------------------------------------------------------------------------------------------------------
# the snapshot (plain data) and the tracker that builds it
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IdentifyState:
    """The identify queue at one instant. Times are seconds from the snapshot (``None``: not applicable)."""

    max_concurrency: int
    waiting: dict[int, list[int]]  # bucket -> waiting shard ids (sorted; empty when the scheduler cannot tell)
    waiting_count: int  # shards waiting for their turn
    next_slot_in: float | None  # when the next IDENTIFY may go (0: now); None when nothing waits or it is blocked
    remaining: int | None  # session_start budget left (None: no budget known)
    total: int | None
    reset_in: float | None  # when the budget refills
    reset_at: float | None  # the same as a Unix time (wall clock)


@dataclass(frozen=True)
class Snapshot:
    """The group at one instant, as the renderers show it."""

    elapsed: float  # seconds since the tracker started
    shard_count: int
    statuses: dict[int, ShardStatus]
    latencies_ms: dict[int, float]  # newest heartbeat round trip per connected shard that has one
    events_per_second: float  # over the last RATE_WINDOW seconds or more
    events_total: int  # dispatches received since the tracker started (from session sequences)
    new_sessions: int  # sessions seen to start (each is one IDENTIFY's READY), from session ids
    reconnects: int | None  # reconnections: RESUMED + READY after a shard's first (None: no events observed)
    resumes: int | None  # RESUMED events observed
    identify: IdentifyState | None = None
    wall_time: float = field(default=0.0)
    closed: bool = False  # the source says it has closed

    @property
    def ready(self) -> int:
        return sum(1 for status in self.statuses.values() if status is ShardStatus.ACTIVE)

    def counts(self) -> dict[ShardStatus, int]:
        """Shards per status, in lifecycle order, statuses with no shard left out."""
        out = {status: 0 for status in _STATUS_ORDER}
        for status in self.statuses.values():
            out[status] = out.get(status, 0) + 1
        return {status: count for status, count in out.items() if count}


class StatusTracker:
    """Builds snapshots of ``source``: call :meth:`snapshot` with the time; pass events to :meth:`observe` for exact
    reconnect and resume counts. Pure: no clock and no I/O of its own."""

    def __init__(self, source: StatusSource, now: float) -> None:
        self.source = source
        self._started = now
        self._rate_ref = (now, 0)  # (time, events_total) the rate is measured from
        self._rate = 0.0
        self._pending = 0  # dispatches read by sample() since the last snapshot
        self._last_seen: dict[int, tuple[str | None, int]] = {}
        self._events_total = 0
        self._new_sessions = 0
        self.observing = False
        """True when the consumer passes its events to :meth:`observe` (else reconnects and resumes show as unknown)."""
        self._reconnects = 0
        self._resumes = 0
        self._ready_shards: set[int] = set()
        self.on_change: Callable[[], None] | None = None
        """Called when an observed READY or RESUMED changes the picture (the live driver redraws then)."""
        self._read()  # the baseline: what happened before the tracker started is not counted

    def observe(self, event: Any) -> None:
        """Count reconnections from the consumer's events: every RESUMED, and every READY after a shard's first
        (a new session on a new connection); other events cost two comparisons. Set :attr:`observing` too."""
        name = event.name
        if name == "RESUMED":
            self._resumes += 1
            self._reconnects += 1
        elif name == "READY":
            if event.shard_id in self._ready_shards:
                self._reconnects += 1
            else:
                self._ready_shards.add(event.shard_id)
        else:
            return
        if self.on_change is not None:
            self.on_change()

    def _read(self) -> int:
        """Read every shard's session; return the dispatches received since the last reading."""
        received = 0
        seen = self._last_seen
        for number, shard in self.source.shards.items():
            session = shard.session
            session_id, sequence = (None, 0) if session is None else (session.id, session.sequence)
            previous = seen.get(number)
            if previous is None:
                seen[number] = (session_id, sequence)
                continue
            if session_id is not None and session_id != previous[0]:
                self._new_sessions += 1
                received += sequence  # a new session counts from 0
            elif session_id is not None and sequence > previous[1]:
                received += sequence - previous[1]
            if session_id is not None:
                seen[number] = (session_id, sequence)
        return received

    def sample(self) -> None:
        """Read the shards' sequences without building a snapshot, so that snapshots far apart miss nothing (a
        session that ends loses only what it received since the last reading)."""
        self._pending += self._read()

    def snapshot(self, now: float, wall_time: float | None = None) -> Snapshot:
        """Read the source at ``now`` (the identify queue's clock, e.g. ``loop.time()``); ``wall_time``: the same
        instant as a Unix time, for the budget's reset time (defaults to ``time.time()``)."""
        received = self._pending + self._read()
        self._pending = 0
        self._events_total += received
        rate_since, rate_total = self._rate_ref
        if now - rate_since >= RATE_WINDOW:  # a rate over at least a second, however often the view redraws
            self._rate = (self._events_total - rate_total) / (now - rate_since)
            self._rate_ref = (now, self._events_total)
        statuses: dict[int, ShardStatus] = {}
        latencies: dict[int, float] = {}
        for number, shard in sorted(self.source.shards.items()):
            status = statuses[number] = shard.status
            recent = shard.latency.recent
            if recent and status is not ShardStatus.DISCONNECTED and status is not ShardStatus.FATALLY_CLOSED:
                latencies[number] = recent[0] * 1000.0
        wall = time.time() if wall_time is None else wall_time
        return Snapshot(
            elapsed=now - self._started, shard_count=self.source.shard_count, statuses=statuses,
            latencies_ms=latencies, events_per_second=self._rate,
            events_total=self._events_total, new_sessions=self._new_sessions,
            reconnects=self._reconnects if self.observing else None,
            resumes=self._resumes if self.observing else None,
            identify=_identify_state(self.source.identify_queue, now, wall), wall_time=wall,
            closed=bool(getattr(self.source, "closed", False)),
        )


def _identify_state(queue: IdentifyQueueLike | None, now: float, wall: float) -> IdentifyState | None:
    if queue is None:
        return None
    scheduler = queue.scheduler
    waiting: dict[int, list[int]] = {}
    waiting_shards = getattr(scheduler, "waiting_shards", None)
    if waiting_shards is not None:
        for shard_id in waiting_shards():
            waiting.setdefault(scheduler.bucket_of(shard_id), []).append(shard_id)
        for shards in waiting.values():
            shards.sort()
    waiting_count = scheduler.waiting
    deadline = scheduler.next_deadline()
    next_slot = None if deadline is None else max(0.0, deadline - now) if math.isfinite(deadline) else 0.0
    reset_at = getattr(scheduler, "reset_at", None)  # the budget's window end, when the scheduler tells it
    if reset_at is None:
        reset_at = getattr(scheduler, "exhausted_until", None)
    reset_in = None if reset_at is None else max(0.0, reset_at - now)
    return IdentifyState(
        max_concurrency=scheduler.max_concurrency, waiting=dict(sorted(waiting.items())),
        waiting_count=waiting_count, next_slot_in=next_slot,
        remaining=scheduler.remaining, total=getattr(scheduler, "total", None), reset_in=reset_in,
        reset_at=None if reset_in is None else wall + reset_in,
    )


# ----------------------------------------------------------------------------------------------------------------
# rendering (pure)
# ----------------------------------------------------------------------------------------------------------------


def _ranges(numbers: Iterable[int]) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``"0-2,5,7-8"``."""
    runs: list[list[int]] = []
    for number in sorted(numbers):
        if runs and number == runs[-1][1] + 1:
            runs[-1][1] = number
        else:
            runs.append([number, number])
    return ",".join(str(start) if start == end else f"{start}-{end}" for start, end in runs)


def _duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f}s"
    seconds = int(round(seconds))
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _clock(unix_time: float) -> str:
    return time.strftime("%H:%M:%S UTC", time.gmtime(unix_time))


def _counts_text(snapshot: Snapshot) -> str:
    return " ".join(f"{_SHORT[status]} {count}" for status, count in snapshot.counts().items())


def _latency_text(snapshot: Snapshot) -> str:
    values = list(snapshot.latencies_ms.values())
    if not values:
        return "latency -"
    return (f"latency min/median/max {min(values):.0f}/{statistics.median(values):.0f}/{max(values):.0f} ms"
            f" ({len(values)} shards)")


def _identify_text(state: IdentifyState | None) -> str:
    if state is None:
        return "identify: no queue"
    waiting = state.waiting_count
    if waiting:
        buckets = " ".join(f"bucket {bucket}: {_ranges(shards)}" for bucket, shards in state.waiting.items())
        buckets = f" ({buckets})" if buckets else ""
        if state.next_slot_in is None:
            slot = "blocked until the budget is refreshed"
        elif state.next_slot_in <= 0:
            slot = "next slot now"
        else:
            slot = f"next slot in {_duration(state.next_slot_in)}"
        text = f"identify: {waiting} waiting{buckets}, {slot}"
    else:
        text = "identify: none waiting"
    return text + f", max_concurrency {state.max_concurrency}"


def _budget_text(state: IdentifyState | None) -> str:
    if state is None or state.remaining is None:
        return "session starts: budget unknown"
    text = f"session starts: {state.remaining}" + ("" if state.total is None else f"/{state.total}") + " left"
    if state.reset_in is not None and state.reset_at is not None:
        text += f", resets in {_duration(state.reset_in)} ({_clock(state.reset_at)})"
    return text


def _counters_text(snapshot: Snapshot) -> str:
    reconnects = "-" if snapshot.reconnects is None else str(snapshot.reconnects)
    resumes = "-" if snapshot.resumes is None else str(snapshot.resumes)
    return (f"events {snapshot.events_per_second:,.0f}/s ({snapshot.events_total:,} total)  sessions "
            f"{snapshot.new_sessions}  reconnects {reconnects}  resumes {resumes}")


def _not_active_text(snapshot: Snapshot) -> str:
    by_status: dict[ShardStatus, list[int]] = {}
    for number, status in snapshot.statuses.items():
        if status is not ShardStatus.ACTIVE:
            by_status.setdefault(status, []).append(number)
    if not by_status:
        return "not active: none"
    return "not active: " + "  ".join(f"{_SHORT[status]} {_ranges(by_status[status])}"
                                      for status in _STATUS_ORDER if status in by_status)


def render_live(snapshot: Snapshot, width: int = 100) -> list[str]:
    """The terminal view: a handful of lines, each cut to ``width`` characters. No control characters."""
    head = (f"gateway  {snapshot.ready}/{snapshot.shard_count} shards READY  ({_counts_text(snapshot)})"
            f"  up {_duration(snapshot.elapsed)}" + ("  closed" if snapshot.closed else ""))
    lines = [head, "  " + _identify_text(snapshot.identify), "  " + _budget_text(snapshot.identify),
             "  " + _counters_text(snapshot)]
    if len(snapshot.statuses) <= LIST_EACH_UP_TO:
        cells = []
        for number, status in snapshot.statuses.items():
            latency = snapshot.latencies_ms.get(number)
            cells.append(f"#{number} {_SHORT[status]}" + ("" if latency is None else f" {latency:.0f}ms"))
        lines.append("  shards: " + "  ".join(cells))
    else:
        lines.append("  " + _latency_text(snapshot))
        lines.append("  " + _not_active_text(snapshot))
    return [line if len(line) <= width else line[: max(1, width - 1)] + "…" for line in lines]


def render_line(snapshot: Snapshot) -> str:
    """One plain log line with the same facts (printable ASCII only: for logs and pipes)."""
    parts = [f"{snapshot.ready}/{snapshot.shard_count} READY ({_counts_text(snapshot)})"
             + (" closed" if snapshot.closed else ""), _not_active_text(snapshot),
             _identify_text(snapshot.identify), _budget_text(snapshot.identify), _counters_text(snapshot),
             _latency_text(snapshot)]
    text = "status: " + "; ".join(parts)
    return "".join(ch if " " <= ch <= "~" else "?" for ch in text)


# ----------------------------------------------------------------------------------------------------------------
# the driver
# ----------------------------------------------------------------------------------------------------------------


def shared_terminal(stream: TextIO) -> bool:
    """True when ``stream`` is a terminal that standard output also writes to (then a redrawn block would be torn
    by the event lines, and the plain mode is used)."""
    try:
        stat_out, stat_stream = os.fstat(sys.stdout.fileno()), os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return os.isatty(sys.stdout.fileno()) and (stat_out.st_dev, stat_out.st_ino, stat_out.st_rdev) == (
        stat_stream.st_dev, stat_stream.st_ino, stat_stream.st_rdev)


async def run_status(source: StatusSource | StatusTracker, stream: TextIO | None = None, *,
                     interval: float = 1.0, plain_interval: float = 10.0, live: bool | None = None) -> None:
    """Show the status of ``source`` on ``stream`` (default stderr) until cancelled; one last drawing on the way out.

    ``live``: redraw in place (default: when ``stream`` is a terminal that stdout does not share), every ``interval``
    seconds and as soon as an observed READY or RESUMED changes the picture (at most every ``MIN_REDRAW_GAP``);
    otherwise one plain line every ``plain_interval`` seconds. Reads counters only: nothing is added to the receive
    path."""
    out = sys.stderr if stream is None else stream
    if live is None:
        try:
            live = out.isatty() and not shared_terminal(out)
        except (AttributeError, ValueError):
            live = False
    loop = asyncio.get_running_loop()
    tracker = source if isinstance(source, StatusTracker) else StatusTracker(source, loop.time())
    drawn = 0
    last_plain = -math.inf

    def draw(final: bool = False) -> None:
        nonlocal drawn, last_plain
        now = loop.time()
        if not live and not final and now - last_plain < plain_interval:
            tracker.sample()
            return
        snapshot = tracker.snapshot(now)
        if live:
            width = max(40, _terminal_width(out))
            lines = render_live(snapshot, width)
            text = (f"\x1b[{drawn}F" if drawn else "") + "".join(f"\x1b[2K{line}\n" for line in lines)
            if drawn > len(lines):
                text += "\x1b[J"  # erase what a longer previous block left below
            drawn = len(lines)
        else:
            text = time.strftime("%Y-%m-%dT%H:%M:%SZ ", time.gmtime(snapshot.wall_time)) + render_line(snapshot) + "\n"
            last_plain = now
        try:
            out.write(text)
            out.flush()
        except (OSError, ValueError):
            pass  # a closed stderr must not take the bot down

    changed = asyncio.Event()
    if live:
        tracker.on_change = changed.set
    try:
        while True:
            drawn_at = loop.time()
            draw()
            changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(changed.wait(), interval)
                await asyncio.sleep(max(0.0, drawn_at + MIN_REDRAW_GAP - loop.time()))  # a burst draws once
    finally:
        tracker.on_change = None
        draw(final=True)


# What ``observe`` must see for exact reconnect and resume counts.
_OBSERVED = EventTypeFlags.RESUMED | EventTypeFlags.READY


@contextlib.asynccontextmanager
async def status_view(source: StatusSource, *, event_types: int | None = None, stream: TextIO | None = None,
                      interval: float = 1.0, plain_interval: float = 10.0,
                      live: bool | None = None) -> AsyncIterator[Callable[[Any], None] | None]:
    """Show the status of ``source`` while the block runs (see :func:`run_status`); the last drawing is made on the
    way out. Yields ``observe``, to be called with every event the consumer takes, when ``event_types`` (the
    consumer's filter; None: every event) lets RESUMED and READY through; else None, and the view
    shows the reconnect and resume counts as unknown ("-")."""
    tracker = StatusTracker(source, asyncio.get_running_loop().time())
    exact = event_types is None or int(event_types) & int(_OBSERVED) == int(_OBSERVED)
    tracker.observing = exact
    task = asyncio.ensure_future(run_status(tracker, stream, interval=interval, plain_interval=plain_interval,
                                            live=live))
    await asyncio.sleep(0)  # the first drawing, and the driver's ``finally`` armed for the last one
    try:
        yield tracker.observe if exact else None
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _terminal_width(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 100
