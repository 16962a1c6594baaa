"""Value types that cross the boundaries between drivers, safety and the application.

Frozen dataclasses: they are created at beat and tick rate, so they stay light; anything that
leaves the process (journal, MQTT, files) is a pydantic model in :mod:`vasopilot.core.events`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class BeatQuality(StrEnum):
    """A beat's verdict: ``good``, or the named reason it is not to be trusted (S5)."""

    GOOD = "good"
    FLUSH = "flush"
    SAMPLING = "sampling"
    ZEROING = "zeroing"
    DAMPING = "damping"
    KINK = "kink"
    DISCONNECTION = "disconnection"
    MOTION = "motion"
    SATURATION = "saturation"
    FLAT = "flat"
    CALIBRATION = "calibration"
    RANGE = "range"
    INCONSISTENT = "inconsistent"
    NOISE = "noise"
    MISSING = "missing"
    SENSOR_LOSS = "sensor_loss"


GOOD = BeatQuality.GOOD


class PumpAlarm(StrEnum):
    """An alarm a pump raised by itself, as its driver reports it (never parsed from text)."""

    POWER_LOSS = "power-loss"
    STALL = "stall"
    HOST_TIMEOUT = "host-timeout"
    EMPTY = "empty"
    END_OF_TRAVEL = "end-of-travel"
    NO_PLUNGER = "plunger-not-detected"
    STEP_THREAD = "step-thread-failed"
    # The firmware bridge: it stopped after delivering its unattended cap; it has no host now
    # (or had none for a while) and kept the rate, its alarm output latched.
    UNATTENDED_CAP = "unattended-cap"
    HOST_LOST = "host-lost"
    HOST_WAS_LOST = "host-was-lost"
    PROGRAM_ERROR = "program-error"
    PHASE_OUT_OF_RANGE = "phase-out-of-range"


class Requester(StrEnum):
    """Who asked for a dose change."""

    OPERATOR = "operator"
    CONTROLLER = "controller"
    PROTOCOL = "protocol"
    REMOTE = "remote"
    SUPERVISOR = "supervisor"


class CommandRefusal(StrEnum):
    """Why a remote command was refused before the supervisor decided (S15)."""

    OVERSIZE = "OVERSIZE"
    RETAINED = "RETAINED"
    RATE_LIMITED = "RATE_LIMITED"
    MALFORMED = "MALFORMED"
    DUPLICATE_KEY = "DUPLICATE_KEY"
    INVALID = "INVALID"
    STALE = "STALE"
    FUTURE = "FUTURE"
    EXPIRED = "EXPIRED"
    REPLAY = "REPLAY"
    BAD_SENDER = "BAD_SENDER"
    SELF = "SELF"
    NOT_READY = "NOT_READY"
    NO_SUCH_ALARM = "NO_SUCH_ALARM"
    JOURNAL = "JOURNAL"


class VolumeAnswer(StrEnum):
    """An operator's answer to the volume check (issue 19): what was done about volume status
    before the dose escalates further."""

    ASSESSED = "assessed"
    FLUID_GIVEN = "fluid given"
    NOT_INDICATED = "not indicated"


class Priority(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class PumpState(StrEnum):
    STOPPED = "stopped"
    INFUSING = "infusing"
    BACKING_OFF = "backing_off"
    ALARM = "alarm"
    DISCONNECTED = "disconnected"


class HostLossBehaviour(StrEnum):
    """What the pump hardware does when the host stops talking to it (S12)."""

    KEEPS_RATE = "keeps_rate"
    STOPS_AND_ALARMS = "stops_and_alarms"
    STOPS_SILENTLY = "stops_silently"


def host_loss_text(behaviour: HostLossBehaviour, after_s: float | None) -> str:
    """What a person at the bench should expect of the pump once this process has gone."""
    if behaviour is HostLossBehaviour.KEEPS_RATE:
        return "the pump keeps its last rate"
    if behaviour is HostLossBehaviour.STOPS_AND_ALARMS:
        when = f"{after_s:g} s after the host goes quiet" if after_s else "when the host goes quiet"
        return f"the pump stops and alarms {when}"
    return "the pump stops at once (this process drives its motor)"


class RunEndReason(StrEnum):
    """Why ``vasopilot run`` ended on purpose (a crash journals nothing: S13 resumes it)."""

    OPERATOR = "operator"  # Ctrl-C (or SIGINT from a service manager)
    TIMED = "timed"  # --minutes ran out


@dataclass(frozen=True, slots=True)
class Beat:
    """One arterial beat. Pressures in mmHg, ``t_s`` the onset on the clock's time line.

    ``quality`` is :attr:`BeatQuality.GOOD` or the reason the beat is not to be trusted.
    ``ectopic`` marks a good beat that came early (its own MAP is still trusted).
    """

    t_s: float
    sbp_mmhg: float
    dbp_mmhg: float
    map_mmhg: float
    hr_bpm: float
    quality: BeatQuality = GOOD
    ectopic: bool = False

    @property
    def is_good(self) -> bool:
        return self.quality == GOOD


@dataclass(frozen=True, slots=True)
class PumpCapabilities:
    """What a pump can deliver with its current syringe and mechanics.

    ``resolution_ml_h`` is the smallest rate increment; a requested rate is delivered as the
    nearest multiple that does not exceed it (never rounded up).
    """

    min_rate_ml_h: float
    max_rate_ml_h: float
    resolution_ml_h: float
    syringe_volume_ml: float
    host_loss: HostLossBehaviour
    can_back_off: bool = True
    # seconds of host silence before a STOPS_AND_ALARMS pump stops (its safe-mode timeout)
    host_loss_after_s: float | None = None

    def deliverable_rate_ml_h(self, rate_ml_h: float) -> float:
        """The rate the pump would really run at for ``rate_ml_h`` (0 stays 0)."""
        if rate_ml_h <= 0:
            return 0.0
        steps = int(rate_ml_h / self.resolution_ml_h + 1e-9)
        return steps * self.resolution_ml_h


@dataclass(frozen=True, slots=True)
class PumpStatus:
    """A pump's read-back state. ``delivery_uncertain`` is set when an acknowledgement was lost."""

    t_s: float
    state: PumpState
    rate_ml_h: float
    delivered_ml: float
    syringe_remaining_ml: float
    line_pressure_mmhg: float | None = None
    plunger_force_n: float | None = None
    stalled: bool = False
    end_of_travel: bool = False
    delivery_uncertain: bool = False
    alarm: PumpAlarm | None = None


@dataclass(frozen=True, slots=True)
class LineSignals:
    """Line inputs besides the pump: line pressure, stall, extravasation sensor."""

    t_s: float
    line_pressure_mmhg: float | None = None
    stall: bool = False
    extravasation_sensor: bool = False


@dataclass(frozen=True, slots=True)
class PressureChunk:
    """Arterial-pressure samples in mmHg taken at ``fs_hz`` from ``t0_s`` on (NaN = missing)."""

    t0_s: float
    fs_hz: float
    samples_mmhg: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class DoseRequest:
    """A wish for a new dose, in mcg/min; only the supervisor turns it into a rate."""

    dose_mcg_min: float
    requester: Requester
    reason: str
    soft_limit_confirmed: bool = False
    sender: str | None = None
