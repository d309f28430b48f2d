"""Live benchmarks: real ``Shard`` objects over real loopback TCP websockets (issue 4, the live part).

``run(quick)`` returns table rows (dicts with group, name, unit, median, low, high, ok, note, ratio) for:

- **end to end**: a blast server (its own process) sends HELLO, waits for IDENTIFY, then writes READY and the
  recorded steady stream (zlib-stream / zstd-stream, one compression context per connection, exactly like
  ``bench.corpus``) as fast as the socket takes it. A client process runs ``gateway.Shard`` consuming
  ``async for event in shard.events()`` and doing one of the :data:`WORKLOADS` on each event (route, touch,
  touch-get, full, filtered, typed: see there) with the compiled twins, and route with the pure twins; events/s =
  stream events processed from READY to the last delivered event / that time; ok = every wanted dispatch arrived
  once, in order (names and sequence numbers compared with the corpus). hikari's ``GatewayShardImpl`` (event manager
  stubbed: ``consume_raw_event`` does the same workload on the dict hikari parsed) runs against the same server in the
  same worker, rows interleaved, when hikari is installed; ``ratio`` of our rows = our events/s / hikari's (same
  workload, touch for touch-get, same compression). The note also gives the client's CPU time (user + sys) per
  stream event and the CPU ratio, which a loaded machine disturbs much less than events/s.
- **memory**: RSS growth per idle connected shard (N shards in one client process, ``IdentifyQueue(delay=0)``, the
  ``FakeGateway`` in another process, heartbeating every 2 s, measured after every shard is ACTIVE and has
  heartbeated), for zlib-stream, zstd-stream and no compression; plus the share of the inflater alone.
  ``python -m bench.live --memory-breakdown`` adds a tracemalloc diff (top allocation sites per shard).
- **loop stall**: the longest gap between wakeups of a ``sleep(0.001)`` ticker while a Shard receives one big
  GUILD_CREATE over loopback (full: the corpus' ~25 MB one; quick: a generated ~5 MB one), and the receive time
  (READY delivered to GUILD_CREATE delivered; the server writes them back to back); hikari's stall on the same
  message as the reference when installed (``ratio`` = hikari's / ours).
- **scale**: N shards in one process against the FakeGateway (other process) with a 1.5 s heartbeat interval for a
  while: heartbeats arriving more than 10 % late (server-side arrival gaps > 1.1 x interval), reconnects/resumes
  (false zombie verdicts, must be 0), client CPU per shard-second.

Heavy parts run in subprocesses (``python -m bench.live --serve-blast | --serve-fake | --worker KIND``) so servers do
not share a process (or CPU accounting, or RSS) with the client being measured. Nothing here asserts a timing.

Command line: ``python -m bench.live [--quick] [--only e2e,memory,stall,scale] [--workloads route,typed,...]
[--e2e-rounds N] [--memory-breakdown] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import hashlib
import importlib
import json
import logging
import os
import resource
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "MTAwMDAwMDAwMDAwMDAwMDAw.x.y"  # hikari wants base64 of a numeric user id in front
# A very long interval: no heartbeat (and so no ACK, which could not go into a pre-compressed stream) during a run.
BLAST_HELLO = b'{"t":null,"s":null,"op":10,"d":{"heartbeat_interval":3600000}}'
READY = (
    b'{"t":"READY","s":1,"op":0,"d":{"v":10,"user":{"id":"1000000000000000000","username":"bench","discriminator":"0",'
    b'"bot":true,"avatar":null,"global_name":null},"guilds":[],"session_id":"0123456789abcdef0123456789abcdef",'
    b'"resume_gateway_url":"ws://127.0.0.1:1/resume","session_type":"normal","shard":[0,1],'
    b'"application":{"id":"1000000000000000001","flags":0}}}'
)
COMPRESSIONS = ("zlib-stream", "zstd-stream")
_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

__all__ = ["run"]


# ----------------------------------------------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------------------------------------------


def _row(group: str, name: str, unit: str, values: list[float], ok: bool, note: str,
         ratio: float | None = None) -> dict[str, Any]:
    values = [float(v) for v in values] or [0.0]
    return {"group": group, "name": name, "unit": unit, "median": statistics.median(values), "low": min(values),
            "high": max(values), "ok": bool(ok), "note": note, "ratio": ratio}


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _twins(kind: str) -> dict[str, Any]:
    if kind == "pure":
        return {m: importlib.import_module(f"gateway._{m}_py") for m in ("framing", "inflate", "envelope")}
    return {m: importlib.import_module(f"gateway._speedups._{m}") for m in ("framing", "inflate", "envelope")}


def _twin_available(kind: str) -> bool:
    try:
        _twins(kind)
        return True
    except ImportError:
        return False


def _hikari_available() -> bool:
    try:
        importlib.import_module("hikari")
        return True
    except Exception:  # noqa: BLE001 - any import failure means "not available"
        return False


def _dispatch_name(payload: bytes) -> str | None:
    """The ``t`` of a corpus payload (they all start ``{"t":``), None for a non-dispatch."""
    if payload.startswith(b'{"t":"'):
        return payload[6:payload.index(b'"', 6)].decode()
    return None


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _quiet_logs() -> None:
    logging.basicConfig(level=logging.ERROR)
    for name in ("gateway", "hikari", "websockets", "asyncio", "aiohttp"):
        logging.getLogger(name).setLevel(logging.ERROR)


# ----------------------------------------------------------------------------------------------------------------
# the blast server (own process): a minimal websocket server on asyncio streams
# ----------------------------------------------------------------------------------------------------------------


def _ws_header(opcode: int, size: int) -> bytes:
    first = 0x80 | opcode
    if size < 126:
        return struct.pack("!BB", first, size)
    if size < 65536:
        return struct.pack("!BBH", first, 126, size)
    return struct.pack("!BBQ", first, 127, size)


class BlastStream:
    """One connection's worth of server messages: HELLO alone, then everything else as one blob of frames."""

    def __init__(self, payloads: list[bytes], compression: str | None) -> None:
        from bench import corpus

        if compression == "zlib-stream":
            messages, opcode = corpus.compress_zlib(payloads), 2
        elif compression == "zstd-stream":
            messages, opcode = corpus.compress_zstd(payloads), 2
        else:
            messages, opcode = list(payloads), 1
        self.hello = _ws_header(opcode, len(messages[0])) + messages[0]
        self.blast = b"".join(_ws_header(opcode, len(m)) + m for m in messages[1:])
        self.messages = len(messages) - 1
        self.compressed_bytes = sum(map(len, messages[1:]))


async def _read_client_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One (unfragmented, masked) client frame: (opcode, payload)."""
    head = await reader.readexactly(2)
    opcode, size = head[0] & 0x0F, head[1] & 0x7F
    if size == 126:
        size = struct.unpack("!H", await reader.readexactly(2))[0]
    elif size == 127:
        size = struct.unpack("!Q", await reader.readexactly(8))[0]
    mask = await reader.readexactly(4) if head[1] & 0x80 else b"\0\0\0\0"
    data = await reader.readexactly(size)
    if size:
        key = int.from_bytes((mask * (size // 4 + 1))[:size], "big")
        data = (int.from_bytes(data, "big") ^ key).to_bytes(size, "big")
    return opcode, data


async def _blast_server(scale: str, big: str) -> None:
    from bench import corpus

    payloads = corpus.load_corpus(corpus.ensure_corpus(scale), "steady").payloads
    big_payload = _big_guild_create(big)
    streams: dict[tuple[str, str | None], BlastStream] = {}
    for compression in COMPRESSIONS:
        streams[("/steady", compression)] = BlastStream([BLAST_HELLO, READY, *payloads], compression)
        streams[("/stall", compression)] = BlastStream([BLAST_HELLO, READY, big_payload], compression)
    del payloads
    server = await start_blast_server(streams)
    port = server.sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)  # runs until the parent closes our stdin
    server.close()


async def start_blast_server(streams: dict[tuple[str, str | None], BlastStream]) -> asyncio.Server:
    """Serve ``streams[(path, compress)]`` on 127.0.0.1 (free port): HELLO, then on IDENTIFY the rest at full speed."""
    from urllib.parse import parse_qs, urlsplit

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        blaster: asyncio.Task[None] | None = None
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            target = lines[0].split(" ")[1]
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
            split = urlsplit(target)
            query = {k: v[-1] for k, v in parse_qs(split.query).items()}
            path = "/" + split.path.strip("/")
            stream = streams.get((path, query.get("compress")))
            key = headers.get("sec-websocket-key", "").encode()
            if stream is None or not key:
                writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
                return
            accept = base64.b64encode(hashlib.sha1(key + _WS_GUID).digest())
            writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
            writer.write(stream.hello)

            async def blast() -> None:
                view = memoryview(stream.blast)
                for start in range(0, len(view), 1 << 20):
                    writer.write(view[start:start + (1 << 20)])
                    await writer.drain()

            while True:
                opcode, data = await _read_client_frame(reader)
                if opcode == 8:  # close: echo and end
                    writer.write(_ws_header(8, len(data[:2])) + data[:2])
                    await writer.drain()
                    return
                if opcode in (1, 2) and blaster is None:
                    try:
                        op = json.loads(data).get("op")
                    except ValueError:
                        op = None
                    if op == 2:  # IDENTIFY: READY + the stream, as fast as the socket takes it
                        blaster = asyncio.create_task(blast())
                # op 1 heartbeats are not answered: the interval is an hour, no zombie check can happen in a run
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            if blaster is not None and not blaster.done():
                blaster.cancel()
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)


def _big_guild_create(big: str) -> bytes:
    """The loop-stall message: the full corpus' largest GUILD_CREATE (~25 MB) or a generated ~5 MB one."""
    from bench import corpus

    if big == "full":
        payloads = corpus.load_corpus(corpus.ensure_corpus("full"), "startup").payloads
        return max((p for p in payloads if _dispatch_name(p) == "GUILD_CREATE"), key=len)
    members = 5_500 if big == "5mb" else 20
    startup = corpus.generate_startup(guilds=1, big_guild_members=[members])
    return startup[1]


# ----------------------------------------------------------------------------------------------------------------
# the fake gateway server (own process), for memory and scale
# ----------------------------------------------------------------------------------------------------------------


def _filler_guilds(total: int, kib: int) -> list[dict[str, Any]]:
    """One guild per shard of ``total`` (id routed to it), its GUILD_CREATE about ``kib`` KiB of member objects."""
    member = {"user": {"id": "1000000000000000000", "username": "member-name", "global_name": None, "avatar": None,
                       "discriminator": "0"}, "roles": ["1000000000000000001"], "joined_at": "2026-08-15T18:00:00+00:00",
              "deaf": False, "mute": False, "flags": 0}
    per = len(json.dumps(member, separators=(",", ":")))
    members = [member] * max(1, kib * 1024 // (per + 1))
    return [{"id": str(i << 22), "name": f"guild {i}", "unavailable": False, "member_count": len(members),
             "members": members} for i in range(total)]


async def _fake_server(heartbeat_ms: int, guild_kib: int = 0, total: int = 0) -> None:
    _raise_nofile()
    from gateway.testing import FakeGateway

    guilds = _filler_guilds(total, guild_kib) if guild_kib else ()
    gw = FakeGateway(heartbeat_interval=heartbeat_ms, close_timeout=2.0, guilds=guilds)
    await gw.start()
    print(f"PORT {gw.port}", flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        words = line.split()
        if not words or words[0] == "quit":
            break
        if words[0] == "stats":
            t0, t1 = float(words[1]), float(words[2])
            print(json.dumps(_heartbeat_stats(gw, t0, t1, heartbeat_ms / 1000.0)), flush=True)
    for connection in gw.connections:  # the client closed (or dropped) its shards; do not wait for them
        if connection._websocket is not None and connection._websocket.transport is not None:
            connection._websocket.transport.abort()
    await gw.stop()


def _heartbeat_stats(gw: Any, t0: float, t1: float, interval: float) -> dict[str, Any]:
    gaps: list[float] = []
    beats = 0
    for connection in gw.connections:
        times = [entry.at for entry in connection.received if entry.op == 1]
        beats += sum(1 for t in times if t0 <= t <= t1)
        gaps.extend(b - a for a, b in zip(times, times[1:]) if t0 <= b <= t1)
    late = [g for g in gaps if g > 1.1 * interval]
    return {
        "connections": len(gw.connections),
        "identifies": sum(1 for entry in gw.received if entry.op == 2),
        "resumes": sum(1 for entry in gw.received if entry.op == 6),
        "heartbeats": beats,
        "gaps": len(gaps),
        "late": len(late),
        "max_gap": max(gaps) if gaps else None,
        "median_gap": statistics.median(gaps) if gaps else None,
    }


# ----------------------------------------------------------------------------------------------------------------
# workers (client processes)
# ----------------------------------------------------------------------------------------------------------------


def _ours_shard(url: str, compression: str | None, twins: dict[str, Any] | None, queue: Any = None,
                shard: tuple[int, int] = (0, 1), rng: Any = None, workload: str = "route") -> Any:
    import gateway
    from gateway.flags import GATEWAY_EVENTS, EventTypeFlags

    # Dispatches (what hikari hands its event manager) plus GATEWAY_CLOSE, which reports every lost connection.
    wanted = (EventTypeFlags.all() & ~GATEWAY_EVENTS) | EventTypeFlags.GATEWAY_CLOSE
    if workload == "filtered":  # READY too: it starts the clock, as in every other row
        wanted = int(EventTypeFlags.READY | EventTypeFlags.GATEWAY_CLOSE) | _filtered_flags()
    return gateway.Shard(gateway.ShardId(*shard), TOKEN, int(gateway.Intents.GUILDS), gateway_url=url,
                         compression=compression, identify_queue=queue or gateway.IdentifyQueue(delay=0),
                         rng=rng or (lambda: 1.0), event_types=wanted, _twins=twins)


async def _watchdog(progress: list[int], idle: float, stop: Any) -> None:
    """Call ``stop()`` when ``progress[0]`` has not moved for ``idle`` seconds."""
    last, since = -1, time.perf_counter()
    while True:
        await asyncio.sleep(0.25)
        if progress[0] != last:
            last, since = progress[0], time.perf_counter()
        elif time.perf_counter() - since > idle:
            await stop()
            return


# ---- what the consumer does per event (issue 11): the same work on our Event and on hikari's parsed dict ----

#: Workloads of the end-to-end rows. Ours: route reads ``event.name``; touch reads one field through ``event.data``;
#: touch-get the same field through ``event.get``; full walks all of ``event.data``; filtered asks the shard for
#: MESSAGE_CREATE | INTERACTION_CREATE only and reads one field with ``event.get``; typed decodes every event into
#: a msgspec Struct (MESSAGE_CREATE: content, channel, author id, guild; others: guild_id) with ``event.decode``.
#: hikari (always a parsed dict): the same fields read from the dict it hands over (touch-get's reference is touch).
WORKLOADS = ("route", "touch", "touch-get", "full", "filtered", "typed")
HIKARI_WORKLOADS = ("route", "touch", "full", "filtered", "typed")
FILTERED_NAMES = ("MESSAGE_CREATE", "INTERACTION_CREATE")
TOUCH_FIELD = "guild_id"
FILTERED_FIELD = "channel_id"


def _filtered_flags() -> int:
    from gateway.flags import EventTypeFlags

    return int(EventTypeFlags.MESSAGE_CREATE | EventTypeFlags.INTERACTION_CREATE)


def _walk(value: Any) -> int:
    """Visit every value of a decoded JSON document (the "full" workload); returns the number of leaves."""
    if type(value) is dict:
        return sum(_walk(item) for item in value.values())
    if type(value) is list:
        return sum(_walk(item) for item in value)
    return 1


try:  # the typed workload's Structs (msgspec is in the bench and speed extras)
    import msgspec as _msgspec
except ImportError:  # pragma: no cover - the typed rows then report the ImportError
    _msgspec = None
else:

    class Author(_msgspec.Struct):
        id: str

    class MessageCreate(_msgspec.Struct):
        """What a MESSAGE_CREATE handler reads (the README's example Struct)."""

        content: str
        channel_id: str
        author: Author
        guild_id: str | None = None

    class AnyGuildEvent(_msgspec.Struct):
        guild_id: str | None = None


def _typed_structs() -> tuple[Any, Any]:
    """The Structs of the typed workload: (MESSAGE_CREATE's, every other event's)."""
    if _msgspec is None:
        raise ImportError("the typed workload needs msgspec: pip install 'gateway[bench]'")
    return MessageCreate, AnyGuildEvent


def _ours_consumer(workload: str) -> Any:
    """``consume(event)`` doing ``workload``'s work on one of our Events."""
    if workload == "route":
        return lambda event: event.name
    if workload == "touch":
        return lambda event: event.data.get(TOUCH_FIELD)
    if workload == "touch-get":
        return lambda event: event.get(TOUCH_FIELD)
    if workload == "full":
        return lambda event: _walk(event.data)
    if workload == "filtered":
        return lambda event: event.get(FILTERED_FIELD)
    if workload == "typed":
        message_create, any_event = _typed_structs()

        def typed(event: Any) -> Any:
            if event.name == "MESSAGE_CREATE":
                message = event.decode(message_create)
                return message.content, message.channel_id, message.author.id, message.guild_id
            return event.decode(any_event).guild_id

        return typed
    raise ValueError(f"unknown workload {workload!r}")


def _hikari_consumer(workload: str) -> Any:
    """``consume(name, payload)`` doing ``workload``'s work on the dict hikari's shard parsed."""
    if workload == "route":
        return lambda name, payload: name
    if workload in ("touch", "touch-get"):
        return lambda name, payload: payload.get(TOUCH_FIELD)
    if workload == "full":
        return lambda name, payload: _walk(payload)
    if workload == "filtered":
        return lambda name, payload: payload.get(FILTERED_FIELD) if name in FILTERED_NAMES else None
    if workload == "typed":
        def typed(name: str, payload: Any) -> Any:
            if name == "MESSAGE_CREATE":
                return payload["content"], payload["channel_id"], payload["author"]["id"], payload.get("guild_id")
            return payload.get("guild_id")

        return typed
    raise ValueError(f"unknown workload {workload!r}")


async def e2e_ours(url: str, compression: str, twin: str, expected: int, workload: str = "route") -> dict[str, Any]:
    """Consume ``expected`` events from ``url`` with a Shard doing ``workload`` on each: names, sequences,
    first/last arrival times."""
    shard = _ours_shard(url, compression, _twins(twin), workload=workload)
    consume = _ours_consumer(workload)
    names: list[str] = []
    seqs: list[int | None] = []
    stamps = [0.0, 0.0]
    cpu = [0.0, 0.0]
    progress = [0]
    perf = time.perf_counter
    dog = asyncio.create_task(_watchdog(progress, 10.0, shard.close))
    try:
        async for event in shard.events():
            consume(event)
            now = perf()
            if not names:
                stamps[0] = now
                cpu[0] = time.process_time()
            names.append(event.name)
            seqs.append(event.seq)
            stamps[1] = now
            progress[0] += 1
            if len(names) >= expected:
                cpu[1] = time.process_time()
                break
    finally:
        dog.cancel()
        await shard.close()
    return {"names": names, "seqs": seqs, "t_first": stamps[0], "t_last": stamps[1], "cpu_first": cpu[0],
            "cpu_last": cpu[1], "payload_errors": shard.payload_errors}


class _HikariStubs:
    """The event manager / factory hikari's shard needs, reduced to recording names (its 'shard level')."""

    def __init__(self, on_event: Any) -> None:
        self.on_event = on_event

    def consume_raw_event(self, name: str, shard: Any, payload: Any) -> None:
        self.on_event(name, payload)

    async def dispatch(self, event: Any, *, return_tasks: bool = False) -> Any:
        return [] if return_tasks else None

    def deserialize_connected_event(self, shard: Any) -> None:
        return None

    def deserialize_disconnected_event(self, shard: Any) -> None:
        return None


def _hikari_shard(url: str, compression: str, stubs: _HikariStubs) -> Any:
    import hikari
    from hikari.impl import config
    from hikari.impl.shard import GatewayShardImpl

    mode = {"zlib-stream": hikari.api.GatewayCompression.TRANSPORT_ZLIB_STREAM,
            "zstd-stream": hikari.api.GatewayCompression.TRANSPORT_ZSTD_STREAM}[compression]
    duck: Any = stubs  # hikari types these as its EventManager / EventFactory; the shard only calls what the stub has
    return GatewayShardImpl(event_manager=duck, event_factory=duck, intents=hikari.Intents.GUILDS,
                            http_settings=config.HTTPSettings(), proxy_settings=config.ProxySettings(), token=TOKEN,
                            url=url, compression=mode)


async def _hikari_start(shard: Any) -> None:
    """``shard.start()`` bounded to 20 s (hikari retries a failing connect forever)."""
    try:
        await asyncio.wait_for(shard.start(), 20)
    except asyncio.TimeoutError:
        raise RuntimeError("hikari did not become ready within 20 s") from None


async def _e2e_hikari(port: int, compression: str, expected: int, workload: str = "route") -> dict[str, Any]:
    names: list[str] = []
    seqs: list[int | None] = []
    stamps = [0.0, 0.0]
    cpu = [0.0, 0.0]
    done = asyncio.get_running_loop().create_future()
    perf = time.perf_counter
    consume = _hikari_consumer(workload)

    def on_event(name: str, payload: Any) -> None:
        consume(name, payload)
        now = perf()
        if not names:
            stamps[0] = now
            cpu[0] = time.process_time()
        names.append(name)
        stamps[1] = now
        if len(names) >= expected and not done.done():
            cpu[1] = time.process_time()
            done.set_result(None)

    shard = _hikari_shard(f"ws://127.0.0.1:{port}/steady", compression, _HikariStubs(on_event))
    await _hikari_start(shard)
    progress = [0]

    async def watch() -> None:
        while not done.done():
            progress[0] = len(names)
            await asyncio.sleep(0.2)

    async def stop() -> None:
        if not done.done():
            done.set_result(None)

    watcher = asyncio.create_task(watch())
    dog = asyncio.create_task(_watchdog(progress, 10.0, stop))
    try:
        await done
    finally:
        dog.cancel()
        watcher.cancel()
        await shard.close()
    return {"names": names, "seqs": seqs, "t_first": stamps[0], "t_last": stamps[1], "cpu_first": cpu[0],
            "cpu_last": cpu[1], "payload_errors": 0}


def _worker_e2e(port: int, scale: str, rounds: int, kinds: list[str]) -> dict[str, Any]:
    from bench import corpus

    _quiet_logs()
    payloads = corpus.load_corpus(corpus.ensure_corpus(scale), "steady").payloads
    expected_names = ["READY"] + [n for n in map(_dispatch_name, payloads) if n is not None]
    expected_seqs = [1] + [int(p[p.index(b'"s":') + 4:p.index(b',"op"')]) for p in payloads if _dispatch_name(p)]
    del payloads
    position_of_seq = {seq: index for index, seq in enumerate(expected_seqs)}
    results: dict[str, dict[str, Any]] = {k: {"rates": [], "cpu_us": [], "problems": []} for k in kinds}

    async def one(kind: str) -> None:
        who, workload, compression = _split_kind(kind)
        problems = results[kind]["problems"]
        if workload == "filtered" and who != "hikari":  # the shard delivers READY and the wanted names only
            wanted = [i for i, name in enumerate(expected_names) if i == 0 or name in FILTERED_NAMES]
        else:
            wanted = list(range(len(expected_names)))
        want_names = [expected_names[i] for i in wanted]
        try:
            if who == "hikari":
                out = await _e2e_hikari(port, compression, len(want_names), workload)
            else:
                out = await e2e_ours(f"ws://127.0.0.1:{port}/steady", compression, who, len(want_names), workload)
        except Exception as exc:  # noqa: BLE001 - reported in the row
            problems.append(f"raised {type(exc).__name__}: {exc}")
            return
        names = out["names"]
        if len(names) != len(want_names):
            problems.append(f"received {len(names)} events, expected {len(want_names)}")
        elif names != want_names:
            bad = next(i for i, (a, b) in enumerate(zip(names, want_names)) if a != b)
            problems.append(f"event {bad} is {names[bad]}, expected {want_names[bad]}")
        elif who != "hikari" and out["seqs"] != [expected_seqs[i] for i in wanted]:
            problems.append("sequence numbers differ from the corpus (lost or duplicated events)")
        if out["payload_errors"]:
            problems.append(f"{out['payload_errors']} payload errors")
        span = out["t_last"] - out["t_first"]
        # Events of the stream processed between the first and the last delivered one (a filtered shard skips
        # most of them, but inflates and scans every one).
        processed = position_of_seq.get(out["seqs"][-1], 0) if who != "hikari" and out["seqs"] else len(names) - 1
        if processed > 0 and span > 0:
            results[kind]["rates"].append(processed / span)
        cpu_span = out["cpu_last"] - out["cpu_first"]
        if processed > 0 and cpu_span > 0:  # the client's CPU time (user + sys) per stream event: robust to load
            results[kind]["cpu_us"].append(cpu_span / processed * 1e6)

    async def main() -> None:
        for index in range(rounds):
            order = kinds[index % len(kinds):] + kinds[:index % len(kinds)]
            for kind in order:
                gc.collect()
                await one(kind)

    asyncio.run(main())
    return {"expected": len(expected_names), "results": results}


async def _stall_ours(url: str, compression: str, big_len: int) -> dict[str, Any]:
    shard = _ours_shard(url, compression, _twins("compiled"))
    return await _stall_run(shard, None, big_len)


async def _stall_run(shard: Any, hikari_shard: Any, big_len: int) -> dict[str, Any]:
    """Ticker + one shard receiving READY then the big GUILD_CREATE; returns the max ticker gap in that window."""
    perf = time.perf_counter
    ticks: list[float] = []
    running = [True]

    async def ticker() -> None:
        sleep = asyncio.sleep
        while running[0]:
            await sleep(0.001)
            ticks.append(perf())

    marks: dict[str, float] = {}
    sizes: dict[str, int] = {}
    tick_task = asyncio.create_task(ticker())
    await asyncio.sleep(0.05)
    if hikari_shard is None:
        progress = [0]
        dog = asyncio.create_task(_watchdog(progress, 30.0, shard.close))
        try:
            async for event in shard.events():
                progress[0] += 1
                marks[event.name] = perf()
                sizes[event.name] = len(event.raw)
                if event.name == "GUILD_CREATE":
                    break
        finally:
            dog.cancel()
        await asyncio.sleep(0.05)
        running[0] = False
        await tick_task
        await shard.close()
    else:
        done = asyncio.get_running_loop().create_future()

        def on_event(name: str, payload: Any) -> None:
            marks[name] = perf()
            sizes[name] = len(payload.get("members", ())) if isinstance(payload, dict) else 0
            if name == "GUILD_CREATE" and not done.done():
                done.set_result(None)

        shard = hikari_shard(on_event)
        await _hikari_start(shard)
        try:
            await asyncio.wait_for(done, 60)
        except asyncio.TimeoutError:
            pass
        await asyncio.sleep(0.05)
        running[0] = False
        await tick_task
        await shard.close()
    if "READY" not in marks or "GUILD_CREATE" not in marks:
        return {"ok": False, "note": f"events seen: {sorted(marks)}"}
    start, end = marks["READY"], marks["GUILD_CREATE"]
    window = [b - a for a, b in zip(ticks, ticks[1:]) if b >= start and a <= end + 0.02]
    baseline = [b - a for a, b in zip(ticks, ticks[1:]) if b < start - 0.005]
    return {"ok": hikari_shard is not None or sizes.get("GUILD_CREATE") == big_len,
            "max_gap": max(window) if window else None, "receive": end - start,
            "baseline_gap": max(baseline) if baseline else None, "size": sizes.get("GUILD_CREATE")}


def _worker_stall(port: int, big: str, rounds: int, hikari: bool) -> dict[str, Any]:
    _quiet_logs()
    big_len = len(_big_guild_create(big))
    kinds = [f"ours/{c}" for c in COMPRESSIONS] + ([f"hikari/{c}" for c in COMPRESSIONS] if hikari else [])
    out: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
    url = f"ws://127.0.0.1:{port}/stall"

    async def main() -> None:
        for _ in range(rounds):
            for kind in kinds:
                who, compression = kind.split("/")
                gc.collect()
                if who == "ours":
                    out[kind].append(await _stall_ours(url, compression, big_len))
                else:
                    def factory(on_event: Any, compression: str = compression) -> Any:
                        return _hikari_shard(url, compression, _HikariStubs(on_event))
                    out[kind].append(await _stall_run(None, factory, big_len))

    asyncio.run(main())
    return {"big_len": big_len, "results": out}


async def _connect_many(port: int, compression: str | None, count: int, first: int, total: int,
                        queue: Any) -> list[Any]:
    import gateway

    import random

    shards = [_ours_shard(f"ws://127.0.0.1:{port}", compression, None, queue, (first + i, total), random.random)
              for i in range(count)]
    for shard in shards:
        shard.start()
    deadline = time.monotonic() + 60 + count * 0.1
    while time.monotonic() < deadline:
        if all(s.status is gateway.ShardStatus.ACTIVE for s in shards):
            break
        await asyncio.sleep(0.05)
    for shard in shards:  # an idle bot has taken its READY
        while shard.queued_events:
            await shard.next_event()
    return shards


def _worker_memory(port: int, compression: str | None, count: int, heartbeat_s: float,
                   trace: bool) -> dict[str, Any]:
    _raise_nofile()
    _quiet_logs()
    import tracemalloc

    import gateway

    async def main() -> dict[str, Any]:
        queue = gateway.IdentifyQueue(delay=0)
        total = count + 2
        warm = await _connect_many(port, compression, 2, 0, total, queue)  # first-use allocations, kept open
        await asyncio.sleep(heartbeat_s + 0.3)
        gc.collect()
        if trace:
            tracemalloc.start(1)
            snap0 = tracemalloc.take_snapshot()
        rss0 = _rss_bytes()
        started = time.perf_counter()
        shards = await _connect_many(port, compression, count, 2, total, queue)
        ready = time.perf_counter() - started
        active = sum(1 for s in shards if s.status is gateway.ShardStatus.ACTIVE)
        await asyncio.sleep(heartbeat_s * 1.5 + 0.3)  # every shard has heartbeated (first beat within one interval)
        for shard in warm + shards:  # the consumer took whatever came after READY
            while shard.queued_events:
                await shard.next_event()
        gc.collect()
        rss1 = _rss_bytes()
        out: dict[str, Any] = {"rss_per_shard": (rss1 - rss0) / count, "active": active, "ready_s": ready,
                               "acked": sum(1 for s in shards if s.latency.recent)}
        if trace:
            snap1 = tracemalloc.take_snapshot()
            stats = snap1.compare_to(snap0, "lineno")
            out["traced_per_shard"] = sum(s.size_diff for s in stats) / count
            out["top"] = [(str(s.traceback[0]).replace(str(ROOT) + "/", ""), s.size_diff / count, s.count_diff / count)
                          for s in sorted(stats, key=lambda s: -s.size_diff)[:12]]
            tracemalloc.stop()
        for shard in warm + shards:
            await shard.close(4000)
        return out

    return asyncio.run(main())


def _worker_inflater(compression: str, count: int) -> dict[str, Any]:
    """RSS of ``count`` compiled-twin inflaters after inflating HELLO + READY + an ACK (what an idle shard has seen)."""
    import zlib

    import zstandard

    from gateway import _inflate

    hello = b'{"t":null,"s":null,"op":10,"d":{"heartbeat_interval":41250}}'
    ack = b'{"t":null,"s":null,"op":11,"d":null}'
    messages_per = []
    for _ in range(count):
        if compression == "zlib-stream":
            zc = zlib.compressobj()
            messages_per.append([zc.compress(p) + zc.flush(zlib.Z_SYNC_FLUSH) for p in (hello, READY, ack)])
        else:
            sc = zstandard.ZstdCompressor().compressobj()
            messages_per.append([sc.compress(p) + sc.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK) for p in (hello, READY, ack)])
    first = _inflate.make_inflater(compression, _inflate.DEFAULT_MAX_INFLATED_SIZE)
    assert first is not None
    first.feed(messages_per[0][0])
    gc.collect()
    rss0 = _rss_bytes()
    keep = []
    for messages in messages_per:
        inflater = _inflate.make_inflater(compression, _inflate.DEFAULT_MAX_INFLATED_SIZE)
        assert inflater is not None
        for message in messages:
            inflater.feed(message)
        keep.append(inflater)
    gc.collect()
    return {"rss_per_inflater": (_rss_bytes() - rss0) / count}


def _worker_scale(port: int, count: int, seconds: float, heartbeat_s: float) -> dict[str, Any]:
    _raise_nofile()
    _quiet_logs()
    import gateway

    async def main() -> dict[str, Any]:
        queue = gateway.IdentifyQueue(delay=0)
        started = time.perf_counter()
        shards = await _connect_many(port, "zstd-stream", count, 0, count, queue)
        ready = time.perf_counter() - started
        active = sum(1 for s in shards if s.status is gateway.ShardStatus.ACTIVE)
        await asyncio.sleep(heartbeat_s)  # every shard is past its first (jittered) beat
        ru0, t0, w0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic(), time.perf_counter()
        await asyncio.sleep(seconds)
        ru1, t1, w1 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic(), time.perf_counter()
        cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
        still = sum(1 for s in shards if s.status is gateway.ShardStatus.ACTIVE)
        closes = sum(s.queued_events for s in shards)  # GATEWAY_CLOSE events: a connection ended
        for shard in shards:
            await shard.close(4000)
        return {"active": active, "still_active": still, "close_events": closes, "ready_s": ready, "t0": t0,
                "t1": t1, "cpu_s": cpu, "wall_s": w1 - w0}

    return asyncio.run(main())


# ----------------------------------------------------------------------------------------------------------------
# orchestration (parent process)
# ----------------------------------------------------------------------------------------------------------------


class _Server:
    """A server subprocess (``python -m MODULE ARGS``, this module by default): prints ``PORT n`` when ready, answers
    one JSON line per command (``ask``), ends when stdin closes (or on ``quit``)."""

    module = "bench.live"

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", self.module, *args], cwd=ROOT, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=_env())
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if not line.startswith("PORT "):
            self.close()
            raise RuntimeError(f"server {args} did not start: {line!r}")
        self.port = int(line.split()[1])

    def ask(self, command: str) -> Any:
        self.proc.stdin.write(command + "\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        return json.loads(self.proc.stdout.readline())  # type: ignore[union-attr]

    def close(self) -> None:
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
        except (BrokenPipeError, ValueError):
            pass
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> _Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _worker(*args: str, timeout: float = 600) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "bench.live", "--worker", *args], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=timeout)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"worker {args[0]} failed ({done.returncode}): {' / '.join(tail)}")
    return json.loads(lines[-1])


