# Helpers shared by the .ci/ scripts (sourced, not run).
# shellcheck shell=bash

PY=${PYTHON:-python3}
export PIP_DISABLE_PIP_VERSION_CHECK=1
# Installed beside gateway[test] where the whole suite runs: the chart test needs matplotlib (the bench extra).
EXTRA_TEST_DEPS=("matplotlib>=3.7")

step() { printf '\n==== [%s] %s ====\n' "$(date -u +%H:%M:%S)" "$*"; }

die() { printf 'CI FAILURE: %s\n' "$*" >&2; exit 1; }

# fresh_venv DIR: a new virtualenv (with the pip that Python bundles, as a new user has it).
fresh_venv() {
    rm -rf "$1"
    "$PY" -m venv "$1"
}

# run_pytest PYTHON ARGS...: pytest that must run at least one test (exit 5, "no tests collected", is a failure).
run_pytest() {
    local python=$1 rc=0
    shift
    "$python" -m pytest -q -p no:cacheprovider "$@" || rc=$?
    if [ "$rc" = 5 ]; then
        die "pytest collected no tests ($*)"
    fi
    [ "$rc" = 0 ] || die "pytest failed with exit code $rc ($*)"
}

# expect_speedups PYTHON EXPECTED: gateway.speedups_enabled() of that interpreter must be EXPECTED (a dict literal).
expect_speedups() {
    "$1" -c "
import ast, sys, gateway
got, want = gateway.speedups_enabled(), ast.literal_eval(sys.argv[1])
print('speedups_enabled():', got)
sys.exit(0 if got == want else f'expected {want}')" "$2"
}

# fresh_clone DIR: a clone of this repository's committed HEAD, as a new user gets it.
fresh_clone() {
    rm -rf "$1"
    git clone -q "$ROOT" "$1"
    echo "fresh clone of $(git -C "$1" rev-parse --short HEAD) in $1"
    if [ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no)" ]; then
        echo "note: $ROOT has uncommitted changes; the fresh clone tests the committed HEAD only"
    fi
}
