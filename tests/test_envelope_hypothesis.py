"""Differential property tests: the compiled and pure envelope twins agree with each other and with json.loads.

Both twins are imported directly (not through the fixture): a missing compiled twin fails these tests. They carry
the ``speedups`` mark, so a pure-only run (``--no-speedups``) deselects them on purpose.
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

from gateway.flags import FLAG_BY_NAME, EventTypeFlags

pytestmark = pytest.mark.speedups

SETTINGS = settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def twins() -> tuple[ModuleType, ModuleType]:
    pure = importlib.import_module("gateway._envelope_py")
    try:
        compiled = importlib.import_module("gateway._speedups._envelope")
    except ImportError as exc:
        pytest.fail(f"compiled twin gateway._speedups._envelope is missing: {exc}")
    return compiled, pure


LOOK_ALIKES = [
    '"t":"READY"',
    '{"op":10,"d":{}}',
    '"s":1,',
    "\\",
    '\\"',
    '"',
    "}",
    "]",
    "{[",
    '","d":{"op":1}',
    "\\\\\\",
]
tricky_text = st.one_of(
    st.text(max_size=12),
    st.sampled_from(LOOK_ALIKES),
    st.lists(st.sampled_from(LOOK_ALIKES + ["x", "é", "\n"]), max_size=8).map("".join),
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | tricky_text,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(tricky_text, children, max_size=5),
    max_leaves=25,
)
names = st.one_of(st.sampled_from(sorted(FLAG_BY_NAME)), tricky_text)
ABSENT = object()


@st.composite
def envelopes(draw: st.DrawFn) -> bytes:
    fields: dict[str, Any] = {"op": draw(st.integers(min_value=-5, max_value=2**70))}
    for key, strategy in (("s", st.none() | st.integers(min_value=0, max_value=2**64)), ("t", st.none() | names), ("d", json_values)):
        value = draw(st.one_of(st.just(ABSENT), strategy))
        if value is not ABSENT:
            fields[key] = value
    for extra_key in draw(st.lists(tricky_text, max_size=3)):
        if extra_key not in fields and extra_key not in ("op", "s", "t", "d"):
            fields[extra_key] = draw(json_values)
    order = draw(st.permutations(list(fields)))
    separators = draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,\n", " :\t"), ("\r\n,", ":  ")]))
    indent = draw(st.sampled_from([None, None, 0, 2, "\t"]))
    text = json.dumps(
        {key: fields[key] for key in order},
        ensure_ascii=draw(st.booleans()),
        separators=separators if indent is None else (separators[0].rstrip(), separators[1]),
        indent=indent,
    )
    padding = draw(st.sampled_from(["", " ", "\n", " \t\r\n"]))
    return (padding + text + padding[::-1]).encode("utf-8")


def outcome(function: Any, payload: Any) -> tuple[str, Any]:
    try:
        return "ok", function(payload)
    except Exception as exc:  # the class is what is compared
        return "error", type(exc)


@SETTINGS
@given(payload=envelopes())
def test_twins_agree_with_each_other_and_with_json(twins: tuple[ModuleType, ModuleType], payload: bytes) -> None:
    compiled, pure = twins
    result = compiled.scan_envelope(payload)
    assert pure.scan_envelope(payload) == result
    op, seq, name, d_start, d_end = result
    parsed = json.loads(payload)
    assert (op, seq, name) == (parsed["op"], parsed.get("s"), parsed.get("t"))
    assert type(op) is int
    if "d" in parsed:
        assert json.loads(payload[d_start:d_end]) == parsed["d"]
    else:
        assert (d_start, d_end) == (-1, -1)


@SETTINGS
@given(payload=envelopes(), wanted=st.integers(min_value=0, max_value=int(EventTypeFlags.all())))
def test_filters_agree(twins: tuple[ModuleType, ModuleType], payload: bytes, wanted: int) -> None:
    compiled, pure = twins
    assert compiled.EventFilter(wanted).scan(payload) == pure.EventFilter(wanted).scan(payload)


@st.composite
def malformed(draw: st.DrawFn) -> bytes:
    payload = draw(envelopes())
    edit = draw(st.sampled_from(["truncate", "insert", "delete", "replace", "append"]))
    position = draw(st.integers(min_value=0, max_value=len(payload)))
    junk = draw(st.sampled_from([b'"', b"\\", b"{", b"}", b"[", b"]", b",", b":", b"x", b"0", b"\xff", b" "]))
    if edit == "truncate":
        return payload[:position]
    if edit == "insert":
        return payload[:position] + junk + payload[position:]
    if edit == "delete":
        return payload[:position] + payload[position + 1 :]
    if edit == "replace":
        return payload[:position] + junk + payload[position + 1 :]
    return payload + junk


@SETTINGS
@given(payload=malformed())
def test_malformed_input_gives_the_same_result_or_error_class(twins: tuple[ModuleType, ModuleType], payload: bytes) -> None:
    compiled, pure = twins
    assert outcome(compiled.scan_envelope, payload) == outcome(pure.scan_envelope, payload)
    assert outcome(compiled.EventFilter(int(EventTypeFlags.all())).scan, payload) == outcome(
        pure.EventFilter(int(EventTypeFlags.all())).scan, payload
    )


@SETTINGS
@given(payload=st.binary(max_size=200))
def test_random_bytes_give_the_same_result_or_error_class(twins: tuple[ModuleType, ModuleType], payload: bytes) -> None:
    compiled, pure = twins
    assert outcome(compiled.scan_envelope, payload) == outcome(pure.scan_envelope, payload)


@SETTINGS
@given(
    chunks=st.lists(
        st.sampled_from([b"\\", b"\\\\", b'\\"', b'"', b"{", b"}", b"[", b"]", b"a" * 7, b"b" * 31, b"\n", b","]),
        max_size=60,
    )
)
def test_structural_skip_agrees_on_arbitrary_d_content(twins: tuple[ModuleType, ModuleType], chunks: list[bytes]) -> None:
    # d's content is not validated, so the twins must agree on where the structural skip ends even for garbage.
    compiled, pure = twins
    payload = b'{"op":0,"t":"X","d":{' + b"".join(chunks) + b"}}"
    assert outcome(compiled.scan_envelope, payload) == outcome(pure.scan_envelope, payload)


@st.composite
def discord_shaped(draw: st.DrawFn) -> bytes:
    """Compact ``{"t":..,"s":..,"op":..,"d":..}`` as Discord sends it, sometimes with one byte edited."""
    document = {
        "t": draw(st.none() | names),
        "s": draw(st.none() | st.integers(min_value=0, max_value=2**64)),
        "op": draw(st.integers(min_value=0, max_value=11)),
        "d": draw(json_values),
    }
    payload = json.dumps(document, separators=(",", ":"), ensure_ascii=draw(st.booleans())).encode("utf-8")
    if draw(st.booleans()):
        position = draw(st.integers(min_value=0, max_value=len(payload) - 1))
        junk = draw(st.sampled_from([b'"', b"\\", b"{", b"}", b"]", b",", b"N", b"\x01", b" "]))
        payload = payload[:position] + junk + payload[position + 1 :]
    return payload


@SETTINGS
@given(payload=discord_shaped())
def test_discord_shaped_fast_paths_match_the_general_scanner(twins: tuple[ModuleType, ModuleType], payload: bytes) -> None:
    compiled, pure = twins
    general = outcome(pure._scan_general, payload)
    assert outcome(pure.scan_envelope, payload) == general
    assert outcome(compiled.scan_envelope, payload) == general


@SETTINGS
@given(
    payload=envelopes(),
    chunks=st.lists(st.sampled_from([b"\\", b'\\"', b'"', b"{", b"}", b"[", b"]", b"a" * 7, b"b" * 29]), max_size=60),
)
def test_compiled_skip_variants_agree(twins: tuple[ModuleType, ModuleType], payload: bytes, chunks: list[bytes]) -> None:
    # The compiled twin picks an AVX2 skip at import when the CPU has it; the portable one must give the same answers.
    compiled, _ = twins
    garbage = b'{"op":0,"d":[' + b"".join(chunks) + b"]}"
    default = [outcome(compiled.scan_envelope, payload), outcome(compiled.scan_envelope, garbage)]
    chosen = compiled._SKIP_VARIANT
    try:
        assert compiled._select_skip_variant(False) == "portable"
        assert [outcome(compiled.scan_envelope, payload), outcome(compiled.scan_envelope, garbage)] == default
    finally:
        compiled._select_skip_variant(chosen == "avx2")
