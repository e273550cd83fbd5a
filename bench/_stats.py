"""Statistics shared by the benchmark scripts (run as ``python bench/NAME.py``)."""

from __future__ import annotations


def pct(values: list[float], q: float) -> float:
    """The ``q``-th percentile of ``values`` (nearest rank; NaN when there are none)."""
    values = sorted(values)
    if not values:
        return float("nan")
    idx = min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))
    return values[idx]
