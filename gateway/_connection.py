"""A websocket client connection driven by an ``asyncio.Protocol``: the Shard's transport.

:func:`open_connection` opens one connection and returns a :class:`GatewayConnection`. Received messages go
to a callback straight from ``data_received`` (no queue, no task per message), parsed by the selected framing
twin (``gateway._framing``).

Opening handshake: ``websockets``' sans-I/O ``ClientProtocol`` builds the request and validates the response.
We cut the HTTP response ourselves at the first ``b"\\r\\n\\r\\n"`` and give ``ClientProtocol`` only the head:
a 101 response has no body, so every byte after the blank line is websocket frames and goes to our
``FrameReader`` (``ClientProtocol`` would otherwise parse those bytes as frames itself and keep them).
No extension is offered (no permessage-deflate: Discord compresses at the application level).

Closing, as the Shard sees it through ``on_close(code, reason)`` (called exactly once, never from inside a
method of this class, always from an event loop callback):

====================================================  =============================================
what happened                                         ``on_close`` arguments
====================================================  =============================================
the peer sent a close frame (its own, or the echo     the peer's code and reason (1005, "" when the
of ours)                                              frame had no code)
the peer broke the protocol (``ProtocolError``)       ``exc.close_code, str(exc)``; we sent that code
we called :meth:`~GatewayConnection.close` and no     the code and reason we sent
echo came within ``close_timeout`` / TCP ended first
:meth:`~GatewayConnection.abort` before any close     ``None, ""``
TCP ended (EOF, reset) without any close frame        ``None, ""``
====================================================  =============================================

:attr:`~GatewayConnection.close_sent`, :attr:`~GatewayConnection.close_received` and
:attr:`~GatewayConnection.closed_by_us` tell the rest (who closed, whether a close frame came back).
"""

from __future__ import annotations

import asyncio
import logging
import ssl as ssl_module
from collections.abc import Callable, Mapping
from typing import Any

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidStatus, InvalidURI
from websockets.http11 import Response
from websockets.uri import parse_uri

from . import _framing
from ._framing import OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, build_close_payload, build_frame, parse_close
from .errors import ConnectError, ProtocolError

__all__ = ["GatewayConnection", "open_connection", "DEFAULT_USER_AGENT"]

logger = logging.getLogger("gateway.connection")


def _silent_logger() -> logging.Logger:
    """A logger outside the logging hierarchy that drops everything: ``ClientProtocol``'s handshake trace
    ("= connection is CONNECTING", request and response lines) is not ours to log; its outcome is logged by us."""
    silent = logging.Logger("gateway.connection.handshake", logging.CRITICAL + 1)
    silent.addHandler(logging.NullHandler())
    silent.propagate = False
    return silent


_HANDSHAKE_LOGGER = _silent_logger()

DEFAULT_USER_AGENT = "gateway (python)"
#: Largest HTTP response head accepted during the opening handshake.
MAX_HANDSHAKE_RESPONSE_SIZE = 64 * 1024

OnMessage = Callable[[int, bytes], None]
OnMessages = Callable[[list[tuple[int, bytes]], int], int]
OnClose = Callable[["int | None", str], None]

# Connection states, in the order they happen.
_CONNECTING = 0  # TCP/TLS up, opening handshake in progress
_READY = 1  # handshake done; messages are held until open_connection has returned
_OPEN = 2  # messages are delivered
_CLOSING = 3  # we sent a close frame and wait for the echo
_CLOSED = 4  # the outcome is known (or abort() was called); nothing more is delivered or sent


