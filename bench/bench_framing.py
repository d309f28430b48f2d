"""Micro-benchmarks of websocket framing: both twins' FrameReader and build_frame, and websockets' sans-I/O reader.

Run explicitly (not part of the test suite)::

    cd /work/main && python -m pytest bench/bench_framing.py --benchmark-only --benchmark-columns=median,iqr,ops

One round of a ``feed`` benchmark reads a whole stream, so messages/s = ops x ``extra_info["messages"]``
(printed by ``--benchmark-verbose`` / stored with ``--benchmark-json``). Streams are built here, deterministically
(fixed seed, no network): 20 000 binary messages of 700-1000 bytes (about 850 on average, like zlib-stream
gateway events) fed in 64 KiB chunks, the same as JSON text, and one 8 MiB message (a large GUILD_CREATE).
"""

from __future__ import annotations

import importlib
import random
from types import ModuleType
from typing import Callable

import pytest

TWINS = ("gateway._speedups._framing", "gateway._framing_py")
CHUNK_SIZE = 65536
MESSAGE_COUNT = 20_000
OP_TEXT, OP_BINARY = 1, 2


def unmasked_frame(opcode: int, payload: bytes) -> bytes:
    size = len(payload)
    if size < 126:
        return bytes((0x80 | opcode, size)) + payload
    if size < 65536:
        return bytes((0x80 | opcode, 126)) + size.to_bytes(2, "big") + payload
    return bytes((0x80 | opcode, 127)) + size.to_bytes(8, "big") + payload


def binary_messages(count: int = MESSAGE_COUNT, seed: int = 850) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(rng.randint(700, 1000)) for _ in range(count)]


def text_messages(count: int = MESSAGE_COUNT, seed: int = 851) -> list[bytes]:
    rng = random.Random(seed)
    return [
        (
            '{"t":"MESSAGE_CREATE","s":%d,"op":0,"d":{"content":"%s","author":{"username":"zażółć"}}}'
            % (i, "".join(rng.choice("abcdefghij klmnopqrstuvwxyz") for _ in range(rng.randint(620, 920))))
        ).encode()
        for i in range(count)
    ]


def chunked(stream: bytes, size: int = CHUNK_SIZE) -> list[bytes]:
    return [stream[i : i + size] for i in range(0, len(stream), size)]


BINARY_CHUNKS = chunked(b"".join(unmasked_frame(OP_BINARY, m) for m in binary_messages()))
TEXT_CHUNKS = chunked(b"".join(unmasked_frame(OP_TEXT, m) for m in text_messages()))
LARGE_CHUNKS = chunked(unmasked_frame(OP_BINARY, random.Random(8).randbytes(8 << 20)))
PAYLOAD_850 = random.Random(9).randbytes(850)


def load(name: str) -> ModuleType:
    return importlib.import_module(name)


def reader_run(module: ModuleType, chunks: list[bytes]) -> Callable[[], int]:
    def run() -> int:
        feed = module.FrameReader().feed
        return sum(len(feed(chunk)) for chunk in chunks)

    return run


@pytest.mark.parametrize("twin", TWINS)
def test_feed_binary_850_in_64k_chunks(benchmark, twin: str) -> None:
    benchmark.group = "feed: 20k x ~850 B binary, 64 KiB chunks"
    benchmark.extra_info["messages"] = MESSAGE_COUNT
    assert benchmark(reader_run(load(twin), BINARY_CHUNKS)) == MESSAGE_COUNT


@pytest.mark.parametrize("twin", TWINS)
def test_feed_text_850_in_64k_chunks(benchmark, twin: str) -> None:
    benchmark.group = "feed: 20k x ~850 B text (UTF-8 checked), 64 KiB chunks"
    benchmark.extra_info["messages"] = MESSAGE_COUNT
    assert benchmark(reader_run(load(twin), TEXT_CHUNKS)) == MESSAGE_COUNT


@pytest.mark.parametrize("twin", TWINS)
def test_feed_one_8mib_message_in_64k_chunks(benchmark, twin: str) -> None:
    benchmark.group = "feed: one 8 MiB binary message, 64 KiB chunks"
    benchmark.extra_info["messages"] = 1
    assert benchmark(reader_run(load(twin), LARGE_CHUNKS)) == 1


@pytest.mark.parametrize("twin", TWINS)
def test_build_frame_masked_850(benchmark, twin: str) -> None:
    benchmark.group = "build_frame: 850 B, masked"
    build_frame = load(twin).build_frame
    assert len(benchmark(build_frame, OP_BINARY, PAYLOAD_850)) == 850 + 8


@pytest.mark.parametrize("twin", TWINS)
def test_build_frame_masked_64k(benchmark, twin: str) -> None:
    benchmark.group = "build_frame: 64 KiB, masked"
    build_frame = load(twin).build_frame
    payload = PAYLOAD_850 * 78  # 66 300 bytes: the 64-bit length form
    assert len(benchmark(build_frame, OP_BINARY, payload)) == len(payload) + 14


def test_feed_binary_850_websockets_client_protocol(benchmark) -> None:
    """websockets' sans-I/O client (ClientProtocol.receive_data + events_received), already OPEN."""
    from websockets.client import ClientProtocol
    from websockets.protocol import State
    from websockets.uri import parse_uri

    benchmark.group = "feed: 20k x ~850 B binary, 64 KiB chunks"
    benchmark.extra_info["messages"] = MESSAGE_COUNT
    uri = parse_uri("ws://127.0.0.1/")

    def run() -> int:
        protocol = ClientProtocol(uri, state=State.OPEN, max_size=None)
        count = 0
        for chunk in BINARY_CHUNKS:
            protocol.receive_data(chunk)
            count += len(protocol.events_received())
        return count

    assert benchmark(run) == MESSAGE_COUNT
