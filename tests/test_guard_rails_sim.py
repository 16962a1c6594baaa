"""The volume check in a whole simulated run: a refractory patient under the closed loop, with
the bench nurse (issue 19's evidence, in virtual time)."""

from __future__ import annotations

from drivers.sim.patient import draw_patient
from vasopilot.core.config import NOREPINEPHRINE
from vasopilot.core.events import AlarmCode, AlarmRaised, DoseApplied, OperatorAction
from vasopilot.settings import load_rig
from vasopilot.simulate import SimOptions, run_sim

REFRACTORY_SEED = 23  # draw_patient(23): refractory, needs about 43 mcg/min, over the soft max


def test_a_refractory_patient_is_asked_about_volume_before_the_soft_maximum_is_passed() -> None:
    assert draw_patient(REFRACTORY_SEED).need_mcg_min() > NOREPINEPHRINE.soft_max
    result = run_sim(load_rig(None), SimOptions(hours=1.0, seed=REFRACTORY_SEED,
                                                mode="closed-loop", dt_s=1.0,
                                                nurse_confirms_soft_max=True,
                                                spare_syringe=True))
    events = result.events
    passed = next(e for e in events if isinstance(e, DoseApplied)
                  and e.dose_mcg_min > NOREPINEPHRINE.soft_max >= e.previous_dose_mcg_min)
    asked = [e for e in events if isinstance(e, AlarmRaised) and e.code is AlarmCode.VOLUME_CHECK]
    answers = [e for e in events if isinstance(e, OperatorAction)
               and e.volume_answer is not None]
    assert asked and asked[0].t_s < passed.t_s
    assert answers and asked[0].t_s < answers[0].t_s <= passed.t_s
    assert answers[0].by == "bench nurse"
    # every increase above the soft maximum came with no check waiting
    open_check = False
    for event in events:
        if isinstance(event, AlarmRaised) and event.code is AlarmCode.VOLUME_CHECK:
            open_check = True
        elif isinstance(event, OperatorAction) and event.volume_answer is not None:
            open_check = False
        elif isinstance(event, DoseApplied) and event.dose_mcg_min > NOREPINEPHRINE.soft_max \
                and event.dose_mcg_min > event.previous_dose_mcg_min:
            assert not open_check, event
