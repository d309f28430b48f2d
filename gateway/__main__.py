"""``python -m gateway``: connect one shard (or, with ``--shards``, a ShardGroup) and print every event as one JSON line.

With ``DISCORD_TOKEN`` set it connects to Discord. Without a token, or with ``--demo``, it starts the fake gateway
(``gateway.testing.FakeGateway``) in this process on loopback, runs the same Shard (or group) against it, plays a
short script (dispatches, a dropped connection that the shard resumes, op 7) and exits: the quick start works with
no network.

Each line is ``{"t": name, "op": op, "s": seq, "d": data}`` with ``d`` copied byte for byte from the gateway payload
(it is not decoded and re-encoded); a group adds ``"shard": number``. Logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence

from . import speedups_enabled
from .event import Event
from .flags import EventTypeFlags, Intents
from .group import ShardGroup
from .http import DEFAULT_API_URL
from .models import ShardId
from .protocol import GATEWAY_URL
from .ratelimit import IdentifyQueue
from .shard import Shard
from .status import GroupSource, status_view

DEMO_TOKEN = "demo-token"
DEMO_GUILD_ID = 1200000000000000001


def _parse_flags(text: str, enum_type: type[EventTypeFlags] | type[Intents], what: str) -> int:
    """``"A,B"`` -> A | B; ``"all"`` -> every member; raises argparse.ArgumentTypeError for an unknown name."""
    if text.strip().lower() == "all":
        return int(enum_type.all())
    value = 0
    for name in filter(None, (part.strip().upper() for part in text.split(","))):
        member = enum_type.__members__.get(name)
        if member is None:
            raise argparse.ArgumentTypeError(f"unknown {what} {name!r}")
        value |= int(member)
    return value


def _parse_shard(text: str) -> ShardId:
    try:
        number, total = (int(part) for part in text.split("/"))
        return ShardId(number, total)
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"--shard wants NUMBER/TOTAL, e.g. 0/1 ({exc})") from None


def parse_shards(text: str) -> tuple[int | None, list[int] | None]:
    """``--shards``: ``auto`` -> (None, None) (Discord's recommended count); ``N`` -> (N, None) (all N);
    ``A-B/N`` -> (N, [A..B]) (this process runs shards A to B of N). Raises argparse.ArgumentTypeError."""
    text = text.strip().lower()
    if text == "auto":
        return None, None
    try:
        if "/" not in text:
            count = int(text)
            if count < 1:
                raise ValueError("the count must be at least 1")
            return count, None
        span, total = text.split("/")
        count = int(total)
        first, _, last = span.partition("-")
        ids = list(range(int(first), int(last or first) + 1))
        if count < 1 or not ids or ids[-1] >= count:
            raise ValueError(f"shards {span} do not fit in {count}")
        return count, ids
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--shards wants auto, N or A-B/N, e.g. 0-3/8 ({exc})") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gateway", description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", action="store_true", help="run against the in-process fake gateway (default without DISCORD_TOKEN)")
    parser.add_argument(
        "--events", default="all", metavar="NAMES",
        type=lambda text: _parse_flags(text, EventTypeFlags, "event type"),
        help="comma-separated event types to print, e.g. MESSAGE_CREATE,READY (default: all)",
    )
    parser.add_argument(
        "--intents", default="GUILDS,GUILD_MESSAGES", metavar="NAMES",
        type=lambda text: _parse_flags(text, Intents, "intent"),
        help="comma-separated intents, or 'all' (default: GUILDS,GUILD_MESSAGES)",
    )
    parser.add_argument("--compression", default="zstd-stream", choices=["zstd-stream", "zlib-stream", "none"])
    parser.add_argument("--shard", default=ShardId(0, 1), type=_parse_shard, metavar="N/TOTAL",
                        help="run this one shard (default 0/1)")
    parser.add_argument(
        "--shards", default=None, type=parse_shards, metavar="auto|N|A-B/N",
        help="run a ShardGroup instead: auto (Discord's recommended count), N (all N shards) or A-B/N (shards A to B "
             "of N, this process's part); each line gets a \"shard\" field",
    )
    parser.add_argument(
        "--gateway-url", default=None, metavar="URL",
        help=f"gateway websocket URL, e.g. a proxy's (default: {GATEWAY_URL} for one shard; for --shards the URL "
             "GET /gateway/bot returns)",
    )
    parser.add_argument("--api-url", default=DEFAULT_API_URL, metavar="URL",
                        help=f"REST base for GET /gateway/bot with --shards (default {DEFAULT_API_URL})")
    parser.add_argument("--identify-delay", type=float, default=None, metavar="SECONDS",
                        help="seconds between IDENTIFYs of one bucket (default: Discord's 5, or 0.05 with --demo)")
    parser.add_argument("--max-events", type=int, default=None, metavar="N", help="exit after printing N events")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log to stderr (-v info, -vv debug)")
    from .supervisor import register_arguments as register_redis_arguments  # --redis mode (gateway/supervisor.py)

    register_redis_arguments(parser)
    return parser


def format_event(event: Event, *, with_shard: bool = False) -> str:
    """One JSON line for ``event``; ``d`` is the payload's own JSON text; ``with_shard`` adds ``"shard"``."""
    d = event.raw_data
    seq = "null" if event.seq is None else str(event.seq)
    d_text = "null" if d is None else d.decode("utf-8")
    shard = f',"shard":{event.shard_id}' if with_shard else ""
    return f'{{"t":{json.dumps(event.name)},"op":{event.op},"s":{seq}{shard},"d":{d_text}}}'


async def _print_events(source: Shard | ShardGroup, event_types: int, max_events: int | None,
                        observe: Callable[[Event], None] | None = None) -> int:
    printed = 0
    write = sys.stdout.write
    with_shard = isinstance(source, ShardGroup)
    async for event in source.events(event_types):
        if observe is not None:
            observe(event)
        write(format_event(event, with_shard=with_shard) + "\n")
        printed += 1
        if max_events is not None and printed >= max_events:
            break
    sys.stdout.flush()
    return printed


async def _demo_script(gateway: object) -> None:
    """What the fake gateway does in the demo: a few events, a TCP drop (resumed), an op 7 (resumed)."""
    from .testing import FakeGateway

    assert isinstance(gateway, FakeGateway)
    await gateway.wait_for_session()
    channel = "1300000000000000001"
    for index in range(3):
        await gateway.dispatch("MESSAGE_CREATE", {
            "id": str(1400000000000000000 + index), "channel_id": channel, "guild_id": "1200000000000000001",
            "author": {"id": "1100000000000000001", "username": "demo-user", "global_name": "Demo", "bot": False},
            "content": f"hello from the fake gateway ({index + 1}/3)", "type": 0, "tts": False,
        })
    await gateway.drop()  # no close frame: the shard resumes and the fake replays nothing it missed
    await gateway.wait_for_op(6)
    await gateway.dispatch("TYPING_START", {"channel_id": channel, "user_id": "1100000000000000001", "timestamp": 1764331200})
    await gateway.reconnect()  # op 7: resume again
    await gateway.wait_for_op(6)
    await gateway.dispatch("MESSAGE_CREATE", {
        "id": "1400000000000000099", "channel_id": channel, "content": "after two resumes", "type": 0,
        "author": {"id": "1100000000000000001", "username": "demo-user", "bot": False},
    })


async def _group_demo_script(gateway: object, group: ShardGroup) -> None:
    """The group demo: one message per shard (routed by guild id), a dropped connection on the last shard (it
    resumes), then a second message per shard."""
    from .testing import FakeGateway

    assert isinstance(gateway, FakeGateway)
    numbers = sorted(group.shards)
    for number in numbers:
        await gateway.wait_for_shard(number, group.shard_count)
    guilds: dict[int, int] = {}
    guild = DEMO_GUILD_ID
    while len(guilds) < group.shard_count:  # one guild id per shard: (guild_id >> 22) % shard_count
        guilds.setdefault(group.shard_for_guild(guild), guild)
        guild += 1 << 22
    for round_number in (1, 2):
        for number in numbers:
            gateway.broadcast("MESSAGE_CREATE", {
                "id": str(1400000000000000000 + round_number * 100 + number), "channel_id": "1300000000000000001",
                "guild_id": str(guilds[number]), "content": f"message {round_number} for shard {number}",
                "author": {"id": "1100000000000000001", "username": "demo-user", "bot": False}, "type": 0,
            })
        if round_number == 1:
            session = gateway.session_for_shard(numbers[-1], group.shard_count)
            await gateway.drop(shard=numbers[-1])  # no close frame: that shard resumes
            await gateway.wait_for(lambda g: session.resumes >= 1)


async def run_group_demo(args: argparse.Namespace) -> int:
    from .testing import FakeGateway

    compression = None if args.compression == "none" else args.compression
    count, ids = args.shards
    async with FakeGateway(token=DEMO_TOKEN, heartbeat_interval=1_000, recommended_shards=count or 4) as gateway:
        group = ShardGroup(DEMO_TOKEN, args.intents, shard_count=count, shard_ids=ids, api_url=gateway.api_url,
                           compression=compression,
                           identify_delay=0.05 if args.identify_delay is None else args.identify_delay)
        await group.start()
        script = asyncio.ensure_future(_group_demo_script(gateway, group))
        script.add_done_callback(lambda _: asyncio.get_running_loop().call_later(0.2, _close_soon, group))
        try:
            async with status_view(GroupSource(group), event_types=args.events) as observe:
                await _print_events(group, args.events, args.max_events, observe)
        finally:
            await group.close()
            script.cancel()
            await asyncio.gather(script, return_exceptions=True)
        if script.done() and not script.cancelled() and script.exception() is not None:
            raise script.exception()  # type: ignore[misc]
    return 0


async def run_demo(args: argparse.Namespace) -> int:
    from .testing import FakeGateway

    if args.shards is not None:
        return await run_group_demo(args)
    compression = None if args.compression == "none" else args.compression
    async with FakeGateway(token=DEMO_TOKEN, heartbeat_interval=1_000) as gateway:
        shard = Shard(args.shard, DEMO_TOKEN, args.intents, gateway_url=gateway.url, compression=compression,
                      identify_queue=IdentifyQueue(delay=0))
        script = asyncio.ensure_future(_demo_script(gateway))
        script.add_done_callback(lambda _: asyncio.get_running_loop().call_later(0.2, _close_soon, shard))
        try:
            await _print_events(shard, args.events, args.max_events)
        finally:
            await shard.close()
            script.cancel()
            await asyncio.gather(script, return_exceptions=True)
        if script.done() and not script.cancelled() and script.exception() is not None:
            raise script.exception()  # type: ignore[misc]
    return 0


def _close_soon(source: Shard | ShardGroup) -> None:
    asyncio.ensure_future(source.close())


async def run_discord(args: argparse.Namespace, token: str) -> int:
    compression = None if args.compression == "none" else args.compression
    source: Shard | ShardGroup
    if args.shards is not None:
        count, ids = args.shards
        source = ShardGroup(token, args.intents, shard_count=count, shard_ids=ids, api_url=args.api_url,
                            gateway_url=args.gateway_url, compression=compression)
    else:
        source = Shard(args.shard, token, args.intents, gateway_url=args.gateway_url or GATEWAY_URL,
                       compression=compression)
    view = (status_view(GroupSource(source), event_types=args.events) if isinstance(source, ShardGroup)
            else contextlib.nullcontext())
    try:
        async with view as observe:
            await _print_events(source, args.events, args.max_events, observe)
    finally:
        await source.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.WARNING if args.verbose == 0 else logging.INFO if args.verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.redis:
        from .supervisor import main_redis

        return main_redis(args)
    token = os.environ.get("DISCORD_TOKEN", "").strip()
    demo = args.demo or not token
    logging.getLogger("gateway").info(
        "mode=%s speedups=%s", "demo (fake gateway on loopback)" if demo else "discord", speedups_enabled()
    )
    try:
        return asyncio.run(run_demo(args) if demo else run_discord(args, token))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
