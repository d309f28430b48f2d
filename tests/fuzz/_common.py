"""Shared helpers of the fuzz targets: both twins of a hot module, outcome comparison, issue-14 tolerances."""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType
from typing import Any, Callable

#: Set GATEWAY_FUZZ_STRICT=1 to treat the open findings (``known_open``) as findings again.
STRICT = os.environ.get("GATEWAY_FUZZ_STRICT", "") in ("1", "true", "yes", "on")

_known_seen: set[str] = set()


class Finding(AssertionError):
    """A fuzz input broke a contract (twins disagree, a wrong exception class, an invariant)."""


def twins(module: str) -> tuple[ModuleType, ModuleType]:
    """``(compiled, pure)`` twins of hot module ``module``; fails loudly when the compiled one is missing."""
    compiled = importlib.import_module(f"gateway._speedups._{module}")
    pure = importlib.import_module(f"gateway._{module}_py")
    return compiled, pure


def outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    """``("ok", result)`` or ``("raise", exception)``."""
    try:
        return "ok", call()
    except Exception as exc:  # noqa: BLE001 - the class is what is compared
        return "raise", exc


def same_outcome(a: tuple[str, Any], b: tuple[str, Any]) -> bool:
    """Same result, or both raised the same exception class."""
    if a[0] != b[0]:
        return False
    if a[0] == "raise":
        return type(a[1]) is type(b[1])
    return bool(a[1] == b[1])


def describe(result: tuple[str, Any]) -> str:
    kind, value = result
    if kind == "raise":
        return f"raised {type(value).__name__}: {value}"
    text = repr(value)
    return f"returned {text[:300]}{'...' if len(text) > 300 else ''}"


def known_open(signature: str) -> bool:
    """A finding of these fuzzers whose fix belongs to another module's owner (listed in the README, kept as an
    xfail regression input): tolerated unless STRICT, reported once, so a long run goes on to find other things."""
    if STRICT:
        return False
    if signature not in _known_seen:
        _known_seen.add(signature)
        print(f"[fuzz] known open finding tolerated: {signature}", file=sys.stderr, flush=True)
    return True


def known_seen() -> frozenset[str]:
    return frozenset(_known_seen)


def quiet_logs() -> None:
    """The targets log warnings by design (refused payloads, timeouts); keep them off the fuzzer's output."""
    import logging

    logging.getLogger("gateway").addHandler(logging.NullHandler())
    logging.getLogger("gateway").propagate = False


def instrumented() -> Any:
    """Context manager for a target's imports: under the fuzzer (GATEWAY_FUZZ_INSTRUMENT=1, set by the runner)
    atheris instruments the ``gateway`` package's Python code for coverage; otherwise nothing happens."""
    if os.environ.get("GATEWAY_FUZZ_INSTRUMENT") == "1":
        import atheris

        return atheris.instrument_imports(include=["gateway"])
    import contextlib

    return contextlib.nullcontext()


def fuzz_main(check: Callable[[bytes], None], name: str) -> None:
    """Run ``check`` under atheris. An input that raises is first written to ``$GATEWAY_FUZZ_ARTIFACTS`` (the runner
    sets it) as ``<name>-finding-<sha1>``: libFuzzer does not save the input when a Python exception ends the run."""
    import hashlib

    import atheris

    artifacts = os.environ.get("GATEWAY_FUZZ_ARTIFACTS")

    def one_input(data: bytes) -> None:
        try:
            check(data)
        except BaseException:
            if artifacts:
                path = os.path.join(artifacts, f"{name}-finding-{hashlib.sha1(data).hexdigest()}")
                with open(path, "wb") as out:
                    out.write(data)
                print(f"[fuzz] input written to {path}", file=sys.stderr, flush=True)
            raise

    argv = list(sys.argv)
    if os.environ.get("GATEWAY_FUZZ_ARGV0"):  # libFuzzer's -merge re-runs argv[0]: an executable wrapper script
        argv[0] = os.environ["GATEWAY_FUZZ_ARGV0"]
    atheris.Setup(argv, one_input)
    atheris.Fuzz()
