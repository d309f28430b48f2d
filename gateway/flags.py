"""Event-type flags, gateway intents, and the plain-int tables the envelope twins use on the hot path.

The tables below were generated once from ``/work/shared/discord/gateway-events.json`` (79 dispatch events, the
intent bits of spec section 11) and written here as literal code; ``tests/test_flags.py`` re-reads that JSON and
checks that nothing is missing and that every flag has its own bit (twilight-gateway has two flags sharing a bit;
this module does not).

``EventTypeFlags``: bits 0-78 are the dispatch events in the JSON's order, then ``GATEWAY_HELLO``,
``GATEWAY_HEARTBEAT``, ``GATEWAY_HEARTBEAT_ACK``, ``GATEWAY_RECONNECT``, ``GATEWAY_INVALIDATE_SESSION``,
``GATEWAY_CLOSE`` and ``UNKNOWN`` (a dispatch name or opcode this table does not know yet).
"""

from __future__ import annotations

import enum
from typing import TypeVar

__all__ = [
    "EventTypeFlags",
    "Intents",
    "INTENT_EVENTS",
    "EVENTS_WITHOUT_INTENT",
    "GATEWAY_EVENTS",
    "FLAG_BY_NAME",
    "OPCODE_NAMES",
]


_F = TypeVar("_F", bound=enum.IntFlag)


def _union_of_members(flag_type: type[_F]) -> _F:
    """Every member of ``flag_type`` or-ed together."""
    value = 0
    for member in flag_type.__members__.values():
        value |= member.value
    return flag_type(value)


class EventTypeFlags(enum.IntFlag):
    """One distinct bit per event type a shard can yield; OR them together to say which events you want."""

    READY = 1 << 0
    RESUMED = 1 << 1
    RATE_LIMITED = 1 << 2
    APPLICATION_COMMAND_PERMISSIONS_UPDATE = 1 << 3
    AUTO_MODERATION_RULE_CREATE = 1 << 4
    AUTO_MODERATION_RULE_UPDATE = 1 << 5
    AUTO_MODERATION_RULE_DELETE = 1 << 6
    AUTO_MODERATION_ACTION_EXECUTION = 1 << 7
    CHANNEL_CREATE = 1 << 8
    CHANNEL_UPDATE = 1 << 9
    CHANNEL_DELETE = 1 << 10
    CHANNEL_INFO = 1 << 11
    CHANNEL_PINS_UPDATE = 1 << 12
    THREAD_CREATE = 1 << 13
    THREAD_UPDATE = 1 << 14
    THREAD_DELETE = 1 << 15
    THREAD_LIST_SYNC = 1 << 16
    THREAD_MEMBER_UPDATE = 1 << 17
    THREAD_MEMBERS_UPDATE = 1 << 18
    ENTITLEMENT_CREATE = 1 << 19
    ENTITLEMENT_UPDATE = 1 << 20
    ENTITLEMENT_DELETE = 1 << 21
    GUILD_CREATE = 1 << 22
    GUILD_UPDATE = 1 << 23
    GUILD_DELETE = 1 << 24
    GUILD_AUDIT_LOG_ENTRY_CREATE = 1 << 25
    GUILD_BAN_ADD = 1 << 26
    GUILD_BAN_REMOVE = 1 << 27
    GUILD_EMOJIS_UPDATE = 1 << 28
    GUILD_STICKERS_UPDATE = 1 << 29
    GUILD_INTEGRATIONS_UPDATE = 1 << 30
    GUILD_MEMBER_ADD = 1 << 31
    GUILD_MEMBER_REMOVE = 1 << 32
    GUILD_MEMBER_UPDATE = 1 << 33
    GUILD_MEMBERS_CHUNK = 1 << 34
    GUILD_ROLE_CREATE = 1 << 35
    GUILD_ROLE_UPDATE = 1 << 36
    GUILD_ROLE_DELETE = 1 << 37
    GUILD_SCHEDULED_EVENT_CREATE = 1 << 38
    GUILD_SCHEDULED_EVENT_UPDATE = 1 << 39
    GUILD_SCHEDULED_EVENT_DELETE = 1 << 40
    GUILD_SCHEDULED_EVENT_USER_ADD = 1 << 41
    GUILD_SCHEDULED_EVENT_USER_REMOVE = 1 << 42
    GUILD_SOUNDBOARD_SOUND_CREATE = 1 << 43
    GUILD_SOUNDBOARD_SOUND_UPDATE = 1 << 44
    GUILD_SOUNDBOARD_SOUND_DELETE = 1 << 45
    GUILD_SOUNDBOARD_SOUNDS_UPDATE = 1 << 46
    SOUNDBOARD_SOUNDS = 1 << 47
    INTEGRATION_CREATE = 1 << 48
    INTEGRATION_UPDATE = 1 << 49
    INTEGRATION_DELETE = 1 << 50
    INTERACTION_CREATE = 1 << 51
    INVITE_CREATE = 1 << 52
    INVITE_DELETE = 1 << 53
    MESSAGE_CREATE = 1 << 54
    MESSAGE_UPDATE = 1 << 55
    MESSAGE_DELETE = 1 << 56
    MESSAGE_DELETE_BULK = 1 << 57
    MESSAGE_REACTION_ADD = 1 << 58
    MESSAGE_REACTION_REMOVE = 1 << 59
    MESSAGE_REACTION_REMOVE_ALL = 1 << 60
    MESSAGE_REACTION_REMOVE_EMOJI = 1 << 61
    PRESENCE_UPDATE = 1 << 62
    STAGE_INSTANCE_CREATE = 1 << 63
    STAGE_INSTANCE_UPDATE = 1 << 64
    STAGE_INSTANCE_DELETE = 1 << 65
    SUBSCRIPTION_CREATE = 1 << 66
    SUBSCRIPTION_UPDATE = 1 << 67
    SUBSCRIPTION_DELETE = 1 << 68
    TYPING_START = 1 << 69
    USER_UPDATE = 1 << 70
    VOICE_CHANNEL_EFFECT_SEND = 1 << 71
    VOICE_CHANNEL_START_TIME_UPDATE = 1 << 72
    VOICE_CHANNEL_STATUS_UPDATE = 1 << 73
    VOICE_STATE_UPDATE = 1 << 74
    VOICE_SERVER_UPDATE = 1 << 75
    WEBHOOKS_UPDATE = 1 << 76
    MESSAGE_POLL_VOTE_ADD = 1 << 77
    MESSAGE_POLL_VOTE_REMOVE = 1 << 78
    GATEWAY_HELLO = 1 << 79
    GATEWAY_HEARTBEAT = 1 << 80
    GATEWAY_HEARTBEAT_ACK = 1 << 81
    GATEWAY_RECONNECT = 1 << 82
    GATEWAY_INVALIDATE_SESSION = 1 << 83
    GATEWAY_CLOSE = 1 << 84
    UNKNOWN = 1 << 85

    @classmethod
    def all(cls) -> EventTypeFlags:
        """Every flag, including ``GATEWAY_CLOSE`` and ``UNKNOWN``."""
        return _union_of_members(cls)

    @classmethod
    def from_intents(cls, intents: int) -> EventTypeFlags:
        """The events a shard identified with ``intents`` can receive.

        That is the events each of those intents enables, every event gated by no intent (``READY``,
        ``INTERACTION_CREATE``, ...), all ``GATEWAY_*`` flags, and ``UNKNOWN`` (a new Discord event may need no
        intent, so it is not filtered out by default). Undocumented intent bits are ignored.
        """
        value = EVENTS_WITHOUT_INTENT.value | GATEWAY_EVENTS.value | cls.UNKNOWN.value
        for intent, events in INTENT_EVENTS.items():
            if intents & intent:
                value |= events.value
        return cls(value)


