"""The one event schema: everything that happens is an Event, journaled before it is published.

Each kind is its own pydantic model with a ``kind`` literal, so a journal row or an MQTT payload
parses back into the right type with :data:`EVENT_ADAPTER`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from vasopilot.core.types import (
    BeatQuality,
    CommandRefusal,
    HostLossBehaviour,
    Priority,
    PumpState,
    Requester,
    RunEndReason,
    VolumeAnswer,
)
from vasopilot.core.units import DoseUnit

SCHEMA_VERSION = 2


class AlarmCode(StrEnum):
    """Every alarm the supervisor raises (``safety.alarms.ALARM_PRIORITY`` gives priorities)."""

    MAP_STALE = "MAP_STALE"
    MAP_LOW = "MAP_LOW"
    OCCLUSION = "OCCLUSION"
    EXTRAVASATION = "EXTRAVASATION"
    SYRINGE_NEAR_EMPTY = "SYRINGE_NEAR_EMPTY"
    SYRINGE_EMPTY = "SYRINGE_EMPTY"
    CHANGEOVER = "CHANGEOVER"
    PUMP_FAULT = "PUMP_FAULT"
    PUMP_DISCONNECTED = "PUMP_DISCONNECTED"
    PUMP_UNCOMMANDED = "PUMP_UNCOMMANDED"
    DELIVERY_UNCERTAIN = "DELIVERY_UNCERTAIN"
    HOST_TIMEOUT = "HOST_TIMEOUT"
    RESTARTED = "RESTARTED"
    HARD_LIMIT_REFUSED = "HARD_LIMIT_REFUSED"
    JOURNAL_FAULT = "JOURNAL_FAULT"
    # issue 19's guard rails
    VOLUME_CHECK = "VOLUME_CHECK"
    TACHYCARDIA = "TACHYCARDIA"
    BRADYCARDIA = "BRADYCARDIA"
    RHYTHM_IRREGULAR = "RHYTHM_IRREGULAR"
    SBP_LOW = "SBP_LOW"
    CANNULA_CHECK = "CANNULA_CHECK"
    PERIPHERAL_LINE_TIME = "PERIPHERAL_LINE_TIME"
    PROLONGED_HIGH_DOSE = "PROLONGED_HIGH_DOSE"
    # S9: a rise in line pressure that comes with the flow (check the cannula site), and one
    # that does not (an advisory only).
    CANNULA_SITE = "CANNULA_SITE"
    LINE_PRESSURE_CHANGED = "LINE_PRESSURE_CHANGED"
    # issue 14: the closed loop's evidence that the hard maximum cannot hold the set-point (an
    # operator decides what comes next; the controller climbs to the hard maximum meanwhile)
    TARGET_UNREACHABLE = "TARGET_UNREACHABLE"


class ProbeCause(StrEnum):
    """Which line-pressure detector asked for a flow probe (S8, S9)."""

    OCCLUSION = "occlusion"
    INFILTRATION = "infiltration"
    # The infiltration detector's pause that learns the line's own resistance.
    REFERENCE = "reference"


class StopReason(StrEnum):
    """Why an infusion ended: S8 (occlusion), S9 (extravasation, infiltration), S10 (empty
    syringe, operator), a pump that stopped by itself, or the last weaning step (not a stop)."""

    OCCLUSION = "occlusion"
    EXTRAVASATION = "extravasation"
    INFILTRATION = "infiltration"
    EMPTY = "empty-syringe"
    OPERATOR = "operator"
    PUMP_FAULT = "pump-fault"
    WEANED = "weaned"


class DoseChange(StrEnum):
    """What decision a ``dose.applied`` event records."""

    START = "start"
    TITRATION = "titration"
    WEAN = "wean"
    STOP = "stop"
    CHANGEOVER = "changeover"
    # A read-back settled a command whose acknowledgement was lost (or a restart's journal).
    RECONCILED = "reconciled"
    # A change within the limits made at the pump, taken as an operator's act.
    ADOPTED = "adopted"
    # An uncommanded pump state over the limits, brought back to the last safe dose.
    RESTORED = "restored"
    # The running dose sent again: the pump stopped itself on losing the host (restarted at the
    # last safe dose), or did not confirm a flow probe's command.
    RESUMED = "resumed"
    # The change journaled just before could not be made durable and was never sent.
    NOT_APPLIED = "not_applied"


class RefusalCode(StrEnum):
    """Why a dose request (or a MAP target) was refused."""

    NEGATIVE = "NEGATIVE"
    HARD_MAX = "HARD_MAX"
    SOFT_MAX = "SOFT_MAX"
    START_ABOVE_RANGE = "START_ABOVE_RANGE"
    UP_INTERVAL = "UP_INTERVAL"
    RATE_RANGE = "RATE_RANGE"
    RESOLUTION = "RESOLUTION"
    UNCERTAIN = "UNCERTAIN"
    STOPPED = "STOPPED"
    NOT_RUNNING = "NOT_RUNNING"
    STOP_NOT_ALLOWED = "STOP_NOT_ALLOWED"
    WEANING = "WEANING"
    MAP_UNTRUSTED = "MAP_UNTRUSTED"
    MAP_HIGH = "MAP_HIGH"
    MAP_LOW = "MAP_LOW"
    JOURNAL_FAULT = "JOURNAL_FAULT"
    PUMP_ERROR = "PUMP_ERROR"
    TARGET_RANGE = "TARGET_RANGE"
    # issue 19's guard rails
    VOLUME_CHECK = "VOLUME_CHECK"
    TACHYCARDIA = "TACHYCARDIA"
    TARGET_BELOW_USUAL = "TARGET_BELOW_USUAL"


class FaultCode(StrEnum):
    """What went wrong, in a ``Fault`` event (the message says it for people)."""

    OCCLUSION_DETECTED = "OCCLUSION_DETECTED"
    BACK_OFF_FAILED = "BACK_OFF_FAILED"
    CHANGEOVER_FAILED = "CHANGEOVER_FAILED"
    STOP_FAILED = "STOP_FAILED"
    STOP_RESENT = "STOP_RESENT"
    PUMP_REFUSED = "PUMP_REFUSED"
    DELIVERY_UNCERTAIN = "DELIVERY_UNCERTAIN"
    RATE_READBACK = "RATE_READBACK"
    UNCOMMANDED_STATE = "UNCOMMANDED_STATE"
    NOT_JOURNALED = "NOT_JOURNALED"
    PROBE_FAILED = "PROBE_FAILED"


class EventBase(BaseModel):
    """Fields every event carries. ``t_s`` is clock time; ``wall`` only a human label.

    ``seq`` is the journal's sequence number, set when the event is appended.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    t_s: float
    wall: str | None = None
    seq: int | None = None

    @property
    def durable(self) -> bool:
        """Whether the journal must commit this event synchronously before anyone acts on it."""
        return True


