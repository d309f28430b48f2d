"""Fuzz target: the zstd-stream inflaters (see ``fuzz_inflate.py``)."""

from tests.fuzz.fuzz_inflate import check_zstd as check, main

if __name__ == "__main__":
    main("zstd")
