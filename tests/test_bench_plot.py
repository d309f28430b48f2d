"""``python -m bench --plot``: a chart drawn from a small results file, as SVG (text kept as text, so the labels can
be read back) and as PNG. matplotlib is the optional ``bench`` extra: without it these tests skip with the reason,
except under CI=true, where a missing matplotlib is a failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

try:
    import matplotlib  # noqa: F401
except ModuleNotFoundError:
    if os.environ.get("CI", "").lower() == "true":
        raise RuntimeError("matplotlib is required under CI=true (pip install -e '.[bench]')") from None
    pytest.skip("matplotlib is not installed: the chart tests did NOT run (pip install -e '.[bench]')",
                allow_module_level=True)

from bench import plot  # noqa: E402


def _row(group: str, name: str, median: float, low: float, high: float, unit: str = "events/s",
         **tags: Any) -> dict[str, Any]:
    return {"group": group, "name": name, "unit": unit, "median": median, "low": low, "high": high, "ok": True,
            "note": "", "ratio": None, **tags}


def _results() -> dict[str, Any]:
    rows = []
    for compression, scale in (("zlib-stream", 1.0), ("zstd-stream", 1.4)):
        group = f"steady {compression}"
        tags = {"set": "steady", "compression": compression}
        rows += [
            _row(group, f"naive: {compression} + json", 100_000 * scale, 95_000 * scale, 104_000 * scale,
                 role="naive", **tags),
            _row(group, "floor: fast + orjson", 230_000 * scale, 220_000 * scale, 240_000 * scale, role="floor",
                 **tags),
            _row(group, "inflate only: fast", 470_000 * scale, 460_000 * scale, 480_000 * scale, role="inflate",
                 **tags),
            _row(group, "gateway compiled: route", 250_000 * scale, 240_000 * scale, 262_000 * scale,
                 twin="compiled", workload="route", **tags),
            _row(group, "gateway pure: full", 75_000 * scale, 70_000 * scale, 80_000 * scale, twin="pure",
                 workload="full", **tags),
            _row(group, "hikari 2.7.0 shard", 150_000 * scale, 140_000 * scale, 155_000 * scale, peer="hikari",
                 level="shard", **tags),
            _row(group, "discord.py 2.7.1 shard", 145_000 * scale, 139_000 * scale, 151_000 * scale,
                 peer="discord.py", level="shard", **tags),
        ]
    rows.append(_row("startup zlib-stream", "gateway compiled: full", 67.0, 60.0, 70.0, unit="MB/s",
                     set="startup", compression="zlib-stream", twin="compiled", workload="full"))
    rows.append({**_row("startup zlib-stream", "hikari 2.7.0 shard", 0.0, 0.0, 0.0, unit="MB/s", set="startup",
                        compression="zlib-stream", peer="hikari"), "skipped": True})
    rows.append(_row("live e2e", "Shard compiled twins zstd-stream", 342_305, 300_000, 360_000))
    rows.append(_row("live e2e", "hikari GatewayShardImpl zstd-stream (shard level, consumer stubbed)", 180_132,
                     170_000, 190_000))
    rows.append(_row("live memory", "RSS per idle shard, zlib-stream", 37.7, 37.7, 37.7, unit="KiB/shard"))
    rows.append(_row("live memory", "RSS per idle shard, zstd-stream", 59.5, 59.5, 59.5, unit="KiB/shard"))
    rows.append({**_row("live memory", "RSS per shard after one 1024 KiB GUILD_CREATE, zlib-stream", 58.9, 58.9, 58.9,
                        unit="KiB/shard"), "ok": False})
    machine = {"date": "2026-12-03 12:00 UTC", "cpu": "Test CPU", "cores": 2, "python": "CPython 3.x"}
    return {"machine": machine, "conditions": "scale tiny, 3 round(s)", "rows": rows, "targets": []}


@pytest.fixture()
def results_file(tmp_path: Path) -> Path:
    path = tmp_path / "results.json"
    path.write_text(json.dumps(_results()))
    return path


def _svg_texts(path: Path) -> list[str]:
    root = ElementTree.parse(path).getroot()  # raises on a malformed file
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return plot.series_labels(path.read_text())


def test_svg_from_json_has_every_series_with_its_spread(results_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "chart.svg"
    drawn = plot.plot_results(plot.load_results(results_file), out)
    texts = _svg_texts(out)
    for label in ("naive: zlib-stream + json", "floor: fast + orjson", "inflate only: fast",
                  "gateway compiled: route", "gateway pure: full", "hikari 2.7.0 shard", "discord.py 2.7.1 shard",
                  "gateway Shard compiled zstd-stream", "hikari GatewayShardImpl zstd-stream",
                  "idle, zlib-stream", "idle, zstd-stream", "hikari 2.7.0 shard (skipped)",
                  "after one 1024 KiB GUILD_CREATE, zlib-stream (check FAILED, not drawn)"):
        assert label in texts, label
        assert label in drawn
    for title in ("steady mix, zlib-stream", "steady mix, zstd-stream", "end to end over loopback TCP (live)",
                  "memory per shard (live, RSS)"):
        assert title in texts
    assert "250,000" in texts and "350,000" in texts  # medians printed at the bars (zstd route: 1.4 x 250,000)
    assert any("2026-12-03 12:00 UTC" in t and "Test CPU" in t for t in texts)
    # one whisker per drawn bar: matplotlib groups each errorbar's line collection under an id "LineCollection_N"
    bars = [r for r in _results()["rows"] if r["median"] and not r.get("skipped") and r["ok"]]
    assert "58.9" not in texts  # the failed row's number is not printed
    assert out.read_text().count('id="LineCollection_') == len(bars)


def test_png_through_the_command_line(results_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "chart.png"
    done = subprocess.run([sys.executable, "-m", "bench", "--plot", str(out), "--from-json", str(results_file)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 1000 and height > 600


def test_bad_input_is_refused_clearly(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"rows": [{"name": "x"}]}))
    with pytest.raises(ValueError, match="row 0 lacks group/name/median"):
        plot.load_results(bad)
    with pytest.raises(ValueError, match="must end in .svg or .png"):
        plot.plot_results(_results(), tmp_path / "chart.pdf")
    done = subprocess.run([sys.executable, "-m", "bench", "--from-json", str(bad)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "--from-json needs --plot" in done.stderr
