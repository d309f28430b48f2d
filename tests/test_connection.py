"""GatewayConnection over real loopback sockets, on both framing twins.

Servers are either ``websockets``' asyncio server (well-behaved peer) or a raw asyncio server that writes
hand-made bytes (handshake response and frames in one write, masked frames, no close echo, ...).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import time
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.utils import accept_key

from gateway._connection import GatewayConnection, open_connection
from gateway.errors import ConnectError

OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 1, 2, 8, 9, 10
TIMEOUT = 5.0


class Recorder:
    """Collects on_message / on_close calls; remembers whether the caller already held the connection."""

    def __init__(self) -> None:
        self.messages: list[tuple[int, bytes]] = []
        self.closes: list[tuple[int | None, str]] = []
        self.connection: GatewayConnection | None = None
        self.delivered_before_return = False
        self.message_arrived = asyncio.Event()
        self.closed = asyncio.Event()

    def on_message(self, opcode: int, payload: bytes) -> None:
        if self.connection is None:
            self.delivered_before_return = True
        self.messages.append((opcode, payload))
        self.message_arrived.set()

    def on_close(self, code: int | None, reason: str) -> None:
        self.closes.append((code, reason))
        self.closed.set()

    async def wait_messages(self, count: int) -> None:
        while len(self.messages) < count:
            self.message_arrived.clear()
            await asyncio.wait_for(self.message_arrived.wait(), TIMEOUT)

    async def wait_closed(self) -> None:
        await asyncio.wait_for(self.closed.wait(), TIMEOUT)


async def connect(framing: ModuleType, port: int, recorder: Recorder, **kwargs: Any) -> GatewayConnection:
    connection = await open_connection(
        f"ws://127.0.0.1:{port}/?v=10&encoding=json",
        on_message=recorder.on_message,
        on_close=recorder.on_close,
        _reader_factory=framing.FrameReader,
        **kwargs,
    )
    recorder.connection = connection
    return connection


def server_frame(opcode: int, payload: bytes, *, mask: bool = False) -> bytes:
    return Frame(Opcode(opcode), payload).serialize(mask=mask)


def close_payload(code: int, reason: str = "") -> bytes:
    return struct.pack("!H", code) + reason.encode()


async def read_client_frame(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """Read one frame a client sent: (opcode, unmasked payload, was_masked)."""
    first, second = await reader.readexactly(2)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", await reader.readexactly(8))
    masked = bool(second & 0x80)
    key = await reader.readexactly(4) if masked else b"\0\0\0\0"
    data = await reader.readexactly(length)
    payload = bytes(byte ^ key[index % 4] for index, byte in enumerate(data))
    return first & 0x0F, payload, masked


RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def accept_handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, extra: bytes = b"") -> bytes:
    """Read the client's upgrade request, answer 101 (+ ``extra`` in the same write); return the request head."""
    head = await reader.readuntil(b"\r\n\r\n")
    key = next(
        line.split(b":", 1)[1].strip().decode()
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    response = (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n"
    ).encode()
    writer.write(response + extra)
    await writer.drain()
    return head


async def raw_server(handler: RawHandler) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def run(coroutine: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coroutine, 15))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- data both ways


def test_text_and_binary_messages_both_ways(framing: ModuleType) -> None:
    async def main() -> None:
        received: list[str | bytes] = []

        async def handler(ws: ServerConnection) -> None:
            await ws.send("hello from server")
            await ws.send(b"\x00\x01\xff")
            async for message in ws:
                received.append(message)
                await ws.send(message)  # echo keeps the type: str -> text, bytes -> binary

        async with serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            recorder = Recorder()
            connection = await connect(framing, port, recorder)
            connection.send(b'{"op":1,"d":null}')
            connection.send(b"\x10\x20", OP_BINARY)
            connection.send("h\u00e9llo".encode() * 40_000)  # 64-bit length, > one TCP segment
            await recorder.wait_messages(5)
            connection.close()
            await recorder.wait_closed()
            await asyncio.wait_for(connection.wait_closed(), TIMEOUT)

        assert received == ['{"op":1,"d":null}', b"\x10\x20", "h\u00e9llo" * 40_000]
        assert recorder.messages == [
            (OP_TEXT, b"hello from server"),
            (OP_BINARY, b"\x00\x01\xff"),
            (OP_TEXT, b'{"op":1,"d":null}'),
            (OP_BINARY, b"\x10\x20"),
            (OP_TEXT, "h\u00e9llo".encode() * 40_000),
        ]
        assert recorder.closes == [(1000, "")]
        assert not recorder.delivered_before_return

    run(main())