def _split_kind(kind: str) -> tuple[str, str, str]:
    """``who/workload/compression`` (``who``: compiled, pure or hikari)."""
    who, workload, compression = kind.split("/")
    return who, workload, compression


def e2e_kinds(twins: list[str], hikari: bool, workloads: tuple[str, ...] = WORKLOADS) -> list[str]:
    """The e2e rows: every workload on the compiled twins, route on the pure ones, hikari's references."""
    kinds = []
    for compression in COMPRESSIONS:
        for twin in twins:
            kinds += [f"{twin}/{w}/{compression}" for w in (workloads if twin == "compiled" else ("route",))]
        if hikari:
            kinds += [f"hikari/{w}/{compression}" for w in HIKARI_WORKLOADS
                      if w in workloads or (w == "touch" and "touch-get" in workloads)]
    return kinds


def _hikari_reference(workload: str) -> str:
    return "touch" if workload == "touch-get" else workload


def _e2e_rows(quick: bool, say: Any, workloads: tuple[str, ...] = WORKLOADS,
              rounds: int | None = None) -> list[dict[str, Any]]:
    scale = "small" if quick else "full"
    rounds = rounds or (3 if quick else 5)
    twins = [t for t in ("compiled", "pure") if _twin_available(t)]
    hikari = _hikari_available()
    kinds = e2e_kinds(twins, hikari, workloads)
    with _Server("--serve-blast", "--scale", scale, "--big", "none") as server:
        say(f"e2e: blast server on port {server.port}; {len(kinds)} rows x {rounds} rounds")
        out = _worker("e2e", "--port", str(server.port), "--scale", scale, "--rounds", str(rounds),
                      "--kinds", ",".join(kinds), timeout=3600)
    expected = out["expected"]
    results = out["results"]
    rows = []
    for kind in kinds:
        who, workload, compression = _split_kind(kind)
        res = results[kind]
        rates = res["rates"]
        reference = results.get(f"hikari/{_hikari_reference(workload)}/{compression}", {}).get("rates")
        ratio = (statistics.median(rates) / statistics.median(reference)) if rates and reference and who != "hikari" else None
        if who == "hikari":
            name = f"hikari GatewayShardImpl {workload} {compression}"
            how = f"consume_raw_event stub does {workload} on the parsed dict (asserts on, no -O)"
        else:
            name = f"Shard {who} {workload} {compression}"
            how = f"async for event in shard.events(): {workload}"
        note = (f"{expected} dispatches ({scale} steady + READY) over loopback TCP, server in its own process; {how}; "
                f"stream events processed / time from READY to the last delivered event; {len(rates)}/{rounds} rounds")
        if res["problems"]:
            note += "; PROBLEMS: " + "; ".join(sorted(set(res["problems"])))
        cpu_us = res.get("cpu_us") or []
        cpu_reference = results.get(f"hikari/{_hikari_reference(workload)}/{compression}", {}).get("cpu_us")
        if cpu_us:
            note += f"; client CPU {statistics.median(cpu_us):.2f} µs/event"
            if cpu_reference and who != "hikari":
                note += f" (hikari / ours by CPU: {statistics.median(cpu_reference) / statistics.median(cpu_us):.2f}x)"
        if ratio is not None:
            note += f"; ratio = / hikari {_hikari_reference(workload)} same compression, same run"
        rows.append(_row("live e2e", name, "events/s", rates, bool(rates) and not res["problems"], note, ratio))
    if not hikari:
        rows.append({"group": "live e2e", "name": "hikari GatewayShardImpl", "unit": "events/s", "median": 0.0,
                     "low": 0.0, "high": 0.0, "ok": True, "note": "skipped: hikari is not installed", "ratio": None,
                     "skipped": True})
    return rows