class Intents(enum.IntFlag):
    """Gateway intent bits sent in Identify (spec section 11). Bits 17, 18, 19, 22 and 23 are undocumented."""

    GUILDS = 1 << 0
    GUILD_MEMBERS = 1 << 1  # privileged
    GUILD_MODERATION = 1 << 2
    GUILD_EXPRESSIONS = 1 << 3
    GUILD_INTEGRATIONS = 1 << 4
    GUILD_WEBHOOKS = 1 << 5
    GUILD_INVITES = 1 << 6
    GUILD_VOICE_STATES = 1 << 7
    GUILD_PRESENCES = 1 << 8  # privileged
    GUILD_MESSAGES = 1 << 9
    GUILD_MESSAGE_REACTIONS = 1 << 10
    GUILD_MESSAGE_TYPING = 1 << 11
    DIRECT_MESSAGES = 1 << 12
    DIRECT_MESSAGE_REACTIONS = 1 << 13
    DIRECT_MESSAGE_TYPING = 1 << 14
    MESSAGE_CONTENT = 1 << 15  # privileged
    GUILD_SCHEDULED_EVENTS = 1 << 16
    AUTO_MODERATION_CONFIGURATION = 1 << 20
    AUTO_MODERATION_EXECUTION = 1 << 21
    GUILD_MESSAGE_POLLS = 1 << 24
    DIRECT_MESSAGE_POLLS = 1 << 25

    @classmethod
    def all(cls) -> Intents:
        """Every documented intent (53608447)."""
        return _union_of_members(cls)

    @classmethod
    def privileged(cls) -> Intents:
        """GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT (33026): need the portal toggle (else close 4014)."""
        return cls.GUILD_MEMBERS | cls.GUILD_PRESENCES | cls.MESSAGE_CONTENT

    @classmethod
    def non_privileged(cls) -> Intents:
        """Every documented intent that is not privileged (53575421)."""
        return cls(cls.all().value & ~cls.privileged().value)


