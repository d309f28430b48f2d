"""Websocket framing (RFC 6455): FrameReader, build_frame, parse_close, build_close_payload, on both twins.

Frames fed to the reader are written here byte by byte by :func:`raw_frame`, independently of ``build_frame``,
so the reader and the writer are checked against the RFC layout and not against each other.
"""

from __future__ import annotations

from types import ModuleType

import pytest

from gateway.errors import MessageTooLargeError, ProtocolError

TEXT, BINARY, CLOSE, PING, PONG, CONTINUATION = 1, 2, 8, 9, 10, 0


def raw_frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask_key: bytes | None = None,
    length_form: int | None = None,
    length: int | None = None,
) -> bytes:
    """A frame laid out as RFC 6455 section 5.2 says. ``length_form`` 7/16/64 forces an encoding of the length
    (default: the minimal one); ``length`` overrides the length written in the header."""
    size = len(payload) if length is None else length
    if length_form is None:
        length_form = 7 if size < 126 else 16 if size < 65536 else 64
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
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


def unmask_client_frame(frame: bytes) -> tuple[int, bool, bytes, bytes]:
    """Parse one masked client frame: (opcode, fin, mask key, unmasked payload); asserts it is exactly one frame."""
    first, second = frame[0], frame[1]
    assert second & 0x80, "client frames must be masked"
    assert first & 0x70 == 0
    length, pos = second & 0x7F, 2
    if length == 126:
        length, pos = int.from_bytes(frame[2:4], "big"), 4
    elif length == 127:
        length, pos = int.from_bytes(frame[2:10], "big"), 10
    key = frame[pos : pos + 4]
    body = frame[pos + 4 :]
    assert len(body) == length
    return first & 0x0F, bool(first & 0x80), key, bytes(b ^ key[i % 4] for i, b in enumerate(body))


def feed_bytewise(reader: object, data: bytes) -> list[tuple[int, bytes]]:
    messages: list[tuple[int, bytes]] = []
    for i in range(len(data)):
        messages += reader.feed(data[i : i + 1])  # type: ignore[attr-defined]
    return messages


def protocol_error(framing: ModuleType, data: bytes, **reader_options: object) -> ProtocolError:
    reader = framing.FrameReader(**reader_options)
    with pytest.raises(ProtocolError) as caught:
        reader.feed(data)
    return caught.value


# --- constants ---------------------------------------------------------------------------------------------------


def test_opcode_constants(framing: ModuleType) -> None:
    assert (framing.OP_CONTINUATION, framing.OP_TEXT, framing.OP_BINARY) == (0, 1, 2)
    assert (framing.OP_CLOSE, framing.OP_PING, framing.OP_PONG) == (8, 9, 10)


# --- every frame kind and length form ----------------------------------------------------------------------------


@pytest.mark.parametrize("opcode", [TEXT, BINARY, PING, PONG, CLOSE])
def test_each_frame_kind_comes_out_with_its_opcode(framing: ModuleType, opcode: int) -> None:
    payload = b"\x03\xe8bye" if opcode == CLOSE else b"hello"
    assert framing.FrameReader().feed(raw_frame(opcode, payload)) == [(opcode, payload)]


@pytest.mark.parametrize("opcode", [TEXT, BINARY, PING, PONG, CLOSE])
def test_empty_payloads(framing: ModuleType, opcode: int) -> None:
    assert framing.FrameReader().feed(raw_frame(opcode)) == [(opcode, b"")]


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 200_000])
def test_minimal_length_forms(framing: ModuleType, size: int) -> None:
    payload = bytes(i % 251 for i in range(size))
    frame = raw_frame(BINARY, payload)
    assert len(frame) - size == (2 if size < 126 else 4 if size < 65536 else 10)
    assert framing.FrameReader().feed(frame) == [(BINARY, payload)]


