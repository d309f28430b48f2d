"""Envelope scan and EventFilter, run on both twins through the ``envelope`` fixture."""

from __future__ import annotations

import json
import sys
from types import ModuleType

import pytest

from gateway.errors import PayloadError
from gateway.flags import FLAG_BY_NAME, EventTypeFlags


def d_text(payload: bytes, d_start: int, d_end: int) -> bytes:
    assert 0 <= d_start < d_end <= len(payload)
    return payload[d_start:d_end]


def check_against_json(envelope: ModuleType, payload: bytes) -> tuple:
    """Scan, and check every field against json.loads of the whole payload."""
    op, seq, name, d_start, d_end = envelope.scan_envelope(payload)
    parsed = json.loads(payload)
    assert op == parsed["op"] and type(op) is int
    assert seq == parsed.get("s")
    assert name == parsed.get("t")
    if "d" in parsed:
        assert json.loads(d_text(payload, d_start, d_end)) == parsed["d"]
    else:
        assert (d_start, d_end) == (-1, -1)
    return op, seq, name, d_start, d_end


# ---- key order, whitespace, escapes ----


@pytest.mark.parametrize(
    "payload",
    [
        b'{"t":"MESSAGE_CREATE","s":42,"op":0,"d":{"content":"hi","id":"1"}}',
        b'{"op":0,"d":{"content":"hi","id":"1"},"s":42,"t":"MESSAGE_CREATE"}',
        b'{"d":{"content":"hi","id":"1"},"t":"MESSAGE_CREATE","op":0,"s":42}',
        b'{"s":42,"d":{"content":"hi","id":"1"},"op":0,"t":"MESSAGE_CREATE"}',
        b' \n{ "t" :\t"MESSAGE_CREATE" ,\r\n "s": 42 , "op" :0, "d" : { "content" : "hi", "id":"1" } }\n ',
    ],
)
def test_any_key_order_and_whitespace(envelope: ModuleType, payload: bytes) -> None:
    op, seq, name, _, _ = check_against_json(envelope, payload)
    assert (op, seq, name) == (0, 42, "MESSAGE_CREATE")


def test_known_names_are_interned(envelope: ModuleType) -> None:
    payload = json.dumps({"t": "GUILD_CREATE", "s": 1, "op": 0, "d": {}}).encode()
    name = envelope.scan_envelope(payload)[2]
    interned = next(key for key in FLAG_BY_NAME if key == "GUILD_CREATE")
    assert name is interned
    assert name is sys.intern("GUILD_CREATE")  # so `event.name is "GUILD_CREATE"`-style identity holds
    hello = envelope.EventFilter(0).scan(b'{"op":10,"d":{"heartbeat_interval":1}}')[2]
    assert hello is sys.intern("GATEWAY_HELLO")


def test_escaped_t_is_decoded_and_interned(envelope: ModuleType) -> None:
    payload = b'{"t":"MESSAGE\\u005fCREATE","s":1,"op":0,"d":{}}'
    name = check_against_json(envelope, payload)[2]
    assert name == "MESSAGE_CREATE"
    assert name is next(key for key in FLAG_BY_NAME if key == "MESSAGE_CREATE")


@pytest.mark.parametrize(
    "payload",
    [
        b'{"\\u006fp":0,"\\u0074":"READY","\\u0073":3,"\\u0064":{"v":10}}',
        b'{"o\\u0070":0,"t":"READY","s":3,"d":{"v":10}}',
    ],
)
def test_escaped_keys_are_recognised(envelope: ModuleType, payload: bytes) -> None:
    assert check_against_json(envelope, payload)[:3] == (0, 3, "READY")


def test_non_ascii_and_escaped_unknown_t(envelope: ModuleType) -> None:
    payload = json.dumps({"op": 0, "s": 1, "t": "NÉW_\"EVENT\"", "d": None}, ensure_ascii=False).encode()
    assert check_against_json(envelope, payload)[2] == 'NÉW_"EVENT"'
    payload = json.dumps({"op": 0, "s": 1, "t": "NÉW_EVENT", "d": None}).encode()  # \u00c9 escape
    assert check_against_json(envelope, payload)[2] == "NÉW_EVENT"


# ---- look-alikes in d ----


