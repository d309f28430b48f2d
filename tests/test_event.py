"""Event: lazy, cached decoding of d; short repr; from_payload; and the JSON selector it uses.

Every test runs on both Event twins (``gateway._envelope_py.Event`` and the compiled one): the autouse fixture
``event_twin`` points this module's ``Event`` at the twin of the ``envelope`` fixture.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from typing import Any

import msgspec
import pytest

from gateway import _json
from gateway.errors import PayloadError
from gateway.event import Event


@pytest.fixture(autouse=True)
def event_twin(envelope: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """This module's ``Event`` (and ``build``) use the envelope twin under test."""
    monkeypatch.setitem(globals(), "Event", envelope.Event)
    return envelope


def build(payload: bytes) -> Event:
    return Event.from_payload(payload)


def test_from_payload_reads_the_envelope_and_decodes_d() -> None:
    payload = b'{"t":"MESSAGE_CREATE","s":7,"op":0,"d":{"content":"\\"t\\":\\"READY\\"","id":"1"}}'
    event = build(payload)
    assert (event.name, event.op, event.seq) == ("MESSAGE_CREATE", 0, 7)
    assert event.raw is payload
    assert event.data == {"content": '"t":"READY"', "id": "1"}
    assert event.raw_data == b'{"content":"\\"t\\":\\"READY\\"","id":"1"}'


def test_data_is_decoded_once_and_cached() -> None:
    event = build(b'{"op":10,"d":{"heartbeat_interval":41250}}')
    assert event.name == "GATEWAY_HELLO"
    first = event.data
    assert first == {"heartbeat_interval": 41250}
    assert event.data is first


def test_constructor_with_spans() -> None:
    payload = b'{"op":0,"s":0,"t":"READY","d":[1,2]}'
    d_start = payload.index(b"[")
    event = Event("READY", 0, 0, payload, d_start, d_start + 5)
    assert event.seq == 0 and event.data == [1, 2]


@pytest.mark.parametrize(("payload", "expected"), [(b'{"op":11}', None), (b'{"op":7,"d":null}', None), (b'{"op":9,"d":false}', False)])
def test_absent_or_scalar_d(payload: bytes, expected: object) -> None:
    event = build(payload)
    assert event.data == expected
    if b'"d"' not in payload:
        assert event.raw_data is None


def test_invalid_d_raises_payload_error_on_access_and_keeps_the_payload() -> None:
    payload = b'{"op":0,"s":1,"t":"MESSAGE_CREATE","d":{"a":tru}}'
    event = build(payload)  # the scan does not validate d
    with pytest.raises(PayloadError) as info:
        event.data
    assert info.value.payload == payload
    assert "MESSAGE_CREATE" in str(info.value)


def test_invalid_envelope_raises_payload_error() -> None:
    with pytest.raises(PayloadError):
        build(b'{"s":1}')


def test_repr_is_short_and_never_shows_the_payload() -> None:
    secret = "a-secret-value-that-must-not-leak"
    payload = json.dumps({"t": "READY", "s": 1, "op": 0, "d": {"token": secret, "x": "y" * 5000}}).encode()
    text = repr(build(payload))
    assert text == f"<Event READY op=0 seq=1 shard=None size={len(payload)}>"
    assert secret not in text


def test_event_has_slots() -> None:
    event = build(b'{"op":11}')
    with pytest.raises(AttributeError):
        event.something_else = 1  # type: ignore[attr-defined]


def test_unknown_dispatch_keeps_its_name() -> None:
    assert build(b'{"op":0,"s":3,"t":"BRAND_NEW","d":{}}').name == "BRAND_NEW"


# ---- the JSON selector ----


def test_json_loads_accepts_bytes_and_memoryview_and_dumps_is_compact_bytes() -> None:
    assert _json.loads(b'{"a": [1, "\xc3\xa9"]}') == {"a": [1, "é"]}
    assert _json.loads(memoryview(b'xx[1, 2]')[2:]) == [1, 2]
    out = _json.dumps({"a": [1, "é"], "b": None})
    assert isinstance(out, bytes)
    assert out == '{"a":[1,"é"],"b":null}'.encode()
    assert _json.BACKEND in ("orjson", "msgspec", "simdjson", "json")


