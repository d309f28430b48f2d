"""Seed inputs of the fuzz targets, built from the benchmark corpus (``bench/corpus.py``) and the test data.

``python -m tests.fuzz.seeds DIR`` writes them to ``DIR/<target>/``; the runner starts every run from these seeds
plus the committed minimised corpus (``tests/fuzz/corpus/<target>/``).
"""

from __future__ import annotations

import hashlib
import json
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import zstandard

from bench.corpus import compress_zlib, compress_zstd, generate_edge, generate_steady
from gateway._framing_py import OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_TEXT, build_close_payload, build_frame

TARGETS = ("framing", "zlib", "zstd", "envelope", "protocol")
_DATA = Path(__file__).resolve().parents[1] / "data" / "gateway-events.json"


def _payloads() -> list[bytes]:
    steady = [payload for payload in generate_steady(count=400, guilds=8, big_guild_members=[60]) if len(payload) < 3000]
    return steady[:40] + generate_edge() + [b'{"op":11,"d":null}', b'{"t":null,"s":null,"op":10,"d":{"heartbeat_interval":41250}}']


def _spec_examples() -> list[bytes]:
    try:
        events = json.loads(_DATA.read_text())
    except (OSError, ValueError):
        return []
    out = []
    for entry in events if isinstance(events, list) else events.values() if isinstance(events, dict) else []:
        example = entry.get("example") if isinstance(entry, dict) else None
        if isinstance(example, dict):
            out.append(json.dumps(example, separators=(",", ":")).encode())
    return out[:30]


def framing() -> Iterator[bytes]:
    payloads = _payloads()[:12]
    for index, payload in enumerate(payloads):
        frames = build_frame(OP_TEXT if index % 2 else OP_BINARY, payload, mask=False)
        yield bytes([index & 7, 40, 4, 1, 7, 200, 250]) + frames
    half = len(payloads[1]) // 2
    first = bytes([0x01, 0x7E]) + half.to_bytes(2, "big") + payloads[1][:half]  # text, not FIN
    ping = build_frame(OP_PING, b"hi", mask=False)
    rest = len(payloads[1]) - half
    last = bytes([0x80 | OP_CONTINUATION, 0x7E]) + rest.to_bytes(2, "big") + payloads[1][half:]
    yield bytes([1, 0, 3, 5, 9, 17]) + first + ping + last
    yield bytes([0, 3, 0]) + build_frame(OP_CLOSE, build_close_payload(4000, "bye"), mask=False)
    yield bytes([1, 0, 0]) + bytes([0x82, 0x7F]) + (70000).to_bytes(8, "big") + b"x" * 64


def _inflate_seeds(kind: str) -> Iterator[bytes]:
    payloads = _payloads()
    for start in range(0, 40, 8):
        chunk = payloads[start : start + 8]
        yield bytes([0x01 | (start // 8) << 2, 255]) + b"\xfe".join(chunk)  # valid stream, big ceiling
        yield bytes([0x01, 8]) + b"\xfe".join(chunk)  # valid stream, small ceiling
        yield bytes([0x03, 255]) + b"\xfe".join(chunk) + b"\xfd" + bytes([0, 5, 0x40, 1, 9, 0x01])  # mutated
    messages = compress_zlib(payloads[:8], split_every=3) if kind == "zlib" else compress_zstd(payloads[:8])
    yield bytes([0x00, 200]) + b"\xfe".join(messages)
    if kind == "zstd":
        compressor = zstandard.ZstdCompressor(write_checksum=True)
        yield bytes([0x00, 200]) + b"\xfe".join(compressor.compress(payload) for payload in payloads[:4])
    else:
        yield bytes([0x00, 200]) + zlib.compress(payloads[0])
    yield bytes([0xC0, 0]) + (2**63).to_bytes(9, "little")


def zlib_seeds() -> Iterator[bytes]:
    return _inflate_seeds("zlib")


def zstd_seeds() -> Iterator[bytes]:
    return _inflate_seeds("zstd")


def envelope() -> Iterator[bytes]:
    header = bytes(range(1, 10))
    for payload in _payloads()[:30] + _spec_examples():
        yield header + payload
    yield bytes([2, 255, 255, 255, 255, 255, 255, 255, 255]) + bytes([4, 0, 0, 0, 1, 1, 1, 2, 5, 2, 3, 0, 0]) + b'{"a":[1,2,{"b":"\\"}"}]}'
    yield bytes([0]) + bytes(8) + b'{"op":0,"d":' + b"[" * 1200 + b"]" * 1200 + b',"s":1,"t":"X"}'


def protocol() -> Iterator[bytes]:
    # (kind, arg) pairs; kinds as in fuzz_protocol.step: 0 advance, 1 timer, 3 opened, 5 HELLO, 6 READY, 8 dispatch,
    # 9 op 1, 10 ACK, 11 op 7, 12 op 9, 13 lost, 14 grant, 15 commands, 16 close, 17 garbage, 18 errors.
    healthy = [3, 0, 5, 3, 14, 1, 6, 0, 8, 5, 8, 5, 15, 70, 1, 0, 10, 0, 0, 200, 1, 0, 10, 0, 1, 0]
    yield bytes([0, 0]) + bytes(healthy)
    yield bytes([0, 1]) + bytes(healthy + [11, 0, 13, 7, 1, 0, 3, 0, 5, 3, 7, 0, 8, 9, 12, 0, 13, 1, 1, 0, 3, 0, 5, 3, 14, 0])
    yield bytes([1, 2]) + bytes([3, 0, 5, 3, 7, 0, 8, 3, 1, 0, 1, 0, 1, 0, 1, 0, 3, 0, 5, 3])  # saved session, zombie
    yield bytes([0, 3]) + bytes(healthy + [13, 11, 0, 0, 16, 0, 13, 128])  # 4004 fatal; user close
    yield bytes([0, 0]) + bytes(healthy + [15, 127, 15, 127, 15, 127, 0, 255, 1, 0, 15, 127, 1, 0, 0, 255, 1, 0])
    yield bytes([3, 0]) + bytes([4, 0, 1, 0, 4, 0, 1, 0, 3, 0, 0, 160, 1, 0, 17, 3, 18, 0, 3, 0, 5, 3])


SEEDS = {"framing": framing, "zlib": zlib_seeds, "zstd": zstd_seeds, "envelope": envelope, "protocol": protocol}


def write(directory: Path, target: str) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    count = 0
    for seed in SEEDS[target]():
        (directory / hashlib.sha1(seed).hexdigest()).write_bytes(seed)
        count += 1
    return count


def main(argv: list[str]) -> int:
    root = Path(argv[0]) if argv else Path("tests/fuzz/seeds")
    for target in TARGETS:
        print(target, write(root / target, target))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