def test_frames_in_the_same_write_as_the_handshake_response(framing: ModuleType) -> None:
    async def main() -> None:
        request_heads: list[bytes] = []

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            frames = server_frame(OP_TEXT, b'{"op":10}') + server_frame(OP_BINARY, b"\x78\x9c")
            request_heads.append(await accept_handshake(reader, writer, extra=frames))
            await reader.read()  # hold the connection until the client leaves
            writer.close()

        server, port = await raw_server(handler)
        async with server:
            recorder = Recorder()
            connection = await connect(framing, port, recorder, headers={"X-Test": "yes"})
            await recorder.wait_messages(2)
            connection.abort()
            await recorder.wait_closed()

        assert recorder.messages == [(OP_TEXT, b'{"op":10}'), (OP_BINARY, b"\x78\x9c")]
        assert not recorder.delivered_before_return  # delivery starts once open_connection has returned
        head = request_heads[0]
        assert head.startswith(b"GET /?v=10&encoding=json HTTP/1.1\r\n")
        assert b"\r\nUser-Agent: gateway (python)\r\n" in head
        assert b"\r\nX-Test: yes\r\n" in head
        assert b"sec-websocket-extensions" not in head.lower()  # no permessage-deflate

    run(main())


def test_ping_is_answered_with_the_same_payload(framing: ModuleType) -> None:
    async def main() -> None:
        pong_payloads: list[bytes] = []

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await accept_handshake(reader, writer, extra=server_frame(OP_PING, b"are you there"))
            opcode, payload, masked = await read_client_frame(reader)
            assert opcode == OP_PONG and masked
            pong_payloads.append(payload)
            writer.write(server_frame(OP_CLOSE, close_payload(1000)))
            await read_client_frame(reader)
            writer.close()

        server, port = await raw_server(handler)
        async with server:
            recorder = Recorder()
            await connect(framing, port, recorder)
            await recorder.wait_closed()

        assert pong_payloads == [b"are you there"]
        assert recorder.messages == []  # control frames never reach on_message
        assert recorder.closes == [(1000, "")]

    run(main())


# ---------------------------------------------------------------------------------------------- closing


def test_server_close_is_echoed_and_reported(framing: ModuleType) -> None:
    async def main() -> None:
        echoes: list[tuple[int, str] | None] = []

        async def handler(ws: ServerConnection) -> None:
            await ws.close(4000, "reconnect please")
            rcvd = ws.protocol.close_rcvd
            echoes.append(None if rcvd is None else (rcvd.code, rcvd.reason))

        async with serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            recorder = Recorder()
            connection = await connect(framing, port, recorder)
            await recorder.wait_closed()
            await asyncio.wait_for(connection.wait_closed(), TIMEOUT)
            with pytest.raises(ConnectionError):
                connection.send(b"too late")

        assert recorder.closes == [(4000, "reconnect please")]
        assert echoes == [(4000, "")]
        assert connection.close_received == (4000, "reconnect please")
        assert connection.close_sent == (4000, "")
        assert not connection.closed_by_us and connection.closed and connection.closing

    run(main())


