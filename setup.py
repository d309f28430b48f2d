"""Build switches for the Cython twins; all static metadata lives in pyproject.toml.

GATEWAY_BUILD_SPEEDUPS=auto (default): compile each twin if possible, else install it pure, printing one
    ``gateway build: ... pure: <why>`` line per twin left out (``pip install -v`` shows it). The C headers and
    libraries are probed first, so a missing libzstd costs only the compiled zstd-stream path: the inflate twin is
    then compiled with GATEWAY_WITHOUT_ZSTD (zlib only) and ``gateway/_inflate.py`` takes the pure zstd twin.
GATEWAY_BUILD_SPEEDUPS=yes: anything that keeps a twin from compiling fails the build.
GATEWAY_BUILD_SPEEDUPS=no: no extension at all, a pure ``py3-none-any`` wheel.
GATEWAY_ZLIB=auto (default): the inflate twin links zlib-ng's native API where ``zlib-ng.h`` and libz-ng are found
    (statically if only libz-ng.a is there), else the system zlib. ``zlib`` or ``zlib-ng`` pins one; a pinned
    zlib-ng that cannot be found fails the build.
GATEWAY_SANITIZE=1: AddressSanitizer + UBSan build (``-fsanitize=address,undefined -fno-omit-frame-pointer -g -O1``).
The values are parsed by ``gateway/_compat.py`` (one parser for every switch).
"""

import importlib.util
import os
import sys
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

_spec = importlib.util.spec_from_file_location("_gateway_compat", os.path.join("gateway", "_compat.py"))
_compat = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_compat)

MODE = _compat.build_speedups_mode(os.environ.get("GATEWAY_BUILD_SPEEDUPS"))
ZLIB = _compat.zlib_library_choice(os.environ.get("GATEWAY_ZLIB"))
SANITIZE = _compat.env_flag("GATEWAY_SANITIZE")
WINDOWS = os.name == "nt"

# Probe programs: each must compile and link for the twin (or path) that needs it to be compiled.
# name -> (source, libraries, what a failure to compile means, what a failure to link means)
PROBES = {
    "compiler": ("int main(void) { return 0; }\n", [], "no working C compiler", "no working C compiler/linker"),
    "zlib": (
        "#include <zlib.h>\nint main(void) { z_stream s = {0}; return inflateInit(&s) == Z_OK ? inflateEnd(&s) : 1; }\n",
        ["zlib" if WINDOWS else "z"],
        "zlib.h not found or unusable",
        "libz not found",
    ),
    "zlib-ng": (
        "#include <zlib-ng.h>\nint main(void) { zng_stream s = {0}; return zng_inflateInit(&s) == Z_OK ? zng_inflateEnd(&s) : 1; }\n",
        ["zlib-ng" if WINDOWS else "z-ng"],
        "zlib-ng.h not found or unusable",
        "libz-ng not found",
    ),
    "zstd": (
        "#include <zstd.h>\nint main(void) { ZSTD_DCtx* d = ZSTD_createDCtx(); return d ? (int)ZSTD_freeDCtx(d) : 1; }\n",
        ["zstd"],
        "zstd.h not found or unusable (Debian: apt-get install libzstd-dev)",
        "libzstd not found (Debian: apt-get install libzstd-dev)",
    ),
}
# module name -> the probes it needs: all of them, except that "zstd" failing only drops the zstd-stream path;
# "zlib" stands for the library GATEWAY_ZLIB picks (_zlib_library)
NEEDS = {"_framing": ["compiler"], "_inflate": ["compiler", "zlib", "zstd"], "_envelope": ["compiler"]}
SPEEDUPS = [name for name in NEEDS if os.path.exists(os.path.join("gateway", "_speedups", f"{name}.pyx"))]


def _program(exc):
    """The program a failed build step ran and how it ended, without its long argument list."""
    text = str(exc)
    if "Command '[" in text and "returned" in text:  # "Command '['gcc', '-I..', ...]' returned non-zero exit status 1."
        program = text.split("Command '['", 1)[1].split("'", 1)[0]
        status = text.rsplit("exit status", 1)[1].strip().rstrip(".")
        return f"`{program}` exited with status {status} (see the build log)"
    return text.strip().splitlines()[-1] if text.strip() else type(exc).__name__


def say(line):
    print(f"gateway build: {line}", file=sys.stderr, flush=True)


