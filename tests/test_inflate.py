"""Stream inflation (zlib-stream, zstd-stream), run on both twins through the ``inflate`` fixture."""

from __future__ import annotations

import functools
import json
import os
import random
import subprocess
import sys
import tracemalloc
import zlib
from types import ModuleType

import pytest
import zstandard

from conftest import same_zlib_library
from gateway import _inflate_py
from gateway.errors import CompressionError, InflatedTooLargeError


def make_payloads(count: int, seed: int = 7) -> list[bytes]:
    """Gateway-like JSON payloads of varied sizes (a few bytes to ~20 KB), some non-ASCII."""
    rng = random.Random(seed)
    payloads = []
    for sequence in range(count):
        content = " ".join(rng.choice(["hello", "gateway", "🎉", "ünïcode", "x" * rng.randrange(1, 50)]) for _ in range(rng.randrange(0, 40)))
        data = {"id": str(rng.getrandbits(63)), "content": content, "mentions": list(range(rng.randrange(0, 5)))}
        if sequence % 17 == 0:
            data["members"] = [{"id": str(rng.getrandbits(63)), "nick": None} for _ in range(rng.randrange(50, 400))]
        payloads.append(json.dumps({"op": 0, "s": sequence, "t": "MESSAGE_CREATE", "d": data}, ensure_ascii=False).encode())
    return payloads


PAYLOADS = make_payloads(60)


def zlib_stream(payloads: list[bytes]) -> list[bytes]:
    """Discord's zlib-stream: one deflate context, Z_SYNC_FLUSH after each message."""
    compressor = zlib.compressobj()
    return [compressor.compress(p) + compressor.flush(zlib.Z_SYNC_FLUSH) for p in payloads]


def zstd_stream(payloads: list[bytes], *, checksum: bool = False) -> list[bytes]:
    """Discord's zstd-stream: one context, flushed after each message, the frame never ended."""
    compressor = zstandard.ZstdCompressor(write_checksum=checksum).compressobj()
    return [compressor.compress(p) + compressor.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK) for p in payloads]


def zstd_frames(payloads: list[bytes], *, checksum: bool = False) -> list[bytes]:
    """A compatible server that ends the zstd frame after every message."""
    compressor = zstandard.ZstdCompressor(write_checksum=checksum, write_content_size=False)
    return [compressor.compress(p) for p in payloads]


def zstd_streamed_frames(payloads: list[bytes], *, checksum: bool) -> list[bytes]:
    """Frames ended after every message by a streaming compressor (no content size in the header)."""
    compressor = zstandard.ZstdCompressor(write_checksum=checksum)
    messages = []
    for payload in payloads:
        stream = compressor.compressobj()
        messages.append(stream.compress(payload) + stream.flush(zstandard.COMPRESSOBJ_FLUSH_FINISH))
    return messages


# ---------------------------------------------------------------- zlib-stream


def test_zlib_round_trip_through_one_context(inflate: ModuleType) -> None:
    inflater = inflate.ZlibStreamInflater()
    for payload, message in zip(PAYLOADS, zlib_stream(PAYLOADS)):
        result = inflater.feed(message)
        assert type(result) is bytes
        assert result == payload


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_zlib_accepts_buffer_types(inflate: ModuleType, kind: type) -> None:
    inflater = inflate.ZlibStreamInflater()
    messages = zlib_stream(PAYLOADS[:5])
    assert [inflater.feed(kind(m)) for m in messages] == PAYLOADS[:5]
    half = len(messages[0]) // 2
    inflater = inflate.ZlibStreamInflater()
    assert inflater.feed(kind(messages[0][:half])) is None
    assert inflater.feed(kind(messages[0][half:])) == PAYLOADS[0]


