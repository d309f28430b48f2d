# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Transport-compression inflation, compiled twin of ``gateway/_inflate_py.py`` (same names, behaviour and errors).

Both inflaters call the C libraries directly: zlib's ``inflate(Z_SYNC_FLUSH)`` and zstd's ``ZSTD_decompressStream``
write into one scratch output buffer per thread, shared by every inflater (inflation is synchronous and holds the
GIL from the first byte to the copy-out, so no two messages use it at once): grown by doubling, never used past
``max_size + 1``, shrunk back to 64 KiB after a larger message; allocated with PyMem_Raw* so tracemalloc sees it;
kept for the thread's life. Each payload is copied once into a bytes object of the exact size. An idle inflater
holds only its library context (zlib: state and 32 KiB window; zstd: a DCtx whose buffers libzstd sizes from the
window the frame header declares). A complete zlib message is inflated straight from the websocket message; only
incomplete ones are copied into a pending buffer, freed once the message completes.
The zstd truncation check walks the frame/block structure exactly as the pure twin does.
What a message may contain, what ``feed`` returns and the contract on corrupt input and ``max_size`` are the pure
twin's (see its docstring): this twin links the system libzstd and the zlib setup.py chose (``ZLIB_BACKEND``: the
system zlib, or zlib-ng where it is found), so on corrupt input it agrees exactly with the pure twin on the backend
of the same name (the standard library's zlib loads the same libz), and within the contract otherwise.
"""

from cpython.buffer cimport PyBuffer_Release
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_RawFree, PyMem_RawRealloc
from libc.string cimport memcmp, memcpy, memset

from gateway._speedups._buffers cimport get_buffer

import sys

from gateway.errors import CompressionError, InflatedTooLargeError

__all__ = [
    "DEFAULT_MAX_INFLATED_SIZE",
    "MAX_INFLATED_SIZE_LIMIT",
    "ZLIB_SUFFIX",
    "ZlibStreamInflater",
    "ZstdStreamInflater",
    "make_inflater",
]

DEFAULT_MAX_INFLATED_SIZE = 256 * 1024 * 1024
MAX_INFLATED_SIZE_LIMIT = sys.maxsize - 1
ZLIB_SUFFIX = b"\x00\x00\xff\xff"


cdef extern from "_zlib_or_ng.h" nogil:  # zlib.h, or zlib-ng's native API when setup.py defines GATEWAY_WITH_ZLIB_NG
    ctypedef struct z_stream "gw_z_stream":
        unsigned char* next_in
        unsigned int avail_in
        unsigned char* next_out
        unsigned int avail_out
        const char* msg
    int inflateInit "gw_inflateInit"(z_stream* strm)
    int inflate "gw_inflate"(z_stream* strm, int flush)
    int inflateEnd "gw_inflateEnd"(z_stream* strm)
    int inflateReset "gw_inflateReset"(z_stream* strm)
    const char* GATEWAY_ZLIB_LIBRARY
    const char* zlib_version "gw_zlib_version"()
    int Z_OK, Z_STREAM_END, Z_NEED_DICT, Z_BUF_ERROR, Z_SYNC_FLUSH, Z_MEM_ERROR


#: The zlib this module links: "zlib" (the system libz) or "zlib-ng" (setup.py's GATEWAY_ZLIB); the pure twin's
#: backend of the same name gives identical outcomes. Not in __all__: its value differs between the twins.
ZLIB_BACKEND = (<bytes>GATEWAY_ZLIB_LIBRARY).decode("ascii")
#: That library's version at run time, e.g. "1.2.13" or "2.3.3".
ZLIB_VERSION = (<bytes>zlib_version()).decode("ascii")


cdef extern from "_zstd_or_stub.h" nogil:  # zstd.h, or stubs when setup.py defines GATEWAY_WITHOUT_ZSTD
    int GATEWAY_HAVE_ZSTD
    ctypedef struct ZSTD_DCtx:
        pass
    ctypedef struct ZSTD_inBuffer:
        const void* src
        size_t size
        size_t pos
    ctypedef struct ZSTD_outBuffer:
        void* dst
        size_t size
        size_t pos
    ctypedef enum ZSTD_ResetDirective:
        ZSTD_reset_session_only
    ZSTD_DCtx* ZSTD_createDCtx()
    size_t ZSTD_freeDCtx(ZSTD_DCtx* dctx)
    size_t ZSTD_DCtx_reset(ZSTD_DCtx* dctx, ZSTD_ResetDirective reset)
    size_t ZSTD_decompressStream(ZSTD_DCtx* zds, ZSTD_outBuffer* output, ZSTD_inBuffer* input)
    unsigned ZSTD_isError(size_t code)
    const char* ZSTD_getErrorName(size_t code)


HAVE_ZSTD = GATEWAY_HAVE_ZSTD != 0  # not in __all__: False when built without libzstd (pure zstd twin used)


cdef enum:
    INITIAL_OUTPUT_SIZE = 64 * 1024
    ZLIB_CHUNK = 1 << 30  # avail_in / avail_out are 32-bit


cdef Py_ssize_t _check_max_size(object max_size) except -1:
    if isinstance(max_size, bool) or not isinstance(max_size, int):
        raise TypeError(f"max_size must be an int, not {type(max_size).__name__}")
    if not 1 <= max_size <= MAX_INFLATED_SIZE_LIMIT:
        raise ValueError(f"max_size must be between 1 and {MAX_INFLATED_SIZE_LIMIT} (bytes), got {max_size}")
    return max_size


cdef object _poisoned(str reason):
    return CompressionError(f"the inflater is unusable after an earlier error ({reason}); reset() it for a new connection")


cdef extern from *:
    """
    #if defined(_MSC_VER)
    #  define GATEWAY_THREAD_LOCAL __declspec(thread)
    #else
    #  define GATEWAY_THREAD_LOCAL __thread
    #endif
    typedef struct { unsigned char* data; size_t capacity; } gateway_output_buffer;
    static GATEWAY_THREAD_LOCAL gateway_output_buffer gateway_scratch_output = {NULL, 0};
    #define gateway_thread_scratch() (&gateway_scratch_output)
    """
    ctypedef struct OutputBuffer "gateway_output_buffer":
        unsigned char* data
        size_t capacity
    OutputBuffer* _thread_scratch "gateway_thread_scratch"() noexcept nogil


cdef int _grow(OutputBuffer* out, size_t limit) except -1:
    """Double the buffer (at least INITIAL_OUTPUT_SIZE), never past ``limit`` bytes."""
    cdef size_t capacity = out.capacity * 2 if out.capacity else INITIAL_OUTPUT_SIZE
    if capacity > limit:
        capacity = limit
    cdef unsigned char* data = <unsigned char*>PyMem_RawRealloc(out.data, capacity)
    if data == NULL:
        raise MemoryError()
    out.data = data
    out.capacity = capacity
    return 0


cdef inline size_t _room(OutputBuffer* out, size_t limit) noexcept:
    """The part of the buffer one message may fill: all of it, but never past ``limit`` (ceiling + 1) bytes."""
    return out.capacity if out.capacity < limit else limit


cdef inline void _release(OutputBuffer* out) noexcept:
    PyMem_RawFree(out.data)
    out.data = NULL
    out.capacity = 0


cdef inline void _shrink(OutputBuffer* out) noexcept:
    """Give back what one large message grew, so a thread's scratch buffer is INITIAL_OUTPUT_SIZE at most when idle.

    Keeping a grown buffer cost 1-4 MiB per shard after a startup GUILD_CREATE (measured in bench/live.py);
    growing it again by doubling is a few reallocs, small next to inflating a message that large.
    """
    cdef unsigned char* data
    if out.capacity > INITIAL_OUTPUT_SIZE:
        data = <unsigned char*>PyMem_RawRealloc(out.data, INITIAL_OUTPUT_SIZE)
        if data == NULL:  # keep the old block: it is still valid
            return
        out.data = data
        out.capacity = INITIAL_OUTPUT_SIZE


cdef inline bint _borrow(object message, Py_buffer* view, const unsigned char** data, Py_ssize_t* size) except -1:
    """Point ``data``/``size`` at the bytes of ``message`` (no copy); True when ``view`` must be released after."""
    if PyBytes_CheckExact(message):
        data[0] = <const unsigned char*>PyBytes_AS_STRING(message)
        size[0] = PyBytes_GET_SIZE(message)
        return False
    get_buffer(message, view, "message")
    data[0] = <const unsigned char*>view.buf
    size[0] = view.len
    return True


cdef class ZlibStreamInflater:
    """Inflates a ``zlib-stream`` connection: feed every websocket binary message, in order.

    ``feed`` returns the decompressed gateway payload once the buffered data ends with ``00 00 FF FF``, else None.
    Raises CompressionError (corrupt data) or InflatedTooLargeError (output, or compressed data buffered without a
    marker, over ``max_size``). After any error every ``feed`` raises until ``reset()``. A message that is not a
    contiguous bytes-like object raises TypeError (and does not poison the inflater).
    """

    cdef z_stream _stream
    cdef bint _stream_ready
    cdef bint _ended
    cdef Py_ssize_t _max_size
    cdef OutputBuffer _pending
    cdef size_t _pending_size
    cdef object _error

    def __cinit__(self) -> None:
        memset(&self._stream, 0, sizeof(z_stream))
        self._pending.data = NULL
        self._pending.capacity = 0
        if inflateInit(&self._stream) != Z_OK:
            raise MemoryError("zlib-stream: inflateInit failed")
        self._stream_ready = True

    def __init__(self, max_size=DEFAULT_MAX_INFLATED_SIZE) -> None:
        self._max_size = _check_max_size(max_size)
        self.reset()

    def __dealloc__(self) -> None:
        if self._stream_ready:
            inflateEnd(&self._stream)
        PyMem_RawFree(self._pending.data)

    @property
    def max_size(self) -> int:
        return self._max_size

    @property
    def backend(self) -> str:
        """The zlib this twin was built with, ``ZLIB_BACKEND``: "zlib" (the system libz, the library the pure twin's
        default backend loads too) or "zlib-ng"."""
        return ZLIB_BACKEND

    def reset(self) -> None:
        """Start over for a new connection: fresh inflate context, empty buffer, error cleared."""
        if inflateReset(&self._stream) != Z_OK:
            inflateEnd(&self._stream)
            memset(&self._stream, 0, sizeof(z_stream))
            self._stream_ready = False
            if inflateInit(&self._stream) != Z_OK:
                raise MemoryError("zlib-stream: inflateInit failed")
            self._stream_ready = True
        self._pending_size = 0
        _release(&self._pending)
        self._ended = False
        self._error = None

    cdef object _fail(self, error):
        self._error = str(error)
        self._pending_size = 0
        return error

    def feed(self, message) -> object:
        """Add one websocket message; return the gateway payload it completes, or None if more must come."""
        if self._error is not None:
            raise _poisoned(self._error)
        cdef Py_buffer view
        cdef const unsigned char* data
        cdef Py_ssize_t size
        cdef bint release = _borrow(message, &view, &data, &size)
        try:
            if self._pending_size == 0 and size >= 4 and memcmp(data + size - 4, b"\x00\x00\xff\xff", 4) == 0:
                return self._inflate(data, <size_t>size)  # fast path: one complete message, no copy
            self._append(data, <size_t>size)
        finally:
            if release:
                PyBuffer_Release(&view)
        if self._pending_size < 4 or memcmp(self._pending.data + self._pending_size - 4, b"\x00\x00\xff\xff", 4) != 0:
            if self._pending_size > <size_t>self._max_size:
                raise self._fail(
                    InflatedTooLargeError(
                        f"zlib-stream: {self._pending_size} compressed bytes buffered without a 00 00 FF FF marker, "
                        f"over the {self._max_size}-byte ceiling"
                    )
                )
            return None
        try:
            return self._inflate(self._pending.data, self._pending_size)
        finally:
            self._pending_size = 0
            _release(&self._pending)  # split messages are rare: an idle shard holds no pending buffer

    cdef int _append(self, const unsigned char* data, size_t size) except -1:
        cdef size_t needed = self._pending_size + size
        cdef size_t capacity
        cdef unsigned char* grown
        if needed > self._pending.capacity:
            capacity = self._pending.capacity * 2
            if capacity < needed:
                capacity = needed
            grown = <unsigned char*>PyMem_RawRealloc(self._pending.data, capacity)
            if grown == NULL:
                raise MemoryError()
            self._pending.data = grown
            self._pending.capacity = capacity
        if size:
            memcpy(self._pending.data + self._pending_size, data, size)
        self._pending_size = needed
        return 0

    cdef object _inflate(self, const unsigned char* data, size_t size):
        if self._ended:
            raise self._fail(CompressionError("zlib-stream: data after the end of the zlib stream"))
        cdef z_stream* stream = &self._stream
        cdef OutputBuffer* out = _thread_scratch()
        cdef size_t limit = <size_t>self._max_size + 1
        cdef size_t produced = 0
        cdef size_t remaining = size
        cdef size_t capacity = _room(out, limit)
        cdef size_t room
        cdef int status
        stream.avail_in = 0
        while True:
            if stream.avail_in == 0 and remaining:
                stream.next_in = <unsigned char*>data
                stream.avail_in = <unsigned int>(remaining if remaining < ZLIB_CHUNK else ZLIB_CHUNK)
                data += stream.avail_in
                remaining -= stream.avail_in
            if produced == capacity:
                if produced >= limit:
                    raise self._fail(
                        InflatedTooLargeError(
                            f"zlib-stream: a decompressed message is over the {self._max_size}-byte ceiling"
                        )
                    )
                _grow(out, limit)
                capacity = _room(out, limit)
            room = capacity - produced
            stream.next_out = out.data + produced
            stream.avail_out = <unsigned int>(room if room < ZLIB_CHUNK else ZLIB_CHUNK)
            status = inflate(stream, Z_SYNC_FLUSH)
            produced = <size_t>(stream.next_out - out.data)
            if status == Z_STREAM_END:
                self._ended = True
                if produced >= limit:
                    raise self._fail(
                        InflatedTooLargeError(
                            f"zlib-stream: a decompressed message is over the {self._max_size}-byte ceiling"
                        )
                    )
                if stream.avail_in or remaining:
                    raise self._fail(CompressionError("zlib-stream: data after the end of the zlib stream"))
                break
            if status != Z_OK and status != Z_BUF_ERROR:
                raise self._fail(CompressionError(self._error_text(status)))
            if produced == capacity or stream.avail_out == 0:
                continue  # output full: grow (or hit the ceiling) and go on
            if stream.avail_in == 0 and remaining == 0:
                break
            if status == Z_BUF_ERROR:  # no progress with input and room left: cannot happen with a sane zlib
                raise self._fail(CompressionError("zlib-stream: corrupt data (inflate made no progress)"))
        result = PyBytes_FromStringAndSize(<char*>out.data, <Py_ssize_t>produced)
        _shrink(out)
        return result

    cdef str _error_text(self, int status):
        cdef str detail
        if status == Z_NEED_DICT:
            detail = "a preset dictionary is needed"
        elif self._stream.msg != NULL:
            detail = (<bytes>self._stream.msg).decode("ascii", "replace")
        elif status == Z_MEM_ERROR:
            detail = "out of memory"
        else:
            detail = f"zlib error {status}"
        return f"zlib-stream: corrupt data (Error {status} while decompressing data: {detail})"


# zstd frame walk (RFC 8878), the same stages as the pure twin.
cdef enum:
    STAGE_MAGIC = 0  # collect 4: frame magic number (a frame boundary when nothing is collected yet)
    STAGE_FRAME_DESCRIPTOR = 1  # collect 1
    STAGE_SKIP = 2  # skip `need` bytes, then `next_stage`
    STAGE_BLOCK_HEADER = 3  # collect 3 (a block boundary when nothing is collected yet)
    STAGE_SKIPPABLE_SIZE = 4  # collect 4
    STAGE_FIRST_BLOCK_HEADER = 5  # collect 3: first block of a frame (not a boundary)

cdef size_t[6] COLLECT_SIZE = [4, 1, 0, 3, 4, 3]
cdef size_t[4] DICT_ID_SIZES = [0, 1, 2, 4]
cdef size_t[4] CONTENT_SIZE_SIZES = [0, 2, 4, 8]


cdef class ZstdStreamInflater:
    """Inflates a ``zstd-stream`` connection: feed every websocket binary message, in order.

    Every ``feed`` returns one decompressed gateway payload. A frame that ends is followed by a new one. Raises
    CompressionError for corrupt data or a message that ends inside a zstd block, header or checksum (truncated),
    InflatedTooLargeError when one message inflates past ``max_size``. After any error every ``feed`` raises until
    ``reset()``. A message that is not a contiguous bytes-like object raises TypeError (and does not poison it).
    """

    cdef ZSTD_DCtx* _context
    cdef Py_ssize_t _max_size
    cdef object _error
    cdef int _stage
    cdef int _next_stage
    cdef size_t _need
    cdef unsigned char[4] _header
    cdef size_t _header_size
    cdef bint _has_checksum

    def __cinit__(self) -> None:
        if not GATEWAY_HAVE_ZSTD:
            raise NotImplementedError("zstd-stream: this compiled inflate twin was built without libzstd")
        self._context = ZSTD_createDCtx()
        if self._context == NULL:
            raise MemoryError("zstd-stream: ZSTD_createDCtx failed")

    def __init__(self, max_size=DEFAULT_MAX_INFLATED_SIZE) -> None:
        self._max_size = _check_max_size(max_size)
        self.reset()

    def __dealloc__(self) -> None:
        if self._context != NULL:
            ZSTD_freeDCtx(self._context)

    @property
    def max_size(self) -> int:
        return self._max_size

    def reset(self) -> None:
        """Start over for a new connection: fresh decompression context, error cleared."""
        ZSTD_DCtx_reset(self._context, ZSTD_reset_session_only)
        self._error = None
        self._stage = STAGE_MAGIC
        self._next_stage = STAGE_MAGIC
        self._need = 4
        self._header_size = 0
        self._has_checksum = False

    cdef object _fail(self, error):
        self._error = str(error)
        return error

    def feed(self, message) -> bytes:
        """Decompress one websocket message (one gateway message) and return it."""
        if self._error is not None:
            raise _poisoned(self._error)
        cdef Py_buffer view
        cdef const unsigned char* data
        cdef Py_ssize_t size
        cdef bint release = _borrow(message, &view, &data, &size)
        try:
            result = self._decompress(data, <size_t>size)
            self._walk(data, <size_t>size)
        finally:
            if release:
                PyBuffer_Release(&view)
        if not (self._stage == STAGE_BLOCK_HEADER or self._stage == STAGE_MAGIC) or self._header_size:
            raise self._fail(
                CompressionError("zstd-stream: truncated message (it ends inside a zstd block, header or checksum)")
            )
        return result

    cdef object _decompress(self, const unsigned char* data, size_t size):
        cdef OutputBuffer* out = _thread_scratch()
        cdef size_t limit = <size_t>self._max_size + 1
        cdef size_t capacity = _room(out, limit)
        cdef ZSTD_inBuffer source
        cdef ZSTD_outBuffer target
        cdef size_t hint
        cdef size_t consumed_before
        cdef size_t produced_before
        if size == 0:
            # Nothing to decompress; libzstd would count the call as one without progress and fail after 16 of them.
            return b""
        source.src = data
        source.size = size
        source.pos = 0
        target.pos = 0
        while True:
            if target.pos == capacity:
                if target.pos >= limit:
                    raise self._fail(
                        InflatedTooLargeError(
                            f"zstd-stream: a decompressed message is over the {self._max_size}-byte ceiling"
                        )
                    )
                _grow(out, limit)
                capacity = _room(out, limit)
            target.dst = out.data
            target.size = capacity
            consumed_before = source.pos
            produced_before = target.pos
            hint = ZSTD_decompressStream(self._context, &target, &source)
            if ZSTD_isError(hint):
                raise self._fail(
                    CompressionError(f"zstd-stream: corrupt data ({(<bytes>ZSTD_getErrorName(hint)).decode('ascii', 'replace')})")
                )
            if target.pos == target.size:
                continue  # output full: grow (or hit the ceiling) and go on
            if source.pos == source.size:
                break
            # hint == 0: the frame ended; the context starts a new frame with the remaining input.
            if source.pos == consumed_before and target.pos == produced_before and hint != 0:
                raise self._fail(CompressionError("zstd-stream: corrupt data (decompression made no progress)"))
        result = PyBytes_FromStringAndSize(<char*>out.data, <Py_ssize_t>target.pos)
        _shrink(out)
        return result

    cdef int _walk(self, const unsigned char* data, size_t size) except -1:
        """Follow the frame/block structure over ``data`` (already accepted by zstd) to know where it ended."""
        cdef int stage = self._stage
        cdef size_t need = self._need
        cdef size_t position = 0
        cdef size_t taken
        cdef const unsigned char* unit
        cdef unsigned long long value
        cdef size_t body
        cdef unsigned int block_type
        cdef size_t i
        while position < size:
            if stage == STAGE_SKIP:
                taken = need if need < size - position else size - position
                position += taken
                need -= taken
                if need:
                    break
                stage = self._next_stage
                need = COLLECT_SIZE[stage]
                continue
            if self._header_size == 0 and size - position >= need:
                unit = data + position
                position += need
            else:
                taken = need - self._header_size
                if taken > size - position:
                    taken = size - position
                memcpy(self._header + self._header_size, data + position, taken)
                self._header_size += taken
                position += taken
                if self._header_size < need:
                    break
                unit = self._header
                self._header_size = 0
            value = 0
            for i in range(need):
                value |= (<unsigned long long>unit[i]) << (8 * i)
            if stage == STAGE_BLOCK_HEADER or stage == STAGE_FIRST_BLOCK_HEADER:
                block_type = (value >> 1) & 3
                if block_type == 3:
                    raise self._fail(CompressionError("zstd-stream: corrupt data (reserved block type)"))
                body = 1 if block_type == 1 else <size_t>(value >> 3)
                stage = STAGE_SKIP
                if value & 1:  # last block of the frame: its checksum, then a new frame
                    need = body + (4 if self._has_checksum else 0)
                    self._next_stage = STAGE_MAGIC
                else:
                    need = body
                    self._next_stage = STAGE_BLOCK_HEADER
                if need == 0:
                    stage = self._next_stage
                    need = COLLECT_SIZE[stage]
            elif stage == STAGE_MAGIC:
                if value == 0xFD2FB528:
                    stage = STAGE_FRAME_DESCRIPTOR
                    need = 1
                elif (value & 0xFFFFFFF0) == 0x184D2A50:
                    stage = STAGE_SKIPPABLE_SIZE
                    need = 4
                else:
                    raise self._fail(CompressionError("zstd-stream: corrupt data (unknown frame magic number)"))
            elif stage == STAGE_FRAME_DESCRIPTOR:
                self._has_checksum = (value >> 2) & 1
                need = (0 if (value >> 5) & 1 else 1) + DICT_ID_SIZES[value & 3]
                need += CONTENT_SIZE_SIZES[value >> 6] if (value >> 6) else ((value >> 5) & 1)
                stage = STAGE_SKIP
                self._next_stage = STAGE_FIRST_BLOCK_HEADER
                if need == 0:
                    stage = STAGE_FIRST_BLOCK_HEADER
                    need = 3
            else:  # STAGE_SKIPPABLE_SIZE
                need = <size_t>value
                stage = STAGE_SKIP
                self._next_stage = STAGE_MAGIC
                if need == 0:
                    stage = STAGE_MAGIC
                    need = 4
        self._stage = stage
        self._need = need
        return 0


def make_inflater(compression, max_size=DEFAULT_MAX_INFLATED_SIZE):
    """The inflater for a gateway ``compress`` query value: "zlib-stream", "zstd-stream", or None (no inflater).

    Raises ValueError for any other value, TypeError/ValueError for a bad ``max_size``.
    """
    if compression is None:
        _check_max_size(max_size)
        return None
    if type(compression) is str and compression == "zlib-stream":
        return ZlibStreamInflater(max_size)
    if type(compression) is str and compression == "zstd-stream":
        return ZstdStreamInflater(max_size)
    raise ValueError(f"unknown transport compression {compression!r} (use 'zlib-stream', 'zstd-stream' or None)")
