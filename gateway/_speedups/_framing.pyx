# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Websocket framing (RFC 6455), compiled twin of ``gateway/_framing_py.py`` (same names, behaviour and errors).

The reader parses frames straight from the fed chunk: a single-frame message's payload is one bytes object copied
from the chunk, wrapped in its ``(opcode, payload)`` tuple, and nothing else is allocated per frame. Only the bytes
of a frame that is not complete yet are kept, in a C buffer that grows by doubling; it is filled up to the end of
that frame and parsed on its own, then parsing goes on in the chunk. Text is checked by a C UTF-8 validator (an
8-bytes-at-a-time ASCII fast path, then the well-formed sequences of Unicode table 3-7). The writer masks 8 bytes
at a time.
"""

from cpython.buffer cimport PyBuffer_Release
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.exc cimport PyErr_NoMemory
from cpython.mem cimport PyMem_Free, PyMem_Realloc
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy

from gateway._speedups._buffers cimport get_buffer

import os
import sys

from gateway.errors import MessageTooLargeError, ProtocolError

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

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>

    /* 1 when s[0:n] is well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF), else 0. */
    static int gw_utf8_valid(const unsigned char *s, Py_ssize_t n) {
        Py_ssize_t i = 0;
        while (i < n) {
            if (i + 8 <= n) {
                uint64_t block;
                memcpy(&block, s + i, 8);
                if (!(block & 0x8080808080808080ULL)) { i += 8; continue; }
            }
            unsigned char c = s[i];
            if (c < 0x80) { i += 1; continue; }
            if (c < 0xC2) return 0;
            if (c < 0xE0) {
                if (i + 1 >= n || (s[i + 1] & 0xC0) != 0x80) return 0;
                i += 2; continue;
            }
            if (c < 0xF0) {
                if (i + 2 >= n) return 0;
                unsigned char c1 = s[i + 1];
                if ((c1 & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80) return 0;
                if (c == 0xE0 && c1 < 0xA0) return 0;  /* overlong */
                if (c == 0xED && c1 > 0x9F) return 0;  /* surrogate */
                i += 3; continue;
            }
            if (c < 0xF5) {
                if (i + 3 >= n) return 0;
                unsigned char c1 = s[i + 1];
                if ((c1 & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80 || (s[i + 3] & 0xC0) != 0x80) return 0;
                if (c == 0xF0 && c1 < 0x90) return 0;  /* overlong */
                if (c == 0xF4 && c1 > 0x8F) return 0;  /* above U+10FFFF */
                i += 4; continue;
            }
            return 0;
        }
        return 1;
    }

    /* Index of the first byte of the first invalid sequence (only called once the message is known invalid). */
    static Py_ssize_t gw_utf8_error_offset(const unsigned char *s, Py_ssize_t n) {
        Py_ssize_t i = 0;
        while (i < n) {
            unsigned char c = s[i];
            Py_ssize_t len = c < 0x80 ? 1 : c < 0xC2 ? 0 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : c < 0xF5 ? 4 : 0;
            if (len == 0 || i + len > n || !gw_utf8_valid(s + i, len)) return i;
            i += len;
        }
        return n;
    }

    /* XOR dst[0:n] = src[0:n] ^ key repeated (key: the 4 mask bytes as they appear on the wire). */
    static void gw_mask(unsigned char *dst, const unsigned char *src, Py_ssize_t n, const unsigned char *key) {
        uint32_t key32;
        uint64_t key64;
        Py_ssize_t i = 0;
        memcpy(&key32, key, 4);
        key64 = ((uint64_t)key32 << 32) | key32;
        for (; i + 8 <= n; i += 8) {
            uint64_t block;
            memcpy(&block, src + i, 8);
            block ^= key64;
            memcpy(dst + i, &block, 8);
        }
        for (; i < n; i++) dst[i] = src[i] ^ key[i & 3];
    }
    """
    int gw_utf8_valid(const unsigned char *s, Py_ssize_t n) nogil
    Py_ssize_t gw_utf8_error_offset(const unsigned char *s, Py_ssize_t n) nogil
    void gw_mask(unsigned char *dst, const unsigned char *src, Py_ssize_t n, const unsigned char *key) nogil

cdef enum:
    _OP_CONTINUATION = 0
    _OP_TEXT = 1
    _OP_BINARY = 2
    _OP_CLOSE = 8
    _OP_PONG = 10
    _MAX_CONTROL_PAYLOAD = 125

cdef Py_ssize_t _UNLIMITED = sys.maxsize - 16
cdef frozenset _KNOWN_OPCODES = frozenset((0, 1, 2, 8, 9, 10))
cdef frozenset _WIRE_CLOSE_CODES = frozenset((1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014))


