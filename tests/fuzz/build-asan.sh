#!/usr/bin/env bash
# Build the sanitizer venv for fuzzing: .venv-asan with the compiled twins built by clang under AddressSanitizer +
# UndefinedBehaviorSanitizer (and -fsanitize=fuzzer-no-link, so libFuzzer sees their branches), plus atheris.
#   bash tests/fuzz/build-asan.sh            # atheris wheel from PyPI (CI; its Python coverage is weaker under ASan)
#   ATHERIS_FROM_SOURCE=1 bash tests/fuzz/build-asan.sh   # atheris built with clang: asan_with_fuzzer.so (long runs)
# Run with: python -m tests.fuzz --sanitize --python .venv-asan/bin/python  (preloads the ASan runtime itself), or by
# hand: LD_PRELOAD=$(clang -print-file-name=libclang_rt.asan-x86_64.so) ASAN_OPTIONS=detect_leaks=0 .venv-asan/bin/python ...
# -fno-sanitize=pointer-overflow: Cython's vectorcall wrappers compute NULL + 0 for calls without arguments.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v clang >/dev/null || { echo "clang is needed (apt-get install clang)" >&2; exit 2; }
PY=${PYTHON:-python3}
SAN_FLAGS='-fsanitize=address,undefined,fuzzer-no-link -fno-sanitize=pointer-overflow -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g -O1'
[ -x .venv-asan/bin/python ] || $PY -m venv .venv-asan
.venv-asan/bin/python -m pip install -q --upgrade pip
if [ "${ATHERIS_FROM_SOURCE:-0}" = 1 ]; then
    CLANG_BIN=$(command -v clang) .venv-asan/bin/python -m pip install -q --no-binary atheris atheris
else
    .venv-asan/bin/python -m pip install -q atheris
fi
.venv-asan/bin/python -m pip install -q --upgrade 'Cython>=3' 'setuptools>=77' wheel  # as pyproject's build-system
# The dependencies (and the test extra) from pyproject.toml; gateway itself below, with the sanitizers.
.venv-asan/bin/python - <<'PY' > .venv-asan/requirements.txt
import tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
print("\n".join(project["dependencies"] + project["optional-dependencies"]["test"]))
PY
.venv-asan/bin/python -m pip install -q -r .venv-asan/requirements.txt
# Then gateway itself, compiled with the sanitizers (no build isolation: the CFLAGS reach the compiler as given).
# Not setup.py's GATEWAY_SANITIZE=1 (the plain ASan+UBSan build for the tests): fuzzing also needs fuzzer-no-link
# (libFuzzer sees the compiled code's branches) and no pointer-overflow check (Cython's NULL + 0, see above).
CC=clang LDSHARED="clang -shared" CFLAGS="$SAN_FLAGS" LDFLAGS='-fsanitize=address,undefined' GATEWAY_BUILD_SPEEDUPS=yes \
    .venv-asan/bin/python -m pip install -q --no-build-isolation --force-reinstall --no-deps .
# A non-editable install: the sanitizer build lives in .venv-asan's site-packages, the checkout's .so stay as they are.
