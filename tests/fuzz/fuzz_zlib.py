"""Fuzz target: the zlib-stream inflaters (see ``fuzz_inflate.py``)."""

from tests.fuzz.fuzz_inflate import check_zlib as check, main

if __name__ == "__main__":
    main("zlib")
