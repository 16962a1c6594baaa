"""The hazard watches: line pressure (S8 occlusion, S9 infiltration) and the syringe (S10).

Each watch decides and returns a finding; the supervisor enacts it through the delivery part.
Line pressure is P_patient + Q·R + a hydrostatic offset: only a change tied to the pump's flow
stops. An ambiguous one asks for a flow probe (a brief pause), which :func:`probe_refusal`
permits or not and the delivery part carries out.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from safety.extravasation import InfiltrationDetector, InfiltrationFinding, LineChange
from safety.map_watch import AlarmOrder
from safety.occlusion import OcclusionDetector, OcclusionFinding, ProbeRequest
from vasopilot.core.events import AlarmCode, ProbeCause, StopReason
from vasopilot.core.types import Priority, PumpStatus
from vasopilot.core.units import MINUTES_PER_HOUR

# The second pump takes over this long before the first runs dry: late enough to use the
# syringe, early enough that a slow tick cannot leave a gap.
CHANGEOVER_LEAD_S = 60.0
# A flow probe's paused volume is made up at this fraction over the programmed rate, and what
# probes owe must be made up within this long (the bound).
PROBE_MAKE_UP_FRACTION = 0.1
PROBE_MAKE_UP_WITHIN_S = 600.0


@dataclass(frozen=True)
class Hazard:
    """A reason to stop (S8, S9): which, why, and for an occlusion what the detector saw."""

    reason: StopReason
    message: str
    occlusion: OcclusionFinding | None = None


@dataclass(frozen=True)
class LineVerdict:
    """What one line-pressure sample calls for: a stop, alarm orders, a probe to consider."""

    hazard: Hazard | None = None
    alarms: tuple[AlarmOrder, ...] = ()
    probe: ProbeRequest | None = None


_QUIET = LineVerdict()  # nothing to do (immutable, so one is shared)


class LineWatch:
    """Occlusion and infiltration from line pressure, stall and the cannula-site sensor."""

    def __init__(self, threshold_mmhg: float, compliance_ul_per_mmhg: float, *,
                 rise_rate: bool = True) -> None:
        self._occlusion = OcclusionDetector(threshold_mmhg, compliance_ul_per_mmhg,
                                            rise_rate=rise_rate)
        self._infiltration = InfiltrationDetector(compliance_ul_per_mmhg)
        self._cannula_suspected = False
        self._probing = False

    def reset(self) -> None:
        """A new start or a new pump: the baselines are learnt again."""
        self._occlusion.reset()
        self._infiltration.reset()
        self._cannula_suspected = False
        self._probing = False

    def pressure(self, pressure_mmhg: float, rate_ml_h: float, t_s: float) -> LineVerdict:
        """One line-pressure sample at the programmed ``rate_ml_h`` (also during a probe)."""
        occlusion_seen = self._occlusion.update(pressure_mmhg, rate_ml_h, t_s)
        if isinstance(occlusion_seen, OcclusionFinding):
            if occlusion_seen.detector == "probe" and self._cannula_suspected:
                # The line suspected of infiltration now follows the pump's flow on a probe:
                # the resistance evidence is unambiguous (S9).
                return LineVerdict(Hazard(
                    StopReason.INFILTRATION,
                    f"infiltration confirmed by a probe: {occlusion_seen.message}"))
            return LineVerdict(occlusion(occlusion_seen))
        infiltration = self._infiltration.update(pressure_mmhg, rate_ml_h, t_s)
        alarms: tuple[AlarmOrder, ...] = ()
        if isinstance(infiltration, InfiltrationFinding):
            alarms = self._line_changed(infiltration)
        probe: ProbeRequest | None = None
        if isinstance(occlusion_seen, ProbeRequest):
            probe = occlusion_seen
        elif isinstance(infiltration, ProbeRequest) and not self._occlusion.climbing:
            # A fast climb is the occlusion detector's to judge: a pause now would hide it.
            probe = infiltration
        if not alarms and probe is None:
            return _QUIET  # the usual sample
        return LineVerdict(alarms=alarms, probe=probe)

    def _line_changed(self, finding: InfiltrationFinding) -> tuple[AlarmOrder, ...]:
        """S9: pressure that comes with the flow is a high alarm at the cannula site; one that
        does not is at most a low advisory. Neither stops: a probe or an operator confirms."""
        self._cannula_suspected = finding.change is LineChange.FLOW_RELATED
        if self._cannula_suspected:
            return (AlarmOrder(AlarmCode.CANNULA_SITE, Priority.HIGH,
                               f"infiltration suspected: {finding.message}"),)
        return (AlarmOrder(AlarmCode.CANNULA_SITE),
                AlarmOrder(AlarmCode.LINE_PRESSURE_CHANGED, Priority.LOW, finding.message,
                           momentary=True))

    def probe_started(self, cause: ProbeCause, t_s: float) -> None:
        """The delivery part paused the pump now for a request with ``cause``."""
        ours = cause is ProbeCause.OCCLUSION
        self._occlusion.probe_started(t_s, ours=ours)
        self._infiltration.probe_started(t_s, ours=not ours)
        self._probing = True

    def probe_declined(self, request: ProbeRequest, refusal: ProbeRefusal, t_s: float
                       ) -> tuple[AlarmOrder, ...]:
        """The request was not enacted: its detector waits for unambiguous evidence. A lasting
        rise no probe may judge (MAP below the floor) is still a possible infiltration: the high
        "check the cannula site" alarm comes at once (S9), the probe is only needed to stop."""
        if request.cause is ProbeCause.OCCLUSION:
            self._occlusion.probe_declined(t_s)
            return ()
        self._infiltration.probe_declined(t_s)
        if request.cause is not ProbeCause.INFILTRATION or refusal is not ProbeRefusal.MAP:
            return ()
        self._cannula_suspected = True
        return (AlarmOrder(AlarmCode.CANNULA_SITE, Priority.HIGH,
                           f"infiltration suspected: {request.message} No probe may tell it "
                           "from a flow-independent offset while MAP is below the floor: check "
                           "the cannula site"),)

    def follow(self, paused: bool, t_s: float) -> None:
        """The pump runs again after a probe's pause (its make-up, or a probe cut short)."""
        if self._probing and not paused:
            self._probing = False
            self._occlusion.probe_ended(t_s)
            self._infiltration.probe_ended(t_s)

    def stall(self, pressure_mmhg: float | None, cause: str) -> Hazard:
        return occlusion(self._occlusion.stall(pressure_mmhg, cause))


