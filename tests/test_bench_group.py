"""``bench/group.py``'s merged-stream runners on a tiny generated corpus, both twins: as many events come out as
payloads went in, through a ShardGroup and through lone Shards. No timing is asserted."""

from __future__ import annotations

from types import ModuleType

import pytest

pytest.importorskip("zstandard")

from bench import corpus  # noqa: E402
from bench import group as bench_group  # noqa: E402


@pytest.mark.parametrize("compression", ["zlib-stream", "zstd-stream"])
@pytest.mark.parametrize("lone", [False, True], ids=["group", "lone"])
@pytest.mark.parametrize("burst", [1, 8])
def test_merged_runner_delivers_every_payload_once(twins: dict[str, ModuleType], compression: str, lone: bool,
                                                   burst: int) -> None:
    payloads = corpus.generate_steady(count=200, guilds=4, big_guild_members=[20])
    frames = bench_group._split_frames(payloads, compression, 16)
    assert sum(map(len, frames)) == len(payloads)
    run, loop = bench_group._merged_runner(frames, compression, twins, len(payloads), lone=lone, burst=burst)
    try:
        assert run() == len(payloads)  # run() itself raises when the count differs
    finally:
        loop.close()
