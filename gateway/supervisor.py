"""``python -m gateway --shards A-B/N --redis URL``: shards over P worker processes, events into Redis.

The supervisor (this module's :func:`main_redis`, reached from ``gateway/__main__.py``) splits shards A..B of N into
``--processes`` contiguous parts and runs one worker process per part (``python -m gateway.supervisor worker ...``;
the token is inherited through ``DISCORD_TOKEN``, never passed on a command line). A worker runs a
:class:`gateway.redis.RedisForwarder`. A worker that crashes or is killed is restarted (backoff 0.5 s doubling to
30 s, reset after 30 s of uptime) and resumes its shards from the Redis session store. A worker whose shards the
gateway closed for good (4004, 4010-4014) exits with code 3 and is not restarted. SIGTERM/SIGINT stop every worker
(shards close with 4000, so the next start resumes them) and then the supervisor.

Nothing here imports redis-py until a worker runs, so ``python -m gateway`` works without the extra.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger("gateway.supervisor")

EXIT_FATAL = 3
EXIT_USAGE = 2
RESTART_BASE = 0.5
RESTART_CAP = 30.0
STABLE_AFTER = 30.0


def register_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the Redis mode's options to ``python -m gateway``'s parser (``--shards``/``--api-url`` only if absent)."""
    known = parser._option_string_actions  # noqa: SLF001 - argparse offers no public "has option"
    if "--shards" not in known:
        parser.add_argument("--shards", default=None, metavar="A-B/N", help="shards A..B of N (with --redis)")
    if "--api-url" not in known:
        parser.add_argument("--api-url", default="https://discord.com/api/v10", help=argparse.SUPPRESS)
    if "--gateway-url" not in known:
        parser.add_argument("--gateway-url", default=None, help=argparse.SUPPRESS)
    group = parser.add_argument_group("Redis (many processes)")
    group.add_argument("--redis", default=None, metavar="URL",
                       help="redis://HOST:PORT/DB: send events to the stream {prefix}:events instead of printing them")
    group.add_argument("--prefix", default="gateway", help="key prefix in Redis (default: gateway)")
    group.add_argument("--processes", type=int, default=1, metavar="P", help="worker processes (default 1)")
    group.add_argument("--max-len", type=int, default=None, metavar="L",
                       help="XADD MAXLEN ~ L of the events stream (default 1000000)")
    group.add_argument("--max-concurrency", type=int, default=None, metavar="M",
                       help="identify buckets (default: GET /gateway/bot's max_concurrency when --shards auto or no "
                            "--gateway-url makes it fetched, else 1)")
    if "--identify-delay" not in known:
        group.add_argument("--identify-delay", type=float, default=None, help=argparse.SUPPRESS)


def _shard_spec(args: argparse.Namespace) -> tuple[list[int] | None, int | None]:
    """``(shard ids, count)`` from ``--shards`` (``(None, None)`` for ``auto``) or, without it, from ``--shard``."""
    from .redis_contract import parse_shards

    spec = args.shards
    if spec is None:
        shard = getattr(args, "shard", None)
        if shard is None:
            return [0], 1
        return [shard.number], shard.total
    if isinstance(spec, str):
        if spec.strip().lower() == "auto":
            return None, None
        return parse_shards(spec)
    count, ids = spec  # gateway/__main__.py's parse_shards: (count | None, ids | None)
    if count is None:
        return None, None
    return (list(range(count)) if ids is None else list(ids)), count


async def _gateway_info(token: str, api_url: str) -> Any:
    from .http import fetch_gateway_info

    return await fetch_gateway_info(token, api_url=api_url)


@dataclass
class _Worker:
    index: int
    shard_ids: list[int]
    process: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    restarts: int = 0
    failures: int = 0
    fatal: bool = False


def _worker_command(args: argparse.Namespace, shard_ids: Sequence[int], shard_count: int) -> list[str]:
    compression = getattr(args, "compression", "zstd-stream")
    command = [
        sys.executable, "-m", "gateway.supervisor", "worker",
        "--redis", args.redis, "--prefix", args.prefix,
        "--shard-ids", ",".join(map(str, shard_ids)), "--shard-count", str(shard_count),
        "--events", str(int(args.events)), "--intents", str(int(args.intents)),
        "--compression", compression, "--gateway-url", args.gateway_url,
        "--max-concurrency", str(args.max_concurrency),
        "--identify-delay", str(5.0 if args.identify_delay is None else args.identify_delay),
    ]
    if args.max_len is not None:
        command += ["--max-len", str(args.max_len)]
    if args.session_start_limit is not None:
        command += ["--session-start-limit", ",".join(map(str, args.session_start_limit))]
    if getattr(args, "verbose", 0):
        command += ["-" + "v" * args.verbose]
    return command


