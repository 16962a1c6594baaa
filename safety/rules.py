"""The request rules: small named rules, each with its S-number, applied in order.

A request is judged on a frozen :class:`RequestContext` (the request, the time, what is running,
what the MAP says, the drug's limits), the oref0 way: :func:`evaluate` hands each rule the
context and the dose that has come through the rules before it; a rule passes it on, limits it
(a slew step) or refuses it, and the reasons are kept. Nothing here does I/O or keeps state, so
one rule can be tested alone against a baseline context.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from safety.limits import RATE_TOLERANCE, DoseLimits
from vasopilot.core.config import SET_POINT_ABOVE_FLOOR_MMHG
from vasopilot.core.events import RefusalCode, StopReason
from vasopilot.core.types import BeatQuality, DoseRequest, PumpCapabilities, Requester
from vasopilot.core.units import rate_ml_h_from_dose


@dataclass(frozen=True)
class RequestContext:
    """Everything a rule may look at. Doses in mcg/min, MAP in mmHg, times in s.

    ``trusted_map_mmhg`` is the newest good beat's MAP while it is under ``stale_after_s`` old
    (``None`` otherwise); ``since_last_up_s`` the time since the last up-titration. S6: the
    floor F, its set-point F + 5, ``map_high_margin_mmhg`` over the set-point no increase,
    under ``lower_limit_mmhg`` (F - 5) no decrease.
    """

    request: DoseRequest
    now_s: float
    starting: bool
    running: bool
    dose_mcg_min: float
    limits: DoseLimits
    capabilities: PumpCapabilities
    trusted_map_mmhg: float | None
    last_quality: BeatQuality | None
    stale_after_s: float
    floor_mmhg: float
    lower_limit_mmhg: float
    map_high_margin_mmhg: float
    since_last_up_s: float | None
    uncertain: bool = False
    journal_ok: bool = True
    needs_operator: bool = False
    stop_reason: StopReason | None = None
    weaning: bool = False
    # issue 19: a volume check waits for an answer; one was given within its window; a
    # tachycardia alarm nobody has acknowledged yet
    volume_check_open: bool = False
    volume_checked_recently: bool = True
    tachycardia_unacknowledged: bool = False

    @property
    def automatic(self) -> bool:
        return self.request.requester is not Requester.OPERATOR


@dataclass(frozen=True)
class Verdict:
    """A rule's answer: ``dose_mcg_min`` may go on (possibly limited); ``code`` set = refused."""

    dose_mcg_min: float
    reason: str
    code: RefusalCode | None = None

    @property
    def refused(self) -> bool:
        return self.code is not None


Check = Callable[[RequestContext, float], Verdict | None]


@dataclass(frozen=True)
class Rule:
    """One rule: ``check(context, dose)`` returns ``None`` to pass the dose on unchanged."""

    name: str
    requirement: str
    check: Check


@dataclass(frozen=True)
class Ruling:
    """What the rules made of a request: the dose to apply or the refusal, and every reason."""

    dose_mcg_min: float
    reasons: tuple[str, ...]
    code: RefusalCode | None = None
    rule: Rule | None = None

    @property
    def refused(self) -> bool:
        return self.code is not None

    @property
    def reason(self) -> str:
        return self.reasons[-1] if self.reasons else "within the rules"


def _refuse(ctx: RequestContext, code: RefusalCode, reason: str) -> Verdict:
    return Verdict(ctx.dose_mcg_min, reason, code)


def delivery_known(ctx: RequestContext, dose: float) -> Verdict | None:
    if ctx.uncertain:
        return _refuse(ctx, RefusalCode.UNCERTAIN,
                       "the pump has not confirmed the last command and cannot be read: "
                       "no change until its state is known")
    return None


def journal_durable(ctx: RequestContext, dose: float) -> Verdict | None:
    if not ctx.journal_ok:
        return _refuse(ctx, RefusalCode.JOURNAL_FAULT,
                       "the journal cannot record a dose change now: the dose is held")
    return None


def latched_stop(ctx: RequestContext, dose: float) -> Verdict | None:
    if ctx.needs_operator and not (ctx.starting and not ctx.automatic):
        return _refuse(ctx, RefusalCode.STOPPED,
                       f"stopped for {ctx.stop_reason}: only an operator may restart")
    return None


def infusion_running(ctx: RequestContext, dose: float) -> Verdict | None:
    if not ctx.starting and not ctx.running:
        return Verdict(0.0, "the infusion is not running: an operator must start it",
                       RefusalCode.NOT_RUNNING)
    return None


