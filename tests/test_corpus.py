"""The corpus generator: determinism, envelope shape, contiguous sequences, golden replay of both compressions."""

from __future__ import annotations

import json
import statistics
import zlib
from pathlib import Path

import pytest

from bench import corpus

zstandard = pytest.importorskip("zstandard")


@pytest.fixture(scope="module")
def small() -> dict[str, list[bytes]]:
    return corpus.generate_scale("small")


def _inflate_zlib(messages: list[bytes]) -> list[bytes]:
    inflater = zlib.decompressobj()
    out, buffered = [], b""
    for message in messages:
        buffered += message
        if buffered.endswith(corpus.ZLIB_SUFFIX):
            out.append(inflater.decompress(buffered))
            buffered = b""
    assert buffered == b""
    return out


def _inflate_zstd(messages: list[bytes]) -> list[bytes]:
    inflater = zstandard.ZstdDecompressor().decompressobj()
    return [inflater.decompress(message) for message in messages]


def test_deterministic_for_a_seed() -> None:
    first = corpus.generate_startup(seed=7, guilds=6, big_guild_members=[300])
    assert first == corpus.generate_startup(seed=7, guilds=6, big_guild_members=[300])
    assert first != corpus.generate_startup(seed=8, guilds=6, big_guild_members=[300])
    steady = corpus.generate_steady(seed=7, count=500, guilds=6, big_guild_members=[300])
    assert steady == corpus.generate_steady(seed=7, count=500, guilds=6, big_guild_members=[300])
    assert corpus.compress_zlib(steady, split_every=3) == corpus.compress_zlib(steady, split_every=3)
    assert corpus.compress_zstd(steady) == corpus.compress_zstd(steady)


def test_envelopes_and_contiguous_sequences(small: dict[str, list[bytes]]) -> None:
    stream = small["startup"] + small["steady"]
    expected_seq = 1
    for payload in stream:
        assert b"\n" not in payload
        envelope = json.loads(payload)
        assert list(envelope) == ["t", "s", "op", "d"]
        assert payload == corpus.dumps(envelope)  # compact, Discord's key order
        if envelope["op"] == 0:
            assert isinstance(envelope["t"], str) and isinstance(envelope["d"], dict)
            assert envelope["s"] == expected_seq
            expected_seq += 1
        else:
            assert envelope == {"t": None, "s": None, "op": 11, "d": None}
    names = [json.loads(p)["t"] for p in small["startup"]]
    assert names[0] == "READY" and set(names[1:]) == {"GUILD_CREATE"}


def test_ready_and_guild_create_shape(small: dict[str, list[bytes]]) -> None:
    ready = json.loads(small["startup"][0])["d"]
    assert ready["v"] == 10 and len(ready["session_id"]) == 32
    assert ready["resume_gateway_url"].startswith("wss://")
    guild_creates = [json.loads(p)["d"] for p in small["startup"][1:]]
    assert [g["id"] for g in guild_creates] == [g["id"] for g in ready["guilds"]]
    assert all(g["unavailable"] is True for g in ready["guilds"])
    biggest = guild_creates[0]
    assert len(biggest["members"]) == corpus.SCALES["small"]["big_guild_members"][0] + 1  # + the bot
    assert biggest["large"] and biggest["member_count"] > len(biggest["members"])
    member = biggest["members"][0]
    assert int(member["user"]["id"]) > 0 and member["joined_at"].endswith("+00:00")
    assert presence_has_client_status(biggest["presences"])
    for guild in guild_creates:
        for channel in guild["channels"]:
            if channel["type"] in (0, 5, 15, 16):
                assert "topic" in channel  # hikari needs it (python-peers.md 4.1)


def presence_has_client_status(presences: list[dict]) -> bool:
    return bool(presences) and all("client_status" in p and "activities" in p for p in presences)


