"""How often issue 19's guard rails fire over a seeded cohort, in virtual time.

Each patient of ``draw_patients(N, SEED, "resuscitate")`` runs for ``--hours`` under the closed
loop with the bench nurse (who confirms doses above the soft maximum while MAP is under target
and answers the volume check after 5 minutes, giving fluid while MAP is low), a spare syringe,
random line artefacts (4 per hour) and the cohort benchmark's 160 mcg/mL solution: the same
set-up as ``vasopilot bench closed-loop``. One more arm puts the first
:data:`PERIPHERAL_PATIENTS` on a peripheral line (16 mcg/mL entry, 20 mcg/min at most) for the
line's prompts. For every new alarm the
table gives its trigger, the patients it fired on (all; after the first hour), how often it
was raised per patient-hour, and the same patients made *stable* as docs/virtual-patient.md's
stable stratum describes them (MAP0 55-62 mmHg at the start, wander sigma 2-3.5 mmHg with
tau 10-40 min, potency 0.5-2x, drawn from the seed + 1000; the surgical-like patients, on whom
a guard rail should rarely fire); then whether each patient whose dose passed the soft maximum
had been asked about volume first.

    python bench/guard_rails.py --patients 100 --seed 11          # a table
    python bench/guard_rails.py --patients 100 --seed 11 --json   # one JSON object per line

References for the reader: the cohort's strata follow docs/virtual-patient.md (about 20 % stable,
14 % refractory); a stable patient should see a guard rail rarely, a refractory one the volume
check and the high-dose advisory by design.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from typing import TYPE_CHECKING

from pydantic import BaseModel

from vasopilot.cohort import bench_config
from vasopilot.core.config import NOREPINEPHRINE_PERIPHERAL, PatientSettings
from vasopilot.core.events import AlarmCode, AlarmRaised, DoseApplied, Event
from vasopilot.rig.sim import draw_patients
from vasopilot.settings import RigConfig
from vasopilot.simulate import SimOptions, run_sim

if TYPE_CHECKING:
    from drivers.sim.patient import PatientParams

TRIGGERS: dict[AlarmCode, str] = {
    AlarmCode.VOLUME_CHECK: "dose x2 or +10 mcg/min within 30 min, or at the soft max with "
                            "MAP under the floor, or passing the soft max unasked",
    AlarmCode.TACHYCARDIA: "trusted HR (10 s median) > 130/min for 60 s",
    AlarmCode.BRADYCARDIA: "trusted HR < 40/min for 60 s",
    AlarmCode.RHYTHM_IRREGULAR: "median beat-interval change > 0.1 of the interval over a "
                                "minute, for 30 s",
    AlarmCode.SBP_LOW: "trusted SBP (10 s median) < 90 mmHg for 60 s (no usual SBP given)",
    AlarmCode.PROLONGED_HIGH_DOSE: "> 2 h above the soft max within 6 h",
    AlarmCode.CANNULA_CHECK: "every hour of infusion on a peripheral line",
    AlarmCode.PERIPHERAL_LINE_TIME: "24 h of infusion on a peripheral line",
}
HOUR_S = 3600.0
PERIPHERAL_PATIENTS = 10
STABLE_SEED_OFFSET = 1000


class PatientFiring(BaseModel):
    index: int
    stratum: str
    arm: str
    raised_s: dict[str, list[float]]
    passed_soft_max_s: float | None
    asked_before_passing: bool | None


def stable(params: PatientParams, rng: random.Random) -> PatientParams:
    """``params`` as a patient of docs/virtual-patient.md's stable stratum."""
    return dataclasses.replace(params, map0_mmhg=rng.uniform(55.0, 62.0),
                               ou_sigma_mmhg=rng.uniform(2.0, 3.5),
                               ou_tau_min=rng.uniform(10.0, 40.0),
                               ec50_factor=rng.uniform(0.5, 2.0))


def _config(arm: str) -> RigConfig:
    config = bench_config(160.0)
    if arm != "peripheral":
        return config
    patient = PatientSettings(line="peripheral")
    return dataclasses.replace(config, drug=NOREPINEPHRINE_PERIPHERAL,
                               profile=config.profile.model_copy(update={"patient": patient}))


