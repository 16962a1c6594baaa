"""Random sequences of requests, beats, pump faults, extravasation, operator actions, a pump
changed behind the supervisor's back (its keypad, its safe mode) and a journal that refuses
writes (a full disk).

After every step the journal and the pump's call log are checked against the supervisor's
promises: dose never above the hard max; never above the soft max without a confirmation;
slew limits; no automatic up-titration on untrusted MAP or with MAP well above target; stops
only for a permitted reason, and never for a patient-side change of line pressure (a step, a
ramp, a train of coughs: no S8–S10 cause, so no stop); no restart after an occlusion or
extravasation without an operator; every rate sent to the pump journaled durably first, a dose
or a flow probe's step (restoring the limits or the running dose excepted, which go ahead with
the journal down); after every tick the pump runs nothing above the limits; every refusal and
alarm journaled.

CI runs 5,000 examples (env ``CI`` set); a local run 300.
"""

from __future__ import annotations

import os
import random

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from safety_fixtures import (
    LIMITS_EPS,
    SAFETY_CHANGES,
    STOP_REASONS,
    JournalInvariants,
    ListSink,
    MockPump,
    beat,
    make_supervisor,
)

from safety.alarms import AlarmCode
from safety.supervisor import Decision, Supervisor
from vasopilot.core.config import NOREPINEPHRINE, PatientSettings
from vasopilot.core.events import (
    DoseApplied,
    DoseChange,
    DoseRefused,
    Fault,
    FaultCode,
    FlowProbe,
    RefusalCode,
    StopReason,
)
from vasopilot.core.types import DoseRequest, LineSignals, PumpAlarm, PumpState, Requester
from vasopilot.core.units import dose_from_rate_ml_h, rate_ml_h_from_dose

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

doses = st.one_of(st.floats(min_value=-2.0, max_value=80.0, allow_nan=False),
                  st.sampled_from([0.0, 8.0, 10.0, 12.0, 30.0, 31.0, 60.0, 61.0]))
requesters = st.sampled_from(list(Requester)[:4])


class SupervisorMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.supervisor: Supervisor
        self.pump: MockPump
        self.sink: ListSink
        self.promises: JournalInvariants
        self.t_s = 0.0
        self.checked_events = 0
        self.checked_commands = 0

    @initialize(dose=st.floats(min_value=8.0, max_value=12.0))
    def start(self, dose: float) -> None:
        self.supervisor, self.pump, self.sink = make_supervisor(patient=PATIENT)
        self.promises = JournalInvariants(self.supervisor.limits,
                                            PATIENT.setpoint_mmhg + 10.0)
        self._beat(70.0, "good", 0.0)
        self._decided(self.supervisor.start(dose, self.t_s))

    # -- rules --------------------------------------------------------------------------------

    @rule(dt=st.sampled_from([0.5, 1.0, 5.0, 11.0, 30.0, 61.0, 130.0, 900.0]))
    def wait(self, dt: float) -> None:
        self.t_s += dt
        self.pump.t_s = self.t_s
        self.supervisor.tick(self.t_s)
        self.check()
        self._pump_within_limits()

    @rule(rate_ml_h=st.one_of(st.sampled_from([0.0, 3.0, 7.5, 22.5, 30.0, 40.0, 80.0]),
                              st.floats(min_value=0.0, max_value=100.0)),
          safe_mode=st.booleans())
    def behind_the_back(self, rate_ml_h: float, safe_mode: bool) -> None:
        """Someone sets a rate at the pump, or its safe mode stops it (host timeout)."""
        if safe_mode:
            self.pump.state, self.pump.rate_ml_h = PumpState.ALARM, 0.0
            self.pump.alarm = PumpAlarm.HOST_TIMEOUT
        else:
            self.pump.keypad(rate_ml_h)
        self.check()

    @rule(disk=st.sampled_from(["full", "fills at the next dose change", "has room"]))
    def journal(self, disk: str) -> None:
        """The journal's disk fills up, at once or just as a dose change is written, or has
        room again."""
        self.sink.refusing = disk == "full"
        self.sink.fill_on = "dose.applied" if disk.startswith("fills") else None
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

    @rule(kind=st.sampled_from(["step", "ramp", "coughs"]),
          size=st.floats(min_value=-40.0, max_value=80.0),
          duration=st.sampled_from([1.0, 5.0, 15.0, 40.0]),
          seed=st.integers(0, 2**16))
    def patient_side(self, kind: str, size: float, duration: float, seed: int) -> None:
        """A flow-independent change of line pressure, sampled each second with sensor noise,
        while the supervisor ticks; the pump's state does not change it."""
        if kind == "step":
            size = max(-40.0, min(40.0, size))
        elif kind == "ramp":
            # S8's envelope for a flow-independent ramp: up to 30 mmHg over 1-30 min (a faster,
            # larger straight climb is what a closed line at the running flow does)
            size = max(-30.0, min(30.0, size))
            duration = 60.0 * max(1.0, duration / 15.0)
        rng = random.Random(seed)
        first = len(self.sink.events)
        for second in range(int(duration) + 15):
            self.t_s += 1.0
            if kind == "step":
                offset = size if second < duration else 0.0
            elif kind == "ramp":
                offset = size * min(1.0, second / duration)
            else:
                offset = size if second % 4 == 0 and second < duration else 0.0
            pressure = 15.0 + offset + rng.gauss(0.0, 0.5)
            self.pump.t_s = self.t_s
            self.pump.line_pressure_mmhg = pressure
            self.supervisor.on_line_signals(
                LineSignals(t_s=self.t_s, line_pressure_mmhg=pressure), self.t_s)
            self.supervisor.tick(self.t_s)
        for event in self.sink.events[first:]:
            if isinstance(event, Fault) and event.code is FaultCode.OCCLUSION_DETECTED:
                assert "detector=stall" in (event.detail or ""), event
            if isinstance(event, DoseApplied):
                assert event.stop_reason is not StopReason.INFILTRATION, event
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
            pump.state, pump.rate_ml_h, pump.alarm = PumpState.ALARM, 0.0, PumpAlarm.PROGRAM_ERROR
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
        given = beat(t_s, map_mmhg, quality)
        self.promises.on_beat(given)
        self.supervisor.on_beat(given, self.t_s)

    def _decided(self, decision: Decision) -> None:
        start = self.checked_events
        if decision.code not in (None, RefusalCode.PUMP_ERROR):
            refusals = [e for e in self.sink.events[start:] if isinstance(e, DoseRefused)]
            assert refusals and refusals[-1].code == decision.code
        self.check()

    # -- invariants -----------------------------------------------------------------------------

    def check(self) -> None:
        self.promises.check(self.sink.events, {a.code for a in self.supervisor.alarms},
                            self.sink.calls_when_appended, self.sink.durable)
        self.checked_events = len(self.sink.events)
        limits = self.supervisor.limits
        hard_max_ml_h = rate_ml_h_from_dose(limits.hard_max, limits.conc_mcg_ml)
        commands = self.pump.commands()
        states = self.pump.command_states()
        for position in range(self.checked_commands, len(commands)):
            name, argument = commands[position]
            if name == "set_rate":
                # Preceded by a dose change carrying its rate, durable unless it restores the
                # limits or the running dose.
                journaled, durable = self.promises.applied_at.get(position, (None, False))
                assert journaled is not None and argument is not None
                assert abs(journaled.rate_ml_h - argument) < 1e-9
                # A probe's make-up and its end restore delivery, as the running dose does.
                assert durable or (journaled.phase != "pause" if isinstance(journaled, FlowProbe)
                                   else journaled.change in SAFETY_CHANGES), journaled
                assert argument <= hard_max_ml_h + 1e-9
            elif name == "stop" and states[position] is PumpState.INFUSING:
                decided = self._last_applied_before(position)
                assert decided is not None
                if isinstance(decided, FlowProbe):
                    # A probe's pause, journaled durably before the pump was told.
                    assert decided.phase == "pause"
                    assert self.promises.applied_at[max(
                        k for k in self.promises.applied_at if k <= position)][1]
                else:
                    assert decided.change is DoseChange.STOP
                    assert decided.stop_reason in STOP_REASONS, decided
        self.checked_commands = len(commands)

    def _last_applied_before(self, position: int) -> DoseApplied | FlowProbe | None:
        keys = [k for k in self.promises.applied_at if k <= position]
        return self.promises.applied_at[max(keys)][0] if keys else None

    def _pump_within_limits(self) -> None:
        """After a tick that could read the pump, it runs nothing above the limits, and above
        the soft maximum only the journal's (confirmed) dose."""
        pump = self.pump
        if pump.disconnected or pump.uncertain or pump.state is not PumpState.INFUSING:
            return
        limits = self.supervisor.limits
        dose = dose_from_rate_ml_h(pump.rate_ml_h, limits.conc_mcg_ml)
        assert dose <= limits.hard_max + LIMITS_EPS
        if dose > limits.soft_max + LIMITS_EPS:
            last = self.promises.last_applied
            assert last is not None and abs(last.dose_mcg_min - dose) < 0.01 * dose

    @invariant()
    def dose_within_hard_max(self) -> None:
        if hasattr(self, "supervisor"):
            assert self.supervisor.view(self.t_s).dose_mcg_min <= NOREPINEPHRINE.hard_max


SupervisorMachine.TestCase.settings = PROFILE
TestSupervisorInvariants = SupervisorMachine.TestCase
