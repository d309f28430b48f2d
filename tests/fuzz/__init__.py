"""Coverage-guided differential fuzz targets (atheris) for the hot modules and the sans-I/O protocol core.

Run them with ``python -m tests.fuzz`` (see ``tests/fuzz/__main__.py`` and README "Hardening"). Each target module
has a ``check(data: bytes)`` function that raises on a finding and needs no atheris, so the committed corpora and
regression inputs are replayed by ``tests/test_fuzz_regressions.py`` in the normal test run.
"""