@pytest.mark.parametrize(
    "d",
    [
        {"content": '"t":"READY","op":10,"s":99,"d":{}}'},
        {"content": '\\"t\\":\\"READY\\"', "nested": {"t": "READY", "op": 7, "s": 1, "d": [1, "}"]}},
        {"t": "GUILD_DELETE", "op": 9, "s": None, "d": {"d": {"d": "}]}]"}}},
        {"content": "ends with a backslash \\", "more": "\\\\\\\"", "brackets": "{[{[", "x": "]}"},
        [{"op": 1}, "]", "[", '{"t":"X"}', ["\\", "\"]"]],
    ],
)
@pytest.mark.parametrize("d_first", [False, True])
def test_look_alikes_inside_d_are_skipped(envelope: ModuleType, d: object, d_first: bool) -> None:
    envelope_fields = {"t": "MESSAGE_CREATE", "s": 5, "op": 0}
    document = {"d": d, **envelope_fields} if d_first else {**envelope_fields, "d": d}
    payload = json.dumps(document, ensure_ascii=False).encode()
    assert check_against_json(envelope, payload)[:3] == (0, 5, "MESSAGE_CREATE")


def test_look_alikes_inside_other_top_level_values(envelope: ModuleType) -> None:
    payload = b'{"x":{"op":3,"t":"READY"},"y":"\\"op\\":4","op":11,"z":[{"d":1}]}'
    assert check_against_json(envelope, payload) == (11, None, None, -1, -1)


# ---- d variants ----


@pytest.mark.parametrize(
    ("d_json", "expected"),
    [
        (b"null", None),
        (b"[1,2,[3]]", [1, 2, [3]]),
        (b'"a \\"string\\""', 'a "string"'),
        (b"-12.5e3", -12.5e3),
        (b"0", 0),
        (b"true", True),
        (b"false", False),
        (b"{}", {}),
        (b"[]", []),
    ],
)
def test_d_of_every_json_type(envelope: ModuleType, d_json: bytes, expected: object) -> None:
    payload = b'{"op":0,"s":1,"t":"READY","d":' + d_json + b"}"
    op, seq, name, d_start, d_end = check_against_json(envelope, payload)
    assert payload[d_start:d_end] == d_json
    assert json.loads(payload[d_start:d_end]) == expected


def test_missing_d(envelope: ModuleType) -> None:
    assert envelope.scan_envelope(b'{"op":11}') == (11, None, None, -1, -1)
    assert envelope.scan_envelope(b'{"s":null,"op":7,"t":null}') == (7, None, None, -1, -1)


def test_d_is_not_validated_by_the_scan(envelope: ModuleType) -> None:
    # The structural skip finds d's end without checking its content; Event.data reports it.
    payload = b'{"op":0,"s":1,"t":"READY","d":{"a":tru,"b":[1,}]}'
    op, seq, name, d_start, d_end = envelope.scan_envelope(payload)
    assert payload[d_start:d_end] == b'{"a":tru,"b":[1,}]'  # bracket kinds are not matched either


def test_duplicate_keys_last_one_wins_like_json_loads(envelope: ModuleType) -> None:
    payload = b'{"op":1,"t":"READY","s":1,"d":{"a":1},"op":0,"t":"RESUMED","s":2,"d":[2]}'
    assert check_against_json(envelope, payload)[:3] == (0, 2, "RESUMED")


def test_huge_payload(envelope: ModuleType) -> None:
    members = [{"user": {"id": str(10**17 + i), "username": f"user\\{i}\"{{"}, "roles": ["1", "2"]} for i in range(20000)]
    document = {"t": "GUILD_CREATE", "s": 2, "op": 0, "d": {"id": "1", "members": members, "name": "[big]"}}
    payload = json.dumps(document).encode()
    assert len(payload) > 1_000_000
    assert check_against_json(envelope, payload)[:3] == (0, 2, "GUILD_CREATE")
    reordered = json.dumps({"d": document["d"], "op": 0, "t": "GUILD_CREATE", "s": 2}).encode()
    assert check_against_json(envelope, reordered)[:3] == (0, 2, "GUILD_CREATE")


@pytest.mark.parametrize("content_length", range(50, 200, 7))
def test_escapes_across_every_block_boundary(envelope: ModuleType, content_length: int) -> None:
    # Runs of backslashes and quotes land on every offset of the compiled twin's 64-byte blocks.
    content = ("\\" * (content_length % 5) + '"' + "x" * (content_length % 13) + "\\\\\"") * 9
    payload = json.dumps({"t": "MESSAGE_CREATE", "op": 0, "s": 1, "d": {"content": content, "z": ["]", "}"]}}).encode()
    assert check_against_json(envelope, payload)[:3] == (0, 1, "MESSAGE_CREATE")


