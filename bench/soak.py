"""Fault soak: a real ``Shard`` against ``FakeGateway`` under a stream of injected faults, checked for exactly-once
ordered delivery and bounded resources.

``python -m bench.soak --minutes M --twins both --compression both`` runs one leg per (twin, compression) pair, all
legs at once in one event loop (each with its own FakeGateway and TCP proxy), for M minutes. Every leg:

- dispatches ``MESSAGE_CREATE`` events numbered 0, 1, 2, ... (payloads from ~40 B to ``--max-payload``, 25 MB by
  default, plus 10-byte non-dispatch payloads) and checks that the consumer sees every number exactly once, in order;
- injects faults at random (``--fault-every`` seconds on average, each once the shard is ACTIVE again; the slowest
  recovery per kind is reported): op 7, op 9 true, op 9 false (after the events in
  flight were delivered: Discord does not replay across sessions), zombie (ACKs withheld until the shard
  reconnects), a corrupt compressed frame, invalid JSON, a close with a resumable code, a TCP drop between frames
  and one in the middle of a frame (the proxy cuts a chunk in half), and delivery through the proxy in slow chunks
  or one byte at a time (for the first 256 KiB of a connection);
- samples the process every 5 s: RSS (after ``gc.collect`` and ``malloc_trim``), open file descriptors, asyncio tasks,
  the shard's queued events, and passes when no event was lost, duplicated or reordered, every leg drains, the queue
  never held more than ``MAX_QUEUED`` events, fds and tasks are back to where they started, and the median RSS of the
  last third of the samples after warm-up (the first 20 % of the run, at least 60 s) is at most ``BOUNDS["rss_mib"]``
  above that of the first third.

The TCP proxy sits between shard and fake (the fake's ``resume_gateway_url`` is pointed at it), so slow delivery and
mid-frame drops need nothing from the fake. The fake's own buffers (replay, sent/received logs) are trimmed as
events are delivered so that its memory does not hide or fake a leak of the shard's.

``--cycle`` injects the faults in a fixed round-robin order instead (every kind at least once in a short run: the CI
smoke run ``.ci/soak-smoke`` and ``tests/test_soak.py`` use it). ``--during-replay`` does not wait for ACTIVE between
faults, so they may also land in a handshake or in a RESUME that is still replaying the backlog (on loopback that
window is milliseconds: a 3-minute run with a fault every 0.5 s per leg saw none there); the highest backoff attempt
is recorded at every GATEWAY_CLOSE. Exit status 0 when every check passed.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import importlib
import json
import logging
import os
import random
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from gateway import Intents, Shard, ShardId, ShardStatus
from gateway.testing import FakeGateway

#: Growth allowed: RSS median of the last third of the samples after warm-up over the first third; fds and tasks at
#: the end (the legs closed) over the start.
BOUNDS = {
    "rss_mib": 96.0,  # glibc keeps freed pages of multi-MB messages; a leak of one 25 MB payload per fault would show
    "fds": 4,
    "tasks": 4,
}
#: Most events a leg's queue may hold at any sample (the consumer keeps up; a stuck consumer would show).
MAX_QUEUED = 50_000
FAULTS = (
    "op7", "op9_true", "op9_false", "zombie", "corrupt", "invalid_json", "close_resumable", "drop",
    "drop_mid_frame", "slow", "one_byte",
)
RESUMABLE_CODES = (4000, 4001, 4002, 4003, 4005, 4008, 1001, 1011, 1012)
HEARTBEAT_MS = 5_000
ONE_BYTE_BUDGET = 256 * 1024
SAMPLE_EVERY = 5.0

#: Samples before this share of the run (and before WARM_UP_MIN seconds) are warm-up: RSS is compared after it.
WARM_UP_SHARE = 0.2
WARM_UP_MIN = 60.0


class LogCounter(logging.Handler):
    """Counts the library's warnings by message template (the faults make it warn by design) instead of printing."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[f"{record.name}: {str(record.msg)[:70]}"] += 1


