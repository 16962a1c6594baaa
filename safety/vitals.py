"""Heart rate, rhythm and systolic pressure from the trusted beats (issue 19's guard rails).

Norepinephrine can cause tachycardia and arrhythmias, so rhythm monitoring is mandatory; the
older guideline keeps SBP > 90 mmHg, and a previously hypertensive patient no more than 40 mmHg
below the usual SBP. Pure: good beats come in with :meth:`VitalsWatch.on_beat`, and
:meth:`VitalsWatch.assess` returns alarm orders for the supervisor to enact. Only beats of good
quality count; an artefact or a gap in the data neither raises nor clears anything, and a spell
without trusted beats restarts every "sustained for" clock.

No alarm storm: a rate or a pressure is a 10 s median (one ectopic beat or a respiratory dip
is not a trend), it must stay beyond its limit for the whole sustain time, it clears only past
a hysteresis margin held for half that time; an irregular rhythm must last
:data:`RHYTHM_SUSTAIN_S` and, once cleared, is not raised again for :data:`RHYTHM_REARM_S`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from safety.map_watch import AlarmOrder, cleared
from safety.windows import SortedWindow
from vasopilot.core.events import AlarmCode
from vasopilot.core.types import Beat, Priority

MEDIAN_S = 10.0
RHYTHM_WINDOW_S = 60.0
# A minute of beats is judged only when it has enough of them (30 pairs: 30 bpm at least).
RHYTHM_MIN_PAIRS = 30
# Two good beats are neighbours when the second starts one interval (±20 %) after the first.
NEIGHBOUR_TOLERANCE = 0.2
RHYTHM_CLEAR_FRACTION = 0.7
# The minute's irregularity must stay over the threshold this long (a burst of ectopic beats
# passes), and under the clearing level twice as long.
RHYTHM_SUSTAIN_S = 30.0
RHYTHM_REARM_S = 600.0
HR_HYSTERESIS_BPM = 5.0
SBP_HYSTERESIS_MMHG = 5.0
# An SBP alarm gated on the floor clears once the MAP is this far above it (MAP_LOW's margin).
SBP_MAP_CLEAR_MMHG = 2.0


class Sustained:
    """A condition that becomes true after holding for ``on_s`` and false after its opposite
    (past the hysteresis) has held for ``off_s``; times in seconds of the caller's clock."""

    def __init__(self, on_s: float, off_s: float) -> None:
        self._on_s = on_s
        self._off_s = off_s
        self._beyond_since: float | None = None
        self._back_since: float | None = None
        self.active = False

    def update(self, now_s: float, *, beyond: bool, back: bool) -> bool:
        if beyond:
            self._back_since = None
            self._beyond_since = now_s if self._beyond_since is None else self._beyond_since
            if now_s - self._beyond_since >= self._on_s:
                self.active = True
        else:
            self._beyond_since = None
        if back:
            self._back_since = now_s if self._back_since is None else self._back_since
            if now_s - self._back_since >= self._off_s:
                self.active = False
        elif not beyond:
            self._back_since = None
        return self.active

    def interrupt(self) -> None:
        """The data stopped: whatever was building up starts again; the verdict stays."""
        self._beyond_since = self._back_since = None


@dataclass(frozen=True)
class VitalsLimits:
    """Limits in bpm and mmHg, times in s (``SafetySettings`` and the patient give them)."""

    tachycardia_bpm: float = 130.0
    bradycardia_bpm: float = 40.0
    heart_rate_sustain_s: float = 60.0
    rhythm_irregularity: float = 0.1
    sbp_alarm_mmhg: float = 90.0
    sbp_sustain_s: float = 60.0
    stale_after_s: float = 10.0