# ---- op and s ----


def test_op_and_s_values(envelope: ModuleType) -> None:
    assert envelope.scan_envelope(b'{"op":0,"s":0,"t":"READY","d":{}}')[:2] == (0, 0)  # 0 is a real sequence
    assert envelope.scan_envelope(b'{"op":0,"s":null,"t":"READY"}')[:2] == (0, None)
    assert envelope.scan_envelope(b'{"op":0,"t":"READY"}')[:2] == (0, None)
    big = 2**70
    assert envelope.scan_envelope(b'{"op":%d,"s":%d}' % (big, big))[:2] == (big, big)
    assert envelope.scan_envelope(b'{"op":-1,"s":-5}')[:2] == (-1, -5)


@pytest.mark.parametrize(
    "payload",
    [
        b'{"s":1,"t":"READY","d":{}}',  # op missing
        b'{"op":"0","d":{}}',
        b'{"op":null}',
        b'{"op":true}',
        b'{"op":1.0}',
        b'{"op":1e2}',
        b'{"op":[0]}',
        b'{"op":{"op":0}}',
        b'{"op":0,"s":"1"}',
        b'{"op":0,"s":1.5}',
        b'{"op":0,"s":false}',
        b'{"op":0,"t":5}',
        b'{"op":0,"t":["READY"]}',
        b'{"op":0,"t":true}',
    ],
)
def test_wrong_types_raise_payload_error(envelope: ModuleType, payload: bytes) -> None:
    with pytest.raises(PayloadError) as info:
        envelope.scan_envelope(payload)
    assert info.value.payload == payload


# ---- invalid JSON and non-objects ----


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"   ",
        b"[]",
        b'[{"op":0}]',
        b"0",
        b'"op"',
        b"null",
        b'{"op":0',  # truncated
        b'{"op":0,"d":{"a":[1,2}',  # truncated inside d
        b'{"op":0,"d":"abc',
        b'{"op":0,"d":{"a":"b\\"}}',  # the closing quote is escaped: unterminated
        b'{"op":0}x',  # trailing garbage
        b'{"op":0}{"op":1}',
        b'{"op":0,}',
        b'{,"op":0}',
        b'{"op" 0}',
        b'{"op":0 "s":1}',
        b"{op:0}",
        b"{'op':0}",
        b'{"op":01}',
        b'{"op":-}',
        b'{"op":0,"x":tru}',
        b'{"op":0,"x":NaN}',
        b'{"op":0,"x":}',
        b'{"op":0,"d":}',
        b'{"op":0,"\\x":1}',  # invalid escape in a key
        b'{"op":0,"t":"\\q"}',  # invalid escape in t
        b'{"op":0,"t":"\xff\xfe"}',  # invalid UTF-8 in t
        b"\xef\xbb\xbf{\"op\":0}",  # BOM
    ],
)
def test_invalid_payloads_raise_payload_error(envelope: ModuleType, payload: bytes) -> None:
    with pytest.raises(PayloadError) as info:
        envelope.scan_envelope(payload)
    assert info.value.payload == payload


@pytest.mark.parametrize("payload", [bytearray(b'{"op":0}'), memoryview(b'{"op":0}'), '{"op":0}', None])
def test_non_bytes_raise_type_error(envelope: ModuleType, payload: object) -> None:
    with pytest.raises(TypeError):
        envelope.scan_envelope(payload)
    with pytest.raises(TypeError):
        envelope.EventFilter(0).scan(payload)


# ---- EventFilter ----


def dispatch(name: str, seq: int = 3) -> bytes:
    return json.dumps({"t": name, "s": seq, "op": 0, "d": {"t": "READY", "op": 10}}).encode()