def test_steady_mix_and_sizes(small: dict[str, list[bytes]]) -> None:
    sizes: dict[str, list[int]] = {}
    for payload in small["steady"]:
        envelope = json.loads(payload)
        sizes.setdefault(envelope["t"] or "ACK", []).append(len(payload))
    counts = {name: len(v) for name, v in sizes.items()}
    assert max(counts, key=counts.__getitem__) == "PRESENCE_UPDATE"
    for name in ("MESSAGE_CREATE", "TYPING_START", "GUILD_MEMBER_UPDATE", "MESSAGE_REACTION_ADD", "VOICE_STATE_UPDATE",
                 "INTERACTION_CREATE", "CHANNEL_UPDATE", "THREAD_CREATE", "ACK"):
        assert counts.get(name, 0) > 0, name
    assert 500 <= statistics.median(sizes["MESSAGE_CREATE"]) <= 1500
    assert 150 <= statistics.median(sizes["PRESENCE_UPDATE"]) <= 1000


def test_tricky_payloads_present(small: dict[str, list[bytes]]) -> None:
    steady = small["steady"]
    lookalikes = [p for p in steady if b'\\"t\\":\\"READY\\"' in p]
    assert len(lookalikes) >= 2
    assert all(json.loads(p)["t"] in ("MESSAGE_CREATE", "INTERACTION_CREATE") for p in lookalikes)
    assert any("\u2028".encode() in p for p in steady)
    edge = [json.loads(p) for p in small["edge"]]
    seqs = [e["s"] for e in edge if e["op"] == 0]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))) and seqs[0] < 2**31 - 1 < seqs[-1]


@pytest.mark.parametrize("split_every", [None, 3])
def test_zlib_golden_replay(small: dict[str, list[bytes]], split_every: int | None) -> None:
    payloads = small["startup"] + small["steady"]
    messages = corpus.compress_zlib(payloads, split_every=split_every)
    if split_every:
        assert len(messages) > len(payloads)
        assert sum(1 for m in messages if m.endswith(corpus.ZLIB_SUFFIX)) == len(payloads)
    else:
        assert len(messages) == len(payloads) and all(m.endswith(corpus.ZLIB_SUFFIX) for m in messages)
    assert _inflate_zlib(messages) == payloads


def test_zstd_golden_replay(small: dict[str, list[bytes]]) -> None:
    payloads = small["startup"] + small["steady"]
    messages = corpus.compress_zstd(payloads)
    assert len(messages) == len(payloads)
    assert _inflate_zstd(messages) == payloads


def test_write_load_and_cache(tmp_path: Path) -> None:
    payloads = corpus.generate_steady(count=300, guilds=5, big_guild_members=[200])
    stats = corpus.write_corpus(tmp_path, "x", payloads, zlib_split_every=4)
    loaded = corpus.load_corpus(tmp_path, "x")
    assert loaded.payloads == payloads and stats["payloads"] == 300
    assert _inflate_zlib(loaded.zlib) == payloads and _inflate_zstd(loaded.zstd) == payloads
    (tmp_path / "bad.frames").write_bytes(b"\x10\x00\x00\x00abc")
    with pytest.raises(ValueError):
        corpus.read_frames(tmp_path / "bad.frames")

    target = corpus.ensure_corpus("small", tmp_path)
    manifest = json.loads((target / "manifest.json").read_text())
    steady_file = target / "steady.jsonl"
    mtime = steady_file.stat().st_mtime_ns
    assert corpus.ensure_corpus("small", tmp_path) == target and steady_file.stat().st_mtime_ns == mtime
    (target / "manifest.json").write_text(json.dumps(dict(manifest, key="stale")))
    corpus.ensure_corpus("small", tmp_path)
    assert json.loads((target / "manifest.json").read_text())["key"] == manifest["key"]
    assert steady_file.stat().st_mtime_ns != mtime  # regenerated
    assert corpus.load_corpus(target, "steady").payloads == corpus.generate_scale("small")["steady"]
