"""Figures over the inbox/outbox: delivery latencies become percentiles here."""

from __future__ import annotations


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile; ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]
