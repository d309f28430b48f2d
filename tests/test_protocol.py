"""ShardProtocol, the sans-I/O core: driven with explicit ``now`` values and a seeded rng; no event loop, no sleeps."""

from __future__ import annotations

import json
import logging
import random
from typing import Any

import pytest

from gateway import _json
from gateway._envelope import EventFilter
from gateway.errors import FatalCloseError, PayloadError, ShardClosedError
from gateway.models import Session, ShardId, ShardStatus
from gateway.protocol import (
    DELIVER,
    BACKOFF_CAP,
    CLOSE_POLICY,
    CLOSE_TIMEOUT,
    CONNECT_TIMEOUT,
    HELLO_TIMEOUT,
    Abort,
    CancelIdentify,
    Close,
    CloseAction,
    Connect,
    RequestIdentify,
    ShardProtocol,
    Stop,
    Token,
    backoff_delay,
    build_url,
    close_action,
)

TOKEN = "NzkyNzE1NDU0MTk2MDg4ODQy.X-hvzA.Ovy4MCQywSkoMRRclStW4xAYK7I"
INTERVAL_MS = 41250
INTERVAL = INTERVAL_MS / 1000
GATEWAY = "wss://gateway.discord.gg"
RESUME_URL = "wss://gateway-us-east1-b.discord.gg"
QUERY = "/?v=10&encoding=json"
_SCANNER = EventFilter(0)


class Harness:
    """Feeds a ShardProtocol as the driver would and records what comes out."""

    def __init__(self, seed: int = 7, **options: Any) -> None:
        self.rng = random.Random(seed)
        options.setdefault("rng", self.rng.random)
        self.proto = ShardProtocol(options.pop("shard_id", ShardId(0, 1)), options.pop("token", TOKEN),
                                   options.pop("intents", 513), **options)
        self.sent: list[dict[str, Any]] = []
        self.actions: list[Any] = []

    def _collect(self) -> None:
        self.sent.extend(json.loads(data) for data in self.proto.data_to_send())
        self.actions.extend(self.proto.actions())

    def take_sent(self) -> list[dict[str, Any]]:
        self._collect()
        sent, self.sent = self.sent, []
        return sent

    def take_actions(self) -> list[Any]:
        self._collect()
        actions, self.actions = self.actions, []
        return actions

    def feed(self, message: dict[str, Any] | bytes, now: float) -> bool:
        payload = message if isinstance(message, bytes) else json.dumps(message).encode()
        op, seq, name, d_start, d_end, _ = _SCANNER.scan(payload)
        deliver = bool(self.proto.receive(op, seq, name, payload, d_start, d_end, now) & DELIVER)
        self._collect()
        return deliver

    def start(self, now: float = 0.0) -> Connect:
        self.proto.start(now)
        (action,) = self.take_actions()
        assert isinstance(action, Connect)
        return action

    def open(self, now: float) -> None:
        self.proto.connection_opened(now)
        self._collect()

    def hello(self, now: float, interval_ms: int = INTERVAL_MS) -> bool:
        return self.feed({"op": 10, "d": {"heartbeat_interval": interval_ms}}, now)

    def dispatch(self, name: str, seq: int | None, now: float, d: Any = None) -> bool:
        return self.feed({"op": 0, "t": name, "s": seq, "d": d if d is not None else {}}, now)

    def ready(self, now: float, seq: int = 1, session_id: str = "session-1", url: str = RESUME_URL) -> bool:
        return self.dispatch("READY", seq, now, {"session_id": session_id, "resume_gateway_url": url, "v": 10})

    def lost(self, code: int | None, now: float, reason: str = "", by_client: bool = False) -> list[Any]:
        self.proto.connection_lost(code, reason, now, initiated_by_client=by_client)
        return self.take_actions()

    def fresh_start(self, now: float = 0.0) -> None:
        """start -> connect -> HELLO -> grant -> IDENTIFY -> READY(s=1)."""
        self.start(now)
        self.open(now + 0.1)
        assert self.hello(now + 0.2)
        assert self.take_actions() == [RequestIdentify(0)]
        assert self.proto.identify_granted(now + 0.3)
        (identify,) = self.take_sent()
        assert identify["op"] == 2
        assert self.ready(now + 0.4)
        assert self.proto.status is ShardStatus.ACTIVE

    def reconnect(self, now: float) -> Connect:
        """Fire the timer until the pending Connect comes out."""
        deadline = self.proto.next_deadline()
        assert deadline is not None
        self.proto.handle_timer(max(now, deadline))
        (action,) = self.take_actions()
        assert isinstance(action, Connect)
        return action


# -- URL and construction --------------------------------------------------------------------------------------


@pytest.mark.parametrize("compression, suffix", [
    (None, ""), ("zlib-stream", "&compress=zlib-stream"), ("zstd-stream", "&compress=zstd-stream")])
def test_connect_url(compression: str | None, suffix: str) -> None:
    harness = Harness(compression=compression)
    assert harness.start() == Connect(GATEWAY + QUERY + suffix, resume=False, attempt=0)


