"""``python -m gateway``: the demo mode runs a real Shard against the in-process fake gateway, in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def run_main(*args: str, no_speedups: bool = False, token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key not in ("DISCORD_TOKEN", "GATEWAY_NO_SPEEDUPS")}
    if no_speedups:
        env["GATEWAY_NO_SPEEDUPS"] = "1"
    if token is not None:
        env["DISCORD_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-W", "error", "-m", "gateway", *args],
        capture_output=True, text=True, timeout=60, env=env,
    )


@pytest.mark.parametrize("compression", ["zstd-stream", "zlib-stream", "none"])
@pytest.mark.parametrize("no_speedups", [False, True], ids=["default", "pure"])
def test_demo_prints_every_event_once_in_order_across_two_resumes(compression: str, no_speedups: bool) -> None:
    result = run_main("--compression", compression, no_speedups=no_speedups)  # no token: demo mode
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    names = [line["t"] for line in lines]
    assert names[:2] == ["GATEWAY_HELLO", "READY"]
    assert names.count("RESUMED") == 2
    assert names.count("GATEWAY_CLOSE") == 3  # the drop, the op 7 reconnect, the final close
    sequences = [line["s"] for line in lines if line["op"] == 0]
    assert sequences == list(range(1, len(sequences) + 1))
    contents = [line["d"]["content"] for line in lines if line["t"] == "MESSAGE_CREATE"]
    assert contents == [f"hello from the fake gateway ({i}/3)" for i in (1, 2, 3)] + ["after two resumes"]
    assert lines[-1] == {"t": "GATEWAY_CLOSE", "op": -1, "s": None, "d": {"code": 1000, "reason": ""}}


def test_events_option_filters_and_max_events_stops() -> None:
    result = run_main("--demo", "--events", "MESSAGE_CREATE", "--max-events", "2", token="not-used-in-demo")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["t"] for line in lines] == ["MESSAGE_CREATE", "MESSAGE_CREATE"]
    assert [line["s"] for line in lines] == [2, 3]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--events", "NOT_AN_EVENT"], "unknown event type 'NOT_AN_EVENT'"),
        (["--intents", "GUILDS,NOPE"], "unknown intent 'NOPE'"),
        (["--shard", "3/2"], "--shard"),
        (["--compression", "brotli"], "invalid choice"),
    ],
)
def test_bad_arguments_exit_2_with_a_specific_message(args: list[str], message: str) -> None:
    result = run_main("--demo", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("no_speedups", [False, True], ids=["default", "pure"])
def test_demo_shards_4_runs_a_group_every_shard_once_in_order(no_speedups: bool) -> None:
    result = run_main("--demo", "--shards", "4", no_speedups=no_speedups)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    by_shard: dict[int, list[dict[str, object]]] = {}
    for line in lines:
        if line["t"] != "GATEWAY_HEARTBEAT_ACK":  # heartbeats every second: how many depends on the machine's speed
            by_shard.setdefault(line["shard"], []).append(line)
    assert sorted(by_shard) == [0, 1, 2, 3]
    for number, events in by_shard.items():
        names = [event["t"] for event in events]
        assert names[:2] == ["GATEWAY_HELLO", "READY"]
        assert events[1]["d"]["shard"] == [number, 4]
        contents = [event["d"]["content"] for event in events if event["t"] == "MESSAGE_CREATE"]
        assert contents == [f"message 1 for shard {number}", f"message 2 for shard {number}"]
        sequences = [event["s"] for event in events if event["op"] == 0]
        assert sequences == sorted(set(sequences))  # per-shard order, no duplicate
        assert names.count("RESUMED") == (1 if number == 3 else 0)  # the demo drops the last shard's connection
        assert events[-1] == {"t": "GATEWAY_CLOSE", "op": -1, "s": None, "shard": number, "d": {"code": 1000, "reason": ""}}


def test_demo_shards_range_runs_only_that_part() -> None:
    result = run_main("--demo", "--shards", "1-2/4", "--events", "MESSAGE_CREATE")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(line["shard"] for line in lines) == [1, 1, 2, 2]
    assert all(line["t"] == "MESSAGE_CREATE" for line in lines)


@pytest.mark.parametrize("value", ["0", "x", "3-1/4", "0-4/4", "2/0", "-1"])
def test_bad_shards_value_exits_2(value: str) -> None:
    result = run_main("--demo", "--shards", value)
    assert result.returncode == 2
    assert "--shards wants auto, N or A-B/N" in result.stderr


def test_help_documents_shards_and_the_gateway_url() -> None:
    result = run_main("--help")
    assert result.returncode == 0
    assert "--shards auto|N|A-B/N" in result.stdout
    assert "--gateway-url URL" in result.stdout and "proxy" in result.stdout
