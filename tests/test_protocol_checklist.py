"""ShardProtocol against the twilight-gateway checklist (CHECKLIST.md): rows that had no direct test, and the fixes.

Sans-I/O like ``test_protocol.py``: explicit ``now`` values, a seeded rng, no sockets, no event loop.
"""

from __future__ import annotations

import pytest

from gateway.errors import FatalCloseError
from gateway.models import ShardId, ShardStatus, bucket
from gateway.protocol import Abort, Close, Connect, RequestIdentify, Stop
from test_protocol import GATEWAY, INTERVAL, QUERY, RESUME_URL, TOKEN, Harness

# -- rows 16, 18, 20: zombie rule with server heartbeat requests (fix) -------------------------------------------


def _first_beat(harness: Harness) -> float:
    beat = harness.proto.next_deadline()
    assert beat is not None
    harness.proto.handle_timer(beat)
    assert harness.take_sent() == [{"op": 1, "d": 1}]
    return beat


def test_op1_reply_just_before_the_tick_does_not_make_a_zombie() -> None:
    """The interval beat was ACKed; an op-1 reply sent 0.2 s before the next tick has had no time to be ACKed."""
    harness = Harness()
    harness.fresh_start()
    beat = _first_beat(harness)
    harness.feed({"op": 11}, beat + 0.1)
    harness.feed({"op": 1, "d": None}, beat + INTERVAL - 0.2)
    assert harness.take_sent() == [{"op": 1, "d": 1}], "op 1 answered at once"
    harness.proto.handle_timer(beat + INTERVAL)
    assert harness.take_actions() == [], "not a zombie"
    assert harness.take_sent() == [{"op": 1, "d": 1}], "the interval heartbeat goes out"
    assert harness.proto.next_deadline() == pytest.approx(beat + 2 * INTERVAL)


def test_ack_of_an_op1_reply_proves_the_connection_alive() -> None:
    harness = Harness()
    harness.fresh_start()
    beat = _first_beat(harness)  # never ACKed
    harness.feed({"op": 1}, beat + 10.0)
    harness.take_sent()
    harness.feed({"op": 11}, beat + 10.1)
    harness.proto.handle_timer(beat + INTERVAL)
    assert harness.take_actions() == []
    assert harness.take_sent() == [{"op": 1, "d": 1}]


def test_no_ack_since_the_interval_beat_is_a_zombie_even_with_an_op1_reply_in_between() -> None:
    harness = Harness()
    harness.fresh_start()
    beat = _first_beat(harness)
    harness.feed({"op": 1}, beat + 10.0)  # answered, never ACKed either
    harness.take_sent()
    harness.proto.handle_timer(beat + INTERVAL)
    (abort,) = harness.take_actions()
    assert isinstance(abort, Abort)
    assert harness.take_sent() == []
    assert harness.lost(None, beat + INTERVAL + 0.01) == [Connect(RESUME_URL + QUERY, resume=True, attempt=0)]


def test_the_first_tick_after_hello_is_never_a_zombie() -> None:
    """A heartbeat requested with op 1 before the first interval beat does not arm the zombie check."""
    harness = Harness()
    harness.start()
    harness.open(0.0)
    harness.hello(0.1)
    harness.feed({"op": 1}, 0.2)
    assert harness.take_sent() == [{"op": 1, "d": None}]
    first = harness.proto.next_deadline()
    assert first is not None
    harness.proto.handle_timer(first)
    assert [a for a in harness.take_actions() if isinstance(a, Abort)] == []
    assert {"op": 1, "d": None} in harness.take_sent()


# -- row 36: a fatal code in answer to our own Close (fix) -------------------------------------------------------


def _trigger_op7(harness: Harness) -> None:
    harness.feed({"op": 7}, 1.0)


def _trigger_op9_true(harness: Harness) -> None:
    harness.feed({"op": 9, "d": True}, 1.0)


def _trigger_compression_error(harness: Harness) -> None:
    harness.proto.compression_error(Exception("corrupt"), 1.0)


@pytest.mark.parametrize("trigger", [_trigger_op7, _trigger_op9_true, _trigger_compression_error],
                         ids=["op7", "op9-true", "compression-error"])