def test_json_decode_errors_cover_bad_input() -> None:
    for bad in (b"{", b"[1,]", b"\xff"):
        with pytest.raises(_json.DECODE_ERRORS):
            _json.loads(bad)


def test_select_backend() -> None:
    assert _json.select_backend("json") == "json"
    assert _json.select_backend(" JSON ") == "json"
    assert _json.select_backend(None) in ("orjson", "msgspec", "simdjson", "json")
    assert _json.select_backend("auto") == _json.select_backend("")
    with pytest.raises(ValueError):
        _json.select_backend("ujson")


@pytest.mark.parametrize("backend", ["json", "simdjson", "msgspec", "orjson"])
def test_gateway_json_env_forces_the_backend(backend: str) -> None:
    pytest.importorskip(backend)
    code = (
        "import sys, types; from gateway import _json, event; "
        "e = event.Event.from_payload(b'{\"op\":0,\"s\":1,\"t\":\"READY\",\"d\":{\"v\":10}}'); "
        "print(_json.BACKEND, e.data, _json.dumps({'a': 1}))"
    )
    env = {**os.environ, "GATEWAY_JSON": backend}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [backend, "{'v':", "10}", "b'{\"a\":1}'"]


# ---- get(key, default): one top-level key of d, decoded alone (both envelope twins) ----


