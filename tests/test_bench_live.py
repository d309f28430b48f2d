"""bench/live.py end-to-end rows, shrunk: a tiny recorded stream over loopback into a real Shard (correctness only)."""

from __future__ import annotations

import asyncio
import json

import pytest

pytest.importorskip("zstandard")

from bench import corpus, live  # noqa: E402


def _e2e(compression: str, workload: str, payloads: list[bytes], expected: int) -> dict:
    stream = live.BlastStream([live.BLAST_HELLO, live.READY, *payloads], compression)

    async def main() -> dict:
        server = await live.start_blast_server({("/steady", compression): stream})
        port = server.sockets[0].getsockname()[1]
        try:
            twin = "compiled" if live._twin_available("compiled") else "pure"
            return await asyncio.wait_for(
                live.e2e_ours(f"ws://127.0.0.1:{port}/steady", compression, twin, expected, workload), 8)
        finally:
            server.close()

    return asyncio.run(main())


@pytest.mark.parametrize("compression", ["zlib-stream", "zstd-stream"])
def test_e2e_every_event_arrives_once_in_order(compression: str) -> None:
    payloads = corpus.generate_steady(count=400, start_seq=2, guilds=4, big_guild_members=[50])
    expected_names = ["READY"] + [n for n in map(live._dispatch_name, payloads) if n is not None]
    out = _e2e(compression, "route", payloads, len(expected_names))
    assert len(out["names"]) == len(expected_names)
    assert out["names"] == expected_names
    assert out["seqs"] == sorted(set(out["seqs"]))  # no duplicate, never backwards
    assert out["payload_errors"] == 0


@pytest.mark.parametrize("workload", live.WORKLOADS)
def test_every_workload_runs_end_to_end(workload: str) -> None:
    payloads = corpus.generate_steady(count=300, start_seq=2, guilds=4, big_guild_members=[50])
    names = ["READY"] + [n for n in map(live._dispatch_name, payloads) if n is not None]
    if workload == "filtered":
        names = names[:1] + [n for n in names if n in live.FILTERED_NAMES]
    out = _e2e("zstd-stream", workload, payloads, len(names))
    assert out["names"] == names and out["payload_errors"] == 0


def test_consumers_do_the_same_work_on_our_events_and_on_hikaris_dicts() -> None:
    from gateway import Event

    payloads = corpus.generate_steady(count=300, start_seq=2, guilds=4, big_guild_members=[50])
    for workload in live.WORKLOADS:
        ours, theirs = live._ours_consumer(workload), live._hikari_consumer(workload)
        for payload in payloads:
            if live._dispatch_name(payload) is None:
                continue
            event, document = Event.from_payload(payload), json.loads(payload)
            if workload == "filtered" and event.name not in live.FILTERED_NAMES:
                continue  # our shard never delivers these
            assert ours(event) == theirs(event.name, document["d"]), (workload, event.name)


def test_kinds_pair_every_workload_with_a_hikari_reference() -> None:
    kinds = live.e2e_kinds(["compiled", "pure"], True)
    for kind in kinds:
        who, workload, compression = live._split_kind(kind)
        if who != "hikari":
            assert f"hikari/{live._hikari_reference(workload)}/{compression}" in kinds
    assert "pure/route/zstd-stream" in kinds and "pure/full/zstd-stream" not in kinds
