"""Cython twins of the hot modules; import them only through their selectors (gateway/_framing.py, ...)."""
