"""Fuzz targets: the zlib-stream and zstd-stream inflaters, compiled vs pure (and every zlib backend of the pure twin).

The contract checked (issue 14): a valid stream (payloads the fuzzer chose, compressed here) inflates to identical
bytes in every twin and backend, with InflatedTooLargeError exactly for a payload over the ceiling; a corrupt stream
(arbitrary messages, or a valid stream with bytes flipped) gives CompressionError (or InflatedTooLargeError), or bytes
where the library cannot tell, never another exception class, never output over the ceiling, and poisons the
inflater (the next feed raises CompressionError). Exact agreement on corrupt input is required only where both twins
run the same C library: the compiled zlib twin against the pure twin pinned to the standard library's zlib (the same
system zlib). The zstd twins use different libzstd builds (system vs python-zstandard's), so they are held to the
contract only. Constructing with an out-of-range ``max_size`` must fail the same way in both twins.
"""

from __future__ import annotations

import importlib.util
import sys
import types
import zlib
from types import ModuleType
from typing import Any

import zstandard

from tests.fuzz._common import Finding, fuzz_main, describe, instrumented, known_open, outcome, same_outcome, twins

with instrumented():
    from gateway.errors import CompressionError, InflatedTooLargeError

    COMPILED, PURE = twins("inflate")
SUFFIX = b"\x00\x00\xff\xff"


def _pure_with_zlib(backend: str) -> Any:
    """The pure inflate twin on zlib ``backend`` (None when that library is missing): its own
    ``zlib_stream_inflater(backend, max_size)`` where it has one, else a separate copy of the module re-pointed."""
    if hasattr(PURE, "zlib_stream_inflater"):
        try:
            PURE.zlib_stream_inflater(backend, 1)
        except ImportError:
            return None
        return types.SimpleNamespace(
            __name__=f"gateway._inflate_py[{backend}]", ZstdStreamInflater=PURE.ZstdStreamInflater,
            ZlibStreamInflater=lambda max_size: PURE.zlib_stream_inflater(backend, max_size))
    if backend == "zlib":
        library: Any = zlib
    else:
        try:
            library = importlib.import_module("isal.isal_zlib" if backend == "isal" else "zlib_ng.zlib_ng")
        except ImportError:
            return None
    spec = importlib.util.find_spec("gateway._inflate_py")
    assert spec is not None and spec.origin is not None
    copy_spec = importlib.util.spec_from_file_location(f"gateway._inflate_py_{backend}", spec.origin)
    assert copy_spec is not None and copy_spec.loader is not None
    module = importlib.util.module_from_spec(copy_spec)
    with instrumented():
        copy_spec.loader.exec_module(module)
    module._zlib, module._zlib_error, module.ZLIB_BACKEND = library, library.error, backend  # type: ignore[attr-defined]
    return module


#: The pure twin pinned to the standard library's zlib: the same system zlib the compiled twin links.
PURE_STDLIB_ZLIB = _pure_with_zlib("zlib")
#: Every pure zlib backend available here, for the valid-stream check.
PURE_ZLIB_BACKENDS = {name: module for name in ("zlib", "isal", "zlib-ng") if (module := _pure_with_zlib(name))}


def _messages(material: bytes) -> list[bytes]:
    return material.split(b"\xfe")[:24]


def _ceiling(byte: int) -> int:
    return 16 + byte * 61  # 16 .. 15,571 bytes: small, so the ceiling is hit often


def _compress(kind: str, payloads: list[bytes], flags: int) -> list[bytes]:
    """A valid stream of ``payloads``: zlib with Z_SYNC_FLUSH per payload (optionally split in parts), zstd with a
    block flush per payload (optionally a frame per payload, as some compatible servers send)."""
    messages: list[bytes] = []
    if kind == "zlib":
        compressor = zlib.compressobj(flags % 10)
        for index, payload in enumerate(payloads):
            data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
            cut = 1 + (flags + index) % (len(data) - 5) if len(data) > 6 else 0
            # A first part ending in the marker would be a complete message (the marker is trusted, see the module).
            if flags & 0x10 and index % 2 and cut and not data[:cut].endswith(SUFFIX):
                messages += [data[:cut], data[cut:]]
            else:
                messages.append(data)
    else:
        end_frames = bool(flags & 0x10)
        compressor = _zstd_compressor(flags % 4 + 1, bool(flags & 0x20)).compressobj()
        for payload in payloads:
            if end_frames:
                messages.append(compressor.compress(payload) + compressor.flush(zstandard.COMPRESSOBJ_FLUSH_FINISH))
                compressor = _zstd_compressor(flags % 4 + 1, False).compressobj()
            else:
                messages.append(compressor.compress(payload) + compressor.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK))
    return messages


