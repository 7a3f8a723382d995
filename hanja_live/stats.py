"""Summaries of timings for the benchmark: median, 95th percentile, rates from timestamps."""

from typing import Dict, Optional, Sequence

import numpy as np


def describe(values):
    # type: (Sequence[float]) -> Optional[Dict[str, float]]
    """{"median", "p95", "mean", "n"} of ``values``; None when there are none."""
    data = np.asarray(values, dtype=np.float64).reshape(-1)
    if data.size == 0:
        return None
    return {"median": float(np.median(data)), "p95": float(np.percentile(data, 95)),
            "mean": float(data.mean()), "n": int(data.size)}


def rate(timestamps):
    # type: (Sequence[float]) -> Optional[float]
    """Events per second from the times they happened: (n - 1) / (last - first).

    Counting intervals, not events, leaves out the time before the first one (start-up);
    None with fewer than two events or no time between them.
    """
    if len(timestamps) < 2:
        return None
    span = float(max(timestamps)) - float(min(timestamps))
    return (len(timestamps) - 1) / span if span > 0 else None


def spread(values):
    # type: (Sequence[Optional[float]]) -> Optional[Dict[str, float]]
    """{"median", "min", "max", "n"} of the values that are not None (runs of one figure)."""
    data = [float(v) for v in values if v is not None]
    if not data:
        return None
    return {"median": float(np.median(data)), "min": min(data), "max": max(data),
            "n": len(data)}
