"""Deterministic corpus of Discord gateway traffic (no network, fixed seed).

The payloads are shaped like what Discord sends to a large bot with every intent: complete objects with
snowflakes, ISO timestamps, users with avatar hashes, members with roles, embeds, mentions, emoji, presences
with activities and ``client_status``, and so on. Each payload is one gateway envelope serialized compactly
in Discord's key order ``{"t":..,"s":..,"op":..,"d":..}`` as UTF-8 bytes (no raw newlines).

Entry points:

- ``generate_startup(...)``: what follows HELLO on a fresh connection: READY, then one GUILD_CREATE per guild
  (a few with tens of thousands of members; by default one ~25 MB GUILD_CREATE).
- ``generate_steady(...)``: the steady mix of a large bot (PRESENCE_UPDATE most, MESSAGE_CREATE, TYPING_START, ...)
  with a handful of tricky-but-valid payloads (escapes, unicode, ``"t":"READY"`` look-alikes, nested arrays).
- ``generate_edge(...)``: a few dispatches whose sequence numbers cross 2**31 (int32 overflow checks).
- ``compress_zlib`` / ``compress_zstd``: the websocket messages Discord would send for ``zlib-stream`` / ``zstd-stream``.
- ``write_corpus`` / ``load_corpus``: ``NAME.jsonl`` + ``NAME.zlib.frames`` + ``NAME.zstd.frames`` files.
- ``ensure_corpus(scale)``: generate ``bench/data/<scale>/`` on demand, cached by a hash of the generator and its params.

Command line: ``python -m bench.corpus [--scale small|full] [--out bench/data]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import struct
import sys
import time
import zlib
from pathlib import Path
from typing import Any, Iterable, NamedTuple

__all__ = [
    "GENERATOR_VERSION",
    "DEFAULT_SEED",
    "SCALES",
    "Corpus",
    "generate_startup",
    "generate_steady",
    "generate_edge",
    "compress_zlib",
    "compress_zstd",
    "write_corpus",
    "load_corpus",
    "read_frames",
    "ensure_corpus",
    "corpus_stats",
    "dumps",
]

GENERATOR_VERSION = 1
DEFAULT_SEED = 20260815
DEFAULT_DATA_DIR = Path(__file__).resolve().parent / "data"
ZLIB_SUFFIX = b"\x00\x00\xff\xff"

DISCORD_EPOCH_MS = 1420070400000
# 2026-08-15T18:00:00Z: the corpus "now". Startup happens here, steady traffic follows.
BASE_TIME_MS = 1786816800000

# Member counts carried in the GUILD_CREATE ``members`` array of the big guilds (the online members of a large
# guild). 27,500 members with presences serialize to a ~25 MB GUILD_CREATE.
DEFAULT_BIG_GUILD_MEMBERS: tuple[int, ...] = (27_500, 9_000, 3_500)

SCALES: dict[str, dict[str, Any]] = {
    # CI: generates in well under 2 s.
    "small": {"guilds": 24, "big_guild_members": [2_500, 900], "steady_count": 6_000},
    # Benchmarks: includes the ~25 MB GUILD_CREATE for the loop-stall benchmark.
    "full": {"guilds": 400, "big_guild_members": list(DEFAULT_BIG_GUILD_MEMBERS), "steady_count": 100_000},
}

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)


def dumps(obj: Any) -> bytes:
    """Compact JSON as Discord sends it: no spaces, raw UTF-8 (not ``\\uXXXX``), key order preserved."""
    return _encoder.encode(obj).encode("utf-8")


def _envelope(name: str, seq: int, data: Any) -> bytes:
    return b'{"t":"%s","s":%d,"op":0,"d":%s}' % (name.encode("ascii"), seq, dumps(data))


HEARTBEAT_ACK = b'{"t":null,"s":null,"op":11,"d":null}'

# --------------------------------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------------------------------

_SYLLABLES = (
    "ka ri to mo na shi ne ve lo ra zu mi el an or is ta be do fu gu ho ja ke lu ma no pi qu sa te vi wo xa yo ze "
    "bri cha dre fla glo kri pla sto tri vex zor lyn mar quin rho sky"
).split()
_WORDS = (
    "the a to and of I you it is that in for on this was with my so but just like have be not what lol are at "
    "can we do if all me your they get one he about no out up when how there yeah its time think know good "
    "game play server bot update ping raid build patch queue rank match team boss loot drop stream clip vc "
    "tonight tomorrow anyone someone here already still really maybe probably actually literally honestly "
    "nice cool great awesome weird broken fixed lag fps mod role channel thread emoji sticker meme help thanks"
).split()
_UNICODE_WORDS = (
    "ありがとう", "こんにちは", "привет", "спасибо", "مرحبا", "שלום", "你好", "谢谢", "안녕", "ça", "déjà", "über",
    "naïve", "😂", "🔥", "👍", "❤️", "🎉", "😭", "💀", "🙏", "👀", "✨", "🇫🇷", "👩‍💻", "🏳️‍🌈",
)
_GAMES = (
    ("Minecraft", "356875570916753438"), ("League of Legends", "401518684763586560"),
    ("Valorant", "700136079562375258"), ("Fortnite", "432980957394370572"),
    ("Counter-Strike 2", "1158877933042143272"), ("Genshin Impact", "762434991303950386"),
    ("Roblox", "363445589247131668"), ("Visual Studio Code", "383226320970055681"),
    ("Apex Legends", "542075586886107149"), ("Overwatch 2", "356875221078245376"),
)
_ARTISTS = ("Daft Punk", "Billie Eilish", "Kendrick Lamar", "Taylor Swift", "Radiohead", "Bad Bunny", "YOASOBI")
_LOCALES = ("en-US", "en-GB", "de", "fr", "es-ES", "pt-BR", "ja", "ko", "ru", "pl", "tr", "zh-CN")
_GUILD_FEATURES = (
    "COMMUNITY", "NEWS", "INVITE_SPLASH", "ANIMATED_ICON", "BANNER", "VANITY_URL", "ROLE_ICONS", "DISCOVERABLE",
    "MEMBER_VERIFICATION_GATE_ENABLED", "PREVIEW_ENABLED", "WELCOME_SCREEN_ENABLED", "AUTO_MODERATION",
    "THREADS_ENABLED", "SOUNDBOARD", "GUILD_ONBOARDING", "ENABLED_DISCOVERABLE_BEFORE", "CHANNEL_ICON_EMOJIS_GENERATED",
)
_CHANNEL_WORDS = (
    "general", "chat", "memes", "announcements", "rules", "welcome", "off-topic", "media", "clips", "music", "bot-commands",
    "support", "dev", "suggestions", "events", "lfg", "art", "pets", "food", "gaming", "voice-chat", "staff", "logs",
)
_STATUSES = ("online", "online", "online", "idle", "idle", "dnd", "offline")
_REGIONS = ("us-east", "us-central", "rotterdam", "singapore", "japan", "brazil")


# --------------------------------------------------------------------------------------------------------------
# Primitive values
# --------------------------------------------------------------------------------------------------------------


def _iso(ms: int) -> str:
    """Discord's timestamp format: ``2026-08-15T18:00:00.123000+00:00``."""
    tm = time.gmtime(ms // 1000)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03d000+00:00" % (
        tm.tm_year, tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms % 1000,
    )


class _Gen:
    """Shared random source, clock and snowflake counter for one generation run."""

    def __init__(self, seed: int | str) -> None:
        self.rng = random.Random(seed)
        self.now_ms = BASE_TIME_MS
        self._increment = 0

    def snowflake(self, ms: int | None = None) -> str:
        self._increment = (self._increment + 1) & 0xFFF
        at = self.now_ms if ms is None else ms
        return str(((at - DISCORD_EPOCH_MS) << 22) | (self.rng.getrandbits(10) << 12) | self._increment)

    def past_snowflake(self, min_days: float, max_days: float) -> str:
        return self.snowflake(self.now_ms - int(self.rng.uniform(min_days, max_days) * 86_400_000))

    def hash32(self) -> str:
        return "%032x" % self.rng.getrandbits(128)

    def image_hash(self, animated_share: float = 0.08) -> str:
        h = self.hash32()
        return "a_" + h if self.rng.random() < animated_share else h

    def words(self, low: int, high: int) -> str:
        rng = self.rng
        count = rng.randint(low, high)
        out = []
        for _ in range(count):
            r = rng.random()
            out.append(rng.choice(_UNICODE_WORDS) if r < 0.04 else rng.choice(_WORDS))
        return " ".join(out)


