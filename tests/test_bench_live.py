"""bench/live.py end-to-end row, shrunk: a tiny recorded stream over loopback into a real Shard (correctness only)."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("zstandard")

from bench import corpus, live  # noqa: E402


@pytest.mark.parametrize("compression", ["zlib-stream", "zstd-stream"])
def test_e2e_every_event_arrives_once_in_order(compression: str) -> None:
    payloads = corpus.generate_steady(count=400, start_seq=2, guilds=4, big_guild_members=[50])
    expected_names = ["READY"] + [n for n in map(live._dispatch_name, payloads) if n is not None]
    stream = live.BlastStream([live.BLAST_HELLO, live.READY, *payloads], compression)

    async def main() -> dict:
        server = await live.start_blast_server({("/steady", compression): stream})
        port = server.sockets[0].getsockname()[1]
        try:
            twin = "compiled" if live._twin_available("compiled") else "pure"
            return await asyncio.wait_for(
                live.e2e_ours(f"ws://127.0.0.1:{port}/steady", compression, twin, len(expected_names)), 8)
        finally:
            server.close()

    out = asyncio.run(main())
    assert len(out["names"]) == len(expected_names)
    assert out["names"] == expected_names
    assert out["seqs"] == sorted(set(out["seqs"]))  # no duplicate, never backwards
    assert out["payload_errors"] == 0