def _stall_rows(quick: bool, say: Any) -> list[dict[str, Any]]:
    big = "5mb" if quick else "full"
    rounds = 3
    hikari = _hikari_available()
    with _Server("--serve-blast", "--scale", "small", "--big", big) as server:
        say(f"stall: blast server on port {server.port} ({big} GUILD_CREATE)")
        out = _worker("stall", "--port", str(server.port), "--big", big, "--rounds", str(rounds),
                      *(["--hikari"] if hikari else []), timeout=900)
    size_mb = out["big_len"] / 1e6
    what = f"one {size_mb:.1f} MB GUILD_CREATE" + (" (quick mode: generated 5 MB one, not the 25 MB)" if quick else "")
    rows = []
    results = out["results"]
    for compression in COMPRESSIONS:
        ours = [r for r in results[f"ours/{compression}"] if r.get("ok") and r.get("max_gap") is not None]
        peer = [r for r in results.get(f"hikari/{compression}", []) if r.get("ok") and r.get("max_gap") is not None]
        gaps = [r["max_gap"] * 1000 for r in ours]
        peer_gaps = [r["max_gap"] * 1000 for r in peer]
        ratio = statistics.median(peer_gaps) / statistics.median(gaps) if gaps and peer_gaps else None
        base = [r["baseline_gap"] * 1000 for r in ours if r.get("baseline_gap")]
        target = ""
        if gaps and peer_gaps:
            target = (f"; target <= half of hikari's: {'met' if statistics.median(gaps) <= statistics.median(peer_gaps) / 2 else 'NOT met'}"
                      f" (ratio = hikari / ours)")
        ok = len(ours) == rounds
        rows.append(_row("live loop stall", f"Shard compiled {compression}: max loop gap", "ms", gaps, ok,
                         f"{what}; ticker sleep(0.001), idle max gap {max(base) if base else float('nan'):.1f} ms"
                         f"{target}", ratio))
        rows.append(_row("live loop stall", f"Shard compiled {compression}: receive time", "ms",
                         [r["receive"] * 1000 for r in ours], ok,
                         f"{what}: READY delivered -> GUILD_CREATE delivered (includes the loopback transfer)"))
        if hikari:
            rows.append(_row("live loop stall", f"hikari {compression}: max loop gap", "ms", peer_gaps,
                             len(peer) == rounds, f"{what}; reference (inflate + orjson.loads in its receive task)"))
    return rows