def test_resume_url_keeps_the_query() -> None:
    harness = Harness(compression="zstd-stream")
    harness.fresh_start()
    assert harness.lost(None, 10.0) == [Connect(RESUME_URL + QUERY + "&compress=zstd-stream", resume=True, attempt=0)]


def test_build_url_strips_a_trailing_slash() -> None:
    assert build_url("ws://127.0.0.1:8000/", None) == "ws://127.0.0.1:8000" + QUERY


def test_connect_timeout_constant() -> None:
    assert CONNECT_TIMEOUT == 10.0


@pytest.mark.parametrize("threshold", [50, 250])
def test_large_threshold_bounds_accepted(threshold: int) -> None:
    harness = Harness(large_threshold=threshold)
    harness.start()
    harness.open(0.0)
    harness.hello(0.0)
    harness.proto.identify_granted(0.0)
    (identify,) = harness.take_sent()
    assert identify["d"]["large_threshold"] == threshold


@pytest.mark.parametrize("options, error", [
    ({"large_threshold": 49}, ValueError),
    ({"large_threshold": 251}, ValueError),
    ({"large_threshold": 100.0}, TypeError),
    ({"compression": "gzip"}, ValueError),
    ({"intents": -1}, ValueError),
    ({"intents": "513"}, TypeError),
    ({"gateway_url": "https://x"}, ValueError),
    ({"shard_id": (0, 1)}, TypeError),
    ({"token": ""}, ValueError),
    ({"token": None}, TypeError),
    ({"properties": {"os": 1}}, TypeError),
    ({"presence": {"status": "online", "activities": [{"name": "x" * 5000}]}}, ValueError),
])
def test_bad_options(options: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        Harness(**options)
    assert TOKEN not in str(info.value)


def test_identify_payload() -> None:
    presence = {"op": 3, "d": {"status": "idle", "activities": [], "afk": False, "since": None}}
    harness = Harness(shard_id=ShardId(3, 4), intents=1 | 512, presence=presence, properties={"browser": "mybot"})
    harness.start()
    harness.open(0.0)
    harness.hello(0.0)
    assert harness.take_actions() == [RequestIdentify(3)]
    assert harness.take_sent() == [], "IDENTIFY waits for the identify queue grant"
    harness.proto.identify_granted(1.0)
    (identify,) = harness.take_sent()
    assert identify["op"] == 2
    d = identify["d"]
    assert d["token"] == TOKEN
    assert d["intents"] == 513
    assert d["shard"] == [3, 4]
    assert d["compress"] is False
    assert d["large_threshold"] == 50
    assert d["presence"] == presence["d"]
    assert d["properties"]["browser"] == "mybot" and d["properties"]["device"] == "gateway"
    assert isinstance(d["properties"]["os"], str)


def test_identify_without_presence_omits_it() -> None:
    harness = Harness()
    harness.start()
    harness.open(0.0)
    harness.hello(0.0)
    harness.proto.identify_granted(0.0)
    (identify,) = harness.take_sent()
    assert "presence" not in identify["d"]
    assert identify["d"]["properties"]["browser"] == "gateway"


# -- Heartbeats ------------------------------------------------------------------------------------------------


def test_heartbeat_schedule_uses_the_injected_rng() -> None:
    expected_jitter = random.Random(99).random()
    harness = Harness(seed=99)
    harness.start(0.0)
    harness.open(0.0)
    harness.hello(100.0)
    first = 100.0 + INTERVAL * expected_jitter
    assert harness.proto.next_deadline() == pytest.approx(first)
    harness.proto.handle_timer(first - 0.001)
    assert harness.take_sent() == [], "nothing is due before the deadline"
    harness.proto.handle_timer(first)
    assert harness.take_sent() == [{"op": 1, "d": None}], "d is null before any sequence"
    assert harness.proto.next_deadline() == pytest.approx(first + INTERVAL)
    harness.feed({"op": 11}, first + 0.05)
    harness.proto.handle_timer(first + INTERVAL + 3.0)  # a late tick fires; the next is a full interval later
    assert harness.take_sent() == [{"op": 1, "d": None}]
    assert harness.proto.next_deadline() == pytest.approx(first + 2 * INTERVAL + 3.0)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_first_heartbeat_jitter_spans_the_interval(seed: int) -> None:
    harness = Harness(seed=seed)
    harness.start()
    harness.open(0.0)
    harness.hello(0.0)
    deadline = harness.proto.next_deadline()
    assert deadline is not None and 0.0 <= deadline < INTERVAL
    assert deadline == pytest.approx(INTERVAL * random.Random(seed).random())


def test_heartbeat_carries_the_last_sequence() -> None:
    harness = Harness()
    harness.fresh_start()
    harness.dispatch("GUILD_CREATE", 2, 1.0)
    harness.dispatch("MESSAGE_CREATE", 3, 1.1)
    harness.proto.handle_timer(harness.proto.next_deadline())  # type: ignore[arg-type]
    assert harness.take_sent() == [{"op": 1, "d": 3}]


def test_sequence_zero_is_a_real_sequence() -> None:
    harness = Harness()
    harness.start()
    harness.open(0.0)
    harness.hello(0.0)
    harness.proto.identify_granted(0.0)
    harness.take_sent()
    assert harness.ready(0.1, seq=0)
    assert harness.proto.session == Session("session-1", 0)
    assert harness.proto.sequence == 0
    assert not harness.dispatch("GUILD_CREATE", 0, 0.2), "a second s=0 is a duplicate"
    assert harness.dispatch("GUILD_CREATE", 1, 0.2)
    harness.proto.handle_timer(harness.proto.next_deadline())  # type: ignore[arg-type]
    assert harness.take_sent() == [{"op": 1, "d": 1}]


def test_server_heartbeat_request_answered_at_once_without_resetting_the_timer() -> None:
    harness = Harness()
    harness.fresh_start()
    deadline = harness.proto.next_deadline()
    assert harness.feed({"op": 1, "d": None}, 5.0)
    assert harness.take_sent() == [{"op": 1, "d": 1}]
    assert harness.proto.next_deadline() == deadline


def test_server_heartbeat_request_is_not_rate_limited() -> None:
    harness = Harness()
    harness.fresh_start()
    for i in range(200):
        harness.proto.send_command({"op": 3, "d": {"n": i}}, 1.0)
    limiter = harness.proto.ratelimiter
    assert limiter is not None and limiter.available(1.0) == 0
    harness.take_sent()
    harness.feed({"op": 1}, 1.0)
    assert harness.take_sent() == [{"op": 1, "d": 1}]


def test_ack_counts_only_when_a_heartbeat_is_outstanding() -> None:
    harness = Harness()
    harness.fresh_start()
    harness.feed({"op": 11}, 1.0)
    assert harness.proto.latency.periods == 0, "unrequested ACK ignored"
    beat = harness.proto.next_deadline()
    assert beat is not None
    harness.proto.handle_timer(beat)
    harness.feed({"op": 11}, beat + 0.25)
    harness.feed({"op": 11}, beat + 0.5)
    latency = harness.proto.latency
    assert latency.periods == 1
    assert latency.recent == pytest.approx((0.25,))
    assert latency.sent == beat and latency.received == beat + 0.25


def test_heartbeats_are_counted_in_the_rate_limit_window() -> None:
    harness = Harness()
    harness.fresh_start()
    limiter = harness.proto.ratelimiter
    assert limiter is not None
    before = limiter.in_window(1.0)
    harness.feed({"op": 1}, 1.0)
    assert limiter.in_window(1.0) == before + 1


# -- Zombie ----------------------------------------------------------------------------------------------------


def test_zombie_connection_is_aborted_and_resumed() -> None:
    harness = Harness()
    harness.fresh_start()
    first = harness.proto.next_deadline()
    assert first is not None
    harness.proto.handle_timer(first)
    assert harness.take_sent() == [{"op": 1, "d": 1}]
    harness.dispatch("MESSAGE_CREATE", 2, first + 1.0)  # dispatches do not count as liveness (Discord's rule)
    second = harness.proto.next_deadline()
    assert second == pytest.approx(first + INTERVAL)
    harness.proto.handle_timer(second)  # type: ignore[arg-type]
    assert harness.take_sent() == [], "no heartbeat on a zombied connection"
    actions = harness.take_actions()
    assert len(actions) == 1 and isinstance(actions[0], Abort), "dropped without a 1000/1001 close"
    assert harness.lost(None, second + 0.01) == [Connect(RESUME_URL + QUERY, resume=True, attempt=0)]
    harness.open(second + 0.1)
    harness.hello(second + 0.2)
    assert harness.take_actions() == []
    assert harness.take_sent() == [{"op": 6, "d": {"token": TOKEN, "session_id": "session-1", "seq": 2}}]
    assert harness.proto.status is ShardStatus.RESUMING


def test_acked_connection_is_not_a_zombie() -> None:
    harness = Harness()
    harness.fresh_start()
    now = harness.proto.next_deadline()
    for _ in range(5):
        assert now is not None
        harness.proto.handle_timer(now)
        assert harness.take_sent() == [{"op": 1, "d": 1}]
        harness.feed({"op": 11}, now + 0.1)
        now = harness.proto.next_deadline()
    assert harness.take_actions() == []
    assert harness.proto.latency.periods == 5


def test_missing_hello_aborts_and_backs_off() -> None:
    harness = Harness()
    harness.start()
    harness.open(0.0)
    assert harness.proto.next_deadline() == HELLO_TIMEOUT
    harness.proto.handle_timer(HELLO_TIMEOUT)
    (abort,) = harness.take_actions()
    assert isinstance(abort, Abort)
    assert harness.lost(None, HELLO_TIMEOUT) == []
    reconnect_at = harness.proto.next_deadline()
    assert reconnect_at is not None and HELLO_TIMEOUT + 0.5 <= reconnect_at <= HELLO_TIMEOUT + 1.0
    assert harness.reconnect(reconnect_at).attempt == 1


def test_malformed_hello_is_reported_and_skipped(caplog: pytest.LogCaptureFixture) -> None:
    harness = Harness()
    harness.start()
    harness.open(0.0)
    with caplog.at_level(logging.WARNING, logger="gateway.shard"):
        assert not harness.feed({"op": 10, "d": {"heartbeat_interval": "soon"}}, 0.1)
    assert harness.proto.payload_errors == 1
    assert any("heartbeat_interval" in record.getMessage() for record in caplog.records)
    assert harness.hello(0.2), "a later valid HELLO still works"
    assert harness.take_actions() == [RequestIdentify(0)]


# -- Dispatch, READY, RESUMED, replay dedupe -------------------------------------------------------------------


def test_ready_stores_the_session() -> None:
    harness = Harness()
    harness.fresh_start()
    assert harness.proto.session == Session("session-1", 1)
    assert harness.proto.resume_url == RESUME_URL
    assert harness.proto.status is ShardStatus.ACTIVE


def test_resume_after_drop_with_replay_dedupe() -> None:
    harness = Harness()
    harness.fresh_start()
    for seq in (2, 3, 4):
        assert harness.dispatch("MESSAGE_CREATE", seq, 1.0)
    assert harness.lost(1006, 2.0) == [Connect(RESUME_URL + QUERY, resume=True, attempt=0)]
    assert harness.proto.status is ShardStatus.DISCONNECTED
    harness.open(2.1)
    harness.hello(2.2)
    (resume,) = harness.take_sent()
    assert resume == {"op": 6, "d": {"token": TOKEN, "session_id": "session-1", "seq": 4}}
    delivered = [seq for seq in (3, 4, 5, 6) if harness.dispatch("MESSAGE_CREATE", seq, 2.3)]
    assert delivered == [5, 6], "replayed duplicates (s <= 4) are not delivered again"
    assert harness.dispatch("RESUMED", 7, 2.4)
    assert harness.proto.status is ShardStatus.ACTIVE
    assert harness.proto.session == Session("session-1", 7)


def test_dispatch_without_sequence_is_delivered_and_keeps_the_sequence() -> None:
    harness = Harness()
    harness.fresh_start()
    assert harness.dispatch("RATE_LIMITED", None, 1.0)
    assert harness.proto.sequence == 1


def test_unknown_opcode_is_delivered() -> None:
    harness = Harness()
    harness.fresh_start()
    assert harness.feed({"op": 99, "d": None}, 1.0)
    assert harness.take_actions() == []


def test_ready_without_session_id_is_reported_and_skipped() -> None:
    harness = Harness()
    harness.start()
    harness.open(0.0)
    harness.hello(0.0)
    harness.proto.identify_granted(0.0)
    assert not harness.dispatch("READY", 1, 0.1, {"v": 10})
    assert harness.proto.payload_errors == 1
    assert harness.proto.status is ShardStatus.IDENTIFYING
    assert harness.proto.session is None


def test_payload_error_is_reported_without_killing_the_session() -> None:
    harness = Harness()
    harness.fresh_start()
    harness.proto.payload_error(PayloadError("invalid JSON", b"{nope"), 1.0)
    assert harness.take_actions() == [] and harness.take_sent() == []
    assert harness.proto.payload_errors == 1
    assert harness.proto.status is ShardStatus.ACTIVE
    assert harness.dispatch("MESSAGE_CREATE", 2, 1.1)


def test_session_restored_from_a_saved_session_resumes_first() -> None:
    saved = Session.from_json(Session("old", 41).to_json())
    harness = Harness(session=saved, resume_url=RESUME_URL)
    assert harness.start() == Connect(RESUME_URL + QUERY, resume=True, attempt=0)
    harness.open(0.0)
    harness.hello(0.1)
    assert harness.take_sent() == [{"op": 6, "d": {"token": TOKEN, "session_id": "old", "seq": 41}}]
    assert not harness.dispatch("MESSAGE_CREATE", 41, 0.2)
    assert harness.dispatch("MESSAGE_CREATE", 42, 0.2)


# -- Server instructions: op 7 and op 9 ------------------------------------------------------------------------


def test_op7_closes_with_4000_and_resumes() -> None:
    harness = Harness()
    harness.fresh_start()
    assert harness.feed({"op": 7, "d": None}, 1.0)
    (close,) = harness.take_actions()
    assert isinstance(close, Close) and close.code == 4000
    assert harness.proto.next_deadline() == 1.0 + CLOSE_TIMEOUT
    assert harness.lost(4000, 1.2, by_client=True) == [Connect(RESUME_URL + QUERY, resume=True, attempt=0)]


def test_op7_before_hello_is_handled() -> None:
    harness = Harness()
    harness.start()
    harness.open(0.0)
    harness.feed({"op": 7}, 0.1)
    (close,) = harness.take_actions()
    assert close == Close(4000, "reconnect requested")


def test_op9_true_resumes() -> None:
    harness = Harness()
    harness.fresh_start()
    harness.feed({"op": 9, "d": True}, 1.0)
    (close,) = harness.take_actions()
    assert isinstance(close, Close) and close.code not in (1000, 1001)
    assert harness.lost(close.code, 1.1, by_client=True) == [Connect(RESUME_URL + QUERY, resume=True, attempt=0)]
    assert harness.proto.session == Session("session-1", 1)


def test_op9_false_starts_a_new_session_after_a_random_delay() -> None:
    harness = Harness()
    harness.fresh_start()
    harness.feed({"op": 9, "d": False}, 1.0)
    (close,) = harness.take_actions()
    assert close.code == 1000
    assert harness.proto.session is None
    harness.dispatch("MESSAGE_CREATE", 5, 1.05)  # a straggler of the dropped session
    assert harness.lost(1000, 1.1, by_client=True) == []
    reconnect_at = harness.proto.next_deadline()
    assert reconnect_at is not None and 1.1 + 1.0 <= reconnect_at <= 1.1 + 5.0
    harness.proto.handle_timer(reconnect_at - 0.01)
    assert harness.take_actions() == []
    assert harness.reconnect(reconnect_at) == Connect(GATEWAY + QUERY, resume=False, attempt=0)
    harness.open(reconnect_at + 0.1)
    harness.hello(reconnect_at + 0.2)
    assert harness.take_actions() == [RequestIdentify(0)]
    harness.proto.identify_granted(reconnect_at + 0.3)
    assert harness.take_sent()[0]["op"] == 2
    assert harness.ready(reconnect_at + 0.4, seq=1, session_id="session-2"), "the new session's s=1 is not a duplicate"
    assert harness.proto.session == Session("session-2", 1)


def test_malformed_op9_is_reported() -> None:
    harness = Harness()
    harness.fresh_start()
    assert not harness.feed({"op": 9, "d": "maybe"}, 1.0)
    assert harness.take_actions() == []
    assert harness.proto.payload_errors == 1


def test_compression_error_closes_4000_and_resumes() -> None:
    harness = Harness(compression="zlib-stream")
    harness.fresh_start()
    harness.proto.compression_error(Exception("bad zlib"), 1.0)
    (close,) = harness.take_actions()
    assert close.code == 4000
    (connect,) = harness.lost(4000, 1.1, by_client=True)
    assert connect.resume and connect.url.startswith(RESUME_URL)


def test_close_timeout_aborts() -> None:
    harness = Harness()
    harness.fresh_start()
    harness.feed({"op": 7}, 1.0)
    harness.take_actions()
    harness.proto.handle_timer(1.0 + CLOSE_TIMEOUT)
    (abort,) = harness.take_actions()
    assert isinstance(abort, Abort)
    assert harness.proto.next_deadline() is None
    (connect,) = harness.lost(None, 7.0)
    assert connect.resume


# -- Close-code policy -----------------------------------------------------------------------------------------

EXPECTED_SERVER_POLICY = {
    4000: "resume", 4001: "resume", 4002: "resume", 4003: "resume", 4004: "fatal", 4005: "resume",
    4007: "new", 4008: "resume", 4009: "new", 4010: "fatal", 4011: "fatal", 4012: "fatal", 4013: "fatal",
    4014: "fatal", 4006: "resume", 4015: "resume", 4999: "resume", 1000: "resume", 1001: "resume",
    1006: "resume", 1011: "resume", 1005: "resume", None: "resume",
}


@pytest.mark.parametrize("code", list(EXPECTED_SERVER_POLICY), ids=str)
def test_server_close_code_policy(code: int | None) -> None:
    expected = EXPECTED_SERVER_POLICY[code]
    harness = Harness()
    harness.fresh_start()
    harness.dispatch("MESSAGE_CREATE", 2, 1.0)
    actions = harness.lost(code, 2.0, reason="bye")
    if expected == "fatal":
        assert harness.proto.status is ShardStatus.FATALLY_CLOSED
        (stop,) = actions
        assert isinstance(stop, Stop) and isinstance(stop.error, FatalCloseError)
        assert stop.error.code == code and stop.error.reason == "bye"
        assert harness.proto.next_deadline() is None
        harness.proto.handle_timer(1000.0)
        assert harness.take_actions() == [], "no further connection"
        return
    assert harness.proto.status is ShardStatus.DISCONNECTED
    (connect,) = actions
    if expected == "resume":
        assert connect == Connect(RESUME_URL + QUERY, resume=True, attempt=0)
        assert harness.proto.session == Session("session-1", 2)
    else:
        assert connect == Connect(GATEWAY + QUERY, resume=False, attempt=0), "4007/4009: no pointless RESUME"
        assert harness.proto.session is None


def test_policy_table_matches_the_spec() -> None:
    assert {code for code, action in CLOSE_POLICY.items() if action is CloseAction.FATAL} == {
        4004, 4010, 4011, 4012, 4013, 4014}
    assert {code for code, action in CLOSE_POLICY.items() if action is CloseAction.NEW_SESSION} == {4007, 4009}
    assert close_action(None) is CloseAction.RESUME
    assert close_action(1000, by_client=True) is CloseAction.NEW_SESSION
    assert close_action(1001, by_client=True) is CloseAction.NEW_SESSION
    assert close_action(4000, by_client=True) is CloseAction.RESUME
    assert close_action(1000) is CloseAction.RESUME


@pytest.mark.parametrize("code, keeps_session", [(1000, False), (1001, False), (1002, True), (1009, True)])
def test_client_side_close_codes(code: int, keeps_session: bool) -> None:
    harness = Harness()
    harness.fresh_start()
    (connect,) = harness.lost(code, 1.0, by_client=True)
    assert connect.resume is keeps_session
    assert (harness.proto.session is not None) is keeps_session


def test_fatal_4004_golden_flow() -> None:
    harness = Harness()
    harness.start()
    harness.open(0.0)
    harness.hello(0.1)
    harness.proto.identify_granted(0.2)
    harness.take_sent()
    harness.take_actions()
    (stop,) = harness.lost(4004, 0.3, reason="Authentication failed.")
    assert stop.error.code == 4004
    assert harness.proto.fatal_error is stop.error
    assert harness.proto.stopped
    with pytest.raises(FatalCloseError) as info:
        harness.proto.send_command({"op": 3, "d": {}}, 1.0)
    assert info.value.code == 4004
    harness.proto.start(2.0)
    harness.proto.connection_opened(2.0)
    assert harness.take_actions() == [] and harness.proto.status is ShardStatus.FATALLY_CLOSED


def test_fatal_code_wins_over_our_own_close_plan() -> None:
    harness = Harness()
    harness.fresh_start()
    harness.feed({"op": 7}, 1.0)
    harness.take_actions()
    (stop,) = harness.lost(4013, 1.1)
    assert isinstance(stop, Stop) and stop.error is not None and stop.error.code == 4013


# -- Backoff ---------------------------------------------------------------------------------------------------


def test_backoff_delay_grows_with_jitter_and_is_capped() -> None:
    assert backoff_delay(0) == 0.0
    for attempt in range(1, 12):
        ceiling = min(BACKOFF_CAP, 2.0 ** (attempt - 1))
        assert backoff_delay(attempt, lambda: 0.0) == ceiling / 2
        assert backoff_delay(attempt, lambda: 0.999999) == pytest.approx(ceiling, rel=1e-5)
    assert backoff_delay(10_000, lambda: 0.5) == pytest.approx(BACKOFF_CAP * 0.75)


def test_accept_then_close_backs_off_instead_of_a_tight_loop() -> None:
    harness = Harness()
    harness.fresh_start()
    now = 1.0
    harness.lost(None, now)  # a healthy session dropped: reconnect at once
    delays = []
    for attempt in range(1, 7):
        harness.open(now)
        harness.hello(now)
        now += 0.01
        assert harness.lost(4000, now) == []
        reconnect_at = harness.proto.next_deadline()
        assert reconnect_at is not None
        delays.append(reconnect_at - now)
        connect = harness.reconnect(reconnect_at)
        assert connect.attempt == attempt
        now = reconnect_at
    for attempt, delay in enumerate(delays, start=1):
        ceiling = 2.0 ** (attempt - 1)
        assert ceiling / 2 <= delay <= ceiling
    # reaching RESUMED resets the counter: the next drop reconnects at once
    harness.open(now)
    harness.hello(now)
    harness.take_sent()
    harness.dispatch("RESUMED", 2, now)
    assert harness.proto.attempt == 0
    assert harness.lost(None, now + 1.0) == [Connect(RESUME_URL + QUERY, resume=True, attempt=0)]


def _cut_during_replay(harness: Harness, now: float, replayed: list[int]) -> tuple[Connect, float]:
    """One connection that RESUMEs, gets ``replayed`` dispatches and is cut before RESUMED: (next Connect, delay)."""
    harness.open(now)
    harness.hello(now)
    (resume,) = harness.take_sent()
    assert resume["op"] == 6
    for seq in replayed:
        harness.dispatch("MESSAGE_CREATE", seq, now)
    assert harness.lost(1006, now + 0.01) == []
    reconnect_at = harness.proto.next_deadline()
    assert reconnect_at is not None
    return harness.reconnect(reconnect_at), reconnect_at - (now + 0.01)


def test_a_replay_cut_before_resumed_holds_the_backoff_while_events_flow() -> None:
    """A RESUME's replay comes before RESUMED: a connection cut during it, having delivered new dispatches, keeps
    attempt at 1 (0.5-1 s) instead of climbing towards BACKOFF_CAP; one that delivered nothing new climbs."""
    harness = Harness()
    harness.fresh_start()
    now = 1.0
    harness.lost(None, now)  # a healthy session dropped: reconnect at once
    seq = 1
    for _ in range(8):
        connect, delay = _cut_during_replay(harness, now, [seq + 1, seq + 2, seq + 3])
        seq += 3
        assert connect == Connect(RESUME_URL + QUERY, resume=True, attempt=1)
        assert 0.5 <= delay <= 1.0
        assert harness.proto.session is not None and harness.proto.session.sequence == seq
        now += 2.0
    # only duplicates of what was delivered: no progress, so the count climbs again
    for attempt in (2, 3):
        connect, delay = _cut_during_replay(harness, now, [seq - 1, seq])
        assert connect.attempt == attempt
        assert 2.0 ** (attempt - 2) <= delay <= 2.0 ** (attempt - 1)
        now += 10.0
    # new events again: held where it stands (not reset: only RESUMED resets)
    connect, _ = _cut_during_replay(harness, now, [seq + 1])
    assert connect.attempt == 3
    harness.open(now + 10.0)
    harness.hello(now + 10.0)
    harness.take_sent()
    harness.dispatch("RESUMED", None, now + 10.0)
    assert harness.proto.attempt == 0


def test_connect_failure_clears_resume_url_keeps_session_and_backs_off() -> None:
    harness = Harness()
    harness.fresh_start()
    harness.lost(None, 1.0)
    harness.proto.connect_failed(1.5, ConnectionRefusedError("refused"))
    assert harness.take_actions() == []
    assert harness.proto.status is ShardStatus.DISCONNECTED
    reconnect_at = harness.proto.next_deadline()
    assert reconnect_at is not None and 2.0 <= reconnect_at <= 2.5
    assert harness.proto.resume_url is None
    assert harness.reconnect(reconnect_at) == Connect(GATEWAY + QUERY, resume=True, attempt=1)
    harness.proto.connect_failed(reconnect_at + 1.0)
    second = harness.proto.next_deadline()
    assert second is not None and 1.0 <= second - (reconnect_at + 1.0) <= 2.0


# -- Identify queue interplay ----------------------------------------------------------------------------------


def test_identify_wait_cancelled_when_the_connection_goes() -> None:
    harness = Harness()
    harness.start()
    harness.open(0.0)
    harness.hello(0.0)
    assert harness.take_actions() == [RequestIdentify(0)]
    actions = harness.lost(1006, 1.0)
    assert actions[0] == CancelIdentify()
    assert not harness.proto.identify_granted(1.1), "a stale grant is ignored"
    assert harness.take_sent() == []


# -- Commands and the rate limiter -----------------------------------------------------------------------------


def test_121_commands_at_one_instant_wait_for_the_window() -> None:
    harness = Harness()
    harness.fresh_start(0.0)  # IDENTIFY took one permit at t=0.3
    limiter = harness.proto.ratelimiter
    assert limiter is not None and limiter.max == 117
    for i in range(121):
        harness.proto.send_command({"op": 3, "d": {"i": i}}, 10.0)
    sent = harness.take_sent()
    assert [p["d"]["i"] for p in sent] == list(range(116))
    assert harness.proto.pending_commands == 5
    # Drive the timer like a driver (ACKing heartbeats) and record when the rest go out. The heartbeats at ~13.6 s
    # and ~54.8 s count in the window, so the IDENTIFY permit expiring at 60.3 s frees nothing usable; the
    # commands' own permits expire at 70.0 s.
    released: list[tuple[float, int]] = []
    heartbeats = 0
    while harness.proto.pending_commands:
        now = harness.proto.next_deadline()
        assert now is not None and now <= 80.0
        harness.proto.handle_timer(now)
        for payload in harness.take_sent():
            if payload["op"] == 1:
                heartbeats += 1
                harness.feed({"op": 11}, now + 0.05)
            else:
                released.append((now, payload["d"]["i"]))
        assert limiter.in_window(now) <= 120
    assert heartbeats == 2
    assert released == [(70.0, i) for i in range(116, 121)]


def test_commands_wait_until_identified_and_survive_reconnects() -> None:
    harness = Harness()
    harness.start()
    harness.proto.send_command({"op": 3, "d": {"i": 0}}, 0.0)
    harness.open(0.1)
    harness.hello(0.2)
    harness.proto.send_command({"op": 3, "d": {"i": 1}}, 0.25)
    assert harness.take_sent() == [], "nothing before IDENTIFY/READY"
    harness.proto.identify_granted(0.3)
    assert [p["op"] for p in harness.take_sent()] == [2]
    harness.ready(0.4)
    assert [p["d"]["i"] for p in harness.take_sent()] == [0, 1]
    harness.lost(None, 1.0)
    harness.proto.send_command({"op": 3, "d": {"i": 2}}, 1.0)
    harness.open(1.1)
    assert harness.take_sent() == []
    harness.hello(1.2)
    sent = harness.take_sent()
    assert [p["op"] for p in sent] == [6, 3], "RESUME first; commands may follow it before RESUMED"
    assert sent[1]["d"]["i"] == 2


def test_oversize_command_raises_before_anything_is_queued() -> None:
    harness = Harness()
    harness.fresh_start()
    overhead = len(_json.dumps({"op": 3, "d": {"x": ""}}))
    exact = {"op": 3, "d": {"x": "a" * (4096 - overhead)}}
    with pytest.raises(ValueError, match="4097 bytes"):
        harness.proto.send_command({"op": 3, "d": {"x": "a" * (4097 - overhead)}}, 1.0)
    with pytest.raises(ValueError, match="4097 bytes"):
        harness.proto.send_command(b"x" * 4097, 1.0)
    assert harness.proto.pending_commands == 0 and harness.take_sent() == []
    harness.proto.send_command(exact, 1.0)
    assert len(_json.dumps(harness.take_sent()[0])) == 4096


@pytest.mark.parametrize("payload, error", [
    ({"op": 2, "d": {}}, ValueError), ({"op": 6, "d": {}}, ValueError), ({"op": 1, "d": None}, ValueError),
    ({"d": {}}, ValueError), ("text", TypeError), (["op"], TypeError)])
def test_bad_commands(payload: Any, error: type[Exception]) -> None:
    harness = Harness()
    harness.fresh_start()
    with pytest.raises(error):
        harness.proto.send_command(payload, 1.0)
    assert harness.proto.pending_commands == 0


def test_bytes_commands_are_sent_verbatim() -> None:
    harness = Harness()
    harness.fresh_start()
    harness.proto.send_command(b'{"op":3,"d":{"status":"idle"}}', 1.0)
    assert harness.proto.data_to_send() == [b'{"op":3,"d":{"status":"idle"}}']


def test_without_rate_limiting() -> None:
    harness = Harness(ratelimit_commands=False)
    harness.fresh_start()
    for i in range(300):
        harness.proto.send_command({"op": 3, "d": {"i": i}}, 1.0)
    assert len(harness.take_sent()) == 300


# -- User close ------------------------------------------------------------------------------------------------


def test_user_close_1000_ends_the_session() -> None:
    harness = Harness()
    harness.fresh_start()
    harness.proto.close(1.0)
    assert harness.take_actions() == [Close(1000, "")]
    assert harness.lost(1000, 1.1, by_client=True) == [Stop(None)]
    assert harness.proto.session is None
    assert harness.proto.status is ShardStatus.DISCONNECTED
    with pytest.raises(ShardClosedError):
        harness.proto.send_command({"op": 3, "d": {}}, 2.0)
    harness.proto.handle_timer(100.0)
    assert harness.take_actions() == []


def test_user_close_other_code_keeps_the_session_for_a_restart() -> None:
    harness = Harness()
    harness.fresh_start()
    harness.proto.close(1.0, 4000, "restarting")
    assert harness.take_actions() == [Close(4000, "restarting")]
    assert harness.lost(4000, 1.1, by_client=True) == [Stop(None)]
    assert harness.proto.session == Session("session-1", 1)


def test_user_close_while_waiting_to_reconnect_stops_at_once() -> None:
    harness = Harness()
    harness.start()
    harness.proto.connect_failed(0.5)
    harness.proto.close(0.6)
    assert harness.take_actions() == [Stop(None)]
    assert harness.proto.next_deadline() is None


# -- The token stays secret ------------------------------------------------------------------------------------


def test_token_never_in_reprs_logs_or_errors(caplog: pytest.LogCaptureFixture) -> None:
    texts: list[str] = []
    with caplog.at_level(logging.DEBUG, logger="gateway"):
        harness = Harness()
        harness.fresh_start()
        texts += [repr(harness.proto), str(harness.proto), repr(harness.proto.session), repr(Token(TOKEN)),
                  str(Token(TOKEN)), repr(harness.proto.latency)]
        harness.feed({"op": 7}, 1.0)
        harness.lost(4000, 1.1, by_client=True)
        harness.open(1.2)
        harness.hello(1.3)
        harness.proto.payload_error(PayloadError("bad", TOKEN.encode()), 1.4)
        harness.proto.compression_error(Exception("corrupt"), 1.5)
        harness.lost(None, 1.6)
        harness.proto.connect_failed(2.0)
        for payload in ({"op": 2, "d": {"token": TOKEN}}, b"x" * 5000):
            try:
                harness.proto.send_command(payload, 3.0)
            except (ValueError, TypeError) as exc:
                texts.append(str(exc))
        harness.lost(4004, 3.1)
        texts.append(repr(harness.proto))
        try:
            harness.proto.send_command({"op": 3, "d": {}}, 4.0)
        except FatalCloseError as exc:
            texts.append(str(exc))
    for bad in ("", "a\nb"):
        try:
            Token(bad)
        except ValueError as exc:
            texts.append(str(exc))
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(Token(TOKEN))
    texts += [record.getMessage() for record in caplog.records]
    texts += [str(record.args) for record in caplog.records]
    assert len(caplog.records) > 5
    assert all(TOKEN not in text for text in texts)
    assert "redacted" in repr(Token(TOKEN))