def dose_limits(ctx: RequestContext, dose: float) -> Verdict | None:
    limits = ctx.limits
    if dose < 0:
        return Verdict(0.0, f"a dose cannot be negative ({dose:.2f} mcg/min)",
                       RefusalCode.NEGATIVE)
    if dose > limits.hard_max:
        return Verdict(0.0, f"{dose:.2f} mcg/min is above the hard maximum of "
                            f"{limits.hard_max:.2f} mcg/min: never allowed", RefusalCode.HARD_MAX)
    if dose > limits.soft_max and not ctx.request.soft_limit_confirmed:
        return Verdict(0.0, f"{dose:.2f} mcg/min is above the soft maximum of "
                            f"{limits.soft_max:.2f} mcg/min: needs an operator's confirmation",
                       RefusalCode.SOFT_MAX)
    return None


def stop_by_reason_only(ctx: RequestContext, dose: float) -> Verdict | None:
    if ctx.automatic and dose == 0:
        return _refuse(ctx, RefusalCode.STOP_NOT_ALLOWED,
                       "only an operator, a detected hazard or weaning may stop the infusion")
    return None


def weaning_owns_the_dose(ctx: RequestContext, dose: float) -> Verdict | None:
    if ctx.automatic and ctx.weaning:
        return _refuse(ctx, RefusalCode.WEANING,
                       "weaning in progress: only the weaning policy or an operator changes the "
                       "dose")
    return None


def trusted_map(ctx: RequestContext, dose: float) -> Verdict | None:
    if ctx.automatic and ctx.trusted_map_mmhg is None:
        quality = ctx.last_quality or "no beats"
        return _refuse(ctx, RefusalCode.MAP_UNTRUSTED,
                       f"no trusted MAP in the last {ctx.stale_after_s:.0f} s "
                       f"(last beat: {quality}): dose held")
    return None


def map_direction(ctx: RequestContext, dose: float) -> Verdict | None:
    map_mmhg = ctx.trusted_map_mmhg
    if map_mmhg is None or ctx.starting:
        return None
    high = ctx.floor_mmhg + SET_POINT_ABOVE_FLOOR_MMHG + ctx.map_high_margin_mmhg
    if dose > ctx.dose_mcg_min and map_mmhg >= high:
        return _refuse(ctx, RefusalCode.MAP_HIGH,
                       f"MAP {map_mmhg:.0f} mmHg is at or above {high:.0f} mmHg: no increase")
    if dose < ctx.dose_mcg_min and map_mmhg < ctx.lower_limit_mmhg:
        return _refuse(ctx, RefusalCode.MAP_LOW,
                       f"MAP {map_mmhg:.0f} mmHg is below the lower limit of "
                       f"{ctx.lower_limit_mmhg:.0f} mmHg: no decrease")
    return None


def start_range(ctx: RequestContext, dose: float) -> Verdict | None:
    """A starting dose is exempt from the slew limits up to the start range, and above it
    with an operator's confirmation (taking over an infusion already running)."""
    if not ctx.starting:
        return None
    start_max = ctx.limits.start_max
    if dose > start_max and not ctx.request.soft_limit_confirmed:
        return _refuse(ctx, RefusalCode.START_ABOVE_RANGE,
                       f"a starting dose of {dose:.2f} mcg/min is above the start range (at most "
                       f"{start_max:.2f} mcg/min): start lower and titrate up, or confirm it "
                       "(taking over an infusion already running)")
    return Verdict(dose, "starting dose")


def up_interval(ctx: RequestContext, dose: float) -> Verdict | None:
    since_s, interval_s = ctx.since_last_up_s, ctx.limits.min_up_interval_s
    if ctx.starting or dose <= ctx.dose_mcg_min or since_s is None or since_s >= interval_s:
        return None
    return _refuse(ctx, RefusalCode.UP_INTERVAL,
                   f"an increase is allowed every {interval_s:.0f} s; the last was "
                   f"{since_s:.0f} s ago")


def _slew(ctx: RequestContext, dose: float, step: float, absolute: float,
          direction: str) -> Verdict | None:
    """S3: a step of at most ``step`` mcg/min (its absolute part ``absolute``, the rest the
    share of the running dose)."""
    current = ctx.dose_mcg_min
    if ctx.starting or abs(dose - current) <= step:
        return None
    up = dose > current
    limited = current + step if up else current - step
    part = "the absolute part" if step <= absolute else "the share of the running dose"
    return Verdict(limited, f"{direction} limited to {'+' if up else '-'}{step:.2f} mcg/min "
                            f"per step ({part}; {current:.2f} -> {limited:.2f} instead of "
                            f"{dose:.2f})")


def up_step(ctx: RequestContext, dose: float) -> Verdict | None:
    """S3's up-slew: +max(2 mcg/min, 20 % of the running dose) by default, so a refractory
    patient on 30 mcg/min climbs by 6 a step while low doses keep the +2 bound."""
    if dose <= ctx.dose_mcg_min:
        return None
    limits = ctx.limits
    return _slew(ctx, dose, limits.up_step_at(ctx.dose_mcg_min), limits.max_up_step,
                 "increase")


