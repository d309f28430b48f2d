"""Throughput suite: every receive path on the same recorded frames, interleaved, each row checked for correctness.

A *case* is one row: a ``prepare()`` that builds fresh state (a new decompression context, a new shard, ...) outside
the timing, and returns a ``run()`` that processes one whole recorded stream and returns an :class:`Outcome`
(events seen, a sample of them, the last one). ``run_suite`` times ``run()`` once per case per round, the cases of a
round in round-robin order (rotated by one every round, so no case always runs first or right after a heavy one),
and checks every outcome against the corpus (event count and sampled payloads/data compared with ``json.loads`` of
the source payloads).

Rows (see ``bench/README.md`` for what each one means):

- baselines: ``naive`` (stdlib zlib / zstandard + stdlib json, per message), ``floor`` (a C inflater + the fastest JSON
  parser mapped over the frames with no Python between), ``inflate only`` (the C inflater alone);
- ``gateway <twin>: <workload>``: this package through ``Shard._on_messages``, the callback the connection calls
  with the messages of each socket read (here :data:`FRAMES_PER_READ` frames per call: the fast lane, inflate +
  envelope scan + filter + ``Event`` in the twin, or ``ShardProtocol.receive`` for what the lane hands back), and
  ``await shard.next_event()``, on a real ``Shard`` attached to an event loop without a socket
  (``Shard._attach_replay``), workloads route/touch/full/filtered;
- peers: hikari (``GatewayShardImpl._poll_events`` over its real transport with a fake aiohttp websocket, stub event
  manager) and discord.py (``DiscordWebSocket.received_message``, stub parsers), when installed.

Every row is a dict: group, name, unit, median, low, high, ok, note, ratio (median / the naive row of the same group),
plus descriptive keys (kind, set, compression, twin, workload, peer, values, us_per_event).
"""

from __future__ import annotations

import asyncio
import collections
import gc
import importlib
import importlib.util
import json
import logging
import os
import platform
import statistics
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterable

from . import corpus as corpus_mod

__all__ = [
    "Stream",
    "Case",
    "Outcome",
    "load_streams",
    "build_cases",
    "run_suite",
    "streams_from_payloads",
    "breakdown",
    "machine_info",
    "check_targets",
    "profile_cases",
    "TWIN_SETS",
]

ZLIB_SUFFIX = b"\x00\x00\xff\xff"
SAMPLES = 48  # events kept per run for the payload/data comparison
TOUCH_KEY = "guild_id"
HELLO = b'{"t":null,"s":null,"op":10,"d":{"heartbeat_interval":41250,"_trace":["[\\"gateway-prd-bench\\"]"]}}'
# A READY for the steady sets (the steady corpus continues a session whose READY is in the startup set). Sequence 1:
# every steady sequence is larger, so none is taken for a replayed duplicate.
READY = (
    b'{"t":"READY","s":1,"op":0,"d":{"v":10,"user":{"id":"1300000000000000001","username":"Gatekeeper",'
    b'"discriminator":"0001","bot":true,"avatar":null},"guilds":[],"session_id":"0123456789abcdef0123456789abcdef",'
    b'"resume_gateway_url":"wss://gateway-us-east1-b.discord.gg","shard":[0,1],"application":{"id":"1300000000000000001",'
    b'"flags":0}}}'
)
OP_TEXT, OP_BINARY = 1, 2
WORKLOADS = ("route", "touch", "full", "filtered")
FILTERED_NAMES = frozenset(("MESSAGE_CREATE", "INTERACTION_CREATE"))


def _twins(kind: str) -> dict[str, ModuleType] | None:
    """The twin modules ``Shard(_twins=...)`` takes; None when that kind cannot be imported (not compiled)."""
    try:
        if kind == "pure":
            return {m: importlib.import_module(f"gateway._{m}_py") for m in ("framing", "inflate", "envelope")}
        return {m: importlib.import_module(f"gateway._speedups._{m}") for m in ("framing", "inflate", "envelope")}
    except ImportError:
        return None


TWIN_SETS = ("compiled", "pure")


# ----------------------------------------------------------------------------------------------------------------
# Corpus streams
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class Stream:
    """One recorded websocket stream and what it must decode to."""

    set_name: str  # "steady" | "startup"
    compression: str  # "zlib-stream" | "zstd-stream"
    frames: list[bytes]
    payloads: list[bytes]
    names: list[str]  # per payload: t, or GATEWAY_* for non-dispatch ops (as the shard names them)
    ops: list[int]
    unit: str  # "events/s" or "MB/s"
    _ref: dict[int, Any] = field(default_factory=dict, repr=False)

    @property
    def group(self) -> str:
        return f"{self.set_name} {self.compression}"

    @property
    def raw_bytes(self) -> int:
        return sum(map(len, self.payloads))

    @property
    def complete_frames(self) -> bool:
        """True when every websocket message holds whole gateway payloads (no zlib message split in parts)."""
        if self.compression != "zlib-stream":
            return True
        return len(self.frames) == len(self.payloads) and all(f.endswith(ZLIB_SUFFIX) for f in self.frames)

    def ref_d(self, index: int) -> Any:
        """``d`` of payload ``index`` decoded by the standard library (the reference for every check)."""
        if index not in self._ref:
            self._ref[index] = json.loads(self.payloads[index]).get("d")
        return self._ref[index]

    def positions(self, workload: str) -> list[int]:
        """Indices of the payloads a gateway row with this workload delivers, in order."""
        if workload == "filtered":
            return [i for i, name in enumerate(self.names) if name in FILTERED_NAMES]
        return list(range(len(self.payloads)))

    def dispatch_positions(self) -> list[int]:
        return [i for i, op in enumerate(self.ops) if op == 0]

    def work(self) -> float:
        """What one pass over the whole stream processes: gateway messages received (every row handles all of them,
        whatever it delivers), or MB of decompressed payload."""
        return self.raw_bytes / 1e6 if self.unit == "MB/s" else float(len(self.payloads))