#: The dispatch events each intent enables (an event gated by two intents, e.g. MESSAGE_CREATE by GUILD_MESSAGES
#: and DIRECT_MESSAGES, is listed under both). MESSAGE_CONTENT gates fields, not events.
INTENT_EVENTS: dict[Intents, EventTypeFlags] = {
    Intents.GUILDS: (
        EventTypeFlags.GUILD_CREATE
        | EventTypeFlags.GUILD_UPDATE
        | EventTypeFlags.GUILD_DELETE
        | EventTypeFlags.GUILD_ROLE_CREATE
        | EventTypeFlags.GUILD_ROLE_UPDATE
        | EventTypeFlags.GUILD_ROLE_DELETE
        | EventTypeFlags.CHANNEL_CREATE
        | EventTypeFlags.CHANNEL_UPDATE
        | EventTypeFlags.CHANNEL_DELETE
        | EventTypeFlags.CHANNEL_PINS_UPDATE
        | EventTypeFlags.THREAD_CREATE
        | EventTypeFlags.THREAD_UPDATE
        | EventTypeFlags.THREAD_DELETE
        | EventTypeFlags.THREAD_LIST_SYNC
        | EventTypeFlags.THREAD_MEMBER_UPDATE
        | EventTypeFlags.THREAD_MEMBERS_UPDATE
        | EventTypeFlags.STAGE_INSTANCE_CREATE
        | EventTypeFlags.STAGE_INSTANCE_UPDATE
        | EventTypeFlags.STAGE_INSTANCE_DELETE
        | EventTypeFlags.VOICE_CHANNEL_STATUS_UPDATE
        | EventTypeFlags.VOICE_CHANNEL_START_TIME_UPDATE
    ),
    Intents.GUILD_MEMBERS: (
        EventTypeFlags.GUILD_MEMBER_ADD
        | EventTypeFlags.GUILD_MEMBER_UPDATE
        | EventTypeFlags.GUILD_MEMBER_REMOVE
        | EventTypeFlags.THREAD_MEMBERS_UPDATE
    ),
    Intents.GUILD_MODERATION: (
        EventTypeFlags.GUILD_AUDIT_LOG_ENTRY_CREATE
        | EventTypeFlags.GUILD_BAN_ADD
        | EventTypeFlags.GUILD_BAN_REMOVE
    ),
    Intents.GUILD_EXPRESSIONS: (
        EventTypeFlags.GUILD_EMOJIS_UPDATE
        | EventTypeFlags.GUILD_STICKERS_UPDATE
        | EventTypeFlags.GUILD_SOUNDBOARD_SOUND_CREATE
        | EventTypeFlags.GUILD_SOUNDBOARD_SOUND_UPDATE
        | EventTypeFlags.GUILD_SOUNDBOARD_SOUND_DELETE
        | EventTypeFlags.GUILD_SOUNDBOARD_SOUNDS_UPDATE
    ),
    Intents.GUILD_INTEGRATIONS: (
        EventTypeFlags.GUILD_INTEGRATIONS_UPDATE
        | EventTypeFlags.INTEGRATION_CREATE
        | EventTypeFlags.INTEGRATION_UPDATE
        | EventTypeFlags.INTEGRATION_DELETE
    ),
    Intents.GUILD_WEBHOOKS: EventTypeFlags.WEBHOOKS_UPDATE,
    Intents.GUILD_INVITES: EventTypeFlags.INVITE_CREATE | EventTypeFlags.INVITE_DELETE,
    Intents.GUILD_VOICE_STATES: EventTypeFlags.VOICE_CHANNEL_EFFECT_SEND | EventTypeFlags.VOICE_STATE_UPDATE,
    Intents.GUILD_PRESENCES: EventTypeFlags.PRESENCE_UPDATE,
    Intents.GUILD_MESSAGES: (
        EventTypeFlags.MESSAGE_CREATE
        | EventTypeFlags.MESSAGE_UPDATE
        | EventTypeFlags.MESSAGE_DELETE
        | EventTypeFlags.MESSAGE_DELETE_BULK
    ),
    Intents.GUILD_MESSAGE_REACTIONS: (
        EventTypeFlags.MESSAGE_REACTION_ADD
        | EventTypeFlags.MESSAGE_REACTION_REMOVE
        | EventTypeFlags.MESSAGE_REACTION_REMOVE_ALL
        | EventTypeFlags.MESSAGE_REACTION_REMOVE_EMOJI
    ),
    Intents.GUILD_MESSAGE_TYPING: EventTypeFlags.TYPING_START,
    Intents.DIRECT_MESSAGES: (
        EventTypeFlags.MESSAGE_CREATE
        | EventTypeFlags.MESSAGE_UPDATE
        | EventTypeFlags.MESSAGE_DELETE
        | EventTypeFlags.CHANNEL_PINS_UPDATE
    ),
    Intents.DIRECT_MESSAGE_REACTIONS: (
        EventTypeFlags.MESSAGE_REACTION_ADD
        | EventTypeFlags.MESSAGE_REACTION_REMOVE
        | EventTypeFlags.MESSAGE_REACTION_REMOVE_ALL
        | EventTypeFlags.MESSAGE_REACTION_REMOVE_EMOJI
    ),
    Intents.DIRECT_MESSAGE_TYPING: EventTypeFlags.TYPING_START,
    Intents.MESSAGE_CONTENT: EventTypeFlags(0),
    Intents.GUILD_SCHEDULED_EVENTS: (
        EventTypeFlags.GUILD_SCHEDULED_EVENT_CREATE
        | EventTypeFlags.GUILD_SCHEDULED_EVENT_UPDATE
        | EventTypeFlags.GUILD_SCHEDULED_EVENT_DELETE
        | EventTypeFlags.GUILD_SCHEDULED_EVENT_USER_ADD
        | EventTypeFlags.GUILD_SCHEDULED_EVENT_USER_REMOVE
    ),
    Intents.AUTO_MODERATION_CONFIGURATION: (
        EventTypeFlags.AUTO_MODERATION_RULE_CREATE
        | EventTypeFlags.AUTO_MODERATION_RULE_UPDATE
        | EventTypeFlags.AUTO_MODERATION_RULE_DELETE
    ),
    Intents.AUTO_MODERATION_EXECUTION: EventTypeFlags.AUTO_MODERATION_ACTION_EXECUTION,
    Intents.GUILD_MESSAGE_POLLS: EventTypeFlags.MESSAGE_POLL_VOTE_ADD | EventTypeFlags.MESSAGE_POLL_VOTE_REMOVE,
    Intents.DIRECT_MESSAGE_POLLS: EventTypeFlags.MESSAGE_POLL_VOTE_ADD | EventTypeFlags.MESSAGE_POLL_VOTE_REMOVE,
}