@pytest.mark.parametrize("length_form", [16, 64])
def test_longer_than_needed_length_forms_are_read(framing: ModuleType, length_form: int) -> None:
    frame = raw_frame(BINARY, b"short", length_form=length_form)
    assert framing.FrameReader().feed(frame) == [(BINARY, b"short")]


def test_many_messages_in_one_chunk_in_order(framing: ModuleType) -> None:
    expected = [(BINARY, bytes([i]) * (800 + i)) for i in range(200)]
    expected.insert(50, (PING, b"p"))
    expected.insert(120, (TEXT, "héllo wörld".encode()))
    stream = b"".join(raw_frame(op, payload) for op, payload in expected)
    messages = framing.FrameReader().feed(stream)
    assert messages == expected
    assert all(type(payload) is bytes for _, payload in messages)


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview])
def test_accepts_bytes_like_input_and_returns_bytes(framing: ModuleType, wrap: type) -> None:
    stream = raw_frame(TEXT, b"one") + raw_frame(BINARY, b"two" * 100) + raw_frame(BINARY, b"three")[:3]
    reader = framing.FrameReader()
    messages = reader.feed(wrap(stream))
    messages += reader.feed(wrap(raw_frame(BINARY, b"three")[3:]))
    assert messages == [(TEXT, b"one"), (BINARY, b"two" * 100), (BINARY, b"three")]
    assert all(type(payload) is bytes for _, payload in messages)


def test_payload_does_not_alias_a_mutable_input(framing: ModuleType) -> None:
    chunk = bytearray(raw_frame(BINARY, b"abcdef"))
    [(_, payload)] = framing.FrameReader().feed(chunk)
    chunk[-6:] = b"XXXXXX"
    assert payload == b"abcdef"


def test_empty_feed_returns_nothing(framing: ModuleType) -> None:
    reader = framing.FrameReader()
    assert reader.feed(b"") == []
    assert reader.feed(raw_frame(PING, b"x")) == [(PING, b"x")]


# --- chunking ------------------------------------------------------------------------------------------------------


def mixed_stream() -> tuple[bytes, list[tuple[int, bytes]]]:
    parts = [
        raw_frame(TEXT, "zażółć".encode()),
        raw_frame(BINARY, bytes(range(256)) * 300),  # 64-bit length
        raw_frame(PING, b"ping"),
        raw_frame(TEXT, "fragmented ".encode(), fin=False),
        raw_frame(PONG, b""),
        raw_frame(CONTINUATION, "mes".encode() + "é".encode()[:1], fin=False),
        raw_frame(CONTINUATION, "é".encode()[1:] + b"sage"),
        raw_frame(BINARY, b"x" * 1000),  # 16-bit length
        raw_frame(CLOSE, b"\x03\xe8done"),
    ]
    expected = [
        (TEXT, "zażółć".encode()),
        (BINARY, bytes(range(256)) * 300),
        (PING, b"ping"),
        (PONG, b""),
        (TEXT, "fragmented mesésage".encode()),
        (BINARY, b"x" * 1000),
        (CLOSE, b"\x03\xe8done"),
    ]
    return b"".join(parts), expected


def test_one_byte_at_a_time(framing: ModuleType) -> None:
    stream, expected = mixed_stream()
    assert feed_bytewise(framing.FrameReader(), stream) == expected


@pytest.mark.parametrize("chunk_size", [2, 3, 7, 100, 4096, 65536])
def test_fixed_chunk_sizes(framing: ModuleType, chunk_size: int) -> None:
    stream, expected = mixed_stream()
    reader = framing.FrameReader()
    messages: list[tuple[int, bytes]] = []
    for i in range(0, len(stream), chunk_size):
        messages += reader.feed(stream[i : i + chunk_size])
    assert messages == expected