try:
    _libc: Any = ctypes.CDLL("libc.so.6")
except OSError:  # pragma: no cover - not glibc
    _libc = None


def _rss_mib() -> float:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # pragma: no cover - no procfs
        return 0.0


def _fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:  # pragma: no cover
        return 0


def load_twins(name: str) -> dict[str, ModuleType]:
    """``compiled`` or ``pure``: the three hot-module twins, as ``Shard(_twins=...)`` takes them."""
    modules = {}
    for module in ("framing", "inflate", "envelope"):
        path = f"gateway._speedups._{module}" if name == "compiled" else f"gateway._{module}_py"
        modules[module] = importlib.import_module(path)
    return modules


class _NoWaitIdentifyQueue:
    """Identify at once: the soak is about faults, not Discord's identify rate."""

    async def wait_turn(self, shard_id: int) -> None:
        return None


# -- TCP proxy ------------------------------------------------------------------------------------------------


class Proxy:
    """Loopback TCP proxy shard -> fake. Server-to-client delivery per connection: ``normal``, ``slow`` (chunks of
    1-4096 bytes with pauses) or ``one_byte`` (one byte per write for the first 256 KiB). ``drop_mid_frame()`` makes
    the next server-to-client chunk of at least 2 bytes go out half, then both sides are aborted."""

    def __init__(self, target_port: int, rng: random.Random) -> None:
        self.target_port = target_port
        self.rng = rng
        self.port = 0
        self.next_mode = "normal"
        self._drop_next = False
        self._server: asyncio.AbstractServer | None = None
        self._pumps: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.mid_frame_drops = 0
        self.bytes_one_by_one = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._pumps):
            task.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)

    def drop_mid_frame(self) -> None:
        self._drop_next = True

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        mode, self.next_mode = self.next_mode, "normal"
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_writer.transport.abort()
            return
        self._writers |= {client_writer, server_writer}
        upstream = asyncio.ensure_future(self._copy(client_reader, server_writer, client_writer))
        downstream = asyncio.ensure_future(self._deliver(server_reader, client_writer, server_writer, mode))
        self._pumps |= {upstream, downstream}
        try:
            await asyncio.gather(upstream, downstream, return_exceptions=True)
        finally:
            self._pumps -= {upstream, downstream}
            self._writers -= {client_writer, server_writer}
            for writer in (client_writer, server_writer):
                writer.transport.abort()

    async def _copy(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, other: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()
            other.transport.abort()

    async def _deliver(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, other: asyncio.StreamWriter,
                       mode: str) -> None:
        rng, budget = self.rng, ONE_BYTE_BUDGET
        try:
            while data := await reader.read(65536):
                if self._drop_next and len(data) >= 2:
                    self._drop_next = False
                    writer.write(data[: len(data) // 2])
                    await writer.drain()
                    self.mid_frame_drops += 1
                    break
                if mode == "one_byte" and budget > 0:
                    head, data = data[:budget], data[budget:]
                    budget -= len(head)
                    for index in range(len(head)):
                        writer.write(head[index : index + 1])
                        await writer.drain()
                        await asyncio.sleep(0)
                    self.bytes_one_by_one += len(head)
                if data and mode == "slow":
                    position = 0
                    while position < len(data):
                        step = rng.randint(1, 4096)
                        writer.write(data[position : position + step])
                        position += step
                        await writer.drain()
                        await asyncio.sleep(0.002 if rng.random() < 0.05 else 0)
                elif data:
                    writer.write(data)
                    await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()
            other.transport.abort()


# -- one leg --------------------------------------------------------------------------------------------------


@dataclass
class LegResult:
    name: str
    dispatched: int = 0
    delivered: int = 0
    order_errors: list[str] = field(default_factory=list)
    faults: Counter[str] = field(default_factory=Counter)
    sizes: Counter[str] = field(default_factory=Counter)
    connections: int = 0
    resumes: int = 0
    identifies: int = 0
    payload_errors: int = 0
    connect_failures: int = 0
    max_queued: int = 0
    max_attempt: int = 0
    recovery: dict[str, float] = field(default_factory=dict)  # slowest return to ACTIVE after each fault kind, s
    drained: bool = False
    error: str | None = None

    @property
    def ok(self) -> bool:
        return (self.error is None and not self.order_errors and self.drained and self.delivered == self.dispatched
                and self.max_queued <= MAX_QUEUED)


def _size_bucket(size: int) -> str:
    for limit, label in ((100, "<100B"), (10_000, "<10KB"), (1_000_000, "<1MB"), (10_000_000, "<10MB")):
        if size < limit:
            return label
    return ">=10MB"


class Leg:
    """One shard, one fake gateway, one proxy; a producer, a consumer and a fault injector."""

    def __init__(self, twins_name: str, compression: str, seed: int, max_payload: int, fault_every: float,
                 cycle: bool, heartbeat_ms: int = HEARTBEAT_MS, during_replay: bool = False) -> None:
        self.result = LegResult(f"{twins_name}/{compression}")
        self.twins = load_twins(twins_name)
        self.compression = compression
        self.rng = random.Random(f"{seed}:{twins_name}:{compression}")
        self.max_payload = max_payload
        self.fault_every = fault_every
        self.cycle = cycle
        self.during_replay = during_replay
        self.heartbeat_ms = heartbeat_ms
        self.gateway = FakeGateway(token="soak-token", heartbeat_interval=heartbeat_ms, replay_buffer_size=1_000_000,
                                   session_timeout=3600.0, close_timeout=2.0)
        self.proxy: Proxy | None = None
        self.shard: Shard | None = None
        self.next_number = 0
        self.last_seen = -1
        self.delivered_seq = 0  # highest sequence the consumer received on the current session
        self.producing = asyncio.Event()
        self.producing.set()
        self.stopping = False

    async def start(self) -> None:
        gw = self.gateway
        await gw.start()
        fake_port = gw.port
        self.proxy = Proxy(fake_port, random.Random(self.rng.random()))
        await self.proxy.start()
        gw.port = self.proxy.port  # READY's resume_gateway_url then points at the proxy too
        self.shard = Shard(ShardId(0, 1), "soak-token", Intents.GUILDS | Intents.GUILD_MESSAGES,
                           gateway_url=gw.url, compression=self.compression, identify_queue=_NoWaitIdentifyQueue(),
                           rng=random.Random(self.rng.random()).random, connect_timeout=5.0, _twins=self.twins)
        self.shard.start()
        await gw.wait_for_session(timeout=30)

    # -- producer / consumer -----------------------------------------------------------------------------------

    def _payload_size(self) -> int:
        roll = self.rng.random()
        if roll < 0.0015 and self.max_payload >= 1_000_000:
            return self.max_payload  # the largest (25 MB by default) now and then
        if roll < 0.02:
            return self.rng.randint(100_000, min(self.max_payload, 1_500_000))
        return int(self.rng.expovariate(1 / 600))

    async def produce(self) -> None:
        gw = self.gateway
        while not self.stopping:
            await self.producing.wait()
            if gw.session is None:
                await asyncio.sleep(0.01)
                continue
            burst = self.rng.randint(1, 40)
            for _ in range(burst):
                size = self._payload_size()
                data: dict[str, Any] = {"n": self.next_number}
                if size > 40:
                    data["pad"] = "x" * size
                try:
                    gw.dispatch_nowait("MESSAGE_CREATE", data)
                except RuntimeError:  # no current session (op 9 false in progress)
                    break
                self.next_number += 1
                self.result.dispatched = self.next_number
                self.result.sizes[_size_bucket(size + 45)] += 1
                if size > 1_000_000:
                    await asyncio.sleep(1.0)  # let the big one through before piling more on it
            await asyncio.sleep(self.rng.uniform(0.005, 0.05))

    async def consume(self) -> None:
        assert self.shard is not None
        result = self.result
        async for event in self.shard.events():
            result.max_queued = max(result.max_queued, self.shard.queued_events)
            if event.name != "MESSAGE_CREATE":
                if event.name == "GATEWAY_CLOSE":  # the count the next connect waits by
                    result.max_attempt = max(result.max_attempt, self.shard.attempt)
                continue
            number = event.data["n"]
            if number != self.last_seen + 1:
                if len(result.order_errors) < 20:
                    result.order_errors.append(f"got n={number} after n={self.last_seen} (seq {event.seq})")
            self.last_seen = max(self.last_seen, number)
            result.delivered += 1
            if event.seq is not None:
                self.delivered_seq = event.seq

    def trim_fake(self) -> None:
        """Drop what the fake keeps that the shard can no longer need: replay entries at or below the delivered
        sequence, logs of payloads, and payloads kept by ended connections."""
        gw = self.gateway
        session = gw.session
        if session is not None:
            while session.replay and session.replay[0][0] <= self.delivered_seq:
                session.replay.popleft()
        for old in gw.sessions.values():
            if old is not session:
                old.replay.clear()
        gw.received.clear()
        gw._op_cursor.clear()
        for connection in gw.connections:
            connection.received.clear()
            connection.heartbeats.clear()
            connection.sent.clear()
            if connection.closed:  # an ended connection's compressor (zstd: ~1 MiB) and websocket are dead weight
                connection._zlib = connection._zstd = connection._websocket = None
                connection._send_times.clear()

    async def quiesce(self, timeout: float) -> bool:
        """Wait until every dispatched event was delivered."""
        deadline = time.monotonic() + timeout
        while self.last_seen + 1 < self.next_number:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    # -- faults ------------------------------------------------------------------------------------------------

    async def active(self, timeout: float) -> bool:
        """Wait until the shard is ACTIVE again (READY or RESUMED received)."""
        assert self.shard is not None
        deadline = time.monotonic() + timeout
        while self.shard.status is not ShardStatus.ACTIVE:
            if time.monotonic() > deadline or self.stopping:
                return False
            await asyncio.sleep(0.01)
        return True

    async def inject(self) -> None:
        """Inject a fault every ``fault_every`` s on average, each once the shard is ACTIVE again after the last one
        (with ``during_replay``, without waiting: a fault may then cut a RESUME that is still replaying the backlog).
        """
        index = 0
        while not self.stopping:
            await asyncio.sleep(self.rng.expovariate(1 / self.fault_every))
            if self.stopping:
                break
            kind = FAULTS[index % len(FAULTS)] if self.cycle else self.rng.choice(FAULTS)
            index += 1
            started = time.monotonic()
            try:
                done = await self.fault(kind)
            except (RuntimeError, TimeoutError):
                done = False  # no live connection at that moment
            if done:
                self.result.faults[kind] += 1
            if not self.during_replay and not await self.active(300):
                if not self.stopping:
                    self.result.error = f"not ACTIVE within 300 s after fault {kind}"
                break
            if done and not self.during_replay:  # (without the wait there is no recovery time to report)
                elapsed = time.monotonic() - started
                self.result.recovery[kind] = round(max(self.result.recovery.get(kind, 0.0), elapsed), 2)

    async def fault(self, kind: str) -> bool:
        gw, proxy = self.gateway, self.proxy
        assert proxy is not None
        if kind in ("slow", "one_byte"):
            proxy.next_mode = kind
            return await gw.reconnect()  # the next connection gets that delivery
        if gw.connection is None or gw.session is None:
            return False
        if kind == "op7":
            return await gw.reconnect()
        if kind == "op9_true":
            return await gw.invalidate_session(True)
        if kind == "op9_false":
            self.producing.clear()
            try:
                if not await self.quiesce(60):
                    return False
                old = gw.session
                if not await gw.invalidate_session(False):
                    return False
                await gw.wait_for(lambda g: g.session is not None and g.session is not old, timeout=30)
                self.delivered_seq = 0
                return True
            finally:
                self.producing.set()
        if kind == "zombie":
            connections = len(gw.connections)
            gw.ack_heartbeats = False
            try:
                await gw.wait_for(lambda g: len(g.connections) > connections, timeout=4 * self.heartbeat_ms / 1000)
            finally:
                gw.ack_heartbeats = True
            return True
        if kind == "corrupt":
            return await gw.send_corrupt()
        if kind == "invalid_json":
            return await gw.send_raw(self.rng.choice((b"{not json", b'{"op":', b"[1,2]", b'{"op":12}')))
        if kind == "close_resumable":
            return await gw.close(self.rng.choice(RESUMABLE_CODES), "soak")
        if kind == "drop":
            return await gw.drop()
        if kind == "drop_mid_frame":
            before = proxy.mid_frame_drops
            proxy.drop_mid_frame()
            gw.dispatch_nowait("MESSAGE_CREATE", {"n": self.next_number, "pad": "y" * 3000})
            self.next_number += 1
            self.result.dispatched = self.next_number
            await asyncio.sleep(0.2)
            return proxy.mid_frame_drops > before
        raise ValueError(kind)

    async def finish(self) -> None:
        """Stop faults and production, let everything drain, then close."""
        self.stopping = True
        self.producing.set()
        self.gateway.ack_heartbeats = True
        assert self.proxy is not None and self.shard is not None
        self.proxy.next_mode = "normal"
        self.result.drained = await self.quiesce(180)
        gw, result = self.gateway, self.result
        result.connections = len(gw.connections)
        result.resumes = sum(session.resumes for session in gw.sessions.values())
        result.identifies = len(gw.sessions)
        result.payload_errors = self.shard.payload_errors
        result.connect_failures = self.shard.connect_failures
        result.faults["mid_frame_drops_seen_by_proxy"] = self.proxy.mid_frame_drops
        result.faults["bytes_delivered_one_by_one"] = self.proxy.bytes_one_by_one
        await self.shard.close()
        await self.gateway.stop()
        await self.proxy.stop()


# -- the run --------------------------------------------------------------------------------------------------


@dataclass
class SoakReport:
    minutes: float
    legs: list[LegResult]
    samples: list[dict[str, float]]
    growth: dict[str, float]
    ok: bool
    problems: list[str]
    warnings: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "minutes": self.minutes,
            "ok": self.ok,
            "problems": self.problems,
            "growth": self.growth,
            "bounds": BOUNDS,
            "warnings": self.warnings,
            "legs": [
                {
                    "name": leg.name, "ok": leg.ok, "dispatched": leg.dispatched, "delivered": leg.delivered,
                    "order_errors": leg.order_errors, "faults": dict(leg.faults), "sizes": dict(leg.sizes),
                    "connections": leg.connections, "resumes": leg.resumes, "sessions": leg.identifies,
                    "payload_errors": leg.payload_errors, "connect_failures": leg.connect_failures,
                    "max_queued": leg.max_queued, "max_attempt": leg.max_attempt, "recovery_s": leg.recovery,
                    "drained": leg.drained, "error": leg.error,
                }
                for leg in self.legs
            ],
            "samples": self.samples,
        }

    def render(self) -> str:
        lines = [f"soak: {self.minutes:g} min, {len(self.legs)} legs: {'PASS' if self.ok else 'FAIL'}"]
        for leg in self.legs:
            faults = ", ".join(f"{kind} {count}" for kind, count in sorted(leg.faults.items()))
            sizes = ", ".join(f"{bucket} {count}" for bucket, count in sorted(leg.sizes.items()))
            lines.append(
                f"  {leg.name:22s} {'ok  ' if leg.ok else 'FAIL'} dispatched {leg.dispatched:,} delivered "
                f"{leg.delivered:,} in order once each: {not leg.order_errors}; connections {leg.connections}, "
                f"resumes {leg.resumes}, sessions {leg.identifies}, payload errors {leg.payload_errors}, "
                f"max queued {leg.max_queued}"
            )
            lines.append(f"      faults: {faults}")
            lines.append(f"      payload sizes: {sizes}")
            lines.append("      slowest recovery to ACTIVE (s): " + ", ".join(
                f"{kind} {seconds:g}" for kind, seconds in sorted(leg.recovery.items())) +
                f"; highest backoff attempt {leg.max_attempt}")
            for problem in leg.order_errors[:3]:
                lines.append(f"      order: {problem}")
            if leg.error:
                lines.append(f"      error: {leg.error}")
        lines.append("  growth (RSS: median of the last third after warm-up minus the first; fds/tasks: end minus start): " + ", ".join(
            f"{key} {value:+.1f} (bound {BOUNDS[key]:g})" for key, value in self.growth.items()))
        if "rss_mib" not in self.growth:
            lines.append(f"  RSS growth not judged: the run is shorter than the {WARM_UP_MIN:g} s warm-up")
        if self.samples:
            peak = max(sample["rss_mib"] for sample in self.samples)
            lines.append(f"  RSS peak {peak:.0f} MiB; tasks max {max(s['tasks'] for s in self.samples):.0f}; "
                         f"fds max {max(s['fds'] for s in self.samples):.0f}")
        if self.warnings:
            lines.append("  library warnings (expected under faults): " + "; ".join(
                f"{count} x {text}" for text, count in sorted(self.warnings.items(), key=lambda item: -item[1])[:8]))
        lines.extend(f"  problem: {problem}" for problem in self.problems)
        return "\n".join(lines)


def _sample(legs: list[Leg], started: float) -> dict[str, float]:
    for leg in legs:
        leg.trim_fake()
    gc.collect()
    if _libc is not None:
        _libc.malloc_trim(0)
    return {
        "t": round(time.monotonic() - started, 1),
        "rss_mib": round(_rss_mib(), 1),
        "fds": float(_fds()),
        "tasks": float(len(asyncio.all_tasks())),
        "queued": float(sum(leg.shard.queued_events for leg in legs if leg.shard is not None)),
    }


async def soak(minutes: float, twins: list[str], compressions: list[str], *, seed: int = 1,
               max_payload: int = 25_000_000, fault_every: float = 1.0, cycle: bool = False,
               progress: bool = False, heartbeat_ms: int = HEARTBEAT_MS, during_replay: bool = False) -> SoakReport:
    """Run the soak; see the module docstring. Returns the report (``report.ok``)."""
    counter = LogCounter()
    library_logger = logging.getLogger("gateway")
    library_logger.addHandler(counter)
    propagate, library_logger.propagate = library_logger.propagate, False
    try:
        return await _soak(minutes, twins, compressions, seed, max_payload, fault_every, cycle, progress, counter,
                           heartbeat_ms, during_replay)
    finally:
        library_logger.removeHandler(counter)
        library_logger.propagate = propagate


async def _soak(minutes: float, twins: list[str], compressions: list[str], seed: int, max_payload: int,
                fault_every: float, cycle: bool, progress: bool, counter: LogCounter, heartbeat_ms: int,
                during_replay: bool = False) -> SoakReport:
    legs = [Leg(name, compression, seed, max_payload, fault_every, cycle, heartbeat_ms, during_replay)
            for name in twins for compression in compressions]
    started = time.monotonic()
    baseline = {"fds": float(_fds()), "tasks": float(len(asyncio.all_tasks()))}
    samples: list[dict[str, float]] = []
    workers: list[asyncio.Task[None]] = []
    problems: list[str] = []
    try:
        await asyncio.gather(*(leg.start() for leg in legs))
        for leg in legs:
            workers += [asyncio.ensure_future(leg.produce()), asyncio.ensure_future(leg.inject())]
        consumers = [asyncio.ensure_future(leg.consume()) for leg in legs]
        end = started + minutes * 60
        while time.monotonic() < end:
            await asyncio.sleep(min(SAMPLE_EVERY, max(0.0, end - time.monotonic())))
            samples.append(_sample(legs, started))
            for leg in legs:
                if leg.shard is not None:
                    leg.result.max_queued = max(leg.result.max_queued, leg.shard.queued_events)
                    leg.result.max_attempt = max(leg.result.max_attempt, leg.shard.attempt)
            failed = [task for task in consumers if task.done()]
            for task in failed:
                exc = task.exception()
                raise RuntimeError(f"a consumer ended early: {exc!r}")
            if progress:
                last = samples[-1]
                print(f"[soak] {last['t']:7.0f} s  rss {last['rss_mib']:.0f} MiB  fds {last['fds']:.0f}  tasks "
                      f"{last['tasks']:.0f}  " + "  ".join(
                          f"{leg.result.name} {leg.result.delivered}/{leg.result.dispatched} "
                          f"f{sum(leg.result.faults.values())} a{leg.shard.attempt if leg.shard else '-'}"
                          for leg in legs), flush=True)
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        await asyncio.gather(*(leg.finish() for leg in legs))
        await asyncio.gather(*consumers, return_exceptions=True)
    except Exception as exc:  # noqa: BLE001 - reported, the run fails
        problems.append(f"{type(exc).__name__}: {exc}")
        for task in workers:
            task.cancel()
    await asyncio.sleep(0.1)
    samples.append(_sample([], started))
    warm_up = max(WARM_UP_SHARE * minutes * 60, WARM_UP_MIN)
    warm = [sample["rss_mib"] for sample in samples[:-1] if sample["t"] >= warm_up]
    growth = {"fds": samples[-1]["fds"] - baseline["fds"], "tasks": samples[-1]["tasks"] - baseline["tasks"]}
    if len(warm) >= 3:
        # Medians of the first and last third after warm-up: single samples swing by the 25 MB messages in flight.
        third = len(warm) // 3
        growth["rss_mib"] = statistics.median(warm[-third:]) - statistics.median(warm[:third])
    for key, value in growth.items():
        if value > BOUNDS[key]:
            problems.append(f"{key} grew by {value:.1f} (bound {BOUNDS[key]:g})")
    results = [leg.result for leg in legs]
    for result in results:
        if not result.ok:
            problems.append(f"leg {result.name} failed (delivered {result.delivered} of {result.dispatched}, "
                            f"drained {result.drained}, order errors {len(result.order_errors)})")
    return SoakReport(minutes, results, samples, growth, not problems, problems, dict(counter.counts))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--twins", choices=("compiled", "pure", "both"), default="both")
    parser.add_argument("--compression", choices=("zlib-stream", "zstd-stream", "both"), default="both")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-payload", type=int, default=25_000_000, help="largest payload in bytes (25 MB)")
    parser.add_argument("--fault-every", type=float, default=1.0, help="mean seconds between faults per leg")
    parser.add_argument("--cycle", action="store_true", help="faults in a fixed round-robin order")
    parser.add_argument("--heartbeat-ms", type=int, default=HEARTBEAT_MS,
                        help="the fake's heartbeat interval (a zombie is detected within two)")
    parser.add_argument("--during-replay", action="store_true",
                        help="do not wait for ACTIVE between faults (they may cut a RESUME's replay)")
    parser.add_argument("--json", help="write the full report (with samples) to this file")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)
    twins = ["compiled", "pure"] if args.twins == "both" else [args.twins]
    compressions = ["zlib-stream", "zstd-stream"] if args.compression == "both" else [args.compression]
    report = asyncio.run(soak(args.minutes, twins, compressions, seed=args.seed, max_payload=args.max_payload,
                              fault_every=args.fault_every, cycle=args.cycle, progress=not args.quiet,
                              heartbeat_ms=args.heartbeat_ms, during_replay=args.during_replay))
    print(report.render())
    if args.json:
        with open(args.json, "w") as out:
            json.dump(report.to_json(), out, indent=1)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
