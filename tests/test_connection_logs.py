"""The library logs only its own statements: websockets' handshake trace ("= connection is CONNECTING", request and
response lines) does not appear under ``gateway.connection`` (or anywhere) at any level (issue 12)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from gateway._connection import open_connection
from gateway.testing import FakeGateway

from shard_helpers import run


def test_handshake_trace_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    messages: list[bytes] = []

    async def body() -> None:
        async with FakeGateway() as gw:
            closed = asyncio.get_running_loop().create_future()
            connection = await open_connection(
                gw.url + "/?v=10&encoding=json",
                on_message=lambda opcode, message: messages.append(message),
                on_close=lambda code, reason: closed.done() or closed.set_result(code),
            )
            for _ in range(500):
                if messages:
                    break
                await asyncio.sleep(0.01)
            connection.close(1000)
            await asyncio.wait_for(closed, 5)

    with caplog.at_level(logging.DEBUG):
        run(body)
    assert messages, "the connection received HELLO"
    ours = [record for record in caplog.records if record.name == "gateway.connection"]
    assert any(record.getMessage().startswith("connected to ") for record in ours)
    websockets_lines = ("= connection is", "> GET", "< HTTP", "> Host", "< Upgrade")
    for record in caplog.records:
        if record.name.startswith("gateway.connection") or record.name.startswith("websockets.client"):
            assert not record.getMessage().startswith(websockets_lines), (record.name, record.getMessage())
