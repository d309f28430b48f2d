"""The differential fuzzer's zlib/zstd reproducers (../shared/findings/twin-fuzz/, issue 14) against the contract.

Each reproducer's CASE (inflater class, ``max_size``, messages, probe) is fed to every inflater on its own: it must
keep the contract of ``gateway/_inflate_py.py`` (bytes never over the ceiling, None only while the zlib marker is
missing, CompressionError / InflatedTooLargeError and nothing else, poisoned after an error, usable after reset).
Where both twins run the same library (compiled zlib twin, pure twin on stdlib zlib) the outcomes must be equal.
tests/FINDINGS.md lists which reproducers still differ between libraries and why. Skipped when no ``shared/findings/twin-fuzz``
is found beside the repository or a folder above it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from conftest import same_zlib_library
from gateway import _inflate_py as pure
from gateway.errors import CompressionError

# ../shared beside the repository (CI's layout), or beside a folder above it (a git worktree's).
FINDINGS = next(
    (found for folder in Path(__file__).resolve().parents[1].parents if (found := folder / "shared" / "findings" / "twin-fuzz").is_dir()),
    Path(__file__).resolve().parents[1].parent / "shared" / "findings" / "twin-fuzz",
)
CASES = sorted(FINDINGS.glob("zlib-*.py")) + sorted(p for p in FINDINGS.glob("zstd-*.py") if "frame-end" not in p.name)


def load_case(path: Path) -> dict[str, Any]:
    spec = importlib.util.spec_from_file_location(f"finding_{path.stem.replace('-', '_')}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # defines CASE; main() runs only as a script
    return module.CASE  # type: ignore[no-any-return]


def make(which: str, cls: str, max_size: int) -> Any:
    if which == "compiled":
        from gateway._speedups import _inflate as compiled

        return getattr(compiled, cls)(max_size)
    if cls == "ZlibStreamInflater":
        if which not in pure.installed_zlib_backends():
            pytest.skip(f"zlib backend {which} not installed")
        return pure.zlib_stream_inflater(which, max_size)
    return pure.ZstdStreamInflater(max_size)


def run(inflater: Any, case: dict[str, Any]) -> list[object]:
    """Outcomes, checking the contract as it goes."""
    seen: list[object] = []
    pending = b""
    for message in case["messages"]:
        try:
            result = inflater.feed(message)
        except CompressionError as exc:  # InflatedTooLargeError is one; anything else fails the test
            seen.append(type(exc))
            with pytest.raises(CompressionError, match="unusable after an earlier error"):
                inflater.feed(case["probe"])
            break
        if case["cls"] == "ZlibStreamInflater":
            pending += message
            assert (result is None) == (not pending.endswith(pure.ZLIB_SUFFIX))
            pending = pending if result is None else b""
        if result is not None:
            assert type(result) is bytes and len(result) <= case["max_size"]
        seen.append(result)
    inflater.reset()
    try:
        seen.append(("after reset", inflater.feed(case["probe"])))
    except CompressionError as exc:  # a probe larger than a tiny ceiling
        seen.append(("after reset", type(exc)))
    return seen


def case_ids(paths: list[Path]) -> list[str]:
    return [path.stem for path in paths]


def contract_params() -> list[Any]:
    """(reproducer, inflater) pairs: zlib ones on the compiled twin and every pure backend, zstd on both twins."""
    params = []
    for path in CASES:
        names = pure.ZLIB_BACKENDS if path.name.startswith("zlib-") else ("pure",)
        params.append(pytest.param(path, "compiled", id=f"{path.stem}-compiled", marks=pytest.mark.speedups))
        params += [pytest.param(path, name, id=f"{path.stem}-{name}") for name in names]
    return params


@pytest.mark.skipif(not CASES, reason=f"no reproducers in {FINDINGS}")
@pytest.mark.parametrize(("path", "which"), contract_params())
def test_reproducer_keeps_the_contract(path: Path, which: str) -> None:
    case = load_case(path)
    if not 1 <= case["max_size"] <= pure.MAX_INFLATED_SIZE_LIMIT:
        with pytest.raises(ValueError, match="max_size must be between 1 and"):
            make(which, case["cls"], case["max_size"])
        return
    run(make(which, case["cls"], case["max_size"]), case)


ZLIB_CASES = [path for path in CASES if path.name.startswith("zlib-")]


@pytest.mark.speedups
@pytest.mark.skipif(not ZLIB_CASES, reason=f"no reproducers in {FINDINGS}")
@pytest.mark.parametrize("path", ZLIB_CASES, ids=case_ids(ZLIB_CASES))
def test_zlib_reproducer_same_outcome_on_the_same_library(path: Path) -> None:
    from gateway._speedups import _inflate as compiled  # the pure backend of the same name runs the same library

    case = load_case(path)
    if not 1 <= case["max_size"] <= pure.MAX_INFLATED_SIZE_LIMIT:  # was OverflowError, at different times
        errors = []
        for which in (same_zlib_library(compiled), "compiled"):
            with pytest.raises(ValueError) as raised:
                make(which, case["cls"], case["max_size"])
            errors.append(str(raised.value))
        assert errors[0] == errors[1]
        return
    same = make(same_zlib_library(compiled), case["cls"], case["max_size"])
    assert run(same, case) == run(make("compiled", case["cls"], case["max_size"]), case)
