"""The shard's fast lane: ``EventFilter.run`` (both twins) and ``ShardProtocol.fast_lane``/``dispatched``.

Two properties: the twins' ``run`` agree on any run of messages (what they take, deliver, hand back and where they
stop), and a protocol fed through the lane (as ``Shard._on_messages`` does) delivers exactly what ``receive()`` alone
would, and ends in the same state (sequence, outputs). Streams mix plain dispatches with everything the lane must
hand back: duplicates and replays, a null or out-of-range ``s``, READY/RESUMED, other opcodes, malformed payloads,
control frames, zlib-stream messages split over frames, and corrupt compressed data.
"""

from __future__ import annotations

import json
import zlib
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_budget import examples

from gateway import EventTypeFlags, _envelope_py
from gateway._inflate_py import make_inflater as pure_make_inflater
from gateway.models import ShardId
from gateway.protocol import DELIVER, PUMP, ShardProtocol

SETTINGS = settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.too_slow])
OP_TEXT, OP_BINARY, OP_PING = 0x1, 0x2, 0x9
FILTERED = int(EventTypeFlags.MESSAGE_CREATE | EventTypeFlags.GUILD_CREATE)


def _payload(kind: str, seq: int) -> bytes:
    if kind == "plain":
        return json.dumps({"t": "MESSAGE_CREATE", "s": seq, "op": 0, "d": {"id": str(seq)}}).encode()
    if kind == "other":
        return json.dumps({"t": "TYPING_START", "s": seq, "op": 0, "d": {"n": seq}}).encode()
    if kind == "replay":
        return json.dumps({"t": "MESSAGE_CREATE", "s": 5, "op": 0, "d": {}}).encode()  # below every s here
    if kind == "duplicate":  # the s of the message before it
        return json.dumps({"t": "MESSAGE_CREATE", "s": seq - 1, "op": 0, "d": {}}).encode()
    if kind == "null_seq":
        return b'{"t":"GUILD_CREATE","s":null,"op":0,"d":{}}'
    if kind == "huge_seq":
        return b'{"t":"MESSAGE_CREATE","s":9223372036854775808,"op":0,"d":{}}'
    if kind == "resumed":
        return b'{"t":"RESUMED","s":' + str(seq).encode() + b',"op":0,"d":null}'
    if kind == "ack":
        return b'{"op":11,"d":null}'
    if kind == "malformed":
        return b'{"t":"MESSAGE_CREATE","s":' + str(seq).encode() + b',"op":0,"d":{}'
    raise AssertionError(kind)


KINDS = ("plain", "plain", "plain", "other", "replay", "duplicate", "null_seq", "huge_seq", "resumed", "ack", "malformed", "ping")


@st.composite
def streams(draw: Any) -> tuple[str | None, list[tuple[int, bytes]]]:
    """(compression, websocket messages): frames as FrameReader.feed returns them."""
    compression = draw(st.sampled_from([None, "zlib-stream"]))
    kinds = draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=40))
    compressor = zlib.compressobj()
    messages: list[tuple[int, bytes]] = []
    seq = 10
    for kind in kinds:
        if kind == "ping":
            messages.append((OP_PING, b"p"))
            continue
        seq += 1
        payload = _payload(kind, seq)
        if compression is None:
            messages.append((OP_TEXT, payload))
            continue
        data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
        if draw(st.booleans()) and len(data) > 6:  # one message split over two frames
            cut = draw(st.integers(min_value=1, max_value=len(data) - 5))
            messages += [(OP_BINARY, data[:cut]), (OP_BINARY, data[cut:])]
        else:
            messages.append((OP_BINARY, data))
    if compression is not None and draw(st.integers(min_value=0, max_value=9)) == 0:
        messages.append((OP_BINARY, b"\x00\xff\xff\xff\x00\x00\xff\xff"))  # corrupt: the inflater raises
    return compression, messages


def _trace(envelope: ModuleType, inflate_module: ModuleType, compression: str | None,
           messages: list[tuple[int, bytes]], wanted: int) -> list[Any]:
    """Everything run() does over the whole list, restarting after each stop the way the shard does."""
    lane = envelope.EventFilter(wanted)
    inflater = inflate_module.make_inflater(compression, 1 << 20)
    inflate = inflater.feed if inflater is not None else None
    delivered: list[Any] = []
    trace: list[Any] = []
    index, sequence = 0, 10
    while index < len(messages):
        pending = lane.run(messages, index, inflate, sequence, delivered.append, 4)
        index, sequence = lane.position, lane.sequence
        if isinstance(pending, Exception):
            trace.append(("raised", type(pending).__name__, index, sequence))
            break  # the shard replaces the connection after a corrupt stream
        trace.append(("stop", pending, index, sequence))
        if pending is None and index < len(messages):
            index += 1  # a control frame: the connection's
    trace.append([(e.name, e.op, e.seq, e.raw, e.shard_id, e.data, e.get("id")) for e in delivered])
    return trace


@SETTINGS
@given(stream=streams(), wanted=st.sampled_from([int(EventTypeFlags.all()), FILTERED, 0]))
def test_the_twins_run_the_lane_alike(envelope: ModuleType, inflate: ModuleType,
                                      stream: tuple[str | None, list[tuple[int, bytes]]], wanted: int) -> None:
    compression, messages = stream
    reference = _trace(_envelope_py, _import_pure_inflate(), compression, messages, wanted)
    assert _trace(envelope, inflate, compression, messages, wanted) == reference


def _import_pure_inflate() -> ModuleType:
    import gateway._inflate_py

    return gateway._inflate_py


