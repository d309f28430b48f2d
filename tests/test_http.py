"""gateway.http: the models, the pure retry policy (no sockets), and fetch_gateway_info over loopback."""

from __future__ import annotations

import asyncio
import json
import logging
import math
from typing import Any, Awaitable, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hypothesis_budget import examples

from gateway import AuthenticationError, GatewayError, GatewayInfo, SessionStartLimit, fetch_gateway_info
from gateway.errors import HTTPError
from gateway.http import RetryPolicy, authorization_header, retry_delay, user_agent

TOKEN = "MTAwMDAwMDAwMDAwMDAwMDAw.secret-part.xyz"
GOOD_BODY = {
    "url": "wss://gateway.discord.gg",
    "shards": 9,
    "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 14400000, "max_concurrency": 1},
}
FAST = RetryPolicy(max_attempts=4, max_elapsed=10.0, base_delay=0.01, max_delay=0.02, max_retry_after=5.0)


def run(test: Callable[[], Awaitable[None]], timeout: float = 15.0) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(test(), timeout)

    asyncio.run(bounded())


# ------------------------------------------------------------------------------------------------------ models


def test_gateway_info_from_discords_doc_example_converts_reset_after_to_seconds() -> None:
    info = GatewayInfo.from_dict(GOOD_BODY)
    assert info.url == "wss://gateway.discord.gg"
    assert info.shards == 9
    assert info.session_start_limit == SessionStartLimit(total=1000, remaining=999, reset_after=14400.0, max_concurrency=1)
    assert info.to_dict() == GOOD_BODY
    with pytest.raises(AttributeError):
        info.shards = 3  # type: ignore[misc]
    assert GatewayInfo.from_dict({**GOOD_BODY, "extra": 1}) == info


@pytest.mark.parametrize(
    ("body", "error", "field"),
    [
        ([], TypeError, "JSON object"),
        ({**GOOD_BODY, "url": 5}, TypeError, "url"),
        ({**GOOD_BODY, "url": "https://x"}, ValueError, "url"),
        ({k: v for k, v in GOOD_BODY.items() if k != "url"}, ValueError, "url"),
        ({**GOOD_BODY, "shards": "9"}, TypeError, "shards"),
        ({**GOOD_BODY, "shards": True}, TypeError, "shards"),
        ({**GOOD_BODY, "shards": 0}, ValueError, "shards"),
        ({k: v for k, v in GOOD_BODY.items() if k != "session_start_limit"}, ValueError, "session_start_limit"),
        ({**GOOD_BODY, "session_start_limit": None}, TypeError, "session_start_limit"),
        ({**GOOD_BODY, "session_start_limit": {"total": 1, "remaining": 1, "reset_after": 5}}, ValueError, "max_concurrency"),
        (
            {**GOOD_BODY, "session_start_limit": {"total": 1, "remaining": -1, "reset_after": 5, "max_concurrency": 1}},
            ValueError,
            "remaining",
        ),
        (
            {**GOOD_BODY, "session_start_limit": {"total": 1, "remaining": 1, "reset_after": "5", "max_concurrency": 1}},
            TypeError,
            "reset_after",
        ),
        (
            {**GOOD_BODY, "session_start_limit": {"total": 1, "remaining": 1, "reset_after": math.inf, "max_concurrency": 1}},
            ValueError,
            "reset_after",
        ),
        (
            {**GOOD_BODY, "session_start_limit": {"total": 1, "remaining": 1, "reset_after": 5, "max_concurrency": 0}},
            ValueError,
            "max_concurrency",
        ),
    ],
)
def test_malformed_gateway_info_names_the_field(body: Any, error: type[Exception], field: str) -> None:
    with pytest.raises(error, match=field):
        GatewayInfo.from_dict(body)


