"""Hostile payloads end to end: a real Shard over loopback against ``gateway.testing.FakeGateway``, both twins.

Issue 14: a payload nested about 1,000 deep made the pure envelope twin raise RecursionError out of
``Shard._on_message``. Here the fake gateway sends payloads nested up to 100,000 deep (in ``d``, in another key, in
``op``, in an op 9's ``d``) through every compression; the shard must deliver what is valid, count and skip what is
not, keep its connection and session, and go on delivering. ``_on_message`` must also survive an exception nobody
expects (a bug): it is logged with its traceback and counted, and the shard keeps going.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

import gateway._json
from gateway import _envelope_py
from gateway import Event, IdentifyQueue, Intents, PayloadError, Shard, ShardId, ShardStatus
from gateway.testing import FakeGateway

from shard_helpers import WAIT, next_named, run, until

TOKEN = "shard-payloads-token"
COMPRESSIONS = [None, "zlib-stream", "zstd-stream"]
DEEP = 100_000


def deep_array(depth: int) -> bytes:
    return b"[" * depth + b'"x"' + b"]" * depth


@contextlib.asynccontextmanager
async def running(gw: FakeGateway, twins: dict[str, Any], **options: Any) -> AsyncIterator[Shard]:
    shard = Shard(ShardId(0, 1), TOKEN, Intents.GUILDS | Intents.GUILD_MESSAGES, gateway_url=gw.url,
                  identify_queue=IdentifyQueue(delay=0), rng=lambda: 0.5, _twins=twins, **options)
    shard.start()
    try:
        yield shard
    finally:
        await shard.close()


async def send_dispatch(gw: FakeGateway, d: bytes, name: bytes = b"MESSAGE_CREATE", extra: bytes = b"") -> int:
    """Send a hand-written dispatch with the fake's next sequence number (so later dispatches keep increasing)."""
    session = gw.session
    assert session is not None
    session.seq += 1
    assert await gw.send_raw(b'{"t":"%s","s":%d,"op":0,%s"d":%s}' % (name, session.seq, extra, d))
    return session.seq


@pytest.fixture(params=["default", "json"])
def json_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The selected JSON backend, and the stdlib one (which raises RecursionError on deep input)."""
    if request.param == "json":
        loads, dumps, errors, views = gateway._json._build("json")
        monkeypatch.setattr(gateway._json, "loads", loads)
        monkeypatch.setattr(gateway._json, "DECODE_ERRORS", errors)
        monkeypatch.setattr(gateway._json, "VIEWS", views)
    return str(request.param)


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_deeply_nested_payloads_do_not_break_the_shard(
    twins: dict[str, ModuleType], compression: str | None, json_backend: str
) -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw, running(gw, twins, compression=compression) as shard:
            await next_named(shard, "READY")
            session_id = shard.session.id  # type: ignore[union-attr]
            delivered = []
            for depth in (1000, DEEP):
                delivered.append((await send_dispatch(gw, deep_array(depth)), deep_array(depth)))
                # deep in a key nobody reads: skipped structurally, the event is delivered
                delivered.append((await send_dispatch(gw, b"{}", extra=b'"x":%s,' % deep_array(depth)), b"{}"))
            # invalid: a deep container as op, and an op 9 whose d is deep (decoded by the protocol)
            assert await gw.send_raw(b'{"t":null,"s":null,"op":' + deep_array(DEEP) + b',"d":null}')
            assert await gw.send_raw(b'{"op":9,"d":' + deep_array(DEEP) + b"}")
            good = await gw.dispatch("MESSAGE_CREATE", {"id": "1", "content": "still here"})

            events: list[Event] = []
            last = await next_named(shard, "MESSAGE_CREATE", seen=events)
            while last.seq != good:
                events.append(last)
                last = await next_named(shard, "MESSAGE_CREATE")
            assert [(event.seq, event.raw_data) for event in events] == delivered
            assert events[2].raw_data == deep_array(DEEP)
            with pytest.raises(PayloadError, match="MESSAGE_CREATE"):
                events[2].data  # no JSON backend decodes 100,000 levels: a PayloadError, never RecursionError
            assert events[3].data == {}
            assert last.data == {"id": "1", "content": "still here"}
            await until(lambda: shard.payload_errors == 2, what="two payload errors")
            assert len(gw.connections) == 1 and gw.connections[0].open
            assert gw.received_payloads(6) == [] and len(gw.received_payloads(2)) == 1
            assert shard.status is ShardStatus.ACTIVE and shard.session.id == session_id  # type: ignore[union-attr]

    run(body, timeout=60)


class _FailingFilter:
    """An envelope filter that raises ZeroDivisionError (a stand-in for a bug) on payloads containing MARKER."""

    def __init__(self, real_type: Any, wanted: int) -> None:
        self._real = real_type(wanted)
        self.wanted = self._real.wanted
        self.position = self.sequence = 0

    def scan(self, payload: bytes) -> Any:
        if MARKER in payload:
            raise ZeroDivisionError("injected")
        return self._real.scan(payload)

    # The shard's fast lane, as the reference twin runs it, over this filter's failing scan.
    run = _envelope_py.EventFilter.run


class _FailingInflater:
    """An inflater that raises ZeroDivisionError (a stand-in for a bug) once it has inflated a MARKER payload."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def feed(self, message: bytes) -> bytes | None:
        payload = self._real.feed(message)
        if payload is not None and MARKER in payload:
            raise ZeroDivisionError("injected")
        return payload  # type: ignore[no-any-return]

    def reset(self) -> None:
        self._real.reset()


