"""MAP tracking (S5-S7): which MAP can be trusted, its trend and median, and the alarms.

Pure: beats come in, and :meth:`MapWatch.assess` returns alarm orders for the supervisor to
enact. Without a good beat for ``stale_after_s`` the MAP is untrusted (a medium alarm), and for
``stale_high_after_s`` a high one. Supervision has to begin before it can miss a beat, so the
ages count from :meth:`MapWatch.begin` when no good beat has come yet: a start is not 60 s of
missing data. Weaning (S7) judges the floor on :meth:`MapWatch.median_map_mmhg`, the median of
the good beats of the last minute: a respiratory dip or one noisy beat is not hypotension.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from safety.windows import SortedWindow
from vasopilot.core.events import AlarmCode
from vasopilot.core.types import Beat, BeatQuality, Priority

# MAP_LOW looks at a trend of good beats and clears a little above the limit.
MAP_LOW_AVERAGING_S = 10.0
MAP_LOW_HYSTERESIS_MMHG = 2.0
# S7's trusted MAP: the median of the good beats of about the last minute; with fewer beats
# than this (40 bpm for half of it) there is no median to judge on.
MEDIAN_WINDOW_S = 60.0
MEDIAN_MIN_BEATS = 20


@dataclass(frozen=True)
class AlarmOrder:
    """A decision about one alarm: raise it at ``priority`` with ``message`` (``momentary``: it
    reports something that happened, and clears once acknowledged), or (``priority`` None) its
    cause is gone."""

    code: AlarmCode
    priority: Priority | None = None
    message: str = ""
    momentary: bool = False


# One "cause gone" order per code, shared (they are immutable): the watches order most alarms
# cleared at every tick.
_CLEARED = {code: AlarmOrder(code) for code in AlarmCode}


def cleared(code: AlarmCode) -> AlarmOrder:
    """The order that ``code``'s cause is gone."""
    return _CLEARED[code]


class MapWatch:
    def __init__(self, stale_after_s: float, stale_high_after_s: float) -> None:
        self._stale_after_s = stale_after_s
        self._stale_high_after_s = stale_high_after_s
        self._since_s: float | None = None
        self.last_good: Beat | None = None
        self.last_beat: Beat | None = None
        self.trend_mmhg: float | None = None
        # the good beats of the last minute: their times, and their MAPs kept sorted (S7's
        # median is read at every tick)
        self._recent_t_s: deque[float] = deque()
        self._recent_map = SortedWindow()

    @property
    def stale_after_s(self) -> float:
        return self._stale_after_s

    def begin(self, now_s: float) -> None:
        """Supervision has begun (the first call with a time); later calls change nothing."""
        if self._since_s is None:
            self._since_s = now_s

    def on_beat(self, beat: Beat) -> None:
        self.last_beat = beat
        newest = self.last_good
        if not beat.is_good or (newest is not None and beat.t_s < newest.t_s):
            return
        if newest is None or self.trend_mmhg is None:
            self.trend_mmhg = beat.map_mmhg
        else:
            weight = 1.0 - math.exp(-(beat.t_s - newest.t_s) / MAP_LOW_AVERAGING_S)
            self.trend_mmhg += weight * (beat.map_mmhg - self.trend_mmhg)
        self.last_good = beat
        self._recent_t_s.append(beat.t_s)
        self._recent_map.append(beat.map_mmhg)
        self._forget(beat.t_s)

    def trusted(self, now_s: float) -> bool:
        good = self.last_good
        return good is not None and now_s - good.t_s < self._stale_after_s

    def trusted_map_mmhg(self, now_s: float) -> float | None:
        good = self.last_good
        return good.map_mmhg if good is not None and self.trusted(now_s) else None

    def median_map_mmhg(self, now_s: float) -> float | None:
        """S7's trusted MAP: the median of the good beats of the last minute, while the MAP is
        trusted and there are enough of them (``None`` otherwise)."""
        self._forget(now_s)
        if not self.trusted(now_s) or len(self._recent_map) < MEDIAN_MIN_BEATS:
            return None
        return self._recent_map.median()

    def _forget(self, now_s: float) -> None:
        """Let the beats older than a minute before ``now_s`` go."""
        times = self._recent_t_s
        while times and times[0] < now_s - MEDIAN_WINDOW_S:
            times.popleft()
            self._recent_map.popleft()

    def last_quality(self, now_s: float) -> BeatQuality | None:
        """The quality of the last beat if it is recent, else ``None`` (no beats)."""
        last = self.last_beat
        if last is None or now_s - last.t_s >= self._stale_after_s:
            return None
        return last.quality

    def untrusted_for_s(self, now_s: float) -> float:
        """How long there has been no trusted MAP (0 while there is one)."""
        if self.trusted(now_s):
            return 0.0
        good = self.last_good
        since_s = good.t_s if good is not None else self._since_s
        return 0.0 if since_s is None else max(0.0, now_s - since_s)

    def assess(self, now_s: float, dose_mcg_min: float,
               floor_mmhg: float) -> tuple[AlarmOrder, ...]:
        """MAP_STALE (S5) and MAP_LOW (trend under the floor F, with hysteresis; S6)."""
        if self.trusted(now_s):
            return (_CLEARED[AlarmCode.MAP_STALE], *self._map_low(floor_mmhg))
        age_s = self.untrusted_for_s(now_s)
        if age_s < self._stale_after_s:
            return ()
        priority = Priority.HIGH if age_s >= self._stale_high_after_s else Priority.MEDIUM
        quality = self.last_quality(now_s) or "no beats"
        return (AlarmOrder(AlarmCode.MAP_STALE, priority,
                           f"no trusted MAP for {age_s:.0f} s (last beat: {quality}); dose held "
                           f"at {dose_mcg_min:.1f} mcg/min"),)

    def _map_low(self, floor_mmhg: float) -> tuple[AlarmOrder, ...]:
        """On a 10-second trend of good beats, with hysteresis: single beats and respiratory
        swings around the floor must not make the alarm chatter."""
        trend = self.trend_mmhg
        if trend is None:
            return ()
        if trend < floor_mmhg:
            return (AlarmOrder(AlarmCode.MAP_LOW, Priority.MEDIUM,
                               f"MAP {trend:.1f} mmHg (10 s trend) is below the floor of "
                               f"{floor_mmhg:.0f} mmHg"),)
        if trend >= floor_mmhg + MAP_LOW_HYSTERESIS_MMHG:
            return (_CLEARED[AlarmCode.MAP_LOW],)
        return ()
