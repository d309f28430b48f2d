"""Replays of the fuzz targets' inputs (``tests/fuzz``) in the normal test run, without atheris.

- every input of the committed minimised corpora (``tests/fuzz/corpus/<target>/``) and the seeds: each target's
  differential/invariant check must hold (compiled vs pure twin, the inflate contract, the ShardProtocol invariants);
- every crash a fuzzing run found, minimised, in ``tests/fuzz/regressions/<target>/`` (one file per finding; its
  name says what it broke);
- the issue-14 disagreements the targets met until the fixes of branches ``envelope`` and ``inflate`` were merged;
- findings still open (``OPEN-*`` inputs, their fix belongs to another module's owner): xfail.

Each target checks both twins at once, so these tests need the compiled twins (``speedups`` mark).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.speedups

FUZZ = Path(__file__).resolve().parent / "fuzz"
TARGETS = ("framing", "zlib", "zstd", "envelope", "protocol")


def _target(name: str) -> ModuleType:
    return importlib.import_module(f"tests.fuzz.fuzz_{name}")


def _inputs(kind: str) -> list[tuple[str, Path]]:
    return [(target, path) for target in TARGETS for path in sorted((FUZZ / kind / target).glob("*"))
            if path.is_file()]


@pytest.mark.parametrize("target", TARGETS)
def test_committed_corpus_holds(target: str) -> None:
    check = _target(target).check
    files = sorted(path for path in (FUZZ / "corpus" / target).glob("*") if path.is_file())
    assert files, f"the committed corpus of {target} is empty"
    for path in files:
        check(path.read_bytes())


@pytest.mark.parametrize("target", TARGETS)
def test_seeds_hold(target: str) -> None:
    from tests.fuzz.seeds import SEEDS

    check = _target(target).check
    for seed in SEEDS[target]():
        check(seed)


_OPEN_REASON = "open finding of the fuzzers (its fix belongs to the module's owner): see the README, Hardening"


@pytest.mark.parametrize("target, path", [
    pytest.param(target, path, id=path.name, marks=[pytest.mark.xfail(reason=_OPEN_REASON, raises=AssertionError)]
                 if path.name.startswith("OPEN-") else [])
    for target, path in _inputs("regressions")
])
def test_regression(target: str, path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A finding, minimised: strict (no tolerance). ``OPEN-*`` files are findings whose fix is not merged yet."""
    from tests.fuzz import _common

    monkeypatch.setattr(_common, "STRICT", True)
    _target(target).check(path.read_bytes())


def test_zstd_empty_messages_after_a_frame_started(inflate: ModuleType) -> None:
    """Found by the zstd target: an empty websocket message inflates to b"" however many come in a row. The compiled
    twin failed the 16th in a row once a frame had started (libzstd reports "no forward progress" after 16 calls with
    empty input); it no longer calls ZSTD_decompressStream for an empty message."""
    import zstandard

    compressor = zstandard.ZstdCompressor().compressobj()
    first = compressor.compress(b'{"op":11}') + compressor.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
    inflater = inflate.ZstdStreamInflater(1 << 20)
    assert inflater.feed(first) == b'{"op":11}'
    assert [inflater.feed(b"") for _ in range(40)] == [b""] * 40
    last = compressor.compress(b'{"op":1}') + compressor.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
    assert inflater.feed(last) == b'{"op":1}'


# -- issue 14: met by the targets until the fixes of branches envelope and inflate were merged ----------------------

_DEEP_ENVELOPE = bytes(9) + b'{"op":0,"t":"X","s":1,"d":' + b"[" * 1200 + b"]" * 1200 + b"}"
_HUGE_MAX_SIZE = bytes([0xC0, 0]) + (2**63).to_bytes(9, "little")


def test_issue14_deep_nesting() -> None:
    """#1: both envelope twins give a result or PayloadError however deep ``d`` nests (pure: RecursionError before)."""
    _target("envelope").check(_DEEP_ENVELOPE)


@pytest.mark.parametrize("target", ["zlib", "zstd"])
def test_issue14_max_size(target: str) -> None:
    """#3: a ``max_size`` of 2**63 and above is refused the same way by both twins, at construction."""
    _target(target).check(_HUGE_MAX_SIZE)
