"""Does the live status view slow the receive path? A same-run check on ``bench/live.py``'s end-to-end setup.

``python -m bench.status_overhead [--scale small|full] [--rounds N] [--compression zstd-stream]`` starts the blast
server of ``bench/live.py`` (its own process: HELLO, READY, then the recorded steady stream as fast as the socket
takes it) and, in this process, consumes the whole stream with one compiled ``Shard`` reading ``event.name``, in
interleaved rounds of these variants:

- ``plain``: no status task (what ``bench/live.py`` measures);
- ``status 1 s``: ``gateway.status.run_status`` drawing a live view every second (the CLI's setting) into memory;
- ``status 10 ms``: the same, redrawing 100 times as often (a stress case: each draw reads every shard);
- ``status 10 ms + observe``: and the consumer hands every event to ``StatusTracker.observe`` (as the CLI does,
  for the exact reconnect and resume counts).

Prints events/s (median, min-max) per variant and its ratio to ``plain`` from the same run. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import io
import statistics
import sys
import time
from typing import Any

from bench import corpus, live
from gateway.status import ShardListSource, StatusTracker, run_status

VARIANTS = ("plain", "status 1 s", "status 10 ms", "status 10 ms + observe")


class _Screen(io.StringIO):
    """An in-memory terminal: the view is drawn exactly as on a tty, escape sequences included."""

    def isatty(self) -> bool:
        return True


async def _one(url: str, compression: str, expected: int, variant: str) -> tuple[float, int]:
    shard = live._ours_shard(url, compression, live._twins("compiled"))
    interval = {"status 1 s": 1.0}.get(variant, 0.01)
    tracker = StatusTracker(ShardListSource([shard]), asyncio.get_running_loop().time())
    screen = _Screen()
    drawer = None if variant == "plain" else asyncio.ensure_future(run_status(tracker, screen, interval=interval,
                                                                              live=True))
    observe = tracker.observe if variant.endswith("observe") else None
    count, first, last = 0, 0.0, 0.0
    perf = time.perf_counter
    try:
        async for event in shard.events():
            now = perf()
            if not count:
                first = now
            event.name  # noqa: B018 - what the live e2e rows read
            if observe is not None:
                observe(event)
            count += 1
            last = now
            if count >= expected:
                break
    finally:
        if drawer is not None:
            drawer.cancel()
            await asyncio.gather(drawer, return_exceptions=True)
        await shard.close()
    if count != expected:
        raise RuntimeError(f"{variant}: received {count} events, sent {expected}")
    return (count - 1) / (last - first), screen.getvalue().count("\x1b[2K")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.status_overhead", description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="full", choices=sorted(corpus.SCALES))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--compression", default="zstd-stream", choices=list(live.COMPRESSIONS))
    args = parser.parse_args(argv)

    payloads = corpus.load_corpus(corpus.ensure_corpus(args.scale), "steady").payloads
    expected = 1 + sum(1 for p in payloads if live._dispatch_name(p) is not None)
    del payloads
    rates: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    drawn: dict[str, int] = {variant: 0 for variant in VARIANTS}
    with live._Server("--serve-blast", "--scale", args.scale, "--big", "none") as server:
        url = f"ws://127.0.0.1:{server.port}/steady"

        async def rounds() -> None:
            for index in range(args.rounds):
                order = VARIANTS[index % len(VARIANTS):] + VARIANTS[:index % len(VARIANTS)]
                for variant in order:
                    gc.collect()
                    rate, lines = await _one(url, args.compression, expected, variant)
                    rates[variant].append(rate)
                    drawn[variant] += lines

        asyncio.run(rounds())
    plain = statistics.median(rates["plain"])
    print(f"status view overhead: {expected:,} events ({args.scale} steady, {args.compression}), one compiled "
          f"Shard over loopback TCP, {args.rounds} interleaved rounds")
    print("| variant | events/s median | min - max | x plain | lines drawn |\n|---|---:|---:|---:|---:|")
    for variant in VARIANTS:
        values = rates[variant]
        median = statistics.median(values)
        print(f"| {variant} | {median:,.0f} | {min(values):,.0f} - {max(values):,.0f} | {median / plain:.3f} | "
              f"{drawn[variant]} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
