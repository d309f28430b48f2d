"""The receive path: one websocket message in, one scanned gateway payload (or nothing yet) out.

It chains the selected twins: ``_inflate`` (transport compression) and ``_envelope`` (envelope scan + event-type
filter), kept apart from the driver so that the benchmark suite (``bench/``) measures the real path without a socket.
:meth:`Receiver.feed` is that path in one call. The shard uses the parts: :attr:`Receiver.filter`'s ``run`` (the fast
lane: whole socket reads of plain dispatches, inflated, scanned and turned into Events inside the twin) and, for
everything else, the two bound methods :attr:`Receiver.inflate` and :attr:`Receiver.scan` one message at a time
(``Shard._on_messages`` / ``_on_message``). JSON is not parsed here: ``d`` is decoded only when a user reads
:attr:`gateway.event.Event.data` (or ``get``/``decode``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType

from . import _envelope, _inflate
from ._inflate import DEFAULT_MAX_INFLATED_SIZE
from .flags import EventTypeFlags

__all__ = ["Receiver", "Scanned"]

#: ``(op, seq, name, payload, d_start, d_end, wanted)`` for one complete gateway payload.
Scanned = tuple[int, "int | None", str, bytes, int, int, bool]


class Receiver:
    """Turns websocket messages of one connection into scanned gateway payloads.

    ``feed(message, compressed)`` returns a :data:`Scanned` tuple, or None while a zlib-stream payload is incomplete.
    Raises :class:`~gateway.errors.CompressionError` (corrupt stream or one payload over ``max_inflated_size``; the
    connection must then be replaced and :meth:`reset` called) or :class:`~gateway.errors.PayloadError` (the payload
    is not a gateway envelope; skip it, the stream is still good).

    ``twins`` (tests and benchmarks) picks the twin modules: ``{"inflate": module, "envelope": module}``; by default
    the selectors' choice.

    :attr:`inflate` (None without compression) and :attr:`scan` are the two steps as bound methods, for a caller that
    runs them itself; :attr:`filter` is the EventFilter (its ``run`` is the shard's fast lane). ``scan`` and
    ``filter`` are replaced when :attr:`wanted` changes, so read them for every message.
    """

    __slots__ = ("compression", "inflate", "scan", "_inflater", "filter", "_event_filter_type")

    def __init__(
        self,
        compression: str | None,
        wanted: int = EventTypeFlags.all(),
        *,
        max_inflated_size: int = DEFAULT_MAX_INFLATED_SIZE,
        twins: Mapping[str, ModuleType] | None = None,
    ) -> None:
        inflate_module = (twins or {}).get("inflate", _inflate)
        envelope_module = (twins or {}).get("envelope", _envelope)
        self.compression = compression
        self._inflater = inflate_module.make_inflater(compression, max_inflated_size)
        self.inflate = self._inflater.feed if self._inflater is not None else None
        self._event_filter_type = envelope_module.EventFilter
        self.filter = self._event_filter_type(int(wanted))
        self.scan = self.filter.scan

    @property
    def wanted(self) -> int:
        """The event types :meth:`feed` marks as wanted."""
        return self.filter.wanted

    @wanted.setter
    def wanted(self, flags: int) -> None:
        self.filter = self._event_filter_type(int(flags))
        self.scan = self.filter.scan

    def reset(self) -> None:
        """Start a new connection: a fresh decompression context, nothing buffered."""
        if self._inflater is not None:
            self._inflater.reset()

    def feed(self, message: bytes, compressed: bool = True) -> Scanned | None:
        """Process one websocket message (``compressed=False`` for a text message, which is never compressed)."""
        inflate = self.inflate
        if inflate is not None and compressed:
            payload = inflate(message)
            if payload is None:
                return None
        else:
            payload = message
        op, seq, name, d_start, d_end, wanted = self.scan(payload)
        return op, seq, name, payload, d_start, d_end, wanted
