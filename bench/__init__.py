"""Benchmarks and the deterministic gateway traffic corpus (see ``bench.corpus``)."""