def test_filter_wanted_and_unwanted_dispatches(envelope: ModuleType) -> None:
    event_filter = envelope.EventFilter(EventTypeFlags.MESSAGE_CREATE | EventTypeFlags.READY)
    assert event_filter.wanted == int(EventTypeFlags.MESSAGE_CREATE | EventTypeFlags.READY)
    payload = dispatch("MESSAGE_CREATE")
    op, seq, name, d_start, d_end, wanted = event_filter.scan(payload)
    assert (op, seq, name, wanted) == (0, 3, "MESSAGE_CREATE", True)
    assert json.loads(payload[d_start:d_end]) == {"t": "READY", "op": 10}
    assert event_filter.scan(dispatch("READY"))[5] is True
    assert event_filter.scan(dispatch("PRESENCE_UPDATE"))[5] is False
    assert event_filter.scan(dispatch("TYPING_START"))[2] == "TYPING_START"


@pytest.mark.parametrize("name", sorted(FLAG_BY_NAME))
def test_filter_decides_every_known_name_from_its_own_bit(envelope: ModuleType, name: str) -> None:
    if name.startswith("GATEWAY_") or name == "UNKNOWN":
        return
    only = envelope.EventFilter(FLAG_BY_NAME[name])
    everything_else = envelope.EventFilter(int(EventTypeFlags.all()) & ~FLAG_BY_NAME[name])
    assert only.scan(dispatch(name))[5] is True
    assert everything_else.scan(dispatch(name))[5] is False


def test_filter_unknown_dispatch_name_counts_as_unknown(envelope: ModuleType) -> None:
    payload = dispatch("SOMETHING_NEW_FROM_DISCORD")
    with_unknown = envelope.EventFilter(EventTypeFlags.UNKNOWN)
    without_unknown = envelope.EventFilter(int(EventTypeFlags.all()) & ~int(EventTypeFlags.UNKNOWN))
    assert with_unknown.scan(payload)[2] == "SOMETHING_NEW_FROM_DISCORD"
    assert with_unknown.scan(payload)[5] is True
    assert without_unknown.scan(payload)[5] is False


def test_filter_escaped_known_name_uses_its_own_flag(envelope: ModuleType) -> None:
    payload = b'{"t":"MESSAGE\\u005fCREATE","s":1,"op":0,"d":{}}'
    d_start = payload.index(b'"d":') + 4
    assert envelope.EventFilter(EventTypeFlags.MESSAGE_CREATE).scan(payload)[2:] == ("MESSAGE_CREATE", d_start, d_start + 2, True)
    assert envelope.EventFilter(EventTypeFlags.UNKNOWN).scan(payload)[5] is False


@pytest.mark.parametrize(
    ("payload", "name"),
    [
        (b'{"t":null,"s":null,"op":10,"d":{"heartbeat_interval":41250}}', "GATEWAY_HELLO"),
        (b'{"op":1,"d":null}', "GATEWAY_HEARTBEAT"),
        (b'{"op":11}', "GATEWAY_HEARTBEAT_ACK"),
        (b'{"op":7,"d":null}', "GATEWAY_RECONNECT"),
        (b'{"op":9,"d":false}', "GATEWAY_INVALIDATE_SESSION"),
    ],
)
def test_filter_gateway_opcodes(envelope: ModuleType, payload: bytes, name: str) -> None:
    flag = FLAG_BY_NAME[name]
    scanned = envelope.EventFilter(flag).scan(payload)
    assert scanned[2] == name and scanned[5] is True
    assert envelope.EventFilter(int(EventTypeFlags.all()) & ~flag).scan(payload)[5] is False


def test_filter_gateway_opcode_name_wins_over_t(envelope: ModuleType) -> None:
    payload = b'{"t":"MESSAGE_CREATE","op":11}'
    assert envelope.EventFilter(EventTypeFlags.MESSAGE_CREATE).scan(payload)[2:] == ("GATEWAY_HEARTBEAT_ACK", -1, -1, False)


@pytest.mark.parametrize("payload", [b'{"op":99,"d":{}}', b'{"op":2,"d":{}}', b'{"op":0,"s":1,"d":{}}', b'{"op":-3}'])
def test_filter_unknown_opcode_or_dispatch_without_t_is_unknown(envelope: ModuleType, payload: bytes) -> None:
    assert envelope.EventFilter(EventTypeFlags.UNKNOWN).scan(payload)[2] == "UNKNOWN"
    assert envelope.EventFilter(EventTypeFlags.UNKNOWN).scan(payload)[5] is True
    assert envelope.EventFilter(EventTypeFlags.all() & ~EventTypeFlags.UNKNOWN).scan(payload)[5] is False


