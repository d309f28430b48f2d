"""``Event``: one gateway message as the shard yields it (name, op, seq, raw payload, and ``data`` decoded on demand).

``data`` is decoded lazily, on first access, from the raw text of ``d`` (``raw[d_start:d_end]``, found by the
envelope scan), and then cached. Measured on this machine (2026-11-28, 939-byte MESSAGE_CREATE, median of 7 runs of
20k, spread within +-3 %):

==========================================  =========
orjson.loads(d slice)                        1.61 us
orjson.loads(whole payload)                  1.74 us
simdjson.loads(d slice)                      3.29 us
simdjson.loads(whole payload)                3.45 us
json.loads(d slice)                          5.20 us
json.loads(whole payload)                    5.57 us
simdjson.Parser: parse d + read one key      0.48 us  (shared parser)
simdjson.Parser: new parser + one key        0.77 us
simdjson.Parser: parse d + as_dict()         2.93 us
==========================================  =========

Why lazy: a consumer that only looks at ``name``/``seq`` or forwards ``raw`` pays nothing for ``d`` (1.6-5 us
saved per event); one that reads ``data`` pays one attribute check more than an eager dict. Why a plain dict and not
simdjson's lazy proxy: the proxy is tied to its parser, and pysimdjson refuses to reuse a parser while any proxy of
an older document is alive (RuntimeError "Tried to re-use a parser ..."), so events a user keeps would break the
next parse; a parser per event (0.77 us) keeps the whole parser buffer alive for as long as the event (tens of MB for
a large GUILD_CREATE) and hands out proxies that are not dicts. So ``data`` is what ``gateway._json.loads`` returns
(orjson when installed: twice as fast as simdjson.loads on these payloads; re-measured in ``gateway/_json.py``).

The fast path for handlers that need a few fields (issue 11; numbers in README "Fast path for handlers"):

* ``get(key, default=None)``: one top-level key of ``d``, found by the envelope twin's ``find_member`` (the compiled
  structural skip jumps over the other values) and decoded alone; nothing else of ``d`` is built.
* ``decode(type)``: ``d`` decoded by msgspec straight into the caller's ``msgspec.Struct`` (or any type msgspec
  accepts); fields the type does not declare are skipped in C. One ``msgspec.json.Decoder`` per type, cached.
"""

from __future__ import annotations

from typing import Any, TypeVar

from . import _json
from ._envelope import EventFilter, find_member
from .errors import PayloadError

__all__ = ["Event"]

T = TypeVar("T")

_NOT_DECODED: Any = object()
_NAMING_FILTER = EventFilter(0)
#: With a backend that reads memoryviews (``_json.VIEWS``), a ``d`` or value longer than this is decoded from a
#: memoryview of ``raw`` (no copy of a multi-MB GUILD_CREATE); a shorter one from a bytes slice (as fast, see _json).
_VIEW_THRESHOLD = 4096


def _msgspec_json() -> Any:
    """``msgspec.json``, or ImportError naming the extra that installs it."""
    try:
        import msgspec.json
    except ImportError:
        raise ImportError(
            "Event.decode needs msgspec, which is not installed: pip install 'gateway[speed]' (or msgspec)"
        ) from None
    return msgspec.json


_DECODERS: dict[Any, Any] = {}


def _decoder_for(target: Any) -> Any:
    """The cached ``msgspec.json.Decoder`` for ``target`` (built once per type; unhashable types are not cached)."""
    try:
        return _DECODERS[target]
    except KeyError:
        decoder = _DECODERS[target] = _msgspec_json().Decoder(target)
        return decoder
    except TypeError:  # unhashable type description
        return _msgspec_json().Decoder(target)


class Event:
    """A gateway message: ``name`` (dispatch name or GATEWAY_*), ``op``, ``seq``, ``raw`` payload, lazy ``data``.

    Build it from a scan: ``Event(name, op, seq, payload, d_start, d_end, shard_id)`` (``d_start == d_end == -1``
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
                text = memoryview(self.raw)[start:end] if _json.VIEWS and end - start > _VIEW_THRESHOLD else self.raw[start:end]
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
        text = memoryview(raw)[start:end] if _json.VIEWS and end - start > _VIEW_THRESHOLD else raw[start:end]
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
        decoder = _decoder_for(type)
        if self._d_start < 0:
            text: Any = b"null"
        else:
            text = memoryview(self.raw)[self._d_start : self._d_end]
        try:
            return decoder.decode(text)
        except (ValueError, RecursionError) as exc:  # msgspec.DecodeError and ValidationError are ValueErrors
            raise PayloadError(f"{self.name} event: d does not decode as {_type_name(type)} ({exc})", self.raw) from None

    @property
    def raw_data(self) -> bytes | None:
        """The raw JSON text of ``d`` (a copy of that slice of ``raw``), or None when the payload has no ``d``."""
        return None if self._d_start < 0 else self.raw[self._d_start : self._d_end]

    def __repr__(self) -> str:
        return f"<Event {self.name} op={self.op} seq={self.seq} shard={self.shard_id} size={len(self.raw)}>"


def _type_name(target: Any) -> str:
    return getattr(target, "__qualname__", None) or repr(target)
