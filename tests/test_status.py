"""The live status view (``gateway/status.py``): the pure snapshot -> text core on hand-built sources, the tracker
and the driver on real shards against the FakeGateway, and the CLI seen as a person sees it (tmux for the terminal,
a pipe for the plain lines)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gateway import EventTypeFlags, Intents, Shard, ShardId
from gateway.models import ShardStatus
from gateway.ratelimit import IdentifyQueue, IdentifyScheduler
from gateway.status import (GroupSource, ShardListSource, StatusSource, StatusTracker, render_line, render_live,
                            run_status, status_view)
from gateway.testing import FakeGateway

from shard_helpers import run, until

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


# ----------------------------------------------------------------------------------------------------------------
# a hand-built source
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class FakeSession:
    id: str
    sequence: int


@dataclass
class FakeLatency:
    recent: tuple[float, ...] = ()


@dataclass
class FakeShard:
    status: ShardStatus = ShardStatus.DISCONNECTED
    latency: FakeLatency = field(default_factory=FakeLatency)
    session: FakeSession | None = None


@dataclass
class FakeQueue:
    scheduler: Any


@dataclass
class HandSource:
    shards: dict[int, FakeShard]
    identify_queue: FakeQueue | None = None

    @property
    def shard_count(self) -> int:
        return len(self.shards)


@dataclass
class FakeEvent:
    name: str
    op: int = 0
    shard_id: int = 0


def _active(number: int, latency_ms: float, sequence: int = 1) -> FakeShard:
    return FakeShard(ShardStatus.ACTIVE, FakeLatency((latency_ms / 1000,)), FakeSession(f"s{number}", sequence))


def test_hand_built_source_is_a_status_source() -> None:
    assert isinstance(HandSource({}), StatusSource)


def test_startup_of_four_shards_with_one_bucket_waiting() -> None:
    scheduler = IdentifyScheduler(1, delay=5.0)
    scheduler.set_session_start_limit(2, 1000, 3600.0, now=100.0)  # 2 identifies left, reset in an hour
    for shard_id in (0, 1, 2, 3):
        scheduler.request(shard_id)
    assert len(scheduler.poll(100.0)) == 1  # shard 0 identifies; 1-3 wait for the bucket's next slot at 105
    shards = {0: _active(0, 42.0), 1: FakeShard(ShardStatus.IDENTIFYING), 2: FakeShard(), 3: FakeShard()}
    source = HandSource(shards, FakeQueue(scheduler))
    tracker = StatusTracker(source, now=100.0)
    snapshot = tracker.snapshot(102.0, wall_time=1_700_000_000.0)
    text = "\n".join(render_live(snapshot, width=200))

    assert snapshot.ready == 1 and snapshot.shard_count == 4
    assert "1/4 shards READY" in text
    assert "ACTIVE 1 IDENTIFYING 1 DISCONNECTED 2" in text
    if hasattr(scheduler, "waiting_shards"):
        assert "identify: 3 waiting (bucket 0: 1-3), next slot in 3.0s, max_concurrency 1" in text
    else:
        assert "identify: 3 waiting, next slot in 3.0s, max_concurrency 1" in text
    assert "session starts: 1" in text  # 2 - the one identify granted
    assert "#0 ACTIVE 42ms  #1 IDENTIFYING  #2 DISCONNECTED  #3 DISCONNECTED" in text
    assert not any(CONTROL.search(line) for line in render_live(snapshot))


def test_many_shards_are_summarised_and_only_the_others_listed() -> None:
    shards = {n: _active(n, 30.0 + n) for n in range(64)}
    for n in (5, 6, 7, 40):
        shards[n] = FakeShard(ShardStatus.RESUMING, session=FakeSession(f"s{n}", 1))
    shards[63] = FakeShard(ShardStatus.FATALLY_CLOSED)
    snapshot = StatusTracker(HandSource(shards), now=0.0).snapshot(1.0)
    lines = render_live(snapshot, width=120)
    text = "\n".join(lines)
    assert "59/64 shards READY" in text and "ACTIVE 59 RESUMING 4 FATAL 1" in text
    assert "not active: RESUMING 5-7,40  FATAL 63" in text
    assert "latency min/median/max 30/62/92 ms (59 shards)" in text  # 30+n for n in 0-62 less 5-7, 40: 30th is n=32
    assert "#1 ACTIVE" not in text  # no per-shard list for 64 shards
    assert len(lines) <= 7 and all(len(line) <= 120 for line in lines)
    assert "identify: no queue" in text


def test_events_per_second_come_from_session_sequences_and_counts_from_observed_events() -> None:
    shards = {0: _active(0, 10.0, sequence=100), 1: FakeShard(ShardStatus.IDENTIFYING)}
    source = HandSource(shards)
    tracker = StatusTracker(source, now=10.0)  # what came before is not counted
    first = tracker.snapshot(11.0)
    assert first.events_total == 0 and first.events_per_second == 0
    assert first.reconnects is None and first.resumes is None  # nothing observed: unknown, shown as "-"
    assert "reconnects -  resumes -" in render_live(first, width=200)[3]

    shards[0].session = FakeSession("s0", 400)  # +300 dispatches
    shards[1] = _active(1, 12.0, sequence=50)  # a new session: 50 dispatches since its READY
    tracker.observing = True
    changes: list[str] = []
    tracker.on_change = lambda: changes.append("redraw")
    for event in (FakeEvent("READY", shard_id=0), FakeEvent("READY", shard_id=1), FakeEvent("MESSAGE_CREATE"),
                  FakeEvent("GATEWAY_CLOSE", op=-1), FakeEvent("GATEWAY_HELLO", op=10), FakeEvent("RESUMED"),
                  FakeEvent("GATEWAY_CLOSE", op=-1, shard_id=1), FakeEvent("READY", shard_id=1)):
        tracker.observe(event)
    assert changes == ["redraw"] * 4  # the READYs and the RESUMED
    second = tracker.snapshot(13.0)
    assert second.events_total == 350 and second.events_per_second == pytest.approx(175.0)
    assert second.new_sessions == 1  # from the session ids read (shard 1's new one)
    assert second.reconnects == 2 and second.resumes == 1  # shard 0 resumed; shard 1 identified again

    shards[0].session = FakeSession("s0-new", 7)  # re-identified: the new session counts from 0
    third = tracker.snapshot(14.0)
    assert third.events_total == 357 and third.new_sessions == 2


def test_spent_budget_shows_the_reset_time_and_plain_line_is_printable() -> None:
    scheduler = IdentifyScheduler(2, delay=5.0)
    scheduler.set_session_start_limit(1, 1000, 7200.0, now=0.0)
    for shard_id in range(4):
        scheduler.request(shard_id)
    scheduler.poll(0.0)  # one grant spends the budget; 3 wait until the reset
    source = HandSource({n: FakeShard() for n in range(4)}, FakeQueue(scheduler))
    wall = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC
    snapshot = StatusTracker(source, now=0.0).snapshot(600.0, wall_time=wall)
    assert snapshot.identify is not None and snapshot.identify.remaining == 0
    line = render_line(snapshot)
    assert "session starts: 0" in line
    if hasattr(scheduler, "exhausted_until"):  # the group's scheduler tells when the spent budget resets
        assert "resets in 1h50m (01:50:00 UTC)" in line
    assert line.startswith("status: 0/4 READY (DISCONNECTED 4)")
    assert all(" " <= ch <= "~" for ch in line)


class _GroupBeforeStart:
    """What a ShardGroup looks like before start(): no count yet, no shards, the queue it was given (any kind)."""

    def __init__(self, queue: Any) -> None:
        self.shards: dict[int, FakeShard] = {}
        self.identify_queue = queue

    @property
    def shard_count(self) -> int:
        raise RuntimeError("the shard count is known once the group has started")


def test_group_source_before_start_and_with_a_queue_it_cannot_read() -> None:
    class RedisLikeQueue:
        async def wait_turn(self, shard_id: int) -> None: ...

    source = GroupSource(_GroupBeforeStart(RedisLikeQueue()))
    snapshot = StatusTracker(source, now=0.0).snapshot(1.0)
    assert snapshot.shard_count == 0 and snapshot.identify is None
    assert render_live(snapshot)[0].startswith("gateway  0/0 shards READY")
    group = _GroupBeforeStart(IdentifyQueue(4))
    group.shards[0] = FakeShard()
    snapshot = StatusTracker(GroupSource(group), now=0.0).snapshot(1.0)
    assert snapshot.shard_count == 1 and snapshot.identify is not None and snapshot.identify.max_concurrency == 4


# ----------------------------------------------------------------------------------------------------------------
# real shards against the FakeGateway
# ----------------------------------------------------------------------------------------------------------------


def test_tracker_on_real_shards_counts_dispatches_reconnects_and_resumes() -> None:
    async def body() -> None:
        async with FakeGateway(token="t") as gw:
            queue = IdentifyQueue(1, delay=0.05)
            shards = [Shard(ShardId(n, 3), "t", Intents.GUILDS, gateway_url=gw.url, identify_queue=queue)
                      for n in range(3)]
            loop = asyncio.get_running_loop()
            tracker = StatusTracker(ShardListSource(shards, queue), loop.time())
            tracker.observing = True
            consumed: list[str] = []

            async def consume(shard: Shard) -> None:
                async for event in shard.events():
                    tracker.observe(event)
                    consumed.append(event.name)

            readers = [asyncio.ensure_future(consume(shard)) for shard in shards]
            try:
                for shard in shards:
                    shard.start()
                await until(lambda: all(s.status is ShardStatus.ACTIVE for s in shards), what="all ACTIVE")
                for index in range(20):
                    await gw.dispatch("MESSAGE_CREATE", {"id": str(index)}, session=shards[index % 3].session.id)
                await gw.drop(connection=gw.connections[0])  # shard 0's connection: it resumes
                await until(lambda: consumed.count("RESUMED") == 1, what="RESUMED")
                await until(lambda: consumed.count("MESSAGE_CREATE") == 20, what="20 messages")
                snapshot = tracker.snapshot(loop.time())
                assert snapshot.ready == 3 and snapshot.new_sessions == 3
                assert snapshot.events_total == 3 + 20 + 1  # 3 READYs, 20 messages, RESUMED (a dispatch with its own s)
                assert snapshot.reconnects == 1 and snapshot.resumes == 1
                text = "\n".join(render_live(snapshot, width=200))
                assert "3/3 shards READY" in text and "reconnects 1  resumes 1" in text
                assert "identify: none waiting" in text
            finally:
                for reader in readers:
                    reader.cancel()
                for shard in shards:
                    await shard.close()

    run(body)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_driver_redraws_in_place_on_a_terminal_and_writes_plain_lines_elsewhere() -> None:
    async def body() -> None:
        async with FakeGateway(token="t") as gw:
            queue = IdentifyQueue(1, delay=0.3)
            shards = [Shard(ShardId(n, 2), "t", Intents.GUILDS, gateway_url=gw.url, identify_queue=queue)
                      for n in range(2)]
            source = ShardListSource(shards, queue)
            terminal, plain = _Terminal(), io.StringIO()
            drawers = [asyncio.ensure_future(run_status(source, terminal, interval=0.05, live=True)),
                       asyncio.ensure_future(run_status(source, plain, interval=0.05, plain_interval=0.2))]
            try:
                await asyncio.sleep(0.1)  # drawn before any shard starts
                for shard in shards:
                    shard.start()
                await until(lambda: all(s.status is ShardStatus.ACTIVE for s in shards), what="all ACTIVE")
                await asyncio.sleep(0.3)
            finally:
                for drawer in drawers:
                    drawer.cancel()
                await asyncio.gather(*drawers, return_exceptions=True)
                for shard in shards:
                    await shard.close()
            screen = terminal.getvalue()
            assert screen.count("\x1b[5F") >= 2  # each redraw goes back up over the 5 lines it drew
            assert "0/2 shards READY" in screen and "2/2 shards READY" in screen
            assert "identify: 1 waiting" in screen  # shard 1 waited 0.3 s for its slot
            lines = plain.getvalue().splitlines()
            assert len(lines) >= 2
            assert not any(CONTROL.search(line) for line in lines)
            assert all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ status: \d/2 READY", line) for line in lines)
            assert "2/2 READY" in lines[-1]  # the last line is drawn on the way out

    run(body)


def test_status_view_hands_out_observe_only_when_the_filter_lets_ready_and_resumed_through() -> None:
    async def body() -> None:
        source = HandSource({0: _active(0, 20.0)})
        filtered, everything = io.StringIO(), io.StringIO()
        async with status_view(source, event_types=EventTypeFlags.MESSAGE_CREATE, stream=filtered) as observe:
            assert observe is None
        async with status_view(source, event_types=EventTypeFlags.all(), stream=everything) as observe:
            assert observe is not None
            observe(FakeEvent("RESUMED"))
        assert "reconnects -  resumes -" in filtered.getvalue()  # unknown, not a false 0
        assert "reconnects 1  resumes 1" in everything.getvalue().splitlines()[-1]

    run(body)


# ----------------------------------------------------------------------------------------------------------------
# the CLI as a person sees it: a real terminal (tmux) and a pipe
# ----------------------------------------------------------------------------------------------------------------

CLI = [sys.executable, "-W", "error", "-m", "gateway", "--demo", "--shards", "4", "--identify-delay", "1"]


def _env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key != "DISCORD_TOKEN"}


def _tmux() -> str:
    path = shutil.which("tmux")
    if path is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("tmux is required under CI=true (apt-get install tmux)")
        pytest.skip("tmux is not installed: the terminal test did NOT run (apt-get install tmux)")
    return path


def test_cli_in_a_real_terminal_shows_startup_then_the_final_state(tmp_path: Path) -> None:
    tmux = _tmux()
    socket = f"gateway-status-{os.getpid()}"
    events = tmp_path / "events.jsonl"
    done = tmp_path / "exit-code"
    command = (f"env -u DISCORD_TOKEN {shlex.join(CLI)} > {shlex.quote(str(events))}; "
               f"echo $? > {shlex.quote(str(done))}; sleep 600")

    def tmux_run(*args: str) -> str:
        return subprocess.run([tmux, "-L", socket, *args], check=True, capture_output=True, text=True,
                              timeout=20).stdout

    tmux_run("new-session", "-d", "-s", "status", "-x", "110", "-y", "24", "-c", str(tmp_path), command)
    screens: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while not done.exists() and time.monotonic() < deadline:
            screens.append(tmux_run("capture-pane", "-p", "-t", "status"))
            time.sleep(0.1)
        assert done.exists(), "the CLI did not exit within 60 s:\n" + screens[-1]
        final = tmux_run("capture-pane", "-p", "-t", "status")
    finally:
        subprocess.run([tmux, "-L", socket, "kill-server"], capture_output=True, timeout=20)

    assert done.read_text().strip() == "0", final
    # during startup: shards READY one per identify slot (one bucket, 1 s apart), the others waiting for it
    startup = [screen for screen in screens if re.search(r"gateway  [123]/4 shards READY", screen)]
    assert startup, "no startup frame was captured:\n" + "\n---\n".join(screens[-3:])
    assert any(re.search(r"identify: [123] waiting \(bucket 0: [1-3](-3)?\), next slot in \d\.\ds", screen)
               for screen in startup), startup[-1]
    assert any("#0 ACTIVE" in screen and "IDENTIFYING" in screen for screen in startup)
    assert any("session starts: 99" in screen and "/1000 left" in screen for screen in startup)
    assert any("gateway  4/4 shards READY  (ACTIVE 4)" in screen for screen in screens + [final])
    # after: the view was redrawn in place (one block, not one per frame) and its last frame is the closed group
    assert final.count("shards READY") == 1, final
    assert "0/4 shards READY  (DISCONNECTED 4)" in final and "closed" in final
    assert "sessions 4  reconnects 1  resumes 1" in final  # the demo drops one shard's connection: it resumes
    assert "\x1b" not in final
    lines = events.read_text().splitlines()  # stdout went to the file: only JSON event lines
    assert lines and all(json.loads(line)["t"] for line in lines)
    assert sum(json.loads(line)["t"] == "READY" for line in lines) == 4


def test_cli_through_a_pipe_writes_plain_status_lines_and_stdout_only_events() -> None:
    done = subprocess.run(CLI[:-1] + ["0.3"], capture_output=True, text=True, timeout=60, env=_env())
    assert done.returncode == 0, done.stderr
    status = [line for line in done.stderr.splitlines() if " status: " in line]
    assert len(status) >= 2, done.stderr
    assert not any(CONTROL.search(line) or "\x1b" in line for line in done.stderr.splitlines())
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ status: 0/4 READY", status[0])
    assert "closed" in status[-1] and "reconnects 1  resumes 1" in status[-1]
    assert "session starts: 996/1000 left" in status[-1]
    events = done.stdout.splitlines()
    assert events and all(json.loads(line)["t"] for line in events)  # stdout: JSON event lines, nothing else
    assert not any("status:" in line for line in events)