def test_message_comes_out_of_the_chunk_that_completes_it(framing: ModuleType) -> None:
    frame = raw_frame(BINARY, b"a" * 300)
    reader = framing.FrameReader()
    assert reader.feed(frame[:1]) == []
    assert reader.feed(frame[1:3]) == []
    assert reader.feed(frame[3:-1]) == []
    assert reader.feed(frame[-1:] + raw_frame(PING)) == [(BINARY, b"a" * 300), (PING, b"")]


# --- fragmentation -------------------------------------------------------------------------------------------------


def test_fragments_are_reassembled_with_control_frames_between_them(framing: ModuleType) -> None:
    stream = (
        raw_frame(BINARY, b"first-", fin=False)
        + raw_frame(PING, b"1")
        + raw_frame(CONTINUATION, b"", fin=False)
        + raw_frame(PONG, b"2")
        + raw_frame(CONTINUATION, b"second-", fin=False)
        + raw_frame(CLOSE, b"\x03\xe8")
        + raw_frame(CONTINUATION, b"last")
    )
    assert framing.FrameReader().feed(stream) == [
        (PING, b"1"),
        (PONG, b"2"),
        (CLOSE, b"\x03\xe8"),
        (BINARY, b"first-second-last"),
    ]


def test_fragmented_message_across_feeds(framing: ModuleType) -> None:
    reader = framing.FrameReader()
    assert reader.feed(raw_frame(TEXT, b"a", fin=False)) == []
    assert reader.feed(raw_frame(CONTINUATION, b"b", fin=False) + raw_frame(PING)) == [(PING, b"")]
    assert reader.feed(raw_frame(CONTINUATION, b"c")) == [(TEXT, b"abc")]
    assert reader.feed(raw_frame(TEXT, b"next")) == [(TEXT, b"next")]


def test_utf8_sequence_split_across_fragments_is_valid(framing: ModuleType) -> None:
    text = "😀".encode()  # 4 bytes, split after each of them
    stream = b"".join(raw_frame(TEXT if i == 0 else CONTINUATION, text[i : i + 1], fin=i == 3) for i in range(4))
    assert framing.FrameReader().feed(stream) == [(TEXT, text)]


# --- protocol errors -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("masked frame", raw_frame(BINARY, b"abc", mask_key=b"\x01\x02\x03\x04")),
        ("rsv1", raw_frame(BINARY, b"abc", rsv=4)),
        ("rsv2", raw_frame(TEXT, b"abc", rsv=2)),
        ("rsv3", raw_frame(PING, b"abc", rsv=1)),
        ("opcode 3", raw_frame(3, b"abc")),
        ("opcode 7", raw_frame(7, b"abc")),
        ("opcode 11", raw_frame(11, b"abc")),
        ("opcode 15", raw_frame(15, b"abc")),
        ("control over 125", raw_frame(PING, b"p" * 126)),
        ("control with 16-bit length", raw_frame(PONG, b"p" * 5, length_form=16)),
        ("fragmented control", raw_frame(CLOSE, b"\x03\xe8", fin=False)),
        ("continuation without a start", raw_frame(CONTINUATION, b"abc")),
        ("new data frame in a fragmented message", raw_frame(TEXT, b"a", fin=False) + raw_frame(BINARY, b"b")),
        ("same data opcode in a fragmented message", raw_frame(TEXT, b"a", fin=False) + raw_frame(TEXT, b"b")),
        ("64-bit length with the top bit set", bytes((0x82, 127)) + (1 << 63).to_bytes(8, "big")),
    ],
)
def test_protocol_errors_close_with_1002(framing: ModuleType, name: str, data: bytes) -> None:
    error = protocol_error(framing, data)
    assert type(error) is ProtocolError, name
    assert error.close_code == 1002
    assert error.messages == []


