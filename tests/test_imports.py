"""Import behaviour, checked in fresh subprocesses: which twins load, and that every module imports cleanly."""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys

import pytest

import gateway

HOT_MODULES = ("framing", "inflate", "envelope")


def run_python(code: str, **env: str) -> str:
    environment = {k: v for k, v in os.environ.items() if k != "GATEWAY_NO_SPEEDUPS"}
    environment.update(env)
    result = subprocess.run(
        [sys.executable, "-I", "-W", "error", "-c", code], capture_output=True, text=True, env=environment, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.speedups
def test_default_install_loads_compiled_twins() -> None:
    out = run_python("import gateway; print(sorted(gateway.speedups_enabled().items()))")
    assert out == str(sorted((name, True) for name in HOT_MODULES))


def test_no_speedups_env_loads_pure_twins() -> None:
    code = "import gateway; from gateway import _framing, _inflate, _envelope; print(gateway.speedups_enabled(), _framing.IMPLEMENTATION, _inflate.IMPLEMENTATION, _envelope.IMPLEMENTATION)"
    out = run_python(code, GATEWAY_NO_SPEEDUPS="1")
    assert out == str({name: False for name in HOT_MODULES}) + " pure pure pure"


def test_no_speedups_env_rejects_a_non_boolean_value() -> None:
    environment = dict(os.environ, GATEWAY_NO_SPEEDUPS="maybe")
    result = subprocess.run([sys.executable, "-I", "-c", "import gateway"], capture_output=True, text=True, env=environment)
    assert result.returncode != 0
    assert "GATEWAY_NO_SPEEDUPS='maybe' is not a boolean" in result.stderr


def all_module_names() -> list[str]:
    names = ["gateway"]
    for info in pkgutil.walk_packages(gateway.__path__, "gateway."):
        names.append(info.name)
    return names


def module_params() -> list[object]:
    """Every module; the compiled twins carry the ``speedups`` mark (deselected by the pure leg)."""
    return [
        pytest.param(name, marks=pytest.mark.speedups) if name.startswith("gateway._speedups._") else name
        for name in all_module_names()
    ]


@pytest.mark.parametrize("module", module_params())
def test_every_module_imports_under_warnings_as_errors(module: str) -> None:
    if module.startswith("gateway._speedups._") and not gateway.speedups_enabled().get(module.rsplit("_", 1)[-1], False):
        pytest.fail(f"{module} is not compiled")
    assert run_python(f"import {module}; print('ok')") == "ok"


def test_the_pure_twins_are_all_listed() -> None:
    names = set(all_module_names())
    for stem in HOT_MODULES:
        assert f"gateway._{stem}_py" in names
        assert f"gateway._{stem}" in names
