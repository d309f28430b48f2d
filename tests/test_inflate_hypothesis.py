"""Differential and contract property tests of the inflation twins on valid and corrupt input.

The contract (``gateway/_inflate_py.py`` docstring, README "Inflaters: what a message may contain"): valid streams
give identical bytes everywhere; corrupt ones give CompressionError, InflatedTooLargeError past the ceiling, or
bytes where the library cannot tell, never another exception and never output over the ceiling. So:

* exact comparison where both twins run the same C library: the compiled zlib twin and the pure twin pinned to the
  backend of the same name (``ZLIB_BACKEND``: the standard library's zlib, which uses the process's libz, or
  python-zlib-ng, which bundles the zlib-ng release the compiled twin was built with);
* the contract for every other pairing: the pure twin on the other backends, and zstd (the compiled twin links the
  system libzstd, python-zstandard bundles its own), checked on each inflater on its own.

Tests of the compiled twin carry the ``speedups`` mark (a missing compiled twin fails them; ``--no-speedups``
deselects them). Examples are drawn under the suite's hypothesis profile, deterministic in CI.
"""

from __future__ import annotations

import zlib
from typing import Any, Callable, Optional

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import same_zlib_library
from gateway import _inflate_py as pure
from gateway.errors import CompressionError, InflatedTooLargeError

try:
    from gateway._speedups import _inflate as compiled
except ImportError:  # a pure install: every test here carries the speedups mark, which --no-speedups deselects
    compiled = None  # type: ignore[assignment]

speedups = pytest.mark.speedups


def compiled_twin() -> Any:
    if compiled is None:
        pytest.fail("compiled twin gateway._speedups._inflate is missing; build it or run with --no-speedups")
    return compiled


SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
DEFAULT = pure.DEFAULT_MAX_INFLATED_SIZE


def backend_param(backend: str) -> Any:
    installed = backend in pure.installed_zlib_backends()
    return pytest.param(backend, id=backend, marks=pytest.mark.skipif(not installed, reason=f"{backend} not installed"))


#: Every zlib inflater: the compiled twin, and the pure twin on each backend (uninstalled ones are skipped).
ZLIB_INFLATERS = [
    pytest.param("compiled", id="compiled", marks=speedups),
    *(backend_param(backend) for backend in pure.ZLIB_BACKENDS),
]
ZSTD_INFLATERS = [pytest.param("compiled", id="compiled", marks=speedups), pytest.param("pure", id="pure")]


def same_library() -> str:
    """The pure backend that runs the compiled twin's zlib: "zlib" or "zlib-ng" (skips if not installed alike)."""
    return same_zlib_library(compiled_twin())


def make_zlib(which: str, max_size: int = pure.DEFAULT_MAX_INFLATED_SIZE) -> Any:
    if which == "compiled":
        return compiled_twin().ZlibStreamInflater(max_size)
    return pure.zlib_stream_inflater(which, max_size)


def make_zstd(which: str, max_size: int = pure.DEFAULT_MAX_INFLATED_SIZE) -> Any:
    return (compiled_twin() if which == "compiled" else pure).ZstdStreamInflater(max_size)

payload = st.one_of(
    st.binary(max_size=2048),
    st.text(max_size=600).map(str.encode),
    st.tuples(st.binary(min_size=1, max_size=12), st.integers(1, 4000)).map(lambda pair: pair[0] * pair[1]),
)
payloads = st.lists(payload, min_size=1, max_size=8)


def zlib_messages(items: list[bytes], level: int) -> list[bytes]:
    compressor = zlib.compressobj(level)
    return [compressor.compress(p) + compressor.flush(zlib.Z_SYNC_FLUSH) for p in items]


def zstd_messages(items: list[bytes], ends: list[bool], checksum: bool, level: int) -> list[bytes]:
    """One message per payload; ends[i] ends the frame after payload i (a compatible server), else a flush (Discord)."""
    compressor = zstandard.ZstdCompressor(level=level, write_checksum=checksum)
    stream = compressor.compressobj()
    messages = []
    for item, end in zip(items, ends):
        flush = zstandard.COMPRESSOBJ_FLUSH_FINISH if end else zstandard.COMPRESSOBJ_FLUSH_BLOCK
        messages.append(stream.compress(item) + stream.flush(flush))
        if end:
            stream = compressor.compressobj()
    return messages


def outcomes(feed: Callable[[bytes], Any], messages: list[bytes]) -> list[object]:
    """What each feed gave: the result, or the exception class (then one more feed, which must raise too)."""
    seen: list[object] = []
    for message in messages:
        try:
            seen.append(feed(message))
        except Exception as exc:  # noqa: BLE001 - the class is what is compared
            seen.append(type(exc))
            try:
                feed(b"\x00\x00\xff\xff")
            except Exception as after:  # noqa: BLE001
                seen.append(("poisoned", type(after)))
            else:
                seen.append("not poisoned")
            break
    return seen