def test_filter_raises_the_same_errors_as_the_scan(envelope: ModuleType) -> None:
    for payload in (b'{"op":0', b"[]", b'{"s":1}', b'{"op":"0"}'):
        with pytest.raises(PayloadError):
            envelope.EventFilter(EventTypeFlags.all()).scan(payload)


def test_filter_wanted_is_read_only(envelope: ModuleType) -> None:
    event_filter = envelope.EventFilter(EventTypeFlags.READY)
    with pytest.raises(AttributeError):
        event_filter.wanted = 0  # type: ignore[misc]
    assert "EventFilter" in repr(event_filter)


@pytest.mark.parametrize(
    "payload",
    [
        b'{"t":null,"s":null,"op":0,"d":NaN}',
        b'{"t":null,"s":null,"op":0,"d":-Infinity}',
        b'{"t":"READY","s":1,"op":0,"d":{"a":1}} ',
        b'{"t":"READY","s":1,"op":0,"d":{"a":1}}}',
        b'{"t":"READY","s":1,"op":0,"d":{"a":1},"op":2}',
        b'{"t":"READY","s":1,"op":0,"d":{"a":"\x01"}}',
        b'{"t":"READY","s":1,"op":0,"d":[NaN]}',
        b'{"t":"READY","s":01,"op":0,"d":{}}',
        b'{"t":"READY","s":1,"op":0,"d":{"a":1}x}',
    ],
)
def test_discord_shaped_payloads_near_the_fast_path(envelope: ModuleType, payload: bytes) -> None:
    # Shapes close to Discord's canonical envelope: both twins must give the general scanner's answer.
    from gateway import _envelope_py

    try:
        expected: object = _envelope_py._scan_general(payload)
    except PayloadError:
        expected = PayloadError
    try:
        result: object = envelope.scan_envelope(payload)
    except PayloadError:
        result = PayloadError
    assert result == expected


# ---------------------------------------------------------------- wrong arguments: the same error in both twins

WRONG_PAYLOADS = [bytearray(b'{"op":0}'), memoryview(b'{"op":0}'), '{"op":0}', None, 5]


@pytest.mark.parametrize("payload", WRONG_PAYLOADS, ids=lambda p: type(p).__name__)
def test_a_payload_that_is_not_bytes_is_a_type_error_naming_its_type(envelope: ModuleType, payload: object) -> None:
    message = f"payload must be bytes, not {type(payload).__name__}"
    calls = [
        lambda: envelope.scan_envelope(payload),
        lambda: envelope.EventFilter(int(EventTypeFlags.all())).scan(payload),
        lambda: envelope.find_member(payload, 0, 0, "k"),
    ]
    for call in calls:
        with pytest.raises(TypeError) as raised:
            call()
        assert str(raised.value) == message


@pytest.mark.parametrize("key", [5, None, b"k"], ids=lambda k: type(k).__name__)
def test_find_member_key_that_is_not_str_is_a_type_error(envelope: ModuleType, key: object) -> None:
    payload = b'{"d":{"k":1}}'
    with pytest.raises(TypeError) as raised:
        envelope.find_member(payload, 5, 12, key)
    assert str(raised.value) == f"key must be str, not {type(key).__name__}"


@pytest.mark.parametrize(("start", "end"), [(-1, 3), (4, 3), (0, 14), (20, 30)])
def test_find_member_span_outside_the_payload_is_a_value_error(envelope: ModuleType, start: int, end: int) -> None:
    payload = b'{"d":{"k":1}}'
    with pytest.raises(ValueError) as raised:
        envelope.find_member(payload, start, end, "k")
    assert str(raised.value) == f"span {start}:{end} is outside the payload (length 13)"


@pytest.mark.parametrize("wanted", ["1", 1.0, None, b"1"], ids=lambda w: type(w).__name__)
def test_event_filter_wanted_that_is_not_an_int_is_a_type_error(envelope: ModuleType, wanted: object) -> None:
    with pytest.raises(TypeError) as raised:
        envelope.EventFilter(wanted)
    assert str(raised.value) == f"wanted must be an int (EventTypeFlags), not {type(wanted).__name__}"


def test_event_filter_takes_flags_and_plain_ints(envelope: ModuleType) -> None:
    flags = EventTypeFlags.MESSAGE_CREATE | EventTypeFlags.READY
    assert envelope.EventFilter(flags).wanted == envelope.EventFilter(int(flags)).wanted == int(flags)
    assert type(envelope.EventFilter(flags).wanted) is int
