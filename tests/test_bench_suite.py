"""The benchmark suite (``python -m bench``) on a tiny generated corpus: every row passes its correctness check and
the report renders. No timing is asserted."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("zstandard")

from bench import corpus, report, suite  # noqa: E402


@pytest.fixture(scope="module")
def streams() -> list[suite.Stream]:
    steady = corpus.generate_steady(count=240, guilds=6, big_guild_members=[60])
    startup = corpus.generate_startup(guilds=4, big_guild_members=[80])
    # zlib messages split in parts every 7th payload: the buffering paths of every row run too
    return (suite.streams_from_payloads("steady", steady, zlib_split_every=7)
            + suite.streams_from_payloads("startup", startup))


def _rows(cases: list[suite.Case]) -> list[dict]:
    return suite.run_suite(cases, rounds=1)


def test_rows_of_both_twins_are_correct(streams: list[suite.Stream]) -> None:
    cases = suite.build_cases(streams, twins=("compiled", "pure"), peers=False)
    rows = _rows(cases)
    names = {(r["group"], r["name"]) for r in rows}
    for group in ("steady zlib-stream", "steady zstd-stream"):
        for workload in suite.WORKLOADS:
            assert (group, f"gateway pure: {workload}") in names
            assert (group, f"gateway compiled: {workload}") in names
    for row in rows:
        assert row["ok"], (row["group"], row["name"], row["note"])
        if not row.get("skipped"):
            assert row["median"] > 0
    # the compiled twins are built in the dev venv and the wheel legs; the pure-wheel leg skips their rows
    assert any(r["name"].startswith("gateway pure") and not r.get("skipped") for r in rows)
    naive = [r for r in rows if r.get("role") == "naive"]
    assert len(naive) == 4 and all(r["ratio"] == pytest.approx(1.0) for r in naive)

    machine = suite.machine_info()
    targets = suite.check_targets(rows)
    text = report.render(machine, rows, targets, "test")
    assert "| steady zstd-stream | gateway pure: full |" in text
    assert "Targets" in text and "route >= inflate-only / 1.15 (zlib-stream)" in text
    data = json.loads(report.to_json(machine, rows, targets, "test"))
    for row in data["rows"]:
        assert {"group", "name", "unit", "median", "low", "high", "ok", "note", "ratio"} <= set(row)


def test_a_wrong_row_is_reported(streams: list[suite.Stream]) -> None:
    """A row whose output differs from the corpus fails its check (the suite does not print fast wrong rows as ok)."""
    stream = streams[1]  # steady zstd-stream
    broken = suite.Stream(stream.set_name, stream.compression, stream.frames[:-3], stream.payloads, stream.names,
                          stream.ops, stream.unit)
    cases = suite.build_cases([broken], twins=("pure",), peers=False, only="gateway pure: route")
    rows = _rows(cases)
    route = next(r for r in rows if r["name"] == "gateway pure: route")
    assert not route["ok"] and "events" in route["note"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_peer_rows_are_correct_or_skipped(streams: list[suite.Stream]) -> None:
    steady = [s for s in streams if s.set_name == "steady"]
    cases = [c for c in suite.build_cases(steady, twins=(), peers=True) if c.kind == "peer"]
    rows = _rows(cases)
    assert len(rows) == 8  # hikari and discord.py, decode and shard level, zlib and zstd
    for row in rows:
        assert row["ok"], (row["group"], row["name"], row["note"])
        assert row.get("skipped") or row["median"] > 0


def test_live_rows_join_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """bench/live.py rows (another module's) render in the same table; a failing live.run becomes an ok=False row."""
    import sys
    import types

    import bench.__main__ as bench_main

    fake = types.ModuleType("bench.live")
    fake.run = lambda quick: [{"group": "live", "name": "memory per shard", "unit": "KiB/shard", "median": 41.5,
                               "low": 40.0, "high": 43.0, "ok": True, "note": "quick" if quick else ""}]
    monkeypatch.setitem(sys.modules, "bench.live", fake)
    rows = bench_main._live_rows(True)
    assert rows[0]["ratio"] is None
    assert "| live | memory per shard | KiB/shard | 41.50 | 40.00 - 43.00 |" in report.render_table(rows)

    def broken(quick: bool) -> list[dict]:
        raise RuntimeError("no loopback")

    fake.run = broken
    rows = bench_main._live_rows(True)
    assert len(rows) == 1 and rows[0]["ok"] is False and "no loopback" in rows[0]["note"]
