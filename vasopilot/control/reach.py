"""The closed loop's evidence that a patient is out of reach (issue 14), with its reason as data.

"Target unreachable" is the set-point's, as the bench's out-of-reach stratum is: a patient the
hard maximum cannot hold at F + 5 is out of reach even if it would hold F. Four kinds of
evidence, each a :class:`UnreachableReason`:

* ``PREDICTED``: the controller's bank, on the hard maximum for good, leaves MAP under the
  set-point with 90 % confidence, the wander's own spread added (its level now is not for
  good). Its model is linear in the effect (MAP = b + g·x), and a
  concave dose response lies under its secant, so this is a ceiling: right when it speaks, but
  late on a patient whose response saturates.
* ``NOT_FOLLOWING``: the dose climbed and MAP did not follow. Over the last 20 min of trusted
  filter updates MAP is regressed on the effect x of each lag model the bank still believes;
  the slope is the response the climb *showed*. Where the response is concave (every patient
  past the Hill curve's inflection) the slope of a chord over the climb is at least the slope
  beyond it, so
  MAP now plus that slope times the effect still to come on the hard maximum is again a
  ceiling, and a much tighter one than the secant from x = 0. It speaks only when that ceiling,
  with the slope's standard error (serial correlation counted), a slow wander of MAP0 that
  could have hidden a response during the climb and a wander that holds MAP under its mean
  now, stays under the set-point with 90 % confidence under every lag model, and only after a
  climb worth two slew steps: no climb, no evidence.
* ``SATURATING``: the same question over the last hour, on a saturating response
  MAP = b + E·x/(x + k) (E ≥ 0) fitted for every half-effect dose k on a grid (the straight
  line among them): the highest 90 % forecast on the hard maximum among the k the history
  leaves plausible (profile likelihood, serial correlation counted), each with the same wander
  allowances, must stay under the set-point under every lag model. A climb from low doses
  shows the curve's bend, which a 20 min chord near the top cannot; the straight line stays
  in the plausible set until the data reject it, so a patient still responding linearly is
  not called saturated. It waits for 15 min of history like the chord: the first minutes of a
  climb, before the effect's lag is learnt, bend like a saturation.
* ``AT_MAX``: the hard maximum has run 10 min with MAP under the set-point, its mean over them
  under it by the wander's 90 % spread (what is left when neither model could say it sooner).

Why the wander everywhere: a reachable patient near the hard maximum sits under the set-point
for as long as a trough of MAP0's wander lasts (σ up to 6 mmHg, τ up to 30 min), and no look
at MAP alone can tell that trough from a patient out of reach; without it, seed 1's reachable
patients with a need of 52-58 mcg/min (and one of 32 in a deep trough) were flagged.

Evidence holds until MAP is back at the set-point on average over 5 min (a passing high of the
wander is not a patient within reach); then it is gone and the alarm's cause ends. Pure: the
controller feeds it its trusted 10 s medians and asks at each look.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

import numpy as np

_Z90 = 1.2816  # one-sided 90 %


class UnreachableReason(StrEnum):
    PREDICTED = ("the bank's forecast on the hard maximum for good stays under the set-point "
                 "(90 %)")
    NOT_FOLLOWING = ("the dose climbed and MAP did not follow: at the response the climb showed, "
                     "the hard maximum stays under the set-point (90 %)")
    SATURATING = ("the dose-response seen since the climb began saturates: on the hard maximum "
                  "it stays under the set-point (90 %)")
    AT_MAX = ("the hard maximum has run 10 min with MAP under the set-point, by more than its "
              "wander")


@dataclass(frozen=True)
class Unreachable:
    """The evidence, when it first spoke: its reason, the dose and MAP then, and the MAP it
    expects on the hard maximum for good (None for ``AT_MAX``: that is observed, not expected)."""

    since_s: float
    reason: UnreachableReason
    dose_mcg_min: float
    map_mmhg: float
    expected_at_max_mmhg: float | None

    def message(self) -> str:
        expected = ("" if self.expected_at_max_mmhg is None
                    else f", at most {self.expected_at_max_mmhg:.1f} mmHg expected on it")
        return (f"{self.reason.value} (MAP {self.map_mmhg:.1f} mmHg on "
                f"{self.dose_mcg_min:.1f} mcg/min{expected})")


@runtime_checkable
class ReachAware(Protocol):
    """A control mode that can tell when the target is out of reach (the runtime raises the
    supervisor's TARGET_UNREACHABLE alarm while ``unreachable`` is not None)."""

    @property
    def mode(self) -> str: ...

    @property
    def unreachable(self) -> Unreachable | None: ...


@dataclass(frozen=True)
class ReachTuning:
    """Confidence and windows. The wander allowance is docs/virtual-patient.md's MAP0 wander
    (σ 3-6 mmHg, τ 5-30 min) over a 20 min climb, the controller's own cap on it (4 mmHg); not
    swept on a cohort."""

    confidence_z: float = _Z90
    at_max_s: float = 600.0
    window_s: float = 1200.0
    # a climb this large within the window (in slew steps at the running dose) before the
    # response it showed is evidence
    min_climb_steps: float = 2.0
    wander_mmhg: float = 4.0
    # evidence is gone when the mean of the trusted MAP over this long reaches the set-point
    clear_s: float = 300.0
    # the saturating fit's history, and its half-effect doses as shares of the hard maximum's
    # effect (the last, None, is the straight line: no saturation at all)
    history_s: float = 3600.0
    half_effect_shares: tuple[float | None, ...] = (0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5,
                                                    2.5, 4.0, None)
    # chi-square(1) at 90 %: a half-effect dose is plausible while its fit's residual sum of
    # squares stays within this much (per effective sample) of the best one's
    plausible_chi2: float = 2.706


class _Samples:
    """The trusted filter updates, oldest first, in arrays: times, MAPs and every lag model's
    effect x (mcg/min; a row per model, so one model's history is contiguous, as an array
    built from a list of it is). What is older than the history is dropped from the front;
    the window is a later start in the same arrays."""

    def __init__(self) -> None:
        self.t_s = np.empty(0)
        self.map_mmhg = np.empty(0)
        self.effects = np.empty((0, 0))
        self.history_from = 0
        self.window_from = 0
        self.end = 0

    def append(self, t_s: float, map_mmhg: float, effects: tuple[float, ...]) -> None:
        if self.end == self.t_s.size:
            kept = slice(self.history_from, self.end)
            size = max(64, 2 * (self.end - self.history_from))
            t, m, x = np.empty(size), np.empty(size), np.empty((len(effects), size))
            n = self.end - self.history_from
            if n:
                t[:n], m[:n], x[:, :n] = self.t_s[kept], self.map_mmhg[kept], self.effects[:, kept]
            self.t_s, self.map_mmhg, self.effects = t, m, x
            self.window_from -= self.history_from
            self.history_from, self.end = 0, n
        self.t_s[self.end] = t_s
        self.map_mmhg[self.end] = map_mmhg
        self.effects[:, self.end] = effects
        self.end += 1

    def since(self, start: int, t_s: float) -> int:
        """The first index from ``start`` on at or after ``t_s`` (the times only grow)."""
        return start + int(np.searchsorted(self.t_s[start:self.end], t_s, side="left"))


class ReachWatch:
    """Collects the evidence (module docstring); ``evidence`` is the one that spoke, held until
    the trusted MAP averages the set-point over 5 min; ``first_s`` when any first did."""

    def __init__(self, tuning: ReachTuning | None = None) -> None:
        self.tuning = tuning or ReachTuning()
        self.evidence: Unreachable | None = None
        self.first_s: float | None = None
        self._samples = _Samples()
        self._at_max_low_since_s: float | None = None

    def observe(self, t_s: float, map_mmhg: float, effects: tuple[float, ...]) -> None:
        """A trusted filter update: the 10 s median and each lag model's effect."""
        samples = self._samples
        samples.append(t_s, map_mmhg, effects)
        samples.window_from = samples.since(samples.window_from, t_s - self.tuning.window_s)
        samples.history_from = samples.since(samples.history_from, t_s - self.tuning.history_s)

    def look(self, t_s: float, *, map_mmhg: float, dose_mcg_min: float, hard_max_mcg_min: float,
             up_step_mcg_min: float, target_mmhg: float, models: tuple[int, ...],
             effect_at_max: float, steady_at_max: tuple[float, float]) -> Unreachable | None:
        """The evidence now. ``models``: the lag models the bank still believes (their effects
        are used: every one must say so); ``effect_at_max``: the effect on the hard maximum for
        good (mcg/min); ``steady_at_max``: the bank's mean and SD of MAP there."""
        tune = self.tuning
        if self.evidence is not None and self._recent_mean(t_s, map_mmhg) >= target_mmhg:
            self.evidence = None
        if map_mmhg >= target_mmhg:
            self._at_max_low_since_s = None
            return self.evidence
        at_max = dose_mcg_min >= hard_max_mcg_min - 1e-6
        if not at_max:
            self._at_max_low_since_s = None
        elif self._at_max_low_since_s is None:
            self._at_max_low_since_s = t_s
        if self.evidence is not None:
            return self.evidence
        found: tuple[UnreachableReason, float | None] | None = None
        mean, sd = steady_at_max
        # the bank's level is MAP0 with its wander now; on the hard maximum *for good* the
        # wander may come back up
        if mean + tune.confidence_z * math.hypot(sd, tune.wander_mmhg) < target_mmhg:
            found = UnreachableReason.PREDICTED, mean
        else:
            ceiling = _highest(self._climb_ceiling(m, effect_at_max, up_step_mcg_min)
                               for m in models)
            # the fit costs a few ms a look: asked only when the chord has not spoken
            saturation = None if ceiling is not None and ceiling < target_mmhg else _highest(
                self._saturation_ceiling(m, effect_at_max, up_step_mcg_min) for m in models)
            if ceiling is not None and ceiling < target_mmhg:
                found = UnreachableReason.NOT_FOLLOWING, ceiling
            elif saturation is not None and saturation < target_mmhg:
                found = UnreachableReason.SATURATING, saturation
            elif (self._at_max_low_since_s is not None
                  and t_s - self._at_max_low_since_s >= tune.at_max_s
                  and self._recent_mean(t_s, map_mmhg, tune.at_max_s)
                  + tune.confidence_z * tune.wander_mmhg < target_mmhg):
                found = UnreachableReason.AT_MAX, None
        if found is None:
            return None
        reason, expected = found
        self.evidence = Unreachable(t_s, reason, dose_mcg_min, map_mmhg, expected)
        if self.first_s is None:
            self.first_s = t_s
        return self.evidence

    def _recent_mean(self, t_s: float, map_mmhg: float, span_s: float | None = None) -> float:
        since_s = t_s - (self.tuning.clear_s if span_s is None else span_s)
        samples = self._samples
        # summed as floats, one after another (numpy's sum is pairwise)
        recent = samples.map_mmhg[samples.since(samples.window_from, since_s):samples.end]
        return sum(recent.tolist()) / recent.size if recent.size else map_mmhg

    def _climb(self, start: int, model: int,
               up_step_mcg_min: float) -> tuple[np.ndarray, np.ndarray, float] | None:
        """(effects, MAPs, climb) from sample ``start`` on under one lag model, or None
        without a look spanning most of the window (the saturating fit too: the first minutes
        of a climb, the effect's lag still unknown, bend like a saturation) or a climb worth
        two slew steps."""
        tune = self.tuning
        samples, end = self._samples, self._samples.end
        if end - start < 10 or samples.t_s[end - 1] - samples.t_s[start] < 0.75 * tune.window_s:
            return None
        x = samples.effects[model, start:end]
        climb = float(x[-1] - x.min())
        if climb < tune.min_climb_steps * up_step_mcg_min:
            return None
        return x, samples.map_mmhg[start:end], climb

    def _climb_ceiling(self, model: int, effect_at_max: float,
                       up_step_mcg_min: float) -> float | None:
        """The 90 % ceiling of MAP on the hard maximum at the response the last climb showed
        (None: no climb worth two slew steps in a window spanning most of its length)."""
        tune = self.tuning
        data = self._climb(self._samples.window_from, model, up_step_mcg_min)
        if data is None:
            return None
        x, y, climb = data
        xc = x - x.mean()
        sxx = float(xc @ xc)
        slope = float(xc @ (y - y.mean())) / sxx
        residual = y - y.mean() - slope * xc
        n = len(y)
        # serial correlation of the residuals (the wander is slow): effective sample size
        r = float(residual[1:] @ residual[:-1]) / max(float(residual @ residual), 1e-9)
        r = min(max(r, 0.0), 0.95)
        n_eff = max(2.0, n * (1.0 - r) / (1.0 + r))
        var_res = float(residual @ residual) / max(n - 2, 1)
        slope_se = math.sqrt(var_res / sxx * n / n_eff)
        # a MAP0 drift of the wander's size during the climb would hide that much response, and
        # the wander can sit that far under its mean over the whole window
        slope_sd = math.hypot(slope_se, tune.wander_mmhg / climb)
        now_fit = float(y.mean() + slope * (x[-1] - x.mean()))
        now_sd = math.sqrt(var_res * (1.0 / n_eff + (x[-1] - x.mean()) ** 2 / sxx * n / n_eff)
                           + tune.wander_mmhg**2)
        to_come = max(0.0, effect_at_max - float(x[-1]))
        mean = now_fit + max(slope, 0.0) * to_come
        sd = math.hypot(now_sd, slope_sd * to_come)
        return mean + tune.confidence_z * sd

    def _saturation_ceiling(self, model: int, effect_at_max: float,
                            up_step_mcg_min: float) -> float | None:
        """The 90 % ceiling of MAP on the hard maximum by a saturating response fitted to the
        history, MAP = b + E·x/(x + k) (E ≥ 0), under every half-effect dose k the history
        leaves plausible (the straight line among them): the highest of their forecasts, each
        with its standard error (serial correlation counted), a wander of MAP0 during the
        climb that could have bent the curve, and one that holds MAP under its mean now. None:
        no climb worth two slew steps in the history."""
        tune = self.tuning
        data = self._climb(self._samples.history_from, model, up_step_mcg_min)
        if data is None or effect_at_max <= data[0][-1]:
            return None
        x, y, _ = data
        n = len(y)
        # one row per half-effect dose k: u = x / (x + k), the straight line's u = x
        ks = np.array([np.inf if share is None else share * effect_at_max
                       for share in tune.half_effect_shares])
        if ks.size == 0:
            return None
        line = np.isinf(ks)
        k_finite = np.where(line, 1.0, ks)[:, None]
        u = np.where(line[:, None], x[None, :], x[None, :] / (x[None, :] + k_finite))
        u_at_max = np.where(line, effect_at_max, effect_at_max / (effect_at_max + ks))
        u_mean = u.mean(axis=1)
        uc = u - u_mean[:, None]
        suu = np.maximum((uc * uc).sum(axis=1), 1e-12)
        yc = y - y.mean()
        slope = np.maximum(0.0, uc @ yc / suu)
        residual = yc[None, :] - slope[:, None] * uc
        sse = (residual * residual).sum(axis=1)
        lag1 = (residual[:, 1:] * residual[:, :-1]).sum(axis=1) / np.maximum(sse, 1e-9)
        r = np.clip(lag1, 0.0, 0.95)
        n_eff = np.maximum(3.0, n * (1.0 - r) / (1.0 + r))
        var_res = sse / max(n - 2, 1)
        u_now = u[:, -1]
        now_fit = y.mean() + slope * (u_now - u_mean)
        to_come = u_at_max - u_now
        climbed = np.maximum(u_now - u.min(axis=1), 1e-9)
        # the forecast's error: the level now, the slope's (its SE with a MAP0 wander of the
        # allowance's size over the climb), and the wander for good
        slope_sd = np.hypot(np.sqrt(var_res / suu * n / n_eff), tune.wander_mmhg / climbed)
        now_var = var_res * (1.0 / n_eff + (u_now - u_mean) ** 2 / suu * n / n_eff)
        sd = np.sqrt(now_var + (slope_sd * to_come) ** 2 + tune.wander_mmhg**2)
        ceiling = now_fit + slope * to_come + tune.confidence_z * sd
        # profile likelihood: a k is plausible while its extra residual, in the best fit's
        # residual variance and counted on the effective (serially correlated) sample, stays
        # within the chi-square quantile
        best = int(np.argmin(sse))
        scale = max(float(sse[best]) / max(n - 2, 1) * n / float(n_eff[best]), 1e-9)
        plausible = sse - sse[best] <= tune.plausible_chi2 * scale
        return float(ceiling[plausible].max())


def _highest(ceilings: Iterable[float | None]) -> float | None:
    """The highest of every lag model's ceiling; None when any model has none (or no model)."""
    values = list(ceilings)
    if not values or None in values:
        return None
    return max(c for c in values if c is not None)