def _memory_rows(quick: bool, say: Any, breakdown: bool = False) -> tuple[list[dict[str, Any]], list[str]]:
    count = 50 if quick else 500
    heartbeat_ms = 500 if quick else 2000
    rows = []
    details: list[str] = []
    for compression in ("zlib-stream", "zstd-stream", None):
        label = compression or "no compression"
        with _Server("--serve-fake", "--heartbeat-ms", str(heartbeat_ms)) as server:
            say(f"memory: {count} shards, {label}")
            args = ["memory", "--port", str(server.port), "--shards", str(count), "--heartbeat-ms", str(heartbeat_ms)]
            if compression:
                args += ["--compression", compression]
            out = _worker(*args, timeout=600)
            traced = None
            if breakdown:
                traced = _worker(*args, "--trace", timeout=600)
        kib = out["rss_per_shard"] / 1024
        inflater_kib = None
        if compression:
            inflater_kib = _worker("inflater", "--compression", compression, "--shards", str(count))["rss_per_inflater"] / 1024
        ok = out["active"] == count
        note = (f"{count} idle shards in one process (+2 warm-up), FakeGateway in another, heartbeat {heartbeat_ms} ms; "
                f"{out['active']}/{count} ACTIVE after {out['ready_s']:.1f} s, {out['acked']} with an ACKed heartbeat")
        if inflater_kib is not None:
            note += f"; of which the inflater alone (compiled) ~{inflater_kib:.1f} KiB"
        if compression == "zlib-stream":
            note += f"; target <= 64 KiB: {'met' if kib <= 64 else 'NOT met'}"
        rows.append(_row("live memory", f"RSS per idle shard, {label}", "KiB/shard", [kib], ok, note))
    guild_kib = 1024
    for compression in ("zlib-stream",) if quick else COMPRESSIONS:
        total = count + 2
        with _Server("--serve-fake", "--heartbeat-ms", str(heartbeat_ms), "--guild-kib", str(guild_kib),
                     "--shards", str(total)) as server:
            say(f"memory: {count} shards, {compression}, after one {guild_kib} KiB GUILD_CREATE each")
            out = _worker("memory", "--port", str(server.port), "--shards", str(count), "--heartbeat-ms",
                          str(heartbeat_ms), "--compression", compression, timeout=600)
        rows.append(_row("live memory", f"RSS per shard after one {guild_kib} KiB GUILD_CREATE, {compression}",
                         "KiB/shard", [out["rss_per_shard"] / 1024], out["active"] == count,
                         f"as above, but each shard received READY + one ~{guild_kib} KiB GUILD_CREATE (taken by "
                         f"the consumer); {out['active']}/{count} ACTIVE after {out['ready_s']:.1f} s; "
                         f"what the inflater keeps after a big message"))
        if traced is not None:
            details.append(f"{label}: RSS {traced['rss_per_shard'] / 1024:.1f} KiB/shard under tracemalloc, traced "
                           f"{traced['traced_per_shard'] / 1024:.1f} KiB/shard; top sites (bytes/shard, blocks/shard):")
            details.extend(f"    {size:8.0f} B  {blocks:5.1f}  {where}" for where, size, blocks in traced["top"])
    return rows, details


