"""A real ``redis-server`` for the tests: started on a free loopback port in a temp dir, killable and restartable.

``RedisServer(directory, persistent=False)``: ``start()`` launches ``redis-server`` on 127.0.0.1 (a free port picked
once, kept across restarts), ``kill()`` sends SIGKILL (a crash: nothing is flushed), ``restart()`` starts it again on
the same port and directory, ``stop()`` ends it. ``persistent=True`` turns on the append-only file with
``appendfsync always`` so that every write Redis acknowledged survives a ``kill -9``. ``cli(*args)`` runs one command
through redis-py's synchronous client and returns its answer.

``require_redis_server()`` returns the binary's path, or skips the test with a loud reason when it is missing; under
``CI=true`` a missing server is a failure instead (``.ci/run`` installs it).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

REDIS_SERVER_CANDIDATES = ("/usr/bin/redis-server", "/usr/local/bin/redis-server")


def require_redis_server() -> str:
    """Path of redis-server; skip (locally) or fail (CI=true) when it is not installed."""
    path = shutil.which("redis-server") or next((p for p in REDIS_SERVER_CANDIDATES if os.path.exists(p)), None)
    if path is None:
        message = ("REDIS TESTS NOT RUN: redis-server is not installed (apt-get install redis-server); "
                   "the Redis guarantees are untested on this machine")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    try:
        import redis  # noqa: F401
    except ImportError:
        message = "REDIS TESTS NOT RUN: redis-py is not installed (pip install 'gateway[redis]')"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One redis-server process on loopback (see the module docstring)."""

    def __init__(self, directory: Path, *, persistent: bool = False, binary: str | None = None,
                 extra: tuple[str, ...] = ()) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.binary = binary or require_redis_server()
        self.persistent = persistent
        self.extra = extra
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _arguments(self) -> list[str]:
        args = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
            "--save", "", "--protected-mode", "no", "--daemonize", "no", "--loglevel", "warning",
            "--logfile", str(self.directory / "redis.log"),
        ]
        if self.persistent:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        return args + list(self.extra)

    def start(self, timeout: float = 10.0) -> None:
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError("redis-server already running")
        self.process = subprocess.Popen(self._arguments(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server exited with {self.process.returncode}: {log}")
            try:
                if self.cli("PING") in (True, b"PONG", "PONG"):
                    return
            except Exception:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not answer on port {self.port} within {timeout} s")
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL (kill -9): Redis gets no chance to flush or say goodbye."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None

    def cli(self, *args: Any) -> Any:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5, protocol=2)
        try:
            return client.execute_command(*args)
        finally:
            client.close()

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@pytest.fixture
def redis_server(tmp_path: Path):
    """A fresh redis-server without persistence, stopped after the test."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def persistent_redis(tmp_path: Path):
    """A fresh redis-server with ``appendfsync always`` (acknowledged writes survive ``kill -9``)."""
    server = RedisServer(tmp_path / "redis", persistent=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# ------------------------------------------------------------------------------------------------- test helpers

def stream_entries(server: RedisServer, key: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """Every entry of the stream ``key``, oldest first."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=10, protocol=2)
    try:
        return [(entry_id, dict(fields)) for entry_id, fields in client.xrange(key)]
    finally:
        client.close()


def dump_everything(server: RedisServer) -> list[bytes]:
    """Every key name and every value stored in the server (all types), as bytes, for secret scans."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=10, protocol=2)
    found: list[bytes] = []
    try:
        for key in client.scan_iter(count=1000):
            found.append(key)
            kind = client.type(key)
            if kind == b"string":
                found.append(client.get(key) or b"")
            elif kind == b"hash":
                for field, value in client.hgetall(key).items():
                    found += [field, value]
            elif kind == b"list":
                found += client.lrange(key, 0, -1)
            elif kind == b"set":
                found += list(client.smembers(key))
            elif kind == b"zset":
                found += [member for member, _ in client.zrange(key, 0, -1, withscores=True)]
            elif kind == b"stream":
                for _, fields in client.xrange(key):
                    for field, value in fields.items():
                        found += [field, value]
                for group in client.xinfo_groups(key):
                    found.append(group["name"] if isinstance(group["name"], bytes) else str(group["name"]).encode())
        found.append(str(client.config_get("*")).encode())
        return found
    finally:
        client.close()


def shard_sessions(gateway: Any) -> dict[int, Any]:
    """The FakeGateway's live (not invalidated) session of each shard number (the newest one)."""
    sessions: dict[int, Any] = {}
    for session in gateway.sessions.values():
        if session.shard is not None and not session.invalidated:
            sessions[session.shard[0]] = session
    return sessions


def sequences_by_shard(entries: list[tuple[bytes, dict[bytes, bytes]]], name: str = "MESSAGE_CREATE") -> dict[int, list[int]]:
    """``{shard: [s, ...]}`` of the entries named ``name``, in stream order."""
    result: dict[int, list[int]] = {}
    for _, fields in entries:
        if fields[b"t"] == name.encode():
            result.setdefault(int(fields[b"shard"]), []).append(int(fields[b"s"]))
    return result