class DoseRequested(EventBase):
    kind: Literal["dose.requested"] = "dose.requested"
    requester: Requester
    dose_mcg_min: float
    reason: str
    sender: str | None = None
    soft_limit_confirmed: bool = False


class DoseApplied(EventBase):
    kind: Literal["dose.applied"] = "dose.applied"
    requester: Requester
    dose_mcg_min: float
    previous_dose_mcg_min: float
    rate_ml_h: float
    reason: str
    change: DoseChange = DoseChange.TITRATION
    stop_reason: StopReason | None = None


class DoseRefused(EventBase):
    kind: Literal["dose.refused"] = "dose.refused"
    requester: Requester
    requested_dose_mcg_min: float
    code: RefusalCode
    reason: str
    sender: str | None = None


class AlarmRaised(EventBase):
    kind: Literal["alarm.raised"] = "alarm.raised"
    code: AlarmCode
    priority: Priority
    message: str


class AlarmAcknowledged(EventBase):
    kind: Literal["alarm.acked"] = "alarm.acked"
    code: AlarmCode
    by: str = "operator"


class AlarmSilenced(EventBase):
    kind: Literal["alarm.silenced"] = "alarm.silenced"
    code: AlarmCode
    until_t_s: float
    by: str = "operator"


class AlarmCleared(EventBase):
    kind: Literal["alarm.cleared"] = "alarm.cleared"
    code: AlarmCode


class BeatSummary(EventBase):
    """A summary of recent beats (journaled at a modest cadence, not every beat)."""

    kind: Literal["beat.summary"] = "beat.summary"
    map_mmhg: float | None
    sbp_mmhg: float | None
    dbp_mmhg: float | None
    hr_bpm: float | None
    quality: BeatQuality
    beats: int = 1

    @property
    def durable(self) -> bool:
        return False


class PumpStatusEvent(EventBase):
    kind: Literal["pump.status"] = "pump.status"
    state: PumpState
    rate_ml_h: float
    delivered_ml: float
    syringe_remaining_ml: float
    line_pressure_mmhg: float | None = None
    delivery_uncertain: bool = False

    @property
    def durable(self) -> bool:
        return False