@dataclass(frozen=True)
class ProbeContext:
    """What a probe decision looks at: the programmed rate, whether the pump's state is known,
    whether a probe is pausing it now, what earlier probes still owe, and the MAP trend (``None``
    when MAP is not trusted) against the floor."""

    rate_ml_h: float
    uncertain: bool
    paused: bool
    owed_ul: float
    map_trend_mmhg: float | None
    floor_mmhg: float


class ProbeRefusal(StrEnum):
    """Why a probe is not enacted now."""

    PUMP = "the pump's state is uncertain, it runs nothing or a pause is under way"
    OWED = "earlier probes owe more than 10 min of make-up can return"
    MAP = "MAP is below the floor or not trusted"


def probe_refusal(request: ProbeRequest, ctx: ProbeContext) -> ProbeRefusal | None:
    """S8, S9: never on a pump whose state is uncertain, never over a running pause; never while
    MAP is below the floor (or not trusted) unless the evidence already points to an occlusion.
    An occlusion probe may interrupt another probe's make-up; any other only while what both
    owe can still be made up within 10 min. ``None``: the probe may go ahead."""
    if ctx.uncertain or ctx.rate_ml_h <= 0 or ctx.paused:
        return ProbeRefusal.PUMP
    if request.urgent:
        return None
    owed_ul = ctx.owed_ul + ctx.rate_ml_h * request.pause_s / 3.6
    if owed_ul > ctx.rate_ml_h * PROBE_MAKE_UP_FRACTION * PROBE_MAKE_UP_WITHIN_S / 3.6:
        return ProbeRefusal.OWED
    if ctx.map_trend_mmhg is None or ctx.map_trend_mmhg < ctx.floor_mmhg:
        return ProbeRefusal.MAP
    return None


def occlusion(finding: OcclusionFinding) -> Hazard:
    return Hazard(StopReason.OCCLUSION, finding.message, finding)


def extravasation(cause: str) -> Hazard:
    return Hazard(StopReason.EXTRAVASATION, cause)


def time_left_min(status: PumpStatus | None, now_s: float | None = None) -> float | None:
    """Minutes of infusion left at the last read-back rate; with ``now_s``, counted on from
    that reading to ``now_s`` (so the estimate stays live while the pump cannot be read)."""
    if status is None or status.rate_ml_h <= 0:
        return None
    elapsed_s = 0.0 if now_s is None else max(0.0, now_s - status.t_s)
    elapsed_ml = status.rate_ml_h * elapsed_s / 3600.0
    left_ml = max(0.0, status.syringe_remaining_ml - elapsed_ml)
    return left_ml / status.rate_ml_h * MINUTES_PER_HOUR


def empty(status: PumpStatus) -> bool:
    return status.end_of_travel or status.syringe_remaining_ml <= 0


@dataclass(frozen=True)
class SyringeOutlook:
    """What the syringe calls for now: a changeover to the spare, and the near-empty alarm."""

    change_over: bool
    alarm: AlarmOrder


def syringe_outlook(left_min: float | None, *, running: bool, spare: bool,
                    near_empty_min: float) -> SyringeOutlook:
    """S10: a medium alarm ``near_empty_min`` ahead; the spare takes over shortly before (the
    alarm stands in case the changeover fails)."""
    if not running or left_min is None:
        return SyringeOutlook(False, AlarmOrder(AlarmCode.SYRINGE_NEAR_EMPTY))
    change_over = spare and left_min * 60.0 <= CHANGEOVER_LEAD_S
    if left_min > near_empty_min:
        return SyringeOutlook(change_over, AlarmOrder(AlarmCode.SYRINGE_NEAR_EMPTY))
    plan = "the second pump takes over" if spare else "prepare a new syringe"
    return SyringeOutlook(change_over, AlarmOrder(
        AlarmCode.SYRINGE_NEAR_EMPTY, Priority.MEDIUM,
        f"syringe near empty: {left_min:.0f} min of infusion left; {plan}"))