_GATEWAY_OP_NAMES = {1: "GATEWAY_HEARTBEAT", 7: "GATEWAY_RECONNECT", 9: "GATEWAY_INVALIDATE_SESSION", 10: "GATEWAY_HELLO",
                     11: "GATEWAY_HEARTBEAT_ACK"}


def _describe(payloads: list[bytes]) -> tuple[list[str], list[int]]:
    names, ops = [], []
    for payload in payloads:
        envelope = json.loads(payload)
        op = envelope["op"]
        ops.append(op)
        names.append(envelope["t"] if op == 0 else _GATEWAY_OP_NAMES.get(op, "UNKNOWN"))
    return names, ops


def load_streams(scale: str = "small", sets: Iterable[str] = ("steady", "startup"), *,
                 directory: str | os.PathLike[str] | None = None, limit: int | None = None) -> list[Stream]:
    """Load (generating on demand) the corpus of ``scale`` as streams: one per set and compression.

    ``limit`` keeps only the first N messages of every stream (a prefix of a stream is a valid stream)."""
    target = corpus_mod.ensure_corpus(scale, directory)
    out = []
    for set_name in sets:
        corpus = corpus_mod.load_corpus(target, set_name)
        payloads = corpus.payloads[:limit] if limit else corpus.payloads
        names, ops = _describe(payloads)
        unit = "MB/s" if set_name == "startup" else "events/s"
        for compression, frames in (("zlib-stream", corpus.zlib), ("zstd-stream", corpus.zstd)):
            if limit:
                if len(frames) != len(corpus.payloads):
                    raise ValueError("limit needs one websocket message per payload")
                frames = frames[:limit]
            out.append(Stream(set_name, compression, frames, payloads, names, ops, unit))
    return out


def streams_from_payloads(set_name: str, payloads: list[bytes], *, zlib_split_every: int | None = None) -> list[Stream]:
    """Streams (zlib-stream and zstd-stream) compressed here from ``payloads`` (tests: a tiny generated corpus).
    ``zlib_split_every=K`` sends every K-th zlib payload in several websocket messages."""
    names, ops = _describe(payloads)
    unit = "MB/s" if set_name == "startup" else "events/s"
    zlib_frames = corpus_mod.compress_zlib(payloads, split_every=zlib_split_every)
    zstd_frames = corpus_mod.compress_zstd(payloads)
    return [Stream(set_name, "zlib-stream", zlib_frames, payloads, names, ops, unit),
            Stream(set_name, "zstd-stream", zstd_frames, payloads, names, ops, unit)]


# ----------------------------------------------------------------------------------------------------------------
# Cases
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    count: int  # events (or decoded messages) the run produced
    samples: list[tuple[int, Any]]  # (position in delivery order, the event / decoded object)
    last: Any = None


@dataclass
class Case:
    group: str
    name: str
    kind: str  # baseline | gateway | peer
    stream: Stream
    prepare: Callable[[int | None], Callable[[], Outcome]]  # limit (None = whole stream) -> run
    check: Callable[[Outcome], list[str]]
    tags: dict[str, Any] = field(default_factory=dict)
    skip: str | None = None  # reason the row cannot run (peer missing, ...)
    verify: Callable[[], list[str]] | None = None  # untimed extra checks, run once
    cleanup: list[Callable[[], None]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.group} / {self.name}"


#: Frames per ``Shard._on_messages`` call in the package rows: what one socket read hands the shard. A busy shard's
#: reads hold many messages (the end-to-end rows over TCP see up to hundreds); a quiet one's a single message.
FRAMES_PER_READ = 16


def socket_reads(frames: list[bytes], per_read: int = FRAMES_PER_READ) -> list[list[tuple[int, bytes]]]:
    """``frames`` as ``FrameReader.feed`` would return them from reads of ``per_read`` frames each."""
    return [[(OP_BINARY, frame) for frame in frames[i:i + per_read]] for i in range(0, len(frames), per_read)]