def test_our_close_reaches_the_server_and_the_echo_is_reported(framing: ModuleType) -> None:
    async def main() -> None:
        server_saw: list[tuple[int, str]] = []

        async def handler(ws: ServerConnection) -> None:
            try:
                async for _ in ws:
                    pass
            except ConnectionClosed:  # raised for codes other than 1000/1001
                pass
            server_saw.append((ws.close_code, ws.close_reason))  # type: ignore[arg-type]

        async with serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            recorder = Recorder()
            connection = await connect(framing, port, recorder)
            connection.close(4900, "resuming")
            connection.close(1000)  # a second close is a no-op
            with pytest.raises(ConnectionError):
                connection.send(b"after close")
            assert recorder.closes == []  # never called from inside close()
            await recorder.wait_closed()
            await asyncio.wait_for(connection.wait_closed(), TIMEOUT)
            await asyncio.sleep(0.05)  # let the server handler record

        assert server_saw == [(4900, "resuming")]
        assert recorder.closes == [(4900, "resuming")]
        assert connection.close_sent == (4900, "resuming")
        assert connection.close_received == (4900, "resuming")
        assert connection.closed_by_us

    run(main())


def test_close_without_echo_times_out_with_our_code(framing: ModuleType) -> None:
    async def main() -> None:
        client_frames: list[tuple[int, bytes]] = []

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await accept_handshake(reader, writer)
            opcode, payload, _ = await read_client_frame(reader)
            client_frames.append((opcode, payload))
            await reader.read()  # never echo
            writer.close()

        server, port = await raw_server(handler)
        async with server:
            recorder = Recorder()
            connection = await connect(framing, port, recorder, close_timeout=0.2)
            started = time.monotonic()
            connection.close(1001, "going away")
            await recorder.wait_closed()
            elapsed = time.monotonic() - started
            await asyncio.wait_for(connection.wait_closed(), TIMEOUT)

        assert client_frames == [(OP_CLOSE, close_payload(1001, "going away"))]
        assert recorder.closes == [(1001, "going away")]
        assert connection.close_received is None and connection.closed_by_us
        assert 0.15 <= elapsed < 2.0

    run(main())


def test_abort_drops_tcp_without_close_frame(framing: ModuleType) -> None:
    async def main() -> None:
        server_saw: list[object] = []

        async def handler(ws: ServerConnection) -> None:
            try:
                await ws.recv()
            except ConnectionClosed:
                server_saw.append(ws.protocol.close_rcvd)

        async with serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            recorder = Recorder()
            connection = await connect(framing, port, recorder)
            connection.abort()
            assert recorder.closes == []  # reported from the loop, not from inside abort()
            with pytest.raises(ConnectionError):
                connection.send(b"x")
            await recorder.wait_closed()
            await asyncio.wait_for(connection.wait_closed(), TIMEOUT)
            await asyncio.sleep(0.05)

        assert server_saw == [None]  # the server got no close frame
        assert recorder.closes == [(None, "")]
        assert connection.close_sent is None and connection.closed_by_us

    run(main())


def test_eof_without_close_frame_reports_none(framing: ModuleType) -> None:
    async def main() -> None:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await accept_handshake(reader, writer, extra=server_frame(OP_TEXT, b"last words"))
            writer.close()

        server, port = await raw_server(handler)
        async with server:
            recorder = Recorder()
            connection = await connect(framing, port, recorder)
            await recorder.wait_closed()
            await asyncio.wait_for(connection.wait_closed(), TIMEOUT)

        assert recorder.messages == [(OP_TEXT, b"last words")]
        assert recorder.closes == [(None, "")]
        assert not connection.closed_by_us

    run(main())


# ---------------------------------------------------------------------------------------------- protocol errors


