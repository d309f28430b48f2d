"""Fuzz target: the websocket frame reader, compiled vs pure.

An arbitrary byte stream is cut into arbitrary chunks and fed to both twins' ``FrameReader`` (with or without a
``max_message_size``); every ``feed`` must return the same messages or raise the same exception class with the same
close code and the same ``.messages``. Close payloads are also read with ``parse_close``, and unmasked frames built
with ``build_frame`` must be byte-identical and read back to the same message.
"""

from __future__ import annotations

import sys

from tests.fuzz._common import Finding, fuzz_main, describe, instrumented, outcome, same_outcome, twins

with instrumented():
    from gateway.errors import ProtocolError

    COMPILED, PURE = twins("framing")


def _close_code(result: tuple[str, object]) -> object:
    kind, value = result
    return (getattr(value, "close_code", None), getattr(value, "messages", None)) if kind == "raise" else None


def _cuts(data: bytes, sizes: bytes) -> list[bytes]:
    chunks, position = [], 0
    for size in sizes:
        if position >= len(data):
            break
        step = size % 64 + 1 if size < 240 else (size - 239) * 512
        chunks.append(data[position : position + step])
        position += step
    if position < len(data):
        chunks.append(data[position:])
    return chunks


def check(data: bytes) -> None:
    if len(data) < 3:
        return
    mode, limit_byte, cut_count = data[0], data[1], data[2]
    cut_bytes, stream = data[3 : 3 + cut_count % 32], data[3 + cut_count % 32 :]
    limit = None if mode & 1 else (limit_byte * 37) % 70_000
    readers = COMPILED.FrameReader(limit), PURE.FrameReader(limit)
    for index, chunk in enumerate(_cuts(stream, cut_bytes)):
        feed = memoryview(chunk) if mode & 2 else chunk
        results = [outcome(lambda reader=reader: reader.feed(feed)) for reader in readers]
        if not same_outcome(*results) or _close_code(results[0]) != _close_code(results[1]):
            raise Finding(f"FrameReader(max_message_size={limit}) chunk {index}: compiled {describe(results[0])}, "
                          f"pure {describe(results[1])}")
        kind, value = results[0]
        if kind == "raise":
            if not isinstance(value, ProtocolError):
                raise Finding(f"FrameReader raised {type(value).__name__}, not a ProtocolError")
            break
        for opcode, payload in value:
            if opcode == COMPILED.OP_CLOSE:
                closes = outcome(lambda: COMPILED.parse_close(payload)), outcome(lambda: PURE.parse_close(payload))
                if not same_outcome(*closes):
                    raise Finding(f"parse_close({payload!r}): compiled {describe(closes[0])}, pure {describe(closes[1])}")
    if mode & 4 and stream:
        opcode = (COMPILED.OP_TEXT, COMPILED.OP_BINARY, COMPILED.OP_PING)[mode % 3]
        payload = stream[:125] if opcode == COMPILED.OP_PING else stream
        built = outcome(lambda: COMPILED.build_frame(opcode, payload, mask=False)), outcome(
            lambda: PURE.build_frame(opcode, payload, mask=False))
        if not same_outcome(*built):
            raise Finding(f"build_frame: compiled {describe(built[0])}, pure {describe(built[1])}")
        if built[0][0] == "ok" and opcode != COMPILED.OP_TEXT:
            back = PURE.FrameReader(None).feed(built[0][1])
            if back != [(opcode, bytes(payload))]:
                raise Finding(f"build_frame then FrameReader gave {back!r:.200}")
        masked = outcome(lambda: COMPILED.build_frame(opcode, payload)), outcome(lambda: PURE.build_frame(opcode, payload))
        if masked[0][0] != masked[1][0] or (masked[0][0] == "ok" and len(masked[0][1]) != len(masked[1][1])):
            raise Finding(f"masked build_frame: compiled {describe(masked[0])}, pure {describe(masked[1])}")


def TestOneInput(data: bytes) -> None:  # noqa: N802 - atheris' name
    check(data)


def main() -> None:
    fuzz_main(check, "framing")


if __name__ == "__main__":
    main()
