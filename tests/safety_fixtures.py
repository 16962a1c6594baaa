"""Shared fixtures for the safety tests: a recording ``MockPump``, a recording sink that can
refuse writes, a supervisor factory and the journal oracle.

``MockPump`` records every command with its argument and answers like an ideal pump; its fault
levers (pressure, stall, empty, lost acknowledgement, host timeout, a rate set at its keypad)
are plain attributes. ``ListSink`` can be told to refuse writes as a full disk would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from safety.limits import DoseLimits
from safety.supervisor import Supervisor
from vasopilot.core.config import (
    NOREPINEPHRINE,
    DrugEntry,
    PatientSettings,
    SafetySettings,
    SyringeCatalogue,
    SyringeSpec,
)
from vasopilot.core.errors import JournalUnavailable, PumpConnectionError, UncertainDeliveryError
from vasopilot.core.events import (
    AlarmCleared,
    AlarmCode,
    AlarmRaised,
    DoseApplied,
    DoseChange,
    DoseRequested,
    Event,
    FlowProbe,
    OperatorAction,
    StopReason,
)
from vasopilot.core.types import (
    Beat,
    HostLossBehaviour,
    PumpAlarm,
    PumpCapabilities,
    PumpState,
    PumpStatus,
    Requester,
)

SYRINGE_50: SyringeSpec = SyringeCatalogue().syringes["bd-plastipak-50"]


@dataclass
class MockPump:
    """An ideal pump that records calls: ``calls`` holds (name, argument) in order."""

    remaining_ml: float = 50.0
    line_pressure_mmhg: float | None = 10.0
    stalled: bool = False
    alarm: PumpAlarm | None = None
    drop_ack_next: bool = False
    disconnected: bool = False
    uncertain: bool = False
    calls: list[tuple[str, float | None]] = field(default_factory=list)
    # The state the pump was in when each call arrived (a stop of a running pump needs a reason).
    states_at_call: list[PumpState] = field(default_factory=list)
    rate_ml_h: float = 0.0
    state: PumpState = PumpState.STOPPED
    t_s: float = 0.0
    delivered_ml: float = 0.0
    host_loss: HostLossBehaviour = HostLossBehaviour.KEEPS_RATE

    @property
    def capabilities(self) -> PumpCapabilities:
        return PumpCapabilities(
            min_rate_ml_h=0.01, max_rate_ml_h=150.0, resolution_ml_h=0.001,
            syringe_volume_ml=50.0, host_loss=self.host_loss,
        )

    def _answer(self) -> PumpStatus:
        if self.drop_ack_next:
            self.drop_ack_next = False
            raise UncertainDeliveryError("reply lost")
        return self.status()

    def _link(self) -> None:
        if self.disconnected:
            raise PumpConnectionError("no reply")

    def _call(self, name: str, argument: float | None) -> None:
        self.calls.append((name, argument))
        self.states_at_call.append(self.state)

    def keypad(self, rate_ml_h: float) -> None:
        """Someone sets the rate at the pump itself (0: stops it there)."""
        self.rate_ml_h = rate_ml_h
        self.state = PumpState.INFUSING if rate_ml_h > 0 else PumpState.STOPPED

    def set_rate(self, rate_ml_h: float) -> PumpStatus:
        self._call("set_rate", rate_ml_h)
        self._link()
        self.rate_ml_h = rate_ml_h
        self.state = PumpState.INFUSING if rate_ml_h > 0 else PumpState.STOPPED
        return self._answer()

    def stop(self) -> PumpStatus:
        self._call("stop", None)
        self._link()
        self.rate_ml_h = 0.0
        self.state = PumpState.STOPPED
        self.alarm = None
        return self._answer()

    def back_off(self, volume_ul: float) -> PumpStatus:
        self._call("back_off", volume_ul)
        self._link()
        return self.status()

    def status(self) -> PumpStatus:
        self._link()
        return PumpStatus(
            t_s=self.t_s, state=self.state, rate_ml_h=self.rate_ml_h,
            delivered_ml=self.delivered_ml, syringe_remaining_ml=self.remaining_ml,
            line_pressure_mmhg=self.line_pressure_mmhg,
            stalled=self.stalled, end_of_travel=self.remaining_ml <= 0, alarm=self.alarm,
            delivery_uncertain=self.uncertain,
        )

    def heartbeat(self) -> None:
        self._call("heartbeat", None)
        self._link()

    def close(self) -> None:
        self._call("close", None)

    def commands(self) -> list[tuple[str, float | None]]:
        """Calls that change delivery (heartbeats left out)."""
        return [c for c in self.calls if c[0] in COMMANDS]

    def command_states(self) -> list[PumpState]:
        """The pump's state when each of :meth:`commands` arrived."""
        return [s for c, s in zip(self.calls, self.states_at_call, strict=True)
                if c[0] in COMMANDS]


