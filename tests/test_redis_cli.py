"""``python -m gateway --shards A-B/N --redis URL``: the supervisor and its workers as real processes against a real
redis-server and the FakeGateway: a killed worker is restarted and loses nothing, a restarted supervisor resumes every
shard from the Redis session store (no IDENTIFY), usage and connection errors are clear."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from redis_server import (  # noqa: F401 - fixtures
    RedisServer,
    free_port,
    persistent_redis,
    redis_server,
    require_redis_server,
    sequences_by_shard,
    shard_sessions,
    stream_entries,
)
from shard_helpers import run, until

from gateway.testing import FakeGateway

TOKEN = "cli-test-token-4d8e2a"


@pytest.fixture(autouse=True)
def _needs_redis() -> None:
    require_redis_server()


class Supervisor:
    """``python -m gateway --redis ...`` in a subprocess; its stderr lines are collected by a thread."""

    def __init__(self, *args: str, token: str | None = TOKEN) -> None:
        env = {key: value for key, value in os.environ.items() if key != "DISCORD_TOKEN"}
        if token is not None:
            env["DISCORD_TOKEN"] = token
        self.process = subprocess.Popen([sys.executable, "-m", "gateway", *args], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True, env=env)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    def worker_pids(self) -> dict[int, list[int]]:
        """``{worker index: [pid of each start]}`` from the supervisor's log."""
        pids: dict[int, list[int]] = {}
        for line in self.lines:
            match = re.search(r"worker (\d+) \(shards [^)]*\) started, pid (\d+)", line)
            if match:
                pids.setdefault(int(match.group(1)), []).append(int(match.group(2)))
        return pids

    def stop(self, timeout: float = 30.0, *, signal_first: bool = True) -> int:
        if signal_first and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._reader.join(5)
        if self.process.stderr is not None:
            self.process.stderr.close()
        return code

    @property
    def log(self) -> str:
        return "\n".join(self.lines)


def supervisor_args(server: RedisServer, gateway: FakeGateway, shards: str, processes: int) -> list[str]:
    return ["--shards", shards, "--redis", server.url, "--gateway-url", gateway.url, "--processes", str(processes),
            "--identify-delay", "0.05", "--events", "MESSAGE_CREATE,READY"]


async def live(gateway: FakeGateway, count: int, timeout: float = 30.0) -> dict[int, Any]:
    def check() -> dict[int, Any] | None:
        sessions = shard_sessions(gateway)
        if len(sessions) == count and all(s.connection is not None for s in sessions.values()):
            return sessions
        return None

    return await until(check, timeout=timeout, what=f"{count} live sessions")


async def produce(gateway: FakeGateway, sent: dict[int, list[int]], rounds: int) -> None:
    for index in range(rounds):
        for shard, session in shard_sessions(gateway).items():
            sent.setdefault(shard, []).append(
                gateway.dispatch_nowait("MESSAGE_CREATE", {"id": str(index), "content": "c"}, session=session))
        if index % 10 == 0:
            await asyncio.sleep(0.005)


async def stream_holds(server: RedisServer, sent: dict[int, list[int]], timeout: float = 40.0) -> dict[int, list[int]]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    expected = sum(map(len, sent.values()))
    while True:
        got = sequences_by_shard(await asyncio.to_thread(stream_entries, server, "gateway:events"))
        if sum(map(len, got.values())) >= expected or loop.time() > deadline:
            return got
        await asyncio.sleep(0.1)


def test_a_killed_worker_is_restarted_resumes_its_shards_and_nothing_is_lost(persistent_redis: RedisServer) -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gateway:
            supervisor = Supervisor(*supervisor_args(persistent_redis, gateway, "0-3/4", 2))
            try:
                await live(gateway, 4)
                sent: dict[int, list[int]] = {}
                await produce(gateway, sent, 100)
                victim = supervisor.worker_pids()[0][0]
                os.kill(victim, signal.SIGKILL)
                await produce(gateway, sent, 100)  # Discord goes on while the worker is dead
                await until(lambda: len(supervisor.worker_pids().get(0, [])) == 2, timeout=20, what="the restart")
                await live(gateway, 4)
                await produce(gateway, sent, 100)
                got = await stream_holds(persistent_redis, sent)
                assert got == sent  # every dispatched sequence, once, in order, per shard
                assert len(gateway.received_payloads(2)) == 4  # no shard identified twice
                assert len(gateway.received_payloads(6)) >= 2  # the killed worker's two shards resumed
                assert "exited with -9" in supervisor.log and "restarting in" in supervisor.log
            finally:
                code = supervisor.stop()
            assert code == 0, supervisor.log

    run(body, timeout=120)