def _steady_protocol() -> ShardProtocol:
    """HELLO, IDENTIFY, READY with s=10: a running session."""
    proto = ShardProtocol(ShardId(0, 1), "token.x.y", 513, rng=lambda: 0.5)
    scan = _envelope_py.EventFilter(0).scan
    proto.start(0.0)
    proto.actions()
    proto.connection_opened(0.1)

    def feed(payload: bytes, now: float) -> int:
        op, seq, name, d_start, d_end, _ = scan(payload)
        return proto.receive(op, seq, name, payload, d_start, d_end, now)

    feed(b'{"op":10,"d":{"heartbeat_interval":41250}}', 0.2)
    proto.actions()
    assert proto.identify_granted(0.3)
    proto.data_to_send()
    feed(b'{"t":"READY","s":10,"op":0,"d":{"session_id":"abc","resume_gateway_url":"wss://r.example"}}', 0.4)
    proto.data_to_send()
    proto.actions()
    return proto


def _through_receive(messages: list[tuple[int, bytes]], wanted: int) -> tuple[list[Any], ShardProtocol]:
    proto = _steady_protocol()
    lane = _envelope_py.EventFilter(wanted)
    inflater = pure_make_inflater("zlib-stream", 1 << 20)
    delivered = []
    for opcode, message in messages:
        if opcode >= 0x8:
            continue
        try:
            payload = inflater.feed(message) if opcode == OP_BINARY else message
        except Exception:  # noqa: BLE001 - a corrupt stream ends the comparison
            break
        if payload is None:
            continue
        try:
            op, seq, name, d_start, d_end, is_wanted = lane.scan(payload)
        except Exception:  # noqa: BLE001 - a malformed payload is skipped
            continue
        if proto.receive(op, seq, name, payload, d_start, d_end, 1.0) & DELIVER and is_wanted:
            delivered.append((name, seq))
    return delivered, proto


def _through_lane(messages: list[tuple[int, bytes]], wanted: int) -> tuple[list[Any], ShardProtocol, int]:
    """Shard._on_messages' loop, on the pure twins; returns what it delivered and how many messages the lane took."""
    proto = _steady_protocol()
    lane = _envelope_py.EventFilter(wanted)
    inflater = pure_make_inflater("zlib-stream", 1 << 20)
    events: list[Any] = []
    delivered: list[Any] = []
    taken = 0
    index = 0
    while index < len(messages):
        last = proto.fast_lane()
        assert last is not None  # nothing here leaves the running session or queues a command
        pending = lane.run(messages, index, inflater.feed, last, events.append, 0)
        taken += lane.position - index - (0 if pending is None else 1)
        index = lane.position
        if lane.sequence != last:
            proto.dispatched(lane.sequence, 1.0)
        delivered += [(event.name, event.seq) for event in events]
        events.clear()
        if isinstance(pending, Exception):
            break
        if pending is None:
            index += 1  # a control frame
            continue
        try:
            op, seq, name, d_start, d_end, is_wanted = lane.scan(pending)
        except Exception:  # noqa: BLE001
            continue
        flags = proto.receive(op, seq, name, pending, d_start, d_end, 1.0)
        if flags & DELIVER and is_wanted:
            delivered.append((name, seq))
        if flags & PUMP:
            proto.data_to_send()
            proto.actions()
    return delivered, proto, taken


@SETTINGS
@given(stream=streams(), wanted=st.sampled_from([int(EventTypeFlags.all()), FILTERED]))
def test_the_lane_delivers_what_receive_would(stream: tuple[str | None, list[tuple[int, bytes]]], wanted: int) -> None:
    _, messages = stream
    expected, by_receive = _through_receive(messages, wanted)
    got, by_lane, _ = _through_lane(messages, wanted)
    assert got == expected
    assert by_lane.session == by_receive.session  # the same sequence and session id for RESUME
    assert by_lane.data_to_send() == by_receive.data_to_send() and by_lane.next_deadline() == by_receive.next_deadline()


def test_the_lane_takes_plain_dispatches_only_while_the_session_runs() -> None:
    proto = _steady_protocol()
    assert proto.fast_lane() == 10
    plain = [(OP_TEXT, _payload("plain", seq)) for seq in (11, 12, 13)]
    got, _, taken = _through_lane(plain, int(EventTypeFlags.all()))
    assert got == [("MESSAGE_CREATE", 11), ("MESSAGE_CREATE", 12), ("MESSAGE_CREATE", 13)] and taken == 3
    proto.send_command({"op": 3, "d": {"status": "online", "afk": False, "since": None, "activities": []}}, 0.5)
    proto.data_to_send()
    # A command waiting for the rate limiter, or none: fast_lane() only says yes with nothing queued.
    assert proto.fast_lane() in (None, 10)
    proto.connection_lost(None, "", 1.0)
    assert proto.fast_lane() is None  # no connection: nothing is taken past the protocol


@pytest.mark.parametrize("kind", ["replay", "null_seq", "huge_seq", "resumed", "ack", "malformed"])
def test_the_lane_hands_back_what_it_does_not_take(envelope: ModuleType, kind: str) -> None:
    payload = _payload(kind, 20)
    lane = envelope.EventFilter(int(EventTypeFlags.all()))
    events: list[Any] = []
    messages = [(OP_TEXT, _payload("plain", 11)), (OP_TEXT, payload), (OP_TEXT, _payload("plain", 21))]
    assert lane.run(messages, 0, None, 10, events.append, 1) == payload
    assert (lane.position, lane.sequence) == (2, 11) and [e.seq for e in events] == [11]
