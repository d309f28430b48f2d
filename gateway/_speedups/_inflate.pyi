"""Type stub of the compiled inflation twin; mirrors ``gateway/_inflate_py.py``.

``feed`` takes a C-contiguous bytes-like object (read as its raw bytes); anything else, a non-contiguous memoryview
included, raises TypeError in both twins.
"""

from __future__ import annotations

from typing import Union

__all__ = [
    "DEFAULT_MAX_INFLATED_SIZE",
    "MAX_INFLATED_SIZE_LIMIT",
    "ZLIB_SUFFIX",
    "ZlibStreamInflater",
    "ZstdStreamInflater",
    "make_inflater",
]

Buffer = Union[bytes, bytearray, memoryview]

DEFAULT_MAX_INFLATED_SIZE: int
MAX_INFLATED_SIZE_LIMIT: int
ZLIB_SUFFIX: bytes
ZLIB_BACKEND: str
ZLIB_VERSION: str
HAVE_ZSTD: bool

class ZlibStreamInflater:
    def __init__(self, max_size: int = ...) -> None: ...
    @property
    def max_size(self) -> int: ...
    @property
    def backend(self) -> str: ...
    def reset(self) -> None: ...
    def feed(self, message: Buffer) -> bytes | None: ...

class ZstdStreamInflater:
    def __init__(self, max_size: int = ...) -> None: ...
    @property
    def max_size(self) -> int: ...
    def reset(self) -> None: ...
    def feed(self, message: Buffer) -> bytes: ...

def make_inflater(
    compression: str | None, max_size: int = ...
) -> ZlibStreamInflater | ZstdStreamInflater | None: ...