_ZSTD_COMPRESSORS: dict[tuple[int, bool], Any] = {}


def _zstd_compressor(level: int, checksum: bool) -> Any:
    """One ZstdCompressor per setting, reused (a new one costs ~4 ms under ASan); each compressobj is finished
    before the next one is made from it."""
    key = (level, checksum)
    if key not in _ZSTD_COMPRESSORS:
        _ZSTD_COMPRESSORS[key] = zstandard.ZstdCompressor(level=level, write_checksum=checksum)
    return _ZSTD_COMPRESSORS[key]


def _mutate(messages: list[bytes], edits: bytes) -> list[bytes]:
    out = [bytearray(message) for message in messages]
    for i in range(0, len(edits) - 2, 3):
        index, position, value = edits[i] % len(out), edits[i + 1], edits[i + 2]
        if out[index]:
            out[index][position % len(out[index])] ^= value or 1
    return [bytes(message) for message in out]


def _inflater(module: ModuleType, kind: str, ceiling: int) -> Any:
    return (module.ZlibStreamInflater if kind == "zlib" else module.ZstdStreamInflater)(ceiling)


def _run(module: ModuleType, kind: str, ceiling: int, messages: list[bytes]) -> list[tuple[str, Any]]:
    """Feed every message, stopping after the first error; check the contract on each outcome."""
    inflater = _inflater(module, kind, ceiling)
    results: list[tuple[str, Any]] = []
    for message in messages:
        result = outcome(lambda: inflater.feed(message))
        results.append(result)
        if result[0] == "raise":
            if not isinstance(result[1], CompressionError):
                raise Finding(f"{module.__name__} {kind}: feed raised {type(result[1]).__name__}: {result[1]}")
            again = outcome(lambda: inflater.feed(b"\x00" + SUFFIX))
            if again[0] != "raise" or not isinstance(again[1], CompressionError):
                raise Finding(f"{module.__name__} {kind}: not poisoned after an error: {describe(again)}")
            break
        value = result[1]
        if value is not None and (not isinstance(value, bytes) or len(value) > ceiling):
            raise Finding(f"{module.__name__} {kind}: output {type(value).__name__} of "
                          f"{len(value) if isinstance(value, bytes) else '?'} bytes over the {ceiling}-byte ceiling")
        if kind == "zstd" and value is None:
            raise Finding(f"{module.__name__} zstd: feed returned None")
    return results


def _compare(kind: str, label: str, first: list[tuple[str, Any]], second: list[tuple[str, Any]]) -> None:
    if len(first) != len(second) or not all(same_outcome(a, b) for a, b in zip(first, second)):
        index = next((i for i, (a, b) in enumerate(zip(first, second)) if not same_outcome(a, b)), min(len(first), len(second)))
        a = describe(first[index]) if index < len(first) else "(stopped)"
        b = describe(second[index]) if index < len(second) else "(stopped)"
        if (kind == "zstd" and index < len(first) and first[index][0] == "raise" and "no progress" in str(first[index][1])
                and index < len(second) and second[index] == ("ok", b"") and known_open(EMPTY_ZSTD_MESSAGES)):
            return
        raise Finding(f"{kind} {label}, message {index}: {a} vs {b}")


#: Found by this target (regression input tests/fuzz/regressions/zstd/); the fix belongs to _inflate.pyx.
EMPTY_ZSTD_MESSAGES = ("zstd: the compiled twin raises CompressionError ('made no progress') on the 16th empty websocket "
                       "message in a row once a frame has started (libzstd's no-forward-progress guard); pure returns b''")