def _scale_rows(quick: bool, say: Any) -> list[dict[str, Any]]:
    count = 100 if quick else 1000
    seconds = 10.0 if quick else 60.0
    heartbeat_ms = 1500
    with _Server("--serve-fake", "--heartbeat-ms", str(heartbeat_ms)) as server:
        say(f"scale: {count} shards for {seconds:.0f} s, heartbeat {heartbeat_ms} ms")
        out = _worker("scale", "--port", str(server.port), "--shards", str(count), "--seconds", str(seconds),
                      "--heartbeat-ms", str(heartbeat_ms), timeout=seconds + 600)
        stats = server.ask(f"stats {out['t0']} {out['t1']}")
    reconnects = stats["connections"] - count
    zombies = reconnects + stats["resumes"] + (count - out["still_active"]) + out["close_events"]
    cond = (f"{count} shards (zstd-stream), one process, FakeGateway in another, heartbeat {heartbeat_ms} ms, "
            f"{out['wall_s']:.0f} s; {out['active']}/{count} ACTIVE after {out['ready_s']:.1f} s")
    gap_note = (f"{stats['gaps']} heartbeat gaps, median {stats['median_gap'] * 1000:.0f} ms, max "
                f"{stats['max_gap'] * 1000:.0f} ms" if stats["gaps"] else "no heartbeat gaps recorded")
    cpu_us = out["cpu_s"] / (count * out["wall_s"]) * 1e6
    ok_all = out["active"] == count and stats["gaps"] > 0
    return [
        _row("live scale", "heartbeats > 10% late", "count", [stats["late"]], ok_all,
             f"{cond}; server-side arrival gaps > 1.1 x interval; {gap_note}"),
        _row("live scale", "false zombie verdicts (reconnects + resumes)", "count", [zombies], ok_all and zombies == 0,
             f"{cond}; {stats['connections']} connections, {stats['identifies']} identifies, {stats['resumes']} "
             f"resumes, {out['close_events']} GATEWAY_CLOSE events; must be 0"),
        _row("live scale", "client CPU per shard-second", "µs/shard/s", [cpu_us], ok_all,
             f"{cond}; {out['cpu_s']:.2f} s CPU (user+sys, getrusage) over {out['wall_s']:.1f} s"),
    ]