COMMANDS = ("set_rate", "stop", "back_off")


class ListSink:
    """A recording event sink; ``kinds()`` lists what was journaled.

    ``events`` holds everything appended, in order; while ``refusing`` (a full disk) an event
    is kept pending and ``append`` raises ``JournalUnavailable``, and ``flush_pending`` writes
    the backlog once writes are allowed again. With a ``pump`` it also notes how many delivery
    commands that pump had received when each event became durable, so tests can prove an event
    was journaled before the pump acted (S14).
    """

    def __init__(self, pump: MockPump | None = None) -> None:
        self.events: list[Event] = []
        self.calls_when_appended: list[int] = []
        self.durable: list[bool] = []
        self.refusing = False
        # The disk fills up just as an event of this kind arrives.
        self.fill_on: str | None = None
        self._pump = pump

    def _calls(self) -> int:
        return len(self._pump.commands()) if self._pump else 0

    def append(self, event: Event) -> Event:
        if event.kind == self.fill_on:
            self.refusing, self.fill_on = True, None
        self.events.append(event)
        self.calls_when_appended.append(self._calls())
        self.durable.append(not self.refusing)
        if self.refusing:
            raise JournalUnavailable("disk full")
        return event

    def flush_pending(self) -> bool:
        if self.refusing:
            return False
        for index, durable in enumerate(self.durable):
            if not durable:
                self.durable[index] = True
                self.calls_when_appended[index] = self._calls()
        return True

    @property
    def pending(self) -> int:
        return self.durable.count(False)

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]


def make_supervisor(
    pump: MockPump | None = None,
    *,
    drug: DrugEntry = NOREPINEPHRINE,
    patient: PatientSettings | None = None,
    safety: SafetySettings | None = None,
    standby: MockPump | None = None,
) -> tuple[Supervisor, MockPump, ListSink]:
    pump = pump or MockPump()
    sink = ListSink(pump)
    supervisor = Supervisor(
        pump, drug=drug, patient=patient or PatientSettings(), safety=safety or SafetySettings(),
        syringe=SYRINGE_50, sink=sink, standby=standby,
    )
    return supervisor, pump, sink


def beat(t_s: float, map_mmhg: float = 70.0, quality: str = "good") -> Beat:
    return Beat(t_s=t_s, sbp_mmhg=map_mmhg + 40, dbp_mmhg=map_mmhg - 15, map_mmhg=map_mmhg,
                hr_bpm=80.0, quality=quality)


def feed(supervisor: Supervisor, t0_s: float, t1_s: float, *, map_mmhg: float = 70.0,
         quality: str = "good", pump: MockPump | None = None) -> float:
    """One beat and one tick per second from ``t0_s`` (exclusive) to ``t1_s``; returns t1_s."""
    t_s = t0_s
    while t_s < t1_s:
        t_s += 1.0
        if pump is not None:
            pump.t_s = t_s
        supervisor.on_beat(beat(t_s, map_mmhg, quality), t_s)
        supervisor.tick(t_s)
    return t_s


