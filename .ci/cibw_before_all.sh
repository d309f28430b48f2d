#!/usr/bin/env bash
# cibuildwheel before-all (Linux containers, macOS): the C libraries the compiled inflate twin links.
# The repair step (auditwheel / delocate) copies libzstd into the wheel. zlib-ng is built from source into /usr/local
# as a static library (.ci/build_zlib_ng.sh), so the wheel carries it inside _inflate (pyproject: GATEWAY_ZLIB).
set -euo pipefail
ZSTD_VERSION=1.5.6
if command -v dnf >/dev/null; then        # manylinux_2_28+ (AlmaLinux)
    dnf install -y zlib-devel libzstd-devel
elif command -v yum >/dev/null; then      # manylinux2014 (CentOS 7)
    yum install -y zlib-devel libzstd-devel
elif command -v apk >/dev/null; then      # musllinux (Alpine)
    apk add --no-cache zlib-dev zstd-dev
elif [ "$(uname)" = Darwin ]; then
    # Built from the release tarball for this runner's arch and MACOSX_DEPLOYMENT_TARGET (a Homebrew bottle
    # targets the runner's own macOS version, which delocate would reject for older targets).
    curl -fsSL "https://github.com/facebook/zstd/releases/download/v$ZSTD_VERSION/zstd-$ZSTD_VERSION.tar.gz" | tar xz
    sudo make -C "zstd-$ZSTD_VERSION/lib" -j3 install-shared install-includes PREFIX=/usr/local
else
    echo "cibw_before_all.sh: no known package manager" >&2
    exit 1
fi
# pip download of python-zlib-ng's sdist needs a recent Python: manylinux/musllinux images keep theirs in /opt/python.
PYTHON=$(ls -d /opt/python/cp312-*/bin/python 2>/dev/null | head -n 1 || true)
export PYTHON=${PYTHON:-python3}
if [ "$(uname)" = Darwin ]; then
    sudo --preserve-env=PYTHON bash "$(dirname "$0")/build_zlib_ng.sh" /usr/local
else
    bash "$(dirname "$0")/build_zlib_ng.sh" /usr/local
fi