@pytest.mark.parametrize(
    "bad_text",
    [
        b"\xff",
        b"abc\x80",  # lone continuation byte
        b"\xc0\xaf",  # overlong
        b"\xe0\x80\xaf",  # overlong
        b"\xf0\x80\x80\xaf",  # overlong
        b"\xed\xa0\x80",  # UTF-16 surrogate
        b"\xf4\x90\x80\x80",  # above U+10FFFF
        b"ok \xe2\x82",  # truncated at the end
        b"12345678\xe2\x28\xa1",  # bad continuation after an ASCII block
    ],
)
def test_invalid_utf8_in_text_closes_with_1007(framing: ModuleType, bad_text: bytes) -> None:
    error = protocol_error(framing, raw_frame(TEXT, bad_text))
    assert type(error) is ProtocolError
    assert error.close_code == 1007


def test_invalid_utf8_in_binary_is_fine(framing: ModuleType) -> None:
    assert framing.FrameReader().feed(raw_frame(BINARY, b"\xff\xfe")) == [(BINARY, b"\xff\xfe")]


def test_valid_utf8_edge_code_points(framing: ModuleType) -> None:
    text = "\x00\x7f\x80\u07ff\u0800\ud7ff\ue000\uffff\U00010000\U0010ffff".encode()
    assert framing.FrameReader().feed(raw_frame(TEXT, text)) == [(TEXT, text)]


def test_utf8_is_checked_on_the_reassembled_message(framing: ModuleType) -> None:
    # Each fragment is valid on its own, the message is not (a lead byte with no continuation, then ASCII).
    stream = raw_frame(TEXT, b"ab\xc3", fin=False) + raw_frame(CONTINUATION, b"(")
    reader = framing.FrameReader()
    assert reader.feed(stream[: len(raw_frame(TEXT, b"ab\xc3"))]) == []
    with pytest.raises(ProtocolError) as caught:
        reader.feed(stream[len(raw_frame(TEXT, b"ab\xc3")) :])
    assert caught.value.close_code == 1007


def test_error_carries_the_messages_completed_earlier_in_the_same_call(framing: ModuleType) -> None:
    reader = framing.FrameReader()
    assert reader.feed(raw_frame(BINARY, b"earlier call")) == [(BINARY, b"earlier call")]
    data = raw_frame(TEXT, b"one") + raw_frame(PING, b"two") + raw_frame(5, b"bad") + raw_frame(TEXT, b"after")
    with pytest.raises(ProtocolError) as caught:
        reader.feed(data)
    assert caught.value.messages == [(TEXT, b"one"), (PING, b"two")]
    assert caught.value.close_code == 1002


def test_error_completing_a_buffered_frame_carries_messages(framing: ModuleType) -> None:
    reader = framing.FrameReader()
    first = raw_frame(BINARY, b"z" * 200)
    assert reader.feed(first[:10]) == []
    with pytest.raises(ProtocolError) as caught:
        reader.feed(first[10:] + raw_frame(TEXT, b"\xff"))
    assert caught.value.close_code == 1007
    assert caught.value.messages == [(BINARY, b"z" * 200)]


def test_header_errors_are_raised_before_the_body_arrives(framing: ModuleType) -> None:
    reader = framing.FrameReader()
    with pytest.raises(ProtocolError) as caught:
        reader.feed(raw_frame(BINARY, b"x" * 1000, mask_key=b"abcd")[:2])
    assert caught.value.close_code == 1002


def test_reader_is_unusable_after_an_error(framing: ModuleType) -> None:
    reader = framing.FrameReader(max_message_size=10)
    with pytest.raises(MessageTooLargeError):
        reader.feed(raw_frame(BINARY, b"x" * 11))
    with pytest.raises(ProtocolError) as caught:
        reader.feed(raw_frame(BINARY, b"fine"))
    assert caught.value.close_code == 1009
    assert caught.value.messages == []


# --- maximum message size ------------------------------------------------------------------------------------------


def test_message_at_the_limit_passes(framing: ModuleType) -> None:
    reader = framing.FrameReader(max_message_size=1000)
    assert reader.feed(raw_frame(BINARY, b"m" * 1000)) == [(BINARY, b"m" * 1000)]


