"""Environment switches, parsed in one place for the build (setup.py) and at import.

This module must stay importable on its own (setup.py loads it by path): no package imports.
"""

from __future__ import annotations

import os
import sys

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})


def parse_flag(value: str | None, *, name: str = "flag") -> bool:
    """``1/true/yes/on`` are true; unset, empty, ``0/false/no/off`` are false; anything else raises ValueError."""
    if value is None:
        return False
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"{name}={value!r} is not a boolean (use 1/true/yes/on or 0/false/no/off)")


def env_flag(name: str) -> bool:
    """Read the boolean environment variable ``name`` with :func:`parse_flag`."""
    return parse_flag(os.environ.get(name), name=name)


def build_speedups_mode(value: str | None) -> str:
    """Parse GATEWAY_BUILD_SPEEDUPS: ``auto`` (unset/empty), ``yes`` (any true word) or ``no`` (any false word)."""
    if value is None or value.strip().lower() in ("", "auto"):
        return "auto"
    return "yes" if parse_flag(value, name="GATEWAY_BUILD_SPEEDUPS") else "no"


#: The zlib libraries the compiled inflate twin can link, by the names GATEWAY_ZLIB takes.
ZLIB_LIBRARIES = ("zlib", "zlib-ng")


def zlib_library_choice(value: str | None) -> str:
    """Parse GATEWAY_ZLIB: ``auto`` (unset/empty: zlib-ng where it is found, else zlib), ``zlib`` or ``zlib-ng``."""
    chosen = "auto" if value is None else value.strip().lower() or "auto"
    if chosen not in ("auto", *ZLIB_LIBRARIES):
        raise ValueError(f"GATEWAY_ZLIB={value!r} is not a zlib library (use auto, {' or '.join(ZLIB_LIBRARIES)})")
    return chosen


#: True when the pure twins must be used: GATEWAY_NO_SPEEDUPS is set, or this is not CPython.
NO_SPEEDUPS: bool = env_flag("GATEWAY_NO_SPEEDUPS") or sys.implementation.name != "cpython"


def load_twin(stem: str):  # -> ModuleType
    """Import the twin of hot module ``stem`` ("framing", "inflate", "envelope") that this process should use.

    The compiled ``gateway._speedups._<stem>`` unless NO_SPEEDUPS is set or it is not built; else ``gateway._<stem>_py``.
    """
    import importlib

    if not NO_SPEEDUPS:
        try:
            return importlib.import_module(f"gateway._speedups._{stem}")
        except ImportError:
            pass
    return importlib.import_module(f"gateway._{stem}_py")


def twin_name(module) -> str:  # module: ModuleType
    """``"speedups"`` for a compiled twin, ``"pure"`` for a pure one."""
    return "speedups" if module.__name__.startswith("gateway._speedups.") else "pure"
