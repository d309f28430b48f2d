"""Micro-benchmarks of stream inflation: both twins, and the candidate backends the pure twin can use.

Run explicitly (not part of ``tests/``)::

    cd /work/main && /work/venv/bin/python -m pytest bench/bench_inflate.py --benchmark-only -q
    cd /work/main && /work/venv/bin/python bench/bench_inflate.py        # table: medians and spreads, msgs/s, MB/s

Two workloads, compressed the way Discord does it (one deflate context with Z_SYNC_FLUSH per message; one zstd
context with a block flush per message, the frame never ended):

* ``events``: 2000 MESSAGE_CREATE-like dispatches of ~850 bytes each, inflated one after the other through one
  context (the steady state of a large bot);
* ``guild``: one GUILD_CREATE of a large guild (several MB of members and presences), inflated in one message;
* ``corpus steady`` (table only): 5000 payloads of the steady mix from ``bench/corpus.py``.
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import zstandard  # noqa: E402

EVENT_COUNT = 2000
GUILD_MEMBERS = 40_000


def _snowflake(rng: random.Random) -> str:
    return str(rng.randrange(10**17, 10**19))


def _user(rng: random.Random) -> dict[str, Any]:
    return {
        "id": _snowflake(rng),
        "username": "".join(rng.choice("abcdefghijklmnopqrstuvwxyz_0123456789") for _ in range(rng.randrange(4, 16))),
        "global_name": rng.choice([None, "Some Display Name", "другое имя", "名前"]),
        "avatar": "".join(rng.choice("0123456789abcdef") for _ in range(32)),
        "discriminator": "0",
        "public_flags": rng.choice([0, 64, 128, 256]),
        "avatar_decoration_data": None,
    }


def make_events(count: int = EVENT_COUNT, seed: int = 1) -> list[bytes]:
    """Deterministic MESSAGE_CREATE-like gateway payloads, ~850 bytes each."""
    rng = random.Random(seed)
    words = "the a gateway shard heartbeat resume ready guild member message create update emoji 🎉 ok lol".split()
    guild_id, channel_ids = _snowflake(rng), [_snowflake(rng) for _ in range(20)]
    events = []
    for sequence in range(1, count + 1):
        author = _user(rng)
        data = {
            "type": 0,
            "tts": False,
            "timestamp": f"2026-11-28T05:{sequence % 60:02d}:{rng.randrange(60):02d}.{rng.randrange(10**6):06d}+00:00",
            "pinned": False,
            "nonce": _snowflake(rng),
            "mentions": [],
            "mention_roles": [],
            "mention_everyone": False,
            "member": {
                "roles": [_snowflake(rng) for _ in range(rng.randrange(0, 4))],
                "premium_since": None,
                "pending": False,
                "nick": None,
                "mute": False,
                "joined_at": "2024-03-01T12:00:00.000000+00:00",
                "flags": 0,
                "deaf": False,
                "communication_disabled_until": None,
                "avatar": None,
            },
            "id": _snowflake(rng),
            "flags": 0,
            "embeds": [],
            "edited_timestamp": None,
            "content": " ".join(rng.choice(words) for _ in range(rng.randrange(2, 24))),
            "components": [],
            "channel_id": rng.choice(channel_ids),
            "author": author,
            "attachments": [],
            "guild_id": guild_id,
        }
        payload = {"t": "MESSAGE_CREATE", "s": sequence, "op": 0, "d": data}
        events.append(json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode())
    return events


def make_guild(members: int = GUILD_MEMBERS, seed: int = 2) -> bytes:
    """One deterministic GUILD_CREATE of a large guild (several MB)."""
    rng = random.Random(seed)
    member_list, presences = [], []
    for _ in range(members):
        user = _user(rng)
        member_list.append(
            {
                "user": user,
                "roles": [_snowflake(rng) for _ in range(rng.randrange(0, 5))],
                "joined_at": "2023-01-01T00:00:00.000000+00:00",
                "nick": None,
                "deaf": False,
                "mute": False,
                "flags": 0,
                "pending": False,
            }
        )
        if rng.random() < 0.3:
            presences.append({"user": {"id": user["id"]}, "status": rng.choice(["online", "idle", "dnd"]),
                              "client_status": {"desktop": "online"}, "activities": []})
    data = {"id": _snowflake(rng), "name": "Large Guild", "member_count": members, "members": member_list,
            "presences": presences, "channels": [], "roles": [], "large": True}
    return json.dumps({"t": "GUILD_CREATE", "s": 2, "op": 0, "d": data}, separators=(",", ":")).encode()


def zlib_stream(payloads: list[bytes]) -> list[bytes]:
    """Compress as Discord's zlib-stream: one deflate context, Z_SYNC_FLUSH after each message."""
    compressor = zlib.compressobj()
    return [compressor.compress(p) + compressor.flush(zlib.Z_SYNC_FLUSH) for p in payloads]


def zstd_stream(payloads: list[bytes]) -> list[bytes]:
    """Compress as Discord's zstd-stream: one context, a flush after each message, the frame never ended."""
    compressor = zstandard.ZstdCompressor().compressobj()
    return [compressor.compress(p) + compressor.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK) for p in payloads]


def _zlib_candidates() -> dict[str, Callable[[], Any]]:
    """decompressobj factories of the zlib backends the pure twin may use, and that are importable here."""
    candidates: dict[str, Callable[[], Any]] = {"stdlib zlib": zlib.decompressobj}
    try:
        from isal import isal_zlib

        candidates["isal"] = isal_zlib.decompressobj
    except ImportError:
        pass
    try:
        from zlib_ng import zlib_ng

        candidates["zlib-ng"] = zlib_ng.decompressobj
    except ImportError:
        pass
    return candidates


