"""Envelope scan and event filter, pure-Python twin (the readable reference for ``gateway/_speedups/_envelope.pyx``).

``scan_envelope`` reads ``op``, ``s`` and ``t`` of a gateway payload without parsing ``d``. It is a real scanner
of the top-level object, not a substring search, so it is right for any key order, any JSON whitespace, escaped
keys, and look-alikes such as ``"t":"READY"`` inside ``d``:

* each top-level key is read as a JSON string (a key with a backslash is decoded by the JSON parser);
* ``op``, ``s`` and ``t`` values are read as scalars; anything the fast path cannot decide (an escape or non-ASCII
  byte in ``t``, a number like ``1e2`` or ``1.0``) is decoded from its own text by ``json.loads``, never guessed;
* ``d`` and every other value is skipped structurally: strings end at an unescaped quote, ``{``/``[`` and ``}``/``]``
  are counted outside strings, and a backslash escapes the byte after it (inside or outside strings);
* duplicate keys: the last one wins, as with ``json.loads``.

What is validated: the envelope's own structure (object, keys, colons, commas, the end, nothing after it but
whitespace), scalar values at the top level, and the values of ``op``/``s``/``t``. What is not: the content of
``d`` and of other top-level strings/containers (bracket kinds are not matched, UTF-8 is not checked). A broken ``d``
is reported when ``Event.data`` decodes it. Every failure raises :class:`gateway.errors.PayloadError` with
``.payload``; a payload that is not ``bytes`` raises TypeError.

``find_member(payload, start, end, key)`` walks the members of the object ``d`` the same way (what ``Event.get``
uses): the span of one top-level key's value, the last one for a duplicate key, ``(-1, -1)`` when absent.

Nesting depth: the scan has no depth limit and its answer does not depend on the depth or on the caller's stack.
Containers are skipped iteratively (the pure twin's C-scanner shortcut falls back to the iterative skip when it hits
the recursion limit), and a container as the value of ``op``/``s``/``t`` is rejected without being decoded. A ``d``
nested deeper than the JSON backend accepts (orjson: 1,024 levels) scans fine; ``Event.data`` then raises
PayloadError.

The slow-path decoding of single values always uses the stdlib ``json`` (in both twins), whatever GATEWAY_JSON
says: it keeps integers exact and makes the scan's answer independent of the backend.

Speed (CPython has no JIT for a byte loop, so the pure twin leans on C code it is sure of): a payload in Discord's
exact shape ``{"t":..,"s":..,"op":..,"d":..}`` is matched by one regex, and the end of a container is taken from
the stdlib's C JSON scanner when that scanner accepts it (a valid container ends exactly where the structural skip
would stop); otherwise the general scanner and the structural skip below decide. Tests check both paths against
each other and against the compiled twin.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable, TypeVar

from . import _json
from .errors import PayloadError
from .flags import FLAG_BY_NAME, OPCODE_NAMES

__all__ = ["scan_envelope", "EventFilter", "find_member", "Event"]

T = TypeVar("T")

_QUOTE, _BACKSLASH = 0x22, 0x5C
_OPEN_BRACE, _OPEN_BRACKET, _CLOSE_BRACE = 0x7B, 0x5B, 0x7D

#: Interning table: a known name maps to the one str object FLAG_BY_NAME holds.
_INTERNED: dict[str, str] = {name: name for name in FLAG_BY_NAME}
_UNKNOWN_FLAG = FLAG_BY_NAME["UNKNOWN"]
#: EventFilter.run: websocket opcodes (text; control frames from close on), the sequence limit and the dispatches
#: the protocol handles itself (the same as ``gateway.protocol``'s fast path).
_OP_TEXT, _OP_CLOSE = 0x1, 0x8
_SEQ_LIMIT = 2**63
_SESSION_NAMES = ("READY", "RESUMED")
_raw_decode = json.JSONDecoder().raw_decode

_CANONICAL = re.compile(rb'\{"t":(?:null|"([A-Z0-9_]+)"),"s":(null|-?(?:0|[1-9][0-9]*)),"op":(-?(?:0|[1-9][0-9]*)),"d":')
_OBJECT_START = re.compile(rb"[ \t\n\r]*\{[ \t\n\r]*(\}?)")
#: One member up to its value: whitespace, the key (a JSON string, group 1 its raw text), whitespace, ':', whitespace.
_MEMBER_KEY = re.compile(rb'[ \t\n\r]*"([^"\\]*(?:\\.[^"\\]*)*)"[ \t\n\r]*:[ \t\n\r]*', re.DOTALL)
_AFTER_VALUE = re.compile(rb"[ \t\n\r]*([,}])")
_TRAILING_WHITESPACE = re.compile(rb"[ \t\n\r]*")
#: From just after an opening quote to just after the closing one (backslash escapes the next byte).
_STRING_REST = re.compile(rb'[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
#: Inside a container: the next byte that matters for structure.
_STRUCTURAL = re.compile(rb'[\\"{}\[\]]')
#: A top-level scalar value: a run of the bytes numbers and literals are made of.
_SCALAR = re.compile(rb"[0-9A-Za-z+\-.]+")
_INTEGER = re.compile(rb"-?(?:0|[1-9][0-9]*)")
_NUMBER = re.compile(rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_SIMPLE_NAME = re.compile(rb"[\x20-\x21\x23-\x5b\x5d-\x7e]*")  # printable ASCII without quote and backslash


def _error(message: str, payload: bytes) -> PayloadError:
    return PayloadError(f"invalid gateway payload: {message}", payload)


def _string_end(payload: bytes, opening_quote: int) -> int:
    """Index just after the quote closing the string that opens at ``opening_quote``."""
    match = _STRING_REST.match(payload, opening_quote + 1)
    if match is None:
        raise _error("unterminated string", payload)
    return match.end()


def _container_end(payload: bytes, opening: int) -> int:
    """Index just after the ``}``/``]`` closing the container that opens at ``opening``.

    Fast path: the stdlib's C JSON scanner on the payload read as Latin-1 (one character per byte, so its
    character index is the byte index). When it accepts the container, the container is valid JSON and its end is
    exactly where the structural skip would stop. When it refuses (invalid content, which the scan does not judge),
    :func:`_structural_container_end` decides, as the compiled twin does.
    """
    try:
        return _raw_decode(payload.decode("latin-1"), opening)[1]
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the C scanner's stack allows
        return _structural_container_end(payload, opening)


def _structural_container_end(payload: bytes, opening: int) -> int:
    """Index just after the ``}``/``]`` closing the container that opens at ``opening`` (structure only)."""
    depth = 0
    position = opening
    search = _STRUCTURAL.search
    while True:
        match = search(payload, position)
        if match is None:
            raise _error("unterminated object or array", payload)
        found = match.start()
        byte = payload[found]
        if byte == _QUOTE:
            position = _string_end(payload, found)
        elif byte == _BACKSLASH:
            position = found + 2
        elif byte == _OPEN_BRACE or byte == _OPEN_BRACKET:
            depth += 1
            position = found + 1
        else:
            depth -= 1
            position = found + 1
            if depth == 0:
                return position


def _value_end(payload: bytes, start: int) -> int:
    """Index just after the top-level value starting at ``start`` (containers skipped, scalars checked)."""
    if start >= len(payload):
        raise _error("a value is missing", payload)
    byte = payload[start]
    if byte == _QUOTE:
        return _string_end(payload, start)
    if byte == _OPEN_BRACE or byte == _OPEN_BRACKET:
        return _container_end(payload, start)
    match = _SCALAR.match(payload, start)
    if match is None:
        raise _error(f"unexpected byte {bytes([byte])!r} at {start}", payload)
    token = match.group()
    if token not in (b"true", b"false", b"null") and _NUMBER.fullmatch(token) is None:
        raise _error(f"invalid literal {token[:20]!r} at {start}", payload)
    return match.end()


_CONTAINER = object()

_ENVELOPE_KEYS = {"op": b"op", "s": b"s", "t": b"t", "d": b"d"}


def _decode_key(payload: bytes, start: int, end: int) -> bytes:
    """Decode a key written with escapes (start/end include the quotes): b"op"/b"s"/b"t"/b"d", or b"" for others."""
    raw = payload[start + 1 : end - 1]
    try:
        key = json.loads(payload[start:end])
    except ValueError as exc:
        raise _error(f"invalid key {raw[:40]!r}: {exc}", payload) from None
    return _ENVELOPE_KEYS.get(key, b"")


def _parse_op(payload: bytes, start: int, end: int) -> int:
    text = payload[start:end]
    if _INTEGER.fullmatch(text) is not None:
        return int(text)
    value = _decode_value(payload, start, end)
    if type(value) is not int:
        raise _error(f"op is not an integer: {text[:20]!r}", payload)
    return value


def _parse_seq(payload: bytes, start: int, end: int) -> int | None:
    text = payload[start:end]
    if text == b"null":
        return None
    if _INTEGER.fullmatch(text) is not None:
        return int(text)
    value = _decode_value(payload, start, end)
    if type(value) is not int:
        raise _error(f"s is not an integer or null: {text[:20]!r}", payload)
    return value


def _parse_name(payload: bytes, start: int, end: int) -> str | None:
    if payload[start] == _QUOTE and _SIMPLE_NAME.fullmatch(payload, start + 1, end - 1) is not None:
        name = payload[start + 1 : end - 1].decode("ascii")
    else:
        if payload[start : end] == b"null":
            return None
        value = _decode_value(payload, start, end)
        if type(value) is not str:
            raise _error(f"t is not a string or null: {payload[start:end][:20]!r}", payload)
        name = value
    return _INTERNED.get(name, name)


def _decode_value(payload: bytes, start: int, end: int) -> object:
    """The slow path: let the JSON parser decode one value's own text.

    A container is never an acceptable ``op``/``s``/``t``, so it is not decoded (however deep it is nested): the
    sentinel returned fails the caller's type check.
    """
    if payload[start] == _OPEN_BRACE or payload[start] == _OPEN_BRACKET:
        return _CONTAINER
    try:
        return json.loads(payload[start:end])
    except ValueError as exc:
        raise _error(f"undecodable value {payload[start:end][:40]!r}: {exc}", payload) from None


def _scan_canonical(payload: bytes) -> tuple[int, int | None, str | None, int, int] | None:
    """Fast path for the exact shape Discord sends, ``{"t":..,"s":..,"op":..,"d":..}`` with no whitespace.

    Not a guess: the regex pins down the whole envelope before ``d``, and the JSON scanner proves that ``d`` is one
    valid value ending just before the final ``}``. Anything else returns None and the general scanner decides.
    """
    match = _CANONICAL.match(payload)
    if match is None or payload[-1] != _CLOSE_BRACE:
        return None
    d_start = match.end()
    d_end = len(payload) - 1
    if payload[d_start] == _OPEN_BRACE or payload[d_start] == _OPEN_BRACKET:
        try:
            if _raw_decode(payload.decode("latin-1"), d_start)[1] != d_end:
                return None
        except (ValueError, RecursionError):
            return None
    elif payload[d_start:d_end] != b"null":  # other scalars: the general scanner checks them (json accepts NaN)
        return None
    name_text, seq_text, op_text = match.groups()
    name = None if name_text is None else _INTERNED.get(name_text.decode("ascii")) or name_text.decode("ascii")
    return int(op_text), None if seq_text == b"null" else int(seq_text), name, d_start, d_end


def scan_envelope(payload: bytes) -> tuple[int, int | None, str | None, int, int]:
    """Return ``(op, s, t, d_start, d_end)``; ``payload[d_start:d_end]`` is the raw JSON of ``d``.

    ``d_start == d_end == -1`` when ``d`` is absent. ``t`` is interned for the names in ``FLAG_BY_NAME``.
    Raises PayloadError (with ``.payload``) for invalid JSON structure, a non-object, a missing or non-integer
    ``op``, a non-integer ``s`` or a non-string ``t``; TypeError if ``payload`` is not bytes.
    """
    if type(payload) is not bytes:
        raise TypeError(f"payload must be bytes, not {type(payload).__name__}")
    canonical = _scan_canonical(payload)
    if canonical is not None:
        return canonical
    return _scan_general(payload)


def _scan_general(payload: bytes) -> tuple[int, int | None, str | None, int, int]:
    """The scanner for any envelope (see the module docstring); :func:`scan_envelope` without its fast path."""
    match = _OBJECT_START.match(payload)
    if match is None:
        raise _error("not a JSON object", payload)
    op_span = s_span = t_span = None
    d_start = d_end = -1
    position = match.end()
    if not match.group(1):  # not the empty object
        while True:
            match = _MEMBER_KEY.match(payload, position)
            if match is None:
                raise _error(f"expected a key and ':' at {position}", payload)
            key = match.group(1)
            if _BACKSLASH in key:
                key = _decode_key(payload, match.start(1) - 1, match.end(1) + 1)
            value_start = match.end()
            value_end = _value_end(payload, value_start)
            if key == b"d":
                d_start, d_end = value_start, value_end
            elif key == b"op":
                op_span = (value_start, value_end)
            elif key == b"s":
                s_span = (value_start, value_end)
            elif key == b"t":
                t_span = (value_start, value_end)
            match = _AFTER_VALUE.match(payload, value_end)
            if match is None:
                raise _error(f"expected ',' or '}}' at {value_end}", payload)
            position = match.end()
            if match.group(1) == b"}":
                break
    if _TRAILING_WHITESPACE.fullmatch(payload, position) is None:
        raise _error(f"trailing data at {position}", payload)
    if op_span is None:
        raise _error("op is missing", payload)
    op = _parse_op(payload, *op_span)
    seq = _parse_seq(payload, *s_span) if s_span is not None else None
    name = _parse_name(payload, *t_span) if t_span is not None else None
    return op, seq, name, d_start, d_end


def find_member(payload: bytes, start: int, end: int, key: str) -> tuple[int, int]:
    """Span ``(value_start, value_end)`` of the value of top-level ``key`` in the object ``payload[start:end]``.

    ``(-1, -1)`` when the key is absent or ``payload[start:end]`` is not an object (its first byte is not ``{``).
    Keys are compared after JSON unescaping; with duplicate keys the last one wins, as with ``json.loads``. The
    object is checked as the envelope is (keys, colons, commas, the end, scalars; containers skipped structurally,
    any depth), so a malformed ``d`` raises PayloadError (with ``.payload``), whatever ``key`` is asked for.
    """
    if type(payload) is not bytes:
        raise TypeError(f"payload must be bytes, not {type(payload).__name__}")
    if not isinstance(key, str):
        raise TypeError(f"key must be str, not {type(key).__name__}")
    if not 0 <= start <= end <= len(payload):
        raise ValueError(f"span {start}:{end} is outside the payload (length {len(payload)})")
    if start == end or payload[start] != _OPEN_BRACE:
        return -1, -1
    wanted = key.encode("utf-8")
    text = payload[start:end]  # one copy: the regexes and the C JSON scanner work on it (the pure twin)
    try:
        value_start, value_end = _find_in_object(text, key, wanted)
    except PayloadError as exc:
        raise _error("d is not a valid JSON object", payload) from exc
    if value_start < 0:
        return -1, -1
    return start + value_start, start + value_end


def _find_in_object(text: bytes, key: str, wanted: bytes) -> tuple[int, int]:
    latin = None
    found = (-1, -1)
    match = _OBJECT_START.match(text)
    assert match is not None  # text starts with "{"
    position = match.end()
    if not match.group(1):
        while True:
            match = _MEMBER_KEY.match(text, position)
            if match is None:
                raise _error(f"expected a key and ':' at {position}", text)
            raw_key = match.group(1)
            if _BACKSLASH in raw_key:
                try:
                    is_wanted = json.loads(text[match.start(1) - 1 : match.end(1) + 1]) == key
                except ValueError as exc:
                    raise _error(f"invalid key {raw_key[:40]!r}: {exc}", text) from None
            else:
                is_wanted = raw_key == wanted
            value_start = match.end()
            if value_start < len(text) and (text[value_start] == _OPEN_BRACE or text[value_start] == _OPEN_BRACKET):
                if latin is None:
                    latin = text.decode("latin-1")
                try:
                    value_end = _raw_decode(latin, value_start)[1]
                except (ValueError, RecursionError):
                    value_end = _structural_container_end(text, value_start)
            else:
                value_end = _value_end(text, value_start)
            if is_wanted:
                found = (value_start, value_end)
            match = _AFTER_VALUE.match(text, value_end)
            if match is None:
                raise _error(f"expected ',' or '}}' at {value_end}", text)
            position = match.end()
            if match.group(1) == b"}":
                break
    if position != len(text):
        raise _error(f"trailing data at {position}", text)
    return found


class EventFilter:
    """Decides from the envelope alone whether an event is wanted, so unwanted ones are never JSON-parsed.

    ``wanted`` is an :class:`gateway.flags.EventTypeFlags` value (or int). The per-name decision is computed once here.
    """

    __slots__ = ("_wanted", "_wanted_by_name", "_unknown_wanted", "position", "sequence")

    def __init__(self, wanted: int) -> None:
        if not isinstance(wanted, int):
            raise TypeError(f"wanted must be an int (EventTypeFlags), not {type(wanted).__name__}")
        self._wanted: int = int(wanted)
        self._wanted_by_name: dict[str, bool] = {name: bool(flag & self._wanted) for name, flag in FLAG_BY_NAME.items()}
        self._unknown_wanted: bool = bool(_UNKNOWN_FLAG & self._wanted)
        #: Where the last :meth:`run` stopped: the index of the next message to handle, and the last sequence taken.
        self.position = 0
        self.sequence = 0

    @property
    def wanted(self) -> int:
        """The wanted flags as a plain int (read-only: build a new filter to change it)."""
        return self._wanted

    def scan(self, payload: bytes) -> tuple[int, int | None, str, int, int, bool]:
        """Return ``(op, s, name, d_start, d_end, is_wanted)``; same errors as :func:`scan_envelope`.

        ``name`` is ``t`` for op 0 (an unknown name is passed through and counts as UNKNOWN; a dispatch without
        ``t`` is named "UNKNOWN"), the GATEWAY_* name for ops 1, 7, 9, 10, 11, and "UNKNOWN" for any other op.
        """
        op, seq, name, d_start, d_end = scan_envelope(payload)
        if op != 0 or name is None:
            name = OPCODE_NAMES.get(op, "UNKNOWN")
        wanted = self._wanted_by_name.get(name)
        if wanted is None:
            wanted = self._unknown_wanted
        return op, seq, name, d_start, d_end, wanted

    def run(self, messages: list[tuple[int, bytes]], start: int, inflate: Callable[[bytes], bytes | None] | None,
            last_seq: int, deliver: Callable[[Event], object], shard_id: int | None) -> bytes | BaseException | None:
        """A shard's fast lane (see ``ShardProtocol.fast_lane``): take the data messages of ``messages[start:]``
        (``(opcode, payload)`` pairs from ``FrameReader.feed``) while each is a plain dispatch of the running session
        whose sequence is ``last_seq``.

        Per message: inflated by ``inflate`` (an inflater's ``feed``; None without compression; a text message is
        never inflated), a partial zlib-stream message (None) consumed and skipped, the payload scanned; a plain
        dispatch (op 0, an integer ``s`` with ``last_seq < s < 2**63``, a name other than READY and RESUMED) moves
        the sequence to ``s`` and, when wanted, is handed to ``deliver(Event(..., shard_id))``.

        Stops at the end, before a control frame (opcode >= 8, not consumed), or after a message it does not take,
        and returns None (the end, or a control frame), that message's payload (inflated, for the slow path to handle
        from the scan on: not a plain dispatch, or its scan raised), or the exception ``inflate`` raised.
        :attr:`position` is then the index of the next message, :attr:`sequence` the last sequence taken.
        """
        sequence = last_seq
        index = start
        count = len(messages)
        try:
            while index < count:
                opcode, message = messages[index]
                if opcode >= _OP_CLOSE:
                    return None
                index += 1
                if inflate is not None and opcode != _OP_TEXT:
                    try:
                        payload = inflate(message)
                    except Exception as exc:  # noqa: BLE001 - handed back to the caller
                        return exc
                    if payload is None:
                        continue
                else:
                    payload = message
                try:
                    op, seq, name, d_start, d_end, wanted = self.scan(payload)
                except Exception:  # noqa: BLE001 - the slow path scans it again and reports
                    return payload
                if op != 0 or type(seq) is not int or not sequence < seq < _SEQ_LIMIT or name in _SESSION_NAMES:
                    return payload
                sequence = seq
                if wanted:
                    deliver(Event(name, op, seq, payload, d_start, d_end, shard_id))
            return None
        finally:
            self.position = index
            self.sequence = sequence

    def __repr__(self) -> str:
        return f"EventFilter(wanted={self._wanted:#x})"


# ---------------------------------------------------------------------------------------------------------------
# Event: one gateway message as the shard yields it (see gateway/event.py for why d is decoded lazily).
# ---------------------------------------------------------------------------------------------------------------

_NOT_DECODED: Any = object()
_NAMING_FILTER = EventFilter(0)
#: With a backend that reads memoryviews (``_json.VIEWS``), a ``d`` or value longer than this is decoded from a
#: memoryview of ``raw`` (no copy of a multi-MB GUILD_CREATE); a shorter one from a bytes slice (as fast, see _json).
VIEW_THRESHOLD = 4096


class Event:
    """A gateway message: ``name`` (dispatch name or GATEWAY_*), ``op``, ``seq``, ``raw`` payload, lazy ``data``.

    The pure twin (the readable reference); ``gateway/_speedups/_envelope.pyx`` has the compiled one, which the
    garbage collector does not track. Build it from a scan: ``Event(name, op, seq, payload, d_start, d_end, shard_id)`` (``d_start == d_end == -1``
    when the payload has no ``d``), or with :meth:`from_payload`. ``shard_id`` is the number of the shard that
    received it (None when unknown). ``data`` raises PayloadError when ``d`` is not valid JSON. For a few fields,
    :meth:`get` and :meth:`decode` are faster than ``data``.
    """

    __slots__ = ("name", "op", "seq", "raw", "shard_id", "_d_start", "_d_end", "_data")

    name: str
    op: int
    seq: int | None
    raw: bytes
    shard_id: int | None

    def __init__(self, name: str, op: int, seq: int | None, payload: bytes, d_start: int, d_end: int,
                 shard_id: int | None = None) -> None:
        self.name = name
        self.op = op
        self.seq = seq
        self.raw = payload
        self.shard_id = shard_id
        self._d_start = d_start
        self._d_end = d_end
        self._data = _NOT_DECODED

    @classmethod
    def from_payload(cls, payload: bytes, shard_id: int | None = None) -> Event:
        """Scan ``payload`` (a whole decompressed gateway message) and build its Event; PayloadError if invalid."""
        op, seq, name, d_start, d_end, _ = _NAMING_FILTER.scan(payload)
        return cls(name, op, seq, payload, d_start, d_end, shard_id)

    @property
    def data(self) -> Any:
        """The decoded ``d`` (None when absent), decoded on first access and cached; PayloadError if it is invalid."""
        data = self._data
        if data is _NOT_DECODED:
            if self._d_start < 0:
                data = None
            else:
                start, end = self._d_start, self._d_end
                text = memoryview(self.raw)[start:end] if _json.VIEWS and end - start > VIEW_THRESHOLD else self.raw[start:end]
                try:
                    data = _json.loads(text)
                except _json.DECODE_ERRORS as exc:
                    raise PayloadError(f"{self.name} event: d is not valid JSON ({exc})", self.raw) from None
            self._data = data
        return data

    def get(self, key: str, default: Any = None) -> Any:
        """``data.get(key, default)`` without building ``data``: only the value of top-level ``key`` is decoded.

        ``default`` when ``d`` is absent, is not an object, or has no ``key``. PayloadError (naming the event) when
        the object's structure or the value of ``key`` is invalid JSON; values of other keys are skipped, not
        validated. Once ``data`` has been decoded, it is used instead. Nothing is cached: read ``data`` (or use
        :meth:`decode`) for many keys.
        """
        data = self._data
        if data is not _NOT_DECODED:
            return data.get(key, default) if type(data) is dict else default
        if self._d_start < 0:
            return default
        raw = self.raw
        try:
            start, end = find_member(raw, self._d_start, self._d_end, key)
        except PayloadError as exc:
            raise PayloadError(f"{self.name} event: {exc}", raw) from exc
        if start < 0:
            return default
        text = memoryview(raw)[start:end] if _json.VIEWS and end - start > VIEW_THRESHOLD else raw[start:end]
        try:
            return _json.loads(text)
        except _json.DECODE_ERRORS as exc:
            raise PayloadError(f"{self.name} event: d[{key!r}] is not valid JSON ({exc})", raw) from None

    def decode(self, type: type[T]) -> T:
        """``d`` decoded by msgspec into ``type`` (a ``msgspec.Struct``, or any type msgspec accepts).

        Fields ``type`` does not declare are skipped; an absent ``d`` is decoded as ``null``. PayloadError (naming
        the event) when ``d`` is invalid JSON or does not match ``type``; ImportError naming the ``gateway[speed]``
        extra when msgspec is not installed. Not cached: each call decodes again.
        """
        decoder = _json.typed_decoder(type)
        if self._d_start < 0:
            text: Any = b"null"
        else:
            text = memoryview(self.raw)[self._d_start : self._d_end]
        try:
            return decoder.decode(text)
        except (ValueError, RecursionError) as exc:  # msgspec.DecodeError and ValidationError are ValueErrors
            raise PayloadError(f"{self.name} event: d does not decode as {_json.type_name(type)} ({exc})", self.raw) from None

    @property
    def raw_data(self) -> bytes | None:
        """The raw JSON text of ``d`` (a copy of that slice of ``raw``), or None when the payload has no ``d``."""
        return None if self._d_start < 0 else self.raw[self._d_start : self._d_end]

    def __repr__(self) -> str:
        return f"<Event {self.name} op={self.op} seq={self.seq} shard={self.shard_id} size={len(self.raw)}>"
