"""Websocket framing (RFC 6455), pure-Python twin: the readable reference for ``gateway/_speedups/_framing.pyx``.

:class:`FrameReader` turns the bytes a *server* sends into messages; :func:`build_frame` makes the frames a client
(masked) or a server (unmasked) sends; :func:`parse_close` / :func:`build_close_payload` read and write close
payloads. No extension is ever negotiated, so any reserved bit is an error.

Checks on a frame, in this order (both twins keep it, so a malformed stream fails the same way in both):

1. as soon as its first two bytes are there: reserved bits, unknown opcode, mask bit (a server never masks),
   a control frame that is fragmented or longer than 125 bytes, a continuation with no message started, a new
   data frame inside a fragmented message (all close code 1002);
2. as soon as its length is known: a 64-bit length with the top bit set (1002), a data message over
   ``max_message_size`` counting the fragments already received (1009, before the body arrives);
3. when a text message is complete: UTF-8 of the reassembled message (1007).

Arguments: ``FrameReader.feed``, ``build_frame`` and ``parse_close`` take a C-contiguous bytes-like object (bytes,
bytearray, a contiguous memoryview, array.array, ...), read as its raw bytes whatever its item size. Anything else
(a non-contiguous memoryview such as ``memoryview(b"abcdef")[::2]``, str, int, None) raises TypeError ("... must be a
contiguous bytes-like object, not ..."), in both twins; ``feed`` raises it before the reader is touched.
"""

from __future__ import annotations

import os
import sys

from ._buffers import byte_view
from .errors import MessageTooLargeError, ProtocolError

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

OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10

_KNOWN_OPCODES = frozenset((OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG))
_FIN, _RESERVED_BITS, _OPCODE_BITS, _MASK_BIT, _LENGTH_BITS = 0x80, 0x70, 0x0F, 0x80, 0x7F
_MAX_CONTROL_PAYLOAD = 125
#: ``max_message_size=None`` still stops at what one bytes object (plus a frame header) can hold.
_UNLIMITED = sys.maxsize - 16
#: Close codes a peer may put on the wire (RFC 6455 section 7.4 and the IANA registry), besides 3000-4999.
_WIRE_CLOSE_CODES = frozenset((1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014))


def _close_code_allowed(code: int) -> bool:
    return code in _WIRE_CLOSE_CODES or 3000 <= code <= 4999


