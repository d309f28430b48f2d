"""Rendering of the suite's rows: the machine header, one markdown table, the targets checklist, JSON."""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["render_machine", "render_table", "render_targets", "render", "to_json"]


def render_machine(machine: dict[str, Any]) -> str:
    versions = ", ".join(f"{name} {version}" for name, version in machine.get("versions", {}).items() if version)
    missing = ", ".join(name for name, version in machine.get("versions", {}).items() if not version)
    zlib_backend = machine.get("zlib_backend", {})
    load = machine.get("loadavg")
    lines = [
        f"- machine: {machine.get('cpu')}, {machine.get('cores')} cores, {machine.get('platform')}"
        + (f", load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} at start" if load else ""),
        f"- python: {machine.get('python')}" + (" (-O)" if machine.get("optimize") else ""),
        f"- libraries: {versions}" + (f" (not installed: {missing})" if missing else ""),
        f"- gateway JSON backend: {machine.get('json_backend')}; zlib backend: "
        + ", ".join(f"{k} {v}" for k, v in zlib_backend.items())
        + f"; speedups loaded by default: {machine.get('speedups')}",
        f"- date: {machine.get('date')}",
    ]
    return "\n".join(lines)


def _num(value: float | None, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if value == 0:
        return "0"
    if unit == "events/s":
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:,.2f}" if abs(value) >= 1 else f"{value:.3g}"


def render_table(rows: list[dict[str, Any]]) -> str:
    header = ("| group | row | unit | median | min - max | µs/event | × naive | ok | note |\n"
              "|---|---|---|---:|---:|---:|---:|:---:|---|")
    lines = [header]
    for row in rows:
        unit = row.get("unit", "")
        if row.get("skipped"):
            lines.append(f"| {row['group']} | {row['name']} | {unit} | skipped | | | | | {row.get('note', '')} |")
            continue
        spread = f"{_num(row.get('low'), unit)} - {_num(row.get('high'), unit)}"
        us = row.get("us_per_event")
        ratio = row.get("ratio")
        ok = "yes" if row.get("ok") else "**NO**"
        note = str(row.get("note", "")).replace("|", "/").replace("\n", " ")
        lines.append(
            f"| {row['group']} | {row['name']} | {unit} | {_num(row.get('median'), unit)} | {spread} | "
            f"{'' if us is None else f'{us:.2f}'} | {'' if ratio is None else f'{ratio:.2f}x'} | {ok} | {note} |"
        )
    return "\n".join(lines)


def render_targets(targets: list[dict[str, Any]]) -> str:
    lines = ["Targets (issue 4, steady mix, same compression; measured here, not asserted):", ""]
    for target in targets:
        if target["met"] is None:
            mark, measured = "[?]", "not measured"
        else:
            mark = "[x]" if target["met"] else "[ ]"
            measured = f"{target['measured']:.2f}x"
        lines.append(f"- {mark} {target['target']}: {measured} ({target['detail']})")
    return "\n".join(lines)


def render(machine: dict[str, Any], rows: list[dict[str, Any]], targets: list[dict[str, Any]],
           conditions: str) -> str:
    parts = ["# gateway receive-path benchmarks", "", render_machine(machine), f"- run: {conditions}", "",
             render_table(rows), "", render_targets(targets), ""]
    return "\n".join(parts)


def to_json(machine: dict[str, Any], rows: list[dict[str, Any]], targets: list[dict[str, Any]],
            conditions: str) -> str:
    return json.dumps({"machine": machine, "conditions": conditions, "rows": rows, "targets": targets}, indent=2,
                      default=str)