def test_session_start_limit_validates_on_construction() -> None:
    with pytest.raises(TypeError):
        SessionStartLimit(total=1, remaining=1, reset_after=1.0, max_concurrency=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        SessionStartLimit(total=1, remaining=1, reset_after=-1.0, max_concurrency=1)
    assert SessionStartLimit(total=1, remaining=0, reset_after=2, max_concurrency=16).reset_after == 2.0


def test_authorization_header_adds_bot_once_and_refuses_header_breaking_tokens() -> None:
    assert authorization_header("abc") == "Bot abc"
    assert authorization_header("Bot abc") == "Bot abc"
    with pytest.raises(ValueError) as excinfo:
        authorization_header("abc\rdef-secret")
    assert "def-secret" not in str(excinfo.value)
    with pytest.raises(ValueError) as excinfo:
        authorization_header("abc\x01def-secret")
    assert "def-secret" not in str(excinfo.value)
    assert user_agent().startswith("DiscordBot (") and user_agent().endswith(")")


# ------------------------------------------------------------------------------------------ pure retry policy


POLICY = RetryPolicy(max_attempts=5, max_elapsed=60.0, base_delay=1.0, max_delay=8.0, max_retry_after=30.0)


@pytest.mark.parametrize("status", [200, 400, 401, 403, 404])
def test_no_retry_for_success_auth_and_client_errors(status: int) -> None:
    assert retry_delay(POLICY, status, attempt=1, elapsed=0.0, jitter=0.5) is None


@pytest.mark.parametrize("status", [None, 500, 502, 503, 504, 599])
def test_server_and_connection_errors_back_off_exponentially_with_equal_jitter(status: int | None) -> None:
    # d = min(8, 2**(n-1)); the delay lies in [d/2, d], jitter 0 -> d/2, jitter ~1 -> d.
    lows = [retry_delay(POLICY, status, attempt=n, elapsed=0.0, jitter=0.0) for n in range(1, 5)]
    highs = [retry_delay(POLICY, status, attempt=n, elapsed=0.0, jitter=0.999999) for n in range(1, 5)]
    assert lows == [0.5, 1.0, 2.0, 4.0]
    assert highs == pytest.approx([1.0, 2.0, 4.0, 8.0], rel=1e-5)
    # capped at max_delay
    capped = RetryPolicy(max_attempts=20, max_elapsed=1e6, base_delay=1.0, max_delay=8.0)
    assert retry_delay(capped, status, attempt=10, elapsed=0.0, jitter=0.999999) == pytest.approx(8.0, rel=1e-5)


def test_rate_limit_waits_retry_after_and_backs_off_without_one() -> None:
    assert retry_delay(POLICY, 429, attempt=1, elapsed=0.0, jitter=0.9, retry_after=2.5) == 2.5
    assert retry_delay(POLICY, 429, attempt=1, elapsed=0.0, jitter=0.0, retry_after=None) == 0.5
    assert retry_delay(POLICY, 429, attempt=1, elapsed=0.0, jitter=0.0, retry_after=0.0) == 0.0
    # more than max_retry_after: not waited at all
    assert retry_delay(POLICY, 429, attempt=1, elapsed=0.0, jitter=0.0, retry_after=31.0) is None


def test_retries_are_bounded_by_attempts_and_elapsed_time() -> None:
    assert retry_delay(POLICY, 500, attempt=4, elapsed=0.0, jitter=0.0) == 4.0
    assert retry_delay(POLICY, 500, attempt=5, elapsed=0.0, jitter=0.0) is None  # the 5th request was the last
    assert retry_delay(POLICY, 429, attempt=5, elapsed=0.0, jitter=0.0, retry_after=0.1) is None
    # a wait that would end after max_elapsed is not begun
    assert retry_delay(POLICY, 500, attempt=1, elapsed=59.4, jitter=0.0) == 0.5
    assert retry_delay(POLICY, 500, attempt=1, elapsed=59.6, jitter=0.0) is None
    assert retry_delay(POLICY, 429, attempt=1, elapsed=50.0, jitter=0.0, retry_after=11.0) is None
    assert retry_delay(RetryPolicy(max_attempts=1), None, attempt=1, elapsed=0.0, jitter=0.0) is None


@settings(max_examples=examples(200), deadline=None)
@given(
    max_attempts=st.integers(1, 12),
    max_elapsed=st.floats(0, 120),
    base_delay=st.floats(0, 5),
    max_delay=st.floats(0, 60),
    outcomes=st.lists(
        st.tuples(st.sampled_from([None, 429, 500, 502, 503]), st.none() | st.floats(0, 90), st.floats(0, 1, exclude_max=True)),
        min_size=12,
        max_size=12,
    ),
    request_time=st.floats(0, 3),
)
def test_any_run_of_failures_stays_within_the_bounds(
    max_attempts: int,
    max_elapsed: float,
    base_delay: float,
    max_delay: float,
    outcomes: list[tuple[int | None, float | None, float]],
    request_time: float,
) -> None:
    """Drive the pure policy with a simulated clock: it never allows more than max_attempts requests nor a wait
    ending after max_elapsed, and every backoff lies in [d/2, d]."""
    policy = RetryPolicy(max_attempts, max_elapsed, base_delay, max_delay, max_retry_after=30.0)
    elapsed, attempts = 0.0, 0
    for status, retry_after, jitter in outcomes:
        attempts += 1
        elapsed += request_time
        delay = retry_delay(policy, status, attempt=attempts, elapsed=elapsed, jitter=jitter, retry_after=retry_after)
        if delay is None:
            break
        assert elapsed + delay <= max_elapsed
        if status == 429 and retry_after is not None:
            assert delay == retry_after <= 30.0
        else:
            ceiling = min(max_delay, base_delay * 2 ** (attempts - 1))
            assert ceiling / 2 <= delay <= ceiling
        elapsed += delay
    assert attempts <= max_attempts


def test_retry_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(max_elapsed=-1)
    with pytest.raises(ValueError):
        RetryPolicy(base_delay=math.nan)


# --------------------------------------------------------------------------------------- loopback: raw server


class RawServer:
    """A loopback TCP server answering each connection with the next scripted reply (bytes, or None: hang up
    without answering). Records each request's text."""

    def __init__(self, replies: list[bytes | None]) -> None:
        self.replies = list(replies)
        self.requests: list[str] = []
        self.server: asyncio.AbstractServer | None = None

    async def __aenter__(self) -> RawServer:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @property
    def api_url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/api/v10"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        self.requests.append(request.decode("latin-1"))
        reply = self.replies.pop(0) if self.replies else None
        if reply is not None:
            writer.write(reply)
            await writer.drain()
        writer.close()


def http_reply(status: int, body: Any, headers: dict[str, str] | None = None, *, chunked: bool = False, length: bool = True) -> bytes:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    lines = [f"HTTP/1.1 {status} Whatever"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
        half = len(data) // 2
        payload = b"".join(f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in (data[:half], data[half:]) if part)
        payload += b"0\r\n\r\n"
    else:
        if length:
            lines.append(f"Content-Length: {len(data)}")
        payload = data
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


@pytest.mark.parametrize("framing", ["length", "chunked", "eof"])
def test_fetch_reads_every_body_framing_and_sends_the_documented_headers(framing: str) -> None:
    async def body() -> None:
        reply = http_reply(200, GOOD_BODY, chunked=framing == "chunked", length=framing == "length")
        async with RawServer([reply]) as server:
            info = await fetch_gateway_info(TOKEN, api_url=server.api_url, retry=FAST)
        assert info == GatewayInfo.from_dict(GOOD_BODY)
        request = server.requests[0]
        assert request.startswith("GET /api/v10/gateway/bot HTTP/1.1\r\n")
        assert f"\r\nAuthorization: Bot {TOKEN}\r\n" in request
        assert f"\r\nUser-Agent: {user_agent()}\r\n" in request

    run(body)


def test_unreadable_replies_and_hangups_are_retried_then_reported_without_the_token(caplog: pytest.LogCaptureFixture) -> None:
    async def body() -> None:
        caplog.set_level(logging.DEBUG)
        replies: list[bytes | None] = [None, b"garbage\r\n\r\n", http_reply(502, b"bad gateway"), None]
        async with RawServer(replies) as server:
            with pytest.raises(HTTPError) as excinfo:
                await fetch_gateway_info(TOKEN, api_url=server.api_url, retry=FAST)
        assert len(server.requests) == 4
        error = excinfo.value
        assert not isinstance(error, AuthenticationError) and isinstance(error, GatewayError)
        assert error.status is None and error.attempts == 4
        assert "giving up after 4 attempts" in str(error)
        for text in (str(error), repr(error), caplog.text, repr(error.__cause__)):
            assert "secret-part" not in text
        assert caplog.text.count("retrying in") == 3

    run(body)


def test_malformed_200_body_raises_at_once_naming_the_field() -> None:
    async def body() -> None:
        bad = {**GOOD_BODY, "session_start_limit": {"total": 1, "remaining": 1, "reset_after": 1}}
        async with RawServer([http_reply(200, bad), http_reply(200, GOOD_BODY)]) as server:
            with pytest.raises(HTTPError, match="malformed body: session_start_limit.max_concurrency is missing") as excinfo:
                await fetch_gateway_info(TOKEN, api_url=server.api_url, retry=FAST)
            assert excinfo.value.status == 200 and len(server.requests) == 1
        async with RawServer([http_reply(200, b"{not json")]) as server:
            with pytest.raises(HTTPError, match="malformed body"):
                await fetch_gateway_info(TOKEN, api_url=server.api_url, retry=FAST)

    run(body)


def test_retry_after_header_is_used_when_the_body_has_none() -> None:
    async def body() -> None:
        replies: list[bytes | None] = [http_reply(429, b"", {"Retry-After": "0.2"}), http_reply(200, GOOD_BODY)]
        async with RawServer(replies) as server:
            loop = asyncio.get_running_loop()
            started = loop.time()
            await fetch_gateway_info(TOKEN, api_url=server.api_url, retry=FAST)
            assert loop.time() - started >= 0.2  # a bound the code guarantees, not a speed claim
            assert len(server.requests) == 2

    run(body)


def test_oversized_response_is_refused() -> None:
    async def body() -> None:
        from gateway import http

        huge = http_reply(200, b"x" * (http.MAX_RESPONSE_SIZE + 10))
        async with RawServer([huge]) as server:
            with pytest.raises(HTTPError, match="too large"):
                await fetch_gateway_info(TOKEN, api_url=server.api_url, retry=RetryPolicy(max_attempts=1))

    run(body)


def test_timeout_per_request_is_retried_and_bounded() -> None:
    async def body() -> None:
        writers: list[asyncio.StreamWriter] = []

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)  # never answers

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            with pytest.raises(HTTPError, match="timed out; giving up after 2 attempts"):
                await fetch_gateway_info(
                    TOKEN, api_url=f"http://127.0.0.1:{port}/api/v10", timeout=0.1, retry=RetryPolicy(max_attempts=2, base_delay=0.01)
                )
        finally:
            for writer in writers:
                writer.close()
            server.close()
            await server.wait_closed()
        assert len(writers) == 2

    run(body)


def test_bad_arguments() -> None:
    async def body() -> None:
        with pytest.raises(ValueError, match="api_url"):
            await fetch_gateway_info(TOKEN, api_url="ftp://x")
        with pytest.raises(ValueError, match="timeout"):
            await fetch_gateway_info(TOKEN, api_url="http://127.0.0.1:1", timeout=0)
        with pytest.raises(ValueError):
            await fetch_gateway_info("", api_url="http://127.0.0.1:1")
        with pytest.raises(TypeError):
            await fetch_gateway_info(None, api_url="http://127.0.0.1:1")  # type: ignore[arg-type]

    run(body)


# ---------------------------------------------------------------------------------- loopback: fake gateway


def test_the_fetched_url_is_the_fake_gateway_a_shard_can_identify_on() -> None:
    from gateway import Intents, Shard, ShardId
    from gateway.testing import FakeGateway

    async def body() -> None:
        async with FakeGateway(token=TOKEN, recommended_shards=2, max_concurrency=2) as gw:
            info = await fetch_gateway_info(TOKEN, api_url=gw.api_url)
            shard = Shard(ShardId(1, info.shards), TOKEN, Intents.GUILDS, gateway_url=info.url, compression=None)
            try:
                await shard.next_event()
                identify = await gw.wait_for_op(2)
                assert identify["d"]["shard"] == [1, 2]
                assert (await gw.wait_for_shard(1, 2)).shard == (1, 2)
            finally:
                await shard.close()
            assert gw.session_start_limit.remaining == 999

    run(body)


def test_401_is_raised_at_once_without_the_token_anywhere(caplog: pytest.LogCaptureFixture) -> None:
    from gateway.testing import FakeGateway

    async def body() -> None:
        async with FakeGateway(token="the-right-one") as gw:
            with pytest.raises(AuthenticationError) as excinfo:
                await fetch_gateway_info(TOKEN, api_url=gw.api_url, retry=FAST)
            assert excinfo.value.status == 401 and excinfo.value.attempts == 1
            assert [request.status for request in gw.http_requests] == [401]
            for text in (str(excinfo.value), repr(excinfo.value), caplog.text, repr(gw.http_requests)):
                assert "secret-part" not in text

    with caplog.at_level(logging.DEBUG):
        run(body)


def test_a_cancelled_fetch_stops_at_once() -> None:
    async def body() -> None:
        writers: list[asyncio.StreamWriter] = []

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        task = asyncio.create_task(fetch_gateway_info(TOKEN, api_url=f"http://127.0.0.1:{port}/api/v10", timeout=30))
        while not writers:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task  # no thread keeps the request running: the await returns well before the 30 s timeout
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()

    run(body, timeout=5)


def test_credentials_in_the_api_url_stay_out_of_messages() -> None:
    async def body() -> None:
        with pytest.raises(HTTPError) as excinfo:
            await fetch_gateway_info(TOKEN, api_url="http://user:hunter2@127.0.0.1:1/api/v10", retry=RetryPolicy(max_attempts=1))
        assert "hunter2" not in str(excinfo.value) and excinfo.value.status is None

    run(body)