class PumpContract(EventBase):
    """S12: what a pump does if this process dies, recorded when it is put to use.

    ``role`` is ``active`` (the pump infusing) or ``standby`` (the changeover spare).
    """

    kind: Literal["pump.contract"] = "pump.contract"
    role: Literal["active", "standby"]
    host_loss: HostLossBehaviour
    host_loss_after_s: float | None = None


class RunEnded(EventBase):
    """``vasopilot run`` ended on purpose: the infusion as it was left, for whoever comes next."""

    kind: Literal["run.ended"] = "run.ended"
    reason: RunEndReason
    dose_mcg_min: float
    rate_ml_h: float
    running: bool
    host_loss: HostLossBehaviour
    host_loss_after_s: float | None = None


class OperatorAction(EventBase):
    kind: Literal["operator.action"] = "operator.action"
    action: str
    by: str = "operator"
    detail: str = ""
    # the MAP target a ``set_target`` put in force (a restart restores it)
    target_map_mmhg: float | None = None
    # the answer a ``volume_assessed`` gave to the volume check (issue 19)
    volume_answer: VolumeAnswer | None = None


class Fault(EventBase):
    kind: Literal["fault"] = "fault"
    code: FaultCode
    message: str
    detail: str = ""


class FlowProbe(EventBase):
    """A brief change of delivery the supervisor makes to test the line (S8, S9): a pause,
    the resumption at a make-up rate, the return to the programmed rate once the paused
    volume is made up, or a probe cut short (by a dose change or a stop) with what it owes."""

    kind: Literal["line.probe"] = "line.probe"
    phase: Literal["pause", "make-up", "made-up", "cancelled"]
    cause: ProbeCause
    rate_ml_h: float
    volume_ul: float
    reason: str


class ModeChanged(EventBase):
    kind: Literal["mode.changed"] = "mode.changed"
    mode: str
    by: str = "operator"


class JournalGap(EventBase):
    """Events the journal had to shed while it could not write (disk full, I/O error).

    Only beat summaries and pump status readings are ever shed, oldest first; ``shed`` counts
    them by kind, between the clock times ``from_t_s`` and ``to_t_s``.
    """

    kind: Literal["journal.gap"] = "journal.gap"
    shed: dict[str, int]
    from_t_s: float
    to_t_s: float


class RunStarted(EventBase):
    """Opens a run in the journal: what was run, with which settings, on what."""

    kind: Literal["run.started"] = "run.started"
    rig_id: str
    mode: str
    scenario: str | None = None
    seed: int | None = None
    target_map_mmhg: float
    lower_limit_mmhg: float
    conc_mcg_ml: float
    weight_kg: float | None = None
    restarted: bool = False
    # the drug library entry's unit: a report shows mcg/kg/min beside mcg/min for a
    # weight-based entry
    dose_unit: DoseUnit = DoseUnit.MCG_MIN


class RemoteCommand(EventBase):
    """A remote command the rig acts on now (S15), journaled before it acts.

    ``sender`` is the broker-authenticated username (the command topic's last level); its
    ``request_id`` is never acted on again, however long the journal is. ``issued_at`` is the
    sender's wall-clock label.
    """

    kind: Literal["remote.command"] = "remote.command"
    request_id: str
    sender: str
    command: str
    issued_at: str


class RemoteRefused(EventBase):
    """Remote commands refused before the supervisor decided (S15).

    One row stands for ``count`` refusals of one ``code`` from one ``sender`` in a burst (a flood
    is one row, not thousands); ``request_id`` and ``command`` are the first one's, if parsed.
    """

    kind: Literal["remote.refused"] = "remote.refused"
    sender: str
    code: CommandRefusal
    reason: str
    command: str | None = None
    request_id: str | None = None
    count: int = Field(default=1, ge=1)


Event = Annotated[
    DoseRequested
    | DoseApplied
    | DoseRefused
    | AlarmRaised
    | AlarmAcknowledged
    | AlarmSilenced
    | AlarmCleared
    | BeatSummary
    | PumpStatusEvent
    | OperatorAction
    | PumpContract
    | Fault
    | FlowProbe
    | ModeChanged
    | JournalGap
    | RunStarted
    | RunEnded
    | RemoteCommand
    | RemoteRefused,
    Field(discriminator="kind"),
]

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def parse_event(payload: str | bytes) -> Event:
    """Parse one event from its JSON form (journal row or MQTT payload)."""
    return EVENT_ADAPTER.validate_json(payload)