cdef inline bint _is_known_opcode(int opcode) noexcept:
    return (0 <= opcode <= _OP_BINARY) or (_OP_CLOSE <= opcode <= _OP_PONG)


cdef inline bint _close_code_allowed(int code) noexcept:
    return (1000 <= code <= 1003) or (1007 <= code <= 1014) or (3000 <= code <= 4999)


cdef object _byte_view(object data, str name):
    """``data`` (not bytes) as a 1-D memoryview of bytes; TypeError as :func:`get_buffer` (for ``parse_close``)."""
    cdef Py_buffer view
    get_buffer(data, &view, name)
    PyBuffer_Release(&view)
    view_object = memoryview(data)
    if view_object.format != "B" or view_object.ndim != 1:
        view_object = view_object.cast("B")
    return view_object


cdef int _check_utf8(const unsigned char *data, Py_ssize_t size) except -1:
    if not gw_utf8_valid(data, size):
        raise ProtocolError(f"invalid UTF-8 in a text message at byte {gw_utf8_error_offset(data, size)}", 1007)
    return 0


cdef class FrameReader:
    """Incremental reader of the frames a websocket server sends.

    Call :meth:`feed` with every chunk received, in order, of any size. After it raised, the reader is unusable:
    every later :meth:`feed` raises :class:`ProtocolError` again with the same close code.
    """

    cdef Py_ssize_t _max_size
    cdef unsigned char *_buffer      # bytes of a frame that is not complete yet (never more than one frame)
    cdef Py_ssize_t _buffer_size
    cdef Py_ssize_t _buffer_capacity
    cdef Py_ssize_t _wanted          # bytes from the start of that frame needed before parsing can go on
    cdef list _fragments
    cdef int _fragment_opcode        # OP_TEXT / OP_BINARY while a fragmented message is open, else 0
    cdef Py_ssize_t _fragment_size
    cdef int _failed_code

    def __cinit__(self):
        self._buffer = NULL
        self._buffer_size = 0
        self._buffer_capacity = 0
        self._wanted = 2
        self._fragments = []
        self._fragment_opcode = 0
        self._fragment_size = 0
        self._failed_code = 0

    def __init__(self, max_message_size=None):
        if max_message_size is None:
            self._max_size = _UNLIMITED
        else:
            if not isinstance(max_message_size, int) or isinstance(max_message_size, bool):
                raise TypeError(f"max_message_size must be an int or None, not {type(max_message_size).__name__}")
            if max_message_size < 0:
                raise ValueError(f"max_message_size must be >= 0, got {max_message_size}")
            self._max_size = min(max_message_size, _UNLIMITED)

    def __dealloc__(self):
        PyMem_Free(self._buffer)

    cdef int _buffer_append(self, const unsigned char *data, Py_ssize_t size) except -1:
        cdef Py_ssize_t needed = self._buffer_size + size
        cdef Py_ssize_t capacity
        cdef unsigned char *grown
        if needed > self._buffer_capacity:
            capacity = self._buffer_capacity * 2 if self._buffer_capacity else 256
            if capacity < needed:
                capacity = needed
            grown = <unsigned char *>PyMem_Realloc(self._buffer, capacity)
            if grown == NULL:
                PyErr_NoMemory()
                return -1
            self._buffer = grown
            self._buffer_capacity = capacity
        memcpy(self._buffer + self._buffer_size, data, size)
        self._buffer_size = needed
        return 0

    def feed(self, data):
        """Parse the next chunk; return the messages it completed, in order, as ``(opcode, payload)``.

        Data messages come reassembled (``OP_TEXT`` payloads UTF-8 validated, still bytes); ``OP_PING``,
        ``OP_PONG`` and ``OP_CLOSE`` frames come as they arrive (read a close payload with :func:`parse_close`).
        Raises :class:`ProtocolError` (``.close_code`` 1002 or 1007) or :class:`MessageTooLargeError` (1009); the
        messages completed earlier in this call are on the exception as ``.messages``. TypeError when ``data`` is
        not a contiguous bytes-like object (the reader is left as it was).
        """
        cdef Py_buffer view
        cdef const unsigned char *chunk
        cdef Py_ssize_t size, pos = 0, take, consumed
        cdef bint release_view = False
        cdef list messages = []
        if self._failed_code:
            error = ProtocolError("the frame reader is unusable after an earlier protocol error", self._failed_code)
            error.messages = []
            raise error
        if type(data) is bytes:
            chunk = <const unsigned char *>PyBytes_AS_STRING(data)
            size = PyBytes_GET_SIZE(data)
        else:
            get_buffer(data, &view, "data")
            release_view = True
            chunk = <const unsigned char *>view.buf
            size = view.len
        try:
            # A pending partial frame: fill the buffer up to what that frame needs, then parse it on its own.
            while self._buffer_size and pos < size:
                take = self._wanted - self._buffer_size
                if take > size - pos:
                    take = size - pos
                self._buffer_append(chunk + pos, take)
                pos += take
                if self._buffer_size < self._wanted:
                    return messages
                consumed = self._parse(self._buffer, self._buffer_size, messages)
                if consumed:  # the buffered frame is complete (the buffer held exactly that frame)
                    self._buffer_size = 0
            if not self._buffer_size and pos < size:
                pos += self._parse(chunk + pos, size - pos, messages)
                if pos < size:
                    self._buffer_append(chunk + pos, size - pos)
        except ProtocolError as error:
            self._failed_code = error.close_code
            self._fragments = []
            self._buffer_size = 0
            error.messages = messages
            raise
        finally:
            if release_view:
                PyBuffer_Release(&view)
        if self._buffer_capacity > 65536 and not self._buffer_size:
            PyMem_Free(self._buffer)  # a large frame went through: do not keep its memory
            self._buffer = NULL
            self._buffer_capacity = 0
        return messages

    cdef Py_ssize_t _parse(self, const unsigned char *chunk, Py_ssize_t end, list messages) except -1:
        """Parse whole frames from ``chunk[0:end]``; return how many bytes they took and set ``_wanted`` for the rest."""
        cdef Py_ssize_t pos = 0, available, header_size
        cdef uint64_t length, message_size
        cdef unsigned char first, second
        cdef int opcode, i
        cdef bint fin
        cdef bytes payload, message
        while True:
            available = end - pos
            if available < 2:
                self._wanted = 2
                return pos
            first = chunk[pos]
            second = chunk[pos + 1]
            opcode = first & 0x0F
            fin = first & 0x80
            if (first & 0x70) or not _is_known_opcode(opcode) or (second & 0x80) or opcode == _OP_CONTINUATION \
                    or (opcode >= _OP_CLOSE and (not fin or (second & 0x7F) > _MAX_CONTROL_PAYLOAD)) \
                    or (opcode < _OP_CLOSE and self._fragment_opcode):
                self._check_header(first, second)
            length = second & 0x7F
            header_size = 2
            if length == 126:
                header_size = 4
                if available < header_size:
                    self._wanted = header_size
                    return pos
                length = (<uint64_t>chunk[pos + 2] << 8) | chunk[pos + 3]
            elif length == 127:
                header_size = 10
                if available < header_size:
                    self._wanted = header_size
                    return pos
                length = 0
                for i in range(2, 10):
                    length = (length << 8) | chunk[pos + i]
                if length >> 63:
                    raise ProtocolError("64-bit frame length with the most significant bit set")
            if opcode < _OP_CLOSE:
                if opcode == _OP_CONTINUATION:
                    message_size = <uint64_t>self._fragment_size + length
                else:
                    message_size = length
                if message_size > <uint64_t>self._max_size:
                    raise MessageTooLargeError(
                        f"message of at least {message_size} bytes is over max_message_size={self._max_size}"
                    )
            # length <= _max_size here for data frames, <= 125 for control frames: no overflow below.
            if <uint64_t>available < <uint64_t>header_size + length:
                self._wanted = header_size + <Py_ssize_t>length
                return pos
            pos += header_size
            if opcode >= _OP_CLOSE:
                messages.append((opcode, PyBytes_FromStringAndSize(<const char *>chunk + pos, <Py_ssize_t>length)))
            elif opcode != _OP_CONTINUATION:
                if fin:
                    if opcode == _OP_TEXT:
                        _check_utf8(chunk + pos, <Py_ssize_t>length)
                    messages.append((opcode, PyBytes_FromStringAndSize(<const char *>chunk + pos, <Py_ssize_t>length)))
                else:
                    self._fragment_opcode = opcode
                    self._fragments = [PyBytes_FromStringAndSize(<const char *>chunk + pos, <Py_ssize_t>length)]
                    self._fragment_size = <Py_ssize_t>length
            else:
                self._fragments.append(PyBytes_FromStringAndSize(<const char *>chunk + pos, <Py_ssize_t>length))
                self._fragment_size += <Py_ssize_t>length
                if fin:
                    message = b"".join(self._fragments)
                    opcode = self._fragment_opcode
                    self._fragment_opcode = 0
                    self._fragments = []
                    self._fragment_size = 0
                    if opcode == _OP_TEXT:
                        _check_utf8(<const unsigned char *>PyBytes_AS_STRING(message), PyBytes_GET_SIZE(message))
                    messages.append((opcode, message))
            pos += <Py_ssize_t>length

    cdef int _check_header(self, unsigned char first, unsigned char second) except -1:
        """Raise ProtocolError(1002) for what the first two bytes of a frame already show to be wrong."""
        cdef int opcode = first & 0x0F
        if first & 0x70:
            raise ProtocolError(f"reserved bits set in a frame header (0x{first & 0x70:02x}); no extension was negotiated")
        if not _is_known_opcode(opcode):
            raise ProtocolError(f"unknown opcode {opcode}")
        if second & 0x80:
            raise ProtocolError("masked frame from the server")
        if opcode >= _OP_CLOSE:
            if not first & 0x80:
                raise ProtocolError(f"fragmented control frame (opcode {opcode})")
            if (second & 0x7F) > _MAX_CONTROL_PAYLOAD:
                raise ProtocolError(f"control frame (opcode {opcode}) over {_MAX_CONTROL_PAYLOAD} bytes")
        elif opcode == _OP_CONTINUATION:
            if not self._fragment_opcode:
                raise ProtocolError("continuation frame without a fragmented message to continue")
        elif self._fragment_opcode:
            raise ProtocolError(f"new data frame (opcode {opcode}) inside a fragmented message")
        return 0


