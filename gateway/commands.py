"""Typed builders for every command a client may send (Discord gateway spec, section 13).

Each function validates its arguments and returns the full payload dict ``{"op": N, "d": {...}}`` ready for
``Shard.send`` / ``ShardProtocol.send_command``. Snowflakes are accepted as ``int`` or decimal ``str`` and always
emitted as ``str``. Wrong types raise TypeError, wrong values ValueError, each naming the argument.
IDENTIFY, RESUME and HEARTBEAT are built by :mod:`gateway.protocol`, which owns them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Union

__all__ = [
    "OP_UPDATE_PRESENCE",
    "OP_UPDATE_VOICE_STATE",
    "OP_REQUEST_GUILD_MEMBERS",
    "OP_REQUEST_SOUNDBOARD_SOUNDS",
    "OP_REQUEST_CHANNEL_INFO",
    "PRESENCE_STATUSES",
    "CHANNEL_INFO_FIELDS",
    "ACTIVITY_TYPES",
    "Snowflake",
    "snowflake",
    "request_guild_members",
    "update_presence",
    "presence",
    "update_voice_state",
    "request_soundboard_sounds",
    "request_channel_info",
]

OP_UPDATE_PRESENCE = 3
OP_UPDATE_VOICE_STATE = 4
OP_REQUEST_GUILD_MEMBERS = 8
OP_REQUEST_SOUNDBOARD_SOUNDS = 31
OP_REQUEST_CHANNEL_INFO = 43

PRESENCE_STATUSES = frozenset({"online", "dnd", "idle", "invisible", "offline"})
CHANNEL_INFO_FIELDS = frozenset({"status", "voice_start_time"})
#: 0 Playing, 1 Streaming, 2 Listening, 3 Watching, 4 Custom, 5 Competing.
ACTIVITY_TYPES = range(0, 6)
NONCE_MAX_BYTES = 32
MAX_USER_IDS = 100

Snowflake = Union[int, str]


def snowflake(value: object, what: str = "snowflake") -> str:
    """Validate a Discord id (non-negative int below 2**64, or its decimal string) and return it as ``str``."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(f"{what} must be an int or a decimal str, not {type(value).__name__}")
    if isinstance(value, str):
        if not value.isascii() or not value.isdigit():
            raise ValueError(f"{what} must be a decimal number, got {value!r}")
        number = int(value)
    else:
        number = value
    if not 0 <= number < 2**64:
        raise ValueError(f"{what} must be in [0, 2**64), got {number}")
    return str(number)


