"""Fixtures shared by the whole suite.

Every test of a hot module takes the ``framing`` / ``inflate`` / ``envelope`` fixture (or ``impl``) and so
runs once against the compiled twin (id ``speedups``) and once against the pure twin (id ``pure``).

A compiled twin that is not built (no compiler, or libzstd missing for the zstd-stream path, at install time) is a
loud skip of the ``speedups`` tests that need it (the header and the summary say which), and a failure when every
twin is required: ``GATEWAY_REQUIRE_SPEEDUPS=1``, which is the default when ``CI`` is true (``.ci/run`` and
cibuildwheel set it). ``--no-speedups`` (the pure CI leg, with GATEWAY_NO_SPEEDUPS=1) deselects them on purpose.

Hypothesis runs the ``ci`` profile (derandomized: the same examples on every machine, no example database)
unless ``--hypothesis-profile=randomized`` asks for a long randomized run (see the README).
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import settings

HOT_MODULES = ("framing", "inflate", "envelope")

# The benchmark package (bench/, not installed) is importable from tests even when they run against an installed
# wheel from another directory; appended, so an installed gateway still wins over the checkout's.
_REPO_ROOT = str(Path(__file__).resolve().parents[1])
if _REPO_ROOT not in sys.path:
    sys.path.append(_REPO_ROOT)


settings.register_profile("ci", derandomize=True, print_blob=True, database=None)
settings.register_profile("randomized", max_examples=2000, print_blob=True, database=None)
settings.load_profile("ci")


def _require_speedups() -> bool:
    """GATEWAY_REQUIRE_SPEEDUPS if set, else whether CI is true (any value but empty/0/false/no/off)."""
    value = os.environ.get("GATEWAY_REQUIRE_SPEEDUPS")
    if value is not None:
        from gateway._compat import parse_flag

        return parse_flag(value, name="GATEWAY_REQUIRE_SPEEDUPS")
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no", "off")


REQUIRE_SPEEDUPS = _require_speedups()
ZSTD_MISSING_TEXT = "built without libzstd"  # in the compiled ZstdStreamInflater's NotImplementedError


def _compiled_status() -> dict[str, str | None]:
    """For each compiled path (the hot modules, plus ``inflate_zstd``): None if built, else why not."""
    status: dict[str, str | None] = {}
    for stem in HOT_MODULES:
        try:
            module = importlib.import_module(f"gateway._speedups._{stem}")
        except ImportError as exc:
            status[stem] = f"gateway._speedups._{stem} is not compiled ({exc})"
            if stem == "inflate":
                status["inflate_zstd"] = status[stem]
            continue
        status[stem] = None
        if stem == "inflate":
            status["inflate_zstd"] = (
                None if getattr(module, "HAVE_ZSTD", True) else "gateway._speedups._inflate was built without libzstd"
            )
    return status


COMPILED_STATUS = _compiled_status()
_missing_reported: list[str] = []


def compiled_twin_missing(what: str) -> None:
    """End the current test because compiled path ``what`` is not built: a skip, or a failure if every twin is required."""
    reason = COMPILED_STATUS.get(what) or f"compiled {what} twin is missing"
    if REQUIRE_SPEEDUPS:
        pytest.fail(f"{reason}; every compiled twin is required (GATEWAY_REQUIRE_SPEEDUPS=1 or CI=true)")
    _missing_reported.append(what)
    pytest.skip(f"COMPILED TWIN MISSING: {reason} (GATEWAY_REQUIRE_SPEEDUPS=1 makes this a failure)")


def _compiled_paths_needed(item: pytest.Item) -> set[str]:
    """Which compiled paths a ``speedups`` test needs, from its file name, parameters and fixtures.

    ``@pytest.mark.compiled_paths("inflate", ...)`` says it exactly; a test that uses zstd without saying so is
    caught at run time by the compiled ZstdStreamInflater's NotImplementedError.
    """
    declared = item.get_closest_marker("compiled_paths")
    if declared is not None:
        return set(declared.args)
    callspec = getattr(item, "callspec", None)
    text = f"{item.path.name}[{callspec.id if callspec else ''}]".lower()
    needed = {stem for stem in HOT_MODULES if stem in text}
    if "twins" in getattr(item, "fixturenames", ()):
        needed.update(HOT_MODULES)
    if "zstd" in text and ("inflate" in needed or "twins" in getattr(item, "fixturenames", ())):
        needed.add("inflate_zstd")
    return needed or {*HOT_MODULES, "inflate_zstd"}


def pytest_report_header(config: pytest.Config) -> list[str]:
    built = ", ".join(f"{name}={'yes' if why is None else 'NO'}" for name, why in COMPILED_STATUS.items())
    profile = settings.get_current_profile_name()
    return [
        f"gateway compiled twins: {built}; GATEWAY_REQUIRE_SPEEDUPS={int(REQUIRE_SPEEDUPS)}",
        f"hypothesis profile: {profile}",
    ]


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("speedups") is None:
        return
    for what in sorted(_compiled_paths_needed(item)):
        if COMPILED_STATUS.get(what) is not None:
            compiled_twin_missing(what)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):  # type: ignore[no-untyped-def]
    try:
        return (yield)
    except NotImplementedError as exc:  # the compiled ZstdStreamInflater of a build without libzstd
        if ZSTD_MISSING_TEXT in str(exc):
            compiled_twin_missing("inflate_zstd")
        raise


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:  # type: ignore[no-untyped-def]
    missing = sorted(set(_missing_reported))
    if missing:
        terminalreporter.write_sep(
            "!",
            f"{len(_missing_reported)} tests of compiled twins SKIPPED: {', '.join(missing)} not built "
            "(GATEWAY_REQUIRE_SPEEDUPS=1 makes them fail)",
            red=True,
            bold=True,
        )


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--speedups",
        action="store_true",
        default=True,
        help="run tests against the compiled twins too (default)",
    )
    parser.addoption(
        "--no-speedups",
        dest="speedups",
        action="store_false",
        help="deselect the tests of the compiled twins (pure-only run)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("speedups"):
        return
    kept, deselected = [], []
    for item in items:
        (deselected if item.get_closest_marker("speedups") else kept).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


@dataclass(frozen=True)
class Impl:
    """One implementation of the hot modules: ``speedups`` (Cython) or ``pure``."""

    name: str

    def load(self, module: str) -> ModuleType:
        """Import the twin of hot module ``module`` ("framing", "inflate", "envelope") for this implementation.

        For ``speedups`` a missing module is a loud skip, or a failure when every twin is required.
        """
        if self.name == "pure":
            return importlib.import_module(f"gateway._{module}_py")
        try:
            return importlib.import_module(f"gateway._speedups._{module}")
        except ImportError:  # pragma: no cover - only when not compiled
            compiled_twin_missing(module)
            raise

    def __str__(self) -> str:
        return self.name


@pytest.fixture(
    scope="session",
    params=[pytest.param(Impl("speedups"), marks=pytest.mark.speedups, id="speedups"), pytest.param(Impl("pure"), id="pure")],
)
def impl(request: pytest.FixtureRequest) -> Impl:
    return request.param


@pytest.fixture(scope="session")
def framing(impl: Impl) -> ModuleType:
    return impl.load("framing")


@pytest.fixture(scope="session")
def inflate(impl: Impl) -> ModuleType:
    return impl.load("inflate")


@pytest.fixture(scope="session")
def envelope(impl: Impl) -> ModuleType:
    return impl.load("envelope")


@pytest.fixture(scope="session")
def twins(framing: ModuleType, inflate: ModuleType, envelope: ModuleType) -> dict[str, ModuleType]:
    """The three twin modules of one implementation, as ``Shard(..., _twins=twins)`` and ``Receiver`` take them."""
    return {"framing": framing, "inflate": inflate, "envelope": envelope}


def same_zlib_library(compiled_inflate: ModuleType) -> str:
    """The pure zlib backend that runs the compiled inflate twin's library, same version: "zlib" or "zlib-ng".

    Skips the test when that backend is not installed or bundles another release (python-zlib-ng pins its own).
    """
    from gateway import _inflate_py

    name: str = compiled_inflate.ZLIB_BACKEND
    if name not in _inflate_py.installed_zlib_backends():
        pytest.skip(f"the compiled twin links {name}, which the pure twin cannot load here")
    module = _inflate_py.load_zlib_backend(name)
    version = getattr(module, "ZLIBNG_RUNTIME_VERSION", None) or module.ZLIB_RUNTIME_VERSION
    if version != compiled_inflate.ZLIB_VERSION:
        pytest.skip(f"the compiled twin links {name} {compiled_inflate.ZLIB_VERSION}, the pure backend runs {version}")
    return name
