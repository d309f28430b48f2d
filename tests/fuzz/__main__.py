"""Run the fuzz targets: ``python -m tests.fuzz [TARGET ...] [--smoke | --minutes M] [--sanitize] [--merge]``.

Targets: framing, zlib, zstd, envelope, protocol (default: all). Each run starts from the committed minimised corpus
(``tests/fuzz/corpus/<target>/``) plus seeds built from ``bench/corpus.py`` (``tests/fuzz/seeds.py``).

- ``--smoke`` (CI, ``.ci/fuzz-smoke``): a fixed number of executions per target with seed 1 (deterministic; 5-15 s
  per target under the sanitizer build, see SMOKE_RUNS), new inputs go to a temporary directory.
- ``--minutes M`` (long mode): M minutes per target; new inputs accumulate in ``--work`` (default ``.fuzz/``).
  ``--merge`` then minimises the committed corpus with what the run found (``-merge=1``).
- ``--python PATH``: the interpreter to fuzz with, e.g. the sanitizer build ``.venv-asan/bin/python``;
  ``--sanitize`` preloads the ASan runtime (atheris' ``asan_with_fuzzer.so`` when atheris was built from source with
  clang, else clang's ``libclang_rt.asan``, else ``$(cc -print-file-name=libasan.so)``) with
  ``ASAN_OPTIONS=detect_leaks=0`` (CPython's allocations at exit are not leaks) and ``malloc_context_size=2`` (see
  ``main``: deeper allocation stacks made a run slow and big); an ``ASAN_OPTIONS`` already set is appended and wins.

Crashes (a contract broken, a sanitizer report, a hang over 20 s) are written to ``<work>/artifacts/`` and make the
exit status non-zero. The last libFuzzer line of each target (executions, cov, ft, exec/s) is printed as a summary.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TARGETS = ("framing", "zlib", "zstd", "envelope", "protocol")
#: Executions of a smoke run per target (seed 1), the replay of the committed corpus and the seeds included (libFuzzer
#: replays all of them first, whatever -runs says: ~380 framing, ~100 zlib, ~130 zstd, ~500 envelope, ~490 protocol).
#: Measured on the quiet 2-core machine (2026-12-03, sanitizer build): framing 7 s, zlib 7 s, zstd 6 s, envelope 13 s,
#: protocol 14 s (it ran at ~80 exec/s: its former 6,000 hit the cap), so `.ci/fuzz-smoke` took about 90 s with
#: the sanitizer venv built from scratch (~43 s); the CI leg took 256 s with the former counts. Since
#: malloc_context_size=2 (see main) every target takes ~4 s (protocol ~320 exec/s wall, peak RSS 579 MB; was
#: 101/s and 742 MB): the run 62 s from scratch, 28 s with .venv-asan already built (was 47 s). Rates are not linear in
#: the count (12,000 framing executions took 28 s). protocol was then raised from 1,200 to 4,000 (~12 s at that rate).
#: A 60 s cap per target bounds a loaded machine.
SMOKE_RUNS = {"framing": 6_000, "zlib": 10_000, "zstd": 3_000, "envelope": 3_500, "protocol": 4_000}
MAX_LEN = {"framing": 8192, "zlib": 16384, "zstd": 16384, "envelope": 8192, "protocol": 4096}
_STATS = re.compile(r"#(\d+)\s+(DONE|pulse|NEW|REDUCE|INITED)\s+(?:cov: (\d+) ft: (\d+) )?corp: (\d+)/(\S+).*?exec/s: (\d+)")


def sanitizer_runtime(python: str) -> str | None:
    """The ASan runtime to LD_PRELOAD for ``python``'s sanitizer build."""
    probe = subprocess.run([python, "-c", "import atheris; print(atheris.path())"], capture_output=True, text=True)
    if probe.returncode == 0:
        merged = Path(probe.stdout.strip()) / "asan_with_fuzzer.so"
        if merged.exists():
            return str(merged)
    for compiler, name in (("clang", "libclang_rt.asan-x86_64.so"), ("cc", "libasan.so")):
        if shutil.which(compiler):
            path = subprocess.run([compiler, f"-print-file-name={name}"], capture_output=True, text=True).stdout.strip()
            if path and os.path.isabs(path) and os.path.exists(path):
                return path
    return None


def _shim(work: Path) -> Path:
    """A directory holding only ``tests`` and ``bench`` (symlinks), put on PYTHONPATH instead of the checkout, so that
    ``gateway`` comes from the interpreter's own install (the sanitizer build, say), not from the source tree."""
    shim = work / "pythonpath"
    shim.mkdir(parents=True, exist_ok=True)
    for name in ("tests", "bench"):
        link = shim / name
        if not link.exists():
            link.symlink_to(REPO / name)
    return shim


