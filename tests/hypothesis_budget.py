"""How many examples a property test runs: its own budget under the deterministic ``ci`` profile, the profile's
``max_examples`` when that is larger (``--hypothesis-profile randomized`` for long runs, see the README)."""

from hypothesis import settings


def examples(budget: int) -> int:
    return max(budget, settings.default.max_examples) if settings.default.max_examples > 100 else budget