class _User(NamedTuple):
    id: str
    obj: dict[str, Any]  # the full user object (shared by every payload that embeds the user)
    partial: dict[str, Any]  # {"id": ...}


class _MemberRec:
    __slots__ = ("user", "roles", "joined_at", "nick", "premium_since", "avatar", "flags", "online")

    def __init__(self, user: _User, roles: list[str], joined_at: str, nick: str | None, premium_since: str | None,
                 avatar: str | None, flags: int, online: bool) -> None:
        self.user = user
        self.roles = roles
        self.joined_at = joined_at
        self.nick = nick
        self.premium_since = premium_since
        self.avatar = avatar
        self.flags = flags
        self.online = online


class _Guild:
    def __init__(self) -> None:
        self.id = ""
        self.name = ""
        self.owner_id = ""
        self.roles: list[dict[str, Any]] = []
        self.role_ids: list[str] = []
        self.channels: list[dict[str, Any]] = []
        self.text_channels: list[dict[str, Any]] = []
        self.voice_channels: list[dict[str, Any]] = []
        self.forum_channels: list[dict[str, Any]] = []
        self.threads: list[dict[str, Any]] = []
        self.emojis: list[dict[str, Any]] = []
        self.members: list[_MemberRec] = []
        self.member_count = 0
        self.large = False
        self.locale = "en-US"
        self.weight = 1.0


def _make_user(g: _Gen, bot: bool = False) -> _User:
    rng = g.rng
    name = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4)))
    if rng.random() < 0.5:
        name += str(rng.randint(0, 9999))
    r = rng.random()
    if r < 0.25:
        global_name = None
    elif r < 0.32:
        global_name = rng.choice(_UNICODE_WORDS) + " " + name.capitalize()
    else:
        global_name = name.capitalize()
    uid = g.past_snowflake(30, 3000)
    avatar = g.image_hash() if rng.random() < 0.75 else None
    obj: dict[str, Any] = {
        "username": name,
        "public_flags": rng.choice((0, 0, 0, 0, 64, 128, 256, 4194304)),
        "primary_guild": None,
        "id": uid,
        "global_name": global_name,
        "display_name_styles": None,
        "discriminator": "0",
        "collectibles": None,
        "clan": None,
        "avatar_decoration_data": None,
        "avatar": avatar,
    }
    if rng.random() < 0.06:
        obj["avatar_decoration_data"] = {
            "sku_id": str(1144058522808614923 + rng.randint(0, 5000)),
            "expires_at": None,
            "asset": "a_" + g.hash32(),
        }
    if rng.random() < 0.08:
        tag = rng.choice(("GG", "UwU", "Ω", "DEV", "ZZZ"))
        gid = g.past_snowflake(100, 1500)
        clan = {"tag": tag, "identity_guild_id": gid, "identity_enabled": True, "badge": g.hash32()}
        obj["clan"] = clan
        obj["primary_guild"] = dict(clan)
    if bot:
        obj["bot"] = True
        obj["discriminator"] = "%04d" % rng.randint(1, 9999)
        obj["global_name"] = None
    return _User(uid, obj, {"id": uid})


# --------------------------------------------------------------------------------------------------------------
# World: the guilds, channels, users and members that every payload refers to
# --------------------------------------------------------------------------------------------------------------


