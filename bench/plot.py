"""Charts of one ``python -m bench`` run: ``python -m bench --plot FILE.svg|.png [--from-json RESULTS.json]``.

One figure, drawn from the rows that ``bench/suite.py`` and ``bench/live.py`` produce (the same dicts that
``--json`` writes): for each compression, one panel per corpus set (steady mix in events/s, startup burst in MB/s)
with every row as a horizontal bar at its median and a black whisker over its min-max spread. The project's rows are
blue, the peers (hikari, discord.py) orange, the baselines (naive, floor, inflate-only) grey. A last row of panels
shows the live end-to-end rate over loopback TCP and the memory per shard. Skipped rows and rows that failed their
correctness check ("(check FAILED, not drawn)") get a label and no bar, so a missing bar is never silent.

matplotlib is an optional dependency (the ``bench`` extra); :func:`require_matplotlib` raises a clear error without it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

__all__ = ["MatplotlibMissing", "require_matplotlib", "load_results", "plot_results", "series_labels", "FAMILY_COLOURS"]

FAMILY_COLOURS = {"gateway": "#2b6cb0", "peer": "#dd7a1c", "baseline": "#9a9a9a"}
FAMILY_LABELS = {"gateway": "gateway (this project)", "peer": "peers: hikari, discord.py",
                 "baseline": "baselines: naive, floor, inflate-only"}
COMPRESSIONS = ("zlib-stream", "zstd-stream")
SUFFIXES = (".svg", ".png")


class MatplotlibMissing(RuntimeError):
    """matplotlib is not installed: ``pip install -e '.[bench]'``."""


def require_matplotlib() -> Any:
    """Import matplotlib with the file-only Agg backend, or raise :class:`MatplotlibMissing`."""
    try:
        import matplotlib
    except ModuleNotFoundError as exc:
        raise MatplotlibMissing("--plot needs matplotlib: pip install -e '.[bench]' (or pip install matplotlib)") \
            from exc
    matplotlib.use("Agg")
    return matplotlib


def load_results(path: str | Path) -> dict[str, Any]:
    """A results file written by ``python -m bench --json`` (``{"machine", "conditions", "rows", "targets"}``), or a
    bare list of rows as ``python -m bench.live --json`` writes. Raises ``ValueError`` when it is neither."""
    data = json.loads(Path(path).read_text())
    if isinstance(data, list):
        data = {"machine": {}, "conditions": "", "rows": data, "targets": []}
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise ValueError(f"{path}: not a bench results file (expected a JSON object with a 'rows' list)")
    for index, row in enumerate(data["rows"]):
        if not isinstance(row, dict) or not {"group", "name", "median"} <= row.keys():
            raise ValueError(f"{path}: row {index} lacks group/name/median")
    return data


def _family(row: dict[str, Any]) -> str:
    name = row["name"].lower()
    if row.get("peer") or name.startswith(("hikari", "discord.py")):
        return "peer"
    if row.get("role") in ("naive", "floor", "inflate") or name.startswith(("naive", "floor", "inflate only")):
        return "baseline"
    return "gateway"


def _bar_label(row: dict[str, Any]) -> str:
    label = row["name"]
    if row.get("skipped"):
        return f"{label} (skipped)"
    if not row.get("ok", True):
        return f"{label} (check FAILED, not drawn)"
    return label


def _order_key(row: dict[str, Any]) -> tuple[int, int]:
    """Baselines first (naive, floor, inflate-only), then the project's rows, then the peers: top to bottom."""
    family = {"baseline": 0, "gateway": 1, "peer": 2}[_family(row)]
    name = row["name"]
    within = 0
    if family == 0:
        within = 0 if name.startswith("naive") else 1 if name.startswith("floor") else 2
    elif family == 1:
        within = 0 if "compiled" in name else 1
    return family, within


def _compression_of(row: dict[str, Any]) -> str | None:
    if row.get("compression"):
        return str(row["compression"])
    for compression in COMPRESSIONS:
        if compression in row["name"] or compression in row["group"]:
            return compression
    if "no compression" in row["name"]:
        return "none"
    return None


def _hbar_panel(ax: Any, rows: list[dict[str, Any]], title: str, unit: str, drawn: list[str]) -> None:
    """Horizontal bars at the median with a min-max whisker; the median printed at the end of each bar."""
    rows = [r for r in rows if r.get("median") is not None]
    positions = list(range(len(rows)))[::-1]  # first row at the top
    highest = max([float(r.get("high") or r["median"] or 0) for r in rows
                   if r.get("ok", True) and not r.get("skipped")] + [1.0])
    for y, row in zip(positions, rows):
        median = float(row["median"] or 0)
        family = _family(row)
        colour = FAMILY_COLOURS[family]
        hatch = "//" if "pure" in row["name"] else None
        if median > 0 and not row.get("skipped") and row.get("ok", True):  # a failed row's number means nothing
            ax.barh(y, median, height=0.72, color=colour, alpha=0.55 if hatch else 0.9, hatch=hatch,
                    edgecolor=colour, linewidth=0.6)
            low, high = float(row.get("low", median)), float(row.get("high", median))
            ax.errorbar(median, y, xerr=[[median - low], [high - median]], fmt="none", ecolor="black",
                        elinewidth=0.9, capsize=2.5)
            text = f"{median:,.0f}" if median >= 100 else f"{median:,.1f}"
            ax.text(max(high, median) + highest * 0.01, y, text, va="center", ha="left", fontsize=7.5,
                    color="#222222")
        label = _bar_label(row)
        drawn.append(label)
    ax.set_yticks(positions)
    ax.set_yticklabels([_bar_label(r) for r in rows], fontsize=8)
    for tick, row in zip(ax.get_yticklabels(), rows):
        tick.set_color(FAMILY_COLOURS[_family(row)] if _family(row) != "baseline" else "#555555")
        if _family(row) == "gateway":
            tick.set_fontweight("bold")
    ax.set_xlim(0, highest * 1.18)
    ax.set_title(title, fontsize=10, loc="left")
    ax.set_xlabel(unit, fontsize=8)
    ax.tick_params(axis="x", labelsize=7.5)
    ax.xaxis.set_major_formatter(_thousands())
    ax.grid(axis="x", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _thousands() -> Any:
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda value, _pos: f"{value:,.0f}")