def parse_close(payload):
    """Read a close frame's payload as ``(code, reason)``; an empty payload is ``(1005, "")``.

    Raises ProtocolError(1002) for a 1-byte payload or a code that may not be sent on the wire, ProtocolError(1007)
    for a reason that is not UTF-8, TypeError when ``payload`` is not a contiguous bytes-like object.
    """
    if type(payload) is not bytes:
        payload = _byte_view(payload, "payload")
    cdef Py_ssize_t size = len(payload)
    if size == 0:
        return 1005, ""
    if size == 1:
        raise ProtocolError("close frame payload of 1 byte (a code needs 2)")
    cdef int code = int.from_bytes(payload[:2], "big")
    if not _close_code_allowed(code):
        raise ProtocolError(f"close code {code} is not allowed on the wire")
    try:
        reason = bytes(payload[2:]).decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("invalid UTF-8 in a close reason", 1007) from None
    return code, reason


def build_close_payload(code, reason=""):
    """The payload of a close frame: 2-byte code and UTF-8 reason.

    Raises ValueError for a code that may not be sent (only 1000-1003, 1007-1014 and 3000-4999 may) or a reason
    over 123 bytes in UTF-8.
    """
    if not (code in _WIRE_CLOSE_CODES or 3000 <= code <= 4999):
        raise ValueError(f"close code {code} may not be sent (use 1000-1003, 1007-1014 or 3000-4999)")
    encoded = reason.encode("utf-8")
    if len(encoded) > _MAX_CONTROL_PAYLOAD - 2:
        raise ValueError(f"close reason of {len(encoded)} bytes is over {_MAX_CONTROL_PAYLOAD - 2} bytes in UTF-8")
    return code.to_bytes(2, "big") + encoded


