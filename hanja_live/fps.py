"""Frames per second, smoothed over about a second so the number on screen is readable."""

import math
import time
from typing import Optional


class FpsMeter(object):
    """Call ``tick()`` once per frame; ``value`` is the smoothed frame rate.

    Exponential smoothing with a time constant (not a per-frame factor): each interval ``dt``
    pulls the estimate towards ``1 / dt`` with weight ``1 - exp(-dt / time_constant_s)``, so
    the estimate covers the last ~``time_constant_s`` seconds whatever the frame rate, and a
    stall (long ``dt``) shows at once.
    """

    def __init__(self, time_constant_s=1.0):
        # type: (float) -> None
        if not time_constant_s > 0:
            raise ValueError("time_constant_s must be > 0, got %r" % (time_constant_s,))
        self.time_constant_s = float(time_constant_s)
        self._last = None  # type: Optional[float]
        self._value = 0.0

    @property
    def value(self):
        # type: () -> float
        """Smoothed frames per second; 0.0 until two ticks have been seen."""
        return self._value

    def reset(self):
        self._last = None
        self._value = 0.0

    def tick(self, now=None):
        # type: (Optional[float]) -> float
        """Count one frame at ``now`` (default time.monotonic()); returns the new value."""
        if now is None:
            now = time.monotonic()
        last, self._last = self._last, now
        if last is None:
            return self._value
        dt = now - last
        if dt <= 0:
            # same timestamp (or a clock step back): no interval to learn from
            self._last = max(last, now)
            return self._value
        rate = 1.0 / dt
        if self._value == 0.0:
            self._value = rate
        else:
            self._value += (1.0 - math.exp(-dt / self.time_constant_s)) * (rate - self._value)
        return self._value