class FrameReader:
    """Incremental reader of the frames a websocket server sends.

    Call :meth:`feed` with every chunk received, in order, of any size. After it raised, the reader is unusable:
    every later :meth:`feed` raises :class:`ProtocolError` again with the same close code.
    """

    __slots__ = ("_max_size", "_buffer", "_wanted", "_fragments", "_fragment_opcode", "_fragment_size", "_failed_code")

    def __init__(self, max_message_size: int | None = None) -> None:
        if max_message_size is None:
            self._max_size = _UNLIMITED
        else:
            if not isinstance(max_message_size, int) or isinstance(max_message_size, bool):
                raise TypeError(f"max_message_size must be an int or None, not {type(max_message_size).__name__}")
            if max_message_size < 0:
                raise ValueError(f"max_message_size must be >= 0, got {max_message_size}")
            self._max_size = min(max_message_size, _UNLIMITED)
        self._buffer = bytearray()  # bytes of a frame that is not complete yet (never more than one frame)
        self._wanted = 2  # bytes from the start of that frame needed before parsing can go on
        self._fragments: list[bytes] = []
        self._fragment_opcode = 0  # OP_TEXT / OP_BINARY while a fragmented message is open, else 0
        self._fragment_size = 0
        self._failed_code = 0

    def feed(self, data: bytes | bytearray | memoryview) -> list[tuple[int, bytes]]:
        """Parse the next chunk; return the messages it completed, in order, as ``(opcode, payload)``.

        Data messages come reassembled (``OP_TEXT`` payloads UTF-8 validated, still bytes); ``OP_PING``,
        ``OP_PONG`` and ``OP_CLOSE`` frames come as they arrive (read a close payload with :func:`parse_close`).
        Raises :class:`ProtocolError` (``.close_code`` 1002 or 1007) or :class:`MessageTooLargeError` (1009); the
        messages completed earlier in this call are on the exception as ``.messages``. TypeError when ``data`` is
        not a contiguous bytes-like object (the reader is left as it was).
        """
        if self._failed_code:
            error = ProtocolError("the frame reader is unusable after an earlier protocol error", self._failed_code)
            error.messages = []  # type: ignore[attr-defined]
            raise error
        if type(data) is not bytes:
            data = byte_view(data, "data")
        buffer = self._buffer
        if buffer:
            buffer += data
            if len(buffer) < self._wanted:
                return []
            chunk = bytes(buffer)
            buffer.clear()
        else:
            chunk = data if type(data) is bytes else bytes(data)
        messages: list[tuple[int, bytes]] = []
        try:
            consumed = self._parse(chunk, messages)
        except ProtocolError as error:
            self._failed_code = error.close_code
            self._fragments = []
            error.messages = messages  # type: ignore[attr-defined]
            raise
        if consumed < len(chunk):
            buffer += chunk[consumed:]
        return messages

    def _parse(self, chunk: bytes, messages: list[tuple[int, bytes]]) -> int:
        """Parse whole frames from ``chunk``; return how many bytes they took and set ``_wanted`` for the rest."""
        pos, end = 0, len(chunk)
        while True:
            available = end - pos
            if available < 2:
                self._wanted = 2
                return pos
            first, second = chunk[pos], chunk[pos + 1]
            opcode, fin = first & _OPCODE_BITS, first & _FIN
            self._check_header(first, second)
            length, header_size = second & _LENGTH_BITS, 2
            if length == 126:
                header_size = 4
                if available < header_size:
                    self._wanted = header_size
                    return pos
                length = int.from_bytes(chunk[pos + 2 : pos + 4], "big")
            elif length == 127:
                header_size = 10
                if available < header_size:
                    self._wanted = header_size
                    return pos
                length = int.from_bytes(chunk[pos + 2 : pos + 10], "big")
                if length >> 63:
                    raise ProtocolError("64-bit frame length with the most significant bit set")
            if opcode < OP_CLOSE:
                message_size = self._fragment_size + length if opcode == OP_CONTINUATION else length
                if message_size > self._max_size:
                    raise MessageTooLargeError(
                        f"message of at least {message_size} bytes is over max_message_size={self._max_size}"
                    )
            if available < header_size + length:
                self._wanted = header_size + length
                return pos
            payload = chunk[pos + header_size : pos + header_size + length]
            pos += header_size + length
            if opcode >= OP_CLOSE:
                messages.append((opcode, payload))
            elif opcode != OP_CONTINUATION:
                if fin:
                    if opcode == OP_TEXT:
                        _check_utf8(payload)
                    messages.append((opcode, payload))
                else:
                    self._fragment_opcode, self._fragments, self._fragment_size = opcode, [payload], length
            else:
                self._fragments.append(payload)
                self._fragment_size += length
                if fin:
                    message = b"".join(self._fragments)
                    opcode = self._fragment_opcode
                    self._fragment_opcode, self._fragments, self._fragment_size = 0, [], 0
                    if opcode == OP_TEXT:
                        _check_utf8(message)
                    messages.append((opcode, message))

    def _check_header(self, first: int, second: int) -> None:
        """Raise ProtocolError(1002) for what the first two bytes of a frame already show to be wrong."""
        opcode = first & _OPCODE_BITS
        if first & _RESERVED_BITS:
            raise ProtocolError(f"reserved bits set in a frame header (0x{first & _RESERVED_BITS:02x}); no extension was negotiated")
        if opcode not in _KNOWN_OPCODES:
            raise ProtocolError(f"unknown opcode {opcode}")
        if second & _MASK_BIT:
            raise ProtocolError("masked frame from the server")
        if opcode >= OP_CLOSE:
            if not first & _FIN:
                raise ProtocolError(f"fragmented control frame (opcode {opcode})")
            if second & _LENGTH_BITS > _MAX_CONTROL_PAYLOAD:
                raise ProtocolError(f"control frame (opcode {opcode}) over {_MAX_CONTROL_PAYLOAD} bytes")
        elif opcode == OP_CONTINUATION:
            if not self._fragment_opcode:
                raise ProtocolError("continuation frame without a fragmented message to continue")
        elif self._fragment_opcode:
            raise ProtocolError(f"new data frame (opcode {opcode}) inside a fragmented message")


