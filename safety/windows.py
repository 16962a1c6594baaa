"""A sliding window of values whose median costs no sort (the supervisor ticks every 2 s on a
minute of beats: sorting that minute again at every tick was most of its time).

:class:`SortedWindow` keeps the values in arrival order and, beside them, in sorted order: a
value comes in at the newest end and leaves at the oldest, each by bisection. Its
:meth:`~SortedWindow.median` is exactly ``statistics.median`` of the values in arrival order:
equal values keep their arrival order in the sorted list (``sorted`` is stable, insertion goes
after its equals) and a value leaves as the very object that came in, so even 0.0 and -0.0 sit
where ``sorted`` would put them. A NaN has no place in an order: while one is in the window the
median is ``statistics.median`` itself, over the arrival order.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections import deque


class SortedWindow:
    def __init__(self) -> None:
        self._order: deque[float] = deque()
        self._sorted: list[float] = []
        self._nan = 0

    def __len__(self) -> int:
        return len(self._order)

    def append(self, value: float) -> None:
        self._order.append(value)
        if math.isnan(value):
            self._nan += 1
        else:
            bisect.insort_right(self._sorted, value)

    def popleft(self) -> float:
        value = self._order.popleft()
        if math.isnan(value):
            self._nan -= 1
            return value
        i = bisect.bisect_left(self._sorted, value)
        # the object that came in, not merely an equal one (0.0 == -0.0)
        while self._sorted[i] is not value:
            i += 1
        del self._sorted[i]
        return value

    def median(self) -> float:
        """``statistics.median`` of the values (``StatisticsError`` when there are none)."""
        if self._nan:
            return statistics.median(self._order)
        values = self._sorted
        n = len(values)
        if n == 0:
            raise statistics.StatisticsError("no median for empty data")
        if n % 2 == 1:
            return values[n // 2]
        i = n // 2
        return (values[i - 1] + values[i]) / 2