LIMITS_EPS = 1e-6
AUTOMATIC = (Requester.CONTROLLER, Requester.PROTOCOL, Requester.REMOTE)
# S8-S10: the only reasons to stop a running infusion (and the last weaning step, S7).
STOP_REASONS = frozenset({StopReason.OCCLUSION, StopReason.EXTRAVASATION,
                          StopReason.INFILTRATION, StopReason.EMPTY, StopReason.OPERATOR,
                          StopReason.WEANED})
LATCHING_STOPS = frozenset({StopReason.OCCLUSION, StopReason.EXTRAVASATION,
                            StopReason.INFILTRATION})
# Carried out while the journal is down: they keep the running infusion within the limits.
SAFETY_CHANGES = frozenset({DoseChange.RESTORED, DoseChange.RESUMED, DoseChange.CHANGEOVER})


class JournalInvariants:
    """The supervisor's promises, checked on its journal as it grows.

    Dose never above the hard max; above the soft max only with a confirmation; slew limits
    and the up-titration interval; no automatic increase on untrusted MAP (S5, kept here from
    the beats the test handed over) or with MAP ≥ target + 10 (S6); stops only for an S8-S10
    reason (or the last weaning step); no restart after an occlusion or extravasation without
    an operator; a pump state vasopilot did not command is adopted only within the limits and
    with a HIGH alarm, or brought back to a dose the journal holds safe; the open alarms are
    exactly those the journal raised and did not clear.
    """

    def __init__(self, limits: DoseLimits, high_map_mmhg: float, stale_after_s: float = 10.0):
        self._limits = limits
        self._high_map_mmhg = high_map_mmhg
        self._stale_after_s = stale_after_s
        self.checked = 0
        # The journaled rate change before each pump command (a dose, or a flow probe's step)
        # and whether it was durable.
        self.applied_at: dict[int, tuple[DoseApplied | FlowProbe, bool]] = {}
        self.open_codes: set[str] = set()
        self._last_good: Beat | None = None
        self._confirmed = False
        self._last_commanded = 0.0
        self._prior_commanded = 0.0
        self._last_up_t_s: float | None = None
        self._prior_up_t_s: float | None = None
        self._latched = False
        self._operator_started = False
        self._max_applied = 0.0
        self._safe_doses: set[float] = set()
        self.last_applied: DoseApplied | None = None

    def on_beat(self, beat: Beat) -> None:
        if beat.is_good and (self._last_good is None or beat.t_s >= self._last_good.t_s):
            self._last_good = beat

    def check(self, events: Sequence[Event], open_alarms: set[str],
              calls_when_appended: Sequence[int] | None = None,
              durable: Sequence[bool] | None = None) -> None:
        for index in range(self.checked, len(events)):
            event = events[index]
            if isinstance(event, OperatorAction) and event.action == "start":
                self._operator_started = True
            elif isinstance(event, DoseRequested):
                self._confirmed = event.soft_limit_confirmed
            elif isinstance(event, AlarmRaised):
                self.open_codes.add(event.code)
            elif isinstance(event, AlarmCleared):
                self.open_codes.discard(event.code)
            elif isinstance(event, DoseApplied):
                self._check_dose(event)
                self.last_applied = event
                if calls_when_appended is not None:
                    self.applied_at[calls_when_appended[index]] = (
                        event, durable is None or durable[index])
            elif isinstance(event, FlowProbe) and event.phase != "cancelled" \
                    and calls_when_appended is not None:
                # A cancelled probe commands nothing: the change that cut it short does.
                self.applied_at[calls_when_appended[index]] = (
                    event, durable is None or durable[index])
        self.checked = len(events)
        assert open_alarms == self.open_codes

    def _trusted_map(self, t_s: float) -> float | None:
        good = self._last_good
        if good is None or t_s - good.t_s >= self._stale_after_s:
            return None
        return good.map_mmhg

    def _close(self, a: float, b: float) -> bool:
        return abs(a - b) < 0.01 * max(a, b, 1.0)

    def _check_dose(self, event: DoseApplied) -> None:
        limits = self._limits
        dose, previous = event.dose_mcg_min, event.previous_dose_mcg_min
        assert dose <= limits.hard_max + LIMITS_EPS
        change = event.change
        if change is DoseChange.RECONCILED:
            # The read-back after an unconfirmed command: the pump runs either that journaled
            # (and checked) command or the dose before it.
            done = self._close(dose, self._last_commanded)
            assert done or self._close(dose, self._prior_commanded)
            if not done:
                # The last command never happened: neither did its up-step.
                self._last_up_t_s = self._prior_up_t_s
            self._last_commanded = self._prior_commanded = dose
            if dose > 0:
                self._safe_doses.add(dose)
            return
        if change is DoseChange.NOT_APPLIED:
            # The change journaled just before was never sent: neither was its up-step.
            assert self._close(dose, self._prior_commanded) and self._close(
                previous, self._last_commanded)
            if previous > dose:
                self._last_up_t_s = self._prior_up_t_s
            self._last_commanded = dose
            return
        if change is DoseChange.ADOPTED:
            # A change made at the pump within the limits, alarmed, taken as an operator's.
            assert AlarmCode.PUMP_UNCOMMANDED in self.open_codes
            assert dose <= max(limits.soft_max, self._max_applied) + LIMITS_EPS
            assert event.requester is Requester.OPERATOR
            self._adopt(dose)
            return
        if change is DoseChange.RESTORED:
            assert AlarmCode.PUMP_UNCOMMANDED in self.open_codes
            assert dose in self._safe_doses or self._close(dose, limits.start_max), dose
            self._adopt(dose)
            return
        if change is DoseChange.RESUMED:
            # Restarted after the pump stopped itself without its host: the same dose.
            assert dose > 0 and (self._close(dose, self._last_commanded)
                                 or self._close(dose, self._prior_commanded))
            return
        if change is DoseChange.CHANGEOVER:
            assert self._close(dose, previous)
            return
        self._prior_commanded, self._last_commanded = self._last_commanded, dose
        if dose > previous + LIMITS_EPS:
            if dose > limits.soft_max + LIMITS_EPS:
                assert self._confirmed or (event.requester is Requester.SUPERVISOR
                                           and dose <= self._max_applied + LIMITS_EPS)
            if event.requester in AUTOMATIC:
                map_mmhg = self._trusted_map(event.t_s)
                assert map_mmhg is not None, "automatic increase on untrusted MAP"
                assert map_mmhg < self._high_map_mmhg, "increase with MAP above target + 10"
            if previous > 0 and event.requester is not Requester.SUPERVISOR:
                assert dose - previous <= limits.up_step_at(previous) + LIMITS_EPS
                assert self._last_up_t_s is None or (
                    event.t_s - self._last_up_t_s >= limits.min_up_interval_s)
                self._prior_up_t_s, self._last_up_t_s = self._last_up_t_s, event.t_s
        if 0 < dose < previous - LIMITS_EPS:
            step = limits.wean_step if event.requester is Requester.SUPERVISOR else (
                limits.down_step_at(previous))
            assert previous - dose <= step + LIMITS_EPS
        if dose == 0:
            assert change is DoseChange.STOP and event.stop_reason is not None
            if previous > 0 and event.stop_reason is not StopReason.PUMP_FAULT:
                assert event.stop_reason in STOP_REASONS, event.stop_reason
            self._latched = event.stop_reason in LATCHING_STOPS
            self._operator_started = False
        if dose > 0 and previous == 0:
            assert not self._latched or self._operator_started, "restart without an operator"
            self._latched = False
        if dose > 0:
            self._safe_doses.add(dose)
        self._max_applied = max(self._max_applied, dose)

    def _adopt(self, dose: float) -> None:
        self._last_commanded = self._prior_commanded = dose
        self._latched = False
        if dose > 0:
            self._safe_doses.add(dose)
