"""Random sequences of requests, beats, pump faults, extravasation and operator actions.

After every step the journal and the pump's call log are checked against the supervisor's
promises: dose never above the hard max; never above the soft max without a confirmation;
slew limits; no automatic up-titration on untrusted MAP or with MAP well above target; stops
only for a permitted reason; no restart after an occlusion or extravasation without an
operator; every pump command journaled before it was sent; every refusal and alarm journaled.

CI runs 5,000 examples (env ``CI`` set); a local run 300.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from test_safety_support import ListSink, MockPump, beat, make_supervisor

from safety.alarms import AlarmCode
from safety.limits import DoseLimits
from safety.supervisor import Decision, StopReason, Supervisor
from vasopilot.core.config import NOREPINEPHRINE, PatientSettings
from vasopilot.core.events import (
    AlarmCleared,
    AlarmRaised,
    DoseApplied,
    DoseRefused,
    DoseRequested,
    OperatorAction,
)
from vasopilot.core.types import DoseRequest, LineSignals, PumpState, Requester
from vasopilot.core.units import rate_ml_h_from_dose

settings.register_profile(
    "safety-ci", max_examples=5000, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "safety-dev", max_examples=300, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
PROFILE = settings.get_profile("safety-ci" if os.environ.get("CI") else "safety-dev")

PATIENT = PatientSettings()
LIMITS_EPS = 1e-6
HIGH_MAP_MMHG = PATIENT.target_map_mmhg + 10.0
AUTOMATIC = (Requester.CONTROLLER, Requester.PROTOCOL, Requester.REMOTE)
PERMITTED_STOPS = {f"stopped: {r}" for r in StopReason}
RECONCILED = "reconciled"
LATCHING_STOPS = {f"stopped: {StopReason.OCCLUSION}", f"stopped: {StopReason.EXTRAVASATION}"}

doses = st.one_of(st.floats(min_value=-2.0, max_value=80.0, allow_nan=False),
                  st.sampled_from([0.0, 8.0, 10.0, 12.0, 30.0, 31.0, 60.0, 61.0]))
requesters = st.sampled_from(list(Requester)[:4])


class SupervisorMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.supervisor: Supervisor
        self.pump: MockPump
        self.sink: ListSink
        self.t_s = 0.0
        # The trusted-MAP picture as the rules of S5 define it, kept by the test itself.
        self.last_good_t_s: float | None = None
        self.last_good_map = 70.0
        self.checked_events = 0
        self.last_up_t_s: float | None = None
        self.prior_up_t_s: float | None = None
        self.latched = False
        self.operator_started = False
        self.max_applied = 0.0
        self.confirmed = False
        self.last_commanded = 0.0
        self.prior_commanded = 0.0
        self.checked_commands = 0
        self.open_codes: set[str] = set()
        self.applied_at: dict[int, DoseApplied] = {}

    @initialize(dose=st.floats(min_value=8.0, max_value=12.0))
    def start(self, dose: float) -> None:
        self.supervisor, self.pump, self.sink = make_supervisor(patient=PATIENT)
        self._beat(70.0, "good", 0.0)
        self._decided(self.supervisor.start(dose, self.t_s))

    # -- rules --------------------------------------------------------------------------------

    @rule(dt=st.sampled_from([0.5, 1.0, 5.0, 11.0, 30.0, 61.0, 130.0, 900.0]))
    def wait(self, dt: float) -> None:
        self.t_s += dt
        self.pump.t_s = self.t_s
        self.supervisor.tick(self.t_s)
        self.check()

    @rule(map_mmhg=st.floats(min_value=40.0, max_value=120.0),
          kind=st.sampled_from(["good", "good", "stale", "flush", "zeroing", "damping",
                                "disconnection"]))
    def beats(self, map_mmhg: float, kind: str) -> None:
        if kind == "stale":
            self._beat(map_mmhg, "good", self.t_s - 20.0)
        else:
            self._beat(map_mmhg, kind, self.t_s)
        self.check()

    @rule(dose=doses, requester=requesters, confirmed=st.booleans())
    def request(self, dose: float, requester: Requester, confirmed: bool) -> None:
        self._decided(self.supervisor.request(
            DoseRequest(dose, requester, "random", confirmed, "tester"), self.t_s))

    @rule(dose=doses, confirmed=st.booleans())
    def operator_start(self, dose: float, confirmed: bool) -> None:
        self.operator_started = True
        self._decided(self.supervisor.start(dose, self.t_s, by="nurse",
                                            soft_limit_confirmed=confirmed))

    @rule()
    def operator_stop(self) -> None:
        self.supervisor.operator_stop(self.t_s, by="nurse", reason="random")
        self.check()

    @rule(pressure=st.floats(min_value=0.0, max_value=900.0))
    def line_pressure(self, pressure: float) -> None:
        self.pump.line_pressure_mmhg = pressure
        self.supervisor.on_line_signals(
            LineSignals(t_s=self.t_s, line_pressure_mmhg=pressure), self.t_s)
        self.check()

    @rule(fault=st.sampled_from(["stall", "empty", "near_empty", "drop_ack", "disconnect",
                                 "reconnect", "pump_alarm", "refill"]))
    def pump_fault(self, fault: str) -> None:
        pump = self.pump
        if fault == "stall":
            pump.stalled = True
        elif fault == "empty":
            pump.remaining_ml = 0.0
        elif fault == "near_empty":
            pump.remaining_ml = 1.0
        elif fault == "drop_ack":
            pump.drop_ack_next = True
        elif fault in ("disconnect", "reconnect"):
            pump.disconnected = fault == "disconnect"
        elif fault == "pump_alarm":
            pump.state, pump.rate_ml_h, pump.alarm = PumpState.ALARM, 0.0, "E"
        else:
            pump.remaining_ml, pump.stalled = 50.0, False
        self.check()

    @rule(sensor=st.booleans())
    def extravasation(self, sensor: bool) -> None:
        if sensor:
            self.supervisor.on_line_signals(
                LineSignals(t_s=self.t_s, extravasation_sensor=True), self.t_s)
        else:
            self.supervisor.report_extravasation(self.t_s, by="nurse")
        self.check()

    @rule(code=st.sampled_from(list(AlarmCode)), silence=st.booleans())
    def alarm_action(self, code: AlarmCode, silence: bool) -> None:
        if silence:
            self.supervisor.silence(code, self.t_s, by="nurse")
        else:
            self.supervisor.acknowledge(code, self.t_s, by="nurse")
        self.check()

    @rule(on=st.booleans())
    def weaning(self, on: bool) -> None:
        if on:
            self.supervisor.start_weaning(self.t_s, by="nurse")
        else:
            self.supervisor.stop_weaning(self.t_s, by="nurse")
        self.check()

    # -- helpers ------------------------------------------------------------------------------

    def _beat(self, map_mmhg: float, quality: str, t_s: float) -> None:
        if quality == "good" and (self.last_good_t_s is None or t_s >= self.last_good_t_s):
            self.last_good_t_s, self.last_good_map = t_s, map_mmhg
        self.supervisor.on_beat(beat(t_s, map_mmhg, quality), self.t_s)

    def _trusted(self) -> bool:
        return self.last_good_t_s is not None and self.t_s - self.last_good_t_s < 10.0

    def _decided(self, decision: Decision) -> None:
        start = self.checked_events
        if decision.code not in (None, "PUMP_ERROR"):
            refusals = [e for e in self.sink.events[start:] if isinstance(e, DoseRefused)]
            assert refusals and refusals[-1].code == decision.code
        self.check()

    # -- invariants -----------------------------------------------------------------------------

    def check(self) -> None:
        limits = self.supervisor.limits
        events = self.sink.events
        for index in range(self.checked_events, len(events)):
            event = events[index]
            if isinstance(event, OperatorAction) and event.action == "start":
                self.operator_started = True
            elif isinstance(event, DoseRequested):
                self.confirmed = event.soft_limit_confirmed
            elif isinstance(event, AlarmRaised):
                self.open_codes.add(event.code)
            elif isinstance(event, AlarmCleared):
                self.open_codes.discard(event.code)
            elif isinstance(event, DoseApplied):
                self.check_dose(event, limits)
                self.applied_at[self.sink.calls_when_appended[index]] = event
        self.checked_events = len(events)
        # Every pump command was preceded by a journaled dose change carrying its rate.
        commands = self.pump.commands()
        for position in range(self.checked_commands, len(commands)):
            name, argument = commands[position]
            if name == "set_rate":
                journaled = self.applied_at.get(position)
                assert journaled is not None and argument is not None
                assert abs(journaled.rate_ml_h - argument) < 1e-9
                assert argument <= rate_ml_h_from_dose(limits.hard_max, limits.conc_mcg_ml) + 1e-9
        self.checked_commands = len(commands)
        assert {a.code for a in self.supervisor.alarms} == self.open_codes

    def check_dose(self, event: DoseApplied, limits: DoseLimits) -> None:
        dose, previous = event.dose_mcg_min, event.previous_dose_mcg_min
        assert dose <= limits.hard_max + LIMITS_EPS
        if event.reason.startswith(RECONCILED):
            # The read-back after a command whose acknowledgement was lost: the pump runs
            # either that journaled (and checked) command or the dose before it.
            done = abs(dose - self.last_commanded) < 0.01 * max(dose, 1.0)
            assert done or abs(dose - self.prior_commanded) < 0.01 * max(dose, 1.0)
            if not done:
                # The last command never happened: neither did its up-step.
                self.last_up_t_s = self.prior_up_t_s
            self.last_commanded = self.prior_commanded = dose
            return
        self.prior_commanded, self.last_commanded = self.last_commanded, dose
        if dose > previous + LIMITS_EPS:
            if dose > limits.soft_max + LIMITS_EPS:
                assert self.confirmed or (event.requester is Requester.SUPERVISOR
                                          and dose <= self.max_applied + LIMITS_EPS)
            if event.requester in AUTOMATIC:
                assert self._trusted(), "automatic increase on untrusted MAP"
                assert self.last_good_map < HIGH_MAP_MMHG
            if previous > 0 and event.requester is not Requester.SUPERVISOR:
                assert dose - previous <= limits.max_up_step + LIMITS_EPS
                assert self.last_up_t_s is None or (
                    event.t_s - self.last_up_t_s >= limits.min_up_interval_s)
                self.prior_up_t_s, self.last_up_t_s = self.last_up_t_s, event.t_s
        if 0 < dose < previous - LIMITS_EPS:
            step = limits.wean_step if event.requester is Requester.SUPERVISOR else (
                limits.max_down_step)
            assert previous - dose <= step + LIMITS_EPS
        reason = event.reason.split(" (")[0]
        if dose == 0 and previous > 0:
            assert event.requester is Requester.OPERATOR or reason in PERMITTED_STOPS, reason
            self.latched = reason in LATCHING_STOPS
            self.operator_started = False
        if dose > 0 and previous == 0:
            assert not self.latched or self.operator_started, "restart without an operator"
            self.latched = False
        self.max_applied = max(self.max_applied, dose)

    @invariant()
    def dose_within_hard_max(self) -> None:
        if hasattr(self, "supervisor"):
            assert self.supervisor.view(self.t_s).dose_mcg_min <= NOREPINEPHRINE.hard_max


SupervisorMachine.TestCase.settings = PROFILE
TestSupervisorInvariants = SupervisorMachine.TestCase