def run_target(target: str, args: argparse.Namespace, work: Path, env: dict[str, str]) -> tuple[int, str]:
    seeds = work / "seeds" / target
    shutil.rmtree(seeds, ignore_errors=True)
    subprocess.run([args.python, "-c", f"from tests.fuzz.seeds import write; from pathlib import Path; "
                    f"write(Path({str(seeds)!r}), {target!r})"], env=env, cwd=work, check=True)
    committed = REPO / "tests" / "fuzz" / "corpus" / target
    committed.mkdir(parents=True, exist_ok=True)
    artifacts = work / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    if args.smoke:
        output = Path(tempfile.mkdtemp(prefix=f"fuzz-{target}-", dir=work))
        limits = [f"-runs={SMOKE_RUNS[target]}", "-max_total_time=60"]
    else:
        output = work / "corpus" / target
        output.mkdir(parents=True, exist_ok=True)
        limits = [f"-max_total_time={int(args.minutes * 60)}"]
    command = [
        args.python, "-m", f"tests.fuzz.fuzz_{target}", str(output), str(committed), str(seeds),
        f"-seed={args.seed}", f"-max_len={MAX_LEN[target]}", "-timeout=20", "-rss_limit_mb=3072",
        f"-artifact_prefix={artifacts}/{target}-", "-print_final_stats=1", *limits,
    ]
    started = time.monotonic()
    log_path = work / f"{target}.log"
    if args.merge_only:
        code = 0
    else:
        with open(log_path, "w") as log:
            code = subprocess.run(command, env=env, cwd=work, stdout=log, stderr=subprocess.STDOUT).returncode
    elapsed = time.monotonic() - started
    text = log_path.read_text(errors="replace")
    stats = [m for m in _STATS.finditer(text)]
    cov = [m for m in stats if m.group(3)]
    last = stats[-1] if stats else None
    executions = int(last.group(1)) if last else 0
    known = sorted(set(re.findall(r"known open finding tolerated: (.*)", text)))
    summary = (f"{target:9s} {'ok  ' if code == 0 else 'FAIL'} {executions:>10,} execs in {elapsed:6.0f} s "
               f"({executions / max(elapsed, 1e-9):7.0f}/s)  cov {cov[-1].group(3) if cov else '-':>5} "
               f"ft {cov[-1].group(4) if cov else '-':>6}  corpus {last.group(5) if last else '-'} "
               f"({last.group(6) if last else '-'})")
    if known:
        summary += "\n          known, tolerated: " + "; ".join(known)
    if code != 0:
        tail = "\n".join(line for line in text.splitlines()[-40:] if not line.startswith("INFO: Instrumenting"))
        summary += f"\n--- {log_path} (last lines) ---\n{tail}\n---"
    if args.smoke:
        shutil.rmtree(output, ignore_errors=True)
    elif (args.merge or args.merge_only) and code == 0:
        merged = work / "merged" / target
        shutil.rmtree(merged, ignore_errors=True)
        merged.mkdir(parents=True)
        # libFuzzer's merge runs argv[0] again in a child process, so argv[0] must be executable.
        wrapper = work / f"fuzz_{target}.sh"
        wrapper.write_text(f'#!/bin/sh\nexec "{args.python}" -m tests.fuzz.fuzz_{target} "$@"\n')
        wrapper.chmod(0o755)
        merge_log = work / f"{target}-merge.log"
        with open(merge_log, "w") as log:
            subprocess.run([args.python, "-m", f"tests.fuzz.fuzz_{target}", "-merge=1", f"-max_len={MAX_LEN[target]}",
                            str(merged), str(committed), str(output)], env=dict(env, GATEWAY_FUZZ_ARGV0=str(wrapper)),
                           cwd=work, stdout=log, stderr=subprocess.STDOUT, check=True)
        if not any(merged.iterdir()):
            raise RuntimeError(f"merging the {target} corpus produced nothing; see {merge_log}")
        shutil.rmtree(committed)
        shutil.copytree(merged, committed)
        size = sum(path.stat().st_size for path in committed.iterdir())
        summary += f"\n          merged into {committed.relative_to(REPO)}: {len(list(committed.iterdir()))} files, {size:,} bytes"
    return code, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", choices=[*TARGETS, []], default=[])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--smoke", action="store_true", help="fixed executions per target, seed 1 (CI)")
    mode.add_argument("--minutes", type=float, default=10.0, help="minutes per target in long mode (default 10)")
    parser.add_argument("--python", default=sys.executable, help="interpreter to fuzz with (default: this one)")
    parser.add_argument("--sanitize", action="store_true", help="preload the ASan runtime (sanitizer build)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work", default=str(REPO / ".fuzz"), help="working directory (default .fuzz/)")
    parser.add_argument("--merge", action="store_true", help="minimise the committed corpus with the run's finds")
    parser.add_argument("--merge-only", action="store_true",
                        help="no fuzzing: merge what an earlier long run left in --work into the committed corpus")
    args = parser.parse_args(argv)
    if os.sep in args.python:
        args.python = os.path.abspath(args.python)  # the targets run with the work directory as cwd
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    (work / "artifacts").mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(_shim(work)), GATEWAY_FUZZ_INSTRUMENT="1", PYTHONHASHSEED="0",
               GATEWAY_FUZZ_ARTIFACTS=str(work / "artifacts"))
    if args.sanitize:
        runtime = sanitizer_runtime(args.python)
        if runtime is None:
            print("no ASan runtime found (install clang or gcc)", file=sys.stderr)
            return 2
        env["LD_PRELOAD"] = runtime
        # malloc_context_size=2: ASan records a stack for every malloc and free, with the fast (frame-pointer)
        # unwinder. atheris' hooks allocate twice per traced Python event (pybind11 argument vectors), and from the
        # third frame on (libstdc++, atheris, CPython: no frame pointers) the unwound "frames" are stale data, so
        # nearly every stack was new: the never-freed StackDepot held 6.25 M stacks (288 MB) after the protocol
        # smoke run and its lookups took 60 % of the time (120 exec/s, 870 MB; with 2 frames: 600 exec/s, 580 MB).
        # A report keeps its full access stack; an ASAN_OPTIONS of the caller's environment comes last and wins
        # (e.g. malloc_context_size=30 to replay a finding with longer allocation stacks).
        options = "detect_leaks=0:allocator_may_return_null=1:handle_segv=1:malloc_context_size=2"
        env["ASAN_OPTIONS"] = f"{options}:{os.environ['ASAN_OPTIONS']}" if os.environ.get("ASAN_OPTIONS") else options
        env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
        print(f"sanitizer runtime: {runtime}")
    failures = 0
    for target in args.targets or TARGETS:
        code, summary = run_target(target, args, work, env)
        print(summary, flush=True)
        failures += code != 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
