"""A simulated day with random faults: every promise of the supervisor holds throughout.

One tick a second for 24 h of virtual time on the simulated rig (pump twin with a spare pump,
virtual patient with random artefacts), a simple titrating controller, and a seeded fault plan:
occlusions, infiltrations, stalls, lost acknowledgements, extravasation sensor trips, operator
stops, weaning. The operator answers latched stops after a few minutes and reloads the spare
pump after each changeover.
"""

from __future__ import annotations

import random

from safety_rig import SimRig

from safety.alarms import AlarmCode
from safety.supervisor import StopReason
from vasopilot.core.events import AlarmRaised, DoseApplied
from vasopilot.core.types import DoseRequest, Requester

DAY_S = 24 * 3600.0
CONTROL_PERIOD_S = 60.0
CHECK_PERIOD_S = 60.0
START_DOSE_MCG_MIN = 10.0
# Small syringes, so that the day sees several changeovers.
SYRINGE_FILL_ML = 5.0
FAULTS = ("occlude", "infiltrate", "stall", "drop_ack", "sensor", "operator_stop", "wean")


class Day:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.rig = SimRig(seed=seed, spare=True, fill_ml=SYRINGE_FILL_ML)
        self.rig.patient.random_artefacts(rate_per_h=2.0, seed=seed)
        self.faults_injected: list[str] = []
        self.repair_at_s: float | None = None
        self.restart_at_s: float | None = None
        self.next_fault_s = self.rng.uniform(1800.0, 3600.0)
        self.next_control_s = 0.0
        self.next_check_s = 0.0
        self.changeovers = 0

    def run(self) -> None:
        rig = self.rig
        rig.run(20.0)
        assert rig.supervisor.start(START_DOSE_MCG_MIN, rig.t_s).applied
        while rig.t_s < DAY_S:
            t_s = rig.step()
            if t_s >= self.next_control_s:
                self.next_control_s = t_s + CONTROL_PERIOD_S
                self.control(t_s)
            if t_s >= self.next_fault_s:
                self.next_fault_s = t_s + self.rng.uniform(1800.0, 5400.0)
                self.inject(t_s)
            self.operator(t_s)
            if t_s >= self.next_check_s:
                self.next_check_s = t_s + CHECK_PERIOD_S
                rig.check_promises()
        rig.check_promises()

    def control(self, t_s: float) -> None:
        view = self.rig.supervisor.view(t_s)
        if not view.running or view.last_good_map_mmhg is None:
            return
        if view.last_good_map_mmhg < view.target_map_mmhg:
            dose = view.dose_mcg_min + 2.0
        elif view.last_good_map_mmhg > view.target_map_mmhg + 5.0:
            dose = max(1.0, view.dose_mcg_min - 1.0)
        else:
            return
        self.rig.supervisor.request(DoseRequest(dose, Requester.CONTROLLER, "soak"), t_s)

    def inject(self, t_s: float) -> None:
        rig, fault = self.rig, self.rng.choice(FAULTS)
        self.faults_injected.append(fault)
        if fault == "occlude":
            rig.pump.faults.occlude()
        elif fault == "infiltrate":
            rig.pump.faults.infiltrate()
        elif fault == "stall":
            rig.pump.faults.stall()
        elif fault == "drop_ack":
            rig.pump.faults.drop_ack_next()
        elif fault == "sensor":
            rig.line.trip_extravasation_sensor()
        elif fault == "operator_stop":
            rig.supervisor.operator_stop(t_s, by="nurse", reason="soak")
        else:
            rig.supervisor.start_weaning(t_s, by="nurse")
        self.repair_at_s = t_s + self.rng.uniform(120.0, 600.0)

    def operator(self, t_s: float) -> None:
        rig, supervisor = self.rig, self.rig.supervisor
        if any(a.code == AlarmCode.CHANGEOVER for a in supervisor.alarms):
            self.changeovers += 1
            rig.change_over_done(rig.new_pump(fill_ml=SYRINGE_FILL_ML))
            assert rig.spare is not None
            supervisor.set_standby(rig.spare, t_s, by="nurse")
            supervisor.acknowledge(AlarmCode.CHANGEOVER, t_s, by="nurse")
        if self.repair_at_s is None or t_s < self.repair_at_s:
            return
        self.repair_at_s = None
        faults = rig.pump.faults
        faults.clear_occlusion()
        faults.resite()
        faults.clear_stall()
        rig.line.clear_extravasation_sensor()
        supervisor.stop_weaning(t_s, by="nurse")
        for alarm in list(supervisor.alarms):
            supervisor.acknowledge(alarm.code, t_s, by="nurse")
        if not supervisor.view(t_s).running:
            supervisor.start(START_DOSE_MCG_MIN, t_s, by="nurse")


def test_a_simulated_day_with_random_faults_breaks_no_promise() -> None:
    day = Day(seed=2026)
    day.run()
    events = day.rig.list_sink.events
    stops = {e.reason.split(" (")[0] for e in events
             if isinstance(e, DoseApplied) and e.dose_mcg_min == 0 and e.previous_dose_mcg_min}
    raised = {e.code for e in events if isinstance(e, AlarmRaised)}
    print(f"\nfaults: {day.faults_injected}\nstops: {sorted(stops)}\nalarms: {sorted(raised)}"
          f"\nchangeovers: {day.changeovers}, events: {len(events)}")
    assert len(day.faults_injected) >= 15
    assert day.changeovers >= 2
    assert f"stopped: {StopReason.OCCLUSION}" in stops
    assert day.rig.supervisor.view().running