def _firing(events: list[Event], soft_max: float) -> tuple[dict[str, list[float]], float | None,
                                                           bool | None]:
    raised: dict[str, list[float]] = {}
    for event in events:
        if isinstance(event, AlarmRaised) and event.code in TRIGGERS:
            raised.setdefault(event.code.value, []).append(event.t_s)
    passed = next((e.t_s for e in events if isinstance(e, DoseApplied)
                   and e.dose_mcg_min > soft_max >= e.previous_dose_mcg_min), None)
    asked = None if passed is None else any(
        t <= passed for t in raised.get(AlarmCode.VOLUME_CHECK.value, []))
    return raised, passed, asked


def run_patient(job: tuple[str, int, int, float, PatientParams]) -> PatientFiring:
    arm, seed, index, hours, params = job
    options = SimOptions(scenario="resuscitate", hours=hours, seed=seed + index,
                         mode="closed-loop", dt_s=2.0, artefacts_per_h=4.0,
                         nurse_confirms_soft_max=True, spare_syringe=True)
    config = _config(arm)
    result = run_sim(config, options, params=params)
    raised, passed, asked = _firing(result.events, config.drug.soft_max)
    return PatientFiring(index=index, stratum=params.stratum, arm=arm, raised_s=raised,
                         passed_soft_max_s=passed, asked_before_passing=asked)


def run(patients: int, seed: int, hours: float, workers: int) -> list[PatientFiring]:
    cohort = draw_patients(patients, seed, "resuscitate", calibration_error=False)
    rng = random.Random(seed + STABLE_SEED_OFFSET)
    jobs = [("central", seed, i, hours, p) for i, p in enumerate(cohort)]
    jobs += [("stable", seed, i, hours, stable(p, rng)) for i, p in enumerate(cohort)]
    jobs += [("peripheral", seed, i, hours, p)
             for i, p in enumerate(cohort[:PERIPHERAL_PATIENTS])]
    if workers <= 1:
        return [run_patient(job) for job in jobs]
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(run_patient, jobs, chunksize=4))


def rows(results: list[PatientFiring], hours: float) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for code, trigger in TRIGGERS.items():
        arm = "peripheral" if code in (AlarmCode.CANNULA_CHECK,
                                       AlarmCode.PERIPHERAL_LINE_TIME) else "central"
        group = [r for r in results if r.arm == arm]
        calm = [r for r in results if r.arm == "stable"]
        fired = [r for r in group if r.raised_s.get(code.value)]
        late = [r for r in group if any(t >= HOUR_S for t in r.raised_s.get(code.value, []))]
        raises = sum(len(r.raised_s.get(code.value, [])) for r in group)
        out.append({
            "code": code.value, "arm": arm, "trigger": trigger, "patients": len(group),
            "fired": len(fired), "stable": len(calm) if arm == "central" else 0,
            "stable_fired": sum(1 for r in calm if r.raised_s.get(code.value))
            if arm == "central" else 0,
            "fired_after_1h": len(late),
            "raises_per_patient_h": round(raises / (len(group) * hours), 3) if group else 0.0,
        })
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=100)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--hours", type=float, default=4.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = run(args.patients, args.seed, args.hours, args.workers)
    table = rows(results, args.hours)
    central = [r for r in results if r.arm == "central"]
    passed = [r for r in central if r.passed_soft_max_s is not None]
    asked = sum(1 for r in passed if r.asked_before_passing)
    strata = Counter(r.stratum for r in central)
    if args.json:
        for row in table:
            print(json.dumps(row))
        print(json.dumps({"passed_soft_max": len(passed), "asked_before_passing": asked,
                          "strata": dict(strata), "seed": args.seed, "hours": args.hours}))
        return 0
    print(f"guard rails over {args.patients} patients x {args.hours:g} h, resuscitate, seed "
          f"{args.seed}, closed loop + bench nurse, 4 artefacts/h; strata {dict(strata)}; "
          "'stable': the same patients as patient.md's stable stratum")
    print(f"{'alarm':<22} {'fired':>7} {'stable':>7} {'>1 h':>6} {'/pt-h':>6}  trigger")
    for row in table:
        fired = f"{row['fired']}/{row['patients']}"
        calm = f"{row['stable_fired']}/{row['stable']}"
        print(f"{row['code']:<22} {fired:>7} {calm:>7} {row['fired_after_1h']:>6} "
              f"{row['raises_per_patient_h']:>6}  {row['trigger']}")
    print(f"dose passed the soft maximum in {len(passed)} patients; the volume check came "
          f"first in {asked} of them")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