async def _protocol_error_case(
    framing: ModuleType, bad_bytes: bytes, **kwargs: Any
) -> tuple[Recorder, list[tuple[int, bytes]]]:
    client_frames: list[tuple[int, bytes]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accept_handshake(reader, writer)
        writer.write(bad_bytes)
        try:
            while True:
                opcode, payload, _ = await read_client_frame(reader)
                client_frames.append((opcode, payload))
        except asyncio.IncompleteReadError:
            pass
        writer.close()

    server, port = await raw_server(handler)
    async with server:
        recorder = Recorder()
        connection = await connect(framing, port, recorder, **kwargs)
        await recorder.wait_closed()
        await asyncio.wait_for(connection.wait_closed(), TIMEOUT)
        await asyncio.sleep(0.05)
    assert connection.closed_by_us
    return recorder, client_frames


def test_masked_server_frame_fails_with_1002(framing: ModuleType) -> None:
    async def main() -> None:
        good = server_frame(OP_TEXT, b"fine")
        bad = server_frame(OP_TEXT, b"masked", mask=True)
        recorder, client_frames = await _protocol_error_case(framing, good + bad)
        assert recorder.messages == [(OP_TEXT, b"fine")]  # what came before the error is delivered
        assert len(recorder.closes) == 1 and recorder.closes[0][0] == 1002
        assert client_frames == [(OP_CLOSE, close_payload(1002))]

    run(main())


def test_oversized_message_fails_with_1009(framing: ModuleType) -> None:
    async def main() -> None:
        recorder, client_frames = await _protocol_error_case(
            framing, server_frame(OP_BINARY, b"x" * 2000), max_message_size=1000
        )
        assert recorder.messages == []
        assert len(recorder.closes) == 1 and recorder.closes[0][0] == 1009
        assert client_frames == [(OP_CLOSE, close_payload(1009))]

    run(main())


def test_malformed_close_frame_fails_with_1002(framing: ModuleType) -> None:
    async def main() -> None:
        recorder, client_frames = await _protocol_error_case(framing, server_frame(OP_CLOSE, b"\x03"))
        assert recorder.closes[0][0] == 1002 and len(recorder.closes) == 1
        assert client_frames == [(OP_CLOSE, close_payload(1002))]

    run(main())


# ---------------------------------------------------------------------------------------------- backpressure


def test_pause_and_resume_reading(framing: ModuleType) -> None:
    async def main() -> None:
        go = asyncio.Event()

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await accept_handshake(reader, writer)
            await go.wait()
            writer.write(server_frame(OP_TEXT, b"after pause"))
            await reader.read()
            writer.close()

        server, port = await raw_server(handler)
        async with server:
            recorder = Recorder()
            connection = await connect(framing, port, recorder)
            connection.pause_reading()
            go.set()
            await asyncio.sleep(0.2)
            assert recorder.messages == []
            connection.resume_reading()
            await recorder.wait_messages(1)
            assert connection.write_buffer_size == 0
            await connection.drain()  # nothing buffered: returns at once
            connection.abort()
            await recorder.wait_closed()
            with pytest.raises(ConnectionError):
                await connection.drain()

        assert recorder.messages == [(OP_TEXT, b"after pause")]

    run(main())


# ---------------------------------------------------------------------------------------------- connect failures


def test_handshake_that_never_answers_times_out(framing: ModuleType) -> None:
    async def main() -> None:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()  # accept TCP, never answer the upgrade request
            writer.close()

        server, port = await raw_server(handler)
        async with server:
            started = time.monotonic()
            with pytest.raises(ConnectError, match="timed out"):
                await connect(framing, port, Recorder(), timeout=0.3)
            assert 0.25 <= time.monotonic() - started < 2.0

    run(main())


def test_refused_port_raises_connect_error(framing: ModuleType) -> None:
    async def main() -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        recorder = Recorder()
        with pytest.raises(ConnectError) as info:
            await open_connection(
                f"ws://127.0.0.1:{port}/?token=SECRET-IN-QUERY",
                on_message=recorder.on_message,
                on_close=recorder.on_close,
                _reader_factory=framing.FrameReader,
            )
        assert "SECRET-IN-QUERY" not in str(info.value)
        assert recorder.closes == []

    run(main())


def test_rejected_handshake_raises_connect_error_without_header_values(framing: ModuleType) -> None:
    async def main() -> None:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 403 Forbidden\r\nX-Secret: HEADER-VALUE\r\nContent-Length: 4\r\n\r\nnope")
            await writer.drain()
            writer.close()

        async def bad_accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: WRONG-ACCEPT-VALUE\r\n\r\n"
            )
            await writer.drain()
            await reader.read()
            writer.close()

        for rejecting, expected in ((handler, "HTTP 403"), (bad_accept, "handshake failed")):
            server, port = await raw_server(rejecting)
            async with server:
                recorder = Recorder()
                with pytest.raises(ConnectError, match=expected) as info:
                    await connect(framing, port, recorder)
                assert "HEADER-VALUE" not in str(info.value) and "WRONG-ACCEPT-VALUE" not in str(info.value)
                assert info.value.__cause__ is None
                assert recorder.closes == []

    run(main())


