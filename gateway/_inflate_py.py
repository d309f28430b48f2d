"""Transport-compression inflation, pure twin (the readable reference for ``gateway/_speedups/_inflate.pyx``).

Discord's two transport compressions, one decompression context per connection:

* ``zlib-stream``: one deflate stream for the whole connection, flushed with Z_SYNC_FLUSH after every gateway
  message, so a gateway message is complete when the buffered websocket data ends with ``00 00 FF FF``. A gateway
  message may span several websocket messages. A complete message cannot be told apart from a truncated one whose
  last bytes happen to be the marker; like every client, we trust the marker.
* ``zstd-stream``: one zstd frame for the whole connection (Discord never ends it), flushed with ZSTD_e_flush after
  every gateway message, so each websocket message is exactly one gateway message made of whole zstd blocks. Some
  compatible servers end the frame after every message instead; the next message then starts a new frame.
  Truncation rule: a flushed message always ends on a block boundary (or a frame boundary), and a frame header
  is always followed by a block in the same message (a flush with no data emits nothing). So the stream structure
  (frame headers, 3-byte block headers with their sizes, checksums) is walked alongside the decompression, and a
  message that ends inside a header, a block or a checksum, or right after a frame header, raises
  CompressionError instead of returning partial JSON. Both twins use the same walk, so they agree byte for byte.
  (zstd's own "next input size" hint cannot do this alone: 3 at a block boundary, but also 3 with one checksum
  byte buffered.) An empty websocket message inflates to b"".

What a websocket message may contain, and what ``feed`` returns (the same in both twins):

* zlib-stream: any piece of the stream. Once the buffered data ends with ``00 00 FF FF``, everything buffered is
  inflated and returned (several flushed payloads in one message come back concatenated); else None.
* zstd-stream: whole blocks and frames, any number: a frame may end anywhere in a message and be followed by more
  frames (or skippable frames, which give nothing). ``feed`` returns the content of all of them, concatenated.

Contract (tested in ``tests/test_inflate*.py``):

1. Valid streams give exactly the bytes that were compressed, in every twin and with every zlib backend.
2. Corrupt streams give CompressionError, or InflatedTooLargeError once the output passes ``max_size``, or bytes
   where the library cannot tell (never more than ``max_size``); never another exception class, never a hang.
   Which of these, and which error comes first (corruption or ceiling), is the C library's decision: results are
   identical where both twins run the same library (the compiled zlib twin and this twin on the standard library's
   zlib load the same libz), and may differ otherwise (isal, zlib-ng; the system libzstd of the compiled twin
   versus the one python-zstandard bundles).
3. Any error poisons the inflater: every later ``feed`` raises CompressionError until ``reset()``.
4. ``max_size`` is an int from 1 to MAX_INFLATED_SIZE_LIMIT, checked at construction (TypeError / ValueError).
   Both inflaters bound one decompressed message by it, and a zlib inflater bounds the compressed bytes it buffers
   while waiting for the marker the same way.
5. ``feed`` takes a C-contiguous bytes-like object (bytes, bytearray, a contiguous memoryview, array.array, ...),
   read as its raw bytes whatever its item size; anything else (a non-contiguous memoryview such as
   ``memoryview(b"abcdef")[::2]``, str, int, None) raises TypeError ("message must be a contiguous bytes-like
   object, not ...") before the inflater is touched, so it is not poisoned.

zlib backend of this twin: the standard library's ``zlib`` by default, measured and chosen for agreement
(``bench/bench_inflate.py``, README "Inflaters"): it is always there, it loads the system libz that a compiled twin
built with ``GATEWAY_ZLIB=zlib`` links (one built with zlib-ng agrees exactly with the ``zlib-ng`` backend instead:
``ZLIB_BACKEND`` of the compiled module names its library), and on ~1 KB events it is faster than ``isal`` (which
wins only on multi-MB messages) and within ~20 % of ``zlib-ng``. ``GATEWAY_ZLIB_BACKEND=zlib-ng`` / ``isal`` / ``zlib`` (read when this module is
imported; an error if that backend is not installed) picks another for the process, ``zlib_stream_inflater(backend)``
for one inflater. ``ZLIB_BACKEND`` names the default (a module attribute, not in ``__all__``: its value differs
between the twins).
"""

