"""The dose's guard rails (issue 19): volume before escalation, the line, prolonged high doses.

Each watch is pure: the supervisor hands it the time and what it needs (the running dose, the
trusted MAP, whether the infusion runs) and enacts the alarm orders it returns.

- :class:`VolumeWatch`: "before substantially escalating the dose, the medical team must address
  uncorrected volume depletion". A dose that, within a window, doubles from a dose the patient
  was established on (the MAP held the floor on it; at least the start range's bottom) or rises
  from it by more than a set amount, to a level it has not held in the two hours before
  (climbing back after a dip is not an escalation), or reaches the soft maximum while MAP is
  still under the floor, opens a MEDIUM
  ``VOLUME_CHECK`` that only an operator's answer (:class:`~vasopilot.core.types.VolumeAnswer`)
  closes; the request rules hold every increase above the soft maximum while it is open.
- :class:`LineTimeWatch`: on a peripheral line, a LOW prompt to inspect the cannula site every
  interval of infusion and a MEDIUM alarm once the entry's peripheral maximum is reached, for
  as long as the infusion runs there.
- :class:`HighDoseWatch`: time above the soft maximum added up over a sliding window; beyond a
  limit a LOW advisory to check the perfusion of the extremities.

No prompt storm: after an answer the volume check measures escalation from the answered dose and
waits :data:`VOLUME_REARM_S` before it asks again; the high-dose advisory clears only well under
its limit; the cannula prompt comes once per interval.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from safety.map_watch import AlarmOrder
from vasopilot.core.events import AlarmCode
from vasopilot.core.types import Priority, VolumeAnswer

# After an answer the volume check asks again at the earliest this much later.
VOLUME_REARM_S = 900.0
# A dose that climbs back to a level it held in this long before the window is a recovery from
# a dip, not an escalation (a titrating controller swings around its patient's need).
VOLUME_LOOKBACK_S = 7200.0
# A dose on which the MAP held the floor this long is one the patient was established on (the
# end of induction in docs/virtual-patient.md's yardstick).
FLOOR_HOLD_S = 60.0
# The high-dose advisory clears once the time above the soft maximum falls under this share.
HIGH_DOSE_CLEAR_FRACTION = 0.75
VOLUME_CHECK_MESSAGE = ("check volume status before escalating further: {reason}; answer "
                        "assessed, fluid given or not indicated")


@dataclass(frozen=True)
class VolumeRule:
    """The drug entry's escalation thresholds, in mcg/min and s."""

    ratio: float
    rise_mcg_min: float
    window_s: float
    soft_max_mcg_min: float
    # The bottom of the start range: the lowest dose the library calls clinically active, so
    # the lowest a doubling is counted from (3 -> 6 mcg/min is not a substantial escalation).
    start_min_mcg_min: float


class _Dose:
    """A running dose from ``t_s`` on; ``held``: the MAP held the floor on it."""

    __slots__ = ("dose", "held", "t_s")

    def __init__(self, t_s: float, dose: float, *, held: bool = False) -> None:
        self.t_s = t_s
        self.dose = dose
        self.held = held


