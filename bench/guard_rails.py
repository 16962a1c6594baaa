"""How often issue 19's guard rails fire over a seeded cohort, in virtual time.

Each patient of ``draw_patients(N, SEED, "resuscitate")`` runs for ``--hours`` under the
closed loop (``--controller protocol``: the nurse protocol) with the bench nurse (who confirms
doses above the soft maximum while MAP is under target and answers the volume check after 5
minutes, giving fluid while MAP is low), a spare syringe, random line artefacts (4 per hour)
and the cohort benchmark's 160 mcg/mL solution: the same set-up as ``vasopilot bench
closed-loop``. For every new alarm the table gives its trigger and the patients it fired on:
all, after the first hour, and per stratum of vasopilot/cohort.py (the drawn stable,
hypertensive and refractory strata; reachable and out of reach from each patient's need at its
starting MAP0 and set-point against the hard maximum). Two more arms: N patients drawn from the
stable stratum alone (docs/virtual-patient.md: MAP0 55-62 at the start, wander sigma 2-3.5
mmHg, tau 10-40 min, potency 0.5-2x; the surgical-like patients, on whom a guard rail should
rarely fire), from the seed + 1000; and the first :data:`PERIPHERAL_PATIENTS` of the cohort on a
peripheral line (16 mcg/mL entry, 20 mcg/min at most) for the line's prompts. Last, whether
each patient whose dose passed the soft maximum had been asked about volume first.

    python bench/guard_rails.py --patients 100 --seed 11          # a table
    python bench/guard_rails.py --patients 100 --seed 11 --json   # one JSON object per line

References for the reader: the cohort's strata follow docs/virtual-patient.md (about 20 %
stable, 14 % refractory); a stable patient should see a guard rail rarely (issue 19: "it must
not fire on most stable patients"), a refractory one the volume check and the high-dose
advisory by design.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from typing import TYPE_CHECKING

from pydantic import BaseModel

from drivers.sim.patient import draw_stratum
from vasopilot.cohort import bench_config
from vasopilot.core.config import NOREPINEPHRINE, NOREPINEPHRINE_PERIPHERAL, PatientSettings
from vasopilot.core.events import AlarmCode, AlarmRaised, DoseApplied, Event
from vasopilot.rig.sim import draw_patients
from vasopilot.settings import RigConfig
from vasopilot.simulate import SimOptions, run_sim

if TYPE_CHECKING:
    from drivers.sim.patient import PatientParams

TRIGGERS: dict[AlarmCode, str] = {
    AlarmCode.VOLUME_CHECK: "within 30 min, dose x2 (from >= 8 mcg/min) or +10 mcg/min from a "
                            "dose that held the floor; at the soft max with MAP under the floor; "
                            "passing the soft max unasked",
    AlarmCode.TACHYCARDIA: "trusted HR (10 s median) > 130/min for 60 s",
    AlarmCode.BRADYCARDIA: "trusted HR < 40/min for 60 s",
    AlarmCode.RHYTHM_IRREGULAR: "median beat-interval change > 0.1 of the interval over a "
                                "minute, for 30 s",
    AlarmCode.SBP_LOW: "after induction, trusted SBP (10 s median) < 90 mmHg for 60 s with MAP "
                       "under the floor (no usual SBP given)",
    AlarmCode.PROLONGED_HIGH_DOSE: "> 2 h above the soft max within 6 h",
    AlarmCode.CANNULA_CHECK: "every hour of infusion on a peripheral line",
    AlarmCode.PERIPHERAL_LINE_TIME: "24 h of infusion on a peripheral line",
}
STRATA = ("stable", "reachable", "out-of-reach", "refractory", "hypertensive")
HOUR_S = 3600.0
PERIPHERAL_PATIENTS = 10
STABLE_SEED_OFFSET = 1000


class PatientFiring(BaseModel):
    index: int
    stratum: str
    out_of_reach: bool
    arm: str
    raised_s: dict[str, list[float]]
    passed_soft_max_s: float | None
    asked_before_passing: bool | None


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


def in_stratum(result: PatientFiring, stratum: str) -> bool:
    if stratum == "reachable":
        return not result.out_of_reach
    if stratum == "out-of-reach":
        return result.out_of_reach
    return result.stratum == stratum


def run_patient(job: tuple[str, str, int, int, float, PatientParams]) -> PatientFiring:
    arm, mode, seed, index, hours, params = job
    options = SimOptions(scenario="resuscitate", hours=hours, seed=seed + index,
                         mode=mode, dt_s=2.0, artefacts_per_h=4.0,
                         nurse_confirms_soft_max=True, spare_syringe=True)
    config = _config(arm)
    result = run_sim(config, options, params=params)
    raised, passed, asked = _firing(result.events, config.drug.soft_max)
    out_of_reach = params.steady_need_mcg_min() > NOREPINEPHRINE.hard_max
    return PatientFiring(index=index, stratum=params.stratum, out_of_reach=out_of_reach,
                         arm=arm, raised_s=raised,
                         passed_soft_max_s=passed, asked_before_passing=asked)


def run(patients: int, seed: int, hours: float, workers: int,
        mode: str = "closed-loop") -> list[PatientFiring]:
    cohort = draw_patients(patients, seed, "resuscitate", calibration_error=False)
    calm = [dataclasses.replace(p, calibration_gain=1.0)
            for p in draw_stratum(patients, seed + STABLE_SEED_OFFSET, "stable")]
    jobs = [("central", mode, seed, i, hours, p) for i, p in enumerate(cohort)]
    jobs += [("stable", mode, seed + STABLE_SEED_OFFSET, i, hours, p)
             for i, p in enumerate(calm)]
    jobs += [("peripheral", mode, seed, i, hours, p)
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
        per_stratum = {}
        for stratum in STRATA if arm == "central" else ():
            members = [r for r in group if in_stratum(r, stratum)]
            per_stratum[stratum] = [sum(1 for r in members if r.raised_s.get(code.value)),
                                    len(members)]
        out.append({
            "code": code.value, "arm": arm, "trigger": trigger, "patients": len(group),
            "fired": len(fired), "stable": len(calm) if arm == "central" else 0,
            "stable_fired": sum(1 for r in calm if r.raised_s.get(code.value))
            if arm == "central" else 0,
            "fired_after_1h": len(late),
            "raises_per_patient_h": round(raises / (len(group) * hours), 3) if group else 0.0,
            "strata": per_stratum,
        })
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=100)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--hours", type=float, default=4.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--controller", choices=("closed-loop", "protocol"),
                        default="closed-loop")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = run(args.patients, args.seed, args.hours, args.workers, args.controller)
    table = rows(results, args.hours)
    central = [r for r in results if r.arm == "central"]
    passed = [r for r in central if r.passed_soft_max_s is not None]
    asked = sum(1 for r in passed if r.asked_before_passing)
    strata = Counter(r.stratum for r in central)
    if args.json:
        for row in table:
            print(json.dumps(row))
        print(json.dumps({"passed_soft_max": len(passed), "asked_before_passing": asked,
                          "strata": dict(strata), "seed": args.seed, "hours": args.hours,
                          "controller": args.controller}))
        return 0
    print(f"guard rails over {args.patients} patients x {args.hours:g} h, resuscitate, seed "
          f"{args.seed}, {args.controller} + bench nurse, 4 artefacts/h; drawn strata "
          f"{dict(strata)}; 'stable arm': {args.patients} patients of the stable stratum, "
          f"seed {args.seed + STABLE_SEED_OFFSET}")
    heads = "".join(f" {s[:8]:>8}" for s in STRATA)
    print(f"{'alarm':<22} {'fired':>7} {'>1 h':>6} {'/pt-h':>6}{heads} {'st.arm':>7}  trigger")
    for row in table:
        fired = f"{row['fired']}/{row['patients']}"
        calm = f"{row['stable_fired']}/{row['stable']}"
        cells = row["strata"]
        assert isinstance(cells, dict)
        per = "".join(f" {cells[s][0]}/{cells[s][1]:>3}".rjust(9) if s in cells else " " * 9
                      for s in STRATA)
        print(f"{row['code']:<22} {fired:>7} {row['fired_after_1h']:>6} "
              f"{row['raises_per_patient_h']:>6}{per} {calm:>7}  {row['trigger']}")
    print(f"dose passed the soft maximum in {len(passed)} patients; the volume check came "
          f"first in {asked} of them")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
