"""Selector for the stream inflation twins: the only module the package imports for inflate.

Twins: ``gateway/_inflate_py.py`` (pure, the readable reference) and ``gateway/_speedups/_inflate.pyx`` (compiled).
:data:`IMPLEMENTATION` is ``"speedups"`` or ``"pure"``; ``GATEWAY_NO_SPEEDUPS=1`` forces the pure twin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._compat import load_twin, twin_name

if TYPE_CHECKING:
    from ._inflate_py import (
        DEFAULT_MAX_INFLATED_SIZE,
        MAX_INFLATED_SIZE_LIMIT,
        ZLIB_SUFFIX,
        ZlibStreamInflater,
        ZstdStreamInflater,
        make_inflater,
    )
else:
    _impl = load_twin("inflate")
    DEFAULT_MAX_INFLATED_SIZE = _impl.DEFAULT_MAX_INFLATED_SIZE
    MAX_INFLATED_SIZE_LIMIT = _impl.MAX_INFLATED_SIZE_LIMIT
    ZLIB_SUFFIX = _impl.ZLIB_SUFFIX
    ZlibStreamInflater = _impl.ZlibStreamInflater
    ZstdStreamInflater = _impl.ZstdStreamInflater
    make_inflater = _impl.make_inflater

#: Which twin this process runs: ``"speedups"`` (compiled) or ``"pure"``.
IMPLEMENTATION: str = twin_name(load_twin("inflate"))

__all__ = [
    "DEFAULT_MAX_INFLATED_SIZE",
    "MAX_INFLATED_SIZE_LIMIT",
    "ZLIB_SUFFIX",
    "ZlibStreamInflater",
    "ZstdStreamInflater",
    "make_inflater",
    "IMPLEMENTATION",
]
