"""Selector for the websocket framing twins: the only module the package imports for framing.

Twins: ``gateway/_framing_py.py`` (pure, the reference) and ``gateway/_speedups/_framing.pyx``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._compat import NO_SPEEDUPS

if TYPE_CHECKING or NO_SPEEDUPS:
    from . import _framing_py as _impl
else:
    try:
        from ._speedups import _framing as _impl
    except ImportError:  # pragma: no cover - not compiled
        from . import _framing_py as _impl

IMPLEMENTATION: str = "speedups" if _impl.__name__.startswith("gateway._speedups") else "pure"

__all__ = list(_impl.__all__) + ["IMPLEMENTATION"]
globals().update({name: getattr(_impl, name) for name in _impl.__all__})