async def supervise(args: argparse.Namespace, shard_ids: list[int], shard_count: int) -> int:
    from .redis_contract import split_shards

    parts = split_shards(shard_ids, args.processes)
    workers = [_Worker(index, part) for index, part in enumerate(parts)]
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, stopping.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - non-Unix
            pass
    logger.warning("supervisor: shards %s-%s of %s in %d worker process(es), events to %s (prefix %r)",
                   shard_ids[0], shard_ids[-1], shard_count, len(workers), _redacted(args.redis), args.prefix)

    async def start(worker: _Worker) -> None:
        worker.process = await asyncio.create_subprocess_exec(*_worker_command(args, worker.shard_ids, shard_count))
        worker.started_at = time.monotonic()
        logger.warning("supervisor: worker %d (shards %s) started, pid %d", worker.index, _span(worker.shard_ids),
                       worker.process.pid)

    async def watch(worker: _Worker) -> None:
        while not stopping.is_set():
            await start(worker)
            assert worker.process is not None
            wait = asyncio.ensure_future(worker.process.wait())
            stop = asyncio.ensure_future(stopping.wait())
            await asyncio.wait([wait, stop], return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if stopping.is_set():
                wait.cancel()
                return
            code = worker.process.returncode
            if code == EXIT_FATAL:
                worker.fatal = True
                logger.error("supervisor: worker %d (shards %s): the gateway refused its shards for good; not "
                             "restarting it", worker.index, _span(worker.shard_ids))
                return
            uptime = time.monotonic() - worker.started_at
            worker.failures = 1 if uptime >= STABLE_AFTER else worker.failures + 1
            delay = min(RESTART_CAP, RESTART_BASE * 2 ** (worker.failures - 1))
            worker.restarts += 1
            logger.error("supervisor: worker %d (shards %s) exited with %s after %.1f s; restarting in %.1f s (it "
                         "resumes its shards from Redis)", worker.index, _span(worker.shard_ids), code, uptime, delay)
            try:
                await asyncio.wait_for(stopping.wait(), delay)
            except asyncio.TimeoutError:
                pass

    watchers = [asyncio.ensure_future(watch(worker)) for worker in workers]
    done: asyncio.Future[Any] = asyncio.ensure_future(asyncio.gather(*watchers))
    stop: asyncio.Future[Any] = asyncio.ensure_future(stopping.wait())
    await asyncio.wait([done, stop], return_when=asyncio.FIRST_COMPLETED)
    stopping.set()
    await _stop_workers(workers)
    await asyncio.gather(done, return_exceptions=True)
    stop.cancel()
    return EXIT_FATAL if all(worker.fatal for worker in workers) else 0


async def _stop_workers(workers: Sequence[_Worker], timeout: float = 15.0) -> None:
    alive = [w.process for w in workers if w.process is not None and w.process.returncode is None]
    for process in alive:
        try:
            process.terminate()
        except ProcessLookupError:
            pass
    if not alive:
        return
    try:
        await asyncio.wait_for(asyncio.gather(*(process.wait() for process in alive)), timeout)
    except asyncio.TimeoutError:
        for process in alive:
            if process.returncode is None:
                process.kill()
        await asyncio.gather(*(process.wait() for process in alive))


def _span(ids: Sequence[int]) -> str:
    return f"{ids[0]}-{ids[-1]}" if len(ids) > 1 else str(ids[0])


def _redacted(url: str) -> str:
    from .redis_contract import redact_url

    return redact_url(url)


def main_redis(args: argparse.Namespace) -> int:
    """The ``--redis`` mode of ``python -m gateway``: validate, then supervise the workers until a signal."""
    token = os.environ.get("DISCORD_TOKEN", "").strip()
    if not token:
        print("python -m gateway --redis: set DISCORD_TOKEN (the token is never written to Redis)", file=sys.stderr)
        return EXIT_USAGE
    try:
        import redis  # noqa: F401
    except ImportError:
        print("python -m gateway --redis needs redis-py: pip install 'gateway[redis]'", file=sys.stderr)
        return EXIT_USAGE
    try:
        ids, count = _shard_spec(args)
    except ValueError as exc:
        print(f"python -m gateway: {exc}", file=sys.stderr)
        return EXIT_USAGE
    args.session_start_limit = None
    if count is None or args.gateway_url is None:
        try:  # GET /gateway/bot once for the whole fleet: count, URL, max_concurrency, session_start_limit
            info = asyncio.run(_gateway_info(token, args.api_url))
        except Exception as exc:  # noqa: BLE001 - any failure ends the start with its (token-free) message
            print(f"python -m gateway: GET /gateway/bot failed: {exc}", file=sys.stderr)
            return 1
        limit = info.session_start_limit
        if count is None:
            ids, count = list(range(info.shards)), info.shards
        if args.gateway_url is None:
            args.gateway_url = info.url
        if args.max_concurrency is None:
            args.max_concurrency = limit.max_concurrency
        args.session_start_limit = (limit.remaining, limit.total, limit.reset_after)
    if args.max_concurrency is None:
        args.max_concurrency = 1
    assert ids is not None and count is not None
    shard_ids, shard_count = ids, count
    if args.processes < 1:
        print("python -m gateway: --processes must be >= 1", file=sys.stderr)
        return EXIT_USAGE
    if args.max_len is not None and args.max_len < 1:
        print("python -m gateway: --max-len must be >= 1", file=sys.stderr)
        return EXIT_USAGE
    try:
        return asyncio.run(supervise(args, shard_ids, shard_count))
    except KeyboardInterrupt:
        return 130


# ------------------------------------------------------------------------------------------------------- worker

def _worker_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gateway.supervisor worker")
    parser.add_argument("role", choices=["worker"])
    parser.add_argument("--redis", required=True)
    parser.add_argument("--prefix", default="gateway")
    parser.add_argument("--shard-ids", required=True)
    parser.add_argument("--shard-count", type=int, required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--intents", type=int, required=True)
    parser.add_argument("--compression", default="zstd-stream")
    parser.add_argument("--gateway-url", required=True)
    parser.add_argument("--max-len", type=int, default=None)
    parser.add_argument("--max-concurrency", type=int, default=1)
    parser.add_argument("--identify-delay", type=float, default=5.0)
    parser.add_argument("--session-start-limit", default=None, help="REMAINING,TOTAL,RESET_AFTER_S")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    return parser


async def run_worker(args: argparse.Namespace, token: str) -> int:
    from .errors import FatalCloseError
    from .redis import DEFAULT_MAX_LEN, RedisForwarder

    shard_ids = [int(part) for part in args.shard_ids.split(",")]
    forwarder = RedisForwarder(
        args.redis, token, args.intents, shard_ids, args.shard_count, prefix=args.prefix, event_types=args.events,
        max_len=args.max_len or DEFAULT_MAX_LEN, gateway_url=args.gateway_url,
        max_concurrency=args.max_concurrency, identify_delay=args.identify_delay,
        compression=None if args.compression == "none" else args.compression,
    )
    if args.session_start_limit:
        remaining, total, reset_after = args.session_start_limit.split(",")
        forwarder.identify_queue.set_session_start_limit(int(remaining), int(total), float(reset_after))
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, lambda: asyncio.ensure_future(forwarder.close()))
    orphan_watch = loop.create_task(_close_when_orphaned(forwarder))
    try:
        await forwarder.run()
    except FatalCloseError:
        return EXIT_FATAL
    finally:
        orphan_watch.cancel()
    return 0


async def _close_when_orphaned(forwarder: Any) -> None:
    """A worker whose supervisor died (kill -9) stops too: a new supervisor will start its own workers."""
    parent = os.getppid()
    while True:
        await asyncio.sleep(1.0)
        if os.getppid() != parent:
            logger.error("worker: the supervisor (pid %d) is gone; stopping", parent)
            await forwarder.close()
            return


def worker_main(argv: Sequence[str] | None = None) -> int:
    args = _worker_parser().parse_args(argv)
    level = logging.WARNING if args.verbose == 0 else logging.INFO if args.verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, stream=sys.stderr,
                        format=f"%(asctime)s %(levelname)s worker[{args.shard_ids}] %(name)s: %(message)s")
    token = os.environ.get("DISCORD_TOKEN", "").strip()
    if not token:
        print("worker: DISCORD_TOKEN is not set", file=sys.stderr)
        return EXIT_USAGE
    return asyncio.run(run_worker(args, token))


if __name__ == "__main__":
    sys.exit(worker_main())
