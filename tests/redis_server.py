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
