"""One fault per hazard, injected into the simulated rig and run in virtual time.

Occlusion is measured like IEC 60601-2-24 asks (time to alarm, bolus released when the line
opens again) at 1, 5 and 20 mL/h with 50 mL and 10 mL syringes, by ``bench/occlusion.py``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from safety_rig import SimRig

from safety.alarms import AlarmCode
from safety.resume import ResumeState
from safety.supervisor import StopReason, Supervisor
from vasopilot.core.clock import VirtualClock
from vasopilot.core.config import NOREPINEPHRINE, PatientSettings
from vasopilot.core.events import DoseApplied, Fault, FaultCode, FlowProbe, RefusalCode
from vasopilot.core.types import (
    DoseRequest,
    HostLossBehaviour,
    Priority,
    PumpAlarm,
    PumpState,
    Requester,
)
from vasopilot.core.units import UL_PER_ML, rate_ml_h_from_dose
from vasopilot.journal import Journal

DOSE_MCG_MIN = 10.0  # 7.5 mL/h at 80 mcg/mL


def _bench() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "bench" / "occlusion.py"
    spec = importlib.util.spec_from_file_location("bench_occlusion", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


BENCH = _bench()


def started(rig: SimRig, dose: float = DOSE_MCG_MIN, settle_s: float = 300.0) -> SimRig:
    rig.run(20.0)
    assert rig.supervisor.start(dose, rig.t_s, soft_limit_confirmed=True).applied
    rig.run(settle_s)
    return rig


def active(supervisor: Supervisor, code: AlarmCode) -> bool:
    return any(a.code == code for a in supervisor.alarms)


# -- occlusion ----------------------------------------------------------------------------

@pytest.mark.parametrize("syringe", ["bd-plastipak-50", "bd-plastipak-10"])
@pytest.mark.parametrize("rate_ml_h", [1.0, 5.0, 20.0])
def test_occlusion_alarms_sooner_with_rise_rate_and_back_off_keeps_bolus_under_20_ul(
    rate_ml_h: float, syringe: str,
) -> None:
    spec = BENCH.SyringeCatalogue().syringes[syringe]
    threshold = BENCH.measure(rate_ml_h, spec, rise_rate=False, back_off=True)
    rise = BENCH.measure(rate_ml_h, spec, rise_rate=True, back_off=True)
    unrelieved = BENCH.measure(rate_ml_h, spec, rise_rate=True, back_off=False)
    print(f"\n{rate_ml_h:>5.1f} mL/h {spec.volume_ml:>3.0f} mL: threshold "
          f"{threshold.time_to_alarm_s:.1f} s, rise-rate {rise.time_to_alarm_s:.1f} s; bolus "
          f"{rise.bolus_ul:.1f} µL backed off, {unrelieved.bolus_ul:.1f} µL not")
    assert rise.time_to_alarm_s <= threshold.time_to_alarm_s
    assert rise.bolus_ul < 20.0
    assert rise.bolus_ul <= unrelieved.bolus_ul


def test_occlusion_at_1_ml_h_with_50_ml_syringe_alarms_within_3_minutes() -> None:
    spec = BENCH.SyringeCatalogue().syringes["bd-plastipak-50"]
    trial = BENCH.measure(1.0, spec, rise_rate=True, back_off=True)
    assert trial.time_to_alarm_s is not None and trial.time_to_alarm_s <= 180.0
    assert trial.bolus_ul < 20.0


def test_occlusion_stops_backs_off_latches_and_never_restarts_by_itself() -> None:
    rig = started(SimRig())
    rig.pump.faults.occlude()
    rig.run(600.0, until=lambda: not rig.supervisor.view().running)
    view = rig.supervisor.view(rig.t_s)
    assert view.stop_reason == StopReason.OCCLUSION and view.needs_operator
    alarm = rig.supervisor.alarms[0]
    assert alarm.code == AlarmCode.OCCLUSION and alarm.priority is Priority.HIGH
    rig.run(5.0)
    assert rig.pump.status().state is PumpState.STOPPED
    rig.pump.faults.clear_occlusion()
    rig.run(600.0)
    assert not rig.supervisor.view().running
    decision = rig.supervisor.request(
        DoseRequest(DOSE_MCG_MIN, Requester.CONTROLLER, "retry"), rig.t_s)
    assert decision.code is RefusalCode.STOPPED
    rig.check_promises()


# -- extravasation ------------------------------------------------------------------------

# The floor F (S6): the set-point is F + 5, the lower limit F - 5.
PATIENT_FLOOR_MMHG = PatientSettings().floor_mmhg

@pytest.mark.parametrize("map_mmhg", [72.0, 55.0])
@pytest.mark.parametrize("rate_ml_h", [0.5, 1.0, 7.5])
def test_infiltration_by_pressure_raises_a_high_cannula_alarm_within_5_minutes(
    rate_ml_h: float, map_mmhg: float,
) -> None:
    # With MAP below the floor (55 mmHg) no probe may judge the rise: the alarm comes anyway.
    spec = BENCH.SyringeCatalogue().syringes["bd-plastipak-50"]
    events: list[object] = []
    case = BENCH.Case("infiltration", ((0.0, "infiltration", 20.0, 600.0),), 300.0,
                      "infiltration")
    result = BENCH.run_case(case, rate_ml_h, spec, 0.5, 4242, map_mmhg=map_mmhg,
                            events=events)
    assert result.time_to_alarm_s is not None and result.time_to_alarm_s <= 300.0
    raised = next(e for e in events if getattr(e, "kind", "") == "alarm.raised"
                  and getattr(e, "code", "") == AlarmCode.CANNULA_SITE)
    assert getattr(raised, "priority", None) == Priority.HIGH
    # The alarm alone does not stop: only a probe that ties the rise to the flow, or an operator.
    assert not result.stopped or result.reason == StopReason.INFILTRATION
    assert not any(isinstance(e, Fault) and e.code is FaultCode.OCCLUSION_DETECTED for e in events)
    if map_mmhg < PATIENT_FLOOR_MMHG:
        assert not [e for e in events if isinstance(e, FlowProbe) and e.phase == "pause"]


# -- specificity (S8, S9): patient-side changes never stop, occlusions under them still do ----

SPEC_NOISE_MMHG = 0.5
SPEC_SEED = 4242


def _case(name: str, *events: tuple[float, str, float, float]) -> object:
    run_s = max(t + d for t, _, _, d in events) + BENCH.AFTER_S
    return BENCH.Case(name, tuple(events), run_s)


# The stops of the old detectors, and more of the battery, at the rates they hit.
PATIENT_SIDE = [
    (1.0, "bd-plastipak-50", _case("+15 held", (0.0, "step", 15.0, 1800.0))),
    (1.0, "bd-plastipak-50", _case("+12 for 2 min (sits up)", (0.0, "step", 12.0, 120.0))),
    (1.0, "bd-plastipak-50", _case("valsalva", (0.0, "step", 40.0, 15.0))),
    (1.0, "bd-plastipak-50", _case("+20 over 10 s", (0.0, "ramp", 20.0, 10.0))),
    (5.0, "bd-plastipak-50", _case("+15 held at 5 mL/h", (0.0, "step", 15.0, 1800.0))),
    (1.0, "bd-plastipak-50", _case("+30 over 2 min", (0.0, "ramp", 30.0, 120.0))),
    (0.5, "bd-plastipak-10", _case("+30 over 1 min", (0.0, "ramp", 30.0, 60.0))),
    (20.0, "bd-plastipak-10", _case("-40 for 30 s", (0.0, "step", -40.0, 30.0))),
    (1.0, "bd-plastipak-10", _case("coughs", *BENCH._coughs(80.0, 1.0, 4.0, 120.0))),
]


@pytest.mark.parametrize(("rate_ml_h", "syringe", "case"), PATIENT_SIDE,
                         ids=[c.name for _, _, c in PATIENT_SIDE])  # type: ignore[attr-defined]
def test_a_patient_side_change_never_stops_the_infusion(
    rate_ml_h: float, syringe: str, case: object,
) -> None:
    spec = BENCH.SyringeCatalogue().syringes[syringe]
    events: list[object] = []
    result = BENCH.run_case(case, rate_ml_h, spec, SPEC_NOISE_MMHG, SPEC_SEED, events=events)
    assert not result.stopped, result
    assert not any(getattr(e, "code", None) in ("OCCLUSION", "EXTRAVASATION", "CANNULA_SITE")
                   for e in events if getattr(e, "kind", "") == "alarm.raised")


@pytest.mark.parametrize(("rate_ml_h", "syringe", "within_s", "before"), [
    (1.0, "bd-plastipak-50", 60.0, ()),
    (0.5, "bd-plastipak-50", 120.0, ()),
    (1.0, "bd-plastipak-50", 60.0, ((0.0, "step", 20.0, 1800.0),)),
    # 60 s into the step the infiltration detector's pause is under way when the line closes.
    (1.0, "bd-plastipak-50", 60.0, ((-30.0, "step", 20.0, 1800.0),)),
    (1.0, "bd-plastipak-10", 60.0, ((-30.0, "step", 20.0, 1800.0),)),
    (1.0, "bd-plastipak-50", 60.0, ((0.0, "ramp", 30.0, 120.0),)),
    (0.5, "bd-plastipak-50", 120.0, ((0.0, "ramp", 30.0, 600.0),)),
    (5.0, "bd-plastipak-10", 60.0, ((0.0, "ramp", 30.0, 600.0),)),
])
def test_an_occlusion_is_caught_in_time_also_during_a_disturbance(
    rate_ml_h: float, syringe: str, within_s: float,
    before: tuple[tuple[float, str, float, float], ...],
) -> None:
    spec = BENCH.SyringeCatalogue().syringes[syringe]
    occlude_after_s = 30.0 if before else 0.0
    case = BENCH.Case("occlusion", (*before, (occlude_after_s, "occlusion", 0.0, 0.0)),
                      BENCH.GIVE_UP_S, "occlusion")
    result = BENCH.run_case(case, rate_ml_h, spec, SPEC_NOISE_MMHG, SPEC_SEED)
    assert result.stopped and result.reason == StopReason.OCCLUSION
    assert result.time_to_alarm_s is not None and result.time_to_alarm_s <= within_s
    assert result.bolus_ul is not None and result.bolus_ul < 5.0


def test_probes_pause_under_1_percent_of_the_hourly_dose_and_are_made_up_within_10_min(
) -> None:
    spec = BENCH.SyringeCatalogue().syringes["bd-plastipak-50"]
    events: list[object] = []
    case = _case("+30 over 10 min", (0.0, "ramp", 30.0, 600.0))
    BENCH.run_case(case, 0.5, spec, SPEC_NOISE_MMHG, SPEC_SEED, events=events)
    probes = [e for e in events if isinstance(e, FlowProbe)]
    pauses = [e for e in probes if e.phase == "pause"]
    assert pauses, "the ramp was never probed"
    assert any(e.phase == "made-up" for e in probes)
    for pause in pauses:
        assert pause.volume_ul < 0.01 * 0.5 * UL_PER_ML
        later = [e for e in probes if e.t_s > pause.t_s and e.phase != "make-up"]
        if later:  # the next probe, or the return to the programmed rate, within 10 min
            assert later[0].t_s - pause.t_s <= 600.0


def test_no_probe_for_a_slow_rise_while_map_is_below_the_floor() -> None:
    spec = BENCH.SyringeCatalogue().syringes["bd-plastipak-50"]
    events: list[object] = []
    case = _case("+10 held", (0.0, "step", 10.0, 900.0))
    result = BENCH.run_case(case, 1.0, spec, SPEC_NOISE_MMHG, SPEC_SEED, map_mmhg=55.0,
                            events=events)
    assert not result.stopped
    assert not [e for e in events if isinstance(e, FlowProbe) and e.cause != "occlusion"]


def test_extravasation_sensor_stops_at_once() -> None:
    rig = started(SimRig())
    rig.line.trip_extravasation_sensor()
    rig.step()
    assert rig.supervisor.view().stop_reason == StopReason.EXTRAVASATION
    assert active(rig.supervisor, AlarmCode.EXTRAVASATION)


# -- blood-pressure data ------------------------------------------------------------------

def test_sensor_loss_holds_the_dose_and_escalates_the_alarm() -> None:
    rig = started(SimRig())
    dose = rig.supervisor.view().dose_mcg_min
    rig.patient.inject("sensor_loss", rig.t_s, 120.0)
    rig.run(15.0)
    assert rig.supervisor.alarms[0].priority is Priority.MEDIUM
    rejected = rig.supervisor.request(
        DoseRequest(dose + 2, Requester.CONTROLLER, "MAP low?"), rig.t_s)
    assert rejected.code is RefusalCode.MAP_UNTRUSTED
    rig.run(60.0)
    stale = next(a for a in rig.supervisor.alarms if a.code == AlarmCode.MAP_STALE)
    assert stale.priority is Priority.HIGH
    assert rig.supervisor.view().running and rig.supervisor.view().dose_mcg_min == dose
    rig.check_promises()


@pytest.mark.parametrize("artefact", ["flush", "zeroing"])
def test_artefact_holds_the_dose_names_the_artefact_and_recovers(artefact: str) -> None:
    rig = started(SimRig())
    dose = rig.supervisor.view().dose_mcg_min
    rig.patient.inject(artefact, rig.t_s, 20.0)
    rig.run(15.0)
    stale = next(a for a in rig.supervisor.alarms if a.code == AlarmCode.MAP_STALE)
    assert artefact in stale.message
    decision = rig.supervisor.request(
        DoseRequest(dose - 1, Requester.CONTROLLER, "MAP read high"), rig.t_s)
    assert decision.code is RefusalCode.MAP_UNTRUSTED
    rig.run(30.0)
    assert not active(rig.supervisor, AlarmCode.MAP_STALE)
    assert rig.supervisor.view().dose_mcg_min == dose
    rig.check_promises()


# -- syringe ------------------------------------------------------------------------------

def test_empty_syringe_warns_ahead_then_stops_with_high_alarm() -> None:
    rate_ml_h = rate_ml_h_from_dose(DOSE_MCG_MIN, NOREPINEPHRINE.conc_mcg_ml)
    rig = SimRig(fill_ml=rate_ml_h * 20 / 60)  # 20 min of infusion
    started(rig, settle_s=60.0)
    assert not active(rig.supervisor, AlarmCode.SYRINGE_NEAR_EMPTY)
    rig.run(5 * 60.0)
    near = next(a for a in rig.supervisor.alarms if a.code == AlarmCode.SYRINGE_NEAR_EMPTY)
    assert near.priority is Priority.MEDIUM and "min of infusion left" in near.message
    rig.run(20 * 60.0, until=lambda: not rig.supervisor.view().running)
    assert rig.supervisor.view().stop_reason == StopReason.EMPTY
    assert rig.supervisor.alarms[0].code == AlarmCode.SYRINGE_EMPTY
    rig.check_promises()


def test_changeover_to_second_pump_keeps_delivered_dose_within_10_percent() -> None:
    rate_ml_h = rate_ml_h_from_dose(DOSE_MCG_MIN, NOREPINEPHRINE.conc_mcg_ml)
    rig = SimRig(fill_ml=rate_ml_h * 30 / 60, spare=True)
    started(rig, settle_s=600.0)
    assert rig.spare is not None
    rig.run(20 * 60.0, until=lambda: rig.spare is not None and rig.spare.status().rate_ml_h > 0)
    changed_s = rig.t_s
    assert rig.supervisor.view().running
    # Delivered volume into the patient per 5-minute window around the changeover.
    window_s = 300.0
    clock: VirtualClock = rig.clock
    before = rig.outflows.outflow_volume_ml
    rig.run(window_s)
    after = rig.outflows.outflow_volume_ml
    expected_ml = rate_ml_h * window_s / 3600.0
    assert abs((after - before) - expected_ml) <= 0.10 * expected_ml
    assert rig.pump.status().state is not PumpState.INFUSING
    assert clock.now_s() - changed_s >= window_s
    assert active(rig.supervisor, AlarmCode.CHANGEOVER)
    assert not any(isinstance(e, DoseApplied) and e.dose_mcg_min == 0
                   for e in rig.list_sink.events)
    rig.check_promises()


# -- process kill and restart -------------------------------------------------------------

@pytest.mark.parametrize(("host_loss", "down_s"), [
    (HostLossBehaviour.KEEPS_RATE, 30.0),
    (HostLossBehaviour.STOPS_AND_ALARMS, 0.5),
])
def test_restart_resumes_from_the_journal_without_gap_or_bolus(
    tmp_path: Path, host_loss: HostLossBehaviour, down_s: float,
) -> None:
    clock = VirtualClock()
    journal = Journal(tmp_path / "journal.sqlite", clock)
    rig = started(SimRig(clock=clock, sink=journal, host_loss=host_loss), settle_s=600.0)
    pump, patient = rig.pump, rig.patient
    rate_before = pump.status().rate_ml_h
    delivered_before = pump.status().delivered_ml
    # The process dies: nobody ticks, nobody closes the journal.
    clock.advance(down_s)
    reader = Journal(tmp_path / "journal.sqlite", clock)
    state = ResumeState.from_events(reader.iter_events(reader.current_run_seq()))
    revived = SimRig(clock=clock, sink=reader, pump=pump, patient=patient)
    revived.supervisor.resume(state, clock.now_s())
    status = pump.status()
    assert status.state is PumpState.INFUSING and status.rate_ml_h == rate_before
    assert revived.supervisor.view().dose_mcg_min == pytest.approx(DOSE_MCG_MIN, rel=0.01)
    assert any(a.code == AlarmCode.RESTARTED and a.priority is Priority.LOW
               for a in revived.supervisor.alarms)
    revived.run(60.0)
    # No bolus: what the pump moved over the whole gap is the rate times the time.
    moved_ml = pump.status().delivered_ml - delivered_before
    expected_ml = rate_before * (down_s + 60.0) / 3600.0
    assert moved_ml == pytest.approx(expected_ml, abs=0.002)
    journal.close()
    reader.close()



def test_restart_after_the_pump_watchdog_stopped_it_restarts_the_dose_with_high_alarm(
    tmp_path: Path,
) -> None:
    clock = VirtualClock()
    journal = Journal(tmp_path / "journal.sqlite", clock)
    rig = started(SimRig(clock=clock, sink=journal,
                         host_loss=HostLossBehaviour.STOPS_AND_ALARMS), settle_s=600.0)
    clock.advance(30.0)  # longer than the pump's 10 s watchdog
    assert rig.pump.status().alarm is PumpAlarm.HOST_TIMEOUT
    reader = Journal(tmp_path / "journal.sqlite", clock)
    revived = SimRig(clock=clock, sink=reader, pump=rig.pump, patient=rig.patient)
    revived.supervisor.resume(
        ResumeState.from_events(reader.iter_events(reader.current_run_seq())), clock.now_s())
    assert revived.pump.status().state is PumpState.INFUSING
    assert any(a.code == AlarmCode.HOST_TIMEOUT and a.priority is Priority.HIGH
               for a in revived.supervisor.alarms)
    journal.close()
    reader.close()