def test_wss_against_a_plain_server_fails_the_tls_handshake(framing: ModuleType) -> None:
    async def main() -> None:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(100)
            writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            writer.close()

        server, port = await raw_server(handler)
        async with server:
            recorder = Recorder()
            with pytest.raises(ConnectError):
                await open_connection(
                    f"wss://127.0.0.1:{port}/",
                    on_message=recorder.on_message,
                    on_close=recorder.on_close,
                    timeout=3,
                    _reader_factory=framing.FrameReader,
                )

    run(main())


def test_bad_arguments_raise_value_error() -> None:
    async def main() -> None:
        recorder = Recorder()
        with pytest.raises(ValueError):
            await open_connection("http://127.0.0.1/", on_message=recorder.on_message, on_close=recorder.on_close)
        with pytest.raises(ValueError):
            await open_connection(
                "ws://127.0.0.1:1/",
                on_message=recorder.on_message,
                on_close=recorder.on_close,
                ssl=ssl.create_default_context(),
            )

    run(main())


# ---------------------------------------------------------------------------------------------- batches (on_messages)


class BatchRecorder(Recorder):
    """Takes runs of data messages through on_messages, the way the Shard's fast lane does; ``close_after`` closes
    the connection (code 4000) from inside the callback after that many messages, as the shard does on op 7."""

    def __init__(self, close_after: int | None = None) -> None:
        super().__init__()
        self.batched: list[tuple[int, bytes]] = []
        self.close_after = close_after

    def on_messages(self, messages: list[tuple[int, bytes]], start: int) -> int:
        index = start
        while index < len(messages) and messages[index][0] < OP_CLOSE:
            self.batched.append(messages[index])
            index += 1
            self.message_arrived.set()
            if self.close_after is not None and len(self.batched) == self.close_after:
                assert self.connection is not None
                self.connection.close(4000, "reconnect")
                return index
        return index


def _batch_server(frames: bytes, pongs: list[bytes]) -> RawHandler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accept_handshake(reader, writer, extra=frames)
        try:
            while True:
                opcode, payload, _ = await read_client_frame(reader)
                if opcode == OP_PONG:
                    pongs.append(payload)
                elif opcode == OP_CLOSE:
                    writer.write(server_frame(OP_CLOSE, payload))
                    break
        except asyncio.IncompleteReadError:
            pass
        writer.close()

    return handler


def test_batches_stop_at_control_frames_and_keep_the_order(framing: ModuleType) -> None:
    frames = (server_frame(OP_TEXT, b"a") + server_frame(OP_BINARY, b"b") + server_frame(OP_PING, b"p")
              + server_frame(OP_TEXT, b"c") + server_frame(OP_CLOSE, close_payload(1000)) + server_frame(OP_TEXT, b"d"))

    async def main() -> None:
        pongs: list[bytes] = []
        server, port = await raw_server(_batch_server(frames, pongs))
        async with server:
            recorder = BatchRecorder()
            await connect(framing, port, recorder, on_messages=recorder.on_messages)
            await recorder.wait_closed()
            await asyncio.sleep(0.05)
        assert recorder.batched == [(OP_TEXT, b"a"), (OP_BINARY, b"b"), (OP_TEXT, b"c")]  # nothing after the close
        assert recorder.messages == []  # every data message went through the batch callback
        assert pongs == [b"p"] and recorder.closes == [(1000, "")]

    run(main())


def test_batches_end_when_the_callback_closes_the_connection(framing: ModuleType) -> None:
    frames = b"".join(server_frame(OP_TEXT, bytes([0x61 + i])) for i in range(4))

    async def main() -> None:
        server, port = await raw_server(_batch_server(frames, []))
        async with server:
            recorder = BatchRecorder(close_after=1)
            await connect(framing, port, recorder, on_messages=recorder.on_messages)
            await recorder.wait_closed()
        assert recorder.batched == [(OP_TEXT, b"a")] and recorder.messages == []  # none after our close
        assert recorder.closes == [(4000, "reconnect")]

    run(main())
