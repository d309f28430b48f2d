"""Type stub for the compiled framing twin; mirrors ``gateway/_framing_py.py``.

``FrameReader.feed``, ``build_frame`` and ``parse_close`` take a C-contiguous bytes-like object (read as its raw
bytes); anything else, a non-contiguous memoryview included, raises TypeError in both twins.
"""

from __future__ import annotations

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
]

OP_CONTINUATION: int
OP_TEXT: int
OP_BINARY: int
OP_CLOSE: int
OP_PING: int
OP_PONG: int

class FrameReader:
    def __init__(self, max_message_size: int | None = None) -> None: ...
    def feed(self, data: bytes | bytearray | memoryview) -> list[tuple[int, bytes]]: ...

def parse_close(payload: bytes | bytearray | memoryview) -> tuple[int, str]: ...
def build_frame(opcode: int, payload: bytes | bytearray | memoryview, *, mask: bool = True) -> bytes: ...
def build_close_payload(code: int, reason: str = "") -> bytes: ...
