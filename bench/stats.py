"""Summaries of repeated measurements (standard library only)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Summary:
    """The median and range of one figure over its repetitions."""

    median: float
    low: float
    high: float
    values: tuple[float, ...]

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        """Summarise ``values`` (at least one)."""
        if not values:
            raise ValueError("no values to summarise")
        return cls(statistics.median(values), min(values), max(values), tuple(values))

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        data = asdict(self)
        data["values"] = list(self.values)
        return data


def percentile(samples: Sequence[float], pct: int) -> float:
    """The ``pct``-th percentile (1..99) of ``samples``, interpolated like numpy's default."""
    if not 1 <= pct <= 99:
        raise ValueError("pct must be within 1..99")
    if len(samples) < 2:
        return float(samples[0])
    return statistics.quantiles(samples, n=100, method="inclusive")[pct - 1]