@pytest.mark.parametrize("fatal", [4004, 4014])
def test_fatal_code_answering_our_close_ends_the_shard(trigger, fatal: int) -> None:  # type: ignore[no-untyped-def]
    """The driver reports ``initiated_by_client=True`` for every connection it closed (``closed_by_us``), with the
    peer's close code; a fatal peer code must still win over our resume plan."""
    harness = Harness()
    harness.fresh_start()
    trigger(harness)
    (close,) = harness.take_actions()
    assert isinstance(close, Close) and close.code == 4000
    (stop,) = harness.lost(fatal, 1.1, reason="nope", by_client=True)
    assert isinstance(stop, Stop) and isinstance(stop.error, FatalCloseError) and stop.error.code == fatal
    assert harness.proto.status is ShardStatus.FATALLY_CLOSED


@pytest.mark.parametrize("by_client", [True, False])
def test_echo_of_our_own_close_keeps_our_plan(by_client: bool) -> None:
    harness = Harness()
    harness.fresh_start()
    harness.feed({"op": 7}, 1.0)
    harness.take_actions()
    assert harness.lost(4000, 1.1, by_client=by_client) == [Connect(RESUME_URL + QUERY, resume=True, attempt=0)]


def test_connection_layer_close_is_ours_whatever_the_code() -> None:
    """A close the connection layer started (framing error) carries our code: never a fatal verdict."""
    harness = Harness()
    harness.fresh_start()
    (connect,) = harness.lost(1002, 1.0, by_client=True)
    assert connect.resume


# -- row 21: latency reset on every HELLO ------------------------------------------------------------------------


def test_latency_is_reset_on_every_hello() -> None:
    harness = Harness()
    harness.fresh_start()
    beat = _first_beat(harness)
    harness.feed({"op": 11}, beat + 0.2)
    assert harness.proto.latency.periods == 1
    harness.lost(None, beat + 1.0)
    harness.open(beat + 1.1)
    harness.hello(beat + 1.2)
    latency = harness.proto.latency
    assert (latency.periods, latency.recent, latency.average, latency.sent, latency.received) == (0, (), None, None, None)


# -- rows 23, 27: RESUME bypasses the identify queue, takes a permit, carries no presence -------------------------


def test_resume_bypasses_the_identify_queue_takes_a_permit_and_has_no_presence() -> None:
    presence = {"status": "idle", "activities": [], "afk": False, "since": None}
    harness = Harness(presence=presence)
    harness.start()
    harness.open(0.0)
    harness.hello(0.1)
    harness.proto.identify_granted(0.2)
    (identify,) = harness.take_sent()
    assert identify["d"]["presence"] == presence, "presence goes in IDENTIFY"
    harness.ready(0.3)
    harness.lost(None, 1.0)
    harness.open(1.1)
    harness.hello(1.2)
    assert harness.take_actions() == [], "no RequestIdentify for a RESUME"
    (resume,) = harness.take_sent()
    assert resume == {"op": 6, "d": {"token": TOKEN, "session_id": "session-1", "seq": 1}}
    assert "presence" not in resume["d"]
    limiter = harness.proto.ratelimiter
    assert limiter is not None and limiter.available(1.2) == limiter.max - 1


# -- row 28: IDENTIFY waits for the queue grant AND a permit -----------------------------------------------------


def test_identify_waits_for_a_rate_limit_permit() -> None:
    harness = Harness()
    harness.start()
    harness.open(0.0)
    harness.hello(0.0)
    assert harness.take_actions() == [RequestIdentify(0)]
    limiter = harness.proto.ratelimiter
    assert limiter is not None
    while limiter.acquire(0.5):  # white box: someone used up the window
        pass
    assert harness.proto.identify_granted(1.0)
    assert [p for p in harness.take_sent() if p["op"] == 2] == []
    free_at = limiter.next_available(1.0)
    assert free_at == pytest.approx(60.5)
    assert harness.proto.next_deadline() is not None and harness.proto.next_deadline() <= free_at
    now = harness.proto.next_deadline()
    identified = False
    while not identified:
        assert now is not None and now <= free_at
        harness.proto.handle_timer(now)
        for payload in harness.take_sent():
            if payload["op"] == 1:
                harness.feed({"op": 11}, now + 0.01)
            else:
                assert payload["op"] == 2 and now == pytest.approx(free_at)
                identified = True
        now = harness.proto.next_deadline()


