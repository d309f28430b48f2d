"""Fuzz target: the envelope scan and the event filter, compiled vs pure.

Arbitrary payloads (raw bytes, or an envelope assembled from fuzzed keys, values, whitespace and a fuzzed ``d``) go
through ``scan_envelope`` and ``EventFilter(wanted).scan`` for a fuzzed flag set; both twins must return the same
tuple or raise the same exception class, and that class must be PayloadError (however deep ``d`` nests: issue 14 #1,
the pure twin's RecursionError, fixed on branch ``envelope``, was met here until that merge). When the scan accepts
the payload, both twins' ``Event`` must also agree on ``get`` (a key picked by the input), ``data`` and ``decode``
(into ``dict``, ``msgspec.Raw`` and a small Struct; the compiled twin hands msgspec a buffer over ``raw``).
"""

from __future__ import annotations

import sys

from tests.fuzz._common import Finding, fuzz_main, describe, instrumented, outcome, same_outcome, twins

import msgspec

with instrumented():
    from gateway.errors import PayloadError
    from gateway.flags import FLAG_BY_NAME, EventTypeFlags

    COMPILED, PURE = twins("envelope")
NAMES = sorted(FLAG_BY_NAME)
ALL_FLAGS = int(EventTypeFlags.all())
_WHITESPACE = (b"", b" ", b"\n", b"\t ", b"\r\n  ")
_GET_KEYS = ("id", "x", "d", "op", "", "guild_id", "é")


class _Probe(msgspec.Struct):
    id: str | int | None = None
    x: list[int] | dict[str, str] | None = None


_DECODE_TARGETS = (dict, msgspec.Raw, _Probe)
_KEYS = (b'"op"', b'"s"', b'"t"', b'"d"', b'"x"', b'"o\\u0070"', b'"\\u0074"', b'"op2"')


def _value(key_index: int, byte: int, material: bytes) -> bytes:
    if key_index == 0:
        return (b"0", b"10", b"1e1", b"-1", b"1.0", b"null", b'"0"', b"99999999999999999999", b"11", b"7")[byte % 10]
    if key_index == 1:
        return (b"null", b"1", b"0", b"-5", b"9223372036854775808", b"1.5", b"2e3", b'"3"', b"42", b"true")[byte % 10]
    if key_index in (2, 6):
        name = NAMES[byte % len(NAMES)].encode()
        return (b'"' + name + b'"', b"null", b'"\\u0052EADY"', b'"' + name.lower() + b'"', b'"\xc3\xa9"', b"1")[byte % 6]
    return material


def _assemble(data: bytes) -> bytes:
    """An envelope-shaped payload: up to 6 members chosen by the input, the tail of the input as ``d``."""
    count, rest = data[0] % 7, data[1:]
    members = []
    for i in range(count):
        if len(rest) < 3:
            break
        key_index, value_byte, space = rest[0] % len(_KEYS), rest[1], rest[2]
        rest = rest[3:]
        key = _KEYS[key_index]
        ws = _WHITESPACE[space % len(_WHITESPACE)]
        members.append(ws + key + ws + b":" + ws + _value(key_index, value_byte, rest if key_index == 3 else b"{}"))
    body = b",".join(members)
    return b"{" + body + b"}" + (rest[:2] if data[0] & 0x80 else b"")


def check(data: bytes) -> None:
    if len(data) < 9:
        return
    wanted = int.from_bytes(data[1:9], "little") & ALL_FLAGS
    if data[0] & 1:
        wanted = ALL_FLAGS ^ wanted
    payload = _assemble(data[9:]) if data[0] & 2 and len(data) > 9 else data[9:]
    results = [
        (outcome(lambda m=module: m.scan_envelope(payload)), outcome(lambda m=module: m.EventFilter(wanted).scan(payload)))
        for module in (COMPILED, PURE)
    ]
    for which, (compiled, pure) in zip(("scan_envelope", "EventFilter.scan"), zip(*results)):
        if not same_outcome(compiled, pure):
            raise Finding(f"{which} of {payload[:120]!r}... ({len(payload)} bytes, wanted={wanted:#x}): "
                          f"compiled {describe(compiled)}, pure {describe(pure)}")
        if compiled[0] == "raise" and not isinstance(compiled[1], PayloadError):
            raise Finding(f"{which} raised {type(compiled[1]).__name__}, not PayloadError: {compiled[1]}")
        if compiled[0] == "ok":
            d_start, d_end = compiled[1][3], compiled[1][4]
            if not (d_start == d_end == -1 or 0 <= d_start <= d_end <= len(payload)):
                raise Finding(f"{which}: d span {d_start}..{d_end} outside a {len(payload)}-byte payload")
    if results[0][0][0] == "ok":
        _check_events(payload, _GET_KEYS[data[0] % len(_GET_KEYS)])


def _check_events(payload: bytes, key: str) -> None:
    """Both Event twins built from ``payload`` agree on get(key), data and decode (fresh events: data is cached)."""
    probes = [(f"get({key!r})", lambda event: event.get(key, "default")), ("data", lambda event: event.data)]
    probes += [(f"decode({target.__name__})", lambda event, t=target: event.decode(t)) for target in _DECODE_TARGETS]
    for what, probe in probes:
        compiled, pure = (outcome(lambda m=module: probe(m.Event.from_payload(payload))) for module in (COMPILED, PURE))
        if not same_outcome(compiled, pure):
            raise Finding(f"Event.{what} of {payload[:120]!r}... ({len(payload)} bytes): "
                          f"compiled {describe(compiled)}, pure {describe(pure)}")
        if compiled[0] == "raise" and not isinstance(compiled[1], PayloadError):
            raise Finding(f"Event.{what} raised {type(compiled[1]).__name__}, not PayloadError: {compiled[1]}")


def TestOneInput(data: bytes) -> None:  # noqa: N802 - atheris' name
    check(data)


def main() -> None:
    fuzz_main(check, "envelope")


if __name__ == "__main__":
    main()
