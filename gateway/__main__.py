"""``python -m gateway``: connect one shard and print every event as one JSON line.

With ``DISCORD_TOKEN`` set it connects to Discord. Without a token, or with ``--demo``, it starts the fake gateway
(``gateway.testing.FakeGateway``) in this process on loopback, runs the same Shard against it, plays a short script
(dispatches, a dropped connection that the shard resumes, op 7) and exits: the quick start works with no network.

Each line is ``{"t": name, "op": op, "s": seq, "d": data}`` with ``d`` copied byte for byte from the gateway payload
(it is not decoded and re-encoded). Logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence

from . import speedups_enabled
from .event import Event
from .flags import EventTypeFlags, Intents
from .models import ShardId
from .ratelimit import IdentifyQueue
from .shard import Shard

DEMO_TOKEN = "demo-token"


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
    parser.add_argument("--shard", default=ShardId(0, 1), type=_parse_shard, metavar="N/TOTAL", help="default 0/1")
    parser.add_argument("--gateway-url", default="wss://gateway.discord.gg", help=argparse.SUPPRESS)
    parser.add_argument("--max-events", type=int, default=None, metavar="N", help="exit after printing N events")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log to stderr (-v info, -vv debug)")
    from .supervisor import register_arguments as register_redis_arguments  # --redis mode (gateway/supervisor.py)

    register_redis_arguments(parser)
    return parser


def format_event(event: Event) -> str:
    """One JSON line for ``event``; ``d`` is the payload's own JSON text."""
    d = event.raw_data
    seq = "null" if event.seq is None else str(event.seq)
    d_text = "null" if d is None else d.decode("utf-8")
    return f'{{"t":{json.dumps(event.name)},"op":{event.op},"s":{seq},"d":{d_text}}}'


async def _print_events(shard: Shard, event_types: int, max_events: int | None) -> int:
    printed = 0
    write = sys.stdout.write
    async for event in shard.events(event_types):
        write(format_event(event) + "\n")
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


async def run_demo(args: argparse.Namespace) -> int:
    from .testing import FakeGateway

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


def _close_soon(shard: Shard) -> None:
    asyncio.ensure_future(shard.close())


async def run_discord(args: argparse.Namespace, token: str) -> int:
    compression = None if args.compression == "none" else args.compression
    shard = Shard(args.shard, token, args.intents, gateway_url=args.gateway_url, compression=compression)
    try:
        await _print_events(shard, args.events, args.max_events)
    finally:
        await shard.close()
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
