"""Model-predictive titration on an online-estimated patient (mode ``closed-loop``).

What it knows exactly: the line. From the doses the supervisor reports running, the dead
volume, the carrier flow and the syringe's concentration it integrates the drug mass in the
dead volume and so the drug rate R(t) actually reaching the vein (docs/virtual-patient.md, model
step 1): the main reason low-flow pumps behave badly, and nothing to estimate.

What it estimates: the rest. A bank of candidate models (plasma time constant × effect-site
time constant, spanning the cohort's 1.7-11 min and 1-5 min, × the dose response's curvature κ)
filters R(t) into an "effect" x(t) in mcg/min. For each, an extended Kalman filter tracks the
state [b, ln g] of MAP = b + g·x^κ: b is MAP0 with its wander (a random walk between looks, its
predicted spread capped at the wander's own size), g the patient's potency in mmHg per
(mcg/min)^κ (a sigmoid seen through a power law, not a line: it moves as the operating point
moves, hardly at all at a steady dose).
Each candidate keeps the likelihood of its innovations with a 15 min memory; the plan
forecasts with the bank as a mixture weighted by those likelihoods, so the spread between its
models is part of the forecast's uncertainty and a change of the most likely model moves no
dose by itself.

The plan (vasopilot.control.planner): every 30 s, S3-feasible dose trajectories over 15 min,
the one with the highest expected time in band [F, F + 10], near the set-point, under a
chance constraint on MAP < F. Only its first move is asked for; a plan still coming down a
step later is looked at again after 10 s (S3 bounds a decrease's size, not its pace). Every
look leaves a :class:`Look` with its reason as data (``looks``), including why it held.

It runs on trusted beats only (median of the good beats of the last 10 s, each filter update),
never raises within 30 s of an untrusted beat or a gap (S5), and flags *target unreachable*
on the evidence of vasopilot.control.reach (its reason as data): it then climbs to the hard
maximum at the S3 pace, the runtime raises the supervisor's TARGET_UNREACHABLE alarm, and an
operator decides what comes next.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from safety.view import SupervisorView
from vasopilot.control.closed_loop import MapEstimator
from vasopilot.control.planner import Plan, PlanLimits, PlanTuning, best_plan
from vasopilot.control.reach import ReachTuning, ReachWatch, Unreachable, UnreachableReason
from vasopilot.core.types import Beat, DoseRequest, Requester
from vasopilot.core.units import MINUTES_PER_HOUR
from vasopilot.metrics import SET_POINT_ABOVE_FLOOR_MMHG

FILTER_PERIOD_S = 10.0
# sets of plans whose dose-only terms the line keeps (a few doses' worth of looks)
_PLAN_SETS_KEPT = 64


@dataclass(frozen=True)
class LineModel:
    """The infusion line the controller doses through (known on a rig: it is set up so)."""

    dead_volume_ml: float = 1.0
    carrier_ml_h: float = 0.0
    conc_mcg_ml: float = 80.0
    primed: bool = True


class LookAction(StrEnum):
    RAISE = "raise"
    LOWER = "lower"
    HOLD = "hold"


class LookReason(StrEnum):
    NOT_RUNNING = "held, because the infusion is not running"
    NO_TRUSTED_MAP = "held, because there is no trusted MAP (S5)"
    ARTEFACT = "held, because an untrusted beat or a gap came within 30 s"
    NO_FRESH_BEAT = "held, because the newest beat is not recent: an artefact could be starting"
    LEARNING = "held, because the model has had no trusted MAP yet"
    PLAN_HOLDS = "held, because holding is the best plan"
    UP_INTERVAL = "held, because the best plan climbs once S3's interval has passed"
    TOO_HIGH = "held, because MAP stands 10 mmHg over the set-point (S6)"
    TOO_LOW = "held, because MAP is under the lower limit, no decrease (S6)"
    PLAN_RAISES = "raised: the best plan climbs now"
    PLAN_LOWERS = "lowered: the best plan comes down now"
    UNREACHABLE = "raised: target unreachable, climbing to the hard maximum at the S3 pace"


@dataclass(frozen=True)
class Look:
    """One decision with its reasons as data."""

    t_s: float
    action: LookAction
    reason: LookReason
    dose_mcg_min: float  # running before the look
    requested_mcg_min: float | None
    map_mmhg: float | None
    predicted_end_mmhg: float | None
    model: int | None
    potency_mmhg_per_mcg_min: float | None
    unreachable: bool
    unreachable_reason: UnreachableReason | None = None


@dataclass(frozen=True)
class _Context:
    """What a look knew when it decided: the plan, the model that made it and the flag."""

    plan: Plan
    model: int
    potency: float
    unreachable: bool


@dataclass(frozen=True)
class MpcTuning:
    """Priors and noise levels, set from docs/virtual-patient.md's ranges (wander σ 3-6 mmHg over
    τ 5-30 min is a walk of about 0.04 mmHg²/s; beat noise 1-2 mmHg averaged over 10 s), not
    swept on a cohort. Doses in mcg/min, pressures in mmHg, times in seconds or minutes."""

    period_s: float = 30.0
    plasma_tau_min: tuple[float, ...] = (2.0, 4.5, 9.0)
    effect_tau_min: tuple[float, ...] = (1.2, 3.0)
    # MAP = b + g·x^κ: the dose response's curvature. A chord (κ = 1) through MAP0 is steeper
    # than a saturating response at the operating point, so there a climb does less than it
    # predicts and a descent too (seed 1, disturbance: 30-50 min over the band after an event
    # while the dose came down a little at a time, the full-state reference 10-20 min); κ 0.5
    # and 0.25 bend like a Hill curve at and past its middle (the local d ln E / d ln x), and
    # the bank's likelihoods tell them apart as the dose moves
    curvature: tuple[float, ...] = (1.0, 0.5, 0.25)
    # every curvature's prior potency gives the same MAP on this effect (the starting dose)
    prior_effect_mcg_min: float = 10.0
    potency_prior: float = 1.0  # mmHg per mcg/min
    log_potency_sd: float = 1.2
    map0_sd_mmhg: float = 8.0
    map0_walk_mmhg2_s: float = 0.04
    wander_cap_mmhg: float = 4.0
    # g is the chord of a sigmoid, so it moves when the operating point does (|d ln g / d ln x|
    # stays under about 1 along a Hill curve): its variance grows by this share of the effect's
    # squared log-change, with only a slow walk on top (the rebound knob's own tone); a walk of
    # its own at a steady dose let g take up MAP0's drift on a sensitive patient, whose g·x is
    # large (seed 1, a responsive patient on 2 mcg/min: g 12 -> 42 over 3 h, MAP 80-87)
    log_potency_walk_per_s: float = 1e-5
    log_potency_per_log_effect: float = 0.5
    # the effect under which a relative change means nothing (the line's first seconds)
    effect_floor_mcg_min: float = 0.5
    measurement_var_mmhg2: float = 2.0
    model_var_mmhg2: float = 1.0
    memory_s: float = 900.0
    # the plan forecasts with every lag model carrying at least this share of the belief
    min_model_weight: float = 0.01
    artefact_hold_s: float = 30.0
    # an increase only this soon after the newest (good) beat: the gap between the beat and
    # the request is where an artefact can begin unseen, so the increases expected to land in
    # one are the artefacts' rate times the summed gaps (seed 1, 100 patients: 4 increases
    # landed in an artefact begun 0.1-1 s before them with no such rule; with 0.3 s, about
    # 0.65 per 100 patients were expected and seed 3 had one)
    fresh_beat_s: float = 0.1
    # every increase waits for such a beat, an urgent climb (under the floor, to the hard
    # maximum) too: seed 3, 100 patients, had one land in an artefact begun 19 ms before a
    # climb under the floor on a 0.26 s old beat when those took 0.3 s at once. The controller
    # asks to be looked at again right after the next beat (``look_again_s``), so the wait is
    # a beat or a few, not a look in five to ten; beats that fall into step with the looks
    # never give a fresh one, so after ``fresh_wait_s`` the limit grows by ``fresh_growth``
    # seconds per second waited: a climb is held at most until it covers the newest beat's age
    # (under the estimator's 3 s gap, past which the hold is an artefact's)
    fresh_wait_s: float = 30.0
    fresh_growth: float = 0.02
    reach: ReachTuning = field(default_factory=ReachTuning)
    # its own model steps exactly at any step: 30 s is fine enough for a 15 min horizon
    plan: PlanTuning = field(default_factory=lambda: PlanTuning(step_s=30.0))


class _Candidate:
    """One lag model: its effect state and the EKF over [b, ln g]."""

    def __init__(self, plasma_tau_min: float, effect_tau_min: float, curvature: float,
                 tuning: MpcTuning) -> None:
        self.tau_p = plasma_tau_min
        self.tau_e = effect_tau_min
        self.kappa = curvature
        self.x1 = 0.0
        self.x2 = 0.0
        self.b: float | None = None
        self.lg = (math.log(tuning.potency_prior)
                   + (1.0 - curvature) * math.log(tuning.prior_effect_mcg_min))
        self.p = [[tuning.map0_sd_mmhg**2, 0.0], [0.0, tuning.log_potency_sd**2]]
        self.loglik = 0.0
        self.x_at_update = 0.0
        self._responses: dict[tuple[float, int], tuple[np.ndarray, np.ndarray]] = {}

    def _response(self, step_s: float, steps: int) -> tuple[np.ndarray, np.ndarray]:
        """The two lags as a linear map over a horizon of ``steps`` held rates: the effect at
        the end of step j is ``free[j] @ (x1, x2) + forced[j] @ rates`` (computed once)."""
        key = (step_s, steps)
        if key not in self._responses:
            dt_min = step_s / 60.0
            a1 = math.exp(-dt_min / self.tau_p)
            a2 = math.exp(-dt_min / self.tau_e)
            transition = np.array([[a1, 0.0], [(1.0 - a2) * a1, a2]])
            drive = np.array([1.0 - a1, (1.0 - a2) * (1.0 - a1)])
            free = np.empty((steps, 2))
            impulse = np.empty(steps)  # effect j steps after one step of unit rate
            power = np.eye(2)
            for j in range(steps):
                impulse[j] = (power @ drive)[1]
                power = transition @ power
                free[j] = power[1]
            lags = np.subtract.outer(np.arange(steps), np.arange(steps))
            forced = np.where(lags >= 0, impulse[np.clip(lags, 0, None)], 0.0)
            self._responses[key] = (free, forced)
        return self._responses[key]

    def advance(self, rate_mcg_min: float, dt_min: float) -> None:
        # exact first-order steps with the rate held over dt
        a1 = math.exp(-dt_min / self.tau_p)
        a2 = math.exp(-dt_min / self.tau_e)
        self.x1 = rate_mcg_min + (self.x1 - rate_mcg_min) * a1
        self.x2 = self.x1 + (self.x2 - self.x1) * a2

    def shape(self, effect_mcg_min: float) -> float:
        """x^κ of an effect in mcg/min (none below 0)."""
        return math.pow(max(effect_mcg_min, 0.0), self.kappa)

    def update(self, y: float, dt_s: float, t: MpcTuning) -> None:
        g = math.exp(self.lg)
        if self.b is None:
            self.b = y - g * self.shape(self.x2)
        p = self.p
        moved = math.log((max(self.x2, 0.0) + t.effect_floor_mcg_min)
                         / (max(self.x_at_update, 0.0) + t.effect_floor_mcg_min))
        self.x_at_update = self.x2
        p[0][0] += t.map0_walk_mmhg2_s * dt_s
        p[1][1] += t.log_potency_walk_per_s * dt_s + (t.log_potency_per_log_effect * moved) ** 2
        h1 = g * self.shape(self.x2)  # d(prediction)/d(ln g)
        nu = y - (self.b + h1)
        ph0 = p[0][0] + p[0][1] * h1
        ph1 = p[1][0] + p[1][1] * h1
        s = ph0 + h1 * ph1 + t.measurement_var_mmhg2 + t.model_var_mmhg2
        k0, k1 = ph0 / s, ph1 / s
        self.b += k0 * nu
        self.lg += k1 * nu
        p00 = p[0][0] - k0 * ph0
        p01 = p[0][1] - k0 * ph1
        p11 = p[1][1] - k1 * ph1
        self.p = [[p00, p01], [p01, p11]]
        forget = math.exp(-dt_s / t.memory_s)
        self.loglik = forget * self.loglik - 0.5 * (math.log(2 * math.pi * s) + nu * nu / s)

    def steady_map(self, dose_mcg_min: float) -> tuple[float, float]:
        g = math.exp(self.lg)
        b = self.b if self.b is not None else 0.0
        h1 = g * self.shape(dose_mcg_min)
        p = self.p
        var = p[0][0] + 2.0 * p[0][1] * h1 + p[1][1] * h1 * h1
        return b + h1, math.sqrt(max(var, 0.0))


def fresh_limit_s(waited_s: float, tuning: MpcTuning) -> float:
    """The oldest the newest beat may be for an increase after ``waited_s`` seconds of holding
    for a recent one (``MpcTuning.fresh_beat_s``, growing after ``fresh_wait_s``)."""
    grown_s = max(0.0, waited_s - tuning.fresh_wait_s) * tuning.fresh_growth
    return tuning.fresh_beat_s + grown_s


def _forecast(models: list[_Candidate], rates: np.ndarray, step_s: float,
              t: MpcTuning) -> tuple[np.ndarray, np.ndarray]:
    """MAP mean and SD per model, plan and step (shape (models, plans, steps)) for the vein's
    drug ``rates`` (mcg/min, per plan and step), the models' elementwise steps in one stacked
    pass. Each number is the one a pass per model gives: the effect is each lag's own BLAS
    products (one product against every lag's response side by side rounds differently),
    once per lag (the curvatures share it: the same time constants, filtering the same
    rates), and x^κ is taken per κ (numpy takes a square root for 0.5, a power otherwise)."""
    steps = rates.shape[1]
    effect = np.empty((len(models), *rates.shape))
    by_lag: dict[tuple[float, float, float, float], np.ndarray] = {}
    for row, c in zip(effect, models, strict=True):
        lag = (c.tau_p, c.tau_e, c.x1, c.x2)
        if lag not in by_lag:
            free, forced = c._response(step_s, steps)
            by_lag[lag] = rates @ forced.T + free @ np.array([c.x1, c.x2])
        row[...] = by_lag[lag]
    shaped = np.maximum(effect, 0.0)
    kappas = np.array([c.kappa for c in models])
    for kappa in set(kappas.tolist()):
        of = kappas == kappa
        shaped[of] = shaped[of] ** kappa
    column = (len(models), 1, 1)
    h1 = np.array([math.exp(c.lg) for c in models]).reshape(column) * shaped
    b = np.array([0.0 if c.b is None else c.b for c in models]).reshape(column)
    p = np.array([[c.p[0][0], c.p[0][1], c.p[1][1]] for c in models])
    p00, p01, p11 = (p[:, i].reshape(column) for i in range(3))
    walk = np.minimum(t.wander_cap_mmhg**2, t.map0_walk_mmhg2_s * step_s * np.arange(1, steps + 1))
    var = p00 + 2.0 * p01 * h1 + p11 * h1 * h1 + walk + t.model_var_mmhg2
    return b + h1, np.sqrt(np.maximum(var, 0.01))


def _mixture(weights: np.ndarray, means: np.ndarray,
             sds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and SD of a mixture of normals, one per row of ``means`` and ``sds`` with
    ``weights`` summing to 1: the bank's forecast, the spread between its models included.
    numpy sums over the first axis row after row, in order (pairwise only along the last), so
    the sums are a loop's over the models."""
    w = weights.reshape(-1, *(1,) * (means.ndim - 1))
    mean = (w * means).sum(axis=0)
    second = (w * (sds * sds + means * means)).sum(axis=0)
    return mean, np.sqrt(np.maximum(second - mean * mean, 1e-4))


class LineState:
    """Drug mass in the line's dead volume, integrated from the doses running."""

    def __init__(self, line: LineModel) -> None:
        self.line = line
        self.mass_mcg = line.conc_mcg_ml * line.dead_volume_ml if line.primed else 0.0
        self._per_plans: dict[tuple[tuple[int, ...], bytes, float],
                              tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def rate_out(self, dose_mcg_min: float) -> float:
        q = dose_mcg_min / self.line.conc_mcg_ml
        flow = q + self.line.carrier_ml_h / MINUTES_PER_HOUR
        return flow * self.mass_mcg / self.line.dead_volume_ml

    def advance(self, dose_mcg_min: float, dt_min: float) -> float:
        """Step ``dt_min`` on ``dose_mcg_min``; the mean rate into the vein meanwhile."""
        q = dose_mcg_min / self.line.conc_mcg_ml
        flow = q + self.line.carrier_ml_h / MINUTES_PER_HOUR
        k = flow / self.line.dead_volume_ml
        if k <= 0:
            return 0.0
        equilibrium = dose_mcg_min / k  # mass the inflow would hold
        before = self.mass_mcg
        self.mass_mcg = equilibrium + (before - equilibrium) * math.exp(-k * dt_min)
        return max(0.0, (dose_mcg_min * dt_min - (self.mass_mcg - before)) / dt_min)

    def rates(self, doses: np.ndarray, step_s: float) -> np.ndarray:
        """The vein's mean drug rate per plan and step if each row of ``doses`` ran from now
        (the line's own state is kept). What depends on the doses alone is kept per set of
        plans (the planner's come back the same while the dose holds); the mass, stepped
        for every plan at once, is the only recurrence, and the rest is elementwise: the
        same numbers as stepping one step after another with each step's rate worked out
        in it."""
        dt_min = step_s / 60.0
        key = (doses.shape, doses.tobytes(), step_s)
        per_plans = self._per_plans.get(key)
        if per_plans is None:
            flow = doses / self.line.conc_mcg_ml + self.line.carrier_ml_h / MINUTES_PER_HOUR
            k = np.maximum(flow / self.line.dead_volume_ml, 1e-12)
            # step-major: each step's row is contiguous
            per_plans = (np.exp(-k * dt_min).T.copy(), (doses / k).T.copy(),
                         (doses * dt_min).T.copy())
            if len(self._per_plans) >= _PLAN_SETS_KEPT:
                self._per_plans.clear()
            self._per_plans[key] = per_plans
        decay, equilibrium, delivered = per_plans
        mass = np.empty((doses.shape[1] + 1, doses.shape[0]))
        mass[0] = self.mass_mcg
        for j in range(doses.shape[1]):
            mass[j + 1] = equilibrium[j] + (mass[j] - equilibrium[j]) * decay[j]
        out: np.ndarray = np.maximum(0.0, (delivered - (mass[1:] - mass[:-1])) / dt_min)
        return out.T.copy()


class MpcController:
    """The closed loop of mode ``closed-loop`` (module docstring); pure: time from ``view``."""

    mode = "closed-loop"
    requester = Requester.CONTROLLER

    def __init__(self, line: LineModel | None = None, tuning: MpcTuning | None = None,
                 *, history: int = 2000) -> None:
        self.tuning = tuning or MpcTuning()
        self.line = LineState(line or LineModel())
        self.candidates = [_Candidate(tp, te, k, self.tuning) for tp in self.tuning.plasma_tau_min
                           for te in self.tuning.effect_tau_min for k in self.tuning.curvature]
        self.estimator = MapEstimator(window_s=FILTER_PERIOD_S, trend_window_s=FILTER_PERIOD_S,
                                      hold_s=self.tuning.artefact_hold_s, min_beats=5)
        self.looks: deque[Look] = deque(maxlen=history)
        self.reach = ReachWatch(self.tuning.reach)
        self._last_t_s: float | None = None
        self._last_dose: float | None = None
        self._last_up_s: float | None = None
        self._asked_up_s: float | None = None
        self._next_filter_s: float | None = None
        self._last_filter_s: float | None = None
        self._next_look_s: float | None = None
        self._volume_check_open = False
        self._fresh_wait_since_s: float | None = None
        self._beat_interval_s: float | None = None
        self._look_again_s: float | None = None

    @property
    def unreachable(self) -> Unreachable | None:
        """The evidence that the target is out of reach, while it holds (vasopilot.control.reach);
        the runtime raises the supervisor's TARGET_UNREACHABLE alarm on it."""
        return self.reach.evidence

    @property
    def unreachable_since_s(self) -> float | None:
        return self.reach.first_s

    @property
    def look_again_s(self) -> float | None:
        """After a look held for want of a fresh beat: the seconds until the next beat is
        due (vasopilot.control.base.LooksAgain); ``None`` otherwise."""
        return self._look_again_s

    def assume_steady(self, dose_mcg_min: float) -> None:
        """Taking over an infusion that has run ``dose_mcg_min`` long enough to be in steady
        state (a wean): every candidate's effect starts there, not at zero (the line is primed
        with it already). Call before the first look."""
        rate = self.line.rate_out(dose_mcg_min)
        for c in self.candidates:
            c.x1 = c.x2 = c.x_at_update = rate

    # -- inputs --------------------------------------------------------------------------------

    def on_beat(self, beat: Beat) -> None:
        last_s = self.estimator.last_beat_t_s
        if last_s is not None and beat.t_s > last_s:
            self._beat_interval_s = beat.t_s - last_s
        self.estimator.add(beat)

    def propose(self, view: SupervisorView) -> DoseRequest | None:
        now_s = view.t_s
        self._look_again_s = None
        self._advance_line(view)
        filter_due = self._next_filter_s is None or now_s >= self._next_filter_s
        # a volume check answered lets a refused climb go on: look at once, not a period later
        answered = self._volume_check_open and not view.volume_check_open
        self._volume_check_open = view.volume_check_open
        look_due = self._next_look_s is None or now_s >= self._next_look_s or answered
        if not (filter_due or look_due):
            return None
        est = self.estimator.estimate(now_s)
        if filter_due:
            self._next_filter_s = now_s + FILTER_PERIOD_S
            if est is not None and not est.disturbed and view.map_trusted and view.running:
                dt_s = FILTER_PERIOD_S if self._last_filter_s is None \
                    else now_s - self._last_filter_s
                self._last_filter_s = now_s
                for c in self.candidates:
                    c.update(est.map_mmhg, dt_s, self.tuning)
                self.reach.observe(now_s, est.map_mmhg, tuple(c.x2 for c in self.candidates))
        if not look_due:
            return None
        self._next_look_s = now_s + self.tuning.period_s
        return self._look(view, est.map_mmhg if est is not None else None,
                          est is not None and est.disturbed)

    # -- the look ------------------------------------------------------------------------------

    def _look(self, view: SupervisorView, map_mmhg: float | None,
              disturbed: bool) -> DoseRequest | None:
        now_s, current = view.t_s, view.dose_mcg_min
        if not view.running:
            return self._record(view, LookReason.NOT_RUNNING, map_mmhg)
        if map_mmhg is None or not view.map_trusted:
            return self._record(view, LookReason.NO_TRUSTED_MAP, map_mmhg)
        model_index = max(range(len(self.candidates)), key=lambda i: self.candidates[i].loglik)
        model = self.candidates[model_index]
        if model.b is None:
            return self._record(view, LookReason.LEARNING, map_mmhg)
        weights = self._weights()
        floor = view.target_map_mmhg - SET_POINT_ABOVE_FLOOR_MMHG
        limits = view.limits
        plan_limits = PlanLimits.from_view(limits)
        since_up = None if self._last_up_s is None else now_s - self._last_up_s
        step_s = self.tuning.plan.step_s

        def predict(doses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            rates = self.line.rates(doses, step_s)
            means, sds = _forecast([self.candidates[i] for i, _ in weights], rates, step_s,
                                   self.tuning)
            return _mixture(np.array([w for _, w in weights]), means, sds)

        plan = best_plan(current, since_up, plan_limits, predict=predict, floor_mmhg=floor,
                         tuning=self.tuning.plan)
        unreachable = self._unreachable(view, map_mmhg)
        want = plan.first_move_mcg_min
        if unreachable and (since_up is None or since_up >= limits.min_up_interval_s):
            want = min(limits.hard_max, current + limits.up_step_at(current))
        context = _Context(plan, model_index, math.exp(model.lg), unreachable)
        if want > current + 1e-9:
            if disturbed:
                return self._record(view, LookReason.ARTEFACT, map_mmhg, context)
            if map_mmhg >= view.target_map_mmhg + 10.0:
                return self._record(view, LookReason.TOO_HIGH, map_mmhg, context)
            if not self._fresh_enough(now_s):
                # an artefact that began after the newest beat is invisible: raise only right
                # after a good beat, and look again when the next one is due
                self._next_look_s = now_s
                self._look_again_s = self._next_beat_in_s(now_s)
                return self._record(view, LookReason.NO_FRESH_BEAT, map_mmhg, context)
            self._asked_up_s = now_s
            reason = LookReason.UNREACHABLE if unreachable else LookReason.PLAN_RAISES
            return self._record(view, reason, map_mmhg, context, want)
        if want < current - 1e-9:
            if map_mmhg < view.lower_limit_mmhg:
                return self._record(view, LookReason.TOO_LOW, map_mmhg, context)
            if len(plan.doses_mcg_min) > 1 and plan.doses_mcg_min[1] < want - 1e-9:
                # S3 bounds a decrease's size, not its pace: a plan still coming down a step
                # later is taken at the filter's pace (an overshoot on the starting dose)
                self._next_look_s = now_s + FILTER_PERIOD_S
            return self._record(view, LookReason.PLAN_LOWERS, map_mmhg, context, want)
        waiting = since_up is not None and since_up < limits.min_up_interval_s
        if waiting and self._last_up_s is not None \
                and any(d > current + 1e-9 for d in plan.doses_mcg_min):
            # look again the moment S3 lets the climb begin, not up to a period later
            self._next_look_s = min(self._next_look_s or now_s,
                                    self._last_up_s + limits.min_up_interval_s)
            return self._record(view, LookReason.UP_INTERVAL, map_mmhg, context)
        return self._record(view, LookReason.PLAN_HOLDS, map_mmhg, context)

    def _fresh_enough(self, now_s: float) -> bool:
        """Whether the newest beat is recent enough to raise on (:func:`fresh_limit_s`); the
        wait for one starts at the first look it held."""
        last_beat_s = self.estimator.last_beat_t_s
        if last_beat_s is None:
            return False
        if self._fresh_wait_since_s is None:
            self._fresh_wait_since_s = now_s
        return now_s - last_beat_s <= fresh_limit_s(now_s - self._fresh_wait_since_s,
                                                    self.tuning)

    def _next_beat_in_s(self, now_s: float) -> float:
        """Seconds until the next beat is due at the last beat-to-beat interval (now if it is
        overdue or none is known yet)."""
        last_beat_s = self.estimator.last_beat_t_s
        if last_beat_s is None or self._beat_interval_s is None:
            return 0.0
        return max(0.0, last_beat_s + self._beat_interval_s - now_s)

    def _weights(self, *, straight: bool = False) -> list[tuple[int, float]]:
        """The candidates' posterior weights from their innovation likelihoods (the ones that
        carry at least 1 % of the belief), normalised; ``straight``: among the κ = 1 ones."""
        bank = [(i, c) for i, c in enumerate(self.candidates) if c.b is not None]
        bank = [(i, c) for i, c in bank if not straight or c.kappa == 1.0] or bank
        best = max(c.loglik for _, c in bank)
        raw = [(i, math.exp(c.loglik - best)) for i, c in bank]
        kept = [(i, w) for i, w in raw if w >= self.tuning.min_model_weight]
        total = sum(w for _, w in kept)
        return [(i, w / total) for i, w in kept]

    def _unreachable(self, view: SupervisorView, map_mmhg: float) -> bool:
        """The out-of-reach evidence (vasopilot.control.reach) on the straight (κ = 1) models:
        a curved model fitted around the starting dose extrapolates a flat top to the hard
        maximum long before the climb has shown one (seed 1, resuscitate: two reachable
        patients flagged 6 min in), while the evidence's tests are sized for the chord's
        optimism; the curvature is the plan's."""
        limits = view.limits
        weights = self._weights(straight=True)
        steady = np.array([self.candidates[i].steady_map(limits.hard_max) for i, _ in weights])
        mean, sd = _mixture(np.array([w for _, w in weights]), steady[:, :1], steady[:, 1:])
        return self.reach.look(
            view.t_s, map_mmhg=map_mmhg, dose_mcg_min=view.dose_mcg_min,
            hard_max_mcg_min=limits.hard_max, up_step_mcg_min=limits.max_up_step,
            target_mmhg=view.target_map_mmhg, models=tuple(i for i, _ in weights),
            effect_at_max=limits.hard_max,
            steady_at_max=(float(mean[0]), float(sd[0]))) is not None

    def _record(self, view: SupervisorView, reason: LookReason, map_mmhg: float | None,
                context: _Context | None = None,
                dose: float | None = None) -> DoseRequest | None:
        """Journal the look (``looks``) and, with a ``dose``, ask for it."""
        if reason is not LookReason.NO_FRESH_BEAT:
            self._fresh_wait_since_s = None
        current = view.dose_mcg_min
        asked = None if dose is None else round(max(0.0, dose), 2)
        action = (LookAction.HOLD if asked is None else
                  LookAction.RAISE if asked > current else LookAction.LOWER)
        predicted = (context.plan.mean_mmhg[-1] if context is not None and context.plan.mean_mmhg
                     else None)
        self.looks.append(Look(
            t_s=view.t_s, action=action, reason=reason, dose_mcg_min=current,
            requested_mcg_min=asked, map_mmhg=map_mmhg, predicted_end_mmhg=predicted,
            model=None if context is None else context.model,
            potency_mmhg_per_mcg_min=None if context is None else context.potency,
            unreachable=context is not None and context.unreachable,
            unreachable_reason=(self.reach.evidence.reason if context is not None
                                and context.unreachable and self.reach.evidence else None)))
        if asked is None:
            return None
        ahead = "" if predicted is None else f", {predicted:.1f} mmHg in 15 min"
        return DoseRequest(asked, self.requester,
                           f"{self.mode}: {reason.value} (MAP {map_mmhg:.1f} mmHg{ahead})")

    def _advance_line(self, view: SupervisorView) -> None:
        now_s = view.t_s
        dose = view.dose_mcg_min if view.running else 0.0
        if self._last_dose is not None and dose > self._last_dose + 1e-9:
            # S3's interval runs from an increase the supervisor applied (ours, the nurse's
            # confirmation of ours or an operator's), not from one it refused (a volume check
            # open): after a refusal the climb may go on as soon as the supervisor lets it
            asked = self._asked_up_s
            ours = asked is not None and now_s - asked <= self.tuning.period_s
            self._last_up_s = asked if ours else now_s
            self._asked_up_s = None
        if self._last_t_s is not None and now_s > self._last_t_s:
            dt_min = (now_s - self._last_t_s) / 60.0
            rate = self.line.advance(self._last_dose or 0.0, dt_min)
            for c in self.candidates:
                c.advance(rate, dt_min)
        self._last_t_s, self._last_dose = now_s, dose