class BuildSpeedups(build_ext):
    """build_ext that probes before compiling, and in ``auto`` mode drops what cannot be built."""

    def build_extensions(self):
        self._probe_results = {}
        say(f"GATEWAY_BUILD_SPEEDUPS={MODE}" + (", GATEWAY_SANITIZE=1" if SANITIZE else ""))
        built = []
        for ext in self.extensions:
            if self._build_one(ext):
                built.append(ext)
        # Only what was built is copied in place (editable installs) and listed among the outputs.
        self.extensions = built
        names = ", ".join(ext.name.rsplit(".", 1)[-1].lstrip("_") for ext in built) or "none"
        say(f"compiled twins: {names}")

    def _probe(self, what):
        """None if the probe program for ``what`` compiles and links as a shared object, else the first line of the
        error."""
        if what not in self._probe_results:
            self._probe_results[what] = self._run_probe(*PROBES[what])
        return self._probe_results[what]

    def _run_probe(self, source, libraries, compile_failed, link_failed):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "probe.c")
            with open(path, "w") as f:
                f.write(source)
            stage = compile_failed
            try:
                objects = self.compiler.compile([path], output_dir=tmp, include_dirs=self.include_dirs)
                stage = link_failed
                # Linked the way the extension will be (LDSHARED, LDFLAGS): an executable would also need the runtime
                # of any sanitizer or coverage flags in CFLAGS, which an extension gets from the interpreter.
                self.compiler.link_shared_object(
                    objects, os.path.join(tmp, "probe.so"), libraries=libraries, library_dirs=self.library_dirs
                )
            except Exception as exc:  # CompileError, LinkError, a missing compiler program: all mean "no"
                return f"{stage}: {_program(exc)}"
        return None

    def _zlib_library(self):
        """The probe name of the zlib the inflate twin links: "zlib-ng" where GATEWAY_ZLIB allows it and its probe
        passes, else "zlib"."""
        if ZLIB == "zlib":
            return "zlib"
        error = self._probe("zlib-ng")
        if error is None:
            return "zlib-ng"
        if ZLIB == "zlib-ng":
            raise SystemExit(f"gateway build: GATEWAY_ZLIB=zlib-ng but {error}")
        return "zlib"

    def _give_up(self, ext, why):
        """``auto``: say which twin is installed pure and why. ``yes``: fail the build."""
        twin = ext.name.rsplit(".", 1)[-1].lstrip("_")
        if MODE == "yes":
            raise SystemExit(f"gateway build: GATEWAY_BUILD_SPEEDUPS=yes but the {twin} twin cannot be compiled: {why}")
        say(f"the {twin} twin is installed pure: {why}")
        return False

    def _build_one(self, ext):
        stem = ext.name.rsplit(".", 1)[-1]
        msvc = self.compiler.compiler_type == "msvc"
        zlib = self._zlib_library() if "zlib" in NEEDS[stem] else None
        for what in NEEDS[stem]:
            what = zlib if what == "zlib" else what
            error = self._probe(what)
            if error is None:
                continue
            if what == "zstd" and MODE != "yes":
                say(f"the inflate twin's zstd-stream path is installed pure: {error}")
                ext.define_macros = [*ext.define_macros, ("GATEWAY_WITHOUT_ZSTD", "1")]
                continue
            return self._give_up(ext, error)
        # The libraries follow the probes.
        ext.libraries = []
        if zlib is not None:
            say(f"the {stem.lstrip('_')} twin links {zlib}")
            ext.libraries = PROBES[zlib][1] + ([] if ("GATEWAY_WITHOUT_ZSTD", "1") in ext.define_macros else ["zstd"])
            if zlib == "zlib-ng":
                ext.define_macros = [*ext.define_macros, ("GATEWAY_WITH_ZLIB_NG", "1")]
        ext.extra_compile_args = ["/O2"] if msvc else ["-O3"]
        ext.extra_link_args = []
        if SANITIZE and not msvc:
            flags = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g", "-O1"]
            ext.extra_compile_args = flags
            ext.extra_link_args = flags + (["-shared-libasan"] if "clang" in os.environ.get("CC", "") else [])
        try:
            build_ext.build_extension(self, ext)
        except Exception as exc:
            if MODE == "yes":
                raise
            return self._give_up(ext, f"the compiler failed: {_program(exc)}")
        return True


def extensions():
    if MODE == "no" or sys.implementation.name != "cpython":
        say("pure Python build (no extension modules)")
        return []
    from Cython.Build import cythonize

    trace = _compat.env_flag("GATEWAY_CYTHON_TRACE")
    exts = [
        Extension(
            f"gateway._speedups.{name}",
            [f"gateway/_speedups/{name}.pyx"],
            define_macros=[("CYTHON_TRACE_NOGIL", "1")] if trace else [],
        )
        for name in SPEEDUPS
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


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildSpeedups})