from __future__ import annotations

import os
import sys
import zlib as _stdlib_zlib
from types import ModuleType
from typing import Union

import zstandard

from ._buffers import byte_view
from .errors import CompressionError, InflatedTooLargeError

__all__ = [
    "DEFAULT_MAX_INFLATED_SIZE",
    "MAX_INFLATED_SIZE_LIMIT",
    "ZLIB_SUFFIX",
    "ZlibStreamInflater",
    "ZstdStreamInflater",
    "make_inflater",
]

#: Ceiling for one decompressed gateway message (a large guild's GUILD_CREATE is tens of MB).
DEFAULT_MAX_INFLATED_SIZE: int = 256 * 1024 * 1024
#: The largest ``max_size`` accepted (``sys.maxsize - 1``: one more byte than the ceiling must fit a C ssize_t).
MAX_INFLATED_SIZE_LIMIT: int = sys.maxsize - 1
#: The bytes a Z_SYNC_FLUSH ends with; a zlib-stream gateway message is complete when the buffer ends with them.
ZLIB_SUFFIX: bytes = b"\x00\x00\xff\xff"

Buffer = Union[bytes, bytearray, memoryview]


#: The zlib backends the pure twin can run on, by the names ``GATEWAY_ZLIB_BACKEND`` and ``zlib_stream_inflater`` take.
ZLIB_BACKENDS: tuple[str, ...] = ("zlib", "isal", "zlib-ng")


def load_zlib_backend(name: str) -> ModuleType:
    """The zlib-compatible module of backend ``name`` (one of ZLIB_BACKENDS); ImportError when it is not installed."""
    if name == "zlib":
        return _stdlib_zlib
    if name == "isal":
        from isal import isal_zlib

        return isal_zlib
    if name == "zlib-ng":
        from zlib_ng import zlib_ng

        return zlib_ng
    raise ValueError(f"unknown zlib backend {name!r} (use one of {', '.join(ZLIB_BACKENDS)})")


def installed_zlib_backends() -> list[str]:
    """The names in ZLIB_BACKENDS whose module can be imported here."""
    installed = []
    for name in ZLIB_BACKENDS:
        try:
            load_zlib_backend(name)
        except ImportError:
            continue
        installed.append(name)
    return installed


def _default_zlib_backend() -> str:
    chosen = os.environ.get("GATEWAY_ZLIB_BACKEND", "").strip().lower()
    if not chosen:
        return "zlib"
    if chosen not in ZLIB_BACKENDS:
        raise ValueError(f"GATEWAY_ZLIB_BACKEND={chosen!r} is not a zlib backend (use one of {', '.join(ZLIB_BACKENDS)})")
    try:
        load_zlib_backend(chosen)
    except ImportError as exc:
        raise ImportError(f"GATEWAY_ZLIB_BACKEND={chosen!r} but that backend is not installed ({exc})") from None
    return chosen


#: The backend every ZlibStreamInflater of this twin uses unless told otherwise (see the module docstring).
ZLIB_BACKEND: str = _default_zlib_backend()
_zlib: ModuleType = load_zlib_backend(ZLIB_BACKEND)  # the default backend's module (tests read its error text)


def _check_max_size(max_size: object) -> int:
    if isinstance(max_size, bool) or not isinstance(max_size, int):
        raise TypeError(f"max_size must be an int, not {type(max_size).__name__}")
    if not 1 <= max_size <= MAX_INFLATED_SIZE_LIMIT:
        raise ValueError(f"max_size must be between 1 and {MAX_INFLATED_SIZE_LIMIT} (bytes), got {max_size}")
    return max_size


def _poisoned(reason: str) -> CompressionError:
    return CompressionError(f"the inflater is unusable after an earlier error ({reason}); reset() it for a new connection")


