"""The sans-I/O core of :class:`gateway.group.ShardGroup`: generations of shards, the resharding switch, and what a
shard's stop means for the group. Nothing here does I/O or reads a clock; the identify budget lives in
:class:`gateway.ratelimit.IdentifyScheduler` (buckets, 5 s windows, the daily ``session_start_limit``).

A *generation* is one set of shards under one shard count. The group runs one delivering generation; a reshard
adds a *pending* one that identifies alongside it (through the same identify budget) and delivers nothing. When
every shard of the pending generation has been READY, :meth:`FleetCore.shard_ready` says "switch": the pending
generation delivers from that instant on and the old one is retired (its shards are closed with 1000). What a
consumer sees around the switch (``ShardGroup`` documents it):

- every event the old generation received before the switch instant, none after;
- every event the new generation received from the switch instant on, none before (its READYs included);
- so an event Discord sent to both generations in the last moments before the switch can appear twice (the old
  shard read it before the switch, the new one after) or not at all (the new one read it before, the old one after).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from .protocol import FATAL_CLOSE_CODES

__all__ = [
    "SHARDING_REQUIRED",
    "Generation",
    "StopVerdict",
    "FleetCore",
    "count_after_sharding_required",
    "check_shard_count",
    "check_shard_ids",
]

SHARDING_REQUIRED = 4011


def check_shard_count(shard_count: object, what: str = "shard_count") -> int:
    """``shard_count`` as an int >= 1; TypeError/ValueError otherwise."""
    if isinstance(shard_count, bool) or not isinstance(shard_count, int):
        raise TypeError(f"{what} must be an int, not {type(shard_count).__name__}")
    if shard_count < 1:
        raise ValueError(f"{what} must be at least 1, got {shard_count}")
    return shard_count


def check_shard_ids(shard_ids: Iterable[int], shard_count: int | None) -> tuple[int, ...]:
    """The sorted ids of a non-empty iterable of distinct ints in ``[0, shard_count)`` (any ints >= 0 when the
    count is not known yet); TypeError/ValueError otherwise."""
    if isinstance(shard_ids, (str, bytes)) or not isinstance(shard_ids, Iterable):
        raise TypeError(f"shard_ids must be an iterable of ints (e.g. range(0, 8)), not {type(shard_ids).__name__}")
    ids = list(shard_ids)
    for number in ids:
        if isinstance(number, bool) or not isinstance(number, int):
            raise TypeError(f"shard ids must be ints, not {type(number).__name__}")
        if number < 0 or (shard_count is not None and number >= shard_count):
            bound = f"[0, {shard_count})" if shard_count is not None else ">= 0"
            raise ValueError(f"shard id {number} is not in {bound}")
    if not ids:
        raise ValueError("shard_ids is empty")
    if len(set(ids)) != len(ids):
        raise ValueError("shard_ids has duplicates")
    return tuple(sorted(ids))


def count_after_sharding_required(current: int, recommended: int) -> int:
    """The shard count to move to after close 4011: Discord's recommendation when it is above ``current``, else
    twice ``current`` (a stale recommendation must not bring the group back to a count Discord just refused)."""
    return recommended if recommended > current else current * 2


@dataclass(eq=False)
class Generation:
    """One set of shards under one count. ``ready``: the ids that have been READY (or RESUMED) at least once;
    ``stopped``: the ids whose shard has stopped."""

    number: int
    shard_count: int
    shard_ids: tuple[int, ...]
    ready: set[int] = field(default_factory=set)
    stopped: set[int] = field(default_factory=set)

    @property
    def all_ready(self) -> bool:
        return len(self.ready) == len(self.shard_ids)

    def __repr__(self) -> str:
        return (f"Generation({self.number}, shard_count={self.shard_count}, shards={len(self.shard_ids)}, "
                f"ready={len(self.ready)})")


class StopVerdict(enum.Enum):
    """What a stopped shard means for the group."""

    IGNORE = "ignore"  # the group (or the user) closed it, or its generation is retired
    FATAL = "fatal"  # close the group and raise FatalCloseError from events()
    RESHARD = "reshard"  # 4011: move to a bigger shard count


class FleetCore:
    """Which generation delivers, when a pending one takes over, and what a shard's stop means.

    ``owns_all_shards``: the group runs every shard of its count (no explicit ``shard_ids``), so it may reshard on
    its own after 4011; a group running a part of a bot's shards cannot choose the other processes' parts, so 4011
    is fatal for it.
    """

    def __init__(self, shard_count: int, shard_ids: Iterable[int], *, owns_all_shards: bool) -> None:
        self.current = Generation(0, check_shard_count(shard_count), check_shard_ids(shard_ids, shard_count))
        self.pending: Generation | None = None
        self.owns_all_shards = owns_all_shards
        self.closing = False
        self.switches = 0
        self.reshard_requested = False
        """A RESHARD verdict was given and no reshard has begun since: further 4011s are ignored."""
        self._retired: set[int] = set()
        self._next_number = 1

    @property
    def resharding(self) -> bool:
        return self.pending is not None

    def is_live(self, generation: Generation) -> bool:
        """True for the delivering and the pending generation (not for retired or aborted ones)."""
        return generation is self.current or generation is self.pending

    def begin_reshard(self, shard_count: int, shard_ids: Iterable[int] | None = None) -> tuple[Generation, Generation | None]:
        """Start a pending generation (all of ``range(shard_count)`` unless ``shard_ids``); returns it and the
        pending generation it replaces (to be closed), if any. RuntimeError once the group is closing."""
        if self.closing:
            raise RuntimeError("the group is closing")
        count = check_shard_count(shard_count)
        ids = check_shard_ids(range(count) if shard_ids is None else shard_ids, count)
        aborted = self.pending
        if aborted is not None:
            self._retired.add(aborted.number)
        self.reshard_requested = False
        self.pending = Generation(self._next_number, count, ids)
        self._next_number += 1
        return self.pending, aborted

    def abort_reshard(self) -> Generation | None:
        """Drop the pending generation (to be closed); returns it, or None when there was none."""
        aborted, self.pending = self.pending, None
        if aborted is not None:
            self._retired.add(aborted.number)
        return aborted

    def shard_ready(self, generation: Generation, shard_id: int) -> bool:
        """Record that a shard was READY/RESUMED; True when this completes the pending generation: call
        :meth:`switch` now."""
        if not self.is_live(generation) or shard_id in generation.ready:
            return False
        generation.ready.add(shard_id)
        return generation is self.pending and generation.all_ready and not self.closing

    def switch(self) -> Generation:
        """Make the pending generation the delivering one; returns the retired generation (close it with 1000)."""
        if self.pending is None:
            raise RuntimeError("no reshard in progress")
        old, self.current, self.pending = self.current, self.pending, None
        self._retired.add(old.number)
        self.switches += 1
        return old

    def shard_stopped(self, generation: Generation, shard_id: int, code: int | None) -> StopVerdict:
        """What a shard of ``generation`` that stopped with fatal close ``code`` (None: closed by the user or the
        group) means for the group."""
        if shard_id in generation.stopped:
            return StopVerdict.IGNORE
        generation.stopped.add(shard_id)
        if self.closing or not self.is_live(generation) or code is None:
            return StopVerdict.IGNORE
        if code == SHARDING_REQUIRED and self.owns_all_shards:
            if self.reshard_requested or (generation is self.current and self.pending is not None):
                return StopVerdict.IGNORE  # the reshard asked for or under way replaces this shard
            self.reshard_requested = True
            return StopVerdict.RESHARD
        if code in FATAL_CLOSE_CODES:
            return StopVerdict.FATAL
        return StopVerdict.IGNORE

    def begin_close(self) -> list[Generation]:
        """The group is closing: no more switches; returns the live generations (pending first) to close."""
        self.closing = True
        live = [self.pending] if self.pending is not None else []
        return live + [self.current]

    def __repr__(self) -> str:
        return f"FleetCore(current={self.current!r}, pending={self.pending!r}, closing={self.closing})"
