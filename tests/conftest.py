"""Fixtures shared by the whole suite.

Every test of a hot module takes the ``framing`` / ``inflate`` / ``envelope`` fixture (or ``impl``) and so
runs once against the compiled twin (id ``speedups``) and once against the pure twin (id ``pure``).
A missing compiled twin makes the ``speedups`` tests fail, not skip; run with ``--no-speedups`` (the pure
CI leg does, together with GATEWAY_NO_SPEEDUPS=1) to deselect them on purpose.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

HOT_MODULES = ("framing", "inflate", "envelope")

# The benchmark package (bench/, not installed) is importable from tests even when they run against an installed
# wheel from another directory; appended, so an installed gateway still wins over the checkout's.
_REPO_ROOT = str(Path(__file__).resolve().parents[1])
if _REPO_ROOT not in sys.path:
    sys.path.append(_REPO_ROOT)


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

        For ``speedups`` an ImportError is turned into a test failure: a compiled leg must not pass silently.
        """
        if self.name == "pure":
            return importlib.import_module(f"gateway._{module}_py")
        try:
            return importlib.import_module(f"gateway._speedups._{module}")
        except ImportError as exc:  # pragma: no cover - only when not compiled
            pytest.fail(
                f"compiled twin gateway._speedups._{module} is missing ({exc}); "
                "build it (pip install -e .) or run the pure leg with --no-speedups"
            )

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