def _require_bool(value: object, what: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{what} must be a bool, not {type(value).__name__}")
    return value


def _snowflake_list(values: Snowflake | Iterable[Snowflake], what: str) -> list[str]:
    if isinstance(values, (int, str)) and not isinstance(values, bool):
        return [snowflake(values, what)]
    if not isinstance(values, Iterable):
        raise TypeError(f"{what} must be a snowflake or an iterable of snowflakes, not {type(values).__name__}")
    return [snowflake(value, what) for value in values]


def request_guild_members(
    guild_id: Snowflake,
    *,
    query: str | None = None,
    limit: int | None = None,
    user_ids: Snowflake | Iterable[Snowflake] | None = None,
    presences: bool = False,
    nonce: str | None = None,
) -> dict[str, Any]:
    """op 8: ask for GUILD_MEMBERS_CHUNK dispatches. Give exactly one of ``query`` (username prefix; ``""`` with
    ``limit=0`` means every member) or ``user_ids`` (at most 100). ``limit`` defaults to 0 with a query and is not
    allowed with ``user_ids``. ``nonce`` is echoed in the chunks and must be at most 32 bytes of UTF-8.
    """
    d: dict[str, Any] = {"guild_id": snowflake(guild_id, "guild_id")}
    if (query is None) == (user_ids is None):
        raise ValueError("request_guild_members needs exactly one of query or user_ids")
    if query is not None:
        if not isinstance(query, str):
            raise TypeError(f"query must be a str, not {type(query).__name__}")
        limit = 0 if limit is None else limit
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise TypeError(f"limit must be an int, not {type(limit).__name__}")
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        d["query"] = query
        d["limit"] = limit
    else:
        if limit is not None:
            raise ValueError("limit is only used with query, not with user_ids")
        ids = _snowflake_list(user_ids, "user_ids")  # type: ignore[arg-type]
        if not ids:
            raise ValueError("user_ids must not be empty")
        if len(ids) > MAX_USER_IDS:
            raise ValueError(f"user_ids holds {len(ids)} ids; Discord accepts at most {MAX_USER_IDS}")
        d["user_ids"] = ids
    d["presences"] = _require_bool(presences, "presences")
    if nonce is not None:
        if not isinstance(nonce, str):
            raise TypeError(f"nonce must be a str, not {type(nonce).__name__}")
        size = len(nonce.encode("utf-8"))
        if size > NONCE_MAX_BYTES:
            raise ValueError(f"nonce is {size} bytes; Discord allows at most {NONCE_MAX_BYTES}")
        d["nonce"] = nonce
    return {"op": OP_REQUEST_GUILD_MEMBERS, "d": d}


def _activity(activity: object, index: int) -> dict[str, Any]:
    if not isinstance(activity, Mapping):
        raise TypeError(f"activities[{index}] must be a mapping, not {type(activity).__name__}")
    name = activity.get("name")
    if not isinstance(name, str):
        raise TypeError(f"activities[{index}]['name'] must be a str")
    kind = activity.get("type", 0)
    if isinstance(kind, bool) or not isinstance(kind, int):
        raise TypeError(f"activities[{index}]['type'] must be an int")
    if kind not in ACTIVITY_TYPES:
        raise ValueError(f"activities[{index}]['type'] must be 0..5, got {kind}")
    result = dict(activity)
    result["type"] = kind
    return result


def presence(
    status: str = "online",
    *,
    activities: Iterable[Mapping[str, Any]] = (),
    afk: bool = False,
    since: int | None = None,
) -> dict[str, Any]:
    """The presence object (``d`` of op 3, also IDENTIFY's ``presence``). ``status``: online, dnd, idle, invisible or
    offline; each activity needs ``name`` (str) and ``type`` 0..5 (default 0); ``since``: Unix ms when idle began, or None.
    """
    if not isinstance(status, str):
        raise TypeError(f"status must be a str, not {type(status).__name__}")
    if status not in PRESENCE_STATUSES:
        raise ValueError(f"status must be one of {', '.join(sorted(PRESENCE_STATUSES))}; got {status!r}")
    if isinstance(activities, (str, bytes, Mapping)) or not isinstance(activities, Iterable):
        raise TypeError("activities must be an iterable of activity mappings")
    if since is not None and (isinstance(since, bool) or not isinstance(since, int)):
        raise TypeError(f"since must be an int (Unix ms) or None, not {type(since).__name__}")
    if since is not None and since < 0:
        raise ValueError(f"since must be >= 0, got {since}")
    return {
        "since": since,
        "activities": [_activity(activity, index) for index, activity in enumerate(activities)],
        "status": status,
        "afk": _require_bool(afk, "afk"),
    }


def update_presence(
    status: str = "online",
    *,
    activities: Iterable[Mapping[str, Any]] = (),
    afk: bool = False,
    since: int | None = None,
) -> dict[str, Any]:
    """op 3: change the bot's presence (Discord allows 5 per 20 s). Arguments as :func:`presence`."""
    return {"op": OP_UPDATE_PRESENCE, "d": presence(status, activities=activities, afk=afk, since=since)}


def update_voice_state(
    guild_id: Snowflake,
    channel_id: Snowflake | None,
    *,
    self_mute: bool = False,
    self_deaf: bool = False,
) -> dict[str, Any]:
    """op 4: join, move or (``channel_id=None``) leave a voice channel."""
    return {
        "op": OP_UPDATE_VOICE_STATE,
        "d": {
            "guild_id": snowflake(guild_id, "guild_id"),
            "channel_id": None if channel_id is None else snowflake(channel_id, "channel_id"),
            "self_mute": _require_bool(self_mute, "self_mute"),
            "self_deaf": _require_bool(self_deaf, "self_deaf"),
        },
    }


def request_soundboard_sounds(guild_ids: Snowflake | Iterable[Snowflake]) -> dict[str, Any]:
    """op 31: one SOUNDBOARD_SOUNDS dispatch comes back per guild. ``guild_ids`` must not be empty."""
    ids = _snowflake_list(guild_ids, "guild_ids")
    if not ids:
        raise ValueError("guild_ids must not be empty")
    return {"op": OP_REQUEST_SOUNDBOARD_SOUNDS, "d": {"guild_ids": ids}}


def request_channel_info(
    guild_id: Snowflake, fields: Iterable[str] = ("status", "voice_start_time")
) -> dict[str, Any]:
    """op 43: a CHANNEL_INFO dispatch comes back. ``fields``: a non-empty subset of {"status", "voice_start_time"}."""
    if isinstance(fields, str) or not isinstance(fields, Iterable):
        raise TypeError("fields must be an iterable of field names, not a single str")
    chosen: list[str] = []
    for field in fields:
        if not isinstance(field, str):
            raise TypeError(f"fields must hold str, not {type(field).__name__}")
        if field not in CHANNEL_INFO_FIELDS:
            raise ValueError(f"unknown channel info field {field!r}; allowed: status, voice_start_time")
        if field not in chosen:
            chosen.append(field)
    if not chosen:
        raise ValueError("fields must not be empty")
    return {"op": OP_REQUEST_CHANNEL_INFO, "d": {"guild_id": snowflake(guild_id, "guild_id"), "fields": chosen}}
