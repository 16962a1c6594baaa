"""`vasopilot run`'s runtime on a virtual clock: it doses, journals, and resumes after a restart."""

import asyncio
import functools
from pathlib import Path

from vasopilot.control.protocol import NurseProtocol
from vasopilot.core.clock import VirtualClock
from vasopilot.core.events import AlarmRaised, DoseApplied, RunStarted
from vasopilot.journal import Journal
from vasopilot.serve import ServeOptions, open_rig, serve
from vasopilot.service import SystemdNotifier
from vasopilot.settings import load_rig

SIM = Path(__file__).resolve().parents[1] / "config" / "sim.toml"


def run_once(journal_path: Path, clock: VirtualClock, options: ServeOptions) -> list[object]:
    config = load_rig(SIM)
    with Journal(journal_path, clock) as journal:
        rig = open_rig(config, journal, clock, NurseProtocol(), options)
        try:
            view = asyncio.run(serve(rig, clock, journal, options, SystemdNotifier({})))
        finally:
            rig.close()
        assert view.t_s >= clock.now_s() - 1.0
        return list(journal.iter_events())


def test_runs_the_rig_and_journals_the_start(tmp_path: Path) -> None:
    clock = VirtualClock()
    events = run_once(tmp_path / "j.sqlite", clock,
                      ServeOptions(mode="protocol", start_dose_mcg_min=10.0, minutes=20.0))
    assert clock.now_s() >= 20 * 60
    assert isinstance(events[0], RunStarted) and not events[0].restarted
    doses = [e for e in events if isinstance(e, DoseApplied)]
    assert doses[0].dose_mcg_min == 10.0
    assert any(e.kind == "beat.summary" for e in events)


def test_restart_resumes_the_journaled_dose_and_says_so(tmp_path: Path) -> None:
    clock = VirtualClock()
    path = tmp_path / "j.sqlite"
    first = run_once(path, clock, ServeOptions(mode="protocol", start_dose_mcg_min=10.0,
                                               minutes=10.0))
    last_dose = [e for e in first if isinstance(e, DoseApplied)][-1].dose_mcg_min
    second = run_once(path, clock, ServeOptions(mode="protocol", minutes=1.0))
    new = second[len(first):]
    assert isinstance(new[0], RunStarted) and new[0].restarted
    resumed = [e for e in new if isinstance(e, DoseApplied)]
    assert resumed and resumed[0].dose_mcg_min == last_dose
    assert resumed[0].t_s - new[0].t_s < 1.0
    assert any(isinstance(e, AlarmRaised) and e.code == "RESTARTED" for e in new)


def test_the_operators_map_target_survives_a_restart(tmp_path: Path) -> None:
    clock = VirtualClock()
    path = tmp_path / "j.sqlite"
    config = load_rig(SIM)
    assert config.profile.patient.setpoint_mmhg == 70.0  # floor 65 (S6)
    targets = []
    for options, operator_target in ((ServeOptions(mode="manual", start_dose_mcg_min=10.0,
                                                   minutes=2.0), 72.0),
                                     (ServeOptions(mode="manual", minutes=2.0), None),
                                     (ServeOptions(mode="manual", minutes=2.0), None)):
        with Journal(path, clock) as journal:
            rig = open_rig(config, journal, clock, NurseProtocol(), options)
            if operator_target is not None:
                rig.loop.submit(functools.partial(rig.supervisor.set_target, operator_target))
            try:
                view = asyncio.run(serve(rig, clock, journal, options, SystemdNotifier({})))
            finally:
                rig.close()
            recovered = journal.recovery()
        assert recovered is not None
        targets.append((view.target_map_mmhg, recovered.target_map_mmhg,
                        recovered.run.target_map_mmhg if recovered.run else None))
    # run 1 sets the set-point 72 (floor 67); each restart resumes at 72 and its start says so
    assert targets == [(72.0, 72.0, 70.0), (72.0, 72.0, 72.0), (72.0, 72.0, 72.0)]
