"""End to end over Redis: fake gateway -> forwarder -> Redis -> EventConsumer, ours next to a naive hikari forwarder.

``python -m bench.redis_bench [--events 50000] [--rounds 3] [--rate 20000]`` (needs ``redis-server`` on PATH or
``/usr/bin``, the ``redis`` extra, and hikari for the naive row). Everything runs on this machine, in one run, rows
interleaved round by round:

- a gateway server process (this module with ``--serve``) sends HELLO, waits for IDENTIFY, then sends READY and the
  steady mix of ``bench/corpus.py`` (zstd-stream), either as fast as the socket takes it (``/blast``) or paced at
  ``--rate`` events/s (``/paced``);
- **ours**: ``python -m gateway --shards 0-0/1 --redis URL --gateway-url ...`` (the supervisor and one worker, a
  real ``RedisForwarder``) with the filter off (every dispatch) or on (``MESSAGE_CREATE,INTERACTION_CREATE``);
- **naive**: hikari's shard with an event-manager stub that takes every parsed payload, re-encodes it with orjson
  (as a whole envelope) and XADDs it (fields shard, t, s, payload) in pipelines of whatever queued up during the previous round trip;
  filtered: the same, dropping unwanted names after the parse.

Measured: **events/s into Redis** (from the stream's own entry ids: Redis's clock at each XADD, first to last),
**Redis CPU** (``INFO cpu`` user+sys during the run, per event), **latency p50/p99** in the paced run (an
``EventConsumer`` reading live: arrival at the consumer minus the moment the server wrote the event; both processes
use CLOCK_MONOTONIC), and the **EventConsumer's own rate** reading the filled stream.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TOKEN = "MTAwMDAwMDAwMDAwMDAwMDAw.x.y"  # hikari wants base64 of a numeric id in front
FILTERED = "MESSAGE_CREATE,INTERACTION_CREATE"
HELLO = b'{"t":null,"s":null,"op":10,"d":{"heartbeat_interval":3600000}}'
READY = (b'{"t":"READY","s":1,"op":0,"d":{"v":10,"user":{"id":"1000000000000000000","username":"bench",'
         b'"discriminator":"0","bot":true},"guilds":[],"session_id":"bench-session","resume_gateway_url":'
         b'"ws://127.0.0.1:1","shard":[0,1],"application":{"id":"1000000000000000001","flags":0}}}')
_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------------------------ gateway server

def _payloads(count: int) -> list[bytes]:
    from bench import corpus

    steady = corpus.generate_steady(count=count, start_seq=2)
    return [READY, *steady]


def _frame(opcode: int, data: bytes) -> bytes:
    size = len(data)
    first = 0x80 | opcode
    if size < 126:
        head = struct.pack("!BB", first, size)
    elif size < 65536:
        head = struct.pack("!BBH", first, 126, size)
    else:
        head = struct.pack("!BBQ", first, 127, size)
    return head + data


async def _serve(count: int, rate: int) -> None:
    from bench import corpus

    payloads = _payloads(count)
    messages = corpus.compress_zstd([HELLO, *payloads])
    frames = [_frame(2, message) for message in messages]
    blob = b"".join(frames[1:])

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            path = lines[0].split(" ")[1].split("?")[0].rstrip("/")
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
            accept = base64.b64encode(hashlib.sha1(headers["sec-websocket-key"].encode() + _WS_GUID).digest())
            writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n" + frames[0])
            while True:
                first = await reader.readexactly(2)
                size = first[1] & 0x7F
                if size == 126:
                    size = struct.unpack("!H", await reader.readexactly(2))[0]
                elif size == 127:
                    size = struct.unpack("!Q", await reader.readexactly(8))[0]
                mask = await reader.readexactly(4)
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(await reader.readexactly(size)))
                if first[0] & 0x0F == 8:
                    return
                try:
                    op = json.loads(data).get("op")
                except ValueError:
                    op = None
                if op == 2:
                    break
            t0 = time.perf_counter()
            if path == "/paced":
                print(f"T0 {t0!r}", flush=True)
                tick = 0.002
                per_tick = max(1, int(rate * tick))
                sent = 0
                while sent < len(frames) - 1:
                    target = t0 + sent / rate
                    delay = target - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    chunk = frames[1 + sent:1 + sent + per_tick]
                    writer.write(b"".join(chunk))
                    sent += len(chunk)
                    await writer.drain()
            else:
                view = memoryview(blob)
                for start in range(0, len(view), 1 << 20):
                    writer.write(view[start:start + (1 << 20)])
                    await writer.drain()
            await reader.read()  # until the client goes away
        except (asyncio.IncompleteReadError, ConnectionError, KeyError, IndexError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    server.close()


# ----------------------------------------------------------------------------------------------- naive forwarder

async def _naive(redis_url: str, gateway_url: str, wanted: str | None) -> None:
    import orjson
    import redis.asyncio as aioredis

    from bench.live import _hikari_shard, _HikariStubs

    client = aioredis.Redis.from_url(redis_url, protocol=2)
    pending: list[tuple[str, int, Any]] = []
    wake = asyncio.Event()
    names = set(wanted.split(",")) if wanted else None

    sequence = [0]

    def on_event(name: str, payload: Any) -> None:
        sequence[0] += 1  # one shard, consecutive sequences from READY's 1 (hikari does not hand out "s")
        if names is not None and name not in names:
            return
        pending.append((name, sequence[0], payload))
        wake.set()

    async def flush() -> None:
        while True:
            await wake.wait()
            wake.clear()
            while pending:
                batch = pending[:]
                del pending[:]
                pipe = client.pipeline(transaction=False)
                for name, seq, payload in batch:
                    envelope = orjson.dumps({"t": name, "s": seq, "op": 0, "d": payload})
                    pipe.xadd("gateway:events", {"shard": 0, "t": name, "s": seq, "payload": envelope},
                              maxlen=1_000_000, approximate=True)
                await pipe.execute()

    shard = _hikari_shard(gateway_url, "zstd-stream", _HikariStubs(on_event))
    flusher = asyncio.create_task(flush())
    await asyncio.wait_for(shard.start(), 30)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    flusher.cancel()
    await shard.close()


# ---------------------------------------------------------------------------------------------------- the bench

class Redis:
    def __init__(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.directory = tempfile.mkdtemp(prefix="redis-bench-")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.directory, "--save", "",
             "--appendonly", "no", "--protected-mode", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        self.client = redis.Redis(port=self.port, protocol=2)
        for _ in range(200):
            try:
                self.client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.02)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def cpu(self) -> float:
        info = self.client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    def stop(self) -> None:
        self.client.close()
        self.process.terminate()
        self.process.wait(10)
        shutil.rmtree(self.directory, ignore_errors=True)


def _spawn(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=env or dict(os.environ), cwd=ROOT)


def _forwarder(kind: str, redis: Redis, gateway_url: str) -> subprocess.Popen[str]:
    if kind.startswith("ours"):
        env = dict(os.environ, DISCORD_TOKEN=TOKEN)
        events = FILTERED if kind.endswith("filtered") else "all"
        return _spawn("-m", "gateway", "--shards", "0-0/1", "--redis", redis.url, "--gateway-url", gateway_url,
                      "--events", events, "--identify-delay", "0", env=env)
    return _spawn("-m", "bench.redis_bench", "--naive", redis.url, gateway_url,
                  FILTERED if kind.endswith("filtered") else "")


def _tree_cpu(pid: int) -> float:
    """CPU seconds (user + sys) used so far by ``pid`` and its descendants (Linux /proc)."""
    total = 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            for child in children.read().split():
                total += _tree_cpu(int(child))
    except (FileNotFoundError, ProcessLookupError):
        pass
    return total


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        if process.args[1:3] == ["-m", "gateway"]:  # type: ignore[index]
            process.send_signal(signal.SIGTERM)
        elif process.stdin is not None:
            try:
                process.stdin.write("\n")
                process.stdin.flush()
            except BrokenPipeError:
                pass
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    for pipe in (process.stdin, process.stdout):
        if pipe is not None:
            pipe.close()


def _expected(payloads: list[bytes], filtered: bool) -> int:
    if not filtered:
        return len(payloads)
    wanted = [name.encode() for name in FILTERED.split(",")]
    return sum(1 for p in payloads if p[6:p.index(b'"', 6)] in wanted)


def throughput(kind: str, redis: Redis, port: int, expected: int, received: int) -> dict[str, Any]:
    """One run over the blast stream: ``expected`` entries should reach Redis out of ``received`` gateway events."""
    redis.client.flushall()
    cpu0 = redis.cpu()
    process = _forwarder(kind, redis, f"ws://127.0.0.1:{port}/blast")
    start = time.monotonic()
    while not redis.client.xlen("gateway:events") and time.monotonic() - start < 60:
        time.sleep(0.002)
    forwarder_cpu0 = _tree_cpu(process.pid)  # from the first entry on: the receive and publish work only
    try:
        deadline, last, since = time.monotonic() + 120, -1, time.monotonic()
        while True:
            length = redis.client.xlen("gateway:events")
            if length >= expected:
                break
            if length != last:
                last, since = length, time.monotonic()
            if time.monotonic() - since > 15 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        cpu1 = redis.cpu()
        forwarder_cpu = _tree_cpu(process.pid) - forwarder_cpu0
    finally:
        _stop(process)
    # From the first dispatch (READY) to the last one: ours also publishes GATEWAY_* entries (HELLO before READY,
    # GATEWAY_CLOSE while it shuts down) that must not stretch the span.
    count = redis.client.xlen("gateway:events")
    first = [e for e in redis.client.xrange("gateway:events", count=10) if not e[1][b"t"].startswith(b"GATEWAY_")]
    last_entry = [e for e in redis.client.xrevrange("gateway:events", count=10)
                  if not e[1][b"t"].startswith(b"GATEWAY_")]
    span_ms = int(last_entry[0][0].split(b"-")[0]) - int(first[0][0].split(b"-")[0]) if first and last_entry else 0
    rate = (count - 1) / (span_ms / 1000) if span_ms > 0 else float("nan")
    input_rate = received / (span_ms / 1000) if span_ms > 0 else float("nan")
    return {"kind": kind, "count": count, "expected": expected, "rate": rate, "span_ms": span_ms,
            "input_rate": input_rate, "forwarder_cpu_us_per_input": forwarder_cpu / received * 1e6,
            "redis_cpu_us_per_event": (cpu1 - cpu0) / max(count, 1) * 1e6,
            "forwarder_cpu_us_per_event": forwarder_cpu / max(count, 1) * 1e6,
            "redis_cpu_share": (cpu1 - cpu0) / max(span_ms / 1000, 1e-9)}


async def _latency(kind: str, redis: Redis, port: int, expected: int, rate: int, payloads: list[bytes],
                   t0_line: asyncio.Future[str]) -> dict[str, Any]:
    from gateway.redis import EventConsumer

    redis.client.flushall()
    process = _forwarder(kind, redis, f"ws://127.0.0.1:{port}/paced")
    schedule = {}
    for index, payload in enumerate(payloads):
        seq = payload[payload.index(b'"s":') + 4:payload.index(b',"op"')]
        if seq != b"null":
            schedule[int(seq)] = index
    consumer = EventConsumer(redis.url, group="bench", consumer="c", block=0.05, count=512)
    arrivals: list[tuple[int, float]] = []
    perf = time.perf_counter
    try:
        async def read() -> None:
            async for event in consumer:
                if event.seq is not None:
                    arrivals.append((event.seq, perf()))
                if len(arrivals) >= expected:
                    return

        await asyncio.wait_for(read(), expected / rate + 60)
    except asyncio.TimeoutError:
        pass
    finally:
        await consumer.close()
        _stop(process)
    t0 = float((await asyncio.wait_for(t0_line, 10)).split()[1])
    latencies = sorted((at - (t0 + schedule[seq] / rate)) * 1000 for seq, at in arrivals if seq in schedule)
    if not latencies:
        return {"kind": kind, "p50_ms": float("nan"), "p99_ms": float("nan"), "count": 0}
    return {"kind": kind, "count": len(latencies), "p50_ms": latencies[len(latencies) // 2],
            "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]}


def consumer_rate(redis: Redis) -> float:
    from gateway.redis import EventConsumer

    async def body() -> float:
        total = redis.client.xlen("gateway:events")
        consumer = EventConsumer(redis.url, group=f"rate-{time.monotonic_ns()}", consumer="c", count=1000, block=0.05)
        seen = 0
        start = time.perf_counter()
        async for event in consumer:
            seen += 1
            if seen % 1000 == 0:
                await consumer.ack_many(list(consumer._ids))  # noqa: SLF001 - bench: ack what is pending
            if seen >= total:
                break
        elapsed = time.perf_counter() - start
        await consumer.close()
        return seen / elapsed

    return asyncio.run(body())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.redis_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=int, default=5_000, help="paced run, events/s")
    parser.add_argument("--kinds", default="ours,ours-filtered,naive,naive-filtered")
    parser.add_argument("--serve", nargs=2, type=int, metavar=("COUNT", "RATE"), help=argparse.SUPPRESS)
    parser.add_argument("--naive", nargs=3, metavar=("REDIS", "GATEWAY", "WANTED"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(_serve(*args.serve))
        return 0
    if args.naive:
        asyncio.run(_naive(args.naive[0], args.naive[1], args.naive[2] or None))
        return 0

    kinds = args.kinds.split(",")
    payloads = _payloads(args.events)
    redis = Redis()
    server = _spawn("-m", "bench.redis_bench", "--serve", str(args.events), str(args.rate))
    assert server.stdout is not None
    port = int(server.stdout.readline().split()[1])
    results: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    latencies: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds if not kind.endswith("filtered")}
    consumer_rates: list[float] = []
    load = os.getloadavg()[0]
    try:
        for round_index in range(args.rounds):
            for kind in kinds:
                row = throughput(kind, redis, port, _expected(payloads, kind.endswith("filtered")), len(payloads))
                results[kind].append(row)
                print(f"round {round_index + 1} {kind:15s} {row['count']:>7}/{row['expected']:<7} "
                      f"{row['rate']:>10,.0f} events/s  forwarder CPU {row['forwarder_cpu_us_per_event']:.1f} us/event  "
                      f"Redis CPU {row['redis_cpu_us_per_event']:.2f} us/event "
                      f"({row['redis_cpu_share'] * 100:.0f} % of a core)", flush=True)
                if kind == "ours":
                    consumer_rates.append(consumer_rate(redis))
                    print(f"round {round_index + 1} EventConsumer reading the stream: {consumer_rates[-1]:,.0f} "
                          f"events/s", flush=True)
            for kind in latencies:
                reader = asyncio.run(_paced(kind, redis, port, len(payloads), args.rate, payloads, server))
                latencies[kind].append(reader)
                print(f"round {round_index + 1} {kind:15s} paced {args.rate}/s: p50 {reader['p50_ms']:.1f} ms, "
                      f"p99 {reader['p99_ms']:.1f} ms ({reader['count']} events)", flush=True)
    finally:
        _stop(server)
        redis.stop()
    print(f"\nsummary: {args.events} steady-mix events, zstd-stream, {args.rounds} rounds, load average at start "
          f"{load:.2f} (2 cores, shared machine); medians (min-max)")
    for kind, rows in results.items():
        rates = [row["rate"] for row in rows]
        cpu = [row["redis_cpu_us_per_event"] for row in rows]
        own = [row["forwarder_cpu_us_per_event"] for row in rows]
        complete = all(row["count"] >= row["expected"] - 40 for row in rows)
        inputs = [row["input_rate"] for row in rows]
        per_input = [row["forwarder_cpu_us_per_input"] for row in rows]
        print(f"  {kind:15s} {statistics.median(rates):>10,.0f} entries/s ({min(rates):,.0f}-{max(rates):,.0f})  "
              f"gateway events/s {statistics.median(inputs):,.0f}  "
              f"forwarder CPU {statistics.median(own):.1f} us/entry ({min(own):.1f}-{max(own):.1f}), "
              f"{statistics.median(per_input):.1f} us/gateway event  "
              f"Redis CPU {statistics.median(cpu):.2f} us/entry  complete={complete}")
    for a, b, label in (("ours", "naive", "filter off"), ("ours-filtered", "naive-filtered", "filter on")):
        if a in results and b in results:
            own_a = statistics.median(r["forwarder_cpu_us_per_input"] for r in results[a])
            own_b = statistics.median(r["forwarder_cpu_us_per_input"] for r in results[b])
            print(f"  naive / ours forwarder CPU per gateway event ({label}): {own_b / own_a:.2f}x")
            in_a = statistics.median(r["input_rate"] for r in results[a])
            in_b = statistics.median(r["input_rate"] for r in results[b])
            print(f"  ours / naive gateway events/s ({label}): {in_a / in_b:.2f}x")
    for kind, rows in latencies.items():
        print(f"  {kind:15s} paced {args.rate}/s latency p50 {statistics.median(r['p50_ms'] for r in rows):.1f} ms, "
              f"p99 {statistics.median(r['p99_ms'] for r in rows):.1f} ms")
    if consumer_rates:
        print(f"  EventConsumer alone: {statistics.median(consumer_rates):,.0f} events/s")
    return 0


async def _paced(kind: str, redis: Redis, port: int, expected: int, rate: int, payloads: list[bytes],
                 server: subprocess.Popen[str]) -> dict[str, Any]:
    """The paced run: the server prints ``T0 <perf_counter>`` when it starts sending, read while the consumer runs."""
    assert server.stdout is not None
    t0_line = asyncio.get_running_loop().run_in_executor(None, server.stdout.readline)
    return await _latency(kind, redis, port, expected, rate, payloads, t0_line)


if __name__ == "__main__":
    sys.exit(main())
