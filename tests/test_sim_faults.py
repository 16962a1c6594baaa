"""`vasopilot sim --fault`: each injected fault meets the supervisor's reaction on the whole rig."""

import pytest

from vasopilot.core.events import AlarmRaised, DoseApplied, DoseRequested
from vasopilot.rig.faults import FAULT_KINDS, parse_fault
from vasopilot.settings import load_rig
from vasopilot.simulate import PumpKind, SimOptions, SimResult, run_sim


def simulate(*faults: str, hours: float = 1.0) -> SimResult:
    return run_sim(load_rig(None), SimOptions(hours=hours, seed=2,
                                              faults=tuple(parse_fault(f) for f in faults)))


def alarm_codes(result: SimResult) -> list[str]:
    return [e.code for e in result.events if isinstance(e, AlarmRaised)]


def test_occlusion_stops_the_infusion_with_a_high_alarm() -> None:
    result = simulate("occlusion@1800")
    assert "OCCLUSION" in alarm_codes(result)
    last = [e for e in result.events if isinstance(e, DoseApplied)][-1]
    assert last.dose_mcg_min == 0.0 and 1800 <= last.t_s <= 1800 + 180
    assert not [e for e in result.events if isinstance(e, DoseApplied) and e.t_s > last.t_s]


def test_extravasation_sensor_stops_the_infusion() -> None:
    result = simulate("extravasation-sensor@1200")
    assert "EXTRAVASATION" in alarm_codes(result)
    assert [e for e in result.events if isinstance(e, DoseApplied)][-1].dose_mcg_min == 0.0


def test_sensor_loss_holds_the_dose_and_escalates_the_alarm() -> None:
    result = simulate("sensor_loss@900+120", hours=0.5)
    stale = [e for e in result.events if isinstance(e, AlarmRaised) and e.code == "MAP_STALE"]
    assert [a.priority for a in stale] == ["medium", "high"]
    assert "no beats" in stale[0].message
    # after the last good beat has aged past 10 s, nothing titrates until beats return
    during = [e for e in result.events if isinstance(e, DoseApplied) and 910 < e.t_s < 1020]
    assert during == []


def test_a_flush_is_not_titrated_on() -> None:
    result = simulate("flush@600+3", hours=0.5)
    during = [e for e in result.events
              if isinstance(e, DoseRequested) and 600 <= e.t_s <= 605 and e.requester != "operator"]
    assert during == []


@pytest.mark.parametrize("spec", ["nope@3", "flush@x", "occlusion@-5", "flush@10+0"])
def test_a_bad_fault_is_refused_with_the_way_to_write_it(spec: str) -> None:
    with pytest.raises(ValueError, match=r"KIND@SECONDS\[\+DURATION\]"):
        parse_fault(spec)


def test_every_artefact_kind_can_be_injected() -> None:
    assert {"occlusion", "flush", "sensor_loss", "calibration"} <= set(FAULT_KINDS)


def test_a_patient_side_step_and_ramp_do_not_stop_and_sim_json_lists_the_stops() -> None:
    quiet = simulate("line-step@600+120=20", "line-ramp@900+300=-15", hours=0.5)
    assert quiet.summary.stops == []
    occluded = simulate("line-ramp@600+300=20", "occlusion@1200", hours=0.5)
    assert [s.reason for s in occluded.summary.stops] == ["occlusion"]
    assert 1200 <= occluded.summary.stops[0].t_s <= 1260


def test_a_line_disturbance_needs_its_size_in_mmhg() -> None:
    fault = parse_fault("line-step@600+120=-15")
    assert (fault.kind, fault.at_s, fault.duration_s, fault.mmhg) == ("line-step", 600.0,
                                                                       120.0, -15.0)
    with pytest.raises(ValueError, match="MMHG"):
        parse_fault("line-ramp@600+120")
    with pytest.raises(ValueError, match="MMHG"):
        parse_fault("occlusion@600=5")


@pytest.mark.parametrize("pump", ["new-era", "harvard", "bridge"])
def test_line_disturbances_reach_the_emulated_pumps_twin(pump: PumpKind) -> None:
    # A 20 mmHg ramp passes; a pressure over the 300 mmHg threshold, whatever its cause, stops.
    result = run_sim(load_rig(None), SimOptions(
        hours=0.25, seed=2, pump=pump,
        faults=(parse_fault("line-ramp@120+120=20"), parse_fault("line-step@600+5=400"))))
    assert [s.reason for s in result.summary.stops] == ["occlusion"]
    assert 600 <= result.summary.stops[0].t_s <= 602