def test_zlib_message_split_across_websocket_messages(inflate: ModuleType) -> None:
    rng = random.Random(3)
    inflater = inflate.ZlibStreamInflater()
    for payload, message in zip(PAYLOADS, zlib_stream(PAYLOADS)):
        pieces = rng.randrange(2, 8)
        cuts = sorted(rng.sample(range(1, len(message)), min(pieces - 1, len(message) - 1)))
        chunks = [message[a:b] for a, b in zip([0, *cuts], [*cuts, len(message)])]
        results = [inflater.feed(chunk) for chunk in chunks]
        assert results[:-1] == [None] * (len(chunks) - 1)
        assert results[-1] == payload


@pytest.mark.parametrize("marker_bytes_in_last", [1, 2, 3])
def test_zlib_marker_split_across_websocket_messages(inflate: ModuleType, marker_bytes_in_last: int) -> None:
    inflater = inflate.ZlibStreamInflater()
    for payload, message in zip(PAYLOADS[:10], zlib_stream(PAYLOADS[:10])):
        assert message.endswith(b"\x00\x00\xff\xff")
        assert inflater.feed(message[:-marker_bytes_in_last]) is None
        assert inflater.feed(message[-marker_bytes_in_last:]) == payload


def test_zlib_one_byte_websocket_messages(inflate: ModuleType) -> None:
    inflater = inflate.ZlibStreamInflater()
    for payload, message in zip(PAYLOADS[:6], zlib_stream(PAYLOADS[:6])):
        results = [inflater.feed(message[i : i + 1]) for i in range(len(message))]
        assert results[:-1] == [None] * (len(message) - 1)
        assert results[-1] == payload


def test_zlib_empty_websocket_message_is_buffered(inflate: ModuleType) -> None:
    inflater = inflate.ZlibStreamInflater()
    message = zlib_stream(PAYLOADS[:1])[0]
    assert inflater.feed(b"") is None
    assert inflater.feed(message) == PAYLOADS[0]


def test_zlib_large_message_in_many_pieces(inflate: ModuleType) -> None:
    rng = random.Random(5)
    big = json.dumps([{"id": str(rng.getrandbits(63)), "name": f"user{i}"} for i in range(120_000)]).encode()
    messages = zlib_stream([PAYLOADS[0], big, PAYLOADS[1]])
    inflater = inflate.ZlibStreamInflater()
    assert inflater.feed(messages[0]) == PAYLOADS[0]
    step = 65_536
    chunks = [messages[1][i : i + step] for i in range(0, len(messages[1]), step)]
    assert [inflater.feed(chunk) for chunk in chunks[:-1]] == [None] * (len(chunks) - 1)
    assert inflater.feed(chunks[-1]) == big
    assert inflater.feed(messages[2]) == PAYLOADS[1]


def test_zlib_reset_starts_a_new_connection(inflate: ModuleType) -> None:
    first = zlib_stream(PAYLOADS[:3])
    second = zlib_stream(PAYLOADS[3:6])
    inflater = inflate.ZlibStreamInflater()
    assert inflater.feed(first[0]) == PAYLOADS[0]
    assert inflater.feed(first[1][:5]) is None  # half a message buffered: must be dropped by reset
    inflater.reset()
    assert [inflater.feed(m) for m in second] == PAYLOADS[3:6]
    inflater.reset()
    # The old context is gone: a mid-stream message of the first connection is not a valid stream start.
    with pytest.raises(CompressionError):
        inflater.feed(first[1])


def test_zlib_output_ceiling(inflate: ModuleType) -> None:
    payload = PAYLOADS[17]
    message = zlib_stream([payload])[0]
    assert inflate.ZlibStreamInflater(max_size=len(payload)).feed(message) == payload
    inflater = inflate.ZlibStreamInflater(max_size=len(payload) - 1)
    with pytest.raises(InflatedTooLargeError, match="ceiling"):
        inflater.feed(message)
    with pytest.raises(CompressionError):
        inflater.feed(message)


@functools.lru_cache(maxsize=None)
def zlib_bomb() -> bytes:
    return zlib_stream([b"\x00" * (64 << 20)])[0]  # 64 MiB of zeros in ~64 KB


