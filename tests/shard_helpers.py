"""Helpers shared by the Shard tests (tests/test_shard.py, tests/test_shard_io.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from gateway import Event, Shard

WAIT = 5.0  # generous bound for anything that should happen "soon"


def run(body: Callable[[], Awaitable[None]], timeout: float = 20.0) -> None:
    """Run one async test body with a hard upper bound."""
    asyncio.run(asyncio.wait_for(body(), timeout))


async def until(predicate: Callable[[], Any], timeout: float = WAIT, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def next_named(shard: Shard, *names: str, timeout: float = WAIT, seen: list[Event] | None = None) -> Event:
    """The next event whose name is in ``names``; the events skipped on the way are appended to ``seen``."""

    async def find() -> Event:
        while True:
            event = await shard.next_event()
            if event.name in names:
                return event
            if seen is not None:
                seen.append(event)

    return await asyncio.wait_for(find(), timeout)
