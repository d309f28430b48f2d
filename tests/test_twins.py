"""Both twins of every hot module export the same names, with the same signatures where Python can see them."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest

HOT_MODULES = ("framing", "inflate", "envelope")


def parameter_names(obj: object) -> list[str] | None:
    """The parameter names of a callable (of ``__init__`` for a class), or None where Python cannot see them."""
    try:
        return list(inspect.signature(obj).parameters)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


@pytest.mark.speedups
@pytest.mark.parametrize("stem", HOT_MODULES)
def test_twins_export_the_same_public_names(stem: str) -> None:
    pure = importlib.import_module(f"gateway._{stem}_py")
    compiled = importlib.import_module(f"gateway._speedups._{stem}")
    assert sorted(pure.__all__) == sorted(compiled.__all__)
    for name in pure.__all__:
        a, b = getattr(pure, name), getattr(compiled, name)
        assert type(a) is type(b) or (callable(a) and callable(b)), name
        if not callable(a):
            assert a == b, name
            continue
        names_a, names_b = parameter_names(a), parameter_names(b)
        if names_a is not None and names_b is not None:
            assert names_a == names_b, name


@pytest.mark.parametrize("stem", HOT_MODULES)
def test_selector_exports_what_the_pure_twin_exports(stem: str) -> None:
    pure = importlib.import_module(f"gateway._{stem}_py")
    selector = importlib.import_module(f"gateway._{stem}")
    for name in pure.__all__:
        assert hasattr(selector, name), name
    assert selector.IMPLEMENTATION in ("speedups", "pure")


@pytest.mark.speedups
@pytest.mark.parametrize("stem", HOT_MODULES)
def test_stub_beside_each_compiled_twin_lists_the_public_names(stem: str) -> None:
    compiled = importlib.import_module(f"gateway._speedups._{stem}")
    stub = compiled.__file__.rsplit("/", 1)[0] + f"/_{stem}.pyi"
    text = Path(stub).read_text(encoding="utf-8")
    for name in compiled.__all__:
        assert name in text, f"{name} missing from {stub}"