def split(data: st.DataObject, message: bytes) -> list[bytes]:
    if len(message) < 2:
        return [message]
    cuts = sorted(set(data.draw(st.lists(st.integers(1, len(message) - 1), max_size=6), label="cuts")))
    return [message[a:b] for a, b in zip([0, *cuts], [*cuts, len(message)])]


@SETTINGS
@pytest.mark.parametrize("which", ZLIB_INFLATERS)
@given(items=payloads, level=st.sampled_from([1, 6, 9]), data=st.data())
def test_zlib_random_splits_give_every_payload(which: str, items: list[bytes], level: int, data: st.DataObject) -> None:
    chunks = [chunk for message in zlib_messages(items, level) for chunk in split(data, message)]
    assert [r for r in outcomes(make_zlib(which).feed, chunks) if r is not None] == items


@speedups
@SETTINGS
@given(items=payloads, level=st.sampled_from([1, 6, 9]), data=st.data())
def test_zlib_random_splits_agree_exactly_on_the_same_library(items: list[bytes], level: int, data: st.DataObject) -> None:
    chunks = [chunk for message in zlib_messages(items, level) for chunk in split(data, message)]
    assert outcomes(make_zlib(same_library()).feed, chunks) == outcomes(make_zlib("compiled").feed, chunks)


@SETTINGS
@pytest.mark.parametrize("which", ZSTD_INFLATERS)
@given(
    items=payloads,
    ends=st.lists(st.booleans(), min_size=8, max_size=8),
    checksum=st.booleans(),
    level=st.sampled_from([1, 3, 9]),
)
def test_zstd_frames_and_flushes_give_every_payload(
    which: str, items: list[bytes], ends: list[bool], checksum: bool, level: int
) -> None:
    inflater = make_zstd(which)
    assert [inflater.feed(m) for m in zstd_messages(items, ends, checksum, level)] == items


mutation = st.tuples(st.sampled_from(["xor", "truncate", "insert", "delete"]), st.integers(0, 10**6), st.integers(1, 255))


def mutate(messages: list[bytes], index: int, how: tuple[str, int, int]) -> list[bytes]:
    kind, position, value = how
    messages = list(messages)
    target = bytearray(messages[index % len(messages)])
    if not target:
        return messages
    position %= len(target)
    if kind == "xor":
        target[position] ^= value
    elif kind == "truncate":
        del target[position:]
    elif kind == "insert":
        target[position:position] = bytes([value])
    else:
        del target[position]
    messages[index % len(messages)] = bytes(target)
    return messages


PROBE_PAYLOADS = [b'{"op":11,"d":null}', b'{"op":0,"t":"READY","d":{}}']


def expected_for_valid(items: list[bytes], max_size: int) -> list[object]:
    """What feeding one message per payload of a valid stream gives: each payload, or the ceiling error then poison."""
    expected: list[object] = []
    for item in items:
        if len(item) > max_size:
            return [*expected, InflatedTooLargeError, ("poisoned", CompressionError)]
        expected.append(item)
    return expected


def check_contract(
    inflater: Any,
    messages: list[bytes],
    valid: list[bytes],
    first_corrupt: int,
    max_size: int,
    fresh_stream: Callable[[list[bytes]], list[bytes]],
    zlib_marker_rule: bool,
) -> list[object]:
    """Feed ``messages`` (one corrupt from index ``first_corrupt`` on) and check the contract on every outcome.

    Before ``first_corrupt`` the messages are valid: exactly ``valid``'s payloads. From there: bytes (never over the
    ceiling; for zlib exactly when the buffered data ends with the marker, else None), CompressionError or
    InflatedTooLargeError; any other exception fails the test. After an error the inflater is poisoned; after
    ``reset()`` a fresh stream inflates exactly. Returns the outcomes (as ``outcomes`` records them).
    """
    seen = outcomes(inflater.feed, messages)
    prefix = expected_for_valid(valid[:first_corrupt], max_size)
    assert seen[: len(prefix)] == prefix[: len(seen)]
    pending = b""
    for message, outcome in zip(messages, seen):
        if isinstance(outcome, type):
            assert issubclass(outcome, CompressionError)  # InflatedTooLargeError is one
            break
        if zlib_marker_rule:
            pending += message
            assert (outcome is None) == (not pending.endswith(pure.ZLIB_SUFFIX))
            if outcome is None:
                assert len(pending) <= max_size
                continue
            pending = b""
        assert type(outcome) is bytes and len(outcome) <= max_size
    if any(isinstance(outcome, type) for outcome in seen):
        assert seen[-1] == ("poisoned", CompressionError)
    inflater.reset()
    assert [inflater.feed(m) for m in fresh_stream(PROBE_PAYLOADS)] == PROBE_PAYLOADS
    return seen