def _twins() -> dict[str, Any]:
    from gateway import _inflate_py

    twins: dict[str, Any] = {"pure twin": _inflate_py}
    try:
        from gateway._speedups import _inflate

        twins["compiled twin"] = _inflate
    except ImportError:
        pass
    return twins


def _runners() -> dict[str, tuple[str, Callable[[], Callable[[list[bytes]], Any]]]]:
    """name -> (codec, factory of a function that inflates a list of compressed messages through one context)."""
    runners: dict[str, tuple[str, Callable[[], Callable[[list[bytes]], Any]]]] = {}
    for name, factory in _zlib_candidates().items():

        def make(factory: Callable[[], Any] = factory) -> Callable[[list[bytes]], Any]:
            decompress = factory().decompress
            return lambda messages: [decompress(m) for m in messages]

        runners[f"{name} decompressobj"] = ("zlib", make)
    runners["zstandard decompressobj"] = (
        "zstd",
        lambda: (lambda decompress: lambda messages: [decompress(m) for m in messages])(
            zstandard.ZstdDecompressor().decompressobj().decompress
        ),
    )
    for twin_name, module in _twins().items():
        for codec, cls in (("zlib", module.ZlibStreamInflater), ("zstd", module.ZstdStreamInflater)):

            def make_twin(cls: type = cls) -> Callable[[list[bytes]], Any]:
                feed = cls().feed
                return lambda messages: [feed(m) for m in messages]

            label = f"{twin_name} ({module.ZLIB_BACKEND})" if codec == "zlib" else twin_name
            runners[f"{codec}: {label}"] = (codec, make_twin)
    # The pure twin on every installed backend: the measurement behind its default (README, "zlib backend").
    from gateway import _inflate_py

    for backend in _inflate_py.installed_zlib_backends():
        if backend == _inflate_py.ZLIB_BACKEND:
            continue

        def make_backend(backend: str = backend) -> Callable[[list[bytes]], Any]:
            feed = _inflate_py.zlib_stream_inflater(backend).feed
            return lambda messages: [feed(m) for m in messages]

        runners[f"zlib: pure twin ({backend})"] = ("zlib", make_backend)
    return runners


# ---------------------------------------------------------------- pytest-benchmark

try:
    import pytest
except ImportError:  # pragma: no cover
    pytest = None  # type: ignore[assignment]

if pytest is not None:
    _EVENTS = make_events()
    _STREAMS = {"zlib": {"events": zlib_stream(_EVENTS)}, "zstd": {"events": zstd_stream(_EVENTS)}}

    @pytest.fixture(scope="module")
    def guild_streams() -> dict[str, list[bytes]]:
        guild = make_guild()
        return {"zlib": zlib_stream([guild]), "zstd": zstd_stream([guild])}

    @pytest.mark.parametrize("runner", sorted(_runners()))
    def test_events(benchmark: Any, runner: str) -> None:
        codec, make = _runners()[runner]
        messages = _STREAMS[codec]["events"]
        benchmark.extra_info["messages"] = len(messages)
        benchmark.pedantic(lambda: make()(messages), rounds=15, iterations=1, warmup_rounds=1)

    @pytest.mark.parametrize("runner", sorted(_runners()))
    def test_guild(benchmark: Any, runner: str, guild_streams: dict[str, list[bytes]]) -> None:
        codec, make = _runners()[runner]
        messages = guild_streams[codec]
        benchmark.pedantic(lambda: make()(messages), rounds=10, iterations=1, warmup_rounds=1)


# ---------------------------------------------------------------- standalone table


def _measure(run: Callable[[], Any], rounds: int) -> list[float]:
    run()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    events = make_events()
    guild = make_guild()
    workloads = {
        "events": (events, {"zlib": zlib_stream(events), "zstd": zstd_stream(events)}, 15),
        "guild": ([guild], {"zlib": zlib_stream([guild]), "zstd": zstd_stream([guild])}, 9),
    }
    try:
        from bench import corpus  # the shared deterministic corpus: the steady mix of a large bot

        steady = corpus.generate_steady(count=5000)
        workloads["corpus steady"] = (steady, {"zlib": zlib_stream(steady), "zstd": zstd_stream(steady)}, 15)
        print(f"corpus steady: {len(steady)} payloads, mean {sum(map(len, steady)) / len(steady):.0f} B")
    except ImportError:
        pass
    mean_event = sum(map(len, events)) / len(events)
    print(f"events: {len(events)} payloads, mean {mean_event:.0f} B, zlib {sum(map(len, workloads['events'][1]['zlib']))} B, "
          f"zstd {sum(map(len, workloads['events'][1]['zstd']))} B compressed")
    print(f"guild: {len(guild) / 1e6:.2f} MB, zlib {len(workloads['guild'][1]['zlib'][0]) / 1e6:.2f} MB, "
          f"zstd {len(workloads['guild'][1]['zstd'][0]) / 1e6:.2f} MB compressed")
    for workload, (payloads, streams, rounds) in workloads.items():
        total = sum(map(len, payloads))
        print(f"\n{workload}: median (min-max) over {rounds} rounds, each a fresh context over the whole stream")
        for name, (codec, make) in _runners().items():
            messages = streams[codec]
            outputs = make()(messages)
            assert b"".join(outputs) == b"".join(payloads), name
            times = _measure(lambda: make()(messages), rounds)
            med, low, high = statistics.median(times), min(times), max(times)
            print(f"  {name:42s} {len(payloads) / med:>12,.0f} msg/s ({len(payloads) / high:,.0f}-{len(payloads) / low:,.0f})"
                  f"  {total / med / 1e6:8.0f} MB/s ({total / high / 1e6:.0f}-{total / low / 1e6:.0f})")


if __name__ == "__main__":
    main()
