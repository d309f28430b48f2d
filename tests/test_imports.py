"""Import behaviour, checked in fresh subprocesses: which twins load, and that every module imports cleanly."""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys

import pytest

import gateway
from conftest import COMPILED_STATUS, compiled_twin_missing

HOT_MODULES = ("framing", "inflate", "envelope")


def run_python(code: str, **env: str) -> str:
    environment = {k: v for k, v in os.environ.items() if k != "GATEWAY_NO_SPEEDUPS"}
    environment.update(env)
    result = subprocess.run(
        [sys.executable, "-I", "-W", "error", "-c", code], capture_output=True, text=True, env=environment, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


ENABLED_KEYS = ("framing", "inflate", "inflate_zstd", "envelope")


@pytest.mark.speedups
def test_default_install_loads_compiled_twins() -> None:
    for key in ENABLED_KEYS:
        if COMPILED_STATUS[key] is not None:
            compiled_twin_missing(key)
    out = run_python("import gateway; print(sorted(gateway.speedups_enabled().items()))")
    assert out == str(sorted((name, True) for name in ENABLED_KEYS))


def test_speedups_enabled_says_exactly_what_is_compiled() -> None:
    """Each key is True exactly when its compiled path is built (a build without libzstd: ``inflate_zstd`` False)."""
    out = run_python("import gateway; print(sorted(gateway.speedups_enabled().items()))")
    assert out == str(sorted((name, COMPILED_STATUS[name] is None) for name in ENABLED_KEYS))


def test_a_build_without_libzstd_runs_zstd_stream_on_the_pure_twin() -> None:
    code = (
        "from gateway import _inflate; inflater = _inflate.make_inflater('zstd-stream');"
        "print(_inflate.ZSTD_IMPLEMENTATION, type(inflater).__module__, _inflate.ZstdStreamInflater.__module__)"
    )
    zstd, made, selected = run_python(code).split()
    assert made == selected
    assert zstd == ("speedups" if COMPILED_STATUS["inflate_zstd"] is None else "pure")
    assert made == ("gateway._speedups._inflate" if zstd == "speedups" else "gateway._inflate_py")


@pytest.mark.speedups
@pytest.mark.compiled_paths("inflate")
def test_compiled_inflate_twin_without_libzstd_refuses_zstd_loudly() -> None:
    if COMPILED_STATUS["inflate"] is not None:
        compiled_twin_missing("inflate")
    from gateway._speedups import _inflate as compiled

    if compiled.HAVE_ZSTD:
        compiled.ZstdStreamInflater()  # builds: nothing to refuse
        return
    with pytest.raises(NotImplementedError, match="built without libzstd"):
        compiled.ZstdStreamInflater()
    assert compiled.ZlibStreamInflater().feed(zlib_message(b'{"op":11}')) == b'{"op":11}'


def zlib_message(payload: bytes) -> bytes:
    import zlib

    compressor = zlib.compressobj()
    return compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)


def test_no_speedups_env_loads_pure_twins() -> None:
    code = "import gateway; from gateway import _framing, _inflate, _envelope; print(gateway.speedups_enabled(), _framing.IMPLEMENTATION, _inflate.IMPLEMENTATION, _envelope.IMPLEMENTATION)"
    out = run_python(code, GATEWAY_NO_SPEEDUPS="1")
    assert out == str({name: False for name in ENABLED_KEYS}) + " pure pure pure"


def test_no_speedups_env_rejects_a_non_boolean_value() -> None:
    environment = dict(os.environ, GATEWAY_NO_SPEEDUPS="maybe")
    result = subprocess.run([sys.executable, "-I", "-c", "import gateway"], capture_output=True, text=True, env=environment)
    assert result.returncode != 0
    assert "GATEWAY_NO_SPEEDUPS='maybe' is not a boolean" in result.stderr


@pytest.mark.parametrize(
    ("value", "chosen"), [(None, "auto"), ("", "auto"), (" Auto ", "auto"), ("zlib", "zlib"), ("ZLIB-NG", "zlib-ng")]
)
def test_gateway_zlib_build_switch_parses(value: str | None, chosen: str) -> None:
    from gateway import _compat

    assert _compat.zlib_library_choice(value) == chosen


def test_gateway_zlib_build_switch_rejects_unknown_libraries() -> None:
    from gateway import _compat

    with pytest.raises(ValueError, match=r"GATEWAY_ZLIB='zlib-ng2' is not a zlib library \(use auto, zlib or zlib-ng\)"):
        _compat.zlib_library_choice("zlib-ng2")


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
    if module.startswith("gateway._speedups._") and COMPILED_STATUS[module.rsplit("_", 1)[-1]] is not None:
        compiled_twin_missing(module.rsplit("_", 1)[-1])
    assert run_python(f"import {module}; print('ok')") == "ok"


def test_the_pure_twins_are_all_listed() -> None:
    names = set(all_module_names())
    for stem in HOT_MODULES:
        assert f"gateway._{stem}_py" in names
        assert f"gateway._{stem}" in names