def test_get_matches_data_on_the_corpus(monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.corpus import generate_steady

    decoded: list[bytes] = []
    real = _json.loads
    monkeypatch.setattr(_json, "loads", lambda text: decoded.append(bytes(text)) or real(text))
    for payload in generate_steady(count=400):
        data = Event.from_payload(payload).data
        fresh = Event.from_payload(payload)
        keys = list(data) if isinstance(data, dict) else []
        decoded.clear()
        for key in keys + ["no-such-key"]:
            assert fresh.get(key, "absent") == (data.get(key, "absent") if isinstance(data, dict) else "absent")
        if len(keys) > 1:
            assert fresh.raw_data not in decoded  # get never decoded the whole of d


#: Values of d["k"] in every form: the compiled twin decodes the plain ones itself, the rest go to the backend.
VALUE_FORMS = [
    rb'""', rb'"plain ascii 123"', rb'"\u00e9"', '"caf\u00e9"'.encode(), rb'"a\"b"', rb'"tab\tin"', b'"del\x7f"',
    b"true", b"false", b"null", b"0", b"-0", b"7", b"-12", b"123456789012345678", b"-123456789012345678",
    b"1234567890123456789", b"99999999999999999999", b"1.5", b"1e3", b"-1E-2", rb'[1,"x"]', rb'{"a":{}}',
]
INVALID_VALUES = [b"01", b"-", b"--1", b"1-", b'"raw\x01control"', b"tru", b"nul", b'"\xff"', b"+1"]


@pytest.mark.parametrize("value", VALUE_FORMS)
def test_get_decodes_every_value_form_like_the_backend(value: bytes) -> None:
    payload = b'{"op":0,"t":"X","s":1,"d":{"k":' + value + b',"z":1}}'
    got = build(payload).get("k")
    expected = _json.loads(value)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize("value", INVALID_VALUES)
def test_get_rejects_invalid_values_like_the_backend(value: bytes) -> None:
    payload = b'{"op":0,"t":"X","s":1,"d":{"k":' + value + b',"z":1}}'
    with pytest.raises(_json.DECODE_ERRORS):
        _json.loads(value)
    with pytest.raises(PayloadError, match="X event"):
        build(payload).get("k")


def test_compiled_events_are_not_tracked_by_the_garbage_collector(envelope: Any) -> None:
    event = build(b'{"op":0,"t":"X","s":1,"d":{"a":[1,{"b":2}]}}')
    assert event.data == {"a": [1, {"b": 2}]}
    assert gc.is_tracked(event) is (envelope.__name__ == "gateway._envelope_py")


def test_get_defaults_and_after_data() -> None:
    assert build(b'{"op":11}').get("a", 5) == 5
    assert build(b'{"op":0,"t":"X","d":[1]}').get("a") is None
    assert build(b'{"op":0,"t":"X","d":null}').get("a", 1) == 1
    event = build(b'{"op":0,"t":"X","d":{"a":{"b":[1,2]},"c":"\\u00e9"}}')
    assert event.get("a") == {"b": [1, 2]} and event.get("c") == "\u00e9"
    assert event.data == {"a": {"b": [1, 2]}, "c": "\u00e9"}
    assert event.get("c") == "\u00e9" and event.get("zz", 0) == 0  # from the decoded dict now


def test_get_errors_name_the_event() -> None:
    broken_value = build(b'{"op":0,"t":"MESSAGE_CREATE","d":{"a":[tru],"b":1}}')
    assert broken_value.get("b") == 1  # other values are skipped, not validated
    with pytest.raises(PayloadError, match="MESSAGE_CREATE event: d\\['a'\\]") as caught:
        broken_value.get("a")
    assert caught.value.payload == broken_value.raw
    broken_object = build(b'{"op":0,"t":"MESSAGE_CREATE","d":{"a" 1}}')
    with pytest.raises(PayloadError, match="MESSAGE_CREATE event: .*d is not a valid JSON object"):
        broken_object.get("zz")


def test_get_on_deep_values() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    event = build(b'{"op":0,"t":"X","d":{"deep":' + deep + b',"a":1}}')
    assert event.get("a") == 1
    with pytest.raises(PayloadError, match="X event"):
        event.get("deep")  # no JSON backend decodes 100,000 levels
    with pytest.raises(PayloadError, match="X event"):
        event.data


# ---- decode(type): msgspec into the caller's type ----

class Author(msgspec.Struct):
    id: str
    username: str


class MessageCreate(msgspec.Struct):
    id: str
    channel_id: str
    content: str
    author: Author
    guild_id: str | None = None


MESSAGE = (
    b'{"t":"MESSAGE_CREATE","s":3,"op":0,"d":{"id":"1","type":0,"channel_id":"2","content":"hi \\u2603",'
    b'"author":{"id":"7","username":"u","avatar":null,"flags":[1,{"x":2}]},"embeds":[],"mentions":[{"id":"8"}]}}'
)


def test_decode_into_a_struct_skips_unknown_fields() -> None:
    message = build(MESSAGE).decode(MessageCreate)
    assert message == MessageCreate(id="1", channel_id="2", content="hi \u2603", author=Author(id="7", username="u"))


def test_decode_any_msgspec_type_and_one_cached_decoder_per_type() -> None:
    decoders = _json._TYPED_DECODERS
    event = build(MESSAGE)
    assert event.decode(dict)["id"] == "1"
    assert event.decode(dict[str, Any])["author"]["id"] == "7"
    first = decoders.get(MessageCreate)
    event.decode(MessageCreate)
    decoder = decoders[MessageCreate]
    assert first is None or first is decoder
    build(MESSAGE).decode(MessageCreate)
    assert decoders[MessageCreate] is decoder


@pytest.mark.parametrize(
    "payload",
    [
        b'{"t":"MESSAGE_CREATE","s":3,"op":0,"d":{"id":"1"}}',  # required fields missing
        b'{"t":"MESSAGE_CREATE","s":3,"op":0,"d":{"id":1,"channel_id":"2","content":"","author":{}}}',  # wrong type
        b'{"t":"MESSAGE_CREATE","s":3,"op":0,"d":{"id":tru}}',  # not JSON
        b'{"t":"MESSAGE_CREATE","s":3,"op":0}',  # no d
        b'{"t":"MESSAGE_CREATE","s":3,"op":0,"d":' + b"[" * 100_000 + b"]" * 100_000 + b"}",  # too deep
    ],
)
def test_decode_errors_are_payload_errors_naming_the_event(payload: bytes) -> None:
    with pytest.raises(PayloadError, match="MESSAGE_CREATE event: d does not decode as MessageCreate") as caught:
        build(payload).decode(MessageCreate)
    assert caught.value.payload == payload


class WithRaw(msgspec.Struct):
    author: msgspec.Raw
    id: str


def test_decode_reads_d_in_place_and_raw_members_outlive_the_event() -> None:
    """decode hands msgspec a view of ``raw`` (no copy of d): what msgspec keeps of it (``msgspec.Raw``) must stay
    valid after the event and its payload are dropped and other events are decoded."""
    payload = bytearray(MESSAGE)  # a fresh object, not a shared constant
    event = build(bytes(payload))
    whole = event.decode(msgspec.Raw)
    part = event.decode(WithRaw)
    del event, payload
    gc.collect()
    for index in range(200):
        other = build(b'{"t":"X","s":1,"op":0,"d":{"author":"' + b"z" * index + b'","id":"9"}}')
        assert other.decode(WithRaw).id == "9"
    assert bytes(whole) == MESSAGE[MESSAGE.index(b'"d":') + 4 : -1]
    assert bytes(part.author) == b'{"id":"7","username":"u","avatar":null,"flags":[1,{"x":2}]}'
    assert part.id == "1"


def test_decode_of_a_d_inside_a_large_payload_sees_only_d() -> None:
    big = json.dumps({"id": "5", "members": ["x" * 10] * 1000}).encode()
    event = build(b'{"op":0,"t":"GUILD_CREATE","s":1,"d":' + big + b',"tail":{"id":"no"}}')
    assert event.decode(dict) == json.loads(big)
    assert event.decode(msgspec.Raw) == msgspec.Raw(big)


def test_decode_without_msgspec_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_json, "_TYPED_DECODERS", {})
    monkeypatch.setitem(sys.modules, "msgspec", None)
    monkeypatch.setitem(sys.modules, "msgspec.json", None)
    with pytest.raises(ImportError, match=r"gateway\[speed\]"):
        build(MESSAGE).decode(MessageCreate)
    assert build(MESSAGE).get("id") == "1" and build(MESSAGE).data["id"] == "1"  # the rest works without it


