"""``Event``: one gateway message as the shard yields it (name, op, seq, raw payload, and ``data`` decoded on demand).

``data`` is decoded lazily, on first access, from the raw text of ``d`` (``raw[d_start:d_end]``, found by the
envelope scan), and then cached. Measured on this machine (2026-11-28, 939-byte MESSAGE_CREATE, median of 7 runs of
20k, spread within +-3 %):

==========================================  =========
orjson.loads(d slice)                        1.61 us
orjson.loads(whole payload)                  1.74 us
simdjson.loads(d slice)                      3.29 us
simdjson.loads(whole payload)                3.45 us
json.loads(d slice)                          5.20 us
json.loads(whole payload)                    5.57 us
simdjson.Parser: parse d + read one key      0.48 us  (shared parser)
simdjson.Parser: new parser + one key        0.77 us
simdjson.Parser: parse d + as_dict()         2.93 us
==========================================  =========

Why lazy: a consumer that only looks at ``name``/``seq`` or forwards ``raw`` pays nothing for ``d`` (1.6-5 us
saved per event); one that reads ``data`` pays one attribute check more than an eager dict. Why a plain dict and not
simdjson's lazy proxy: the proxy is tied to its parser, and pysimdjson refuses to reuse a parser while any proxy of
an older document is alive (RuntimeError "Tried to re-use a parser ..."), so events a user keeps would break the
next parse; a parser per event (0.77 us) keeps the whole parser buffer alive for as long as the event (tens of MB for
a large GUILD_CREATE) and hands out proxies that are not dicts. So ``data`` is what ``gateway._json.loads`` returns
(orjson when installed: twice as fast as simdjson.loads on these payloads; re-measured in ``gateway/_json.py``).

The class itself is a twin: ``gateway/_envelope_py.py`` (pure, the reference) and ``gateway/_speedups/_envelope.pyx``
(compiled: built without a Python ``__init__`` frame and not tracked by the garbage collector, which the profile of
the receive path showed at about 10 % of a shard's time when every event was a tracked object). ``Event`` here is
the selected twin's.

The fast path for handlers that need a few fields (issue 11; numbers in README "Fast path for handlers"):

* ``get(key, default=None)``: one top-level key of ``d``, found by the envelope twin's ``find_member`` (the compiled
  structural skip jumps over the other values) and decoded alone; nothing else of ``d`` is built. The compiled twin
  decodes a plain value itself (an ASCII string without escapes, true/false/null, an integer of up to 18 digits:
  what every backend decodes alike); any other value goes to the JSON backend.
* ``decode(type)``: ``d`` decoded by msgspec straight into the caller's ``msgspec.Struct`` (or any type msgspec
  accepts); fields the type does not declare are skipped in C. One ``msgspec.json.Decoder`` per type, cached.
"""

from __future__ import annotations

from ._envelope import Event

__all__ = ["Event"]
