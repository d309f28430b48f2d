"""Build switch for the Cython twins; all static metadata lives in pyproject.toml.

GATEWAY_BUILD_SPEEDUPS=auto (default): compile each twin if possible, else install it pure.
GATEWAY_BUILD_SPEEDUPS=yes: a twin that fails to compile fails the build.
GATEWAY_BUILD_SPEEDUPS=no: no extension at all, a pure ``py3-none-any`` wheel.
The value is parsed by ``gateway/_compat.py``'s ``build_speedups_mode`` (one parser for both variables).
"""

import importlib.util
import os
import sys

from setuptools import Extension, setup

_spec = importlib.util.spec_from_file_location("_gateway_compat", os.path.join("gateway", "_compat.py"))
_compat = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_compat)

MODE = _compat.build_speedups_mode(os.environ.get("GATEWAY_BUILD_SPEEDUPS"))

# module name -> libraries it links against (each .pyx also names them in a "# distutils: libraries" line)
SPEEDUPS = {
    name: libs
    for name, libs in {"_framing": [], "_inflate": ["z", "zstd"], "_envelope": []}.items()
    if os.path.exists(os.path.join("gateway", "_speedups", f"{name}.pyx"))
}


def extensions():
    if MODE == "no" or sys.implementation.name != "cpython":
        print("* gateway: pure Python build *")
        return []
    from Cython.Build import cythonize

    print(f"* gateway: accelerated build (GATEWAY_BUILD_SPEEDUPS={MODE}) *")
    trace = _compat.env_flag("GATEWAY_CYTHON_TRACE")
    exts = [
        Extension(
            f"gateway._speedups.{name}",
            [f"gateway/_speedups/{name}.pyx"],
            libraries=libs,
            extra_compile_args=["-O3"],
            define_macros=[("CYTHON_TRACE_NOGIL", "1")] if trace else [],
            optional=MODE != "yes",
        )
        for name, libs in SPEEDUPS.items()
    ]
    return cythonize(
        exts,
        language_level=3,
        annotate=_compat.env_flag("GATEWAY_CYTHON_ANNOTATE"),
        compiler_directives={
            "embedsignature": True,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "linetrace": trace,
        },
    )


setup(ext_modules=extensions())
