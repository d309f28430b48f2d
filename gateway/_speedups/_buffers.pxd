# cython: language_level=3
"""Bytes-like arguments of the compiled twins: the C twin of ``gateway/_buffers.py`` (cimported, no module of its own)."""

from cpython.buffer cimport PyBUF_SIMPLE, PyObject_CheckBuffer, PyObject_GetBuffer


cdef inline int get_buffer(object data, Py_buffer *view, str name) except -1:
    """A simple (C-contiguous, byte-addressed) view of ``data``; TypeError otherwise, with the pure twin's text."""
    if not PyObject_CheckBuffer(data):
        raise TypeError(f"{name} must be a contiguous bytes-like object, not {type(data).__name__}")
    try:
        PyObject_GetBuffer(data, view, PyBUF_SIMPLE)
    except BufferError:  # what CPython raises for a buffer that is not C-contiguous
        raise TypeError(
            f"{name} must be a contiguous bytes-like object, not a non-contiguous {type(data).__name__} "
            "(copy it with bytes() first)"
        ) from None
    return 0