def _check_max_size(kind: str, data: bytes) -> None:
    value = int.from_bytes(data[:9].ljust(9, b"\x00"), "little", signed=True) >> (data[0] % 8 if data else 0)
    for candidate in (value, 2**63 + (value & 0xFF), 2**64 - 1 - (value & 0xFF), -value):
        results = [outcome(lambda m=module: _inflater(m, kind, candidate)) for module in (COMPILED, PURE)]
        if results[0][0] == results[1][0] and (results[0][0] == "ok" or type(results[0][1]) is type(results[1][1])):
            continue
        raise Finding(f"{kind} inflater max_size={candidate}: compiled {describe(results[0])}, pure {describe(results[1])}")


def check(kind: str, data: bytes) -> None:
    """One fuzz input: ``data[0]`` picks the mode, ``data[1]`` the ceiling, the rest is payload/message material."""
    if len(data) < 3:
        return
    mode, ceiling = data[0], _ceiling(data[1])
    if mode & 0xC0 == 0xC0:
        _check_max_size(kind, data[2:])
        return
    material = data[2:]
    if mode & 1:  # valid stream, possibly mutated
        split = material.find(b"\xfd")
        edits = b""
        if mode & 2 and split >= 0:
            material, edits = material[:split], material[split + 1 :]
        payloads = [payload for payload in _messages(material)]
        messages = _compress(kind, payloads, mode >> 2 | (data[1] & 0x30))
        if edits:
            messages = _mutate(messages, edits)
    else:  # arbitrary messages
        messages = _messages(material)
        if kind == "zlib" and mode & 2:
            messages = [message + SUFFIX for message in messages]
        elif kind == "zlib" and mode & 4 and messages:
            messages[0] = b"\x78\x9c" + messages[0]
        elif kind == "zstd" and mode & 2 and messages:
            messages[0] = b"\x28\xb5\x2f\xfd" + messages[0]
    compiled = _run(COMPILED, kind, ceiling, messages)
    pure = _run(PURE, kind, ceiling, messages)
    valid = mode & 1 and not (mode & 2 and b"\xfd" in data[2:])
    if valid:
        expected = _expected(kind, payloads, ceiling, messages)
        _compare(kind, "valid stream: compiled vs source", compiled, expected)
        _compare(kind, "valid stream: pure vs source", pure, expected)
        if kind == "zlib":
            for name, module in PURE_ZLIB_BACKENDS.items():
                _compare(kind, f"valid stream: pure on {name} vs source", _run(module, kind, ceiling, messages), expected)
    elif kind == "zlib" and PURE_STDLIB_ZLIB is not None:
        # Corrupt input, the same system zlib on both sides: exact agreement.
        _compare(kind, "corrupt stream, compiled vs pure on the same zlib", compiled,
                 _run(PURE_STDLIB_ZLIB, kind, ceiling, messages))


def _expected(kind: str, payloads: list[bytes], ceiling: int, messages: list[bytes]) -> list[tuple[str, Any]]:
    """What a correct inflater returns for the valid stream ``messages`` made from ``payloads``."""
    expected: list[tuple[str, Any]] = []
    remaining = iter(payloads)
    buffered = 0
    for message in messages:
        if kind == "zlib" and not message.endswith(SUFFIX):
            buffered += len(message)
            if buffered > ceiling:  # compressed bytes waiting for the marker are bounded by the ceiling too
                expected.append(("raise", InflatedTooLargeError("expected")))
                break
            expected.append(("ok", None))
            continue
        buffered = 0
        payload = next(remaining)
        if len(payload) > ceiling:
            expected.append(("raise", InflatedTooLargeError("expected")))
            break
        expected.append(("ok", payload))
    return expected


def check_zlib(data: bytes) -> None:
    check("zlib", data)


def check_zstd(data: bytes) -> None:
    check("zstd", data)


def main(kind: str) -> None:
    fuzz_main(check_zlib if kind == "zlib" else check_zstd, kind)
