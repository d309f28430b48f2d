"""JSON selector: ``loads`` (bytes/memoryview -> Python objects), ``dumps`` (object -> compact UTF-8 bytes), ``BACKEND``,
``VIEWS`` (whether ``loads`` reads a memoryview in place, so a slice of a payload need not be copied).

Backend order when nothing is forced: ``orjson`` if installed, else ``msgspec``, else ``simdjson`` (pysimdjson, the
declared dependency), else the stdlib ``json``. ``GATEWAY_JSON=json|simdjson|msgspec|orjson`` forces one (``auto`` or
empty = the order above); forcing one that is not installed raises ImportError at import, an unknown value ValueError.

Why this order: re-measured on 2026-12-03 on the benchmark corpus (``bench/corpus.py`` steady mix, 4,000 events
with a ``d``, mean 664 bytes; ``d`` decoded to a plain dict; 60 interleaved rounds in shuffled order on a loaded
2-core machine, so ratios to orjson within each round, median [quartiles]): orjson 1.00 (bytes slice), orjson on a
memoryview 1.05 [0.91-1.19], msgspec 1.06 [0.92-1.23] (memoryview 1.06), simdjson.loads 1.92 [1.78-2.29] (memoryview
2.33), json 3.16 [2.71-3.54]. orjson and msgspec are within noise of each other; orjson stays first. A memoryview
costs nothing measurable on gateway-sized ``d`` and saves a copy of a multi-MB ``d`` (GUILD_CREATE): ``VIEWS`` is
True for orjson and msgspec, and ``Event`` hands them a memoryview for a large ``d``; simdjson (slower on a
memoryview) and json (which needs bytes) get a bytes slice.
orjson and msgspec are optional extras (``gateway[speed]``); pysimdjson stays the declared dependency.
simdjson's lazy ``Parser`` proxy is not used for events users keep (see ``gateway/event.py``).

Differences between backends that callers should know: ``json`` accepts NaN/Infinity and keeps integers of any size;
``msgspec`` keeps integers of any size; ``simdjson`` rejects integers outside 64 bits (RuntimeError); ``orjson``
turns integers above 64 bits into floats. ``orjson.dumps`` refuses integers above 64 bits (TypeError). Discord sends
snowflakes as strings, so none of this matters for gateway payloads. Nesting: orjson and simdjson stop at 1,024
levels, json and msgspec at the interpreter's recursion limit (RecursionError). ``DECODE_ERRORS`` lists what
``loads`` raises for bad input, whatever its depth; catch that tuple.
"""

from __future__ import annotations

import json as _stdlib_json
import os
from typing import Any, Callable

__all__ = ["loads", "dumps", "BACKEND", "VIEWS", "DECODE_ERRORS", "select_backend", "typed_decoder", "type_name"]

_BACKENDS = ("orjson", "msgspec", "simdjson", "json")


def select_backend(value: str | None) -> str:
    """Parse a GATEWAY_JSON value: ``None``/``""``/``auto`` -> the first installed backend; else the named one.

    Raises ValueError for an unknown name and ImportError when the named backend is not installed.
    """
    choice = (value or "").strip().lower()
    if choice in ("", "auto"):
        for name in _BACKENDS:
            if name == "json" or _importable(name):
                return name
    if choice not in _BACKENDS:
        raise ValueError(f"GATEWAY_JSON={value!r} is not one of auto, json, simdjson, msgspec, orjson")
    if choice != "json" and not _importable(choice):
        raise ImportError(f"GATEWAY_JSON={value!r} asks for {choice}, which is not installed")
    return choice


def _importable(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def _stdlib_loads(data: bytes | bytearray | memoryview) -> Any:
    if isinstance(data, memoryview):
        data = data.tobytes()
    return _stdlib_json.loads(data)


def _stdlib_dumps(obj: Any) -> bytes:
    return _stdlib_json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _build(name: str) -> tuple[Callable[[Any], Any], Callable[[Any], bytes], tuple[type[BaseException], ...], bool]:
    """``(loads, dumps, DECODE_ERRORS, VIEWS)`` of backend ``name``."""
    # RecursionError: json and msgspec raise it for nesting deeper than the stack allows (orjson and simdjson stop
    # at 1,024 levels with ValueError / RuntimeError); a hostile payload must only ever give a DECODE_ERRORS class.
    if name == "orjson":
        import orjson

        return orjson.loads, orjson.dumps, (ValueError, RecursionError), True
    if name == "msgspec":
        import msgspec

        # msgspec.DecodeError (and ValidationError) are ValueErrors.
        return (msgspec.json.Decoder().decode, msgspec.json.Encoder().encode, (ValueError, RecursionError), True)
    if name == "simdjson":
        import simdjson

        # simdjson.loads takes bytes, bytearray and memoryview; it raises RuntimeError for out-of-range integers.
        return simdjson.loads, _stdlib_dumps, (ValueError, RuntimeError), False
    return _stdlib_loads, _stdlib_dumps, (ValueError, RecursionError), False


#: The backend in use: "orjson", "msgspec", "simdjson" or "json".
BACKEND: str = select_backend(os.environ.get("GATEWAY_JSON"))

loads: Callable[[bytes | bytearray | memoryview], Any]
dumps: Callable[[Any], bytes]
DECODE_ERRORS: tuple[type[BaseException], ...]
#: True when ``loads`` reads a memoryview in place (orjson, msgspec): a slice of a large payload need not be copied.
VIEWS: bool
loads, dumps, DECODE_ERRORS, VIEWS = _build(BACKEND)


# ---- typed decoding (``Event.decode``): msgspec, an optional extra ----

_TYPED_DECODERS: dict[Any, Any] = {}


def _msgspec_json() -> Any:
    """``msgspec.json``, or ImportError naming the extra that installs it."""
    try:
        import msgspec.json
    except ImportError:
        raise ImportError(
            "Event.decode needs msgspec, which is not installed: pip install 'gateway[speed]' (or msgspec)"
        ) from None
    return msgspec.json


def typed_decoder(target: Any) -> Any:
    """The cached ``msgspec.json.Decoder`` for ``target`` (built once per type; unhashable types are not cached).

    ImportError naming ``gateway[speed]`` when msgspec is not installed."""
    try:
        return _TYPED_DECODERS[target]
    except KeyError:
        decoder = _TYPED_DECODERS[target] = _msgspec_json().Decoder(target)
        return decoder
    except TypeError:  # unhashable type description
        return _msgspec_json().Decoder(target)


def type_name(target: Any) -> str:
    """How an error message names a decode target."""
    return getattr(target, "__qualname__", None) or repr(target)
