"""Drug-library enforcement (S1–S4) as pure functions: a request in, a verdict with reasons out.

All doses here are in mcg/min; the drug entry's own unit is converted once, in :class:`DoseLimits`.
"""

from __future__ import annotations

from dataclasses import dataclass

from vasopilot.core.config import DrugEntry
from vasopilot.core.types import PumpCapabilities
from vasopilot.core.units import dose_from_rate_ml_h, rate_ml_h_from_dose

RATE_TOLERANCE = 0.01  # S4: the pump must deliver the dose within ±1 %


@dataclass(frozen=True)
class DoseLimits:
    """A drug entry expressed in mcg/min for one patient (weight in kg where needed)."""

    conc_mcg_ml: float
    soft_min: float
    soft_max: float
    hard_max: float
    start_max: float
    max_up_step: float
    min_up_interval_s: float
    max_down_step: float
    wean_step: float
    wean_interval_s: float

    @classmethod
    def from_entry(cls, drug: DrugEntry, weight_kg: float | None) -> DoseLimits:
        def mcg_min(value: float) -> float:
            return drug.mcg_min(value, weight_kg)

        return cls(
            conc_mcg_ml=drug.conc_mcg_ml,
            soft_min=mcg_min(drug.soft_min),
            soft_max=mcg_min(drug.soft_max),
            hard_max=mcg_min(drug.hard_max),
            start_max=mcg_min(drug.start_max),
            max_up_step=mcg_min(drug.max_up_step),
            min_up_interval_s=drug.min_up_interval_s,
            max_down_step=mcg_min(drug.max_down_step),
            wean_step=mcg_min(drug.wean_step),
            wean_interval_s=drug.wean_interval_s,
        )


@dataclass(frozen=True)
class Verdict:
    """``dose_mcg_min`` is what may be applied (possibly slew-limited); ``code`` set = refused."""

    dose_mcg_min: float
    reason: str
    code: str | None = None

    @property
    def refused(self) -> bool:
        return self.code is not None


def check_hard_and_soft(
    dose_mcg_min: float, limits: DoseLimits, soft_limit_confirmed: bool
) -> Verdict | None:
    """S2: refusal for a dose over the hard max, or over the soft max without confirmation."""
    if dose_mcg_min < 0:
        return Verdict(0.0, f"a dose cannot be negative ({dose_mcg_min:.2f} mcg/min)", "NEGATIVE")
    if dose_mcg_min > limits.hard_max:
        return Verdict(
            0.0,
            f"{dose_mcg_min:.2f} mcg/min is above the hard maximum of "
            f"{limits.hard_max:.2f} mcg/min: never allowed",
            "HARD_MAX",
        )
    if dose_mcg_min > limits.soft_max and not soft_limit_confirmed:
        return Verdict(
            0.0,
            f"{dose_mcg_min:.2f} mcg/min is above the soft maximum of "
            f"{limits.soft_max:.2f} mcg/min: needs an operator's confirmation",
            "SOFT_MAX",
        )
    return None


def check_deliverable(
    dose_mcg_min: float, limits: DoseLimits, capabilities: PumpCapabilities
) -> Verdict | None:
    """S4: refuse a dose the pump cannot deliver within ±1 % with this syringe and mechanics."""
    if dose_mcg_min == 0:
        return None
    rate_ml_h = rate_ml_h_from_dose(dose_mcg_min, limits.conc_mcg_ml)
    if rate_ml_h < capabilities.min_rate_ml_h or rate_ml_h > capabilities.max_rate_ml_h:
        return Verdict(
            0.0,
            f"{dose_mcg_min:.2f} mcg/min needs {rate_ml_h:.3f} mL/h, outside this pump's range "
            f"{capabilities.min_rate_ml_h:.3f}-{capabilities.max_rate_ml_h:.1f} mL/h",
            "RATE_RANGE",
        )
    deliverable_ml_h = capabilities.deliverable_rate_ml_h(rate_ml_h)
    if abs(deliverable_ml_h - rate_ml_h) > RATE_TOLERANCE * rate_ml_h:
        return Verdict(
            0.0,
            f"{dose_mcg_min:.2f} mcg/min needs {rate_ml_h:.4f} mL/h but the pump can only run "
            f"{deliverable_ml_h:.4f} mL/h (more than 1 % off)",
            "RESOLUTION",
        )
    return None


def slew_limit(
    dose_mcg_min: float,
    current_mcg_min: float,
    limits: DoseLimits,
    *,
    starting: bool,
    since_last_up_s: float | None,
    confirmed: bool = False,
) -> Verdict:
    """S3: limit the size of a step, and refuse an up-step that comes too soon after the last.

    A starting dose (infusion not running) is exempt up to the drug's start range, and above
    it with an operator's confirmation (taking over a running infusion).
    """
    if starting:
        if dose_mcg_min > limits.start_max and not confirmed:
            return Verdict(
                current_mcg_min,
                f"a starting dose of {dose_mcg_min:.2f} mcg/min is above the start range "
                f"(at most {limits.start_max:.2f} mcg/min): start lower and titrate up, or "
                "confirm it (taking over an infusion already running)",
                "START_ABOVE_RANGE",
            )
        return Verdict(dose_mcg_min, "starting dose")
    delta = dose_mcg_min - current_mcg_min
    if delta > 0:
        if since_last_up_s is not None and since_last_up_s < limits.min_up_interval_s:
            return Verdict(
                current_mcg_min,
                f"an increase is allowed every {limits.min_up_interval_s:.0f} s; the last was "
                f"{since_last_up_s:.0f} s ago",
                "UP_INTERVAL",
            )
        if delta > limits.max_up_step:
            limited = current_mcg_min + limits.max_up_step
            return Verdict(
                limited,
                f"increase limited to +{limits.max_up_step:.2f} mcg/min per step "
                f"({current_mcg_min:.2f} -> {limited:.2f} instead of {dose_mcg_min:.2f})",
            )
    elif -delta > limits.max_down_step:
        limited = current_mcg_min - limits.max_down_step
        return Verdict(
            limited,
            f"decrease limited to -{limits.max_down_step:.2f} mcg/min per step "
            f"({current_mcg_min:.2f} -> {limited:.2f} instead of {dose_mcg_min:.2f})",
        )
    return Verdict(dose_mcg_min, "within slew limits")


def dose_for_rate(rate_ml_h: float, limits: DoseLimits) -> float:
    return dose_from_rate_ml_h(rate_ml_h, limits.conc_mcg_ml)