@functools.lru_cache(maxsize=None)
def zstd_bomb() -> bytes:
    return zstd_stream([b"\x00" * (256 << 20)])[0]  # 256 MiB of zeros in a few KB


def test_zlib_output_ceiling_on_a_bomb(inflate: ModuleType) -> None:
    inflater = inflate.ZlibStreamInflater(max_size=1 << 20)
    with pytest.raises(InflatedTooLargeError):
        inflater.feed(zlib_bomb())


def _peak_traced_memory(action) -> int:  # type: ignore[no-untyped-def]
    """Peak bytes allocated (as tracemalloc sees them) while ``action()`` runs."""
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("codec", ["zlib", "zstd"])
def test_ceiling_bounds_memory_on_a_bomb(inflate: ModuleType, codec: str) -> None:
    ceiling = 4 << 20
    if codec == "zlib":
        bomb = zlib_bomb()
        inflater = inflate.ZlibStreamInflater(max_size=ceiling)
    else:
        bomb = zstd_bomb()
        inflater = inflate.ZstdStreamInflater(max_size=ceiling)

    def feed_bomb() -> None:
        with pytest.raises(InflatedTooLargeError):
            inflater.feed(bomb)

    assert _peak_traced_memory(feed_bomb) < 3 * ceiling


def test_zlib_buffered_compressed_data_is_bounded(inflate: ModuleType) -> None:
    inflater = inflate.ZlibStreamInflater(max_size=1000)
    payload = b'{"op":11,"d":null}'
    message = zlib_stream([payload])[0]
    assert inflater.feed(message[:10]) is None
    assert inflater.feed(b"\x01" * 990) is None  # exactly 1000 bytes buffered: still allowed
    with pytest.raises(InflatedTooLargeError, match="buffered"):
        inflater.feed(b"\x01")
    with pytest.raises(CompressionError):
        inflater.feed(message)
    inflater.reset()
    assert inflater.feed(message) == payload


def _corrupt_zlib_cases() -> dict[str, list[bytes]]:
    messages = zlib_stream(PAYLOADS[:4])
    return {
        "bad header": [b"\x78\xff" + messages[0][2:]],
        "reserved block type mid-stream": [messages[0], b"\x06" + messages[1][1:]],
        "bad stored block lengths": [messages[0], b"\x00\x05\x00\x05\x00hello\x00\x00\xff\xff"],
        "garbage with a marker": [b"definitely not deflate\x00\x00\xff\xff"],
        "data after the end of the stream": [
            (lambda c: c.compress(PAYLOADS[0]) + c.flush(zlib.Z_FINISH))(zlib.compressobj()) + b"\x00\x00\xff\xff"
        ],
    }


@pytest.mark.parametrize("case", sorted(_corrupt_zlib_cases()))
def test_zlib_corrupt_data_poisons_until_reset(inflate: ModuleType, case: str) -> None:
    *good, bad = _corrupt_zlib_cases()[case]
    inflater = inflate.ZlibStreamInflater()
    for message in good:
        assert inflater.feed(message) is not None
    with pytest.raises(CompressionError, match="zlib-stream") as raised:
        inflater.feed(bad)
    assert type(raised.value) is CompressionError
    fresh = zlib_stream(PAYLOADS[:2])
    for message in (fresh[0], b"", b"\x00\x00\xff\xff"):
        with pytest.raises(CompressionError, match="reset"):
            inflater.feed(message)
    inflater.reset()
    assert [inflater.feed(m) for m in fresh] == PAYLOADS[:2]


def test_zlib_error_text_comes_from_zlib(inflate: ModuleType) -> None:
    corrupt = b"\x78\x9c\x06\x00\x00\xff\xff"  # a block of the reserved type 3
    # The pure twin's chosen backend; the compiled twin's library, through the pure backend of the same name.
    backend = getattr(inflate, "_zlib", None) or _inflate_py.load_zlib_backend(same_zlib_library(inflate))
    with pytest.raises(backend.error) as from_backend:
        backend.decompressobj().decompress(corrupt)
    with pytest.raises(CompressionError) as raised:
        inflate.ZlibStreamInflater().feed(corrupt)
    assert str(from_backend.value) in str(raised.value)