class RhythmWindow:
    """The good beats of the last minute with the irregularity kept up to date as beats come
    and go: the median change between neighbouring beat intervals over the median interval,
    or ``None`` with too few neighbouring pairs. Each good beat's interval is 60 / its HR
    (onset to onset); a missing or untrusted beat between two good ones breaks the pair, so a
    dropped beat does not read as irregularity; a beat without a positive HR has no interval,
    and no minute with one in it is scored.

    Each beat's interval and its change from the beat before (when they are neighbours) enter
    sorted windows as it comes and leave as the minute moves on, so a tick reads two medians
    instead of sorting the minute again (the same numbers as sorting it: ``safety.windows``).
    """

    def __init__(self) -> None:
        self.beats: deque[Beat] = deque()
        self._rr_s: deque[float | None] = deque()  # per beat: its interval (None: no HR)
        # per beat: the change from the beat before it in the window, when they are neighbours
        self._change_s: deque[float | None] = deque()
        self._intervals = SortedWindow()
        self._changes = SortedWindow()
        self._no_rate = 0

    def append(self, beat: Beat) -> None:
        rr = 60.0 / beat.hr_bpm if beat.hr_bpm > 0 else None
        change = None
        if rr is not None and self.beats:
            prev, prev_rr = self.beats[-1], self._rr_s[-1]
            if prev_rr is not None \
                    and abs(beat.t_s - prev.t_s - prev_rr) <= NEIGHBOUR_TOLERANCE * prev_rr:
                change = abs(rr - prev_rr)
        self.beats.append(beat)
        self._rr_s.append(rr)
        self._change_s.append(change)
        if rr is None:
            self._no_rate += 1
        else:
            self._intervals.append(rr)
        if change is not None:
            self._changes.append(change)

    def popleft(self) -> None:
        self.beats.popleft()
        self._change_s.popleft()  # always None: the first beat has no beat before it
        if self._rr_s.popleft() is None:
            self._no_rate -= 1
        else:
            self._intervals.popleft()
        if self._change_s and self._change_s[0] is not None:
            # the new first beat's pair left with the old first beat
            self._changes.popleft()
            self._change_s[0] = None

    def irregularity(self) -> float | None:
        if self._no_rate or len(self._changes) < RHYTHM_MIN_PAIRS:
            return None
        return self._changes.median() / self._intervals.median()


class _Recent:
    """The good beats of the last :data:`MEDIAN_S` before the newest one, as sorted windows of
    their HR, SBP and MAP (their medians are read four times a tick)."""

    def __init__(self) -> None:
        self._t_s: deque[float] = deque()
        self.hr_bpm = SortedWindow()
        self.sbp_mmhg = SortedWindow()
        self.map_mmhg = SortedWindow()

    def append(self, beat: Beat) -> None:
        self._t_s.append(beat.t_s)
        self.hr_bpm.append(beat.hr_bpm)
        self.sbp_mmhg.append(beat.sbp_mmhg)
        self.map_mmhg.append(beat.map_mmhg)
        while self._t_s[0] < beat.t_s - MEDIAN_S:
            self._t_s.popleft()
            self.hr_bpm.popleft()
            self.sbp_mmhg.popleft()
            self.map_mmhg.popleft()