class ZlibStreamInflater:
    """Inflates a ``zlib-stream`` connection: feed every websocket binary message, in order.

    ``feed`` returns the decompressed gateway payload once the buffered data ends with ``00 00 FF FF``, else None.
    Raises CompressionError (corrupt data) or InflatedTooLargeError (output, or compressed data buffered without a
    marker, over ``max_size``). After any error every ``feed`` raises until ``reset()``. A message that is not a
    contiguous bytes-like object raises TypeError (and does not poison the inflater).
    """

    __slots__ = ("_max_size", "_decompressor", "_buffer", "_error", "_zlib", "_zlib_error", "_backend")

    def __init__(self, max_size: int = DEFAULT_MAX_INFLATED_SIZE) -> None:
        self._max_size: int = _check_max_size(max_size)
        self._buffer = bytearray()
        self._error: str | None = None
        self._use_backend(ZLIB_BACKEND)

    def _use_backend(self, name: str) -> None:
        self._zlib: ModuleType = load_zlib_backend(name)
        self._zlib_error: type[Exception] = self._zlib.error
        self._backend = name
        self.reset()

    @property
    def max_size(self) -> int:
        """The ceiling for one decompressed message (read-only)."""
        return self._max_size

    @property
    def backend(self) -> str:
        """The zlib library this inflater runs on: one of ZLIB_BACKENDS ("zlib": the libz the compiled twin links)."""
        return self._backend

    def reset(self) -> None:
        """Start over for a new connection: fresh inflate context, empty buffer, error cleared."""
        self._decompressor = self._zlib.decompressobj()
        self._buffer.clear()
        self._error = None

    def _fail(self, error: CompressionError) -> CompressionError:
        self._error = str(error)
        self._buffer.clear()
        return error

    def feed(self, message: Buffer) -> bytes | None:
        """Add one websocket message; return the gateway payload it completes, or None if more must come."""
        if self._error is not None:
            raise _poisoned(self._error)
        if type(message) is not bytes:
            message = byte_view(message, "message")
        buffer = self._buffer
        if not buffer and message[-4:] == ZLIB_SUFFIX:
            data: Buffer = message  # fast path: one complete message, no copy
        else:
            buffer += message
            if buffer[-4:] != ZLIB_SUFFIX:
                if len(buffer) > self._max_size:
                    raise self._fail(
                        InflatedTooLargeError(
                            f"zlib-stream: {len(buffer)} compressed bytes buffered without a 00 00 FF FF marker, "
                            f"over the {self._max_size}-byte ceiling"
                        )
                    )
                return None
            data = buffer
        decompressor = self._decompressor
        if decompressor.eof:
            raise self._fail(CompressionError("zlib-stream: data after the end of the zlib stream"))
        try:
            inflated = decompressor.decompress(data, self._max_size + 1)
        except self._zlib_error as exc:
            raise self._fail(CompressionError(f"zlib-stream: corrupt data ({exc})")) from None
        if buffer:
            buffer.clear()
        if len(inflated) > self._max_size:
            raise self._fail(
                InflatedTooLargeError(f"zlib-stream: a decompressed message is over the {self._max_size}-byte ceiling")
            )
        if decompressor.eof and decompressor.unused_data:
            raise self._fail(CompressionError("zlib-stream: data after the end of the zlib stream"))
        return inflated


def zlib_stream_inflater(backend: str, max_size: int = DEFAULT_MAX_INFLATED_SIZE) -> ZlibStreamInflater:
    """A pure ZlibStreamInflater on zlib backend ``backend`` (one of ZLIB_BACKENDS) instead of the default.

    For tests and benchmarks that compare backends in one process; ImportError when ``backend`` is not installed.
    """
    inflater = ZlibStreamInflater(max_size)
    inflater._use_backend(backend)
    return inflater


# zstd frame walk (RFC 8878). Stages; the "collect" ones gather their bytes in _header to parse them.
_MAGIC = 0  # collect 4: frame magic number (a frame boundary when nothing is collected yet)
_FRAME_DESCRIPTOR = 1  # collect 1: frame header descriptor
_SKIP = 2  # skip _need bytes (rest of frame header, block body, checksum, skippable frame body), then _next_stage
_BLOCK_HEADER = 3  # collect 3: block header (a block boundary when nothing is collected yet)
_SKIPPABLE_SIZE = 4  # collect 4: size of a skippable frame
_FIRST_BLOCK_HEADER = 5  # collect 3: first block header of a frame (not a boundary: flushes never end there)
_COLLECT_SIZE = (4, 1, 0, 3, 4, 3)

