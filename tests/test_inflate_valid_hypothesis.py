"""Property tests on valid streams only: every twin and every zlib backend returns exactly the bytes that were sent.

Valid data must never lose a byte (issue 16). The streams are built the ways a server may send them:

* zstd-stream: one endless frame flushed per payload (Discord), a frame ended per payload (compatible servers), or
  any mix; several payloads coalesced into one websocket message, so frame ends fall anywhere inside a message and
  a message may hold several frames; payload sizes around the pure twin's feeding steps; several ``max_size``.
  Cuts fall between flushed units: a zstd-stream message cut inside a block is truncated, not valid, and raises.
* zlib-stream: one deflate stream with Z_SYNC_FLUSH, Z_FULL_FLUSH or no flush after each payload, cut into
  websocket messages at arbitrary points (so a gateway message spans several websocket messages, and one
  websocket message may complete several flushed payloads), several ``max_size``.

The expected outcome of every feed is computed from the stream itself (a model), never from a twin. Examples are
drawn under the suite's hypothesis profile (deterministic in CI).
"""

from __future__ import annotations

import importlib
import random
import zlib
from types import ModuleType
from typing import Any, Callable

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import _inflate_py as pure
from gateway.errors import CompressionError, InflatedTooLargeError

SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
DEFAULT = pure.DEFAULT_MAX_INFLATED_SIZE

#: Ceilings whose pure-zstd feeding steps ((max_size >> 17) + 16) are 16, 16, 16, 24, 144 and 2064 bytes.
MAX_SIZES = [1, 700, 5000, 1 << 20, 1 << 24, DEFAULT]
#: Payload lengths around those steps (and their doubles), where a slice ends right before/after a frame end.
STEP_EDGES = [0, 1, 15, 16, 17, 23, 24, 25, 143, 144, 145, 2063, 2064, 2065, 4127, 4128, 4129]


def compiled_module() -> ModuleType:
    try:
        return importlib.import_module("gateway._speedups._inflate")
    except ImportError as exc:
        pytest.fail(f"compiled twin gateway._speedups._inflate is missing ({exc}); run the pure leg with --no-speedups")


def zlib_makers() -> list[Any]:
    """One parameter per zlib inflater: the compiled twin (system zlib) and the pure twin on each backend."""
    makers = [
        pytest.param(lambda max_size: compiled_module().ZlibStreamInflater(max_size), id="compiled", marks=pytest.mark.speedups)
    ]
    for backend in pure.ZLIB_BACKENDS:
        makers.append(
            pytest.param(
                (lambda name: lambda max_size: pure.zlib_stream_inflater(name, max_size))(backend),
                id=f"pure-{backend}",
                marks=pytest.mark.skipif(
                    backend not in pure.installed_zlib_backends(), reason=f"zlib backend {backend} not installed"
                ),
            )
        )
    return makers


ZSTD_MAKERS = [
    pytest.param(lambda max_size: compiled_module().ZstdStreamInflater(max_size), id="compiled", marks=pytest.mark.speedups),
    pytest.param(lambda max_size: pure.ZstdStreamInflater(max_size), id="pure"),
]


