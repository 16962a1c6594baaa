"""Horizon planning shared by the model-predictive controller and the bench's references.

A *plan* is a dose for every forecast step of the horizon that the supervisor would accept:
increases at most one slew step (S3) per up-interval, decreases at most one slew step per
step, within [0, hard max]. Decreases come as single moves and as ramps at the up-interval's
pace or faster (a cut made on a passing high leaves a hole that takes as long to refill, so
the model, not the candidate set, decides how fast to come down). Only the first move of the
best plan is ever asked for (receding horizon); the rest says what the supervisor will let
follow, so "hold now, climb in 40 s" and "climb now" are told apart.

Every plan gets a predicted MAP with a standard deviation per step (from whichever model the
caller has) and is scored by the expected share of the horizon in the band [F, F + 10], minus
the expected share below F, a small price for the mean's distance from the set-point F + 5
and, as a chance constraint on MAP < F, a steep price for every step where the probability
of MAP < F exceeds ``alpha``; a small price per mmHg of mean shortfall under F ranks plans
that all miss the band (an out-of-reach patient still climbs). Single moves may be a share
of the slew step or, where finer, of the running dose.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from safety.limits import DoseLimits
from vasopilot.metrics import BAND_ABOVE_FLOOR_MMHG, SET_POINT_ABOVE_FLOOR_MMHG

# a dose (mcg/min) per plan and step, shape (plans, steps) -> MAP mean and SD, same shape
Predictor = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class PlanLimits:
    """What the supervisor lets a plan do, in mcg/min and seconds. A step is S3's
    max(absolute, ratio × the running dose), as ``safety.limits.DoseLimits`` has it."""

    up_step_mcg_min: float
    up_interval_s: float
    down_step_mcg_min: float
    hard_max_mcg_min: float
    min_dose_mcg_min: float = 0.0
    up_step_ratio: float = 0.0
    down_step_ratio: float = 0.0

    @classmethod
    def from_view(cls, limits: DoseLimits) -> PlanLimits:
        """The supervisor's S3 and S1 (its ``view.limits``) as a plan's."""
        return cls(up_step_mcg_min=limits.max_up_step, up_interval_s=limits.min_up_interval_s,
                   down_step_mcg_min=limits.max_down_step, hard_max_mcg_min=limits.hard_max,
                   up_step_ratio=limits.up_step_ratio, down_step_ratio=limits.down_step_ratio)

    def up_step_at(self, dose_mcg_min: float) -> float:
        return max(self.up_step_mcg_min, self.up_step_ratio * dose_mcg_min)

    def down_step_at(self, dose_mcg_min: float) -> float:
        return max(self.down_step_mcg_min, self.down_step_ratio * dose_mcg_min)

    def ladder(self, from_mcg_min: float, moves: int, *, up: bool) -> np.ndarray:
        """The doses after 0..``moves`` whole steps from ``from_mcg_min`` (each step S3's at
        the dose it starts from), within [min dose, hard max]."""
        doses = [from_mcg_min]
        for _ in range(moves):
            d = doses[-1]
            d = d + self.up_step_at(d) if up else d - self.down_step_at(d)
            doses.append(min(self.hard_max_mcg_min, max(self.min_dose_mcg_min, d)))
        return np.array(doses)


@dataclass(frozen=True)
class PlanTuning:
    horizon_s: float = 900.0
    step_s: float = 10.0
    # the first steps are the line's and the drug's, whatever is decided now
    ignore_first_s: float = 60.0
    below_weight: float = 1.0
    alpha: float = 0.1  # chance constraint: P(MAP < F) at most this
    chance_weight: float = 4.0
    max_ramp_steps: int = 7
    # the supervisor takes a decrease at any step (S3 bounds its size, not its pace): ramps down
    # by the whole step this often too, so an overshoot (a responsive patient on the starting
    # dose) can be left as fast as S3 allows; the model weighs the hole a cut leaves
    fast_down_interval_s: float = 30.0
    fast_down_ramp_steps: tuple[int, ...] = (2, 3, 4, 6)
    # fractions of the slew step a single move may take (up or down)
    partial_moves: tuple[float, ...] = (0.25, 0.5, 1.0)
    # and fractions of the running dose, where they are finer than those: a quarter of the
    # slew step is 0.5 mcg/min, a third of a 1.5 mcg/min dose and 3-6 mmHg on a responsive
    # patient, so the loop stepped over the band's middle back and forth
    dose_moves: tuple[float, ...] = (0.1, 0.2)
    change_cost: float = 0.02  # per move, in horizon-shares: no chatter over a rounding
    # per mmHg of mean shortfall under F: when no plan reaches the band, the nearer is better
    shortfall_weight: float = 0.02
    # per (mmHg off the set-point / the band's half-width)² of the mean: time in band is flat
    # inside the band, so without it the loop drifts to either edge while the odds of leaving
    # stay small, and the performance error (MDAPE) is scored from the set-point
    centre_weight: float = 0.1


@dataclass(frozen=True)
class Plan:
    doses_mcg_min: tuple[float, ...]
    first_move_mcg_min: float  # the dose asked for now (== current: hold now)
    score: float
    mean_mmhg: tuple[float, ...]
    p_below_floor_max: float


def candidate_plans(current_mcg_min: float, since_up_s: float | None, limits: PlanLimits,
                    tuning: PlanTuning) -> np.ndarray:
    """S3-feasible plans, one per row: hold; one move up or down (a share of the slew step or,
    finer, of the running dose); ramps up by the whole step at every up-interval; ramps down
    likewise and faster. Read-only: the same plans come back for the same dose, limits and
    wait for the next climb (most looks hold the dose, and S3's interval has mostly passed)."""
    interval = limits.up_interval_s
    first_up_s = 0.0 if since_up_s is None else max(0.0, interval - since_up_s)
    return _candidate_plans(current_mcg_min, first_up_s, limits, tuning)


@lru_cache(maxsize=256)
def _candidate_plans(current_mcg_min: float, first_up_s: float, limits: PlanLimits,
                     tuning: PlanTuning) -> np.ndarray:
    n = int(tuning.horizon_s / tuning.step_s)
    t = np.arange(n) * tuning.step_s
    interval = limits.up_interval_s

    def moves_by(first_s: float, moves: int, every_s: float = interval) -> np.ndarray:
        k = 1 + np.floor((t - first_s) / every_s) if every_s > 0 else np.ones(n)
        return np.where(t < first_s, 0, np.minimum(moves, k)).astype(int)

    up_step = limits.up_step_at(current_mcg_min)
    down_step = limits.down_step_at(current_mcg_min)
    up_ladder = limits.ladder(current_mcg_min, tuning.max_ramp_steps, up=True) - current_mcg_min
    down_ladder = (limits.ladder(current_mcg_min, max(3, *tuning.fast_down_ramp_steps), up=False)
                   - current_mcg_min)
    rows = [np.zeros(n)]
    finest = min(tuning.partial_moves) * min(up_step, down_step)
    fine = [share * current_mcg_min for share in tuning.dose_moves
            if share * current_mcg_min < finest - 1e-9]
    for up, down in [(s * up_step, s * down_step) for s in tuning.partial_moves] \
            + [(m, m) for m in fine]:
        rows.append(up * moves_by(first_up_s, 1))
        rows.append(-down * moves_by(0.0, 1))
    for moves in range(2, tuning.max_ramp_steps + 1):
        rows.append(up_ladder[moves_by(first_up_s, moves)])
    for moves in (2, 3):
        rows.append(down_ladder[moves_by(0.0, moves)])
    for moves in tuning.fast_down_ramp_steps:
        rows.append(down_ladder[moves_by(0.0, moves, tuning.fast_down_interval_s)])
    plans = np.clip(current_mcg_min + np.array(rows), limits.min_dose_mcg_min,
                    limits.hard_max_mcg_min)
    # one row per distinct plan, in the order above (holding first, so it wins a tie)
    first: dict[bytes, int] = {}
    for i, row in enumerate(plans):
        first.setdefault(row.tobytes(), i)
    distinct = plans[list(first.values())]
    distinct.flags.writeable = False
    return distinct


def normal_cdf(z: np.ndarray) -> np.ndarray:
    """Φ(z), Abramowitz and Stegun 7.1.26 (error under 1.5e-7): numpy has no erf."""
    x = np.abs(z) / math.sqrt(2.0)
    k = 1.0 / (1.0 + 0.3275911 * x)
    poly = k * (0.254829592 + k * (-0.284496736 + k * (1.421413741
                                                      + k * (-1.453152027 + k * 1.061405429))))
    erf = 1.0 - poly * np.exp(-x * x)
    cdf: np.ndarray = 0.5 * (1.0 + np.sign(z) * erf)
    return cdf


def score(mean: np.ndarray, sd: np.ndarray, floor_mmhg: float,
          tuning: PlanTuning) -> tuple[np.ndarray, np.ndarray]:
    """(score, the largest P(MAP < F) over the scored steps) of each predicted trajectory."""
    skip = math.ceil(tuning.ignore_first_s / tuning.step_s)
    mu, s = mean[:, skip:], np.maximum(sd[:, skip:], 0.1)
    half = BAND_ABOVE_FLOOR_MMHG / 2.0
    set_point = floor_mmhg + SET_POINT_ABOVE_FLOOR_MMHG
    below = normal_cdf((floor_mmhg - mu) / s)
    inside = normal_cdf((floor_mmhg + BAND_ABOVE_FLOOR_MMHG - mu) / s) - below
    per_step = (inside - tuning.below_weight * below
                - tuning.chance_weight * np.maximum(0.0, below - tuning.alpha)
                - tuning.shortfall_weight * np.maximum(0.0, floor_mmhg - mu)
                - tuning.centre_weight * ((mu - set_point) / half) ** 2)
    return per_step.mean(axis=1), below.max(axis=1)


def best_plan(current_mcg_min: float, since_up_s: float | None, limits: PlanLimits, *,
              predict: Predictor, floor_mmhg: float, tuning: PlanTuning) -> Plan:
    """The plan with the highest score; a move must beat holding by ``change_cost``."""
    plans = candidate_plans(current_mcg_min, since_up_s, limits, tuning)
    mean, sd = predict(plans)
    values, worst = score(mean, sd, floor_mmhg, tuning)
    moves = np.any(np.abs(plans - current_mcg_min) > 1e-9, axis=1)
    values = values - tuning.change_cost * moves
    i = int(np.argmax(values))
    return Plan(tuple(float(d) for d in plans[i]), float(plans[i, 0]), float(values[i]),
                tuple(float(m) for m in mean[i]), float(worst[i]))