def _above_soft_max_increase(ctx: RequestContext, dose: float) -> bool:
    return not ctx.starting and dose > ctx.dose_mcg_min and dose > ctx.limits.soft_max


def volume_before_escalation(ctx: RequestContext, dose: float) -> Verdict | None:
    """Volume depletion is addressed before the dose escalates past the soft maximum: while a
    volume check waits for its answer, and when the dose would pass the soft maximum with no
    answer within the check's window."""
    if not _above_soft_max_increase(ctx, dose):
        return None
    if ctx.volume_check_open:
        return _refuse(ctx, RefusalCode.VOLUME_CHECK,
                       "check volume status before escalating further: answer the volume "
                       "check (assessed, fluid given, not indicated) first")
    if ctx.dose_mcg_min <= ctx.limits.soft_max and not ctx.volume_checked_recently:
        return _refuse(ctx, RefusalCode.VOLUME_CHECK,
                       f"{dose:.2f} mcg/min would pass the soft maximum of "
                       f"{ctx.limits.soft_max:.2f} mcg/min and volume status has not been "
                       "checked: answer the volume check first")
    return None


def tachycardia_hold(ctx: RequestContext, dose: float) -> Verdict | None:
    if _above_soft_max_increase(ctx, dose) and ctx.tachycardia_unacknowledged:
        return _refuse(ctx, RefusalCode.TACHYCARDIA,
                       "sustained tachycardia: no increase above the soft maximum until the "
                       "alarm is acknowledged")
    return None


def down_step(ctx: RequestContext, dose: float) -> Verdict | None:
    """S3's down-slew, -max(2 mcg/min, 20 %) by default (S8-S10 stops do not come here)."""
    if dose >= ctx.dose_mcg_min:
        return None
    limits = ctx.limits
    return _slew(ctx, dose, limits.down_step_at(ctx.dose_mcg_min), limits.max_down_step,
                 "decrease")


def deliverable(ctx: RequestContext, dose: float) -> Verdict | None:
    """A dose the pump cannot deliver within ±1 % with this syringe and mechanics."""
    if dose == 0:
        return None
    caps = ctx.capabilities
    rate_ml_h = rate_ml_h_from_dose(dose, ctx.limits.conc_mcg_ml)
    if rate_ml_h < caps.min_rate_ml_h or rate_ml_h > caps.max_rate_ml_h:
        return _refuse(ctx, RefusalCode.RATE_RANGE,
                       f"{dose:.2f} mcg/min needs {rate_ml_h:.3f} mL/h, outside this pump's range "
                       f"{caps.min_rate_ml_h:.3f}-{caps.max_rate_ml_h:.1f} mL/h")
    deliverable_ml_h = caps.deliverable_rate_ml_h(rate_ml_h)
    if abs(deliverable_ml_h - rate_ml_h) > RATE_TOLERANCE * rate_ml_h:
        return _refuse(ctx, RefusalCode.RESOLUTION,
                       f"{dose:.2f} mcg/min needs {rate_ml_h:.4f} mL/h but the pump can only run "
                       f"{deliverable_ml_h:.4f} mL/h (more than 1 % off)")
    return None


RULES: tuple[Rule, ...] = (
    Rule("delivery known", "invariant 1", delivery_known),
    Rule("journal durable", "S14", journal_durable),
    Rule("latched stop", "S8-S10", latched_stop),
    Rule("infusion running", "S10", infusion_running),
    Rule("dose limits", "S2", dose_limits),
    Rule("stop by reason only", "S8-S10", stop_by_reason_only),
    Rule("weaning owns the dose", "S7", weaning_owns_the_dose),
    Rule("trusted MAP", "S5", trusted_map),
    Rule("MAP direction", "S6", map_direction),
    Rule("start range", "S1", start_range),
    Rule("up interval", "S3", up_interval),
    Rule("up step", "S3", up_step),
    Rule("volume before escalation", "GR1", volume_before_escalation),
    Rule("tachycardia hold", "GR2", tachycardia_hold),
    Rule("down step", "S3", down_step),
    Rule("deliverable", "S4", deliverable),
)


def evaluate(ctx: RequestContext, rules: Sequence[Rule] = RULES) -> Ruling:
    """Apply ``rules`` in order to the requested dose; the first refusal ends it."""
    dose = ctx.request.dose_mcg_min
    reasons: list[str] = []
    for rule in rules:
        verdict = rule.check(ctx, dose)
        if verdict is None:
            continue
        reasons.append(f"{rule.requirement} {rule.name}: {verdict.reason}")
        if verdict.refused:
            return Ruling(verdict.dose_mcg_min, tuple(reasons), verdict.code, rule)
        dose = verdict.dose_mcg_min
    return Ruling(dose, tuple(reasons) or ("within the rules",))

