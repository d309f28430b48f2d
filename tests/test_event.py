"""Event: lazy, cached decoding of d; short repr; from_payload; and the JSON selector it uses."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from gateway import _json
from gateway.errors import PayloadError
from gateway.event import Event


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
    assert _json.BACKEND in ("orjson", "simdjson", "json")


def test_json_decode_errors_cover_bad_input() -> None:
    for bad in (b"{", b"[1,]", b"\xff"):
        with pytest.raises(_json.DECODE_ERRORS):
            _json.loads(bad)


def test_select_backend() -> None:
    assert _json.select_backend("json") == "json"
    assert _json.select_backend(" JSON ") == "json"
    assert _json.select_backend(None) in ("orjson", "simdjson", "json")
    assert _json.select_backend("auto") == _json.select_backend("")
    with pytest.raises(ValueError):
        _json.select_backend("ujson")


@pytest.mark.parametrize("backend", ["json", "simdjson", "orjson"])
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
