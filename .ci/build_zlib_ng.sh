#!/usr/bin/env bash
# build_zlib_ng.sh PREFIX: zlib-ng's static library (native zng_* API, position-independent) in PREFIX/{include,lib},
# for the compiled inflate twin (setup.py's GATEWAY_ZLIB). Run by the wheel legs: .ci/wheel_check.sh here and
# cibuildwheel's before-all (.ci/cibw_before_all.sh).
#
# The source is the C library bundled in the sdist of the python-zlib-ng package on PyPI, pinned to the version the
# test extra installs as the pure twin's zlib-ng backend, so both twins run the same zlib-ng (the tests compare them
# exactly). Needs a C compiler, cmake and pip. A user links it with:
#     CPATH=PREFIX/include LIBRARY_PATH=PREFIX/lib pip install .     (GATEWAY_ZLIB=zlib-ng to insist on it)
set -euo pipefail
PREFIX=${1:?usage: build_zlib_ng.sh PREFIX}
PYZLIBNG_VERSION=${PYZLIBNG_VERSION:-1.1.0}  # bundles zlib-ng 2.3.3
PY=${PYTHON:-python3}
mkdir -p "$PREFIX"
PREFIX=$(cd "$PREFIX" && pwd)
if [ -f "$PREFIX/include/zlib-ng.h" ] && [ -f "$PREFIX/lib/libz-ng.a" ]; then
    echo "zlib-ng already in $PREFIX"
    exit 0
fi
command -v cmake >/dev/null || "$PY" -m pip install -q cmake  # manylinux images have it; elsewhere from PyPI
SRC=$(mktemp -d)
trap 'rm -rf "$SRC"' EXIT
"$PY" -m pip download -q --no-binary :all: --no-deps -d "$SRC" "zlib-ng==$PYZLIBNG_VERSION" \
    2>&1 | grep -v "^WARNING: Location" || true
tar -xzf "$SRC"/zlib_ng-*.tar.gz -C "$SRC"
cmake -S "$SRC"/zlib_ng-*/src/zlib_ng/zlib-ng -B "$SRC/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
    -DZLIB_COMPAT=OFF -DBUILD_TESTING=OFF -DWITH_GTEST=OFF -DWITH_GZFILEOP=OFF \
    -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DCMAKE_INSTALL_PREFIX="$PREFIX" -DCMAKE_INSTALL_LIBDIR=lib >/dev/null
cmake --build "$SRC/build" --parallel "$(nproc 2>/dev/null || echo 2)" >/dev/null
cmake --install "$SRC/build" >/dev/null
grep -m1 '#define ZLIBNG_VERSION ' "$PREFIX/include/zlib-ng.h"
ls "$PREFIX/lib/libz-ng.a"