@pytest.mark.parametrize("length_form", [7, 16, 64])
def test_too_large_is_detected_from_the_header(framing: ModuleType, length_form: int) -> None:
    size = {7: 101, 16: 60_000, 64: 1 << 40}[length_form]
    limit = size - 1
    header = raw_frame(BINARY, length=size, length_form=length_form)
    reader = framing.FrameReader(max_message_size=limit)
    with pytest.raises(MessageTooLargeError) as caught:
        reader.feed(header)  # the header only, no body
    assert caught.value.close_code == 1009
    assert isinstance(caught.value, ProtocolError)


def test_too_large_counts_earlier_fragments(framing: ModuleType) -> None:
    reader = framing.FrameReader(max_message_size=10)
    assert reader.feed(raw_frame(TEXT, b"123456", fin=False)) == []
    assert reader.feed(raw_frame(PING, b"control frames do not count")) == [(PING, b"control frames do not count")]
    with pytest.raises(MessageTooLargeError) as caught:
        reader.feed(raw_frame(CONTINUATION, b"12345")[:2])
    assert caught.value.messages == []


def test_fragments_up_to_the_limit_pass(framing: ModuleType) -> None:
    reader = framing.FrameReader(max_message_size=10)
    stream = raw_frame(BINARY, b"12345", fin=False) + raw_frame(CONTINUATION, b"67890")
    assert reader.feed(stream) == [(BINARY, b"1234567890")]


def test_zero_limit_allows_only_empty_messages(framing: ModuleType) -> None:
    reader = framing.FrameReader(max_message_size=0)
    assert reader.feed(raw_frame(BINARY) + raw_frame(PING, b"p")) == [(BINARY, b""), (PING, b"p")]
    with pytest.raises(MessageTooLargeError):
        reader.feed(raw_frame(TEXT, b"a"))


def test_unlimited_reads_a_large_message_in_pieces(framing: ModuleType) -> None:
    payload = bytes(range(256)) * 8192  # 2 MiB
    frame = raw_frame(BINARY, payload)
    reader = framing.FrameReader(None)
    messages: list[tuple[int, bytes]] = []
    for i in range(0, len(frame), 65536):
        messages += reader.feed(frame[i : i + 65536])
    assert messages == [(BINARY, payload)]


@pytest.mark.parametrize(("value", "error"), [(-1, ValueError), ("10", TypeError), (1.5, TypeError)])
def test_bad_max_message_size(framing: ModuleType, value: object, error: type) -> None:
    with pytest.raises(error):
        framing.FrameReader(max_message_size=value)


# --- build_frame ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 5, 125, 126, 65535, 65536, 100_003])
@pytest.mark.parametrize("opcode", [TEXT, BINARY])
def test_build_frame_masked_round_trip(framing: ModuleType, size: int, opcode: int) -> None:
    payload = bytes((i * 7) % 256 for i in range(size))
    frame = framing.build_frame(opcode, payload)
    header_size = 2 if size < 126 else 4 if size < 65536 else 10
    assert len(frame) == header_size + 4 + size
    got_opcode, fin, key, unmasked = unmask_client_frame(frame)
    assert (got_opcode, fin, unmasked) == (opcode, True, payload)
    assert frame[header_size : header_size + 4] == key


@pytest.mark.parametrize("opcode", [PING, PONG, CLOSE])
def test_build_control_frames(framing: ModuleType, opcode: int) -> None:
    frame = framing.build_frame(opcode, b"c" * 125)
    assert unmask_client_frame(frame)[::3] == (opcode, b"c" * 125)


def test_build_frame_uses_a_fresh_key_per_frame(framing: ModuleType) -> None:
    keys = {unmask_client_frame(framing.build_frame(BINARY, b"same payload"))[2] for _ in range(20)}
    assert len(keys) > 1  # 20 draws of a 32-bit key colliding into one value: probability ~2**-608