def run(quick: bool, only: set[str] | None = None, progress: Any = None,
        memory_breakdown: bool = False, workloads: tuple[str, ...] = WORKLOADS,
        e2e_rounds: int | None = None) -> list[dict[str, Any]]:
    """All live rows (see the module docstring). ``only``: a subset of {"e2e", "memory", "stall", "scale"};
    ``workloads``: the e2e workloads (a subset of :data:`WORKLOADS`); ``e2e_rounds``: rounds of the e2e rows
    (default 5, quick 3)."""
    from bench import corpus

    started = time.perf_counter()

    def say(message: str) -> None:
        if progress is not None:
            progress(message)
        else:
            print(f"[live {time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr, flush=True)

    corpus.ensure_corpus("small" if quick else "full")  # before the subprocesses, which only read it
    rows: list[dict[str, Any]] = []
    parts = [("e2e", _e2e_rows), ("stall", _stall_rows), ("memory", None), ("scale", _scale_rows)]
    for name, function in parts:
        if only is not None and name not in only:
            continue
        try:
            if name == "memory":
                memory, details = _memory_rows(quick, say, memory_breakdown)
                rows.extend(memory)
                for line in details:
                    say(line)
            elif name == "e2e":
                rows.extend(_e2e_rows(quick, say, workloads, e2e_rounds))
            else:
                rows.extend(function(quick, say))  # type: ignore[misc]
        except Exception as exc:  # noqa: BLE001 - one broken part must not hide the others
            rows.append({"group": f"live {name}", "name": name, "unit": "", "median": 0.0, "low": 0.0, "high": 0.0,
                         "ok": False, "note": f"raised {type(exc).__name__}: {exc}", "ratio": None})
    say(f"done in {time.perf_counter() - started:.0f} s")
    return rows


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.live", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", help="comma-separated subset of e2e,memory,stall,scale")
    parser.add_argument("--memory-breakdown", action="store_true", help="also run the memory rows under tracemalloc")
    parser.add_argument("--json", metavar="PATH")
    parser.add_argument("--serve-blast", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--scale", default="small", help=argparse.SUPPRESS)
    parser.add_argument("--big", default="none", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--kinds", default="compiled/route/zlib-stream", help=argparse.SUPPRESS)
    parser.add_argument("--workloads", help=f"comma-separated subset of {','.join(WORKLOADS)} for the e2e rows")
    parser.add_argument("--e2e-rounds", type=int, help="interleaved rounds of the e2e rows (default 5; --quick 3)")
    parser.add_argument("--hikari", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--compression", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--shards", type=int, default=10, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=5.0, help=argparse.SUPPRESS)
    parser.add_argument("--heartbeat-ms", type=int, default=2000, help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--guild-kib", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.serve_blast:
        asyncio.run(_blast_server(args.scale, args.big))
        return 0
    if args.serve_fake:
        _quiet_logs()
        asyncio.run(_fake_server(args.heartbeat_ms, args.guild_kib, args.shards))
        return 0
    if args.worker:
        kind = args.worker
        if kind == "e2e":
            out = _worker_e2e(args.port, args.scale, args.rounds, args.kinds.split(","))
        elif kind == "stall":
            out = _worker_stall(args.port, args.big, args.rounds, args.hikari)
        elif kind == "memory":
            out = _worker_memory(args.port, args.compression, args.shards, args.heartbeat_ms / 1000, args.trace)
        elif kind == "inflater":
            out = _worker_inflater(args.compression, args.shards)
        elif kind == "scale":
            out = _worker_scale(args.port, args.shards, args.seconds, args.heartbeat_ms / 1000)
        else:
            parser.error(f"unknown worker {kind}")
        print(json.dumps(out), flush=True)
        return 0

    only = {part.strip() for part in args.only.split(",")} if args.only else None
    workloads = tuple(w.strip() for w in args.workloads.split(",")) if args.workloads else WORKLOADS
    unknown = set(workloads) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workloads {sorted(unknown)}; choose from {','.join(WORKLOADS)}")
    rows = run(args.quick, only, memory_breakdown=args.memory_breakdown, workloads=workloads, e2e_rounds=args.e2e_rounds)
    for row in rows:
        ratio = "" if row.get("ratio") is None else f"  x{row['ratio']:.2f}"
        print(f"{'ok ' if row['ok'] else 'BAD'} {row['group']:16} | {row['name']:58} | {row['median']:>12,.2f} "
              f"[{row['low']:,.2f} - {row['high']:,.2f}] {row['unit']}{ratio}\n      {row['note']}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0 if all(row["ok"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(_main())
