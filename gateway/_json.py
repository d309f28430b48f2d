"""JSON selector: ``loads`` (bytes/memoryview -> Python objects), ``dumps`` (object -> compact UTF-8 bytes), ``BACKEND``.

Backend order when nothing is forced: ``orjson`` if installed, else ``simdjson`` (pysimdjson, the declared dependency),
else the stdlib ``json``. ``GATEWAY_JSON=json|simdjson|orjson`` forces one (``auto`` or empty = the order above);
forcing one that is not installed raises ImportError at import, an unknown value ValueError.

Why orjson first (measured on this machine, 2026-11-28, 939-byte MESSAGE_CREATE, median of 7 timeit runs of 20k,
spread within +-3 %; ``bench/bench_envelope.py`` gives the same ranking): decoding ``d`` alone takes orjson 1.61 us,
simdjson.loads 3.29 us, json 5.20 us (whole payload: 1.74 / 3.45 / 5.57 us). orjson is an optional extra
(``gateway[speed]``); pysimdjson stays the declared dependency. simdjson's lazy ``Parser`` proxy is not used for
events users keep (see ``gateway/event.py``).

Differences between backends that callers should know: ``json`` accepts NaN/Infinity and keeps integers of any size;
``simdjson`` rejects integers outside 64 bits (RuntimeError); ``orjson`` turns integers above 64 bits into floats.
``orjson.dumps`` refuses integers above 64 bits (TypeError). Discord sends snowflakes as strings, so none of this
matters for gateway payloads. ``DECODE_ERRORS`` lists what ``loads`` raises for bad input; catch that tuple.
"""

from __future__ import annotations

import json as _stdlib_json
import os
from typing import Any, Callable

__all__ = ["loads", "dumps", "BACKEND", "DECODE_ERRORS", "select_backend"]

_BACKENDS = ("orjson", "simdjson", "json")


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
        raise ValueError(f"GATEWAY_JSON={value!r} is not one of auto, json, simdjson, orjson")
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


def _build(name: str) -> tuple[Callable[[Any], Any], Callable[[Any], bytes], tuple[type[BaseException], ...]]:
    # RecursionError: json and msgspec raise it for nesting deeper than the stack allows (orjson and simdjson stop
    # at 1,024 levels with ValueError / RuntimeError); a hostile payload must only ever give a DECODE_ERRORS class.
    if name == "orjson":
        import orjson

        return orjson.loads, orjson.dumps, (ValueError, RecursionError)
    if name == "simdjson":
        import simdjson

        # simdjson.loads takes bytes, bytearray and memoryview; it raises RuntimeError for out-of-range integers.
        return simdjson.loads, _stdlib_dumps, (ValueError, RuntimeError)
    return _stdlib_loads, _stdlib_dumps, (ValueError, RecursionError)


#: The backend in use: "orjson", "simdjson" or "json".
BACKEND: str = select_backend(os.environ.get("GATEWAY_JSON"))

loads: Callable[[bytes | bytearray | memoryview], Any]
dumps: Callable[[Any], bytes]
DECODE_ERRORS: tuple[type[BaseException], ...]
loads, dumps, DECODE_ERRORS = _build(BACKEND)
