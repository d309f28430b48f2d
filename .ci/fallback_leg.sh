#!/usr/bin/env bash
# One install-anywhere leg: a fresh clone installed with the README's quick-start command on a machine that cannot
# build everything, then the README's test command there.
#
#   .ci/fallback_leg.sh no-zstd   zstd.h cannot be found (a build-time include dir whose zstd.h is an #error):
#                                 framing, envelope and inflate's zlib path compile; zstd-stream installs pure.
#   .ci/fallback_leg.sh no-cc     the compiler fails (CC=false): every twin installs pure.
#
# Proves: the quick start and the demo succeed; setup.py prints one "gateway build:" line per twin (or path) left
# pure; speedups_enabled() says exactly that; GATEWAY_BUILD_SPEEDUPS=yes still fails loudly (no-zstd: so does
# GATEWAY_ZLIB=zlib-ng, where zlib-ng is not installed); the test command
# passes with a loud skip of the missing compiled tests, and fails when every twin is required.
# Test subset (TESTS below; the full suite runs in the compiled and wheel legs): the import/twin checks, both
# inflate twins, and the demo run end to end over loopback for every compression on the default and pure twins.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=.ci/lib.sh
source "$ROOT/.ci/lib.sh"

LEG=${1:?usage: fallback_leg.sh no-zstd|no-cc}
WORK=${WORK:?WORK must name a scratch directory}
TESTS=(tests/test_imports.py tests/test_twins.py tests/test_inflate.py tests/test_main.py)

case "$LEG" in
    no-zstd)
        mkdir -p "$WORK/no-zstd-include"
        printf '#error "zstd.h hidden on purpose by .ci/fallback_leg.sh: a machine without libzstd-dev"\n' \
            >"$WORK/no-zstd-include/zstd.h"
        # CPATH is searched before /usr/include by gcc and clang: the real zstd.h is never reached.
        BUILD_ENV=(CPATH="$WORK/no-zstd-include")
        EXPECTED="{'framing': True, 'inflate': True, 'inflate_zstd': False, 'envelope': True}"
        EXPECTED_LINE="the inflate twin's zstd-stream path is installed pure: zstd.h not found"
        ;;
    no-cc)
        BUILD_ENV=(CC=false)
        EXPECTED="{'framing': False, 'inflate': False, 'inflate_zstd': False, 'envelope': False}"
        EXPECTED_LINE="the framing twin is installed pure: no working C compiler"
        ;;
    *) die "unknown leg $LEG" ;;
esac

CLONE="$WORK/clone-$LEG"
fresh_clone "$CLONE"
cd "$CLONE"

step "$LEG: README quick start in a fresh clone (${BUILD_ENV[*]}; PIP_VERBOSE=1 to show the build lines)"
env "${BUILD_ENV[@]}" PIP_VERBOSE=1 bash -c \
    "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/python -m gateway --demo" \
    >"$WORK/$LEG-quickstart.log" 2>&1 || { tail -50 "$WORK/$LEG-quickstart.log"; die "$LEG: quick start failed"; }
grep -h "gateway build:" "$WORK/$LEG-quickstart.log" | sed 's/^ *//' | sort -u
grep -q "$EXPECTED_LINE" "$WORK/$LEG-quickstart.log" || die "$LEG: no build line saying '$EXPECTED_LINE'"
echo "demo printed $(grep -c '^{"t"' "$WORK/$LEG-quickstart.log") event lines"
grep -q '^{"t":"READY"' "$WORK/$LEG-quickstart.log" || die "$LEG: the demo printed no READY event"
expect_speedups .venv/bin/python "$EXPECTED"

step "$LEG: GATEWAY_BUILD_SPEEDUPS=yes must fail loudly here"
if env "${BUILD_ENV[@]}" GATEWAY_BUILD_SPEEDUPS=yes .venv/bin/pip wheel -q --no-deps -w "$WORK/$LEG-yes" . \
    >"$WORK/$LEG-yes.log" 2>&1; then
    die "$LEG: GATEWAY_BUILD_SPEEDUPS=yes built a wheel"
fi
grep -h "GATEWAY_BUILD_SPEEDUPS=yes but" "$WORK/$LEG-yes.log" | sed 's/^ *//' | head -1 \
    | grep . || die "$LEG: the failed build does not say why"

if [ "$LEG" = no-zstd ] && [ ! -e /usr/include/zlib-ng.h ] && [ ! -e /usr/local/include/zlib-ng.h ]; then
    step "$LEG: GATEWAY_ZLIB=zlib-ng must fail loudly where zlib-ng cannot be found (auto took the system zlib)"
    grep -h "gateway build: the inflate twin links zlib$" "$WORK/$LEG-quickstart.log" | sed 's/^ *//' | head -1 \
        | grep . || die "$LEG: the quick start did not say that the inflate twin links the system zlib"
    if env "${BUILD_ENV[@]}" GATEWAY_ZLIB=zlib-ng .venv/bin/pip wheel -q --no-deps -w "$WORK/$LEG-zlib-ng" . \
        >"$WORK/$LEG-zlib-ng.log" 2>&1; then
        die "$LEG: GATEWAY_ZLIB=zlib-ng built a wheel without zlib-ng"
    fi
    grep -h "GATEWAY_ZLIB=zlib-ng but" "$WORK/$LEG-zlib-ng.log" | sed 's/^ *//' | head -1 \
        | grep . || die "$LEG: the failed zlib-ng build does not say why"
fi

step "$LEG: README test command (.venv/bin/python -m pytest ${TESTS[*]}), missing twins allowed"
GATEWAY_REQUIRE_SPEEDUPS=0 run_pytest .venv/bin/python "${TESTS[@]}" | tee "$WORK/$LEG-tests.log" | tail -4
grep -q "tests of compiled twins SKIPPED" "$WORK/$LEG-tests.log" || die "$LEG: the missing twins were not reported"

step "$LEG: the same with every twin required (GATEWAY_REQUIRE_SPEEDUPS=1) must fail"
if GATEWAY_REQUIRE_SPEEDUPS=1 .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_imports.py \
    >"$WORK/$LEG-required.log" 2>&1; then
    die "$LEG: the suite passed with a compiled twin missing and GATEWAY_REQUIRE_SPEEDUPS=1"
fi
grep -m1 "^E .*every compiled twin is required" "$WORK/$LEG-required.log" | cut -c1-200 \
    || die "$LEG: the required-twin failure does not say why"
