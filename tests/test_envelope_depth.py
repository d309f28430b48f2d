"""Nesting depth: any payload, however deep, gives the same result or PayloadError in both envelope twins.

The scan has no depth limit (see ``gateway/_envelope_py.py``): containers are skipped iteratively, so a ``d`` nested
100,000 deep scans like a flat one, and the answer does not depend on the caller's stack or recursion limit. A
container as the value of ``op``/``s``/``t`` is rejected without being decoded. Issue 14's reproducers
(``../shared/findings/twin-fuzz/envelope-*.py``) are shapes of these cases.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hypothesis_budget import examples

from gateway.errors import PayloadError
from gateway.flags import EventTypeFlags

DEPTHS = [1, 998, 999, 1000, 1001, 1025, 5000, 100_000]
ALL = int(EventTypeFlags.all())


def nested(depth: int, kind: str, leaf: bytes = b'"/"') -> bytes:
    """``depth`` levels of arrays (``kind="array"``) or single-key objects (``"object"``) around ``leaf``."""
    if kind == "array":
        return b"[" * depth + leaf + b"]" * depth
    return b'{"a":' * depth + leaf + b"}" * depth


def outcome(function: Callable[[Any], Any], payload: bytes) -> tuple[str, Any]:
    try:
        return "ok", function(payload)
    except PayloadError as exc:
        assert exc.payload is payload
        return "PayloadError", None


@pytest.mark.parametrize("kind", ["array", "object"])
@pytest.mark.parametrize("depth", DEPTHS)
def test_deep_d_gives_its_span(envelope: ModuleType, depth: int, kind: str) -> None:
    d = nested(depth, kind)
    for payload in (
        b'{"t":"MESSAGE_CREATE","s":5,"op":0,"d":' + d + b"}",  # Discord's exact shape (the pure fast path)
        b'{"op":0,\n"d": ' + d + b' ,"s":5,"t":"MESSAGE_CREATE"}',  # the general scanner
    ):
        op, seq, name, d_start, d_end = envelope.scan_envelope(payload)
        assert (op, seq, name) == (0, 5, "MESSAGE_CREATE")
        assert payload[d_start:d_end] == d
        assert envelope.EventFilter(ALL).scan(payload) == (0, 5, "MESSAGE_CREATE", d_start, d_end, True)


@pytest.mark.parametrize("depth", [1000, 100_000])
def test_deep_value_of_another_key_is_skipped(envelope: ModuleType, depth: int) -> None:
    payload = b'{"":' + nested(depth, "array") + b',"t" :"B0",\r"{}":12,"op":0}'
    assert envelope.scan_envelope(payload) == (0, None, "B0", -1, -1)
    assert envelope.EventFilter(0).scan(payload) == (0, None, "B0", -1, -1, False)


@pytest.mark.parametrize("key", [b"op", b"s", b"t"])
@pytest.mark.parametrize("depth", [1, 1000, 100_000])
def test_deep_container_as_op_s_or_t_is_a_payload_error(envelope: ModuleType, key: bytes, depth: int) -> None:
    fields = {b"op": b"0", b"s": b"1", b"t": b'"X"'}
    fields[key] = nested(depth, "object", b"1")
    payload = b"{" + b",".join(b'"%s":%s' % item for item in fields.items()) + b"}"
    with pytest.raises(PayloadError, match=f"{key.decode()} is not") as caught:
        envelope.scan_envelope(payload)
    assert caught.value.payload is payload
    with pytest.raises(PayloadError, match=f"{key.decode()} is not"):
        envelope.EventFilter(ALL).scan(payload)


@pytest.mark.parametrize("kind", ["array", "object"])
@pytest.mark.parametrize("depth", [1000, 100_000])
def test_deep_and_broken_d_is_a_payload_error(envelope: ModuleType, depth: int, kind: str) -> None:
    unterminated = b'{"t":"X","s":1,"op":0,"d":' + nested(depth, kind)[:-1]
    with pytest.raises(PayloadError, match="unterminated|expected"):
        envelope.scan_envelope(unterminated)
    # Bracket kinds are not matched by the scan (d is not validated): a mismatched deep d still gives its span.
    mismatched = b'{"op":0,"d":' + b"[" * depth + b"}" * depth + b"}"
    assert envelope.scan_envelope(mismatched)[3:] == (12, len(mismatched) - 1)


def test_answer_does_not_depend_on_the_callers_stack(envelope: ModuleType) -> None:
    payloads = [
        b'{"t":"X","s":1,"op":0,"d":' + nested(900, "array") + b"}",
        b'{"op":0,"d":' + nested(400, "object") + b',"t":"Y"}',
    ]
    expected = [envelope.scan_envelope(payload) for payload in payloads]
    limit = sys.getrecursionlimit()

    def at_depth(remaining: int) -> list[tuple[Any, ...]]:
        if remaining:
            return at_depth(remaining - 1)
        return [envelope.scan_envelope(payload) for payload in payloads]

    try:
        sys.setrecursionlimit(200)
        assert [envelope.scan_envelope(payload) for payload in payloads] == expected
        sys.setrecursionlimit(1000)
        assert at_depth(950) == expected  # about 50 frames left: less than the C JSON scanner needs
    finally:
        sys.setrecursionlimit(limit)


# ---- the two twins against each other (both imported directly; deselected by --no-speedups) ----


@pytest.fixture(scope="module")
def both() -> tuple[ModuleType, ModuleType]:
    pure = importlib.import_module("gateway._envelope_py")
    try:
        compiled = importlib.import_module("gateway._speedups._envelope")
    except ImportError as exc:  # pragma: no cover - only when not compiled
        pytest.fail(f"compiled twin gateway._speedups._envelope is missing: {exc}")
    return compiled, pure


@st.composite
def deep_payloads(draw: st.DrawFn) -> bytes:
    """A deep container in d, in another key or in op/s/t, in Discord's shape or not, sometimes damaged."""
    depth = draw(st.sampled_from([2, 500, 999, 1000, 1001, 1024, 1025, 3000]))
    deep = nested(depth, draw(st.sampled_from(["array", "object"])), draw(st.sampled_from([b'"/"', b"1", b"[]", b"{}"])))
    where = draw(st.sampled_from([b"d", b"", b"op", b"s", b"t"]))
    fields = {b"t": b'"MESSAGE_CREATE"', b"s": b"7", b"op": b"0"}
    fields[where] = deep
    order = draw(st.permutations(list(fields)))
    payload = b"{" + b",".join(b'"%s":%s' % (key, fields[key]) for key in order) + b"}"
    edit = draw(st.sampled_from(["none", "none", "truncate", "replace", "insert"]))
    if edit != "none":
        position = draw(st.integers(min_value=0, max_value=len(payload) - 1))
        junk = draw(st.sampled_from([b'"', b"\\", b"{", b"}", b"[", b"]", b",", b"x"]))
        if edit == "truncate":
            payload = payload[:position]
        elif edit == "replace":
            payload = payload[:position] + junk + payload[position + 1 :]
        else:
            payload = payload[:position] + junk + payload[position:]
    return payload


@pytest.mark.speedups
@settings(max_examples=examples(120), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=deep_payloads(), wanted=st.sampled_from([0, ALL]))
def test_twins_agree_on_deep_payloads(both: tuple[ModuleType, ModuleType], payload: bytes, wanted: int) -> None:
    compiled, pure = both
    assert outcome(compiled.scan_envelope, payload) == outcome(pure.scan_envelope, payload)
    assert outcome(compiled.EventFilter(wanted).scan, payload) == outcome(pure.EventFilter(wanted).scan, payload)
    compiled._select_skip_variant(False)
    try:
        assert outcome(compiled.scan_envelope, payload) == outcome(pure.scan_envelope, payload)
    finally:
        compiled._select_skip_variant(True)
