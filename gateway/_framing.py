"""Selector for the websocket framing twins: the only module the package imports for framing.

Twins: ``gateway/_framing_py.py`` (pure, the readable reference) and ``gateway/_speedups/_framing.pyx`` (compiled).
:data:`IMPLEMENTATION` is ``"speedups"`` or ``"pure"``; ``GATEWAY_NO_SPEEDUPS=1`` forces the pure twin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._compat import load_twin, twin_name

if TYPE_CHECKING:
    from ._framing_py import (
        OP_CONTINUATION,
        OP_TEXT,
        OP_BINARY,
        OP_CLOSE,
        OP_PING,
        OP_PONG,
        FrameReader,
        parse_close,
        build_frame,
        build_close_payload,
    )
else:
    _impl = load_twin("framing")
    OP_CONTINUATION = _impl.OP_CONTINUATION
    OP_TEXT = _impl.OP_TEXT
    OP_BINARY = _impl.OP_BINARY
    OP_CLOSE = _impl.OP_CLOSE
    OP_PING = _impl.OP_PING
    OP_PONG = _impl.OP_PONG
    FrameReader = _impl.FrameReader
    parse_close = _impl.parse_close
    build_frame = _impl.build_frame
    build_close_payload = _impl.build_close_payload

#: Which twin this process runs: ``"speedups"`` (compiled) or ``"pure"``.
IMPLEMENTATION: str = twin_name(load_twin("framing"))

__all__ = [
    "OP_CONTINUATION",
    "OP_TEXT",
    "OP_BINARY",
    "OP_CLOSE",
    "OP_PING",
    "OP_PONG",
    "FrameReader",
    "parse_close",
    "build_frame",
    "build_close_payload",
    "IMPLEMENTATION",
]
