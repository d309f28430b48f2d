"""A brief fault soak (``bench/soak.py``) for each twin: both compressions at once, every fault kind in turn, over
real loopback sockets against FakeGateway through the soak's TCP proxy. It must deliver every dispatch exactly once
and in order, drain, and give back every fd and task. RSS is not judged in a run this short (see bench/soak.py)."""

from __future__ import annotations

import asyncio

from bench.soak import FAULTS, soak

from conftest import Impl


def test_brief_soak(impl: Impl) -> None:
    impl.load("inflate")  # a missing compiled twin fails here, like every speedups test
    name = "compiled" if impl.name == "speedups" else "pure"
    report = asyncio.run(soak(0.25, [name], ["zlib-stream", "zstd-stream"], seed=3, max_payload=300_000,
                              fault_every=0.2, cycle=True, heartbeat_ms=1000))
    assert report.ok, report.render()
    assert "rss_mib" not in report.growth  # shorter than the warm-up: not judged
    for leg in report.legs:
        assert leg.dispatched > 100 and leg.delivered == leg.dispatched and not leg.order_errors
        survived = {kind for kind in FAULTS if leg.faults[kind] > 0}
        assert len(survived) >= 8, (leg.name, dict(leg.faults))
        assert leg.connections > 5 and leg.resumes > 3