_ZSTD_MAGIC = 0xFD2FB528
_DICT_ID_SIZES = (0, 1, 2, 4)
_CONTENT_SIZE_SIZES = (0, 2, 4, 8)


class ZstdStreamInflater:
    """Inflates a ``zstd-stream`` connection: feed every websocket binary message, in order.

    Every ``feed`` returns one decompressed gateway payload. A frame that ends is followed by a new one. Raises
    CompressionError for corrupt data or a message that ends inside a zstd block, header or checksum (truncated),
    InflatedTooLargeError when one message inflates past ``max_size``. After any error every ``feed`` raises until
    ``reset()``. A message that is not a contiguous bytes-like object raises TypeError (and does not poison it).
    """

    __slots__ = (
        "_max_size",
        "_decompressor",
        "_stream",
        "_error",
        "_stage",
        "_need",
        "_next_stage",
        "_header",
        "_has_checksum",
    )

    def __init__(self, max_size: int = DEFAULT_MAX_INFLATED_SIZE) -> None:
        self._max_size: int = _check_max_size(max_size)
        self._decompressor = zstandard.ZstdDecompressor()
        self._header = bytearray()
        self.reset()

    @property
    def max_size(self) -> int:
        """The ceiling for one decompressed message (read-only)."""
        return self._max_size

    def reset(self) -> None:
        """Start over for a new connection: fresh decompression context, error cleared."""
        self._stream = self._decompressor.decompressobj()
        self._error: str | None = None
        self._stage = _MAGIC
        self._need = 4
        self._next_stage = _MAGIC
        self._header.clear()
        self._has_checksum = False

    def _fail(self, error: CompressionError) -> CompressionError:
        self._error = str(error)
        return error

    def feed(self, message: Buffer) -> bytes:
        """Decompress one websocket message (one gateway message) and return it."""
        if self._error is not None:
            raise _poisoned(self._error)
        if type(message) is not bytes:
            message = byte_view(message, "message")
        try:
            inflated = self._decompress(message)
        except zstandard.ZstdError as exc:
            raise self._fail(CompressionError(f"zstd-stream: corrupt data ({exc})")) from None
        self._walk(message)
        if not (self._stage == _BLOCK_HEADER or self._stage == _MAGIC) or self._header:
            raise self._fail(
                CompressionError("zstd-stream: truncated message (it ends inside a zstd block, header or checksum)")
            )
        return inflated

    def _decompress(self, message: Buffer) -> bytes:
        max_size = self._max_size
        stream = self._stream
        size = len(message)
        # zstd inflates at most ~32768x (a 4-byte RLE block gives 128 KiB), so feeding at most budget/131072 + 16
        # bytes at a time keeps the output under 1.25x the ceiling + 0.5 MiB when it is noticed (the compiled twin
        # stops at ceiling + 1). Small messages (under 2 KiB for the default ceiling) go in one call, uncopied.
        step = (max_size >> 17) + 16
        if size <= step:
            inflated = stream.decompress(message)
            if len(inflated) > max_size:
                raise self._too_large()
            if not stream.eof:
                return inflated
            # The frame ended (a compatible server ending a frame per message): new frame for what follows.
            position = size - len(stream.unused_data)
            stream = self._stream = self._decompressor.decompressobj()
            if position == size:
                return inflated
            parts = [inflated]
            produced = len(inflated)
        else:
            parts = []
            produced = position = 0
        view = memoryview(message).cast("B")
        while position < size:
            end = min(size, position + ((max_size - produced) >> 17) + 16)
            part = stream.decompress(view[position:end])
            if stream.eof:  # the frame ended inside this slice: what zstd left unused starts the next frame
                end -= len(stream.unused_data)
                stream = self._stream = self._decompressor.decompressobj()
            position = end
            produced += len(part)
            if produced > max_size:
                raise self._too_large()
            parts.append(part)
        return b"".join(parts)

    def _too_large(self) -> InflatedTooLargeError:
        return self._fail(  # type: ignore[return-value]
            InflatedTooLargeError(f"zstd-stream: a decompressed message is over the {self._max_size}-byte ceiling")
        )

    def _walk(self, message: Buffer) -> None:
        """Follow the frame/block structure over ``message`` (already accepted by zstd) to know where it ended."""
        stage = self._stage
        header = self._header
        size = len(message)
        if stage == _BLOCK_HEADER and not header and size > 3:
            value = int.from_bytes(message[:3], "little")
            if not value & 3 and (value >> 3) + 3 == size:
                return  # the usual flushed message: exactly one whole raw/compressed block, not the last
        need = self._need
        position = 0
        while position < size:
            if stage == _SKIP:
                taken = min(need, size - position)
                position += taken
                need -= taken
                if need:
                    break
                stage = self._next_stage
                need = _COLLECT_SIZE[stage]
                continue
            if not header and size - position >= need:
                unit = message[position : position + need]
                position += need
            else:
                taken = min(need - len(header), size - position)
                header += message[position : position + taken]
                position += taken
                if len(header) < need:
                    break
                unit = bytes(header)
                header.clear()
            value = int.from_bytes(unit, "little")
            if stage == _BLOCK_HEADER or stage == _FIRST_BLOCK_HEADER:
                block_type = (value >> 1) & 3
                if block_type == 3:
                    raise self._fail(CompressionError("zstd-stream: corrupt data (reserved block type)"))
                body = 1 if block_type == 1 else value >> 3
                if value & 1:  # last block of the frame: its checksum, then a new frame
                    stage, need = _SKIP, body + (4 if self._has_checksum else 0)
                    self._next_stage = _MAGIC
                else:
                    stage, need = _SKIP, body
                    self._next_stage = _BLOCK_HEADER
                if need == 0:
                    stage = self._next_stage
                    need = _COLLECT_SIZE[stage]
            elif stage == _MAGIC:
                if value == _ZSTD_MAGIC:
                    stage, need = _FRAME_DESCRIPTOR, 1
                elif value & 0xFFFFFFF0 == 0x184D2A50:
                    stage, need = _SKIPPABLE_SIZE, 4
                else:
                    raise self._fail(CompressionError("zstd-stream: corrupt data (unknown frame magic number)"))
            elif stage == _FRAME_DESCRIPTOR:
                single_segment = (value >> 5) & 1
                self._has_checksum = bool((value >> 2) & 1)
                content_size_flag = value >> 6
                rest = (
                    (0 if single_segment else 1)
                    + _DICT_ID_SIZES[value & 3]
                    + (_CONTENT_SIZE_SIZES[content_size_flag] or single_segment)
                )
                stage, need = _SKIP, rest
                self._next_stage = _FIRST_BLOCK_HEADER
                if need == 0:
                    stage, need = _FIRST_BLOCK_HEADER, 3
            else:  # _SKIPPABLE_SIZE
                stage, need = _SKIP, value
                self._next_stage = _MAGIC
                if need == 0:
                    stage, need = _MAGIC, 4
        self._stage = stage
        self._need = need


def make_inflater(
    compression: str | None, max_size: int = DEFAULT_MAX_INFLATED_SIZE
) -> ZlibStreamInflater | ZstdStreamInflater | None:
    """The inflater for a gateway ``compress`` query value: "zlib-stream", "zstd-stream", or None (no inflater).

    Raises ValueError for any other value, TypeError/ValueError for a bad ``max_size``.
    """
    if compression is None:
        _check_max_size(max_size)
        return None
    if compression == "zlib-stream" and type(compression) is str:
        return ZlibStreamInflater(max_size)
    if compression == "zstd-stream" and type(compression) is str:
        return ZstdStreamInflater(max_size)
    raise ValueError(f"unknown transport compression {compression!r} (use 'zlib-stream', 'zstd-stream' or None)")