# -- rows 40, 49: one connection_lost per connection; limiter lifetime ---------------------------------------------


def test_a_second_connection_lost_is_ignored() -> None:
    harness = Harness()
    harness.fresh_start()
    (connect,) = harness.lost(None, 1.0)
    assert connect.resume
    assert harness.lost(1006, 1.01) == []
    assert harness.lost(4004, 1.02) == [], "a late report cannot turn the finished connection fatal"
    assert harness.proto.status is ShardStatus.DISCONNECTED


def test_rate_limiter_is_new_per_hello_and_none_when_disconnected_or_disabled() -> None:
    harness = Harness()
    harness.start()
    harness.open(0.0)
    assert harness.proto.ratelimiter is None, "none before HELLO"
    harness.hello(0.1)
    first = harness.proto.ratelimiter
    assert first is not None
    harness.lost(None, 1.0)
    assert harness.proto.ratelimiter is None, "none while disconnected"
    harness.reconnect(1.0)
    harness.open(2.0)
    harness.hello(2.1)
    assert harness.proto.ratelimiter is not None and harness.proto.ratelimiter is not first
    disabled = Harness(ratelimit_commands=False)
    disabled.fresh_start()
    assert disabled.proto.ratelimiter is None


# -- row 65: internal handling does not depend on the user's filter ----------------------------------------------


def test_internal_handling_ignores_the_event_filter() -> None:
    """The Harness scans with ``EventFilter(0)`` (nothing wanted): HELLO, READY, op 1 and op 7 still act."""
    harness = Harness()
    harness.fresh_start()
    harness.feed({"op": 1}, 1.0)
    assert harness.take_sent() == [{"op": 1, "d": 1}]
    harness.feed({"op": 7}, 2.0)
    assert harness.take_actions() == [Close(4000, "reconnect requested")]


# -- row 75: bucket() -------------------------------------------------------------------------------------------


def test_bucket_matches_twilight_vectors() -> None:
    assert bucket(0, 2, 25) == [ShardId(n, 25) for n in range(13)]
    assert bucket(1, 2, 25) == [ShardId(n, 25) for n in range(13, 25)]
    assert bucket(0, 1, 1) == [ShardId(0, 1)]


@pytest.mark.parametrize("buckets, total", [(1, 7), (3, 7), (7, 7), (4, 2), (16, 32), (5, 1000)])
def test_buckets_are_consecutive_balanced_and_cover_every_shard(buckets: int, total: int) -> None:
    ranges = [bucket(i, buckets, total) for i in range(buckets)]
    flat = [shard.number for part in ranges for shard in part]
    assert flat == list(range(total))
    sizes = [len(part) for part in ranges]
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)
    assert all(shard.total == total for part in ranges for shard in part)


@pytest.mark.parametrize("args, error", [
    ((2, 2, 25), ValueError), ((-1, 2, 25), ValueError), ((0, 0, 25), ValueError), ((0, 1, 0), ValueError),
    ((True, 2, 25), TypeError), ((0, 2.0, 25), TypeError), ((0, 2, "25"), TypeError)])
def test_bucket_rejects_bad_arguments(args: tuple, error: type[Exception]) -> None:
    with pytest.raises(error):
        bucket(*args)


def test_gateway_url_is_the_fallback_after_a_failed_resume_connect() -> None:
    """Row 4/9: resume_url > gateway_url; a failed connect falls back to gateway_url and still resumes."""
    harness = Harness(gateway_url="ws://proxy.local:8080")
    harness.fresh_start()
    assert harness.lost(None, 1.0) == [Connect(RESUME_URL + QUERY, resume=True, attempt=0)]
    harness.proto.connect_failed(1.1)
    assert harness.reconnect(1.1) == Connect("ws://proxy.local:8080" + QUERY, resume=True, attempt=1)
    assert GATEWAY != "ws://proxy.local:8080"