def _check_utf8(payload: bytes) -> None:
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"invalid UTF-8 in a text message at byte {exc.start}", 1007) from None


def parse_close(payload: bytes | bytearray | memoryview) -> tuple[int, str]:
    """Read a close frame's payload as ``(code, reason)``; an empty payload is ``(1005, "")``.

    Raises ProtocolError(1002) for a 1-byte payload or a code that may not be sent on the wire, ProtocolError(1007)
    for a reason that is not UTF-8, TypeError when ``payload`` is not a contiguous bytes-like object.
    """
    if type(payload) is not bytes:
        payload = byte_view(payload, "payload")
    size = len(payload)
    if size == 0:
        return 1005, ""
    if size == 1:
        raise ProtocolError("close frame payload of 1 byte (a code needs 2)")
    code = int.from_bytes(payload[:2], "big")
    if not _close_code_allowed(code):
        raise ProtocolError(f"close code {code} is not allowed on the wire")
    try:
        reason = bytes(payload[2:]).decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("invalid UTF-8 in a close reason", 1007) from None
    return code, reason


def build_close_payload(code: int, reason: str = "") -> bytes:
    """The payload of a close frame: 2-byte code and UTF-8 reason.

    Raises ValueError for a code that may not be sent (only 1000-1003, 1007-1014 and 3000-4999 may) or a reason
    over 123 bytes in UTF-8.
    """
    if not _close_code_allowed(code):
        raise ValueError(f"close code {code} may not be sent (use 1000-1003, 1007-1014 or 3000-4999)")
    encoded = reason.encode("utf-8")
    if len(encoded) > _MAX_CONTROL_PAYLOAD - 2:
        raise ValueError(f"close reason of {len(encoded)} bytes is over {_MAX_CONTROL_PAYLOAD - 2} bytes in UTF-8")
    return code.to_bytes(2, "big") + encoded


def build_frame(opcode: int, payload: bytes | bytearray | memoryview, *, mask: bool = True) -> bytes:
    """One frame with FIN set: ``mask=True`` (a client frame) masks it with a fresh ``os.urandom(4)`` key.

    Raises ValueError for an unknown opcode or a control frame payload over 125 bytes, TypeError when ``payload`` is
    not a contiguous bytes-like object.
    """
    if opcode not in _KNOWN_OPCODES:
        raise ValueError(f"unknown opcode {opcode}")
    if type(payload) is not bytes:
        payload = bytes(byte_view(payload, "payload"))
    length = len(payload)
    if opcode >= OP_CLOSE and length > _MAX_CONTROL_PAYLOAD:
        raise ValueError(f"control frame payload of {length} bytes is over {_MAX_CONTROL_PAYLOAD}")
    mask_bit = _MASK_BIT if mask else 0
    if length < 126:
        header = bytes((_FIN | opcode, mask_bit | length))
    elif length < 1 << 16:
        header = bytes((_FIN | opcode, mask_bit | 126)) + length.to_bytes(2, "big")
    else:
        header = bytes((_FIN | opcode, mask_bit | 127)) + length.to_bytes(8, "big")
    if not mask:
        return header + payload
    key = os.urandom(4)
    return header + key + _apply_mask(payload, key)


def _apply_mask(payload: bytes, key: bytes) -> bytes:
    """XOR ``payload`` with the 4-byte ``key`` repeated (one big-integer XOR instead of a byte loop)."""
    length = len(payload)
    if not length:
        return b""
    repeated_key = (key * (length // 4 + 1))[:length]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(repeated_key, "little")).to_bytes(length, "little")
