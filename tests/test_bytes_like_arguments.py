"""Arguments that are not contiguous bytes-like objects: both twins of every hot module raise TypeError.

The byte-taking entry points of framing and inflate (``FrameReader.feed``, ``build_frame``, ``parse_close``,
``ZlibStreamInflater.feed``, ``ZstdStreamInflater.feed``) take any C-contiguous bytes-like object and raise
TypeError, with the same text in both twins, for anything else: a non-contiguous memoryview (the compiled twins once
raised BufferError there and the pure ones TypeError, ProtocolError or nothing at all), str, int (the pure twins once
read ``bytes(5)`` as five zero bytes), None. The envelope functions take exactly bytes and raise TypeError for
anything else in both twins (their messages differ: Cython writes the compiled twin's).
"""

from __future__ import annotations

import array
import importlib
import zlib
from collections.abc import Callable
from types import ModuleType

import pytest
import zstandard

NOT_BYTES_LIKE = [
    pytest.param(memoryview(b"abcdef")[::2], id="memoryview-step-2"),
    pytest.param(memoryview(bytearray(b"\x82\x02hi"))[::-1], id="memoryview-reversed"),
    pytest.param("\x82\x02hi", id="str"),
    pytest.param(5, id="int"),
    pytest.param(None, id="None"),
]

CONTIGUOUS_TEXT = r"^(data|payload|message) must be a contiguous bytes-like object, not "


def framing_calls(framing: ModuleType) -> dict[str, Callable[[object], object]]:
    def feed_after_partial_frame(data: object) -> object:
        reader = framing.FrameReader()
        assert reader.feed(b"\x82") == []  # one byte of a frame buffered: the pure twin once appended to it
        return reader.feed(data)

    return {
        "FrameReader.feed": framing.FrameReader().feed,
        "FrameReader.feed (partial frame buffered)": feed_after_partial_frame,
        "build_frame": lambda data: framing.build_frame(framing.OP_BINARY, data),
        "build_frame (unmasked)": lambda data: framing.build_frame(framing.OP_BINARY, data, mask=False),
        "parse_close": framing.parse_close,
    }


def inflate_calls(inflate: ModuleType) -> dict[str, Callable[[object], object]]:
    def zlib_feed_after_partial_message(data: object) -> object:
        inflater = inflate.ZlibStreamInflater()
        assert inflater.feed(b"\x78") is None  # compressed bytes waiting for the marker
        return inflater.feed(data)

    return {
        "ZlibStreamInflater.feed": inflate.ZlibStreamInflater().feed,
        "ZlibStreamInflater.feed (partial message buffered)": zlib_feed_after_partial_message,
        "ZstdStreamInflater.feed": inflate.ZstdStreamInflater().feed,
    }


def envelope_calls(envelope: ModuleType) -> dict[str, Callable[[object], object]]:
    return {
        "scan_envelope": envelope.scan_envelope,
        "find_member": lambda payload: envelope.find_member(payload, 0, 0, "id"),
        "EventFilter.scan": envelope.EventFilter(0).scan,
    }


@pytest.mark.parametrize("argument", NOT_BYTES_LIKE)
def test_framing_and_inflate_raise_type_error(framing: ModuleType, inflate: ModuleType, argument: object) -> None:
    """Every byte-taking call of framing and inflate, in this twin, raises TypeError saying what it needs."""
    for name, call in {**framing_calls(framing), **inflate_calls(inflate)}.items():
        with pytest.raises(TypeError, match=CONTIGUOUS_TEXT) as info:
            call(argument)
        assert type(info.value) is TypeError, name


@pytest.mark.parametrize("argument", NOT_BYTES_LIKE)
def test_envelope_raises_type_error(envelope: ModuleType, argument: object) -> None:
    for name, call in envelope_calls(envelope).items():
        with pytest.raises(TypeError) as info:
            call(argument)
        assert type(info.value) is TypeError, name


@pytest.mark.speedups
@pytest.mark.parametrize("argument", NOT_BYTES_LIKE)
def test_both_twins_raise_the_same_error(argument: object) -> None:
    """Side by side: the same exception type in both twins of each module, and the same text for framing/inflate."""
    errors: dict[str, dict[str, BaseException]] = {}
    for twin, prefix in (("pure", "gateway._"), ("speedups", "gateway._speedups._")):
        framing = importlib.import_module(f"{prefix}framing{'_py' if twin == 'pure' else ''}")
        inflate = importlib.import_module(f"{prefix}inflate{'_py' if twin == 'pure' else ''}")
        envelope = importlib.import_module(f"{prefix}envelope{'_py' if twin == 'pure' else ''}")
        calls = {**framing_calls(framing), **inflate_calls(inflate), **envelope_calls(envelope)}
        errors[twin] = {}
        for name, call in calls.items():
            with pytest.raises(Exception) as info:
                call(argument)
            errors[twin][name] = info.value
    for name, pure_error in errors["pure"].items():
        compiled_error = errors["speedups"][name]
        assert type(pure_error) is type(compiled_error) is TypeError, name
        if name not in envelope_calls(importlib.import_module("gateway._envelope_py")):
            assert str(pure_error) == str(compiled_error), name


def test_a_rejected_argument_leaves_the_reader_and_inflaters_usable(framing: ModuleType, inflate: ModuleType) -> None:
    """The TypeError comes before any state changes: no poisoning, nothing buffered."""
    non_contiguous = memoryview(b"abcdef")[::2]
    reader = framing.FrameReader()
    assert reader.feed(b"\x82\x02h") == []
    with pytest.raises(TypeError):
        reader.feed(non_contiguous)
    assert reader.feed(b"i") == [(framing.OP_BINARY, b"hi")]

    payload = b'{"op":0,"d":{}}'
    compressor = zlib.compressobj()
    message = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
    zlib_inflater = inflate.ZlibStreamInflater()
    assert zlib_inflater.feed(message[:3]) is None
    with pytest.raises(TypeError):
        zlib_inflater.feed(non_contiguous)
    assert zlib_inflater.feed(message[3:]) == payload

    zstd_inflater = inflate.ZstdStreamInflater()
    with pytest.raises(TypeError):
        zstd_inflater.feed(non_contiguous)
    assert zstd_inflater.feed(zstandard.ZstdCompressor().compress(payload)) == payload


def test_parse_close_reads_wider_items_as_bytes(framing: ModuleType) -> None:
    """A memoryview of 2-byte items is read as its bytes (the compiled twin once raised OverflowError, the pure one
    read two 2-byte items as the code)."""
    payload = framing.build_close_payload(4000, "bye!")
    assert framing.parse_close(memoryview(array.array("H", payload))) == (4000, "bye!")
    assert framing.parse_close(array.array("H", payload)) == (4000, "bye!")
    assert framing.parse_close(bytearray(payload)) == (4000, "bye!")
