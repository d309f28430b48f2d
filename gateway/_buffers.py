"""Argument checks the pure twins share (the compiled twins have the same rule in C, ``_get_buffer``)."""

from __future__ import annotations

__all__ = ["byte_view"]


def byte_view(data: object, name: str) -> bytearray | memoryview:
    """``data`` (not bytes) as a 1-D buffer of bytes, as the compiled twin reads it; TypeError unless it is a
    C-contiguous bytes-like object (the same text in both twins)."""
    if type(data) is bytearray:
        return data
    try:
        view = memoryview(data)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be a contiguous bytes-like object, not {type(data).__name__}") from None
    if not view.c_contiguous:
        raise TypeError(
            f"{name} must be a contiguous bytes-like object, not a non-contiguous {type(data).__name__} "
            "(copy it with bytes() first)"
        )
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")  # positions count bytes, as in the compiled twin
    return view