# ---------------------------------------------------------------- zstd-stream

ZSTD_ENCODINGS = {
    "never-ending frame": lambda p: zstd_stream(p),
    "never-ending frame, checksum flag": lambda p: zstd_stream(p, checksum=True),
    "frame per message": lambda p: zstd_frames(p),
    "frame per message, checksum": lambda p: zstd_frames(p, checksum=True),
    "streamed frame per message, checksum": lambda p: zstd_streamed_frames(p, checksum=True),
}


@pytest.mark.parametrize("encoding", sorted(ZSTD_ENCODINGS))
def test_zstd_round_trip_through_one_context(inflate: ModuleType, encoding: str) -> None:
    inflater = inflate.ZstdStreamInflater()
    for payload, message in zip(PAYLOADS, ZSTD_ENCODINGS[encoding](PAYLOADS)):
        result = inflater.feed(message)
        assert type(result) is bytes
        assert result == payload


def test_zstd_frame_ends_then_stream_continues(inflate: ModuleType) -> None:
    """Frames ended per message (with and without checksums), then a never-ending frame, on one connection."""
    messages = zstd_frames(PAYLOADS[:5]) + zstd_streamed_frames(PAYLOADS[5:7], checksum=True) + zstd_stream(PAYLOADS[7:22])
    inflater = inflate.ZstdStreamInflater()
    assert [inflater.feed(m) for m in messages] == PAYLOADS[:22]