def _sample_step(expected: int) -> int:
    return max(1, expected // SAMPLES)


# -- baselines ---------------------------------------------------------------------------------------------------


def _json_parsers() -> list[tuple[str, Callable[[bytes], Any]]]:
    out = []
    try:
        import orjson

        out.append(("orjson", orjson.loads))
    except ImportError:
        pass
    try:
        import simdjson

        out.append(("simdjson", simdjson.loads))
    except ImportError:
        pass
    return out


def _zlib_inflaters() -> list[tuple[str, Callable[[], Any]]]:
    """C zlib-stream inflaters: (name, factory of a decompressobj)."""
    out: list[tuple[str, Callable[[], Any]]] = []
    try:
        from zlib_ng import zlib_ng

        out.append(("zlib-ng", zlib_ng.decompressobj))
    except ImportError:
        pass
    try:
        from isal import isal_zlib

        out.append(("isal", isal_zlib.decompressobj))
    except ImportError:
        pass
    out.append(("zlib (stdlib)", zlib.decompressobj))
    return out


def _zstd_inflaters() -> list[tuple[str, Callable[[], Any]]]:
    out: list[tuple[str, Callable[[], Any]]] = []
    try:
        import zstandard

        out.append(("zstandard", lambda: zstandard.ZstdDecompressor().decompressobj()))
    except ImportError:
        pass
    try:
        from backports import zstd as backports_zstd

        out.append(("backports.zstd", backports_zstd.ZstdDecompressor))
    except ImportError:
        pass
    return out


def _decoded_check(stream: Stream, expect_bytes: bool) -> Callable[[Outcome], list[str]]:
    """Check for baselines: count == payloads, last decoded object/bytes equal to the source's (a stream context:
    the last message only decodes right if every earlier one did), sampled ones too."""
    expected = len(stream.payloads)

    def reference(index: int) -> Any:
        return stream.payloads[index] if expect_bytes else json.loads(stream.payloads[index])

    def check(outcome: Outcome) -> list[str]:
        problems = []
        if outcome.count != expected:
            problems.append(f"{outcome.count} messages decoded, corpus has {expected}")
        if outcome.last != reference(expected - 1):
            problems.append("last message differs from the source")
        for position, obj in outcome.samples:
            if obj != reference(position):
                problems.append(f"message {position} differs from the source")
                break
        return problems

    return check


def _baseline_runner(stream: Stream, factory: Callable[[], Any], loads: Callable[[bytes], Any] | None,
                     tight: bool, sample: bool) -> Callable[[int | None], Callable[[], Outcome]]:
    """naive (``tight=False``: a Python loop with the zlib marker check) or floor/inflate-only (``tight=True``: the
    inflater's method and the parser mapped over the frames in C, no Python between). ``sample``: keep every k-th
    result (used by the untimed verification pass only)."""

    def prepare(limit: int | None) -> Callable[[], Outcome]:
        frames = stream.frames[:limit] if limit else stream.frames
        dec = factory().decompress
        zlib_stream = stream.compression == "zlib-stream"
        step = _sample_step(len(frames))

        if sample:
            def run() -> Outcome:
                samples, n, pending = [], 0, b""
                for frame in frames:
                    if zlib_stream:
                        if pending:
                            frame, pending = pending + frame, b""
                        if not frame.endswith(ZLIB_SUFFIX):
                            pending = frame
                            continue
                    obj = dec(frame)
                    if loads is not None:
                        obj = loads(obj)
                    if n % step == 0:
                        samples.append((n, obj))
                    n += 1
                return Outcome(n, samples, obj)
            return run

        if tight and stream.complete_frames:
            deque = collections.deque
            if loads is None:
                def run() -> Outcome:
                    last = deque(map(dec, frames), maxlen=1)
                    return Outcome(len(frames), [], last[0] if last else None)
            else:
                def run() -> Outcome:
                    last = deque(map(loads, map(dec, frames)), maxlen=1)
                    return Outcome(len(frames), [], last[0] if last else None)
            return run

        def run() -> Outcome:
            n, pending, obj = 0, b"", None
            suffix = ZLIB_SUFFIX
            if zlib_stream:
                for frame in frames:
                    if pending:
                        frame, pending = pending + frame, b""
                    if not frame.endswith(suffix):
                        pending = frame
                        continue
                    obj = dec(frame)
                    if loads is not None:
                        obj = loads(obj)
                    n += 1
            else:
                for frame in frames:
                    obj = dec(frame)
                    if loads is not None:
                        obj = loads(obj)
                    n += 1
            return Outcome(n, [], obj)

        return run

    return prepare


def _baseline_cases(stream: Stream) -> list[Case]:
    cases = []
    inflaters = _zlib_inflaters() if stream.compression == "zlib-stream" else _zstd_inflaters()
    parsers = _json_parsers()
    stdlib = [entry for entry in inflaters if entry[0] in ("zlib (stdlib)", "zstandard")]
    if stdlib:
        name, factory = stdlib[0]
        cases.append(_make_baseline(stream, f"naive: {name} + json", factory, json.loads, False, "naive",
                                    "per message in a Python loop, stdlib json.loads(bytes)"))
    if parsers:
        parser_name, parser = parsers[0]
        for name, factory in inflaters:
            if name == "zlib (stdlib)" and len(inflaters) > 1:
                continue  # stdlib zlib is never the fastest C inflater when zlib-ng or isal is there
            cases.append(_make_baseline(stream, f"floor: {name} + {parser_name}", factory, parser, True, "floor",
                                        "map(loads, map(decompress, frames)) in C, no Python between"))
    for name, factory in inflaters:
        cases.append(_make_baseline(stream, f"inflate only: {name}", factory, None, True, "inflate",
                                    "map(decompress, frames)"))
    return cases


def _make_baseline(stream: Stream, name: str, factory: Callable[[], Any], loads: Callable[[bytes], Any] | None,
                   tight: bool, role: str, note: str) -> Case:
    check = _decoded_check(stream, loads is None)
    sampled = _baseline_runner(stream, factory, loads, tight, sample=True)

    def verify() -> list[str]:
        return check(sampled(None)())

    return Case(stream.group, name, "baseline", stream, _baseline_runner(stream, factory, loads, tight, False), check,
                tags={"role": role, "note": note, "inflater": name}, verify=verify)


# -- this package ------------------------------------------------------------------------------------------------


def _gateway_case(stream: Stream, twin_kind: str, twins: dict[str, ModuleType] | None, workload: str) -> Case:
    name = f"gateway {twin_kind}: {workload}"
    tags = {"twin": twin_kind, "workload": workload}
    if twins is None:
        return Case(stream.group, name, "gateway", stream, _unavailable, _no_check, tags,
                    skip=f"the {twin_kind} twins are not importable (not compiled?)")
    if stream.compression == "zstd-stream" and not getattr(twins["inflate"], "HAVE_ZSTD", True):
        return Case(stream.group, name, "gateway", stream, _unavailable, _no_check, tags,
                    skip=f"the {twin_kind} inflate twin was built without libzstd")
    from gateway import EventTypeFlags, Intents, Shard, ShardId, ShardStatus

    flags = (EventTypeFlags.MESSAGE_CREATE | EventTypeFlags.INTERACTION_CREATE) if workload == "filtered" \
        else EventTypeFlags.all()
    positions = stream.positions(workload)
    prime_ready = stream.set_name == "steady"
    loops: list[asyncio.AbstractEventLoop] = []

    def prepare(limit: int | None) -> Callable[[], Outcome]:
        frames = stream.frames[:limit] if limit else stream.frames
        expected = len([p for p in positions if limit is None or p < limit])
        step = _sample_step(expected)
        loop = asyncio.new_event_loop()
        loops.append(loop)
        shard = Shard(ShardId(0, 1), "bench-token", int(Intents.all()), compression=stream.compression,
                      event_types=flags, _twins=twins)
        shard._attach_replay(loop)
        on_message = shard._on_message
        on_message(OP_TEXT, HELLO)
        for _ in range(3):  # the identify-queue wait task runs and is granted; IDENTIFY is "sent" (no socket)
            loop.run_until_complete(asyncio.sleep(0))
        if prime_ready:
            on_message(OP_TEXT, READY)
            if shard.status is not ShardStatus.ACTIVE:
                raise RuntimeError(f"shard not active after READY: {shard!r}")
        on_messages = shard._on_messages
        reads = socket_reads(frames)
        queue = shard._queue
        queue.clear()
        next_event = shard.next_event

        if workload == "route":
            async def consume() -> Outcome:
                n, nxt, samples = 0, 0, []
                for read in reads:
                    on_messages(read, 0)
                    while queue:
                        event = await next_event()
                        event.name  # noqa: B018 - the route workload reads the name only
                        if n == nxt:
                            samples.append((n, event))
                            nxt += step
                        n += 1
                return Outcome(n, samples)
        elif workload == "full":
            async def consume() -> Outcome:
                n, nxt, samples = 0, 0, []
                for read in reads:
                    on_messages(read, 0)
                    while queue:
                        event = await next_event()
                        event.data  # noqa: B018 - materialised: the JSON loader builds the whole dict
                        if n == nxt:
                            samples.append((n, event))
                            nxt += step
                        n += 1
                return Outcome(n, samples)
        else:  # touch, filtered: one field of data
            key = TOUCH_KEY

            async def consume() -> Outcome:
                n, nxt, samples = 0, 0, []
                for read in reads:
                    on_messages(read, 0)
                    while queue:
                        event = await next_event()
                        data = event.data
                        if data.__class__ is dict:
                            data.get(key)
                        if n == nxt:
                            samples.append((n, event))
                            nxt += step
                        n += 1
                return Outcome(n, samples)

        def run() -> Outcome:
            return loop.run_until_complete(consume())

        return run

    def check(outcome: Outcome) -> list[str]:
        problems = []
        if outcome.count != len(positions):
            problems.append(f"{outcome.count} events, corpus has {len(positions)}")
        for position, event in outcome.samples:
            if position >= len(positions):
                problems.append(f"event {position} beyond the corpus")
                break
            index = positions[position]
            if event.name != stream.names[index] or event.raw != stream.payloads[index]:
                problems.append(f"event {position} ({event.name}) differs from payload {index}")
                break
            if event.data != stream.ref_d(index):
                problems.append(f"event {position} ({event.name}): data differs from json.loads of the source")
                break
        return problems

    def verify() -> list[str]:
        """Is the JSON loader really called per event (full/touch/filtered), and not at all for route?"""
        import gateway._json as gjson

        limit = min(len(stream.frames), 600) if stream.complete_frames else None
        run = prepare(limit)
        original = gjson.loads
        calls = [0]

        def counting(data: Any) -> Any:
            calls[0] += 1
            return original(data)

        gjson.loads = counting
        try:
            outcome = run()
        finally:
            gjson.loads = original
            close_loops()
        if limit is None:
            limit = len(stream.payloads)
        delivered = [p for p in positions if p < limit]
        with_d = sum(1 for p in delivered if stream.ref_d(p) is not None)
        ready_in_frames = sum(1 for p in range(limit) if stream.names[p] == "READY")  # decoded by the protocol
        problems = []
        if outcome.count != len(delivered):
            problems.append(f"prefix: {outcome.count} events, expected {len(delivered)}")
        if workload == "route" and calls[0] > ready_in_frames:
            problems.append(f"route decoded JSON {calls[0]} times (expected {ready_in_frames})")
        if workload != "route" and calls[0] < with_d:
            problems.append(f"the JSON loader ran {calls[0]} times for {with_d} events with data")
        return problems

    def close_loops() -> None:
        while loops:
            loop = loops.pop()
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.close()

    case = Case(stream.group, name, "gateway", stream, prepare, check, tags, verify=verify)
    case.cleanup.append(close_loops)
    return case


def _unavailable(limit: int | None) -> Callable[[], Outcome]:
    raise RuntimeError("case is skipped")


def _no_check(outcome: Outcome) -> list[str]:
    return []


# -- peers -------------------------------------------------------------------------------------------------------


def _version(dist: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:  # noqa: BLE001 - PackageNotFoundError and friends
        return None


class _Counter:
    """The stub consumer the peer rows hand their events to: counts, samples and touches one field."""

    __slots__ = ("n", "nxt", "step", "samples")

    def __init__(self, step: int) -> None:
        self.n = 0
        self.nxt = 0
        self.step = step
        self.samples: list[tuple[int, Any]] = []

    def consume_raw_event(self, name: str, shard: Any, data: Any) -> None:  # hikari's EventManager entry point
        if data.__class__ is dict:
            data.get(TOUCH_KEY)
        if self.n == self.nxt:
            self.samples.append((self.n, (name, data)))
            self.nxt += self.step
        self.n += 1

    def parser(self, data: Any) -> None:  # a discord.py parse_* stand-in
        if data.__class__ is dict:
            data.get(TOUCH_KEY)
        if self.n == self.nxt:
            self.samples.append((self.n, (None, data)))
            self.nxt += self.step
        self.n += 1


def _peer_check(stream: Stream) -> Callable[[Outcome], list[str]]:
    positions = stream.dispatch_positions()

    def check(outcome: Outcome) -> list[str]:
        problems = []
        if outcome.count != len(positions):
            problems.append(f"{outcome.count} dispatches consumed, corpus has {len(positions)}")
        for position, (name, data) in outcome.samples:
            index = positions[position]
            if (name is not None and name != stream.names[index]) or data != stream.ref_d(index):
                problems.append(f"dispatch {position} differs from payload {index}")
                break
        return problems

    return check


def _peer_case(stream: Stream, name: str, level: str, prepare: Callable[[int | None], Callable[[], Outcome]],
               loops: list[asyncio.AbstractEventLoop], tags: dict[str, Any], note: str) -> Case:
    """A peer's row: the check that fits its level, and the event loops ``prepare`` made closed after the run."""

    def close_loops() -> None:
        while loops:
            loops.pop().close()

    check = _decoded_check(stream, False) if level == "decode" else _peer_check(stream)
    case = Case(stream.group, name, "peer", stream, prepare, check, dict(tags, note=note))
    case.cleanup.append(close_loops)
    return case


def _hikari_case(stream: Stream, level: str = "shard") -> Case:
    version = _version("hikari")
    name = f"hikari {version or ''} {level}"
    tags = {"peer": "hikari", "level": level}
    if version is None:
        return Case(stream.group, f"hikari {level}", "peer", stream, _unavailable, _no_check, tags,
                    skip="hikari is not installed (pip install 'gateway[bench]')")
    try:
        import contextlib

        import aiohttp
        import hikari
        from hikari.impl import config as hikari_config
        from hikari.impl import shard as hikari_shard
        from hikari.internal import data_binding

        transport_cls = (hikari_shard._GatewayZlibStreamTransport if stream.compression == "zlib-stream"
                         else hikari_shard._GatewayZstdStreamTransport)
        if stream.compression == "zstd-stream":
            transport_cls(ws=None, exit_stack=None, logger=None, log_filterer=None, dumps=None, loads=None)
    except Exception as exc:  # noqa: BLE001 - e.g. zstd-stream without backports.zstd
        return Case(stream.group, name, "peer", stream, _unavailable, _no_check, tags,
                    skip=f"hikari cannot run {stream.compression}: {exc}")

    positions = stream.dispatch_positions()
    loops: list[asyncio.AbstractEventLoop] = []
    logger = logging.getLogger("hikari.gateway.bench")

    class FakeWebSocket:
        __slots__ = ("_next",)

        def __init__(self, messages: list[Any]) -> None:
            self._next = iter(messages).__next__

        async def receive(self) -> Any:
            return self._next()

        async def close(self, **kwargs: Any) -> None:
            pass

        async def send_bytes(self, data: bytes) -> None:
            pass

    def prepare(limit: int | None) -> Callable[[], Outcome]:
        frames = stream.frames[:limit] if limit else stream.frames
        expected = len([p for p in positions if limit is None or p < limit])
        binary = aiohttp.WSMsgType.BINARY
        messages = [aiohttp.WSMessage(binary, frame, None) for frame in frames]
        messages.append(aiohttp.WSMessage(aiohttp.WSMsgType.CLOSE, 1000, "end of corpus"))
        loop = asyncio.new_event_loop()
        loops.append(loop)
        counter = _Counter(_sample_step(expected))
        transport = transport_cls(ws=FakeWebSocket(messages), exit_stack=contextlib.AsyncExitStack(), logger=logger,
                                  log_filterer=lambda b: b, dumps=data_binding.default_json_dumps,
                                  loads=data_binding.default_json_loads)
        shard = hikari_shard.GatewayShardImpl(
            event_manager=counter, event_factory=None, intents=hikari.Intents.ALL,
            http_settings=hikari_config.HTTPSettings(), proxy_settings=hikari_config.ProxySettings(),
            token="bench-token", url="wss://gateway.discord.gg", compression=None,
        )
        shard._ws = transport
        shard._user_id = hikari.Snowflake(1300000000000000001)

        if level == "decode":
            receive_json = transport.receive_json
            step = _sample_step(len(stream.payloads))

            async def decode() -> Outcome:
                n, samples, obj = 0, [], None
                try:
                    while True:
                        obj = await receive_json()
                        if n % step == 0:
                            samples.append((n, obj))
                        n += 1
                except hikari.errors.GatewayServerClosedConnectionError:
                    pass
                return Outcome(n, samples, obj)

            return lambda: loop.run_until_complete(decode())

        async def poll() -> Outcome:
            shard._handshake_event = asyncio.Event()
            shard._handshake_event.set()
            try:
                await shard._poll_events()
            except hikari.errors.GatewayServerClosedConnectionError:
                pass
            return Outcome(counter.n, counter.samples)

        def run() -> Outcome:
            return loop.run_until_complete(poll())

        return run

    if level == "decode":
        note = "await transport.receive_json() (real transport, fake aiohttp websocket): inflate + orjson"
    else:
        note = ("GatewayShardImpl._poll_events, real transport over a fake aiohttp websocket, stub event manager; "
                "not run with -O")
    return _peer_case(stream, name, level, prepare, loops, tags, note)


_DISCORD_CONTEXTS: dict[str, type] | None = None


def _discord_contexts() -> dict[str, type]:
    """discord.py picks zstd-stream at import when zstandard imports, and then has no zlib class. For the zlib rows,
    load a second copy of its real ``discord/utils.py`` with zstd hidden (``discord._bench_utils_zlib``)."""
    global _DISCORD_CONTEXTS
    if _DISCORD_CONTEXTS is not None:
        return _DISCORD_CONTEXTS
    import discord.utils as dutils

    contexts = {dutils._ActiveDecompressionContext.COMPRESSION_TYPE: dutils._ActiveDecompressionContext}
    if "zlib-stream" not in contexts:
        hidden = ("zstandard", "compression.zstd")
        saved = {key: sys.modules.get(key) for key in hidden}
        spec = importlib.util.spec_from_file_location("discord._bench_utils_zlib", dutils.__file__)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        for key in hidden:
            sys.modules[key] = None  # type: ignore[assignment]
        try:
            spec.loader.exec_module(module)
        finally:
            for key, value in saved.items():
                if value is None:
                    sys.modules.pop(key, None)
                else:
                    sys.modules[key] = value
        contexts["zlib-stream"] = module._ActiveDecompressionContext
    _DISCORD_CONTEXTS = contexts
    return contexts


def _discord_case(stream: Stream, level: str = "shard") -> Case:
    version = _version("discord.py")
    name = f"discord.py {version or ''} {level}"
    tags = {"peer": "discord.py", "level": level}
    if version is None:
        return Case(stream.group, f"discord.py {level}", "peer", stream, _unavailable, _no_check, tags,
                    skip="discord.py is not installed (pip install 'gateway[bench]')")
    try:
        from discord.gateway import DiscordWebSocket
        from discord.utils import _from_json

        context_cls = _discord_contexts().get(stream.compression)
        if context_cls is None or context_cls.COMPRESSION_TYPE != stream.compression:
            raise RuntimeError(f"no {stream.compression} decompression context")
    except Exception as exc:  # noqa: BLE001
        return Case(stream.group, name, "peer", stream, _unavailable, _no_check, tags,
                    skip=f"discord.py cannot run {stream.compression}: {exc}")

    positions = stream.dispatch_positions()
    loops: list[asyncio.AbstractEventLoop] = []

    def prepare(limit: int | None) -> Callable[[], Outcome]:
        frames = stream.frames[:limit] if limit else stream.frames
        expected = len([p for p in positions if limit is None or p < limit])
        if level == "decode":
            decompress = context_cls().decompress
            step = _sample_step(len(stream.payloads))

            def decode() -> Outcome:
                n, samples, obj = 0, [], None
                for frame in frames:
                    text = decompress(frame)
                    if text is None:
                        continue
                    obj = _from_json(text)
                    if n % step == 0:
                        samples.append((n, obj))
                    n += 1
                return Outcome(n, samples, obj)

            return decode
        loop = asyncio.new_event_loop()
        loops.append(loop)
        counter = _Counter(_sample_step(expected))
        parser = counter.parser
        ws = DiscordWebSocket(socket=None, loop=loop)  # type: ignore[arg-type]
        ws.shard_id = None
        ws._discord_parsers = collections.defaultdict(lambda: parser)
        ws._decompressor = context_cls()
        received = ws.received_message

        async def feed() -> Outcome:
            for frame in frames:
                await received(frame)
            return Outcome(counter.n, counter.samples)

        def run() -> Outcome:
            return loop.run_until_complete(feed())

        return run

    if level == "decode":
        note = "_DecompressionContext.decompress (inflate + .decode()) + utils._from_json (orjson)"
    else:
        note = "DiscordWebSocket.received_message, stub parsers, no-op _dispatch"
    if context_cls.__module__ == "discord._bench_utils_zlib":
        note += "; zlib context from a zstd-hidden copy of discord/utils.py"
    return _peer_case(stream, name, level, prepare, loops, tags, note)


# -- all ---------------------------------------------------------------------------------------------------------


def build_cases(streams: list[Stream], *, twins: Iterable[str] = TWIN_SETS, peers: bool = True,
                only: str | None = None) -> list[Case]:
    """Every row for ``streams``. ``only``: keep the rows whose "group / name" contains it (case-insensitive);
    the naive row of every kept group stays, it is the ratio's reference."""
    cases: list[Case] = []
    twin_modules = {kind: _twins(kind) for kind in twins}
    for stream in streams:
        group: list[Case] = _baseline_cases(stream)
        startup = stream.set_name == "startup"
        for kind, modules in twin_modules.items():
            # startup: the package's compiled route and full rows, and pure full ("where cheap")
            for workload in WORKLOADS:
                if startup and (workload in ("touch", "filtered") or (kind == "pure" and workload == "route")):
                    continue
                group.append(_gateway_case(stream, kind, modules, workload))
        if peers:
            for level in ("decode", "shard"):
                group.append(_hikari_case(stream, level))
                group.append(_discord_case(stream, level))
        if only:
            needle = only.lower()
            group = [c for c in group if needle in c.label.lower() or c.tags.get("role") == "naive"]
            if all(c.tags.get("role") == "naive" for c in group):
                group = []
        cases.extend(group)
    return cases


# ----------------------------------------------------------------------------------------------------------------
# Running
# ----------------------------------------------------------------------------------------------------------------


def _row(case: Case, values: list[float], problems: list[str], note: str = "") -> dict[str, Any]:
    stream = case.stream
    row: dict[str, Any] = {
        "group": case.group,
        "name": case.name,
        "unit": stream.unit,
        "median": statistics.median(values) if values else 0.0,
        "low": min(values) if values else 0.0,
        "high": max(values) if values else 0.0,
        "ok": not problems,
        "note": "; ".join(x for x in [case.tags.get("note", ""), note] + problems if x),
        "ratio": None,
        "kind": case.kind,
        "set": stream.set_name,
        "compression": stream.compression,
        "values": values,
    }
    for key in ("twin", "workload", "peer", "role", "level", "inflater"):
        if key in case.tags:
            row[key] = case.tags[key]
    return row


def run_suite(cases: list[Case], rounds: int = 5, *, progress: Callable[[str], None] | None = None,
              verify: bool = True) -> list[dict[str, Any]]:
    """Time every case ``rounds`` times, interleaved; return the rows (with ratios to the naive row of each group)."""
    say = progress or (lambda message: None)
    live = [c for c in cases if c.skip is None]
    problems: dict[int, list[str]] = {id(c): [] for c in cases}
    values: dict[int, list[float]] = {id(c): [] for c in cases}
    gc.collect()
    gc.freeze()  # the corpus and the frames: never traversed by the collector during the runs
    try:
        if verify:
            for case in live:
                if case.verify is not None:
                    try:
                        problems[id(case)].extend(case.verify())
                    except Exception as exc:  # noqa: BLE001 - a broken row is reported, not fatal
                        problems[id(case)].append(f"verification raised {type(exc).__name__}: {exc}")
            say(f"verified {len(live)} rows")
        for round_index in range(rounds):
            shift = round_index % len(live) if live else 0
            order = live[shift:] + live[:shift]
            for case in order:
                if problems[id(case)] and not values[id(case)] and round_index > 0:
                    continue  # failed in round 0: do not keep timing a broken row
                try:
                    run = case.prepare(None)
                    gc.collect()
                    started = time.perf_counter()
                    outcome = run()
                    elapsed = time.perf_counter() - started
                except Exception as exc:  # noqa: BLE001
                    problems[id(case)].append(f"raised {type(exc).__name__}: {exc}")
                    continue
                finally:
                    for cleanup in case.cleanup:
                        cleanup()
                found = case.check(outcome)
                for problem in found:
                    if problem not in problems[id(case)]:
                        problems[id(case)].append(problem)
                values[id(case)].append(case.stream.work() / elapsed)
            say(f"round {round_index + 1}/{rounds} done")
    finally:
        gc.unfreeze()
    rows = []
    for case in cases:
        if case.skip is not None:
            row = _row(case, [], [], "skipped: " + case.skip)
            row["ok"] = True
            row["skipped"] = True
        else:
            row = _row(case, values[id(case)], problems[id(case)])
            if not values[id(case)]:
                row["ok"] = False
            stream = case.stream
            if stream.unit == "events/s" and row["median"]:
                row["us_per_event"] = 1e6 / row["median"]  # per received gateway message
        rows.append(row)
    naive = {r["group"]: r["median"] for r in rows if r.get("role") == "naive" and r["median"]}
    for row in rows:
        reference = naive.get(row["group"])
        if reference and row["median"] and not row.get("skipped"):
            row["ratio"] = row["median"] / reference
    return rows


# ----------------------------------------------------------------------------------------------------------------
# Targets (issue 4), printed as a checklist under the table: measured, never asserted
# ----------------------------------------------------------------------------------------------------------------


def _find(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    for row in rows:
        if all(row.get(key) == value for key, value in match.items()) and row["median"] and not row.get("skipped"):
            return row
    return None


def check_targets(rows: list[dict[str, Any]], twin: str = "compiled") -> list[dict[str, Any]]:
    """The issue's targets on the steady mix, same compression: full >= 1.5x hikari's shard path, touch >= 2.5x,
    filtered >= 4x; route >= inflate-only / 1.15 (against the fastest inflate-only row of the group)."""
    out = []
    for compression in ("zlib-stream", "zstd-stream"):
        hikari = _find(rows, set="steady", compression=compression, peer="hikari", level="shard")
        for workload, goal in (("full", 1.5), ("touch", 2.5), ("filtered", 4.0)):
            ours = _find(rows, set="steady", compression=compression, twin=twin, workload=workload)
            target = f"{workload} >= {goal}x hikari shard ({compression})"
            if ours is None or hikari is None:
                out.append({"target": target, "measured": None, "met": None, "detail": "row missing"})
                continue
            ratio = ours["median"] / hikari["median"]
            out.append({"target": target, "measured": ratio, "met": ratio >= goal,
                        "detail": f"{ours['median']:,.0f} vs {hikari['median']:,.0f} events/s"})
        route = _find(rows, set="steady", compression=compression, twin=twin, workload="route")
        inflate = [r for r in rows if r.get("role") == "inflate" and r["set"] == "steady"
                   and r["compression"] == compression and r["median"]]
        target = f"route >= inflate-only / 1.15 ({compression})"
        if route is None or not inflate:
            out.append({"target": target, "measured": None, "met": None, "detail": "row missing"})
            continue
        fastest = max(inflate, key=lambda r: r["median"])
        ratio = route["median"] / fastest["median"]
        out.append({"target": target, "measured": ratio, "met": ratio >= 1 / 1.15,
                    "detail": f"route {route['median']:,.0f} vs {fastest['name']} {fastest['median']:,.0f} events/s "
                              f"(needs >= {1 / 1.15:.3f}x)"})
    return out


# ----------------------------------------------------------------------------------------------------------------
# Machine
# ----------------------------------------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    import gateway
    from gateway import _inflate_py, _json

    versions = {}
    for dist in ("gateway", "orjson", "pysimdjson", "isal", "zlib-ng", "zstandard", "backports.zstd", "websockets",
                 "hikari", "discord.py", "aiohttp"):
        versions[dist] = _version(dist)
    try:
        from gateway._speedups import _inflate as compiled_inflate

        compiled_zlib = f"{compiled_inflate.ZLIB_BACKEND} {compiled_inflate.ZLIB_VERSION}"
    except ImportError:
        compiled_zlib = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "loadavg": load,
        "versions": versions,
        "json_backend": _json.BACKEND,
        "zlib_backend": {"compiled twin": compiled_zlib, "pure twin": _inflate_py.ZLIB_BACKEND,
                         "zlib runtime": zlib.ZLIB_RUNTIME_VERSION},
        "speedups": gateway.speedups_enabled(),
        "optimize": sys.flags.optimize,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


# ----------------------------------------------------------------------------------------------------------------
# Profiling
# ----------------------------------------------------------------------------------------------------------------


def profile_cases(cases: list[Case], top: int = 18) -> str:
    """Run each case once under cProfile; return the top functions by own time, in µs per event."""
    import cProfile
    import io
    import pstats

    out = io.StringIO()
    for case in cases:
        if case.skip is not None:
            continue
        run = case.prepare(None)
        profiler = cProfile.Profile()
        profiler.enable()
        outcome = run()
        profiler.disable()
        for cleanup in case.cleanup:
            cleanup()
        count = max(outcome.count, 1)
        stats = pstats.Stats(profiler)
        total = sum(entry[2] for entry in stats.stats.values())  # type: ignore[attr-defined]
        out.write(f"\n### {case.label}: {count} events, {total / count * 1e6:.2f} µs/event of own time under "
                  f"cProfile (inflated by the profiler)\n\n")
        out.write("| µs/event (own) | share | calls/event | function |\n|---:|---:|---:|---|\n")
        entries = sorted(stats.stats.items(), key=lambda item: -item[1][2])  # type: ignore[attr-defined]
        for (filename, line, func), (cc, nc, tt, ct, callers) in entries[:top]:
            where = f"{Path(filename).name}:{line}" if line else filename
            out.write(f"| {tt / count * 1e6:.3f} | {tt / total:.0%} | {nc / count:.2f} | `{func}` ({where}) |\n")
    return out.getvalue()


# ----------------------------------------------------------------------------------------------------------------
# Breakdown: the receive path built up one stage at a time (no profiler overhead), µs per message
# ----------------------------------------------------------------------------------------------------------------


def breakdown(stream: Stream, twin_kind: str = "compiled", rounds: int = 3) -> list[tuple[str, float, float, float]]:
    """Cumulative stages of the route/full path on ``stream``: (stage, median, min, max) in µs per message.

    Stages: the twin's inflater alone; + the envelope scan/filter; ``Receiver.feed``; ``Shard._on_message`` per
    message (the slow path); ``Shard._on_messages`` per socket read (the fast lane; queue cleared after each call);
    + ``await next_event()`` and ``event.name`` (route); + ``event.data`` (full).
    Each stage's difference to the previous one is what that layer costs."""
    from gateway._receive import Receiver

    twins = _twins(twin_kind)
    if twins is None:
        return []
    frames = stream.frames
    compression = stream.compression
    binary = OP_BINARY
    deque = collections.deque

    def stage_inflate() -> Callable[[], None]:
        feed = twins["inflate"].make_inflater(compression, 256 * 1024 * 1024).feed
        return lambda: deque(map(feed, frames), maxlen=0)

    def stage_scan() -> Callable[[], None]:
        feed = twins["inflate"].make_inflater(compression, 256 * 1024 * 1024).feed
        from gateway import EventTypeFlags

        scan = twins["envelope"].EventFilter(int(EventTypeFlags.all())).scan

        def run() -> None:
            for frame in frames:
                payload = feed(frame)
                if payload is not None:
                    scan(payload)
        return run

    def stage_receiver() -> Callable[[], None]:
        feed = Receiver(compression, twins=twins).feed
        return lambda: deque(map(feed, frames), maxlen=0)

    def shard_stage(consumer: str, batched: bool = True) -> Callable[[], Callable[[], None]]:
        def make() -> Callable[[], None]:
            loop = asyncio.new_event_loop()
            from gateway import EventTypeFlags, Intents, Shard, ShardId

            shard = Shard(ShardId(0, 1), "bench-token", int(Intents.all()), compression=compression,
                          event_types=EventTypeFlags.all(), _twins=twins)
            shard._attach_replay(loop)
            shard._on_message(OP_TEXT, HELLO)
            for _ in range(3):
                loop.run_until_complete(asyncio.sleep(0))
            if stream.set_name == "steady":
                shard._on_message(OP_TEXT, READY)
            on_message, on_messages = shard._on_message, shard._on_messages
            queue, next_event = shard._queue, shard.next_event
            queue.clear()
            reads = socket_reads(frames) if batched else [[(binary, frame)] for frame in frames]
            if consumer == "none":
                def run() -> None:
                    if batched:
                        for read in reads:
                            on_messages(read, 0)
                            queue.clear()
                    else:
                        for frame in frames:
                            on_message(binary, frame)
                            queue.clear()
                    loop.close()
                return run

            async def consume() -> None:
                for read in reads:
                    on_messages(read, 0)
                    while queue:
                        event = await next_event()
                        event.name  # noqa: B018
                        if consumer == "data":
                            event.data  # noqa: B018

            def run_async() -> None:
                loop.run_until_complete(consume())
                loop.close()
            return run_async
        return make

    stages: list[tuple[str, Callable[[], Callable[[], None]]]] = [
        (f"{twin_kind} inflater.feed alone", stage_inflate),
        ("+ EventFilter.scan", stage_scan),
        ("Receiver.feed (the same two, one call)", stage_receiver),
        ("Shard._on_message per message (slow path: + ShardProtocol.receive, Event, queue)",
         shard_stage("none", batched=False)),
        (f"Shard._on_messages, {FRAMES_PER_READ} per call (fast lane: EventFilter.run, Event, queue)",
         shard_stage("none")),
        ("+ await next_event() + event.name (route)", shard_stage("name")),
        ("+ event.data (full)", shard_stage("data")),
    ]
    values: dict[str, list[float]] = {name: [] for name, _ in stages}
    for _ in range(rounds):
        for name, make in stages:
            run = make()
            gc.collect()
            started = time.perf_counter()
            run()
            values[name].append((time.perf_counter() - started) / len(frames) * 1e6)
    return [(name, statistics.median(v), min(v), max(v)) for name, v in values.items()]