class _World:
    def __init__(self, seed: int, guilds: int, big_guild_members: list[int]) -> None:
        g = self.g = _Gen(seed)
        rng = g.rng
        if guilds < len(big_guild_members):
            guilds = len(big_guild_members)
        self.bot = _make_user(g, bot=True)
        self.bot.obj["username"] = "Gatekeeper"
        self.application_id = self.bot.id
        # A shared pool of users: big guilds draw distinct users from it, small guilds sample it.
        pool_size = max(max(big_guild_members, default=0), 200) + 400
        self.users = [_make_user(g) for _ in range(pool_size)]
        self.bots = [_make_user(g, bot=True) for _ in range(12)]
        self.guilds: list[_Guild] = []
        for index in range(guilds):
            if index < len(big_guild_members):
                online = big_guild_members[index]
                total = online * rng.randint(6, 12)
            else:
                total = int(rng.paretovariate(1.2) * 12) + 3
                total = min(total, 4000)
                online = min(total, max(2, int(total * rng.uniform(0.25, 0.6)))) if total > 250 else total
            self.guilds.append(self._make_guild(total, online))
        self.guild_weights = [guild.weight for guild in self.guilds]

    # -- guild construction ------------------------------------------------------------------------------------

    def _make_role(self, guild_id: str, position: int, everyone: bool = False) -> dict[str, Any]:
        g = self.g
        rng = g.rng
        color = 0 if everyone or rng.random() < 0.3 else rng.randint(0x100000, 0xFFFFFF)
        role: dict[str, Any] = {
            "version": 1700000000000 + rng.randint(0, 10**11),
            "unicode_emoji": None,
            "tags": {},
            "position": position,
            "permissions": "1071698660929" if everyone else str(rng.choice((0, 104324673, 1071698529857, 8, 2147483648))),
            "name": "@everyone" if everyone else g.words(1, 2).title()[:32],
            "mentionable": rng.random() < 0.2,
            "managed": False,
            "id": guild_id if everyone else g.past_snowflake(10, 1500),
            "icon": g.hash32() if rng.random() < 0.1 else None,
            "hoist": rng.random() < 0.3,
            "flags": 0,
            "colors": {"primary_color": color, "secondary_color": None, "tertiary_color": None},
            "color": color,
        }
        if rng.random() < 0.05:
            role["managed"] = True
            role["tags"] = {"bot_id": rng.choice(self.bots).id}
        return role

    def _overwrites(self, guild: _Guild, count: int) -> list[dict[str, Any]]:
        rng = self.g.rng
        out = []
        for role_id in rng.sample(guild.role_ids, min(count, len(guild.role_ids))):
            out.append({"type": 0, "id": role_id, "deny": str(rng.choice((0, 2048, 1024, 3072))),
                        "allow": str(rng.choice((0, 1024, 68608, 2251804225)))})
        return out

    def _make_channel(self, guild: _Guild, ctype: int, position: int, parent_id: str | None) -> dict[str, Any]:
        g = self.g
        rng = g.rng
        name = rng.choice(_CHANNEL_WORDS) + ("" if rng.random() < 0.6 else "-" + str(rng.randint(1, 9)))
        ch: dict[str, Any] = {"version": 1700000000000 + rng.randint(0, 10**11), "type": ctype}
        if ctype in (0, 5, 15, 16):
            ch["topic"] = g.words(4, 22) if rng.random() < 0.6 else None
        if ctype in (0, 2, 13, 15, 16):
            ch["rate_limit_per_user"] = rng.choice((0, 0, 0, 5, 30))
        ch["position"] = position
        ch["permission_overwrites"] = self._overwrites(guild, rng.randint(0, 3))
        if ctype != 4:
            ch["parent_id"] = parent_id
            ch["nsfw"] = False
        ch["name"] = name.upper() if ctype == 4 else name
        if ctype in (0, 2, 5, 13):
            ch["last_message_id"] = g.past_snowflake(0, 30)
        if ctype in (2, 13):
            ch["bitrate"] = rng.choice((64000, 96000, 128000))
            ch["user_limit"] = rng.choice((0, 0, 5, 10, 99))
            ch["rtc_region"] = rng.choice((None, None, "rotterdam", "us-east"))
        if ctype in (0, 5):
            ch["default_thread_rate_limit_per_user"] = 0
            ch["default_auto_archive_duration"] = rng.choice((1440, 4320, 10080))
        if ctype in (15, 16):
            ch["last_message_id"] = g.past_snowflake(0, 30)
            ch["template"] = ""
            ch["default_thread_rate_limit_per_user"] = 0
            ch["default_sort_order"] = None
            ch["default_reaction_emoji"] = {"emoji_name": rng.choice(("👍", "✅", "🔥")), "emoji_id": None}
            ch["default_forum_layout"] = rng.choice((0, 1, 2)) if ctype == 15 else 0
            ch["available_tags"] = [
                {"name": w, "moderated": rng.random() < 0.2, "id": g.past_snowflake(10, 300),
                 "emoji_name": rng.choice((None, "🐛", "💡", "❓")), "emoji_id": None}
                for w in rng.sample(("bug", "idea", "question", "solved", "meta", "guide", "showcase"), rng.randint(1, 5))
            ]
        ch["id"] = g.past_snowflake(10, 1500)
        ch["flags"] = 16 if ctype in (15, 16) and rng.random() < 0.3 else 0
        ch["icon_emoji"] = {"name": "💬", "id": None} if rng.random() < 0.5 else None
        ch["theme_color"] = None
        return ch

    def _make_guild(self, total_members: int, online_members: int) -> _Guild:
        g = self.g
        rng = g.rng
        guild = _Guild()
        guild.id = g.past_snowflake(100, 3000)
        guild.name = g.words(1, 4).title()[:60]
        guild.locale = rng.choice(_LOCALES)
        guild.member_count = total_members
        guild.large = total_members > 250
        guild.weight = float(online_members) ** 0.9

        guild.roles = [self._make_role(guild.id, 0, everyone=True)]
        guild.roles += [self._make_role(guild.id, i) for i in range(1, rng.randint(4, 8 + min(60, total_members // 400)))]
        guild.role_ids = [role["id"] for role in guild.roles[1:]]

        position = 0
        for _ in range(rng.randint(2, 3 + min(12, total_members // 2000))):
            category = self._make_channel(guild, 4, position, None)
            guild.channels.append(category)
            position += 1
            for _ in range(rng.randint(2, 7)):
                ctype = rng.choice((0, 0, 0, 0, 0, 2, 2, 5, 13, 15, 16))
                ch = self._make_channel(guild, ctype, position, category["id"])
                position += 1
                guild.channels.append(ch)
                if ctype in (0, 5):
                    guild.text_channels.append(ch)
                elif ctype in (2, 13):
                    guild.voice_channels.append(ch)
                else:
                    guild.forum_channels.append(ch)
        if not guild.text_channels:
            ch = self._make_channel(guild, 0, position, None)
            guild.channels.append(ch)
            guild.text_channels.append(ch)
        if not guild.voice_channels:
            ch = self._make_channel(guild, 2, position + 1, None)
            guild.channels.append(ch)
            guild.voice_channels.append(ch)

        for _ in range(rng.randint(0, 40 if total_members > 500 else 8)):
            animated = rng.random() < 0.2
            guild.emojis.append({
                "version": 0, "roles": [], "require_colons": True, "name": rng.choice(_SYLLABLES) + rng.choice(_SYLLABLES),
                "managed": False, "id": g.past_snowflake(10, 1500), "available": True, "animated": animated,
            })

        guild.owner_id = ""
        if online_members >= len(self.users):
            candidates = list(range(len(self.users)))
        else:
            candidates = rng.sample(range(len(self.users)), online_members)
        for index in candidates:
            user = self.users[index]
            roles = rng.sample(guild.role_ids, min(len(guild.role_ids), rng.choice((0, 1, 1, 2, 2, 3, 4, 6))))
            joined_ms = BASE_TIME_MS - rng.randint(3_600_000, 4 * 365 * 86_400_000)
            guild.members.append(_MemberRec(
                user,
                roles,
                _iso(joined_ms),
                (g.words(1, 2)[:32] if rng.random() < 0.15 else None),
                (_iso(joined_ms + rng.randint(0, 10**9)) if rng.random() < 0.03 else None),
                (g.hash32() if rng.random() < 0.02 else None),
                rng.choice((0, 0, 0, 0, 2, 10)),
                rng.random() < 0.9,
            ))
        guild.owner_id = guild.members[0].user.id if guild.members else self.users[0].id

        for parent in (guild.text_channels + guild.forum_channels)[: rng.randint(0, 6)]:
            guild.threads.append(self._make_thread(guild, parent))
        return guild

    def _make_thread(self, guild: _Guild, parent: dict[str, Any], newly_created: bool = False) -> dict[str, Any]:
        g = self.g
        rng = g.rng
        created = g.now_ms - (0 if newly_created else rng.randint(60_000, 5 * 86_400_000))
        owner = rng.choice(guild.members).user if guild.members else self.bot
        count = 0 if newly_created else rng.randint(1, 400)
        thread: dict[str, Any] = {
            "type": rng.choice((11, 11, 11, 12)) if parent["type"] in (0, 5) else 11,
            "total_message_sent": count,
            "thread_metadata": {
                "locked": False, "create_timestamp": _iso(created), "auto_archive_duration": rng.choice((60, 1440, 4320, 10080)),
                "archived": False, "archive_timestamp": _iso(created),
            },
            "rate_limit_per_user": 0,
            "parent_id": parent["id"],
            "owner_id": owner.id,
            "name": g.words(2, 8)[:100],
            "message_count": count,
            "member_count": min(50, rng.randint(1, count + 1)),
            "member_ids_preview": [],
            "last_message_id": g.snowflake(created + 1000),
            "id": g.snowflake(created),
            "guild_id": guild.id,
            "flags": 0,
        }
        if parent["type"] in (15, 16):
            tags = parent.get("available_tags") or []
            thread["applied_tags"] = [tag["id"] for tag in tags[: rng.randint(0, min(2, len(tags)))]]
        if thread["type"] == 12:
            thread["thread_metadata"]["invitable"] = True
        return thread

    # -- object builders ---------------------------------------------------------------------------------------

    def member_obj(self, rec: _MemberRec, with_user: bool = True) -> dict[str, Any]:
        member: dict[str, Any] = {}
        if with_user:
            member["user"] = rec.user.obj
        member["roles"] = rec.roles
        member["premium_since"] = rec.premium_since
        member["pending"] = False
        member["nick"] = rec.nick
        member["mute"] = False
        member["joined_at"] = rec.joined_at
        member["flags"] = rec.flags
        member["deaf"] = False
        member["communication_disabled_until"] = None
        member["banner"] = None
        member["avatar"] = rec.avatar
        return member

    def activities(self) -> list[dict[str, Any]]:
        g = self.g
        rng = g.rng
        r = rng.random()
        out: list[dict[str, Any]] = []
        now = g.now_ms
        if r < 0.35:
            state = g.words(1, 6)
            custom: dict[str, Any] = {"type": 4, "state": state, "name": "Custom Status", "id": "custom",
                                      "created_at": now - rng.randint(0, 10**8)}
            if rng.random() < 0.4:
                custom["emoji"] = {"name": rng.choice(_UNICODE_WORDS[13:])}
            out.append(custom)
        if 0.2 < r < 0.65:
            name, app_id = rng.choice(_GAMES)
            game: dict[str, Any] = {
                "type": 0, "timestamps": {"start": now - rng.randint(0, 10**7)}, "name": name,
                "id": "%016x" % rng.getrandbits(64), "created_at": now - rng.randint(0, 10**6), "application_id": app_id,
            }
            if rng.random() < 0.5:
                game["state"] = g.words(1, 4)
                game["details"] = g.words(1, 5)
                game["assets"] = {"large_text": g.words(1, 3), "large_image": str(int(app_id) + rng.randint(1, 999)),
                                  "small_text": g.words(1, 2), "small_image": str(int(app_id) + rng.randint(1, 999))}
                game["party"] = {"id": g.hash32(), "size": [rng.randint(1, 4), 5]}
                game["buttons"] = ["Join", "Watch"]
            out.append(game)
        elif 0.65 <= r < 0.85:
            start = now - rng.randint(0, 200_000)
            out.append({
                "type": 2, "timestamps": {"start": start, "end": start + rng.randint(120_000, 300_000)},
                "sync_id": "".join(rng.choice("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(22)),
                "state": rng.choice(_ARTISTS), "session_id": g.hash32(), "party": {"id": "spotify:" + rng.choice(self.users).id},
                "name": "Spotify", "id": "spotify:1", "flags": 48, "details": g.words(1, 5).title(),
                "created_at": now - rng.randint(0, 10**5),
                "assets": {"large_text": g.words(1, 4).title(), "large_image": "spotify:ab67616d0000b273" + "%024x" % rng.getrandbits(96)},
            })
        elif r >= 0.85 and rng.random() < 0.3:
            out.append({"type": 1, "url": "https://www.twitch.tv/" + rng.choice(self.users).obj["username"],
                        "state": rng.choice(_GAMES)[0], "name": "Twitch", "id": "%016x" % rng.getrandbits(64),
                        "details": g.words(3, 9), "created_at": now - rng.randint(0, 10**6),
                        "assets": {"large_image": "twitch:" + rng.choice(self.users).obj["username"]}})
        return out

    def client_status(self, status: str) -> dict[str, str]:
        rng = self.g.rng
        r = rng.random()
        if status == "offline":
            return {}
        if r < 0.5:
            return {"desktop": status}
        if r < 0.8:
            return {"mobile": status}
        if r < 0.9:
            return {"web": status}
        if r < 0.98:
            return {"desktop": status, "mobile": "idle" if status != "idle" else "online"}
        return {"vr": status}

    def presence(self, guild: _Guild | None, rec: _MemberRec, status: str | None = None) -> dict[str, Any]:
        status = status or self.g.rng.choice(_STATUSES[:-1])
        presence: dict[str, Any] = {"user": rec.user.partial, "status": status}
        if guild is not None:
            presence["guild_id"] = guild.id
        presence["client_status"] = self.client_status(status)
        presence["broadcast"] = None
        presence["activities"] = self.activities() if status != "offline" else []
        return presence

    def emoji(self, guild: _Guild) -> dict[str, Any]:
        rng = self.g.rng
        if guild.emojis and rng.random() < 0.35:
            custom = rng.choice(guild.emojis)
            return {"name": custom["name"], "id": custom["id"], "animated": custom["animated"]}
        return {"name": rng.choice(_UNICODE_WORDS[13:]), "id": None}

    def embed(self, url_user: _User) -> dict[str, Any]:
        g = self.g
        rng = g.rng
        kind = rng.random()
        if kind < 0.5:
            vid = "".join(rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") for _ in range(11))
            return {
                "type": "video", "url": "https://www.youtube.com/watch?v=" + vid, "title": g.words(3, 10).title(),
                "description": g.words(8, 40), "color": 16711680,
                "author": {"name": url_user.obj["username"], "url": "https://www.youtube.com/@" + url_user.obj["username"]},
                "provider": {"name": "YouTube", "url": "https://www.youtube.com"},
                "thumbnail": {"url": "https://i.ytimg.com/vi/%s/maxresdefault.jpg" % vid,
                              "proxy_url": "https://images-ext-1.discordapp.net/external/%s/https/i.ytimg.com/vi/%s/maxresdefault.jpg" % (g.hash32(), vid),
                              "width": 1280, "height": 720, "placeholder": "X/cFBQBlh4iGd3h3d4d4d3d3", "placeholder_version": 1,
                              "flags": 0},
                "video": {"url": "https://www.youtube.com/embed/" + vid, "width": 1280, "height": 720, "placeholder": "", "placeholder_version": 1, "flags": 0},
                "content_scan_version": 2,
            }
        return {
            "type": "rich", "title": g.words(2, 7).title(), "description": g.words(10, 60), "color": rng.randint(0, 0xFFFFFF),
            "fields": [{"name": g.words(1, 3), "value": g.words(1, 12), "inline": rng.random() < 0.5}
                       for _ in range(rng.randint(0, 5))],
            "footer": {"text": g.words(2, 6), "icon_url": "https://cdn.discordapp.com/avatars/%s/%s.png" % (url_user.id, url_user.obj["avatar"])},
            "timestamp": _iso(g.now_ms - rng.randint(0, 10**7)),
            "content_scan_version": 2,
        }

    def message(self, guild: _Guild, channel: dict[str, Any], rec: _MemberRec, content: str | None = None,
                msg_id: str | None = None) -> dict[str, Any]:
        g = self.g
        rng = g.rng
        if content is None:
            length = rng.choice((1, 2, 3, 4, 5, 6, 8, 10, 14, 20, 35))
            content = g.words(1, length)
        mentions: list[dict[str, Any]] = []
        mention_roles: list[str] = []
        r = rng.random()
        if r < 0.15 and guild.members:
            for other in rng.sample(guild.members, min(len(guild.members), rng.randint(1, 2))):
                mention = dict(other.user.obj)
                mention["member"] = self.member_obj(other, with_user=False)
                mentions.append(mention)
                content = "<@%s> %s" % (other.user.id, content)
        elif r < 0.18 and guild.role_ids:
            role_id = rng.choice(guild.role_ids)
            mention_roles.append(role_id)
            content = "<@&%s> %s" % (role_id, content)
        if rng.random() < 0.05 and guild.emojis:
            custom = rng.choice(guild.emojis)
            content += " <%s:%s:%s>" % ("a" if custom["animated"] else "", custom["name"], custom["id"])
        embeds: list[dict[str, Any]] = []
        attachments: list[dict[str, Any]] = []
        e = rng.random()
        if e < 0.06:
            embeds.append(self.embed(rng.choice(self.users)))
        elif e < 0.12:
            aid = g.snowflake()
            width, height = rng.choice(((1920, 1080), (1080, 1350), (640, 480), (1170, 2532)))
            fname = rng.choice(("image.png", "IMG_%04d.jpg" % rng.randint(0, 9999), "clip.mp4", "screenshot.png"))
            ctype = "video/mp4" if fname.endswith("mp4") else ("image/png" if fname.endswith("png") else "image/jpeg")
            params = "?ex=%08x&is=%08x&hm=%s%s&" % (rng.getrandbits(32), rng.getrandbits(32), g.hash32(), g.hash32())
            attachments.append({
                "width": width, "url": "https://cdn.discordapp.com/attachments/%s/%s/%s%s" % (channel["id"], aid, fname, params),
                "size": rng.randint(20_000, 8_000_000), "proxy_url": "https://media.discordapp.net/attachments/%s/%s/%s%s" % (channel["id"], aid, fname, params),
                "placeholder_version": 1, "placeholder": "GAgKBQBYmHiHd3eIeHd4d3eXh3CHeIcA", "original_content_type": ctype,
                "id": aid, "height": height, "filename": fname, "content_type": ctype, "content_scan_version": 2,
            })
        mid = msg_id or g.snowflake()
        msg: dict[str, Any] = {
            "type": 0 if rng.random() < 0.93 else 19,
            "tts": False,
            "timestamp": _iso(g.now_ms),
            "pinned": False,
            "nonce": str(int(mid) - rng.randint(1000, 10**8)),
            "mentions": mentions,
            "mention_roles": mention_roles,
            "mention_everyone": False,
            "member": self.member_obj(rec, with_user=False),
            "id": mid,
            "flags": 0,
            "embeds": embeds,
            "edited_timestamp": None,
            "content": content,
            "components": [],
            "channel_type": channel["type"],
            "channel_id": channel["id"],
            "author": rec.user.obj,
            "attachments": attachments,
            "guild_id": guild.id,
        }
        if msg["type"] == 19:
            ref_id = g.past_snowflake(0, 2)
            msg["message_reference"] = {"type": 0, "message_id": ref_id, "channel_id": channel["id"], "guild_id": guild.id}
            other = rng.choice(guild.members)
            msg["referenced_message"] = {
                "type": 0, "tts": False, "timestamp": _iso((int(ref_id) >> 22) + DISCORD_EPOCH_MS), "pinned": False,
                "mentions": [], "mention_roles": [], "mention_everyone": False, "id": ref_id, "flags": 0, "embeds": [],
                "edited_timestamp": None, "content": g.words(1, 12), "components": [], "channel_id": channel["id"],
                "author": other.user.obj, "attachments": [],
            }
        if rng.random() < 0.02:
            msg["sticker_items"] = [{"name": rng.choice(_SYLLABLES) * 2, "id": g.past_snowflake(10, 500), "format_type": 1}]
        return msg


# --------------------------------------------------------------------------------------------------------------
# Startup burst
# --------------------------------------------------------------------------------------------------------------


def _ready(world: _World, shard: list[int]) -> dict[str, Any]:
    g = world.g
    rng = g.rng
    bot = dict(world.bot.obj)
    user = {
        "verified": True, "username": bot["username"], "mfa_enabled": False, "id": bot["id"], "global_name": None,
        "flags": 0, "email": None, "discriminator": bot["discriminator"], "clan": None, "primary_guild": None,
        "bot": True, "avatar": bot["avatar"] or g.hash32(),
    }
    trace_micros = rng.randint(50_000, 400_000)
    trace = json.dumps(["gateway-prd-us-east1-c-%04x" % rng.getrandbits(16),
                        {"micros": trace_micros, "calls": ["id_created", {"micros": rng.randint(500, 2000), "calls": []},
                                                           "session_lookup_time", {"micros": rng.randint(200, 900), "calls": []},
                                                           "session_lookup_finished", {"micros": 12, "calls": []},
                                                           "discord-sessions-prd-2-%d" % rng.randint(1, 99),
                                                           {"micros": trace_micros - 3000, "calls": []}]}],
                       separators=(",", ":"))
    return {
        "v": 10,
        "user_settings": {},
        "user": user,
        "session_type": "normal",
        "session_id": g.hash32(),
        "resume_gateway_url": "wss://gateway-us-east1-c.discord.gg",
        "relationships": [],
        "private_channels": [],
        "presences": [],
        "guilds": [{"unavailable": True, "id": guild.id} for guild in world.guilds],
        "guild_join_requests": [],
        "geo_ordered_rtc_regions": list(_REGIONS[:5]),
        "game_relationships": [],
        "auth": {},
        "application": {"id": world.application_id, "flags": 565248},
        "_trace": [trace],
        "shard": shard,
    }


def _guild_create(world: _World, guild: _Guild) -> dict[str, Any]:
    g = world.g
    rng = g.rng
    bot_member = {"user": world.bot.obj, "roles": guild.role_ids[:1], "premium_since": None, "pending": False,
                  "nick": None, "mute": False, "joined_at": _iso(BASE_TIME_MS - 400 * 86_400_000), "flags": 0,
                  "deaf": False, "communication_disabled_until": None, "banner": None, "avatar": None}
    members = [world.member_obj(rec) for rec in guild.members]
    members.append(bot_member)
    presences = [world.presence(None, rec) for rec in guild.members if rec.online]
    voice_states = []
    if guild.voice_channels:
        for rec in guild.members[: min(len(guild.members), max(1, len(guild.members) // 40))]:
            if rng.random() < 0.5:
                continue
            voice_states.append({
                "user_id": rec.user.id, "suppress": False, "session_id": g.hash32(), "self_video": rng.random() < 0.05,
                "self_mute": rng.random() < 0.4, "self_deaf": rng.random() < 0.1, "request_to_speak_timestamp": None,
                "mute": False, "deaf": False, "channel_id": rng.choice(guild.voice_channels)["id"],
            })
    features = sorted(rng.sample(_GUILD_FEATURES, rng.randint(0, len(_GUILD_FEATURES)))) if guild.large else []
    text0 = guild.text_channels[0]["id"]
    return {
        "id": guild.id,
        "name": guild.name,
        "icon": g.image_hash(0.2) if rng.random() < 0.9 else None,
        "description": g.words(5, 25) if guild.large else None,
        "home_header": None,
        "splash": g.hash32() if guild.large and rng.random() < 0.5 else None,
        "discovery_splash": None,
        "features": features,
        "banner": g.hash32() if guild.large and rng.random() < 0.5 else None,
        "owner_id": guild.owner_id,
        "application_id": None,
        "region": "deprecated",
        "afk_channel_id": guild.voice_channels[0]["id"] if rng.random() < 0.4 else None,
        "afk_timeout": 300,
        "system_channel_id": text0,
        "system_channel_flags": rng.choice((0, 4, 8, 12)),
        "widget_enabled": False,
        "widget_channel_id": None,
        "verification_level": rng.randint(0, 3),
        "roles": guild.roles,
        "default_message_notifications": 1,
        "mfa_level": int(guild.large),
        "explicit_content_filter": 2 if guild.large else 0,
        "max_presences": None,
        "max_members": 500000 if guild.large else 25000000,
        "max_stage_video_channel_users": 50,
        "max_video_channel_users": 25,
        "vanity_url_code": g.words(1, 1).replace(" ", "") if "VANITY_URL" in features else None,
        "premium_tier": rng.randint(0, 3) if guild.large else 0,
        "premium_subscription_count": rng.randint(0, 200) if guild.large else 0,
        "preferred_locale": guild.locale,
        "rules_channel_id": text0 if guild.large else None,
        "safety_alerts_channel_id": None,
        "public_updates_channel_id": text0 if guild.large else None,
        "hub_type": None,
        "premium_progress_bar_enabled": False,
        "latest_onboarding_question_id": None,
        "nsfw": False,
        "nsfw_level": 0,
        "emojis": guild.emojis,
        "stickers": [],
        "incidents_data": None,
        "inventory_settings": None,
        "embed_enabled": False,
        "embed_channel_id": None,
        "profile": None,
        "version": 1700000000000 + rng.randint(0, 10**11),
        "lazy": True,
        "large": guild.large,
        "unavailable": False,
        "joined_at": bot_member["joined_at"],
        "member_count": guild.member_count,
        "voice_states": voice_states,
        "members": members,
        "channels": guild.channels,
        "threads": guild.threads,
        "presences": presences,
        "stage_instances": [],
        "guild_scheduled_events": [],
        "soundboard_sounds": [],
        "embedded_activities": [],
        "activity_instances": [],
        "application_command_counts": {"1": rng.randint(0, 30), "2": 0, "3": 0},
    }


def generate_startup(seed: int = DEFAULT_SEED, guilds: int = 400,
                     big_guild_members: Iterable[int] = DEFAULT_BIG_GUILD_MEMBERS, *, scale: str | None = None,
                     shard: tuple[int, int] = (0, 1)) -> list[bytes]:
    """READY then one GUILD_CREATE per guild (sequence 1, 2, ...). HELLO is not included.

    ``big_guild_members`` gives the number of members (with presences) in the GUILD_CREATEs of the first, largest
    guilds; the rest are small guilds. ``scale="small"|"full"`` takes ``guilds`` and ``big_guild_members`` from ``SCALES``.
    """
    if scale is not None:
        params = SCALES[scale]
        guilds, big_guild_members = params["guilds"], params["big_guild_members"]
    world = _World(seed, guilds, list(big_guild_members))
    out = [_envelope("READY", 1, _ready(world, list(shard)))]
    for seq, guild in enumerate(world.guilds, start=2):
        out.append(_envelope("GUILD_CREATE", seq, _guild_create(world, guild)))
    return out


# --------------------------------------------------------------------------------------------------------------
# Steady traffic
# --------------------------------------------------------------------------------------------------------------

# (event name, weight): the mix a large bot with every intent sees after startup.
STEADY_MIX: tuple[tuple[str, float], ...] = (
    ("PRESENCE_UPDATE", 44.0),
    ("MESSAGE_CREATE", 15.0),
    ("TYPING_START", 10.0),
    ("GUILD_MEMBER_UPDATE", 5.5),
    ("MESSAGE_REACTION_ADD", 5.0),
    ("VOICE_STATE_UPDATE", 4.0),
    ("MESSAGE_UPDATE", 3.5),
    ("MESSAGE_DELETE", 2.2),
    ("MESSAGE_REACTION_REMOVE", 1.6),
    ("GUILD_MEMBER_ADD", 1.5),
    ("INTERACTION_CREATE", 1.5),
    ("GUILD_MEMBER_REMOVE", 1.0),
    ("THREAD_UPDATE", 0.5),
    ("THREAD_CREATE", 0.35),
    ("THREAD_MEMBERS_UPDATE", 0.35),
    ("CHANNEL_UPDATE", 0.35),
    ("MESSAGE_DELETE_BULK", 0.1),
    ("THREAD_DELETE", 0.1),
    ("THREAD_LIST_SYNC", 0.05),
    ("GUILD_ROLE_UPDATE", 0.2),
    ("HEARTBEAT_ACK", 0.15),
)


class _Steady:
    def __init__(self, world: _World) -> None:
        self.w = world
        self.g = world.g
        self.recent_messages: list[tuple[_Guild, dict[str, Any], str, _MemberRec]] = []

    def pick(self) -> tuple[_Guild, _MemberRec]:
        rng = self.g.rng
        guild = rng.choices(self.w.guilds, cum_weights=self.cum_weights)[0]
        while not guild.members:
            guild = rng.choice(self.w.guilds)
        return guild, rng.choice(guild.members)

    def remember(self, guild: _Guild, channel: dict[str, Any], msg_id: str, rec: _MemberRec) -> None:
        self.recent_messages.append((guild, channel, msg_id, rec))
        if len(self.recent_messages) > 400:
            del self.recent_messages[:200]

    def recent(self) -> tuple[_Guild, dict[str, Any], str, _MemberRec]:
        rng = self.g.rng
        if self.recent_messages:
            return rng.choice(self.recent_messages)
        guild, rec = self.pick()
        return guild, rng.choice(guild.text_channels), self.g.past_snowflake(0, 1), rec

    # -- one builder per event --------------------------------------------------------------------------------

    def PRESENCE_UPDATE(self) -> dict[str, Any]:
        guild, rec = self.pick()
        status = self.g.rng.choice(_STATUSES)
        return self.w.presence(guild, rec, status)

    def MESSAGE_CREATE(self) -> dict[str, Any]:
        guild, rec = self.pick()
        channel = self.g.rng.choice(guild.text_channels)
        msg = self.w.message(guild, channel, rec)
        self.remember(guild, channel, msg["id"], rec)
        return msg

    def TYPING_START(self) -> dict[str, Any]:
        guild, rec = self.pick()
        return {"user_id": rec.user.id, "timestamp": self.g.now_ms // 1000, "member": self.w.member_obj(rec),
                "channel_id": self.g.rng.choice(guild.text_channels)["id"], "guild_id": guild.id}

    def GUILD_MEMBER_UPDATE(self) -> dict[str, Any]:
        guild, rec = self.pick()
        rng = self.g.rng
        if guild.role_ids and rng.random() < 0.6:
            toggled = rng.choice(guild.role_ids)
            rec.roles = [r for r in rec.roles if r != toggled] if toggled in rec.roles else rec.roles + [toggled]
        member = self.w.member_obj(rec)
        member["guild_id"] = guild.id
        member["avatar_decoration_data"] = None
        member["collectibles"] = None
        return member

    def GUILD_MEMBER_ADD(self) -> dict[str, Any]:
        guild, _ = self.pick()
        rng = self.g.rng
        user = _make_user(self.g)
        rec = _MemberRec(user, [], _iso(self.g.now_ms), None, None, None, rng.choice((0, 1, 8)), True)
        guild.members.append(rec)
        member = self.w.member_obj(rec)
        member["pending"] = rng.random() < 0.3
        member["guild_id"] = guild.id
        return member

    def GUILD_MEMBER_REMOVE(self) -> dict[str, Any]:
        guild, rec = self.pick()
        return {"user": rec.user.obj, "guild_id": guild.id}

    def MESSAGE_REACTION_ADD(self) -> dict[str, Any]:
        guild, channel, msg_id, author = self.recent()
        rng = self.g.rng
        rec = rng.choice(guild.members)
        burst = rng.random() < 0.05
        return {
            "user_id": rec.user.id, "type": int(burst), "message_id": msg_id, "message_author_id": author.user.id,
            "member": self.w.member_obj(rec), "emoji": self.w.emoji(guild), "channel_id": channel["id"],
            "burst": burst, "guild_id": guild.id,
            **({"burst_colors": ["#%06x" % rng.getrandbits(24), "#%06x" % rng.getrandbits(24)]} if burst else {}),
        }

    def MESSAGE_REACTION_REMOVE(self) -> dict[str, Any]:
        guild, channel, msg_id, _ = self.recent()
        rec = self.g.rng.choice(guild.members)
        return {"user_id": rec.user.id, "type": 0, "message_id": msg_id, "emoji": self.w.emoji(guild),
                "channel_id": channel["id"], "burst": False, "guild_id": guild.id}

    def MESSAGE_UPDATE(self) -> dict[str, Any]:
        guild, channel, msg_id, rec = self.recent()
        msg = self.w.message(guild, channel, rec, msg_id=msg_id)
        msg["edited_timestamp"] = _iso(self.g.now_ms)
        msg["timestamp"] = _iso((int(msg_id) >> 22) + DISCORD_EPOCH_MS)
        return msg

    def MESSAGE_DELETE(self) -> dict[str, Any]:
        guild, channel, msg_id, _ = self.recent()
        return {"id": msg_id, "channel_id": channel["id"], "guild_id": guild.id}

    def MESSAGE_DELETE_BULK(self) -> dict[str, Any]:
        guild, channel, _, _ = self.recent()
        return {"ids": [self.g.past_snowflake(0, 3) for _ in range(self.g.rng.randint(2, 100))],
                "channel_id": channel["id"], "guild_id": guild.id}

    def VOICE_STATE_UPDATE(self) -> dict[str, Any]:
        guild, rec = self.pick()
        rng = self.g.rng
        leaving = rng.random() < 0.35
        return {
            "member": self.w.member_obj(rec), "user_id": rec.user.id, "suppress": False, "session_id": self.g.hash32(),
            "self_video": rng.random() < 0.05, "self_mute": rng.random() < 0.4, "self_deaf": rng.random() < 0.1,
            "request_to_speak_timestamp": None, "mute": False, "guild_id": guild.id, "deaf": False,
            "channel_id": None if leaving else rng.choice(guild.voice_channels)["id"],
        }

    def INTERACTION_CREATE(self, custom_id: str | None = None) -> dict[str, Any]:
        guild, rec = self.pick()
        g = self.g
        rng = g.rng
        channel = dict(rng.choice(guild.text_channels))
        channel["guild_id"] = guild.id
        channel["permissions"] = "2251799813685247"
        member = self.w.member_obj(rec)
        member["unusual_dm_activity_until"] = None
        member["permissions"] = "1071698660929"
        iid = g.snowflake()
        token = "aW50ZXJhY3Rpb246%s:%s" % (iid, "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
                                                       for _ in range(160)))
        interaction: dict[str, Any] = {
            "version": 1, "type": 2, "token": token, "member": member, "locale": rng.choice(_LOCALES), "id": iid,
            "guild_locale": guild.locale, "guild_id": guild.id,
            "guild": {"locale": guild.locale, "id": guild.id, "features": ["COMMUNITY"] if guild.large else []},
            "entitlements": [], "entitlement_sku_ids": [], "context": 0, "channel_id": channel["id"], "channel": channel,
            "authorizing_integration_owners": {"0": guild.id}, "attachment_size_limit": 10485760,
            "app_permissions": "2248473465835073", "application_id": self.w.application_id,
        }
        if custom_id is None and rng.random() < 0.7:
            interaction["data"] = {
                "type": 1, "name": rng.choice(("play", "rank", "help", "ban", "remind", "poll")), "id": g.past_snowflake(50, 600),
                "options": [{"value": g.words(1, 6), "type": 3, "name": "query"},
                            {"value": rng.randint(1, 100), "type": 4, "name": "count"}][: rng.randint(0, 2)],
            }
        else:
            bot_msg_channel = guild.text_channels[0]
            message = self.w.message(guild, bot_msg_channel, rec)
            message["author"] = self.w.bot.obj
            message["components"] = [{"type": 1, "id": 1, "components": [
                {"type": 2, "style": 1, "label": "Accept", "id": 2, "custom_id": custom_id or "accept:" + g.hash32()[:12]},
                {"type": 2, "style": 4, "label": "Decline", "id": 3, "custom_id": "decline"}]}]
            interaction["type"] = 3
            interaction["message"] = message
            interaction["data"] = {"id": 2, "custom_id": custom_id or "accept", "component_type": 2}
        return interaction

    def CHANNEL_UPDATE(self) -> dict[str, Any]:
        guild, _ = self.pick()
        rng = self.g.rng
        channel = dict(rng.choice(guild.channels))
        if "topic" in channel and rng.random() < 0.5:
            channel["topic"] = self.g.words(3, 20)
        channel["version"] += rng.randint(1, 10**6)
        channel["guild_id"] = guild.id
        return channel

    def THREAD_CREATE(self) -> dict[str, Any]:
        guild, rec = self.pick()
        parents = guild.text_channels + guild.forum_channels
        thread = self.w._make_thread(guild, self.g.rng.choice(parents), newly_created=True)
        thread["owner_id"] = rec.user.id
        thread["newly_created"] = True
        guild.threads.append(thread)
        return thread

    def _some_thread(self) -> tuple[_Guild, dict[str, Any]]:
        guild, _ = self.pick()
        if not guild.threads:
            guild.threads.append(self.w._make_thread(guild, self.g.rng.choice(guild.text_channels)))
        return guild, self.g.rng.choice(guild.threads)

    def THREAD_UPDATE(self) -> dict[str, Any]:
        _, thread = self._some_thread()
        thread["message_count"] += 1
        thread["total_message_sent"] += 1
        thread["last_message_id"] = self.g.snowflake()
        return thread

    def THREAD_DELETE(self) -> dict[str, Any]:
        guild, thread = self._some_thread()
        return {"type": thread["type"], "parent_id": thread["parent_id"], "id": thread["id"], "guild_id": guild.id}

    def THREAD_MEMBERS_UPDATE(self) -> dict[str, Any]:
        guild, thread = self._some_thread()
        rng = self.g.rng
        data: dict[str, Any] = {"member_count": min(50, thread["member_count"] + 1), "id": thread["id"], "guild_id": guild.id}
        if rng.random() < 0.7:
            rec = rng.choice(guild.members)
            data["added_members"] = [{
                "user_id": rec.user.id, "presence": None, "muted": False, "mute_config": None,
                "member": self.w.member_obj(rec), "join_timestamp": _iso(self.g.now_ms), "id": thread["id"], "flags": 1,
            }]
        else:
            data["removed_member_ids"] = [rng.choice(guild.members).user.id]
        return data

    def THREAD_LIST_SYNC(self) -> dict[str, Any]:
        guild, thread = self._some_thread()
        threads = [t for t in guild.threads if t["parent_id"] == thread["parent_id"]]
        return {"threads": threads, "members": [
            {"user_id": self.w.bot.id, "muted": False, "mute_config": None, "join_timestamp": t["thread_metadata"]["create_timestamp"],
             "id": t["id"], "flags": 1} for t in threads],
                "guild_id": guild.id, "channel_ids": [thread["parent_id"]]}

    def GUILD_ROLE_UPDATE(self) -> dict[str, Any]:
        guild, _ = self.pick()
        role = dict(self.g.rng.choice(guild.roles))
        role["version"] += 1
        return {"role": role, "guild_id": guild.id}

    # -- tricky-but-valid payloads ----------------------------------------------------------------------------

    def tricky(self, index: int) -> tuple[str, dict[str, Any] | None]:
        guild, rec = self.pick()
        channel = guild.text_channels[0]
        contents = (
            '{"t":"READY","s":1,"op":0,"d":{"v":10}} is what the gateway sends, "op":7 means reconnect',
            'quotes " and backslashes \\ and \\" and a path C:\\Users\\bot\\"t":"READY"',
            "tab\there, newline\nthere, carriage\rreturn, form\ffeed, bell\x07, nul\x00 and \u2028\u2029 separators",
            "emoji 😂🔥👩\u200d💻🏳️\u200d🌈 CJK 你好 RTL مرحبا \u202etxet desrever\u202c zalgo Z̴̡a̷l̶g̵o combining é",
            "surrogate-ish text \\ud83d\\ude00 and braces }}}{{{ ]]][[[ and a fake envelope }},\"t\":\"GUILD_CREATE\",\"s\":99",
        )
        if index < len(contents):
            msg = self.w.message(guild, channel, rec, content=contents[index])
            if index == 0:
                msg["embeds"] = [{"type": "rich", "title": '"t":"READY"', "description": '{"op":10,"d":{"heartbeat_interval":41250}}',
                                  "fields": [{"name": "op", "value": "0", "inline": True}, {"name": "t", "value": "READY", "inline": True}],
                                  "content_scan_version": 2}]
            return "MESSAGE_CREATE", msg
        if index == len(contents):
            return "INTERACTION_CREATE", self.INTERACTION_CREATE(custom_id='{"t":"READY","s":2147483647,"op":0}')
        # d with nested arrays, including a poll and a rich presence whose party size is an array.
        msg = self.w.message(guild, channel, rec, content="which one? [[1,2],[3,[4,[5]]]]")
        msg["poll"] = {
            "question": {"text": "Best \"op\" code?"},
            "answers": [{"answer_id": i + 1, "poll_media": {"text": t, "emoji": {"name": e}}}
                        for i, (t, e) in enumerate((("op 0", "0️⃣"), ("op 11", "💓"), ("op 7", "🔁")))],
            "expiry": _iso(self.g.now_ms + 86_400_000), "allow_multiselect": False, "layout_type": 1,
            "results": {"is_finalized": False, "answer_counts": [{"id": 1, "count": 3, "me_voted": False}]},
        }
        msg["components"] = [{"type": 1, "components": [{"type": 3, "custom_id": "m", "options": [
            {"label": "a", "value": "[[]]"}, {"label": "b", "value": "[{}]"}]}]}]
        msg["nested"] = [[[]], [[[1]]], [{"a": [[]]}], []]
        return "MESSAGE_CREATE", msg


TRICKY_COUNT = 7


def generate_steady(seed: int = DEFAULT_SEED, count: int = 100_000, start_seq: int | None = None, *,
                    guilds: int = 400, big_guild_members: Iterable[int] = DEFAULT_BIG_GUILD_MEMBERS,
                    scale: str | None = None, tricky: bool = True) -> list[bytes]:
    """``count`` payloads of a large bot's steady traffic (dispatches plus occasional HEARTBEAT_ACKs).

    The guilds, channels and members are those of ``generate_startup`` with the same seed and world params, and
    dispatch sequence numbers continue from ``start_seq`` (default: right after the startup burst) without gaps.
    With ``tricky`` a handful of tricky-but-valid dispatches are spread through the stream.
    """
    if scale is not None:
        params = SCALES[scale]
        guilds, big_guild_members = params["guilds"], params["big_guild_members"]
    big = list(big_guild_members)
    world = _World(seed, guilds, big)
    if start_seq is None:
        start_seq = len(world.guilds) + 2
    # The steady stream has its own random source so that it does not depend on how startup consumed randomness.
    world.g.rng = random.Random("steady:%s" % seed)
    world.g.now_ms = BASE_TIME_MS + 60_000
    steady = _Steady(world)
    weights = world.guild_weights
    total = 0.0
    steady.cum_weights = []  # type: ignore[attr-defined]
    for weight in weights:
        total += weight
        steady.cum_weights.append(total)  # type: ignore[attr-defined]
    names = [name for name, _ in STEADY_MIX]
    cum_mix = []
    acc = 0.0
    for _, weight in STEADY_MIX:
        acc += weight
        cum_mix.append(acc)
    tricky_at: dict[int, int] = {}
    if tricky and count >= TRICKY_COUNT * 4:
        step = count // (TRICKY_COUNT + 1)
        tricky_at = {step * (i + 1): i for i in range(TRICKY_COUNT)}
    rng = world.g.rng
    builders = {name: getattr(steady, name) for name in names if name != "HEARTBEAT_ACK"}
    out: list[bytes] = []
    seq = start_seq
    for index in range(count):
        world.g.now_ms += rng.randint(0, 12)
        if index in tricky_at:
            name, data = steady.tricky(tricky_at[index])
        else:
            name = rng.choices(names, cum_weights=cum_mix)[0]
            if name == "HEARTBEAT_ACK":
                out.append(HEARTBEAT_ACK)
                continue
            data = builders[name]()
        out.append(_envelope(name, seq, data))
        seq += 1
    return out


def generate_edge(seed: int = DEFAULT_SEED, start_seq: int = 2**31 - 3, count: int = 6) -> list[bytes]:
    """A few small dispatches whose sequence numbers cross 2**31 - 1 (int32 overflow checks), with a HEARTBEAT_ACK."""
    steady_payloads = generate_steady(seed, count, start_seq, guilds=4, big_guild_members=[40], tricky=False)
    return steady_payloads


# --------------------------------------------------------------------------------------------------------------
# Compression
# --------------------------------------------------------------------------------------------------------------


def compress_zlib(payloads: Iterable[bytes], *, split_every: int | None = None, level: int = 6,
                  seed: int = DEFAULT_SEED) -> list[bytes]:
    """The websocket messages of a ``zlib-stream`` connection: one deflate context, Z_SYNC_FLUSH after every payload.

    Every message (or the last part of a split one) ends with ``00 00 FF FF``. With ``split_every=K`` every K-th
    payload is sent as 2-3 websocket messages (split at deterministic points, none of which leaves a part ending in
    the flush marker), so an inflater must buffer.
    """
    compressor = zlib.compressobj(level, zlib.DEFLATED, zlib.MAX_WBITS)
    rng = random.Random("split:%s" % seed)
    out: list[bytes] = []
    for index, payload in enumerate(payloads, start=1):
        data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
        if split_every and index % split_every == 0 and len(data) >= 8:
            # Cut before the trailing flush marker, so that only the last part of a message ends with it.
            cuts = sorted(rng.sample(range(1, len(data) - 4), min(len(data) - 5, rng.randint(1, 2))))
            cuts = [cut for cut in cuts if not data[:cut].endswith(ZLIB_SUFFIX)]
            start = 0
            for cut in cuts:
                out.append(data[start:cut])
                start = cut
            out.append(data[start:])
        else:
            out.append(data)
    return out


def compress_zstd(payloads: Iterable[bytes], *, level: int = 3) -> list[bytes]:
    """The websocket messages of a ``zstd-stream`` connection: one zstd frame that never ends, one flushed block
    (``COMPRESSOBJ_FLUSH_BLOCK``) per payload, one websocket message per payload. Needs ``zstandard``."""
    import zstandard

    compressor = zstandard.ZstdCompressor(level=level).compressobj()
    flush_block = zstandard.COMPRESSOBJ_FLUSH_BLOCK
    return [compressor.compress(payload) + compressor.flush(flush_block) for payload in payloads]


# --------------------------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------------------------


class Corpus(NamedTuple):
    """One named corpus: the raw payloads and the websocket messages of both compressions (in stream order)."""

    name: str
    payloads: list[bytes]
    zlib: list[bytes]
    zstd: list[bytes]


def _write_frames(path: Path, messages: Iterable[bytes]) -> int:
    total = 0
    pack = struct.Struct("<I").pack
    with open(path, "wb") as fh:
        for message in messages:
            fh.write(pack(len(message)))
            fh.write(message)
            total += len(message)
    return total


def read_frames(path: str | os.PathLike[str]) -> list[bytes]:
    """Read a ``[u32 LE length][bytes]`` record file. Raises ValueError if the file is truncated."""
    data = Path(path).read_bytes()
    out: list[bytes] = []
    view = memoryview(data)
    offset = 0
    unpack = struct.Struct("<I").unpack_from
    while offset < len(data):
        if offset + 4 > len(data):
            raise ValueError("%s: truncated record header at offset %d" % (path, offset))
        (length,) = unpack(data, offset)
        offset += 4
        if offset + length > len(data):
            raise ValueError("%s: truncated record at offset %d" % (path, offset))
        out.append(bytes(view[offset:offset + length]))
        offset += length
    return out


def write_corpus(directory: str | os.PathLike[str], name: str, payloads: list[bytes], *,
                 zlib_split_every: int | None = None) -> dict[str, int]:
    """Write ``NAME.jsonl`` (one payload per line), ``NAME.zlib.frames`` and ``NAME.zstd.frames`` into ``directory``.

    Returns byte counts ``{"payloads", "raw", "zlib", "zstd", "zlib_messages", "zstd_messages"}``.
    Raises ValueError if a payload contains a raw newline.
    """
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for payload in payloads:
        if b"\n" in payload:
            raise ValueError("payload contains a raw newline; JSON lines cannot hold it")
    with open(path / (name + ".jsonl"), "wb") as fh:
        for payload in payloads:
            fh.write(payload)
            fh.write(b"\n")
    zlib_messages = compress_zlib(payloads, split_every=zlib_split_every)
    zstd_messages = compress_zstd(payloads)
    return {
        "payloads": len(payloads),
        "raw": sum(map(len, payloads)),
        "zlib": _write_frames(path / (name + ".zlib.frames"), zlib_messages),
        "zstd": _write_frames(path / (name + ".zstd.frames"), zstd_messages),
        "zlib_messages": len(zlib_messages),
        "zstd_messages": len(zstd_messages),
    }


def load_corpus(directory: str | os.PathLike[str], name: str) -> Corpus:
    """Read the three files ``write_corpus`` wrote. Raises FileNotFoundError if one is missing."""
    path = Path(directory)
    raw = (path / (name + ".jsonl")).read_bytes()
    payloads = raw.split(b"\n")
    if payloads and payloads[-1] == b"":
        payloads.pop()
    return Corpus(name, payloads, read_frames(path / (name + ".zlib.frames")), read_frames(path / (name + ".zstd.frames")))


def _params_for(scale: str, seed: int) -> dict[str, Any]:
    params = dict(SCALES[scale])
    params["seed"] = seed
    params["version"] = GENERATOR_VERSION
    return params


def _cache_key(params: dict[str, Any]) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps(params, sort_keys=True).encode())
    # Any edit of the generator invalidates cached data, even if GENERATOR_VERSION was not bumped.
    digest.update(Path(__file__).read_bytes())
    digest.update(zlib.ZLIB_VERSION.encode())
    return digest.hexdigest()[:24]


def generate_scale(scale: str, seed: int = DEFAULT_SEED) -> dict[str, list[bytes]]:
    """The payloads of every corpus of a scale: ``startup``, ``steady`` and ``edge``."""
    params = SCALES[scale]
    startup = generate_startup(seed, params["guilds"], params["big_guild_members"])
    steady = generate_steady(seed, params["steady_count"], len(startup) + 1,
                             guilds=params["guilds"], big_guild_members=params["big_guild_members"])
    return {"startup": startup, "steady": steady, "edge": generate_edge(seed)}


def ensure_corpus(scale: str = "small", directory: str | os.PathLike[str] | None = None,
                  seed: int = DEFAULT_SEED) -> Path:
    """Return ``DIRECTORY/SCALE`` (default ``bench/data/SCALE``) holding ``startup``, ``steady`` and ``edge`` corpora,
    generating them first unless ``manifest.json`` there records the same generator hash. Load them with ``load_corpus``.
    Raises KeyError for an unknown scale."""
    if scale not in SCALES:
        raise KeyError("unknown corpus scale %r (expected one of %s)" % (scale, ", ".join(SCALES)))
    base = Path(directory) if directory is not None else DEFAULT_DATA_DIR
    target = base / scale
    params = _params_for(scale, seed)
    key = _cache_key(params)
    manifest_path = target / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("key") == key and all(
            (target / (name + suffix)).exists() for name in manifest["corpora"] for suffix in (".jsonl", ".zlib.frames", ".zstd.frames")
        ):
            return target
    except (OSError, ValueError, KeyError):
        pass
    target.mkdir(parents=True, exist_ok=True)
    if manifest_path.exists():
        manifest_path.unlink()
    started = time.perf_counter()
    corpora = generate_scale(scale, seed)
    generated = time.perf_counter() - started
    stats = {name: write_corpus(target, name, payloads) for name, payloads in corpora.items()}
    manifest = {"key": key, "params": params, "generate_seconds": round(generated, 3),
                "total_seconds": round(time.perf_counter() - started, 3), "corpora": stats}
    tmp = target / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2))
    tmp.replace(manifest_path)
    return target


def corpus_stats(payloads: list[bytes]) -> dict[str, dict[str, float]]:
    """Per event name (``GATEWAY_HEARTBEAT_ACK`` for op 11): count, median, min and max payload size in bytes."""
    sizes: dict[str, list[int]] = {}
    for payload in payloads:
        envelope = json.loads(payload)
        name = envelope["t"] if envelope["op"] == 0 else "GATEWAY_HEARTBEAT_ACK"
        sizes.setdefault(name, []).append(len(payload))
    out = {}
    for name, values in sorted(sizes.items(), key=lambda item: -len(item[1])):
        values.sort()
        out[name] = {"count": len(values), "median": values[len(values) // 2], "min": values[0], "max": values[-1]}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.corpus", description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="full")
    parser.add_argument("--out", default=str(DEFAULT_DATA_DIR), help="parent directory; files go to OUT/SCALE/")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    target = ensure_corpus(args.scale, args.out, args.seed)
    manifest = json.loads((target / "manifest.json").read_text())
    print("%s (generated in %.2f s, written in %.2f s total)" % (target, manifest["generate_seconds"], manifest["total_seconds"]))
    for name, stats in manifest["corpora"].items():
        print("  %-8s %7d payloads  raw %8.2f MB  zlib %7.2f MB  zstd %7.2f MB" % (
            name, stats["payloads"], stats["raw"] / 1e6, stats["zlib"] / 1e6, stats["zstd"] / 1e6))
    return 0


if __name__ == "__main__":
    sys.exit(main())
