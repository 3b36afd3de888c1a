"""The bench's noise rule for a paired measurement: a seeded percentile bootstrap interval of a median.

A bench times the communicator and its reference (raw torch.distributed) in alternation within each repeat,
so repeat i of one and repeat i of the other are one pair, and their ratio cancels what the host did to that
repeat. The ratios of a row's repeats are resampled with replacement RESAMPLES times; the interval runs from
the 2.5th to the 97.5th percentile of the resamples' medians. numpy's generator is seeded from the row's
label, so the same document always gives the same interval.
"""

from __future__ import annotations

import statistics
import zlib
from collections.abc import Sequence

import numpy

CONFIDENCE = 0.95
RESAMPLES = 2000
# A document is untrusted: resampling holds RESAMPLES x values numbers in memory at once.
MAX_VALUES = 1000


def median_interval(values: Sequence[float], seed: str) -> tuple[float, float, float]:
    """median(values) and its CONFIDENCE percentile bootstrap interval; `seed` (a row's label) fixes it.

    ValueError for no values or more than MAX_VALUES."""
    if not values or len(values) > MAX_VALUES:
        raise ValueError(f"{len(values)} values: a bootstrap interval takes 1 to {MAX_VALUES}")
    generator = numpy.random.default_rng(zlib.crc32(seed.encode("utf-8")))
    array = numpy.asarray(values, dtype=numpy.float64)
    picks = generator.integers(0, array.size, size=(RESAMPLES, array.size))
    tail = (1 - CONFIDENCE) / 2
    low, high = numpy.quantile(numpy.median(array[picks], axis=1), [tail, 1 - tail])
    return statistics.median(values), float(low), float(high)