class VolumeWatch:
    def __init__(self, rule: VolumeRule) -> None:
        self.rule = rule
        # every change of the running dose; the oldest is in force at the window's start
        self._doses: deque[_Dose] = deque()
        self._at_floor_since_s: float | None = None
        self._message: str | None = None
        self._answered_s: float | None = None
        self.last_answer: VolumeAnswer | None = None
        # the dose was under the soft maximum since the last answer: reaching it is news
        self._under_soft_max = True

    @property
    def open(self) -> bool:
        """A volume check is waiting for an operator's answer."""
        return self._message is not None

    def answered_within_window(self, now_s: float) -> bool:
        return self._answered_s is not None and now_s - self._answered_s < self.rule.window_s

    def on_dose(self, now_s: float, dose_mcg_min: float) -> None:
        """The running dose at ``now_s`` (0: not running, which starts a new history)."""
        if dose_mcg_min <= 0:
            self._doses.clear()
            return
        if dose_mcg_min < self.rule.soft_max_mcg_min:
            self._under_soft_max = True
        if not self._doses or self._doses[-1].dose != dose_mcg_min:
            self._doses.append(_Dose(now_s, dose_mcg_min))
        start_s = now_s - self.rule.window_s - VOLUME_LOOKBACK_S
        while len(self._doses) > 1 and self._doses[1].t_s <= start_s:
            self._doses.popleft()

    def on_map(self, now_s: float, map_mmhg: float | None, floor_mmhg: float) -> None:
        """The MAP (a median of trusted beats; None: none) against the floor: a dose on which
        it held the floor for :data:`FLOOR_HOLD_S` is one the patient was established on."""
        if map_mmhg is None or map_mmhg < floor_mmhg:
            self._at_floor_since_s = None
            return
        if self._at_floor_since_s is None:
            self._at_floor_since_s = now_s
        if self._doses:
            newest = self._doses[-1]
            if now_s - max(newest.t_s, self._at_floor_since_s) >= FLOOR_HOLD_S:
                newest.held = True

    def assess(self, now_s: float, map_mmhg: float | None,
               floor_mmhg: float) -> AlarmOrder | None:
        """The open check's order, or a new check if the dose escalated; None: nothing to do."""
        if self._message is not None:
            return AlarmOrder(AlarmCode.VOLUME_CHECK, Priority.MEDIUM, self._message)
        if not self._doses or (self._answered_s is not None
                               and now_s - self._answered_s < VOLUME_REARM_S):
            return None
        reason = self._escalation(now_s)
        rule = self.rule
        if reason is None and (self._doses[-1].dose >= rule.soft_max_mcg_min
                               and self._under_soft_max and map_mmhg is not None
                               and map_mmhg < floor_mmhg
                               and not self.answered_within_window(now_s)):
            reason = (f"the dose reached the soft maximum of {rule.soft_max_mcg_min:.1f} mcg/min "
                      f"with MAP {map_mmhg:.1f} mmHg still under the floor of {floor_mmhg:g}")
        return None if reason is None else self.ask(reason)

    def _escalation(self, now_s: float) -> str | None:
        """Why the running dose is a substantial escalation within the window, if it is: from
        a dose the patient was established on (the MAP held the floor on it), so the induction
        ramp from the start dose up to the first dose that holds the floor is not one."""
        rule = self.rule
        dose = self._doses[-1].dose
        since_s = now_s - rule.window_s
        if self._answered_s is not None:
            since_s = max(since_s, self._answered_s)
        before = [d for d in self._doses if d.t_s <= since_s]
        # the doses in force since then: the last set before it, and every later one
        in_force = [d for d in self._doses if d.t_s > since_s] + before[-1:]
        baselines = [d.dose for d in in_force if d.held]
        # climbing back to a level held in the lookback before then is a recovery from a dip
        if not baselines or dose <= max((d.dose for d in before), default=0.0):
            return None
        baseline = min(baselines)
        window_min = rule.window_s / 60.0
        if baseline >= rule.start_min_mcg_min and dose >= rule.ratio * baseline:
            return (f"the dose went from {baseline:.1f} to {dose:.1f} mcg/min "
                    f"(x{dose / baseline:.1f}) within {window_min:.0f} min")
        if dose - baseline > rule.rise_mcg_min:
            return (f"the dose rose by {dose - baseline:.1f} mcg/min (from {baseline:.1f} to "
                    f"{dose:.1f}) within {window_min:.0f} min")
        return None

    def ask(self, reason: str) -> AlarmOrder:
        """Open a check (or restate the open one) for ``reason``."""
        if self._message is None:
            self._message = VOLUME_CHECK_MESSAGE.format(reason=reason)
        return AlarmOrder(AlarmCode.VOLUME_CHECK, Priority.MEDIUM, self._message)

    def answer(self, now_s: float, answer: VolumeAnswer) -> AlarmOrder:
        """An operator answered (with or without an open check): escalation is measured from
        here on, and the check's cause is gone."""
        self._message = None
        self._answered_s = now_s
        if self._doses:  # the dose the team has assessed is one to escalate from
            self._doses[-1].held = True
        self.last_answer = answer
        self._under_soft_max = False
        return AlarmOrder(AlarmCode.VOLUME_CHECK)

    def restore(self, doses: Sequence[tuple[float, float]], *, answered_s: float | None,
                open_message: str | None) -> None:
        """After a restart: the journal's doses ((t_s on this clock, mcg/min), oldest first),
        its last answer and the check it left open. The journal keeps no MAP, so each dose
        counts as one the patient was established on: a climb across the restart is still
        measured, and the error is on the side of asking."""
        self._doses.clear()
        for t_s, dose in doses:
            self.on_dose(t_s, dose)
            if self._doses:
                self._doses[-1].held = True
        self._answered_s = answered_s
        if answered_s is not None:
            since = [d for t_s, d in doses if t_s > answered_s]
            since += [d for t_s, d in doses if t_s <= answered_s][-1:]
            self._under_soft_max = any(d < self.rule.soft_max_mcg_min for d in since)
        self._message = open_message