def _live_e2e_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        if row["group"] != "live e2e" or not row.get("median"):
            continue
        copy = dict(row)
        name = row["name"]
        if name.startswith("hikari"):
            copy["peer"] = "hikari"
            copy["name"] = name.split(" (")[0]  # "hikari GatewayShardImpl <workload> <compression>": the workload tells the rows apart
        else:
            copy["name"] = name.replace("Shard ", "gateway Shard ", 1).replace(" twins", "")
        out.append(copy)
    return sorted(out, key=lambda r: (COMPRESSIONS.index(_compression_of(r) or "zlib-stream"), _order_key(r)))


def _memory_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        if row["group"] == "live memory" and row.get("median"):
            copy = dict(row)
            copy["name"] = re.sub(r"^RSS per (idle )?shard,? ?", lambda m: "idle, " if m.group(1) else "",
                                  row["name"])
            copy["name"] = re.sub(r"^RSS per shard after one (\d+) KiB GUILD_CREATE", r"after one \1 KiB GUILD_CREATE",
                                  copy["name"])
            out.append(copy)
    return out


def plot_results(results: dict[str, Any], path: str | Path, *, title: str | None = None) -> list[str]:
    """Draw ``results`` (as :func:`load_results` returns) into ``path`` (.svg or .png); return the bar labels drawn,
    top to bottom per panel. SVG text stays text (searchable, small); no timestamp goes into the file."""
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise ValueError(f"--plot: {path.name}: the file name must end in .svg or .png")
    matplotlib = require_matplotlib()
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    rows = [r for r in results["rows"] if isinstance(r.get("median"), (int, float)) or r.get("skipped")]
    panels: list[tuple[str, str, list[dict[str, Any]]]] = []
    for set_name, unit in (("steady", "events/s"), ("startup", "MB/s")):
        for compression in COMPRESSIONS:
            group = f"{set_name} {compression}"
            selected = sorted((r for r in rows if r["group"] == group), key=_order_key)
            if selected:
                what = "steady mix" if set_name == "steady" else "startup burst (READY + GUILD_CREATEs)"
                panels.append((f"{what}, {compression}", unit, selected))
    live = _live_e2e_rows(rows)
    memory = _memory_rows(rows)
    extra = [p for p in (("end to end over loopback TCP (live)", "events/s", live),
                         ("memory per shard (live, RSS)", "KiB per shard", memory)) if p[2]]
    if not panels and not extra:
        raise ValueError("no plottable rows (expected steady/startup groups or live rows)")

    grid = panels + extra
    columns = 2
    lines = [max(len(grid[i][2]), len(grid[i + 1][2]) if i + 1 < len(grid) else 0)
             for i in range(0, len(grid), columns)]
    heights = [max(2.2, 0.24 * n + 0.9) for n in lines]
    with matplotlib.rc_context({"svg.fonttype": "none", "font.family": "DejaVu Sans", "hatch.linewidth": 0.5}):
        figure, axes = plt.subplots(len(lines), columns, figsize=(15, sum(heights) + 1.4),
                                    gridspec_kw={"height_ratios": heights}, squeeze=False)
        drawn: list[str] = []
        for index, (panel_title, unit, panel_rows) in enumerate(grid):
            _hbar_panel(axes[index // columns][index % columns], panel_rows, panel_title, unit, drawn)
        for index in range(len(grid), len(lines) * columns):
            axes[index // columns][index % columns].set_visible(False)
        machine = results.get("machine") or {}
        heading = title or "gateway: receive-path throughput and memory (median bar, min-max whisker)"
        details = ", ".join(str(x) for x in (
            machine.get("date"), machine.get("cpu") and f"{machine.get('cpu')}, {machine.get('cores')} cores",
            machine.get("python"), results.get("conditions")) if x)
        figure.suptitle(heading, fontsize=13, x=0.01, ha="left", y=0.995)
        if details:
            figure.text(0.01, 1 - 0.42 / (sum(heights) + 1.4), details, fontsize=8, color="#444444", ha="left",
                        va="top")
        legend = [Patch(facecolor=FAMILY_COLOURS[key], label=FAMILY_LABELS[key]) for key in FAMILY_COLOURS]
        legend.append(Patch(facecolor="white", edgecolor="#555555", hatch="//", label="pure-Python twins"))
        figure.legend(handles=legend, loc="upper right", ncol=4, fontsize=8, frameon=False,
                      bbox_to_anchor=(0.995, 1 - 0.05 / (sum(heights) + 1.4)))
        figure.tight_layout(rect=(0, 0, 1, 1 - 0.5 / (sum(heights) + 1.4)))
        path.parent.mkdir(parents=True, exist_ok=True)
        options: dict[str, Any] = {"metadata": {"Date": None}} if path.suffix.lower() == ".svg" else {"dpi": 110}
        figure.savefig(path, **options)
        plt.close(figure)
    return drawn


def series_labels(svg_text: str) -> list[str]:
    """The text elements of an SVG written by :func:`plot_results` (used by the tests and for a quick check)."""
    return [re.sub(r"\s+", " ", t).strip() for t in re.findall(r"<text[^>]*>([^<]*)</text>", svg_text)]
