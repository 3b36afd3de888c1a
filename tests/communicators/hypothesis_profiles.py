"""The Hypothesis profiles of the conformance suite: `ci` (the default) and `deep`.

`ci` is fixed and derandomized: every run checks the same examples, few enough for the cpu cells to stay
fast, so a failure in CI is a change in the code, never a lucky draw. `deep` (`--hypothesis-profile deep`,
for nightly and qualification runs) searches far more examples from a new seed each run; the seed is
printed in the report header and in every failure, and `--hypothesis-seed N` replays it.
"""

from __future__ import annotations

from hypothesis import settings

CI_PROFILE = "ci"
DEEP_PROFILE = "deep"

# Settings that the ranks' lockstep needs (no database, no deadline, no health checks) are forced by
# lockstep.given_on_ranks on every profile; these are the ones that choose how hard to search.
settings.register_profile(CI_PROFILE, derandomize=True, max_examples=20, print_blob=False)
settings.register_profile(DEEP_PROFILE, derandomize=False, max_examples=400, print_blob=True)
