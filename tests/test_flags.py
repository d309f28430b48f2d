"""EventTypeFlags, Intents and the plain-int tables, checked against the spec's gateway-events.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.flags import (
    EVENTS_WITHOUT_INTENT,
    FLAG_BY_NAME,
    GATEWAY_EVENTS,
    INTENT_EVENTS,
    OPCODE_NAMES,
    EventTypeFlags,
    Intents,
)

#: The spec table: vendored under tests/data if the lead copies it there, else the team's shared reference beside the repo.
SPEC_CANDIDATES = (
    Path(__file__).parent / "data" / "gateway-events.json",
    Path(__file__).resolve().parents[2] / "shared" / "discord" / "gateway-events.json",
)
GATEWAY_NAMES = (
    "GATEWAY_HELLO",
    "GATEWAY_HEARTBEAT",
    "GATEWAY_HEARTBEAT_ACK",
    "GATEWAY_RECONNECT",
    "GATEWAY_INVALIDATE_SESSION",
    "GATEWAY_CLOSE",
)


@pytest.fixture(scope="module")
def spec() -> dict:
    for path in SPEC_CANDIDATES:
        if path.exists():
            return json.loads(path.read_text(encoding="utf-8"))
    pytest.skip("gateway-events.json is not on this machine")


def test_every_dispatch_event_of_the_spec_has_a_flag_and_nothing_else_is_there(spec: dict) -> None:
    spec_names = {event["name"] for event in spec["dispatch_events"]}
    assert len(spec_names) == 79
    flag_names = set(EventTypeFlags.__members__)
    assert spec_names <= flag_names
    assert flag_names - spec_names == set(GATEWAY_NAMES) | {"UNKNOWN"}


def test_every_flag_is_one_distinct_bit() -> None:
    values = [member.value for member in EventTypeFlags.__members__.values()]
    assert len(values) == 79 + 7
    assert all(value > 0 and value & (value - 1) == 0 for value in values)
    assert len(set(values)) == len(values)


def test_all_is_the_union_of_every_flag() -> None:
    union = 0
    for member in EventTypeFlags.__members__.values():
        union |= member.value
    assert EventTypeFlags.all() == union
    assert isinstance(EventTypeFlags.all(), EventTypeFlags)
    assert EventTypeFlags.all() & EventTypeFlags.UNKNOWN
    assert EventTypeFlags.all() & EventTypeFlags.GATEWAY_CLOSE


def test_intent_bits_match_the_spec(spec: dict) -> None:
    assert {name: member.value for name, member in Intents.__members__.items()} == {
        name: 1 << bit for name, bit in spec["intents"].items()
    }
    assert Intents.all() == spec["intents_all_value"] == 53608447
    assert Intents.privileged() == spec["intents_privileged_value"] == 33026
    assert Intents.non_privileged() == spec["intents_non_privileged_value"] == 53575421
    assert {member.name for member in Intents if member & Intents.privileged()} == set(spec["privileged_intents"])


def test_intent_events_match_the_spec(spec: dict) -> None:
    assert set(INTENT_EVENTS) == set(Intents.__members__.values())
    for intent_name, event_names in spec["intent_events"].items():
        expected = 0
        for name in event_names:
            expected |= FLAG_BY_NAME[name]
        assert INTENT_EVENTS[Intents[intent_name]] == expected, intent_name
    for event in spec["dispatch_events"]:
        gating = {intent for intent, events in INTENT_EVENTS.items() if events & FLAG_BY_NAME[event["name"]]}
        assert gating == {Intents[name] for name in event["intents"]}, event["name"]


def test_events_without_intent_match_the_spec(spec: dict) -> None:
    expected = 0
    for name in spec["events_without_intent"]:
        expected |= FLAG_BY_NAME[name]
    assert EVENTS_WITHOUT_INTENT == expected
    gated = 0
    for events in INTENT_EVENTS.values():
        gated |= events
    assert EVENTS_WITHOUT_INTENT & gated == 0


def test_from_intents_enables_the_intent_events_plus_ungated_gateway_and_unknown() -> None:
    flags = EventTypeFlags.from_intents(Intents.GUILD_MESSAGES)
    assert isinstance(flags, EventTypeFlags)
    assert flags & EventTypeFlags.MESSAGE_CREATE
    assert flags & EventTypeFlags.MESSAGE_DELETE_BULK
    assert flags & EventTypeFlags.READY and flags & EventTypeFlags.INTERACTION_CREATE
    assert flags & GATEWAY_EVENTS == GATEWAY_EVENTS
    assert flags & EventTypeFlags.UNKNOWN
    assert not flags & EventTypeFlags.PRESENCE_UPDATE
    assert not flags & EventTypeFlags.TYPING_START
    assert not flags & EventTypeFlags.CHANNEL_PINS_UPDATE  # GUILDS or DIRECT_MESSAGES
    assert EventTypeFlags.from_intents(Intents.DIRECT_MESSAGES) & EventTypeFlags.CHANNEL_PINS_UPDATE


def test_from_intents_of_everything_is_every_flag() -> None:
    assert EventTypeFlags.from_intents(Intents.all()) == EventTypeFlags.all()


def test_from_no_intents_is_only_the_ungated_events() -> None:
    assert EventTypeFlags.from_intents(0) == EVENTS_WITHOUT_INTENT | GATEWAY_EVENTS | EventTypeFlags.UNKNOWN
    assert EventTypeFlags.from_intents(Intents.MESSAGE_CONTENT) == EventTypeFlags.from_intents(0)


def test_flag_by_name_is_plain_ints_for_every_flag() -> None:
    assert set(FLAG_BY_NAME) == set(EventTypeFlags.__members__)
    for name, value in FLAG_BY_NAME.items():
        assert type(value) is int
        assert value == EventTypeFlags[name].value


def test_opcode_names() -> None:
    assert OPCODE_NAMES == {
        1: "GATEWAY_HEARTBEAT",
        7: "GATEWAY_RECONNECT",
        9: "GATEWAY_INVALIDATE_SESSION",
        10: "GATEWAY_HELLO",
        11: "GATEWAY_HEARTBEAT_ACK",
    }
    assert all(name in FLAG_BY_NAME for name in OPCODE_NAMES.values())