class GatewayConnection(asyncio.Protocol):
    """One websocket client connection. Created only by :func:`open_connection`.

    ``on_message(opcode, payload)`` is called synchronously from ``data_received`` for every OP_TEXT / OP_BINARY
    message, in order, starting after :func:`open_connection` has returned. It must not raise: an exception
    escaping it is a fatal protocol error for asyncio, which drops the connection (``on_close(None, "")``).
    Once :meth:`close` or :meth:`abort` has been called, no more messages are delivered.

    ``on_messages(messages, start)``, when given, takes the place of ``on_message`` for runs of data messages: called
    while the connection is open with the list ``FrameReader.feed`` returned, it handles ``messages[start:]`` in
    order up to the first control frame (opcode >= 8, left to the connection) or until the connection stops being
    open, and returns the index of the first message it did not handle; the same rules apply (must not raise).
    """

    def __init__(
        self,
        handshake: ClientProtocol,
        on_message: OnMessage,
        on_close: OnClose,
        reader: Any,
        close_timeout: float,
        loop: asyncio.AbstractEventLoop,
        on_messages: OnMessages | None = None,
    ) -> None:
        self._loop = loop
        self._handshake: ClientProtocol | None = handshake
        self._handshake_buffer = bytearray()
        self._handshake_result: asyncio.Future[None] = loop.create_future()
        self._on_message = on_message
        self._on_messages = on_messages
        self._on_close = on_close
        self._feed: Callable[[bytes | bytearray | memoryview], list[tuple[int, bytes]]] = reader.feed
        self._close_timeout = close_timeout
        self._transport: asyncio.Transport | None = None
        self._state = _CONNECTING
        # Bytes that came after the handshake response, held until delivery starts.
        self._leftover: bytearray | None = None
        self._reading_paused_by_user = False
        self._writing_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._lost: asyncio.Future[None] = loop.create_future()
        self._notified = False
        self._opened = False  # the handshake succeeded: on_close will be called once
        self.close_sent: tuple[int, str] | None = None
        """The close frame we sent (code, reason), or None."""
        self.close_received: tuple[int, str] | None = None
        """The close frame the peer sent (code, reason; 1005 when it had no code), or None."""
        self.closed_by_us = False
        """True when we ended the connection: close(), abort(), or a protocol error of the peer."""

    # ------------------------------------------------------------------ public API

    @property
    def closed(self) -> bool:
        """True once ``on_close`` has been called: the connection is finished (TCP may still be shutting down)."""
        return self._notified

    @property
    def closing(self) -> bool:
        """True once :meth:`send` would raise: a close frame was sent or received, abort() was called, or TCP ended."""
        return self._state >= _CLOSING

    @property
    def write_buffer_size(self) -> int:
        """Bytes written but not yet handed to the kernel."""
        transport = self._transport
        return transport.get_write_buffer_size() if transport is not None else 0

    def send(self, payload: bytes, opcode: int = OP_TEXT) -> None:
        """Frame ``payload`` as one masked message and write it now.

        Raises ``ConnectionError`` when the connection is closing or closed. Use :meth:`drain` for backpressure.
        """
        if self._state != _OPEN and self._state != _READY:
            raise ConnectionError("websocket connection is closing or closed")
        self._transport.write(build_frame(opcode, payload))  # type: ignore[union-attr]

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake: send a close frame with ``code``/``reason`` and return at once.

        The TCP connection is closed when the peer's echo arrives, or aborted after ``close_timeout`` seconds.
        ``on_close`` follows (see the module docstring); await :meth:`wait_closed` for TCP to be gone.
        Does nothing if the connection is already closing. Raises ``ValueError`` for a code not allowed on the wire.
        """
        if self._state != _OPEN and self._state != _READY:
            return
        frame = build_frame(OP_CLOSE, build_close_payload(code, reason))
        self._state = _CLOSING
        self.closed_by_us = True
        self.close_sent = (code, reason)
        self._transport.write(frame)  # type: ignore[union-attr]
        self._timer = self._loop.call_later(self._close_timeout, self._on_close_timeout)

    def abort(self) -> None:
        """Drop the TCP connection at once, without a close frame (zombie connections).

        ``on_close`` is called soon after from the event loop: ``(None, "")``, or the code we sent if close() came
        first and no echo arrived.
        """
        if self._state < _CLOSED:
            self._state = _CLOSED
            self.closed_by_us = True
        if self._transport is not None:
            self._transport.abort()

    def pause_reading(self) -> None:
        """Stop reading from the socket (consumer backpressure) until :meth:`resume_reading`."""
        self._reading_paused_by_user = True
        if self._state >= _OPEN and self._transport is not None and not self._transport.is_closing():
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        """Read from the socket again after :meth:`pause_reading`."""
        self._reading_paused_by_user = False
        if self._state >= _OPEN and self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    async def drain(self) -> None:
        """Wait while the transport's write buffer is above its high-water mark.

        Raises ``ConnectionError`` if the connection is lost before (or while) waiting.
        """
        if self._lost.done():
            raise ConnectionError("websocket connection is closed")
        if not self._writing_paused:
            return
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._drain_waiters.append(waiter)
        try:
            await waiter
        finally:
            if waiter in self._drain_waiters:
                self._drain_waiters.remove(waiter)

    async def wait_closed(self) -> None:
        """Wait until the TCP connection is gone (after ``on_close`` in the normal case)."""
        await asyncio.shield(self._lost)

    def __repr__(self) -> str:
        state = ("connecting", "ready", "open", "closing", "closed")[self._state]
        return f"<GatewayConnection {state}>"

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        handshake = self._handshake
        assert handshake is not None
        for chunk in handshake.data_to_send():
            transport.write(chunk)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if self._state == _OPEN or self._state == _CLOSING:
            self._process_frames(data)
        elif self._state == _CONNECTING:
            self._handshake_data_received(data)
        elif self._state == _READY:
            self._leftover += data  # type: ignore[operator]
        # _CLOSED: the outcome is known; anything else the peer sends is ignored.

    def eof_received(self) -> bool | None:
        return None  # let the transport close; connection_lost reports the outcome

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        if self._state == _CONNECTING:
            self._fail_handshake("the connection closed during the websocket handshake")
        elif self._leftover is not None:
            self._start()  # deliver what arrived with the handshake response before reporting the end
        if not self._lost.done():
            self._lost.set_result(None)
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_exception(ConnectionError("websocket connection is closed"))
        if self._opened:
            code, reason = self.close_sent if self.close_sent is not None else (None, "")
            if exc is not None and not self._notified:
                logger.debug("connection lost: %s", type(exc).__name__)
            self._notify(code, reason)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)

    # ------------------------------------------------------------------ frames (hot path)

    def _process_frames(self, data: bytes | bytearray) -> None:
        try:
            messages = self._feed(data)
        except ProtocolError as exc:
            self._protocol_error(exc)
            return
        on_message = self._on_message
        on_messages = self._on_messages
        index = 0
        count = len(messages)
        while index < count:
            if on_messages is not None and self._state == _OPEN:
                index = on_messages(messages, index)  # the data messages up to the next control frame
                if index >= count:
                    break
            opcode, payload = messages[index]
            index += 1
            if opcode < OP_CLOSE:  # OP_TEXT / OP_BINARY (the reader never returns continuations)
                if self._state == _OPEN:
                    on_message(opcode, payload)
            else:
                self._control_frame(opcode, payload)

    def _control_frame(self, opcode: int, payload: bytes) -> None:
        state = self._state
        if opcode == OP_PING:
            if state == _OPEN:
                self._transport.write(build_frame(OP_PONG, payload))  # type: ignore[union-attr]
        elif opcode == OP_CLOSE:
            if state != _OPEN and state != _CLOSING:
                return
            try:
                code, reason = parse_close(payload)
            except ProtocolError as exc:
                self._protocol_error(exc)
                return
            self.close_received = (code, reason)
            if state == _OPEN:
                # The peer started the closing handshake: echo its code.
                self.close_sent = (code, "")
                self._transport.write(  # type: ignore[union-attr]
                    build_frame(OP_CLOSE, b"" if code == 1005 else build_close_payload(code))
                )
            self._close_transport()
            self._notify(code, reason)
        # OP_PONG: Discord does not use websocket pings; an unsolicited pong is allowed and ignored.

    def _protocol_error(self, exc: ProtocolError) -> None:
        """The peer broke RFC 6455: deliver what came before, send exc.close_code, close TCP, report."""
        for opcode, payload in getattr(exc, "messages", None) or ():
            if self._state >= _CLOSED:
                break
            if opcode < OP_CLOSE:
                if self._state == _OPEN:
                    self._on_message(opcode, payload)
            else:
                self._control_frame(opcode, payload)
        if self._state >= _CLOSED:
            return
        logger.warning("websocket protocol error from the server (close code %d): %s", exc.close_code, exc)
        self.closed_by_us = True
        if self._state != _CLOSING:
            self.close_sent = (exc.close_code, "")
            self._transport.write(build_frame(OP_CLOSE, build_close_payload(exc.close_code)))  # type: ignore[union-attr]
        self._close_transport()
        self._notify(exc.close_code, str(exc))

    # ------------------------------------------------------------------ closing helpers

    def _close_transport(self) -> None:
        """Flush and close TCP; abort it if it has not gone within close_timeout."""
        self._state = _CLOSED
        self._cancel_timer()
        transport = self._transport
        if transport is not None and not self._lost.done():
            transport.close()
            self._timer = self._loop.call_later(self._close_timeout, transport.abort)

    def _on_close_timeout(self) -> None:
        self._timer = None
        if self._state == _CLOSING:
            logger.debug("no close frame echoed within %.1f s; aborting", self._close_timeout)
            self._state = _CLOSED
            if self._transport is not None:
                self._transport.abort()
            code, reason = self.close_sent  # type: ignore[misc]
            self._notify(code, reason)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _notify(self, code: int | None, reason: str) -> None:
        if self._notified:
            return
        self._notified = True
        self._state = _CLOSED
        self._on_close(code, reason)

    # ------------------------------------------------------------------ opening handshake

    def _handshake_data_received(self, data: bytes) -> None:
        buffer = self._handshake_buffer
        buffer += data
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > MAX_HANDSHAKE_RESPONSE_SIZE:
                self._fail_handshake("the handshake response is too large")
            return
        end += 4
        handshake = self._handshake
        assert handshake is not None
        handshake.receive_data(bytes(buffer[:end]))
        events = handshake.events_received()
        if not events and handshake.handshake_exc is None:
            # A response with a body (so not 101): let ClientProtocol read the rest, or fail on missing bytes.
            handshake.receive_data(bytes(buffer[end:]))
            handshake.receive_eof()
            events = handshake.events_received()
        error = handshake.handshake_exc
        if error is not None or not events or not isinstance(events[0], Response):
            self._fail_handshake(_describe_handshake_error(error))
            return
        self._handshake = None
        self._handshake_buffer = bytearray()
        self._leftover = buffer[end:]
        self._state = _READY
        self._opened = True
        assert self._transport is not None
        self._transport.pause_reading()  # until open_connection has returned (see _start)
        if not self._handshake_result.done():
            self._handshake_result.set_result(None)

    def _fail_handshake(self, message: str) -> None:
        if not self._handshake_result.done():
            self._handshake_result.set_exception(ConnectError(message))
        self._state = _CLOSED
        self._notified = True  # on_close is never called for a connection that did not open
        if self._transport is not None:
            self._transport.abort()

    def _start(self) -> None:
        """Begin delivery: process the bytes that came with the handshake response, then read the socket."""
        leftover = self._leftover
        if leftover is None:
            return
        self._leftover = None
        if self._state == _READY:
            self._state = _OPEN
        if leftover and self._state < _CLOSED:
            self._process_frames(leftover)
        transport = self._transport
        if (
            self._state < _CLOSED
            and not self._reading_paused_by_user
            and transport is not None
            and not transport.is_closing()
        ):
            transport.resume_reading()


def _describe_handshake_error(error: BaseException | None) -> str:
    """A message for a failed handshake that quotes no header value (and so no secret)."""
    if isinstance(error, InvalidStatus):
        return f"websocket handshake failed: the server answered HTTP {error.response.status_code}"
    if error is None:
        return "websocket handshake failed: no valid HTTP response"
    return f"websocket handshake failed: {type(error).__name__}"


async def open_connection(
    url: str,
    *,
    on_message: OnMessage,
    on_close: OnClose,
    timeout: float = 10.0,
    ssl: ssl_module.SSLContext | None = None,
    max_message_size: int | None = None,
    headers: Mapping[str, str] | None = None,
    close_timeout: float = 2.0,
    on_messages: OnMessages | None = None,
    _reader_factory: Callable[[int | None], Any] | None = None,
) -> GatewayConnection:
    """Open a websocket connection to ``url`` (``ws://`` or ``wss://``) and complete the opening handshake.

    DNS, TCP, TLS and the handshake together are bounded by ``timeout`` seconds. For ``wss://`` the TLS context
    defaults to ``ssl.create_default_context()`` (certificates verified). ``headers`` are added to the request
    (``User-Agent`` defaults to :data:`DEFAULT_USER_AGENT`). ``max_message_size`` bounds one received message
    (None = unlimited). ``close_timeout`` bounds the wait for the close echo and for TCP to shut down.

    ``on_messages``: see :class:`GatewayConnection`.

    ``on_message`` is first called from a loop callback scheduled when this coroutine returns, so the caller
    holds the connection before any message arrives. ``on_close`` is called exactly once, only for a connection
    that opened. Raises :class:`~gateway.errors.ConnectError` on any DNS/TCP/TLS/handshake failure or timeout,
    ``ValueError`` for a URL that is not ws/wss or an ``ssl`` context with a ``ws://`` URL.
    """
    try:
        uri = parse_uri(url)
    except InvalidURI:
        raise ValueError("invalid websocket URL: expected ws://host[:port]/path or wss://...") from None
    if uri.secure:
        ssl_context: ssl_module.SSLContext | None = ssl if ssl is not None else ssl_module.create_default_context()
    elif ssl is not None:
        raise ValueError("an ssl context was given for a ws:// URL")
    else:
        ssl_context = None

    handshake = ClientProtocol(uri, max_size=None, logger=_HANDSHAKE_LOGGER)
    request = handshake.connect()
    extra_headers = dict(headers or {})
    if not any(name.lower() == "user-agent" for name in extra_headers):
        extra_headers["User-Agent"] = DEFAULT_USER_AGENT
    for name, value in extra_headers.items():
        request.headers[name] = value
    handshake.send_request(request)

    reader_factory = _reader_factory if _reader_factory is not None else _framing.FrameReader
    loop = asyncio.get_running_loop()
    connection = GatewayConnection(handshake, on_message, on_close, reader_factory(max_message_size), close_timeout, loop,
                                   on_messages)
    where = f"{uri.host}:{uri.port}"
    try:
        await asyncio.wait_for(_connect(loop, connection, uri.host, uri.port, ssl_context), timeout)
    except ConnectError:
        raise
    except asyncio.TimeoutError:
        raise ConnectError(f"connecting to {where} timed out after {timeout:g} s") from None
    except ssl_module.SSLError as exc:
        raise ConnectError(f"TLS handshake with {where} failed: {exc.reason or type(exc).__name__}") from None
    except OSError as exc:
        raise ConnectError(f"could not connect to {where}: {exc.strerror or type(exc).__name__}") from None
    logger.debug("connected to %s", where)
    loop.call_soon(connection._start)
    return connection


async def _connect(
    loop: asyncio.AbstractEventLoop,
    connection: GatewayConnection,
    host: str,
    port: int,
    ssl_context: ssl_module.SSLContext | None,
) -> None:
    """TCP (+TLS) connect and wait for the handshake; abort the transport if anything fails or is cancelled."""
    transport: asyncio.Transport | None = None
    try:
        transport, _ = await loop.create_connection(
            lambda: connection, host, port, ssl=ssl_context, server_hostname=host if ssl_context else None
        )
        await connection._handshake_result
    except BaseException:
        connection._state = _CLOSED
        connection._notified = True
        if transport is not None:
            transport.abort()
        raise
