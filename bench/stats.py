"""Percentiles and latency summaries."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ascending ``sorted_values``; NaN when empty.

    Linear interpolation between the two closest ranks (numpy's default method), so p50 of an even
    count is the mean of the two middle values.
    """
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    n = len(sorted_values)
    if n == 0:
        return math.nan
    position = (n - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, n - 1)
    fraction = position - low
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * fraction


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """Latency percentiles in milliseconds (NaN when there were no samples)."""

    count: int
    p50: float
    p90: float
    p99: float
    max: float
    mean: float

    @classmethod
    def from_seconds(cls, samples: Iterable[float]) -> LatencySummary:
        """Summarize latency samples given in seconds."""
        ordered = sorted(samples)
        if not ordered:
            return cls(0, math.nan, math.nan, math.nan, math.nan, math.nan)
        ms = 1000.0
        return cls(
            count=len(ordered),
            p50=percentile(ordered, 50) * ms,
            p90=percentile(ordered, 90) * ms,
            p99=percentile(ordered, 99) * ms,
            max=ordered[-1] * ms,
            mean=math.fsum(ordered) / len(ordered) * ms,
        )


def median(values: Iterable[float]) -> float:
    """Median of the values that are not NaN; NaN when none are."""
    kept = [v for v in values if not math.isnan(v)]
    return statistics.median(kept) if kept else math.nan


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, NaN when either is NaN or the denominator is zero."""
    if math.isnan(numerator) or math.isnan(denominator) or denominator == 0:
        return math.nan
    return numerator / denominator


def split_evenly(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` integers differing by at most one, larger ones first."""
    if parts <= 0:
        raise ValueError("parts must be positive")
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]
