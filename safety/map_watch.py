"""MAP tracking (S5, S6): which MAP can be trusted, its trend, and the alarms it calls for.

Pure: beats come in, and :meth:`MapWatch.assess` returns alarm orders for the supervisor to
enact. Without a good beat for ``stale_after_s`` the MAP is untrusted (a medium alarm), and for
``stale_high_after_s`` a high one. Supervision has to begin before it can miss a beat, so the
ages count from :meth:`MapWatch.begin` when no good beat has come yet: a start is not 60 s of
missing data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vasopilot.core.events import AlarmCode
from vasopilot.core.types import Beat, BeatQuality, Priority

# MAP_LOW looks at a trend of good beats and clears a little above the limit.
MAP_LOW_AVERAGING_S = 10.0
MAP_LOW_HYSTERESIS_MMHG = 2.0


@dataclass(frozen=True)
class AlarmOrder:
    """A decision about one alarm: raise it at ``priority`` with ``message`` (``momentary``: it
    reports something that happened, and clears once acknowledged), or (``priority`` None) its
    cause is gone."""

    code: AlarmCode
    priority: Priority | None = None
    message: str = ""
    momentary: bool = False


class MapWatch:
    def __init__(self, stale_after_s: float, stale_high_after_s: float) -> None:
        self._stale_after_s = stale_after_s
        self._stale_high_after_s = stale_high_after_s
        self._since_s: float | None = None
        self.last_good: Beat | None = None
        self.last_beat: Beat | None = None
        self.trend_mmhg: float | None = None

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

    def trusted(self, now_s: float) -> bool:
        good = self.last_good
        return good is not None and now_s - good.t_s < self._stale_after_s

    def trusted_map_mmhg(self, now_s: float) -> float | None:
        good = self.last_good
        return good.map_mmhg if good is not None and self.trusted(now_s) else None

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
               lower_limit_mmhg: float) -> tuple[AlarmOrder, ...]:
        """MAP_STALE (S5) and MAP_LOW (trend under the lower limit, with hysteresis)."""
        if self.trusted(now_s):
            return (AlarmOrder(AlarmCode.MAP_STALE), *self._map_low(lower_limit_mmhg))
        age_s = self.untrusted_for_s(now_s)
        if age_s < self._stale_after_s:
            return ()
        priority = Priority.HIGH if age_s >= self._stale_high_after_s else Priority.MEDIUM
        quality = self.last_quality(now_s) or "no beats"
        return (AlarmOrder(AlarmCode.MAP_STALE, priority,
                           f"no trusted MAP for {age_s:.0f} s (last beat: {quality}); dose held "
                           f"at {dose_mcg_min:.1f} mcg/min"),)

    def _map_low(self, lower_limit_mmhg: float) -> tuple[AlarmOrder, ...]:
        """On a 10-second trend of good beats, with hysteresis: single beats and respiratory
        swings around the limit must not make the alarm chatter."""
        trend = self.trend_mmhg
        if trend is None:
            return ()
        if trend < lower_limit_mmhg:
            return (AlarmOrder(AlarmCode.MAP_LOW, Priority.MEDIUM,
                               f"MAP {trend:.1f} mmHg (10 s trend) is below the lower limit of "
                               f"{lower_limit_mmhg:.0f} mmHg"),)
        if trend >= lower_limit_mmhg + MAP_LOW_HYSTERESIS_MMHG:
            return (AlarmOrder(AlarmCode.MAP_LOW),)
        return ()