class LineTimeWatch:
    """Infusion time on a peripheral line: ``check_s`` between cannula prompts, ``max_s`` the
    entry's peripheral maximum (seconds of infusion, counted while it runs)."""

    def __init__(self, *, peripheral: bool, check_s: float, max_s: float) -> None:
        self._peripheral = peripheral
        self._check_s = check_s
        self._max_s = max_s
        self._infused_s = 0.0
        self._last_s: float | None = None
        self._next_check_s = check_s

    @property
    def infused_s(self) -> float:
        return self._infused_s

    def restore(self, infused_s: float) -> None:
        """After a restart: the infusion time the journal shows on this line; the next cannula
        prompt comes at the next whole interval of it."""
        self._infused_s = infused_s
        self._last_s = None
        self._next_check_s = (infused_s // self._check_s + 1.0) * self._check_s

    def assess(self, now_s: float, *, running: bool) -> tuple[AlarmOrder, ...]:
        if not self._peripheral:
            return ()
        if running and self._last_s is not None:
            self._infused_s += max(0.0, now_s - self._last_s)
        self._last_s = now_s
        hours = self._infused_s / 3600.0
        orders: list[AlarmOrder] = []
        if self._infused_s >= self._next_check_s:
            while self._next_check_s <= self._infused_s:
                self._next_check_s += self._check_s
            orders.append(AlarmOrder(
                AlarmCode.CANNULA_CHECK, Priority.LOW,
                f"inspect the cannula site: vasopressor on a peripheral line for {hours:.1f} h",
                momentary=True))
        if self._infused_s < self._max_s:
            return tuple(orders)
        if not running:  # the drug no longer runs in that line
            return (*orders, AlarmOrder(AlarmCode.PERIPHERAL_LINE_TIME))
        return (*orders, AlarmOrder(
            AlarmCode.PERIPHERAL_LINE_TIME, Priority.MEDIUM,
            f"vasopressor on a peripheral line for {hours:.1f} h, the most this entry allows "
            f"({self._max_s / 3600.0:g} h): move the infusion to a central line"))


class HighDoseWatch:
    """Time above ``soft_max_mcg_min`` within the last ``window_s``; beyond ``limit_s`` a
    LOW advisory."""

    def __init__(self, soft_max_mcg_min: float, window_s: float, limit_s: float) -> None:
        self._soft_max = soft_max_mcg_min
        self._window_s = window_s
        self._limit_s = limit_s
        self._spells: deque[list[float]] = deque()  # [start_s, end_s] above the soft max
        self._last_s: float | None = None
        self._above = False
        self._active = False

    def restore(self, doses: Sequence[tuple[float, float]], now_s: float, *,
                active: bool) -> None:
        """After a restart: the spells above the soft maximum in the journal's doses ((t_s on
        this clock, mcg/min) in force from then on, the last one until ``now_s``), and whether
        the advisory was raised (its hysteresis)."""
        self._spells.clear()
        ends = [t for t, _ in doses[1:]] + [now_s][:len(doses)]
        for (start_s, dose), end_s in zip(doses, ends, strict=True):
            if dose > self._soft_max and end_s > start_s:
                self._spells.append([start_s, end_s])
        self._above = bool(doses) and doses[-1][1] > self._soft_max
        self._last_s = now_s
        self._active = active

    def above_s(self, now_s: float) -> float:
        start_s = now_s - self._window_s
        return sum(max(0.0, end - max(begin, start_s)) for begin, end in self._spells)

    def assess(self, now_s: float, dose_mcg_min: float, *, running: bool) -> AlarmOrder:
        if self._above and self._last_s is not None:
            if self._spells and self._spells[-1][1] == self._last_s:
                self._spells[-1][1] = now_s
            else:
                self._spells.append([self._last_s, now_s])
        self._last_s = now_s
        self._above = running and dose_mcg_min > self._soft_max
        while self._spells and self._spells[0][1] <= now_s - self._window_s:
            self._spells.popleft()
        above_s = self.above_s(now_s)
        if above_s > self._limit_s:
            self._active = True
        elif above_s < HIGH_DOSE_CLEAR_FRACTION * self._limit_s:
            self._active = False
        if not self._active:
            return AlarmOrder(AlarmCode.PROLONGED_HIGH_DOSE)
        return AlarmOrder(
            AlarmCode.PROLONGED_HIGH_DOSE, Priority.LOW,
            f"prolonged high-dose vasopressor: check perfusion of the extremities "
            f"({above_s / 3600.0:.1f} h above the soft maximum of {self._soft_max:g} mcg/min in "
            f"the last {self._window_s / 3600.0:g} h)")