def build_frame(opcode, payload, *, mask=True):
    """One frame with FIN set: ``mask=True`` (a client frame) masks it with a fresh ``os.urandom(4)`` key.

    Raises ValueError for an unknown opcode or a control frame payload over 125 bytes, TypeError when ``payload`` is
    not a contiguous bytes-like object.
    """
    cdef Py_buffer view
    cdef Py_ssize_t length, header_size, i
    cdef unsigned char *out
    cdef bytes frame, key
    cdef const unsigned char *source
    if opcode not in _KNOWN_OPCODES:
        raise ValueError(f"unknown opcode {opcode}")
    cdef int op = opcode
    get_buffer(payload, &view, "payload")
    try:
        length = view.len
        source = <const unsigned char *>view.buf
        if op >= _OP_CLOSE and length > _MAX_CONTROL_PAYLOAD:
            raise ValueError(f"control frame payload of {length} bytes is over {_MAX_CONTROL_PAYLOAD}")
        header_size = 2 if length < 126 else (4 if length < 65536 else 10)
        if mask:
            key = os.urandom(4)
            header_size += 4
        frame = PyBytes_FromStringAndSize(NULL, header_size + length)
        out = <unsigned char *>PyBytes_AS_STRING(frame)
        out[0] = 0x80 | op
        if length < 126:
            out[1] = <unsigned char>length
        elif length < 65536:
            out[1] = 126
            out[2] = <unsigned char>(length >> 8)
            out[3] = <unsigned char>length
        else:
            out[1] = 127
            for i in range(8):
                out[2 + i] = <unsigned char>((<uint64_t>length) >> (8 * (7 - i)))
        if mask:
            out[1] |= 0x80
            memcpy(out + header_size - 4, PyBytes_AS_STRING(key), 4)
            gw_mask(out + header_size, source, length, out + header_size - 4)
        else:
            memcpy(out + header_size, source, length)
        return frame
    finally:
        PyBuffer_Release(&view)
