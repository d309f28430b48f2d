"""ShardGroup benchmarks (issue 9): many shards in one process, and the cost of the merged stream.

``python -m bench.group [--quick] [--only scale,merge] [--json PATH]`` prints rows like ``bench/live.py``:

- **scale**: N shards (full: 1,000; quick: 100) as one ``ShardGroup`` in one client process against the
  ``FakeGateway`` in another process (``GET /gateway/bot`` recommends N, ``max_concurrency`` 16, the identify window
  shortened to ``--identify-delay``, default 0.25 s; the fake checks a fifth of it; heartbeat 1.5 s). Per compression (zlib-stream,
  zstd-stream, none): time from ``start()`` until every shard is ACTIVE against the theoretical minimum
  ``(ceil(N / 16) - 1) x window`` (the last bucket round cannot start earlier), and RSS growth per idle shard (RSS
  after every shard is ACTIVE, has heartbeated and its READY was read, minus RSS before ``start()``, over N). For
  zstd-stream the group then idles for a while: heartbeats arriving more than 10 % late at the server, and false
  zombie verdicts (reconnects + resumes + GATEWAY_CLOSE events), which must be 0.
- **merge**: the steady corpus through the receive path without sockets (``Shard._attach_replay``, as
  ``bench/suite.py``'s rows), reading ``event.name`` of every event: one lone ``Shard`` on the whole stream (the
  suite's "gateway route" row, rebuilt here by ``bench.suite._gateway_case``), and a ``ShardGroup`` of 16 shards
  each fed 1/16 of the same payloads (round-robin, each compressed in its own context, as 16 connections would be),
  frames interleaved shard by shard and read from ``group.next_event()``. A third row, 16 lone Shards on the same
  16 streams read shard by shard, separates the cost of 16 compression contexts from the cost of merging. Rounds are
  interleaved; ``ratio`` = group rate / single-shard rate (goal >= 0.9).

Nothing here asserts a timing; the machine's load shows in the min-max spread.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from bench.live import ROOT, _env, _heartbeat_stats, _quiet_logs, _raise_nofile, _row, _rss_bytes
from bench.live import _Server as _LiveServer

TOKEN = "bench-group-token"
MAX_CONCURRENCY = 16
HEARTBEAT_MS = 1500
MERGE_SHARDS = 16
BURST = 8

__all__ = ["run"]


# ----------------------------------------------------------------------------------------------------------------
# scale: the fake gateway (own process) and the group (worker process)
# ----------------------------------------------------------------------------------------------------------------


async def _fake_server(shards: int, identify_delay: float) -> None:
    _raise_nofile()
    from gateway.testing import FakeGateway
    from gateway.testing.server import FakeSessionStartLimit

    # The fake checks a fifth of the group's window: it timestamps an IDENTIFY when it gets round to it, which lags
    # the arrival by up to ~150 ms while this one process does the handshakes of hundreds of new connections.
    gw = FakeGateway(token=TOKEN, heartbeat_interval=HEARTBEAT_MS, recommended_shards=shards,
                     max_concurrency=MAX_CONCURRENCY, identify_delay=identify_delay * 0.2, close_timeout=2.0,
                     session_start_limit=FakeSessionStartLimit(total=1_000_000, remaining=1_000_000))
    await gw.start()
    print(f"PORT {gw.port}", flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        words = line.split()
        if not words or words[0] == "quit":
            break
        if words[0] == "stats":
            stats = _heartbeat_stats(gw, float(words[1]), float(words[2]), HEARTBEAT_MS / 1000.0)
            stats["violations"] = len(gw.identify_violations)
            stats["min_bucket_gap"] = min((b - a for times in gw.identify_times.values() for a, b in zip(times, times[1:])),
                                          default=None)
            print(json.dumps(stats), flush=True)
        elif words[0] == "reset":  # a new run: forget the last one's sessions and bucket times
            for connection in gw.connections:
                if connection._websocket is not None and connection._websocket.transport is not None:
                    connection._websocket.transport.abort()
            gw.connections.clear()
            gw.received.clear()
            gw.sessions.clear()
            gw.identify_times.clear()
            gw.identify_violations.clear()
            print(json.dumps({"reset": True}), flush=True)
    for connection in gw.connections:
        if connection._websocket is not None and connection._websocket.transport is not None:
            connection._websocket.transport.abort()
    await gw.stop()


def _worker_scale(port: int, compression: str | None, shards: int, identify_delay: float,
                  seconds: float) -> dict[str, Any]:
    _raise_nofile()
    _quiet_logs()
    from gateway import EventTypeFlags, Intents, ShardGroup, ShardStatus

    async def main() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        group = ShardGroup(TOKEN, int(Intents.GUILDS), api_url=f"http://127.0.0.1:{port}/api/v10",
                           compression=compression, identify_delay=identify_delay,
                           event_types=EventTypeFlags.READY | EventTypeFlags.GATEWAY_CLOSE)
        closes = [0]

        async def consume() -> None:
            async for event in group.events():
                if event.name == "GATEWAY_CLOSE":
                    closes[0] += 1

        gc.collect()
        rss0 = _rss_bytes()
        started = time.perf_counter()
        consumer = asyncio.ensure_future(consume())
        await group.start()
        # Client-side record of every grant (the shards ask only after their HELLO, so nothing was granted yet).
        queue: Any = group.identify_queue
        grants: list[tuple[float, int]] = []
        wait_turn = queue.wait_turn

        async def recorded(shard_id: int) -> None:
            await wait_turn(shard_id)
            grants.append((loop.time(), shard_id))

        queue.wait_turn = recorded
        deadline = time.monotonic() + 120 + shards * identify_delay
        while time.monotonic() < deadline:
            if all(status is ShardStatus.ACTIVE for status in group.status.values()):
                break
            await asyncio.sleep(0.02)
        ready_s = time.perf_counter() - started
        active = sum(1 for status in group.status.values() if status is ShardStatus.ACTIVE)
        await asyncio.sleep(HEARTBEAT_MS / 1000 * 1.5 + 0.3)  # every shard has heartbeated
        gc.collect()
        rss_per_shard = (_rss_bytes() - rss0) / shards
        last: dict[int, float] = {}
        min_gap = math.inf
        for at, shard_id in grants:
            bucket = shard_id % MAX_CONCURRENCY
            if bucket in last:
                min_gap = min(min_gap, at - last[bucket])
            last[bucket] = at
        out: dict[str, Any] = {"active": active, "ready_s": ready_s, "rss_per_shard": rss_per_shard,
                               "grants": len(grants), "min_grant_gap": None if math.isinf(min_gap) else min_gap}
        if seconds > 0:
            ru0, t0, w0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic(), time.perf_counter()
            await asyncio.sleep(seconds)
            ru1, t1, w1 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic(), time.perf_counter()
            out.update(t0=t0, t1=t1, wall_s=w1 - w0,
                       cpu_s=(ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime),
                       still_active=sum(1 for s in group.status.values() if s is ShardStatus.ACTIVE),
                       close_events=closes[0])
        await group.close(resumable=False)
        consumer.cancel()
        return out

    return asyncio.run(main())


class _Server(_LiveServer):
    """``python -m bench.group --serve-fake``: prints ``PORT n`` when ready, answers ``stats``/``reset``."""

    module = "bench.group"

    def __init__(self, *args: str) -> None:
        super().__init__("--serve-fake", *args)


def _worker(*args: str, timeout: float = 900) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "bench.group", "--worker", *args], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=timeout)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"worker {args[0]} failed ({done.returncode}): {' / '.join(tail)}")
    return json.loads(lines[-1])


def _scale_rows(quick: bool, say: Callable[[str], None], identify_delay: float) -> list[dict[str, Any]]:
    shards = 100 if quick else 1000
    seconds = 10.0 if quick else 60.0
    minimum = (math.ceil(shards / MAX_CONCURRENCY) - 1) * identify_delay
    rows: list[dict[str, Any]] = []
    with _Server("--shards", str(shards), "--identify-delay", str(identify_delay)) as server:
        say("scale: warm-up run (first connections of a fresh server process, not measured)")
        for compression in ("zstd-stream", "zlib-stream"):
            _worker("scale", "--port", str(server.port), "--compression", compression, "--shards", str(shards),
                    "--identify-delay", str(identify_delay), "--seconds", "0", timeout=900 + shards * identify_delay)
        for compression in ("zstd-stream", "zlib-stream", "none"):
            idle = seconds if compression == "zstd-stream" else 0.0
            say(f"scale: {shards} shards, {compression}, window {identify_delay} s"
                + (f", then {idle:.0f} s idle" if idle else ""))
            server.ask("reset")
            out = _worker("scale", "--port", str(server.port), "--compression", compression, "--shards", str(shards),
                          "--identify-delay", str(identify_delay), "--seconds", str(idle),
                          timeout=900 + shards * identify_delay)
            stats = server.ask(f"stats {out.get('t0', 0)} {out.get('t1', 0)}")
            all_active = out["active"] == shards
            cond = (f"{shards} shards as one ShardGroup, one process, FakeGateway in another, max_concurrency "
                    f"{MAX_CONCURRENCY}, window {identify_delay} s, heartbeat {HEARTBEAT_MS} ms; "
                    f"{out['active']}/{shards} ACTIVE; {out['grants']} identify grants, smallest gap between two "
                    f"grants of one bucket as their waiting tasks resumed {(out['min_grant_gap'] or 0) * 1000:.0f} ms; at the server (which "
                    f"timestamps when it gets round to a message): {stats['violations']} IDENTIFYs within "
                    f"{identify_delay * 0.2:g} s of their bucket's previous one, smallest gap "
                    f"{(stats['min_bucket_gap'] or 0) * 1000:.0f} ms")
            spaced = stats["violations"] == 0
            rows.append(_row("group scale", f"time to all READY, {compression}", "s", [out["ready_s"]],
                             all_active and spaced,
                             f"{cond}; theoretical minimum {minimum:.2f} s = (ceil({shards}/{MAX_CONCURRENCY}) - 1) "
                             f"x {identify_delay} s", ratio=out["ready_s"] / minimum if minimum else None))
            rows.append(_row("group scale", f"RSS per idle shard, {compression}", "KiB",
                             [out["rss_per_shard"] / 1024], all_active,
                             f"{cond}; RSS growth from before start() to all ACTIVE + heartbeated, over {shards}"))
            if idle:
                reconnects = stats["connections"] - shards
                zombies = reconnects + stats["resumes"] + (shards - out["still_active"]) + out["close_events"]
                gap_note = (f"{stats['gaps']} heartbeat gaps, median {stats['median_gap'] * 1000:.0f} ms, max "
                            f"{stats['max_gap'] * 1000:.0f} ms" if stats["gaps"] else "no heartbeat gaps recorded")
                ok = all_active and stats["gaps"] > 0
                rows.append(_row("group scale", "heartbeats > 10% late", "count", [stats["late"]], ok,
                                 f"{cond}; {out['wall_s']:.0f} s idle; server-side arrival gaps > 1.1 x interval; "
                                 f"{gap_note}"))
                rows.append(_row("group scale", "false zombie verdicts (reconnects + resumes + closes)", "count",
                                 [zombies], ok and zombies == 0,
                                 f"{cond}; {stats['connections']} connections, {stats['resumes']} resumes, "
                                 f"{out['close_events']} GATEWAY_CLOSE events; must be 0"))
                rows.append(_row("group scale", "client CPU per shard-second", "µs/shard/s",
                                 [out["cpu_s"] / (shards * out["wall_s"]) * 1e6], ok,
                                 f"{cond}; {out['cpu_s']:.2f} s CPU over {out['wall_s']:.1f} s idle"))
    return rows


# ----------------------------------------------------------------------------------------------------------------
# merge: the merged stream against one shard, without sockets
# ----------------------------------------------------------------------------------------------------------------


def _split_frames(payloads: list[bytes], compression: str, parts: int) -> list[list[bytes]]:
    """``payloads`` dealt round-robin to ``parts`` connections, each compressed in its own context."""
    from bench import corpus

    compress = corpus.compress_zlib if compression == "zlib-stream" else corpus.compress_zstd
    return [compress(payloads[part::parts]) for part in range(parts)]


def _merged_runner(frames: list[list[bytes]], compression: str, twins: dict[str, Any], expected: int,
                   lone: bool, burst: int = 1) -> tuple[Callable[[], int], asyncio.AbstractEventLoop]:
    """A run() consuming ``frames`` (one list per shard) through a ShardGroup (``lone``: 16 separate Shards),
    ``burst`` messages of one shard at a time (as one socket read carries several messages of one connection)."""
    from bench.suite import HELLO, OP_BINARY, OP_TEXT, READY
    from gateway import EventTypeFlags, IdentifyQueue, Intents, Shard, ShardGroup, ShardId, ShardStatus

    loop = asyncio.new_event_loop()
    count = len(frames)
    if lone:
        queue = IdentifyQueue(0)
        shards = [Shard(ShardId(n, count), TOKEN, int(Intents.all()), compression=compression, _twins=twins,
                        event_types=EventTypeFlags.all(), identify_queue=queue) for n in range(count)]
        for shard in shards:
            shard._attach_replay(loop)
    else:
        group = ShardGroup(TOKEN, int(Intents.all()), compression=compression, _twins=twins)
        shards = list(group._attach_replay(loop, count).values())
    for shard in shards:
        shard._on_message(OP_TEXT, HELLO)
    for _ in range(3):  # identify waits run and are granted (no socket: IDENTIFY goes nowhere)
        loop.run_until_complete(asyncio.sleep(0))
    for shard in shards:
        shard._on_message(OP_TEXT, READY)
        if shard.status is not ShardStatus.ACTIVE:
            raise RuntimeError(f"shard not active after READY: {shard!r}")
        shard._queue.clear()
    feeds = [shard._on_messages for shard in shards]  # what the connection calls with each socket read
    rounds = range(0, max(map(len, frames)), burst)
    reads = [[[(OP_BINARY, frame) for frame in frames[k][start:start + burst]] for start in rounds] for k in range(count)]

    if lone:
        queues = [shard._queue for shard in shards]  # type: ignore[misc]
        nexts = [shard.next_event for shard in shards]

        async def consume() -> int:
            n = 0
            for index in range(len(rounds)):
                for k in range(count):
                    feed, queue, next_event = feeds[k], queues[k], nexts[k]
                    feed(reads[k][index], 0)
                    while queue:
                        (await next_event()).name  # noqa: B018 - route: the name only
                        n += 1
            return n
    else:
        merged = group._queue
        next_event = group.next_event

        async def consume() -> int:
            n = 0
            for index in range(len(rounds)):
                for k in range(count):
                    feeds[k](reads[k][index], 0)
                    while merged:
                        (await next_event()).name  # noqa: B018 - route: the name only
                        n += 1
            return n

    def run() -> int:
        n = loop.run_until_complete(consume())
        if n != expected:
            raise RuntimeError(f"{n} events, expected {expected}")
        return n

    return run, loop


def _merge_rows(quick: bool, say: Callable[[str], None], rounds: int,
                twin_kinds: tuple[str, ...] = ("compiled", "pure")) -> list[dict[str, Any]]:
    from bench import suite

    scale = "small" if quick else "full"
    streams = suite.load_streams(scale, ["steady"])
    rows: list[dict[str, Any]] = []
    for twin in twin_kinds:
        twins = suite._twins(twin)
        if twins is None:
            continue
        for stream in streams:
            say(f"merge: {twin} {stream.compression}, {len(stream.payloads)} messages, {rounds} rounds")
            # The stream's first payloads are what the steady corpus starts with; the runners add HELLO + READY.
            single_case = suite._gateway_case(stream, twin, twins, "route")
            single_run = single_case.prepare(None)
            split = _split_frames(stream.payloads, stream.compression, MERGE_SHARDS)
            expected = len(stream.payloads)
            def build() -> dict[str, tuple[Callable[[], Any], asyncio.AbstractEventLoop | None]]:
                return {
                    "group": _merged_runner(split, stream.compression, twins, expected, lone=False),
                    "lone": _merged_runner(split, stream.compression, twins, expected, lone=True),
                    "group8": _merged_runner(split, stream.compression, twins, expected, lone=False, burst=BURST),
                    "lone8": _merged_runner(split, stream.compression, twins, expected, lone=True, burst=BURST),
                }

            runners = build()
            rates: dict[str, list[float]] = {"single": [], "group": [], "lone": [], "group8": [], "lone8": []}
            try:
                for _ in range(rounds):
                    order = [("single", single_run)] + [(name, runners[name][0]) for name in runners]
                    for name, runner in order:
                        # Each runner consumes its frames once; rebuild for the next round (setup not timed).
                        gc.collect()
                        start = time.perf_counter()
                        outcome = runner()
                        elapsed = time.perf_counter() - start
                        count = outcome.count if hasattr(outcome, "count") else outcome
                        if count != expected:
                            raise RuntimeError(f"{name}: {count} events, expected {expected}")
                        rates[name].append(expected / elapsed)
                    single_run = single_case.prepare(None)
                    for _, loop in runners.values():
                        loop.close()
                    runners = build()
            finally:
                for _, loop in runners.values():
                    loop.close()
                for cleanup in single_case.cleanup:
                    cleanup()
            single = statistics.median(rates["single"])
            cond = (f"steady {scale} corpus, {expected} messages, {twin} twins, no sockets, reading event.name; "
                    f"{rounds} interleaved rounds")
            rows.append(_row(f"merge {stream.compression}", f"one Shard, whole stream ({twin})", "events/s",
                             rates["single"], True, f"{cond}; bench.suite's route row"))
            rows.append(_row(f"merge {stream.compression}", f"ShardGroup of {MERGE_SHARDS}, group.next_event() "
                             f"({twin})", "events/s", rates["group"], True,
                             f"{cond}; 1/{MERGE_SHARDS} of the payloads per shard, own compression context each; "
                             f"goal >= 0.9x the one-Shard rate", ratio=statistics.median(rates["group"]) / single))
            rows.append(_row(f"merge {stream.compression}", f"{MERGE_SHARDS} lone Shards, same streams ({twin})",
                             "events/s", rates["lone"], True,
                             f"{cond}; the same {MERGE_SHARDS} streams read shard by shard (no merge): the cost of "
                             f"{MERGE_SHARDS} compression contexts alone", ratio=statistics.median(rates["lone"]) / single))
            rows.append(_row(f"merge {stream.compression}", f"ShardGroup of {MERGE_SHARDS}, {BURST} messages per "
                             f"shard turn ({twin})", "events/s", rates["group8"], True,
                             f"{cond}; as the group row, {BURST} messages of one shard at a time (one socket read of "
                             f"a busy connection carries several)", ratio=statistics.median(rates["group8"]) / single))
            rows.append(_row(f"merge {stream.compression}", f"{MERGE_SHARDS} lone Shards, {BURST} messages per turn "
                             f"({twin})", "events/s", rates["lone8"], True, f"{cond}; as the lone row, {BURST} "
                             f"messages per turn", ratio=statistics.median(rates["lone8"]) / single))
    return rows


# ----------------------------------------------------------------------------------------------------------------
# entry points
# ----------------------------------------------------------------------------------------------------------------


def run(quick: bool, only: set[str] | None = None, identify_delay: float = 0.25, rounds: int | None = None,
        progress: Callable[[str], None] | None = None,
        twin_kinds: tuple[str, ...] = ("compiled", "pure")) -> list[dict[str, Any]]:
    """All rows (see the module docstring); ``only``: a subset of {"scale", "merge"}."""
    started = time.perf_counter()

    def say(message: str) -> None:
        if progress is not None:
            progress(message)
        else:
            print(f"[group {time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr, flush=True)

    rows: list[dict[str, Any]] = []
    for name in ("merge", "scale"):
        if only is not None and name not in only:
            continue
        try:
            if name == "merge":
                rows.extend(_merge_rows(quick, say, rounds or (2 if quick else 5), twin_kinds))
            else:
                rows.extend(_scale_rows(quick, say, identify_delay))
        except Exception as exc:  # noqa: BLE001 - one broken part must not hide the other
            rows.append({"group": f"group {name}", "name": name, "unit": "", "median": 0.0, "low": 0.0, "high": 0.0,
                         "ok": False, "note": f"raised {type(exc).__name__}: {exc}", "ratio": None})
    say(f"done in {time.perf_counter() - started:.0f} s")
    return rows


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.group", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 shards, small corpus, 2 rounds")
    parser.add_argument("--only", help="comma-separated subset of scale,merge")
    parser.add_argument("--identify-delay", type=float, default=0.25, help="the shortened identify window (s)")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--twins", default="compiled,pure", help="merge rows: compiled,pure (default both)")
    parser.add_argument("--json", metavar="PATH")
    parser.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--compression", default="zstd-stream", help=argparse.SUPPRESS)
    parser.add_argument("--shards", type=int, default=100, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.serve_fake:
        _quiet_logs()
        asyncio.run(_fake_server(args.shards, args.identify_delay))
        return 0
    if args.worker == "scale":
        compression = None if args.compression == "none" else args.compression
        print(json.dumps(_worker_scale(args.port, compression, args.shards, args.identify_delay, args.seconds)),
              flush=True)
        return 0
    if args.worker:
        parser.error(f"unknown worker {args.worker}")

    only = {part.strip() for part in args.only.split(",")} if args.only else None
    rows = run(args.quick, only, args.identify_delay, args.rounds,
               twin_kinds=tuple(part.strip() for part in args.twins.split(",") if part.strip()))
    for row in rows:
        ratio = "" if row.get("ratio") is None else f"  x{row['ratio']:.2f}"
        print(f"{'ok ' if row['ok'] else 'BAD'} {row['group']:20} | {row['name']:55} | {row['median']:>12,.2f} "
              f"[{row['low']:,.2f} - {row['high']:,.2f}] {row['unit']}{ratio}\n      {row['note']}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0 if all(row["ok"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(_main())