def test_build_frame_unmasked_is_read_back(framing: ModuleType) -> None:
    payloads = [b"", b"a", b"b" * 126, b"c" * 70_000]
    stream = b"".join(framing.build_frame(BINARY, payload, mask=False) for payload in payloads)
    assert stream[:2] == b"\x82\x00"
    assert framing.build_frame(TEXT, b"hi", mask=False) == raw_frame(TEXT, b"hi")
    assert framing.build_frame(BINARY, b"b" * 126, mask=False) == raw_frame(BINARY, b"b" * 126)
    assert framing.build_frame(BINARY, b"c" * 70_000, mask=False) == raw_frame(BINARY, b"c" * 70_000)
    assert framing.FrameReader().feed(stream) == [(BINARY, payload) for payload in payloads]


@pytest.mark.parametrize("wrap", [bytearray, memoryview])
def test_build_frame_accepts_bytes_like(framing: ModuleType, wrap: type) -> None:
    assert unmask_client_frame(framing.build_frame(BINARY, wrap(b"payload")))[3] == b"payload"


@pytest.mark.parametrize("opcode", [3, 7, 11, 16, -1])
def test_build_frame_rejects_unknown_opcodes(framing: ModuleType, opcode: int) -> None:
    with pytest.raises(ValueError):
        framing.build_frame(opcode, b"")


def test_build_frame_rejects_long_control_frames(framing: ModuleType) -> None:
    with pytest.raises(ValueError):
        framing.build_frame(PING, b"p" * 126)


# --- close payloads ------------------------------------------------------------------------------------------------


def test_parse_close_empty_is_1005(framing: ModuleType) -> None:
    assert framing.parse_close(b"") == (1005, "")


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4000, 4014, 4999])
def test_close_round_trip(framing: ModuleType, code: int) -> None:
    payload = framing.build_close_payload(code, "raison d'être")
    assert payload == code.to_bytes(2, "big") + "raison d'être".encode()
    assert framing.parse_close(payload) == (code, "raison d'être")


def test_close_without_reason(framing: ModuleType) -> None:
    assert framing.build_close_payload(1000) == b"\x03\xe8"
    assert framing.parse_close(b"\x03\xe8") == (1000, "")


def test_parse_close_one_byte_is_1002(framing: ModuleType) -> None:
    with pytest.raises(ProtocolError) as caught:
        framing.parse_close(b"\x03")
    assert caught.value.close_code == 1002


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535])
def test_parse_close_rejects_codes_not_allowed_on_the_wire(framing: ModuleType, code: int) -> None:
    with pytest.raises(ProtocolError) as caught:
        framing.parse_close(code.to_bytes(2, "big") + b"reason")
    assert caught.value.close_code == 1002


def test_parse_close_invalid_utf8_reason_is_1007(framing: ModuleType) -> None:
    with pytest.raises(ProtocolError) as caught:
        framing.parse_close(b"\x03\xe8bad \xff")
    assert caught.value.close_code == 1007


@pytest.mark.parametrize("code", [999, 1005, 1006, 1015, 5000])
def test_build_close_payload_rejects_codes_not_allowed_on_the_wire(framing: ModuleType, code: int) -> None:
    with pytest.raises(ValueError):
        framing.build_close_payload(code)


def test_build_close_payload_reason_limit(framing: ModuleType) -> None:
    assert len(framing.build_close_payload(1000, "r" * 123)) == 125
    with pytest.raises(ValueError):
        framing.build_close_payload(1000, "r" * 124)
    with pytest.raises(ValueError):
        framing.build_close_payload(1000, "é" * 62)  # 124 bytes in UTF-8


def test_close_frame_built_and_read_back(framing: ModuleType) -> None:
    frame = framing.build_frame(CLOSE, framing.build_close_payload(4000, "resume"), mask=False)
    [(opcode, payload)] = framing.FrameReader().feed(frame)
    assert opcode == CLOSE
    assert framing.parse_close(payload) == (4000, "resume")
