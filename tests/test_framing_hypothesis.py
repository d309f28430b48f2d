"""Differential property tests of the two framing twins (``gateway._framing_py`` and ``gateway._speedups._framing``).

Valid streams: random message sequences, random fragmentation with control frames between fragments, random
length encodings and random chunkings must give, chunk by chunk, exactly the messages the stream was built from,
from both twins. Malformed streams (random frame headers, random byte damage): both twins must return the same
messages chunk by chunk and fail on the same chunk with the same error class, close code and ``.messages``.

Both twins are imported directly; a missing compiled twin fails these tests (deselected by ``--no-speedups``).
"""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hypothesis_budget import examples

from gateway.errors import ProtocolError

pytestmark = pytest.mark.speedups

TEXT, BINARY, CLOSE, PING, PONG, CONTINUATION = 1, 2, 8, 9, 10, 0
SETTINGS = settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])

Message = tuple[int, bytes]


@pytest.fixture(scope="module")
def twins() -> tuple[ModuleType, ModuleType]:
    pure = importlib.import_module("gateway._framing_py")
    compiled = importlib.import_module("gateway._speedups._framing")  # ImportError here fails the test
    return pure, compiled


def encode_frame(first: int, payload: bytes, length_form: int, mask_key: bytes | None = None) -> bytes:
    """A frame with first byte ``first``; the length in the 7-, 16- or 64-bit form (the smallest that fits if the
    requested one cannot hold it)."""
    size = len(payload)
    if size > 125 and length_form == 7:
        length_form = 16
    if size > 65535:
        length_form = 64
    mask_bit = 0x80 if mask_key is not None else 0
    if length_form == 7:
        header = bytes((first, mask_bit | size))
    elif length_form == 16:
        header = bytes((first, mask_bit | 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((first, mask_bit | 127)) + size.to_bytes(8, "big")
    if mask_key is None:
        return header + payload
    return header + mask_key + bytes(b ^ mask_key[i % 4] for i, b in enumerate(payload))


length_forms = st.sampled_from([7, 7, 7, 16, 64])
control_frames = st.tuples(st.sampled_from([PING, PONG, CLOSE]), st.binary(max_size=125))
text_payloads = st.text(max_size=300).map(lambda text: text.encode("utf-8"))
binary_payloads = st.one_of(st.binary(max_size=300), st.binary(min_size=65530, max_size=65540))


@st.composite
def data_message_frames(draw: st.DrawFn) -> tuple[list[bytes], list[Message]]:
    """The frames of one data message (maybe fragmented, control frames between fragments) and what they yield."""
    opcode = draw(st.sampled_from([TEXT, BINARY]))
    payload = draw(text_payloads if opcode == TEXT else binary_payloads)
    cuts = sorted(draw(st.lists(st.integers(0, len(payload)), max_size=4)))
    pieces = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)])]
    frames: list[bytes] = []
    yielded: list[Message] = []
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        first = (0x80 if last else 0) | (opcode if index == 0 else CONTINUATION)
        frames.append(encode_frame(first, piece, draw(length_forms)))
        if not last:
            for control_opcode, control_payload in draw(st.lists(control_frames, max_size=2)):
                frames.append(encode_frame(0x80 | control_opcode, control_payload, 7))
                yielded.append((control_opcode, control_payload))
    yielded.append((opcode, payload))
    return frames, yielded


@st.composite
def valid_streams(draw: st.DrawFn) -> tuple[bytes, list[Message]]:
    frames: list[bytes] = []
    expected: list[Message] = []
    for _ in range(draw(st.integers(0, 8))):
        if draw(st.booleans()):
            message_frames, yielded = draw(data_message_frames())
        else:
            opcode, payload = draw(control_frames)
            message_frames, yielded = [encode_frame(0x80 | opcode, payload, 7)], [(opcode, payload)]
        frames += message_frames
        expected += yielded
    return b"".join(frames), expected


def chunkings(stream: bytes) -> st.SearchStrategy[list[bytes]]:
    """Random cut points; sometimes one byte at a time."""
    if not stream:
        return st.just([b""])
    cuts = st.lists(st.integers(0, len(stream)), max_size=20).map(sorted)
    one_byte = st.just(list(range(len(stream) + 1))) if len(stream) <= 2000 else cuts
    return st.one_of(cuts, one_byte).map(
        lambda points: [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)])]
    )


