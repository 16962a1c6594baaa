"""The one clock abstraction: monotonic real time, or a virtual clock that jumps.

Nothing in vasopilot reads ``time.time()``; wall-clock time is only a label in journals, and it
comes from :meth:`Clock.wall_label`.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    def now_s(self) -> float:
        """Seconds on a monotonic time line (origin is arbitrary)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block for ``seconds`` (a virtual clock jumps instead)."""
        ...

    async def sleep_async(self, seconds: float) -> None:
        """Yield to the event loop for ``seconds`` (a virtual clock jumps instead)."""
        ...

    def wall_label(self) -> str:
        """ISO-8601 UTC label of the current instant, for journals only."""
        ...


class MonotonicClock:
    """Real time: ``time.monotonic`` for intervals, the wall clock only as a label."""

    def now_s(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    async def sleep_async(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def wall_label(self) -> str:
        return datetime.now(UTC).isoformat(timespec="milliseconds")


class VirtualClock:
    """Simulated time that only moves when told to, so a day runs in seconds.

    ``epoch`` anchors the wall label, so journals of simulated runs still read as dates.
    """

    def __init__(self, start_s: float = 0.0, epoch: datetime | None = None) -> None:
        self._t_s = start_s
        self._start_s = start_s
        self._epoch = epoch or datetime(2026, 1, 1, tzinfo=UTC)

    def now_s(self) -> float:
        return self._t_s

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError(f"a clock cannot run backwards ({seconds} s)")
        self._t_s += seconds
        return self._t_s

    def advance_to(self, t_s: float) -> float:
        if t_s < self._t_s:
            raise ValueError(f"a clock cannot run backwards (from {self._t_s} s to {t_s} s)")
        self._t_s = t_s
        return self._t_s

    def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))

    async def sleep_async(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)

    def wall_label(self) -> str:
        elapsed = timedelta(seconds=self._t_s - self._start_s)
        return (self._epoch + elapsed).isoformat(timespec="milliseconds")