@st.composite
def payloads(draw: st.DrawFn) -> bytes:
    """A payload: incompressible bytes (compressed size close to its length, to land on step edges) or compressible."""
    length = draw(st.one_of(st.sampled_from(STEP_EDGES), st.integers(0, 6000)), label="length")
    kind = draw(st.sampled_from(["random", "text", "repeat"]), label="kind")
    rng = random.Random(draw(st.integers(0, 2**16), label="seed"))
    if kind == "random":
        return rng.randbytes(length)
    if kind == "text":
        words = [b"op", b'"d":', b"guild", b"member", b"\xc3\xa9", b"{", b"}", b"12345678901234567"]
        return b" ".join(rng.choice(words) for _ in range(length // 4 + 1))[:length]
    return bytes([rng.randrange(256)]) * length


def expected_outcomes(results: list[bytes], max_size: int) -> list[object]:
    """What feeding messages whose payloads are ``results`` must give: each payload, or the ceiling error then poison."""
    outcomes: list[object] = []
    for result in results:
        if len(result) > max_size:
            return [*outcomes, InflatedTooLargeError, CompressionError]
        outcomes.append(result)
    return outcomes


def observed_outcomes(feed: Callable[[bytes], object], messages: list[bytes]) -> list[object]:
    outcomes: list[object] = []
    for message in messages:
        try:
            outcomes.append(feed(message))
        except (CompressionError, InflatedTooLargeError) as exc:
            outcomes.append(type(exc))
            with pytest.raises(CompressionError, match="unusable after an earlier error"):
                feed(message)
            outcomes.append(CompressionError)
            break
    return outcomes


# ---------------------------------------------------------------- zstd-stream


@st.composite
def zstd_connections(draw: st.DrawFn) -> tuple[list[bytes], list[bytes]]:
    """(websocket messages, the payload each must inflate to) of one valid zstd-stream connection."""
    items = draw(st.lists(payloads(), min_size=1, max_size=8), label="payloads")
    level = draw(st.sampled_from([1, 3, 19]), label="level")
    checksum = draw(st.booleans(), label="checksum")
    compressor = zstandard.ZstdCompressor(level=level, write_checksum=checksum)
    stream = None  # the open frame, if any
    units = []
    for item in items:
        how = draw(st.sampled_from(["flush", "end frame", "one-shot frame"]), label="how")
        unit = b""
        if how == "one-shot frame":
            if stream is not None:  # end the open frame first (an empty last block): its end opens this unit
                unit += stream.flush(zstandard.COMPRESSOBJ_FLUSH_FINISH)
                stream = None
            unit += compressor.compress(item)  # single-segment frame with the content size in its header
        else:
            stream = stream or compressor.compressobj()
            if how == "flush":
                unit += stream.compress(item) + stream.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
            else:
                unit += stream.compress(item) + stream.flush(zstandard.COMPRESSOBJ_FLUSH_FINISH)
                stream = None
        units.append(unit)
    # Coalesce consecutive flush units into websocket messages: a message may hold several frames and frame ends.
    starts = draw(st.lists(st.booleans(), min_size=len(items), max_size=len(items)), label="new message")
    messages: list[bytes] = []
    results: list[bytes] = []
    for index, (unit, item) in enumerate(zip(units, items)):
        if index == 0 or starts[index]:
            messages.append(unit)
            results.append(item)
        else:
            messages[-1] += unit
            results[-1] += item
    return messages, results


@SETTINGS
@pytest.mark.parametrize("make", ZSTD_MAKERS)
@given(connection=zstd_connections(), max_size=st.sampled_from(MAX_SIZES))
def test_zstd_valid_stream_gives_exact_bytes(
    make: Callable[[int], Any], connection: tuple[list[bytes], list[bytes]], max_size: int
) -> None:
    messages, results = connection
    assert observed_outcomes(make(max_size).feed, messages) == expected_outcomes(results, max_size)


# ---------------------------------------------------------------- zlib-stream

FLUSHES = {"sync": zlib.Z_SYNC_FLUSH, "full": zlib.Z_FULL_FLUSH, "none": None}


@st.composite
def zlib_connections(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    """(one valid zlib stream that ends with a sync flush, the points where it is cut into websocket messages)."""
    items = draw(st.lists(payloads(), min_size=1, max_size=6), label="payloads")
    level = draw(st.sampled_from([0, 1, 6, 9]), label="level")
    compressor = zlib.compressobj(level)
    stream = b""
    for index, item in enumerate(items):
        flush = "sync" if index == len(items) - 1 else draw(st.sampled_from(sorted(FLUSHES)), label="flush")
        stream += compressor.compress(item)
        if FLUSHES[flush] is not None:
            stream += compressor.flush(FLUSHES[flush])
    # Cut anywhere, including right before/after/inside a 00 00 FF FF marker; repeated cuts make empty messages.
    markers = [i for i in range(len(stream)) if stream.startswith(pure.ZLIB_SUFFIX, i)]
    near_markers = [m + k for m in markers for k in range(-1, 6) if 0 < m + k < len(stream)]
    anywhere = st.integers(1, max(1, len(stream) - 1))
    point = st.one_of(anywhere, st.sampled_from(near_markers)) if near_markers else anywhere
    cuts = sorted(draw(st.lists(point, max_size=12), label="cuts"))
    return stream, cuts


def zlib_model(stream: bytes, cuts: list[int], max_size: int) -> tuple[list[bytes], list[object]]:
    """The websocket messages, and what each feed must give: the rule "inflate what is buffered once it ends with
    00 00 FF FF", applied with the standard library's zlib (valid data inflates the same in every library)."""
    bounds = [0, *cuts, len(stream)]
    messages = [stream[a:b] for a, b in zip(bounds, bounds[1:])]
    reference = zlib.decompressobj()
    pending = b""
    outcomes: list[object] = []
    for message in messages:
        pending += message
        if not pending.endswith(pure.ZLIB_SUFFIX):
            if len(pending) > max_size:
                return messages, [*outcomes, InflatedTooLargeError, CompressionError]
            outcomes.append(None)
            continue
        inflated = reference.decompress(pending)
        pending = b""
        if len(inflated) > max_size:
            return messages, [*outcomes, InflatedTooLargeError, CompressionError]
        outcomes.append(inflated)
    return messages, outcomes


@SETTINGS
@pytest.mark.parametrize("make", zlib_makers())
@given(connection=zlib_connections(), max_size=st.sampled_from([1, 100, 5000, 1 << 20, DEFAULT]))
def test_zlib_valid_stream_gives_exact_bytes(make: Callable[[int], Any], connection: tuple[bytes, list[int]], max_size: int) -> None:
    stream, cuts = connection
    messages, expected = zlib_model(stream, cuts, max_size)
    assert observed_outcomes(make(max_size).feed, messages) == expected


@SETTINGS
@given(connection=zlib_connections())
def test_zlib_model_returns_every_payload_byte(connection: tuple[bytes, list[int]]) -> None:
    """The model itself loses nothing: its results add up to the whole stream's content."""
    stream, cuts = connection
    _, outcomes = zlib_model(stream, cuts, DEFAULT)
    assert b"".join(o for o in outcomes if isinstance(o, bytes)) == zlib.decompressobj().decompress(stream)
    assert outcomes[-1] is not None  # the stream ends with a sync flush: the last feed returns