def run(module: ModuleType, chunks: list[bytes], max_message_size: int | None) -> list[object]:
    """Per chunk: the list of messages, or (error class, close code, .messages) and then stop."""
    reader = module.FrameReader(max_message_size)
    trace: list[object] = []
    for chunk in chunks:
        try:
            trace.append(reader.feed(chunk))
        except ProtocolError as error:
            trace.append((type(error), error.close_code, error.messages))
            with pytest.raises(ProtocolError) as again:  # unusable after an error, in both twins
                reader.feed(b"\x89\x00")
            assert again.value.close_code == error.close_code
            break
    return trace


@SETTINGS
@given(data=st.data())
def test_valid_streams_give_the_same_messages_from_both_twins(twins: tuple[ModuleType, ModuleType], data: st.DataObject) -> None:
    stream, expected = data.draw(valid_streams())
    chunks = data.draw(chunkings(stream))
    pure_trace = run(twins[0], chunks, None)
    compiled_trace = run(twins[1], chunks, None)
    assert compiled_trace == pure_trace
    assert [message for messages in pure_trace for message in messages] == expected  # type: ignore[union-attr]


@st.composite
def arbitrary_frames(draw: st.DrawFn) -> bytes:
    """A frame with any FIN bit, reserved bits (mostly clear) and opcode (mostly known), sometimes masked, any
    payload; or a bare header with a 64-bit length whose top bit is set."""
    fin = draw(st.booleans())
    reserved = draw(st.one_of(st.just(0), st.just(0), st.just(0), st.integers(1, 7)))
    opcode = draw(st.one_of(st.sampled_from([TEXT, BINARY, CONTINUATION, CLOSE, PING, PONG]), st.integers(0, 15)))
    first = (0x80 if fin else 0) | reserved << 4 | opcode
    if draw(st.integers(0, 20)) == 0:
        return bytes((first, 127)) + draw(st.integers(1 << 63, (1 << 64) - 1)).to_bytes(8, "big")
    payload = draw(st.one_of(st.binary(max_size=200), text_payloads, st.binary(min_size=126, max_size=70_000)))
    mask_key = draw(st.one_of(st.none(), st.none(), st.none(), st.binary(min_size=4, max_size=4)))
    return encode_frame(first, payload, draw(length_forms), mask_key)


@st.composite
def damaged_streams(draw: st.DrawFn) -> bytes:
    """A valid stream with bytes overwritten, inserted or cut off."""
    stream = bytearray(draw(valid_streams())[0])
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["overwrite", "insert", "truncate"]))
        position = draw(st.integers(0, len(stream)))
        if action == "overwrite" and position < len(stream):
            stream[position] = draw(st.integers(0, 255))
        elif action == "insert":
            stream[position:position] = draw(st.binary(min_size=1, max_size=10))
        else:
            del stream[position:]
    return bytes(stream)


malformed_streams = st.one_of(
    st.lists(arbitrary_frames(), max_size=6).map(b"".join),
    damaged_streams(),
    st.binary(max_size=300),
)


@SETTINGS
@given(data=st.data())
def test_malformed_streams_fail_the_same_way_in_both_twins(twins: tuple[ModuleType, ModuleType], data: st.DataObject) -> None:
    stream = data.draw(malformed_streams)
    chunks = data.draw(chunkings(stream))
    max_message_size = data.draw(st.one_of(st.none(), st.integers(0, 100_000)))
    assert run(twins[1], chunks, max_message_size) == run(twins[0], chunks, max_message_size)


@SETTINGS
@given(payload=st.binary(max_size=125))
def test_parse_close_agrees_between_twins(twins: tuple[ModuleType, ModuleType], payload: bytes) -> None:
    outcomes = []
    for module in twins:
        try:
            outcomes.append(module.parse_close(payload))
        except ProtocolError as error:
            outcomes.append((type(error), error.close_code))
    assert outcomes[0] == outcomes[1]


@SETTINGS
@given(opcode=st.sampled_from([TEXT, BINARY, PING, PONG, CLOSE]), payload=st.binary(max_size=125), mask=st.booleans())
def test_build_frame_agrees_between_twins(twins: tuple[ModuleType, ModuleType], opcode: int, payload: bytes, mask: bool) -> None:
    frames = [module.build_frame(opcode, payload, mask=mask) for module in twins]
    if not mask:
        assert frames[0] == frames[1]
    else:  # the keys differ; the unmasked content must not
        header_sizes = {len(frame) - len(payload) for frame in frames}
        assert header_sizes == {6}
        for frame in frames:
            key = frame[2:6]
            assert bytes(b ^ key[i % 4] for i, b in enumerate(frame[6:])) == payload
        assert frames[0][:2] == frames[1][:2]
    if opcode != TEXT:  # build_frame does not check UTF-8; the reader would (rightly) reject random text
        assert twins[0].FrameReader().feed(twins[1].build_frame(opcode, payload, mask=False)) == [(opcode, payload)]