def test_a_restarted_supervisor_resumes_every_shard_from_the_redis_store(persistent_redis: RedisServer) -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN) as gateway:
            first = Supervisor(*supervisor_args(persistent_redis, gateway, "0-2/3", 1))
            sent: dict[int, list[int]] = {}
            try:
                await live(gateway, 3)
                await produce(gateway, sent, 50)
                assert await stream_holds(persistent_redis, sent) == sent
            finally:
                assert first.stop() == 0, first.log
            await produce(gateway, sent, 50)  # while nothing runs: Discord keeps them for RESUME
            second = Supervisor(*supervisor_args(persistent_redis, gateway, "0-2/3", 3))
            try:
                await until(lambda: len(gateway.received_payloads(6)) >= 3, timeout=30, what="3 RESUMEs")
                assert await stream_holds(persistent_redis, sent) == sent
                assert len(gateway.received_payloads(2)) == 3  # identified once, at the first start only
            finally:
                assert second.stop() == 0, second.log

    run(body, timeout=120)


def test_cli_usage_errors_and_an_unreachable_redis_are_reported_clearly() -> None:
    port = free_port()
    no_token = Supervisor("--shards", "0-1/2", "--redis", f"redis://127.0.0.1:{port}/0", token=None)
    assert no_token.stop(signal_first=False) == 2 and "DISCORD_TOKEN" in no_token.log
    bad = Supervisor("--shards", "3-1/2", "--redis", f"redis://127.0.0.1:{port}/0")
    assert bad.stop(signal_first=False) == 2 and "--shards" in bad.log
    unreachable = Supervisor("--shards", "0-0/1", "--redis", f"redis://user:pw-secret@127.0.0.1:{port}/0",
                             "--gateway-url", "ws://127.0.0.1:9")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and unreachable.log.count("is unreachable") < 2:
        time.sleep(0.1)
    code = unreachable.stop()
    assert unreachable.log.count("is unreachable") >= 2, unreachable.log
    assert f"redis://127.0.0.1:{port}/0 is unreachable" in unreachable.log and "retrying in" in unreachable.log
    assert "pw-secret" not in unreachable.log and TOKEN not in unreachable.log
    assert code == 0


def test_import_gateway_works_without_redis_py_and_gateway_redis_names_the_extra() -> None:
    code = ("import sys; sys.modules['redis'] = None\n"
            "import gateway, gateway.supervisor, gateway.redis_contract\n"
            "try:\n    import gateway.redis\nexcept ImportError as exc:\n    print(exc)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "pip install 'gateway[redis]'" in result.stdout


def test_shards_auto_takes_count_url_and_limits_from_get_gateway_bot(redis_server: RedisServer) -> None:
    async def body() -> None:
        async with FakeGateway(token=TOKEN, recommended_shards=2) as gateway:
            supervisor = Supervisor("--shards", "auto", "--redis", redis_server.url, "--api-url", gateway.api_url,
                                    "--identify-delay", "0.05", "--processes", "2")
            try:
                await live(gateway, 2)
                assert sorted(p["d"]["shard"][0] for p in gateway.received_payloads(2)) == [0, 1]
                assert await asyncio.to_thread(redis_server.cli, "GET", "gateway:shard_count") == b"2"
                remaining = await asyncio.to_thread(redis_server.cli, "GET", "gateway:identify:remaining")
                assert remaining is not None and int(remaining) == gateway.session_start_limit.remaining
            finally:
                assert supervisor.stop() == 0, supervisor.log

    run(body, timeout=60)
