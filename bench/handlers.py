"""What a handler pays per event to read fields: ``event.data`` vs ``event.get`` vs ``event.decode`` (README "Fast path
for handlers"), with hikari's parse of the whole payload (orjson) as the reference.

Events are built once from the corpus (the shard's work is not measured here); each row reads a fresh Event per
payload (``data`` and ``get`` would otherwise hit the cache), over the corpus' MESSAGE_CREATEs and over the whole steady
mix (its dispatches), interleaved rounds, client CPU time. Nothing is asserted.

Command line: ``python -m bench.handlers [--rounds N] [--count N] [--twin compiled|pure]``.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from typing import Any, Callable

import orjson

from bench.corpus import generate_steady
from bench.live import AnyGuildEvent, MessageCreate  # the Structs of the typed end-to-end workload


def _rows(event_type: Any) -> list[tuple[str, Callable[[bytes], Any], Callable[[bytes], Any]]]:
    """(row, on a MESSAGE_CREATE, on any event of the mix)."""
    make = event_type.from_payload
    return [
        ("event.data[...] (the whole d built)", lambda p: make(p).data["channel_id"], lambda p: _data_get(make(p))),
        ("event.get(key)", lambda p: make(p).get("channel_id"), lambda p: make(p).get("guild_id")),
        ("event.decode(Struct) (4 fields / 1 field)", lambda p: make(p).decode(MessageCreate),
         lambda p: make(p).decode(AnyGuildEvent)),
        ("Event alone (the baseline subtracted above)", make, make),
        ("hikari: orjson.loads(whole payload)", orjson.loads, orjson.loads),
    ]


def _data_get(event: Any) -> Any:
    data = event.data
    return data.get("guild_id") if isinstance(data, dict) else None


def _cpu(fn: Callable[[bytes], Any], payloads: list[bytes]) -> float:
    gc.collect()
    started = time.process_time()
    for payload in payloads:
        fn(payload)
    return (time.process_time() - started) / len(payloads) * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.handlers", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--count", type=int, default=6000, help="payloads of the steady mix")
    parser.add_argument("--twin", choices=("compiled", "pure"), default="compiled")
    args = parser.parse_args(argv)
    if args.twin == "pure":
        from gateway._envelope_py import Event as event_type
    else:
        from gateway._speedups._envelope import Event as event_type
    mix = [p for p in generate_steady(count=args.count) if event_type.from_payload(p).op == 0]  # dispatches
    messages = [p for p in mix if b'"t":"MESSAGE_CREATE"' in p[:40]]
    rows = _rows(event_type)
    times: dict[tuple[str, str], list[float]] = {}
    for index in range(args.rounds):
        order = rows[index % len(rows):] + rows[:index % len(rows)]
        for name, on_message, on_mix in order:
            times.setdefault((name, "m"), []).append(_cpu(on_message, messages))
            times.setdefault((name, "x"), []).append(_cpu(on_mix, mix))
    size = statistics.mean(len(p) for p in messages)
    print(f"{args.twin} Event twin; {len(messages)} MESSAGE_CREATEs of {size:,.0f} bytes, {len(mix)}-event steady mix;"
          f" CPU µs per event, median of {args.rounds} rounds [min-max]")
    print("| what the handler reads | MESSAGE_CREATE | steady mix |\n|---|---:|---:|")
    for name, _, _ in rows:
        cells = []
        for part in ("m", "x"):
            values = times[(name, part)]
            cells.append(f"{statistics.median(values):.2f} [{min(values):.2f}-{max(values):.2f}]")
        print(f"| {name} | {cells[0]} | {cells[1]} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