#: Dispatch events that no intent gates: always sent.
EVENTS_WITHOUT_INTENT: EventTypeFlags = (
    EventTypeFlags.READY
    | EventTypeFlags.RESUMED
    | EventTypeFlags.RATE_LIMITED
    | EventTypeFlags.APPLICATION_COMMAND_PERMISSIONS_UPDATE
    | EventTypeFlags.CHANNEL_INFO
    | EventTypeFlags.ENTITLEMENT_CREATE
    | EventTypeFlags.ENTITLEMENT_UPDATE
    | EventTypeFlags.ENTITLEMENT_DELETE
    | EventTypeFlags.GUILD_MEMBERS_CHUNK
    | EventTypeFlags.SOUNDBOARD_SOUNDS
    | EventTypeFlags.INTERACTION_CREATE
    | EventTypeFlags.SUBSCRIPTION_CREATE
    | EventTypeFlags.SUBSCRIPTION_UPDATE
    | EventTypeFlags.SUBSCRIPTION_DELETE
    | EventTypeFlags.USER_UPDATE
    | EventTypeFlags.VOICE_SERVER_UPDATE
)

#: The non-dispatch gateway messages and the close of the connection; a shard always handles these internally.
GATEWAY_EVENTS: EventTypeFlags = (
    EventTypeFlags.GATEWAY_HELLO
    | EventTypeFlags.GATEWAY_HEARTBEAT
    | EventTypeFlags.GATEWAY_HEARTBEAT_ACK
    | EventTypeFlags.GATEWAY_RECONNECT
    | EventTypeFlags.GATEWAY_INVALIDATE_SESSION
    | EventTypeFlags.GATEWAY_CLOSE
)

#: Event name -> bit as a plain int (no enum objects on the hot path): the 79 dispatch names, the GATEWAY_* names
#: and UNKNOWN. Its keys are the interned name strings the envelope twins hand out.
FLAG_BY_NAME: dict[str, int] = {name: member.value for name, member in EventTypeFlags.__members__.items()}

#: Non-dispatch opcode -> the event name it is reported under.
OPCODE_NAMES: dict[int, str] = {
    1: "GATEWAY_HEARTBEAT",
    7: "GATEWAY_RECONNECT",
    9: "GATEWAY_INVALIDATE_SESSION",
    10: "GATEWAY_HELLO",
    11: "GATEWAY_HEARTBEAT_ACK",
}
