"""``find_member``: the span of one top-level key's value in ``d`` (what ``Event.get`` decodes), both twins.

The fixture tests run each twin on its own; the hypothesis tests run both on the same input and compare them with
each other and with ``json.loads`` (they carry the ``speedups`` mark: ``--no-speedups`` deselects them).
"""

from __future__ import annotations

import importlib
import json
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hypothesis_budget import examples

from gateway.errors import PayloadError

from test_envelope_hypothesis import json_values, tricky_text


def member(envelope: ModuleType, d: bytes, key: str) -> Any:
    """The value of ``key`` in ``d`` as find_member finds it inside an envelope, decoded; KeyError if absent."""
    payload = b'{"t":"X","s":1,"op":0,"d":' + d + b"}"
    start, end = envelope.find_member(payload, 26, 26 + len(d), key)
    if start < 0:
        assert end == -1
        raise KeyError(key)
    return json.loads(payload[start:end])


def test_finds_each_top_level_key(envelope: ModuleType) -> None:
    document = {"content": "hi", "author": {"id": "7", "content": "not me"}, "n": [1, {"content": 2}], "e": None}
    d = json.dumps(document).encode()
    for key, value in document.items():
        assert member(envelope, d, key) == value
    with pytest.raises(KeyError):
        member(envelope, d, "id")  # only nested, not top level


@pytest.mark.parametrize(
    ("d", "key", "expected"),
    [
        (b'{ "a" : 1 , "b" :\n"x" }', "b", "x"),
        (b'{"a":1,"a":2}', "a", 2),  # duplicates: the last wins, as with json.loads
        (b'{"\\u0061":5}', "a", 5),  # escaped key
        (b'{"caf\\u00e9":1,"caf\xc3\xa9":2}', "caf\u00e9", 2),
        (b'{"a\\"b":1}', 'a"b', 1),
        (b'{"":0}', "", 0),
        (b'{"x":"\\"a\\":9","a":3}', "a", 3),  # a look-alike inside a string
        (b'{"x":"}","a":[]}', "a", []),
        (b'{"b":' + b"[" * 100_000 + b"]" * 100_000 + b',"a":true}', "a", True),  # any depth
    ],
)
def test_escapes_whitespace_duplicates_and_depth(envelope: ModuleType, d: bytes, key: str, expected: Any) -> None:
    assert member(envelope, d, key) == expected


@pytest.mark.parametrize("d", [b"{}", b"[1]", b"null", b'"a"', b"3", b"{ }"])
def test_absent_key_or_not_an_object(envelope: ModuleType, d: bytes) -> None:
    with pytest.raises(KeyError):
        member(envelope, d, "a")


@pytest.mark.parametrize(
    "d",
    [b'{"a" 1}', b'{"a":1,}', b'{"a":1 "b":2}', b'{a:1}', b'{"a":tru}', b'{"b":tru,"a":1}', b'{"a":1}}', b'{"a":}'],
)
def test_malformed_object_is_a_payload_error_whatever_the_key(envelope: ModuleType, d: bytes) -> None:
    payload = b'{"op":0,"d":' + d + b"}"
    with pytest.raises(PayloadError, match="d is not a valid JSON object") as caught:
        envelope.find_member(payload, 12, 12 + len(d), "a")
    assert caught.value.payload is payload


def test_arguments_are_checked(envelope: ModuleType) -> None:
    with pytest.raises(TypeError):
        envelope.find_member(bytearray(b'{"a":1}'), 0, 7, "a")
    with pytest.raises(ValueError, match="outside"):
        envelope.find_member(b'{"a":1}', 0, 8, "a")
    with pytest.raises(ValueError, match="outside"):
        envelope.find_member(b'{"a":1}', 5, 4, "a")
    assert envelope.find_member(b'{"a":1}', 3, 3, "a") == (-1, -1)


# ---- differential ----

SETTINGS = settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def both() -> tuple[ModuleType, ModuleType]:
    pure = importlib.import_module("gateway._envelope_py")
    try:
        compiled = importlib.import_module("gateway._speedups._envelope")
    except ImportError as exc:  # pragma: no cover - only when not compiled
        pytest.fail(f"compiled twin gateway._speedups._envelope is missing: {exc}")
    return compiled, pure


def outcome(envelope: ModuleType, payload: bytes, start: int, end: int, key: str) -> tuple[str, Any]:
    try:
        return "ok", envelope.find_member(payload, start, end, key)
    except PayloadError:
        return "error", PayloadError


@st.composite
def objects(draw: st.DrawFn) -> tuple[bytes, dict[str, Any], str]:
    document = draw(st.dictionaries(tricky_text, json_values, max_size=6))
    keys = list(document) + draw(st.lists(tricky_text, max_size=2))
    key = draw(st.sampled_from(keys)) if keys else ""
    separators = draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,\n", " :\t")]))
    text = json.dumps(document, ensure_ascii=draw(st.booleans()), separators=separators).encode()
    return text, document, key


@pytest.mark.speedups
@SETTINGS
@given(case=objects())
def test_twins_agree_with_each_other_and_with_json(both: tuple[ModuleType, ModuleType], case: Any) -> None:
    d, document, key = case
    compiled, pure = both
    payload = b'{"op":0,"d":' + d + b',"t":"X"}'
    start, end = 12, 12 + len(d)
    result = outcome(compiled, payload, start, end, key)
    assert outcome(pure, payload, start, end, key) == result
    kind, (value_start, value_end) = result
    if key in document:
        assert json.loads(payload[value_start:value_end]) == document[key]
    else:
        assert (value_start, value_end) == (-1, -1)


@pytest.mark.speedups
@SETTINGS
@given(case=objects(), data=st.data())
def test_twins_agree_on_damaged_objects(both: tuple[ModuleType, ModuleType], case: Any, data: st.DataObject) -> None:
    d, _, key = case
    compiled, pure = both
    position = data.draw(st.integers(min_value=0, max_value=len(d) - 1))
    junk = data.draw(st.sampled_from([b'"', b"\\", b"{", b"}", b"[", b"]", b",", b":", b"x", b"0", b" ", b""]))
    damaged = d[:position] + junk + d[position + 1 :]
    payload = b'{"op":0,"d":' + damaged + b"}"
    end = data.draw(st.integers(min_value=12, max_value=12 + len(damaged)))
    assert outcome(compiled, payload, 12, end, key) == outcome(pure, payload, 12, end, key)
