"""The resume URL rule (issue 12): a URL from the network or from storage never downgrades wss:// to ws:// and never
uses a scheme other than ws/wss; a refused URL is logged without its query (or user info) and the configured gateway
URL is used instead. ``safe_gateway_url`` is the one function for it (also for GET /gateway/bot's ``url``)."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from types import ModuleType
from typing import Any

import pytest

from gateway import IdentifyQueue, Intents, Session, Shard, ShardId
from gateway._envelope import EventFilter
from gateway.models import ShardStatus
from gateway.protocol import DELIVER, Connect, RequestIdentify, ShardProtocol, gateway_url_refusal, safe_gateway_url
from gateway.testing import FakeGateway

from shard_helpers import WAIT, next_named, run

TOKEN = "resume-url-token"
WSS = "wss://gateway.discord.gg"
QUERY = "/?v=10&encoding=json&compress=zstd-stream"
_SCAN = EventFilter(0).scan


@pytest.mark.parametrize("candidate, configured", [
    ("wss://gateway-us-east1-b.discord.gg", WSS),
    ("WSS://Gateway.Example:443/path", WSS),
    ("ws://127.0.0.1:8080/resume", "ws://127.0.0.1:8080"),
    ("wss://127.0.0.1:8080/resume", "ws://127.0.0.1:8080"),  # an upgrade is fine
    ("wss://[::1]:9000", WSS),
])
def test_accepted(candidate: str, configured: str) -> None:
    assert gateway_url_refusal(candidate, configured) is None
    assert safe_gateway_url(candidate, configured) == candidate


@pytest.mark.parametrize("candidate, why", [
    ("ws://gateway-us-east1-b.discord.gg", "downgrade"),
    ("WS://gateway.example", "downgrade"),
    ("https://gateway.example", "scheme"),
    ("http://gateway.example", "scheme"),
    ("file:///etc/passwd", "scheme"),
    ("javascript:alert(1)", "scheme"),
    ("gateway.example", "scheme"),
    ("wss://", "host"),
    ("wss:///path", "host"),
    ("wss://host:99999", "valid URL"),
    ("wss://gate way.example", "whitespace"),
    ("wss://gateway.example/\r\nX-Injected: 1", "whitespace"),
    ("", "empty"),
    (None, "string"),
    (42, "string"),
])
def test_refused(candidate: Any, why: str, caplog: pytest.LogCaptureFixture) -> None:
    reason = gateway_url_refusal(candidate, WSS)
    assert reason is not None and why in reason
    with caplog.at_level(logging.WARNING, logger="gateway"):
        assert safe_gateway_url(candidate, WSS, source="test URL") == WSS
    assert any("refused test URL" in record.getMessage() for record in caplog.records)


def test_the_warning_leaves_out_query_and_user_info(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="gateway"):
        safe_gateway_url("ws://user:hunter2@evil.example:8443/path?token=SECRET#frag", WSS, source="resume URL")
    (record,) = caplog.records
    text = record.getMessage()
    assert "ws://evil.example:8443/path" in text and "downgrade" in text
    assert "SECRET" not in text and "hunter2" not in text and "user" not in text and "frag" not in text


# -- the protocol, without sockets ------------------------------------------------------------------------------


class _Driver:
    def __init__(self, **options: Any) -> None:
        self.proto = ShardProtocol(ShardId(0, 1), TOKEN, 513, compression="zstd-stream", rng=random.Random(1).random,
                                   **options)

    def feed(self, message: dict[str, Any], now: float) -> bool:
        payload = json.dumps(message).encode()
        op, seq, name, d_start, d_end, _ = _SCAN(payload)
        return bool(self.proto.receive(op, seq, name, payload, d_start, d_end, now) & DELIVER)

    def to_ready(self, resume_url: Any) -> None:
        proto = self.proto
        proto.start(0.0)
        assert [type(action) for action in proto.actions()] == [Connect]
        proto.connection_opened(0.1)
        self.feed({"op": 10, "d": {"heartbeat_interval": 41250}}, 0.2)
        assert proto.actions() == [RequestIdentify(0)]
        assert proto.identify_granted(0.3)
        proto.data_to_send()
        d = {"session_id": "abc", "v": 10}
        if resume_url is not ...:
            d["resume_gateway_url"] = resume_url
        self.feed({"op": 0, "t": "READY", "s": 1, "d": d}, 0.4)
        assert proto.status is ShardStatus.ACTIVE

    def next_connect(self) -> Connect:
        self.proto.connection_lost(None, "", 10.0)
        (action,) = self.proto.actions()
        assert isinstance(action, Connect)
        return action


@pytest.mark.parametrize("resume_url", ["ws://gateway-us-east1-b.discord.gg/?token=SECRET", "https://x.example",
                                        "wss://", 12, None, ""])
def test_ready_with_an_unsafe_resume_url_resumes_on_the_configured_url(
        resume_url: Any, caplog: pytest.LogCaptureFixture) -> None:
    driver = _Driver()
    with caplog.at_level(logging.WARNING, logger="gateway"):
        driver.to_ready(resume_url)
    assert driver.proto.resume_url is None
    assert driver.next_connect() == Connect(WSS + QUERY, resume=True, attempt=0)
    if resume_url:  # an absent/empty URL is not a refusal, just nothing to use
        assert any("READY resume_gateway_url" in record.getMessage() for record in caplog.records)
    assert all("SECRET" not in record.getMessage() for record in caplog.records)


def test_ready_with_a_safe_resume_url_uses_it() -> None:
    driver = _Driver()
    driver.to_ready("wss://gateway-us-east1-b.discord.gg")
    assert driver.next_connect() == Connect("wss://gateway-us-east1-b.discord.gg" + QUERY, resume=True, attempt=0)


def test_saved_resume_url_is_checked_too(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="gateway"):
        proto = ShardProtocol(ShardId(0, 1), TOKEN, 513, session=Session("abc", 5),
                              resume_url="ws://stored.example/?token=SECRET")
    assert proto.resume_url is None
    assert proto.connect_url() == WSS + "/?v=10&encoding=json"
    assert any("saved resume_url" in record.getMessage() for record in caplog.records)
    assert all("SECRET" not in record.getMessage() for record in caplog.records)
    kept = ShardProtocol(ShardId(0, 1), TOKEN, 513, session=Session("abc", 5), resume_url="wss://stored.example")
    assert kept.connect_url() == "wss://stored.example/?v=10&encoding=json"
    with pytest.raises(TypeError, match="resume_url must be a str"):
        ShardProtocol(ShardId(0, 1), TOKEN, 513, session=Session("abc", 5), resume_url=b"wss://x")  # type: ignore[arg-type]


# -- over loopback ----------------------------------------------------------------------------------------------


def _shard(gw: FakeGateway, twins: dict[str, ModuleType], **options: Any) -> Shard:
    return Shard(ShardId(0, 1), TOKEN, Intents.GUILDS, gateway_url=gw.url, identify_queue=IdentifyQueue(delay=0),
                 rng=lambda: 0.0, _twins=twins, **options)


def test_a_ready_naming_another_scheme_is_not_followed(twins: dict[str, ModuleType],
                                                       caplog: pytest.LogCaptureFixture) -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw:
            shard = _shard(gw, twins)
            try:
                await next_named(shard, "READY")
                assert shard.resume_url == gw.resume_gateway_url  # the fake's own ws:// URL, as configured: used
                session = gw.session
                assert session is not None
                # A second READY (new resume URL) on the live session, then a dropped connection.
                bad = f"http://127.0.0.1:{gw.port}/resume?token=SECRET"
                await gw.dispatch("READY", {"session_id": session.id, "resume_gateway_url": bad, "v": 10,
                                            "user": gw.user, "guilds": [], "shard": [0, 1]})
                await next_named(shard, "READY")
                assert shard.resume_url is None
                await gw.drop()
                await next_named(shard, "RESUMED")
                second = gw.connections[1]
                assert second.path == "/" and not second.used_resume_url
                assert (await gw.wait_for_op(6))["d"]["session_id"] == session.id
            finally:
                await asyncio.wait_for(shard.close(), WAIT)

    with caplog.at_level(logging.WARNING, logger="gateway"):
        run(body)
    refusals = [record.getMessage() for record in caplog.records if "refused" in record.getMessage()]
    assert refusals and all("SECRET" not in text for text in refusals)


def test_a_saved_session_with_a_bad_resume_url_resumes_on_the_gateway_url(twins: dict[str, ModuleType]) -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gw:
            shard = _shard(gw, twins)
            try:
                await next_named(shard, "READY")
                saved = shard.session
                assert saved is not None
            finally:
                await asyncio.wait_for(shard.close(4000), WAIT)
            restored = _shard(gw, twins, session=saved, resume_url=f"ftp://127.0.0.1:{gw.port}/resume")
            try:
                await next_named(restored, "RESUMED")
                assert gw.connections[1].path == "/"
            finally:
                await asyncio.wait_for(restored.close(), WAIT)

    run(body)
