"""``python -m bench``: the receive-path throughput suite (see ``bench/README.md``).

Prints the machine, one markdown table (events/s or MB/s, median and min-max over interleaved rounds, ratio to the
naive baseline, correctness of every row) and the issue's targets as a checklist. ``--quick`` is the CI smoke run
(small corpus, one round); it asserts nothing about timings. Exit status 1 when a row failed its correctness check.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from . import report, suite


def _live_rows(quick: bool) -> list[dict[str, Any]]:
    """Rows of ``bench/live.py`` (end-to-end over TCP, memory, loop stall, many shards) when it exists."""
    try:
        live = importlib.import_module("bench.live")
    except ModuleNotFoundError as exc:
        if exc.name == "bench.live":
            return []  # not written (yet)
        live, error = None, exc
    except Exception as exc:  # noqa: BLE001 - the table must still print
        live, error = None, exc
    try:
        if live is None:
            raise error
        run = getattr(live, "run", None)
        if run is None:
            return []
        rows = list(run(quick))
    except Exception as exc:  # noqa: BLE001 - the table must still print
        return [{"group": "live", "name": "bench.live.run", "unit": "", "median": 0.0, "low": 0.0, "high": 0.0,
                 "ok": False, "note": f"raised {type(exc).__name__}: {exc}", "ratio": None}]
    for row in rows:
        row.setdefault("ratio", None)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small corpus, 1 round (CI smoke run)")
    parser.add_argument("--scale", choices=sorted(suite.corpus_mod.SCALES), help="corpus scale (default full; "
                        "small with --quick)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 5; 1 with --quick)")
    parser.add_argument("--only", metavar="SUBSTRING", help="rows whose 'group / name' contains SUBSTRING "
                        "(the naive row of each group is kept)")
    parser.add_argument("--sets", default="steady,startup", help="corpus sets, comma-separated (steady,startup)")
    parser.add_argument("--twins", default="compiled,pure", help="twins of this package to run (compiled,pure)")
    parser.add_argument("--no-peers", action="store_true", help="skip hikari and discord.py")
    parser.add_argument("--no-live", action="store_true", help="skip bench/live.py")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    parser.add_argument("--plot", metavar="FILE", help="also draw the results as a chart (FILE.svg or FILE.png; "
                        "needs matplotlib: the bench extra)")
    parser.add_argument("--from-json", metavar="RESULTS", help="with --plot: draw a recorded --json file instead of "
                        "running the suite")
    parser.add_argument("--profile", action="store_true", help="instead of timing, run the selected rows once "
                        "under cProfile and print where the time goes (use with --only)")
    parser.add_argument("--breakdown", action="store_true", help="instead of the table, build the package's "
                        "receive path up one stage at a time on the steady sets and print µs per message")
    args = parser.parse_args(argv)
    if args.from_json and not args.plot:
        parser.error("--from-json needs --plot FILE")
    if args.plot:
        from . import plot  # noqa: PLC0415 - matplotlib only when a chart is asked for

        if not args.plot.lower().endswith(plot.SUFFIXES):
            parser.error(f"--plot {args.plot}: the file name must end in .svg or .png")
        try:
            plot.require_matplotlib()  # fail before a long run, not after it
        except plot.MatplotlibMissing as exc:
            parser.error(str(exc))
        if args.from_json:
            try:
                results = plot.load_results(args.from_json)
            except (OSError, ValueError) as exc:
                parser.error(f"--from-json: {exc}")
            plot.plot_results(results, args.plot)
            print(f"wrote {args.plot} from {args.from_json}", file=sys.stderr)
            return 0

    scale = args.scale or ("small" if args.quick else "full")
    rounds = args.rounds or (1 if args.quick else 5)
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    twins = [t.strip() for t in args.twins.split(",") if t.strip()]
    started = time.perf_counter()

    def progress(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr, flush=True)

    machine = suite.machine_info()
    streams = suite.load_streams(scale, sets)
    progress(f"corpus {scale}: " + ", ".join(f"{s.group} {len(s.frames)} msgs" for s in streams))
    cases = suite.build_cases(streams, twins=twins, peers=not args.no_peers, only=args.only)
    if args.breakdown:
        print("| stream | stage | µs/msg median | min - max |\n|---|---|---:|---:|")
        for stream in streams:
            if stream.set_name != "steady":
                continue
            for kind in twins:
                for stage, median, low, high in suite.breakdown(stream, kind, rounds):
                    print(f"| {stream.group} | {stage} | {median:.2f} | {low:.2f} - {high:.2f} |")
        return 0
    if args.profile:
        print(suite.profile_cases([c for c in cases if c.tags.get("role") != "naive" or args.only is None]))
        return 0
    rows = suite.run_suite(cases, rounds, progress=progress)
    if not args.no_live:
        live_rows = _live_rows(args.quick)
        if live_rows:
            progress(f"bench.live: {len(live_rows)} rows")
        rows.extend(live_rows)
    targets = suite.check_targets(rows)
    conditions = (f"scale {scale}, {rounds} round(s) interleaved, sets {','.join(sets)}, twins {','.join(twins)}, "
                  f"{time.perf_counter() - started:.0f} s wall")
    print(report.render(machine, rows, targets, conditions))
    if args.json:
        Path(args.json).write_text(report.to_json(machine, rows, targets, conditions))
    if args.plot:
        from . import plot  # noqa: PLC0415

        plot.plot_results(json.loads(report.to_json(machine, rows, targets, conditions)), args.plot)
        progress(f"wrote {args.plot}")
    return 0 if all(row.get("ok") for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
