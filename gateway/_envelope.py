"""Selector for the envelope scan and event filter twins: the only module the package imports for envelope.

Twins: ``gateway/_envelope_py.py`` (pure, the readable reference) and ``gateway/_speedups/_envelope.pyx`` (compiled).
:data:`IMPLEMENTATION` is ``"speedups"`` or ``"pure"``; ``GATEWAY_NO_SPEEDUPS=1`` forces the pure twin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._compat import load_twin, twin_name

if TYPE_CHECKING:
    from ._envelope_py import (
        scan_envelope,
        EventFilter,
        find_member,
        Event,
        VIEW_THRESHOLD,
    )
else:
    _impl = load_twin("envelope")
    scan_envelope = _impl.scan_envelope
    EventFilter = _impl.EventFilter
    find_member = _impl.find_member
    Event = _impl.Event
    VIEW_THRESHOLD = _impl.VIEW_THRESHOLD

#: Which twin this process runs: ``"speedups"`` (compiled) or ``"pure"``.
IMPLEMENTATION: str = twin_name(load_twin("envelope"))

__all__ = [
    "scan_envelope",
    "EventFilter",
    "find_member",
    "Event",
    "VIEW_THRESHOLD",
    "IMPLEMENTATION",
]