MARKER = b"boom-6b1d"


def _failing(twins: dict[str, ModuleType], step: str) -> dict[str, Any]:
    if step == "scan":
        real = twins["envelope"].EventFilter
        return {**twins, "envelope": SimpleNamespace(EventFilter=lambda wanted: _FailingFilter(real, wanted),
                                                      Event=twins["envelope"].Event)}
    make = twins["inflate"].make_inflater

    def make_inflater(compression: str | None, max_size: int) -> Any:
        inflater = make(compression, max_size)
        return None if inflater is None else _FailingInflater(inflater)

    return {**twins, "inflate": SimpleNamespace(make_inflater=make_inflater)}


@pytest.mark.parametrize(
    ("step", "compression"), [("scan", c) for c in COMPRESSIONS] + [("inflate", c) for c in COMPRESSIONS if c]
)
def test_an_unexpected_exception_is_logged_and_the_shard_goes_on(
    twins: dict[str, ModuleType], compression: str | None, step: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Fault injection below the transport (the socket and the fake gateway are real): a bug in one step.
    caplog.set_level(logging.ERROR, logger="gateway.shard")

    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw, running(gw, _failing(twins, step), compression=compression) as shard:
            await next_named(shard, "READY")
            await gw.send_raw(b'{"op":0,"t":"X","s":null,"d":"' + MARKER + b'"}')
            good = await gw.dispatch("MESSAGE_CREATE", {"id": "2"})
            event = await next_named(shard, "MESSAGE_CREATE")
            assert (event.seq, event.data) == (good, {"id": "2"})
            assert shard.payload_errors == 1
            errors = [record for record in caplog.records if record.name == "gateway.shard"]
            assert len(errors) == 1 and "ZeroDivisionError" in errors[0].getMessage()
            assert errors[0].exc_info is not None and errors[0].exc_info[0] is ZeroDivisionError
            assert TOKEN not in caplog.text
            if step == "scan":
                assert len(gw.connections) == 1  # the payload is skipped; the stream is intact
                assert gw.received_payloads(6) == []
            else:
                # The inflater's state is unknown after an exception out of it: resume on a new connection (the
                # fake replays what was missed, so the good event above still arrived, once).
                await until(lambda: len(gw.received_payloads(6)) == 1, what="RESUME")
            assert shard.status in (ShardStatus.ACTIVE, ShardStatus.RESUMING)

    run(body, timeout=WAIT * 4)