@pytest.mark.parametrize("second_size", [18, 3000])
@pytest.mark.parametrize("max_size", [1 << 20, 256 * 1024 * 1024])
def test_zstd_message_with_a_frame_end_and_then_a_whole_frame(inflate: ModuleType, second_size: int, max_size: int) -> None:
    """Issue 16 (../shared/findings/twin-fuzz/zstd-frame-end-01.py, -02.py): a message longer than the pure twin's
    feeding step that ends one frame and holds another: both payloads, whole (the pure twin once lost the second,
    or raised CompressionError inside it)."""
    rng = random.Random(1)
    first = b'{"op":0,"d":{"content":"' + rng.randbytes(3000).hex().encode() + b'"}}'
    second = rng.randbytes(second_size // 2).hex().encode()
    compressor = zstandard.ZstdCompressor(level=3)
    message = compressor.compress(first) + compressor.compress(second)
    assert len(message) > (max_size >> 17) + 16  # past the first step
    inflater = inflate.ZstdStreamInflater(max_size)
    assert inflater.feed(message) == first + second
    assert inflater.feed(compressor.compress(b"next")) == b"next"


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_zstd_accepts_buffer_types(inflate: ModuleType, kind: type) -> None:
    inflater = inflate.ZstdStreamInflater()
    assert [inflater.feed(kind(m)) for m in zstd_stream(PAYLOADS[:5])] == PAYLOADS[:5]


def test_zstd_large_message(inflate: ModuleType) -> None:
    rng = random.Random(6)
    big = json.dumps([{"id": str(rng.getrandbits(63)), "name": f"user{i}"} for i in range(150_000)]).encode()
    for encode in (zstd_stream, zstd_frames):
        inflater = inflate.ZstdStreamInflater()
        assert [inflater.feed(m) for m in encode([PAYLOADS[0], big, PAYLOADS[1]])] == [PAYLOADS[0], big, PAYLOADS[1]]


@pytest.mark.parametrize("encoding", ["never-ending frame", "frame per message, checksum"])
def test_zstd_every_truncation_is_detected(inflate: ModuleType, encoding: str) -> None:
    messages = ZSTD_ENCODINGS[encoding](PAYLOADS[:3])
    inflater = inflate.ZstdStreamInflater()
    assert inflater.feed(messages[0]) == PAYLOADS[0]
    second = messages[1]
    for cut in range(1, len(second)):
        inflater.reset()
        assert inflater.feed(messages[0]) == PAYLOADS[0]
        with pytest.raises(CompressionError):
            inflater.feed(second[:cut])
        with pytest.raises(CompressionError, match="reset"):
            inflater.feed(second)  # poisoned: even the intact message is refused


def test_zstd_truncated_message_error_says_so(inflate: ModuleType) -> None:
    message = zstd_stream(PAYLOADS[:1])[0]
    with pytest.raises(CompressionError, match="truncated"):
        inflate.ZstdStreamInflater().feed(message[:-1])
    frame_header_only = zstd_frames(PAYLOADS[:1])[0][:6]
    with pytest.raises(CompressionError, match="truncated"):
        inflate.ZstdStreamInflater().feed(frame_header_only)


def test_zstd_one_byte_websocket_messages_are_truncated_messages(inflate: ModuleType) -> None:
    message = zstd_stream(PAYLOADS[:1])[0]
    with pytest.raises(CompressionError):
        inflate.ZstdStreamInflater().feed(message[:1])


def test_zstd_empty_websocket_message_gives_empty_payload(inflate: ModuleType) -> None:
    inflater = inflate.ZstdStreamInflater()
    messages = zstd_stream(PAYLOADS[:2])
    assert inflater.feed(messages[0]) == PAYLOADS[0]
    assert inflater.feed(b"") == b""
    assert inflater.feed(messages[1]) == PAYLOADS[1]


def test_zstd_reset_starts_a_new_connection(inflate: ModuleType) -> None:
    first = zstd_stream(PAYLOADS[:3])
    second = zstd_stream(PAYLOADS[3:6])
    inflater = inflate.ZstdStreamInflater()
    assert [inflater.feed(m) for m in first[:2]] == PAYLOADS[:2]
    inflater.reset()
    assert [inflater.feed(m) for m in second] == PAYLOADS[3:6]
    inflater.reset()
    with pytest.raises(CompressionError):
        inflater.feed(first[2])  # a block of the old frame without its frame header


@pytest.mark.parametrize("encode", [zstd_stream, zstd_frames], ids=["stream", "frames"])
def test_zstd_output_ceiling(inflate: ModuleType, encode) -> None:  # type: ignore[no-untyped-def]
    payload = PAYLOADS[17]
    message = encode([payload])[0]
    assert inflate.ZstdStreamInflater(max_size=len(payload)).feed(message) == payload
    inflater = inflate.ZstdStreamInflater(max_size=len(payload) - 1)
    with pytest.raises(InflatedTooLargeError, match="ceiling"):
        inflater.feed(message)
    with pytest.raises(CompressionError, match="reset"):
        inflater.feed(message)


def test_zstd_output_ceiling_on_a_bomb(inflate: ModuleType) -> None:
    assert len(zstd_bomb()) < 100_000
    with pytest.raises(InflatedTooLargeError):
        inflate.ZstdStreamInflater(max_size=1 << 20).feed(zstd_bomb())


def _corrupt_zstd_cases() -> dict[str, list[bytes]]:
    stream = zstd_stream(PAYLOADS[:4])
    frames = zstd_frames(PAYLOADS[:2])
    mangled_block = bytearray(stream[1])
    for position in range(3, len(mangled_block)):
        mangled_block[position] = 0xFF
    return {
        "bad magic number": [b"\x28\xb5\x2f\xfe" + stream[0][4:]],
        "reserved block type mid-stream": [stream[0], bytes([stream[1][0] | 0x06]) + stream[1][1:]],
        "mangled block content": [stream[0], bytes(mangled_block)],
        "garbage after a frame": [frames[0], frames[1] + b"not zstd"],
        "garbage": [b"this is not zstd at all"],
    }


@pytest.mark.parametrize("case", sorted(_corrupt_zstd_cases()))
def test_zstd_corrupt_data_poisons_until_reset(inflate: ModuleType, case: str) -> None:
    *good, bad = _corrupt_zstd_cases()[case]
    inflater = inflate.ZstdStreamInflater()
    for message in good:
        inflater.feed(message)
    with pytest.raises(CompressionError, match="zstd-stream") as raised:
        inflater.feed(bad)
    assert type(raised.value) is CompressionError
    fresh = zstd_stream(PAYLOADS[:2])
    for message in (fresh[0], b""):
        with pytest.raises(CompressionError, match="reset"):
            inflater.feed(message)
    inflater.reset()
    assert [inflater.feed(m) for m in fresh] == PAYLOADS[:2]


def test_zstd_error_text_comes_from_zstd(inflate: ModuleType) -> None:
    with pytest.raises(CompressionError, match="(?i)unknown frame descriptor"):
        inflate.ZstdStreamInflater().feed(b"this is not zstd at all")


# ---------------------------------------------------------------- construction


def test_make_inflater(inflate: ModuleType) -> None:
    assert inflate.make_inflater(None) is None
    zlib_inflater = inflate.make_inflater("zlib-stream")
    zstd_inflater = inflate.make_inflater("zstd-stream", 1234)
    assert type(zlib_inflater) is inflate.ZlibStreamInflater
    assert type(zstd_inflater) is inflate.ZstdStreamInflater
    assert zlib_inflater.max_size == inflate.DEFAULT_MAX_INFLATED_SIZE == 256 * 1024 * 1024
    assert zstd_inflater.max_size == 1234
    assert inflate.make_inflater("zlib-stream", max_size=5).max_size == 5


@pytest.mark.parametrize("compression", ["zlib", "zstd", "ZLIB-STREAM", "zlib-stream ", "", "gzip", b"zlib-stream", 1, True])
def test_make_inflater_rejects_unknown_compression(inflate: ModuleType, compression: object) -> None:
    with pytest.raises(ValueError, match="compression"):
        inflate.make_inflater(compression)


@pytest.mark.parametrize(
    ("max_size", "error"), [(0, ValueError), (-1, ValueError), (1.5, TypeError), ("10", TypeError), (True, TypeError), (None, TypeError)]
)
def test_max_size_is_checked(inflate: ModuleType, max_size: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="max_size"):
        inflate.ZlibStreamInflater(max_size)
    with pytest.raises(error, match="max_size"):
        inflate.ZstdStreamInflater(max_size)
    with pytest.raises(error, match="max_size"):
        inflate.make_inflater("zlib-stream", max_size)
    with pytest.raises(error, match="max_size"):
        inflate.make_inflater(None, max_size)


LIMIT = sys.maxsize - 1  # MAX_INFLATED_SIZE_LIMIT: one more byte than the ceiling must fit a C ssize_t


@pytest.mark.parametrize("max_size", [0, -1, -(2**64), LIMIT + 1, 2**63, 2**64, 2**100])
def test_max_size_out_of_range_is_a_value_error_at_construction(inflate: ModuleType, max_size: int) -> None:
    """Both twins reject an out-of-range ceiling the same way, when the inflater is made (never at the first feed)."""
    assert inflate.MAX_INFLATED_SIZE_LIMIT == LIMIT
    for make in (
        inflate.ZlibStreamInflater,
        inflate.ZstdStreamInflater,
        functools.partial(inflate.make_inflater, "zlib-stream"),
        functools.partial(inflate.make_inflater, "zstd-stream"),
        functools.partial(inflate.make_inflater, None),
    ):
        with pytest.raises(ValueError) as raised:
            make(max_size)
        assert str(raised.value) == f"max_size must be between 1 and {LIMIT} (bytes), got {max_size}"


@pytest.mark.parametrize("max_size", [1, 2, LIMIT - 1, LIMIT])
def test_max_size_edges_that_are_accepted_work(inflate: ModuleType, max_size: int) -> None:
    payload = b"x"
    zlib_inflater = inflate.ZlibStreamInflater(max_size)
    zstd_inflater = inflate.ZstdStreamInflater(max_size)
    assert zlib_inflater.max_size == zstd_inflater.max_size == max_size
    assert zlib_inflater.feed(zlib_stream([payload])[0]) == payload
    assert zstd_inflater.feed(zstd_stream([payload])[0]) == payload
    too_big = b"yy"
    if max_size == 1:
        with pytest.raises(InflatedTooLargeError):
            zlib_inflater.feed(zlib_stream([payload, too_big])[1])
    else:
        assert zstd_inflater.feed(zstd_stream([payload, too_big])[1]) == too_big


def test_max_size_is_read_only(inflate: ModuleType) -> None:
    for inflater in (inflate.ZlibStreamInflater(10), inflate.ZstdStreamInflater(10)):
        with pytest.raises(AttributeError):
            inflater.max_size = 20  # type: ignore[misc]
        assert inflater.max_size == 10


def test_feed_rejects_text(inflate: ModuleType) -> None:
    with pytest.raises(TypeError):
        inflate.ZlibStreamInflater().feed("text")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        inflate.ZstdStreamInflater().feed("text")  # type: ignore[arg-type]


def test_public_names(inflate: ModuleType) -> None:
    assert sorted(inflate.__all__) == sorted(
        ["DEFAULT_MAX_INFLATED_SIZE", "MAX_INFLATED_SIZE_LIMIT", "ZLIB_SUFFIX", "ZlibStreamInflater", "ZstdStreamInflater", "make_inflater"]
    )
    assert inflate.ZLIB_SUFFIX == b"\x00\x00\xff\xff"
    assert isinstance(inflate.ZLIB_BACKEND, str) and inflate.ZLIB_BACKEND


# ---------------------------------------------------------------- golden replay of the shared corpus


@functools.lru_cache(maxsize=None)
def steady_corpus() -> list[bytes]:
    from bench import corpus  # the deterministic corpus generator (run from the repository root)

    return corpus.generate_steady(count=1500)


def test_corpus_golden_replay_zlib(inflate: ModuleType) -> None:
    from bench import corpus

    payloads = steady_corpus()
    messages = corpus.compress_zlib(payloads, split_every=7)
    assert len(messages) > len(payloads)  # some payloads really are split across websocket messages
    inflater = inflate.ZlibStreamInflater()
    assert [out for out in map(inflater.feed, messages) if out is not None] == payloads


def test_corpus_golden_replay_zstd(inflate: ModuleType) -> None:
    from bench import corpus

    payloads = steady_corpus()
    inflater = inflate.ZstdStreamInflater()
    assert [inflater.feed(m) for m in corpus.compress_zstd(payloads)] == payloads


@pytest.mark.parametrize("codec", ["zlib", "zstd"])
def test_ceiling_holds_after_another_inflater_grew_the_shared_buffer(inflate: ModuleType, codec: str) -> None:
    """The compiled twin shares one output buffer per thread: a small ceiling must hold when it is large."""
    encode = zlib_stream if codec == "zlib" else zstd_stream
    make = inflate.ZlibStreamInflater if codec == "zlib" else inflate.ZstdStreamInflater
    big = random.Random(3).randbytes(300_000)
    assert make().feed(encode([big])[0]) == big  # grows the buffer past 256 KiB for this message
    payload = b"0123456789" * 100
    assert make(max_size=1000).feed(encode([payload])[0]) == payload
    small = make(max_size=999)
    with pytest.raises(InflatedTooLargeError):
        small.feed(encode([payload])[0])
    first, second = make(max_size=2000), make(max_size=2000)
    first_messages, second_messages = encode([payload, big[:1500]]), encode([big[:1500], payload])
    assert [first.feed(first_messages[0]), second.feed(second_messages[0])] == [payload, big[:1500]]
    assert [second.feed(second_messages[1]), first.feed(first_messages[1])] == [payload, big[:1500]]


def test_memoryview_of_wider_items_is_read_as_bytes(inflate: ModuleType) -> None:
    """Positions count bytes in both twins, whatever the item size of a memoryview (the compiled twin reads the
    raw buffer; the pure one once counted 4-byte items and lost the zstd frame)."""
    import array

    payload = next(p for p in (b"x" * n + b"hello" for n in range(64)) if len(zlib_stream([p])[0]) % 4 == 0)
    assert inflate.ZlibStreamInflater().feed(memoryview(array.array("I", zlib_stream([payload])[0]))) == payload
    compressor = zstandard.ZstdCompressor()
    payload = next(p for p in (b"y" * n + b"abc" for n in range(64)) if len(compressor.compress(p)) % 4 == 0)
    assert inflate.ZstdStreamInflater().feed(memoryview(array.array("I", compressor.compress(payload)))) == payload


# ---------------------------------------------------------------- pure twin's zlib backend


def test_pure_default_zlib_backend_is_the_standard_library() -> None:
    """The default is stdlib zlib (the system libz) unless GATEWAY_ZLIB_BACKEND names another."""

    chosen = os.environ.get("GATEWAY_ZLIB_BACKEND", "").strip().lower() or "zlib"
    assert _inflate_py.ZLIB_BACKEND == chosen
    assert _inflate_py.ZlibStreamInflater().backend == chosen
    assert "zlib" in _inflate_py.installed_zlib_backends()


@pytest.mark.parametrize("backend", ["zlib", "isal", "zlib-ng"])
def test_gateway_zlib_backend_env_picks_the_pure_backend(backend: str) -> None:
    if backend not in _inflate_py.installed_zlib_backends():
        pytest.skip(f"{backend} not installed")
    code = (
        "from gateway import _inflate_py as p, _inflate as s; import zlib;"
        "c = zlib.compressobj(); i = p.ZlibStreamInflater();"
        "assert i.feed(c.compress(b'hi') + c.flush(zlib.Z_SYNC_FLUSH)) == b'hi';"
        "print(p.ZLIB_BACKEND, i.backend, s.IMPLEMENTATION)"
    )
    env = {**os.environ, "GATEWAY_ZLIB_BACKEND": backend.upper(), "GATEWAY_NO_SPEEDUPS": "1"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [backend, backend, "pure"]


@pytest.mark.parametrize(("value", "error"), [("zlib-fast", "ValueError: GATEWAY_ZLIB_BACKEND='zlib-fast' is not a zlib backend")])
def test_gateway_zlib_backend_env_rejects_unknown_names(value: str, error: str) -> None:
    env = {**os.environ, "GATEWAY_ZLIB_BACKEND": value}
    done = subprocess.run([sys.executable, "-c", "import gateway._inflate_py"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert error in done.stderr


def test_zlib_inflater_names_its_backend(inflate: ModuleType) -> None:
    inflater = inflate.ZlibStreamInflater()
    assert inflater.backend in ("zlib", "isal", "zlib-ng")
    if inflate.__name__.startswith("gateway._speedups."):
        assert inflater.backend == inflate.ZLIB_BACKEND in ("zlib", "zlib-ng")
    with pytest.raises(AttributeError):
        inflater.backend = "isal"  # type: ignore[misc]


def test_zlib_stream_inflater_pins_one_backend() -> None:
    for backend in _inflate_py.installed_zlib_backends():
        inflater = _inflate_py.zlib_stream_inflater(backend, max_size=10)
        assert (inflater.backend, inflater.max_size) == (backend, 10)
        assert inflater.feed(zlib_stream([b"abc"])[0]) == b"abc"
    with pytest.raises(ValueError, match="unknown zlib backend 'brotli'"):
        _inflate_py.zlib_stream_inflater("brotli")