class VitalsWatch:
    """TACHYCARDIA, BRADYCARDIA (medium), RHYTHM_IRREGULAR (low) and SBP_LOW (medium)."""

    def __init__(self, limits: VitalsLimits) -> None:
        self.limits = limits
        self._minute = RhythmWindow()
        self._recent = _Recent()
        hr_s, sbp_s = limits.heart_rate_sustain_s, limits.sbp_sustain_s
        self._tachy = Sustained(hr_s, hr_s / 2)
        self._brady = Sustained(hr_s, hr_s / 2)
        self._sbp = Sustained(sbp_s, sbp_s / 2)
        self._irregular = Sustained(RHYTHM_SUSTAIN_S, 2 * RHYTHM_SUSTAIN_S)
        self._rhythm_cleared_s: float | None = None

    def on_beat(self, beat: Beat) -> None:
        beats = self._minute.beats
        if not beat.is_good or (beats and beat.t_s <= beats[-1].t_s):
            return
        self._minute.append(beat)
        while beats[0].t_s < beat.t_s - RHYTHM_WINDOW_S:
            self._minute.popleft()
        self._recent.append(beat)

    def heart_rate_bpm(self, now_s: float) -> float | None:
        """The median heart rate of the good beats of the last 10 s, if they are fresh."""
        return self._recent.hr_bpm.median() if self._fresh(now_s) else None

    def sbp_mmhg(self, now_s: float) -> float | None:
        return self._recent.sbp_mmhg.median() if self._fresh(now_s) else None

    def map_mmhg(self, now_s: float) -> float | None:
        """The median MAP of the good beats of the last 10 s, if they are fresh."""
        return self._recent.map_mmhg.median() if self._fresh(now_s) else None

    @property
    def tachycardia(self) -> bool:
        return self._tachy.active

    def assess(self, now_s: float, *, sbp_floor_mmhg: float | None = None,
               sbp_watched: bool = True) -> tuple[AlarmOrder, ...]:
        """Every order at ``now_s``. SBP_LOW is raised only while ``sbp_watched`` (an alarm
        already raised stays until SBP recovers) and, given ``sbp_floor_mmhg``, only while the
        MAP is under that floor too (see :mod:`safety.guard_rails` for why)."""
        hr, sbp = self.heart_rate_bpm(now_s), self.sbp_mmhg(now_s)
        map_mmhg = self.map_mmhg(now_s)
        if hr is None or sbp is None or map_mmhg is None:
            for sustained in (self._tachy, self._brady, self._sbp):
                sustained.interrupt()
            return ()
        lim = self.limits
        tachy = self._tachy.update(now_s, beyond=hr > lim.tachycardia_bpm,
                                   back=hr < lim.tachycardia_bpm - HR_HYSTERESIS_BPM)
        brady = self._brady.update(now_s, beyond=hr < lim.bradycardia_bpm,
                                   back=hr > lim.bradycardia_bpm + HR_HYSTERESIS_BPM)
        floor = sbp_floor_mmhg
        low = self._sbp.update(
            now_s,
            beyond=sbp_watched and sbp < lim.sbp_alarm_mmhg
            and (floor is None or map_mmhg < floor),
            back=sbp > lim.sbp_alarm_mmhg + SBP_HYSTERESIS_MMHG
            or (floor is not None and map_mmhg >= floor + SBP_MAP_CLEAR_MMHG))
        # a message is written only for an alarm that is on (most ticks have none)
        return (
            AlarmOrder(AlarmCode.TACHYCARDIA, Priority.MEDIUM,
                       f"heart rate {hr:.0f}/min, above {lim.tachycardia_bpm:.0f} for over "
                       f"{lim.heart_rate_sustain_s:.0f} s: check the patient and the ECG; no "
                       "increase above the soft maximum until this is acknowledged")
            if tachy else cleared(AlarmCode.TACHYCARDIA),
            AlarmOrder(AlarmCode.BRADYCARDIA, Priority.MEDIUM,
                       f"heart rate {hr:.0f}/min, below {lim.bradycardia_bpm:.0f} for over "
                       f"{lim.heart_rate_sustain_s:.0f} s: check the patient and the ECG")
            if brady else cleared(AlarmCode.BRADYCARDIA),
            AlarmOrder(AlarmCode.SBP_LOW, Priority.MEDIUM,
                       f"systolic pressure {sbp:.0f} mmHg, below {lim.sbp_alarm_mmhg:.0f} for "
                       f"over {lim.sbp_sustain_s:.0f} s{_under_floor(map_mmhg, floor)}")
            if low else cleared(AlarmCode.SBP_LOW),
            *self._rhythm(now_s),
        )

    def _fresh(self, now_s: float) -> bool:
        beats = self._minute.beats
        return bool(beats) and now_s - beats[-1].t_s < self.limits.stale_after_s

    def _rhythm(self, now_s: float) -> tuple[AlarmOrder, ...]:
        beats = self._minute.beats
        if not beats or beats[-1].t_s - beats[0].t_s < RHYTHM_WINDOW_S - MEDIAN_S:
            return ()
        score = self._minute.irregularity()
        if score is None:
            return ()
        threshold = self.limits.rhythm_irregularity
        was = self._irregular.active
        rearmed = self._rhythm_cleared_s is None \
            or now_s - self._rhythm_cleared_s >= RHYTHM_REARM_S
        active = self._irregular.update(now_s, beyond=rearmed and score > threshold,
                                        back=score < RHYTHM_CLEAR_FRACTION * threshold)
        if was and not active:
            self._rhythm_cleared_s = now_s
        if not active:
            return (cleared(AlarmCode.RHYTHM_IRREGULAR),)
        return (AlarmOrder(AlarmCode.RHYTHM_IRREGULAR, Priority.LOW,
                           f"rhythm irregular: check the ECG (beat-to-beat interval change "
                           f"{score:.2f} of the interval over the last minute)"),)


def _under_floor(map_mmhg: float, floor_mmhg: float | None) -> str:
    if floor_mmhg is None:
        return ""
    return f" with MAP {map_mmhg:.0f} under the floor of {floor_mmhg:g}"