def test_every_backend_reads_slices_and_gives_decode_errors_on_deep_input() -> None:
    payload = b'xx{"a":[1,2]}yy'
    with pytest.raises(_json.DECODE_ERRORS):
        _json.loads(b"[" * 100_000 + b"]" * 100_000)
    for backend in ("json", "simdjson", "msgspec", "orjson"):
        pytest.importorskip(backend)
        loads, _, errors, views = _json._build(backend)
        assert loads(memoryview(payload)[2:13]) == loads(payload[2:13]) == {"a": [1, 2]}
        assert views == (backend in ("orjson", "msgspec"))
        with pytest.raises(errors):
            loads(b"[" * 100_000 + b"]" * 100_000)


def test_large_d_and_values_decode_from_a_view(envelope: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[type] = []
    real = _json.loads
    monkeypatch.setattr(_json, "loads", lambda text: seen.append(type(text)) or real(text))
    big = json.dumps({"members": ["x" * 10] * 1000, "id": "5", "n": {"a": 1}}).encode()
    event = build(b'{"op":0,"t":"GUILD_CREATE","s":1,"d":' + big + b"}")
    assert event.get("id") == "5" and event.get("n") == {"a": 1}  # small values: a bytes slice (if any)
    assert set(seen) <= {bytes} and seen
    seen.clear()
    assert len(event.get("members")) == 1000
    assert event.data["id"] == "5"
    view = memoryview if _json.VIEWS else bytes
    assert seen == [view, view]
    assert envelope.VIEW_THRESHOLD < len(big)