def zlib_contract(which: str, messages: list[bytes], items: list[bytes], index: int, max_size: int) -> list[object]:
    return check_contract(
        make_zlib(which, max_size), messages, items, index % len(messages), max_size, lambda p: zlib_messages(p, 6), True
    )


@SETTINGS
@pytest.mark.parametrize("which", ZLIB_INFLATERS)
@given(items=payloads, index=st.integers(0, 7), how=mutation, max_size=st.sampled_from([100, 5000, DEFAULT]))
def test_corrupt_zlib_keeps_the_contract(
    which: str, items: list[bytes], index: int, how: tuple[str, int, int], max_size: int
) -> None:
    messages = mutate(zlib_messages(items, 6), index, how)
    zlib_contract(which, messages, items, index, max_size)


@speedups
@SETTINGS
@given(items=payloads, index=st.integers(0, 7), how=mutation, max_size=st.sampled_from([100, 5000, DEFAULT]))
def test_corrupt_zlib_same_outcome_on_the_same_library(
    items: list[bytes], index: int, how: tuple[str, int, int], max_size: int
) -> None:
    """The compiled twin and the pure twin on the same zlib library: identical outcomes, byte for byte."""
    messages = mutate(zlib_messages(items, 6), index, how)
    assert outcomes(make_zlib(same_library(), max_size).feed, messages) == outcomes(make_zlib("compiled", max_size).feed, messages)


# Issue 8's falsifying example: the pure twin on isal rejected what system zlib accepts (an inserted byte that zlib
# reads as part of a valid block; so does zlib-ng). Same library: identical; isal: a difference the contract allows.
ISSUE_8_ITEMS = [b"\x00\x00\x00\x00\x01\x90\x90\x90\x91\x90"]
ISSUE_8_MESSAGES = mutate(zlib_messages(ISSUE_8_ITEMS, 6), 0, ("insert", 242, 2))


@pytest.mark.parametrize("which", ZLIB_INFLATERS)
def test_issue_8_example_keeps_the_contract(which: str) -> None:
    zlib_contract(which, ISSUE_8_MESSAGES, ISSUE_8_ITEMS, 0, DEFAULT)


@speedups
def test_issue_8_example_same_outcome_on_the_same_library() -> None:
    assert ISSUE_8_MESSAGES == [b"x\x9cb````\x9c0a\xc2\xc4\t\x00\x02\x00\x00\x00\xff\xff"]
    assert outcomes(make_zlib(same_library()).feed, ISSUE_8_MESSAGES) == outcomes(make_zlib("compiled").feed, ISSUE_8_MESSAGES)
    assert outcomes(make_zlib("compiled").feed, ISSUE_8_MESSAGES) == ISSUE_8_ITEMS  # zlib and zlib-ng accept it


@SETTINGS
@pytest.mark.parametrize("which", ZSTD_INFLATERS)
@given(
    items=payloads,
    ends=st.lists(st.booleans(), min_size=8, max_size=8),
    checksum=st.booleans(),
    index=st.integers(0, 7),
    how=mutation,
    max_size=st.sampled_from([100, 5000, DEFAULT]),
)
def test_corrupt_zstd_keeps_the_contract(
    which: str, items: list[bytes], ends: list[bool], checksum: bool, index: int, how: tuple[str, int, int], max_size: int
) -> None:
    """No exact comparison: the compiled twin's system libzstd and python-zstandard's own differ on corrupt data."""
    messages = mutate(zstd_messages(items, ends, checksum, 3), index, how)
    check_contract(
        make_zstd(which, max_size),
        messages,
        items,
        index % len(messages),
        max_size,
        lambda p: zstd_messages(p, [False] * len(p), False, 3),
        False,
    )


@SETTINGS
@pytest.mark.parametrize("which", [*ZLIB_INFLATERS, *(pytest.param(f"zstd-{p.values[0]}", id=f"zstd-{p.id}", marks=p.marks) for p in ZSTD_INFLATERS)])
@given(items=payloads, max_size=st.integers(1, 5000))
def test_ceiling_on_valid_streams_is_exact(which: str, items: list[bytes], max_size: int) -> None:
    if which.startswith("zstd-"):
        messages = zstd_messages(items, [False] * 8, False, 3)
        inflater = make_zstd(which[len("zstd-"):], max_size)
    else:
        messages = zlib_messages(items, 6)
        inflater = make_zlib(which, max_size)
    assert outcomes(inflater.feed, messages) == expected_for_valid(items, max_size)
