"""When each microstep of a stepper syringe drive is due: a pure, error-accumulating schedule.

The schedule integrates the commanded step rate over time and lets a step fall due each time
that integral crosses the next whole step. Steps are therefore spread evenly (never bunched) and
the steps issued on time always lag the commanded integral by less than one step, so the volume
delivered over any window tracks the commanded rate to within one microstep. Each step time is
computed from whole counts since the last rate change rather than by adding intervals, so an
hour at a constant rate does not drift.

No I/O and no clock: every method takes the time (``t_s``, seconds on the caller's clock).
"""

from __future__ import annotations

import math
from enum import IntEnum


class Direction(IntEnum):
    """Plunger direction; the value is the sign of one step in plunger position."""

    INFUSE = 1
    WITHDRAW = -1


class StepSchedule:
    """Step times for a rate (steps/s) that may change at any moment, in either direction.

    A *run* is a stretch of motion in one direction. Changing the rate within a run keeps the
    fraction of a step already owed, so the next step comes at once at the new rate without a
    pause; changing direction starts a new run, because a fraction owed to infusion must not
    turn into a withdrawal step.
    """

    def __init__(self, t_s: float = 0.0) -> None:
        self._t0_s = t_s
        self._commanded0 = 0.0
        self._issued = 0
        self._stop_at: int | None = None
        self._rate_hz = 0.0
        self._direction = Direction.INFUSE
        self._position_steps = 0

    @property
    def rate_hz(self) -> float:
        """Commanded step rate in steps per second (0 when stopped)."""
        return self._rate_hz

    @property
    def direction(self) -> Direction:
        return self._direction

    @property
    def issued_steps(self) -> int:
        """Steps issued in the current run."""
        return self._issued

    @property
    def position_steps(self) -> int:
        """Net plunger travel over all runs in steps, infusion positive."""
        return self._position_steps

    @property
    def run_complete(self) -> bool:
        """True when the current run was given a step budget and has issued all of it."""
        return self._stop_at is not None and self._issued >= self._stop_at

    def commanded_steps(self, t_s: float) -> float:
        """Integral of the commanded rate over the current run up to ``t_s``, in steps."""
        return self._commanded0 + self._rate_hz * (t_s - self._t0_s)

    def set_rate(
        self,
        t_s: float,
        rate_hz: float,
        direction: Direction = Direction.INFUSE,
        max_steps: int | None = None,
    ) -> None:
        """From ``t_s`` on, step at ``rate_hz`` in ``direction``, at most ``max_steps`` more.

        Steps that were due before ``t_s`` but not yet taken stay due: a late caller catches
        up instead of losing volume.
        """
        if not math.isfinite(rate_hz) or rate_hz < 0:
            raise ValueError(f"step rate must be finite and >= 0, got {rate_hz} steps/s")
        if t_s < self._t0_s:
            raise ValueError(f"time runs backwards (from {self._t0_s} s to {t_s} s)")
        if max_steps is not None and max_steps < 0:
            raise ValueError(f"a step budget cannot be negative, got {max_steps}")
        if direction is self._direction:
            self._commanded0 = self.commanded_steps(t_s)
        else:
            self._direction = direction
            self._commanded0 = 0.0
            self._issued = 0
        self._t0_s = t_s
        self._rate_hz = rate_hz
        self._stop_at = None if max_steps is None else self._issued + max_steps

    def stop(self, t_s: float) -> None:
        """Stop at ``t_s`` and forgive whatever is owed, so a restart begins a clean step.

        Unlike ``set_rate(t_s, 0)`` nothing is carried over: after a halt, steps that were due
        but not taken were refused (end of travel, stall), not late.
        """
        self.set_rate(t_s, 0.0, self._direction)
        self._commanded0 = float(self._issued)

    def next_step_s(self) -> float | None:
        """When the next step is due (possibly in the past), or None if none is scheduled."""
        if self._rate_hz == 0 or self.run_complete:
            return None
        return self._t0_s + (self._issued + 1 - self._commanded0) / self._rate_hz

    def pop_step(self) -> float:
        """Count the next step as issued and return the time it was due."""
        due_s = self.next_step_s()
        if due_s is None:
            raise RuntimeError("no step is scheduled")
        self._issued += 1
        self._position_steps += self._direction
        return due_s

    def take_due(self, now_s: float) -> list[float]:
        """Issue every step due at or before ``now_s``; returns their due times in order."""
        due: list[float] = []
        next_s = self.next_step_s()
        while next_s is not None and next_s <= now_s:
            due.append(self.pop_step())
            next_s = self.next_step_s()
        return due
