"""Gravimetric trumpet and start-up figures of every simulated pump, in virtual time.

Each run is ``vasopilot accuracy``'s: the pump under the supervisor at a set rate for 2 h, an
emulated MT-SICS balance (read by the production driver over a pty) sampled with ``SI`` every
30 s, the IEC 60601-2-24 style calculator on the samples. Pumps: the stepper physics twin
(``SimSyringePump``) with 0.8 mm and 2 mm leads at 16 microsteps, and the NE-1000 and Pump 11
Elite emulators behind their production drivers (their physics: the 0.8 mm twin). For each
pump, syringe (50 mL, 10 mL) and rate (1, 5 mL/h) two runs: a 0.01 mg balance without slack
take-up, and a 0.1 mg balance with take-up; the start-up time is reported from both.

Balance noise is one standard deviation of 0.02 mg (0.01 mg balance) or 0.1 mg (0.1 mg
balance), evaporation 0.02 mg/min (an oil layer), seed 7 (``config/sim.toml`` uses seed 1; the
figures were not tuned on either).

    python bench/accuracy.py                  # the table
    python bench/accuracy.py --json           # one JSON object per run
    python bench/accuracy.py --pump stepper-0.8 --plot docs/trumpet.png
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from vasopilot.accuracy import AccuracyResult, MassSample, analyse
from vasopilot.core.clock import MonotonicClock, VirtualClock
from vasopilot.gravimetric import GravimetricError, RunOptions, run_test
from vasopilot.rig.bench import build_bench
from vasopilot.runtime import MemorySink
from vasopilot.settings import RigConfig, load_rig, resolve

SIM = Path(__file__).resolve().parents[1] / "config" / "sim.toml"
PUMPS = ("stepper-0.8", "stepper-2", "new-era", "harvard")
SYRINGES = ("bd-plastipak-50", "bd-plastipak-10")
RATES_ML_H = (1.0, 5.0)
NOISE_MG = {0.01: 0.02, 0.1: 0.1}
SEED = 7
# The targets: 2-min window at 5 and 1 mL/h (50 mL, 0.01 mg), start-up at 1 mL/h.
TARGET_EP2_PCT = {5.0: 2.0, 1.0: 5.0}
TARGET_STARTUP_S = 120.0


@dataclass(frozen=True)
class Run:
    pump: str
    syringe: str
    rate_ml_h: float
    readability_mg: float
    take_up: bool
    mean_error_pct: float | None = None
    ep2_max_pct: float | None = None
    ep2_min_pct: float | None = None
    ep31_max_pct: float | None = None
    ep31_min_pct: float | None = None
    startup_90_s: float | None = None
    late_samples: int | None = None
    failed: str | None = None


def config_for(base: RigConfig, pump: str, syringe: str, readability_mg: float) -> RigConfig:
    profile = base.profile
    lead_mm = 2.0 if pump == "stepper-2" else 0.8
    mechanics = profile.pump.mechanics.model_copy(update={"lead_mm": lead_mm, "microsteps": 16})
    assert profile.balance is not None
    emulator = profile.balance.emulator.model_copy(update={
        "readability_mg": readability_mg, "noise_mg": NOISE_MG[readability_mg], "seed": SEED})
    return resolve(profile.model_copy(update={
        "pump": profile.pump.model_copy(update={"syringe": syringe, "mechanics": mechanics}),
        "balance": profile.balance.model_copy(update={"emulator": emulator}),
    }), base.source)


def measure(base: RigConfig, pump: str, syringe: str, rate_ml_h: float, *,
            readability_mg: float, take_up: bool) -> AccuracyResult:
    config = config_for(base, pump, syringe, readability_mg)
    clock = VirtualClock()
    serial = pump if pump in ("new-era", "harvard") else None
    bench = build_bench(config, clock=clock, sink=MemorySink(), emulated_pump=serial)
    try:
        weighings = run_test(bench, RunOptions(rate_ml_h=rate_ml_h, take_up=take_up))
    finally:
        bench.close()
    assert config.profile.balance is not None
    samples = [MassSample(w.t_s - weighings[0].t_s, w.mass_g) for w in weighings]
    return analyse(samples, rate_ml_h, density_g_ml=config.profile.balance.density_g_ml)


def run_all(pumps: tuple[str, ...]) -> list[tuple[Run, AccuracyResult | None]]:
    base = load_rig(SIM)
    runs: list[tuple[Run, AccuracyResult | None]] = []
    for pump in pumps:
        for syringe in SYRINGES:
            for rate in RATES_ML_H:
                for readability, take_up in ((0.01, False), (0.1, True)):
                    try:
                        result = measure(base, pump, syringe, rate,
                                         readability_mg=readability, take_up=take_up)
                    except GravimetricError as exc:
                        # a 10 mL syringe holds 2 h at 5 mL/h only without the take-up band
                        runs.append((Run(pump, syringe, rate, readability, take_up,
                                         failed=str(exc)), None))
                        continue
                    ep2, ep31 = result.trumpet[0], result.trumpet[-1]
                    runs.append((Run(pump, syringe, rate, readability, take_up,
                                     round(result.mean_error_pct, 3),
                                     round(ep2.ep_max_pct, 3), round(ep2.ep_min_pct, 3),
                                     round(ep31.ep_max_pct, 3), round(ep31.ep_min_pct, 3),
                                     result.startup_90_s, result.late_samples), result))
    return runs


def _verdict(run: Run) -> str:
    if run.failed is not None:
        return run.failed
    if run.syringe != "bd-plastipak-50":
        return ""
    parts = []
    if run.readability_mg == 0.01:
        limit = TARGET_EP2_PCT[run.rate_ml_h]
        assert run.ep2_min_pct is not None and run.ep2_max_pct is not None
        ok = -limit <= run.ep2_min_pct and run.ep2_max_pct <= limit
        parts.append(f"Ep2 ±{limit:g} %: {'met' if ok else 'NOT met'}")
    if run.take_up and run.rate_ml_h == 1.0:
        ok = run.startup_90_s is not None and run.startup_90_s <= TARGET_STARTUP_S
        parts.append(f"start-up ≤ 2 min: {'met' if ok else 'NOT met'}")
    return "; ".join(parts)


def print_table(runs: list[Run], wall_s: float) -> None:
    head = (f"{'pump':<12}{'syringe':<17}{'mL/h':>5}{'mg':>6}{'take-up':>8}{'A %':>8}"
            f"{'Ep2 max':>9}{'Ep2 min':>9}{'Ep31 max':>9}{'Ep31 min':>9}{'90 % s':>8}  target")
    print(head)
    print("-" * len(head))
    for r in runs:
        startup = "never" if r.startup_90_s is None else f"{r.startup_90_s:.0f}"
        figures = "".join(f"{'-' if v is None else f'{v:+.2f}':>{w}}" for v, w in (
            (r.mean_error_pct, 8), (r.ep2_max_pct, 9), (r.ep2_min_pct, 9),
            (r.ep31_max_pct, 9), (r.ep31_min_pct, 9)))
        print(f"{r.pump:<12}{r.syringe:<17}{r.rate_ml_h:>5g}{r.readability_mg:>6g}"
              f"{'yes' if r.take_up else 'no':>8}{figures}"
              f"{'-' if r.failed else startup:>8}  {_verdict(r)}")
    print(f"\n{len(runs)} runs of 2 h in virtual time, {wall_s:.0f} s wall; balance seed {SEED}. "
          "Reference: syringe pumps state ±2 % of volume at 1 mL/h (Perfusor compact plus, "
          "50 mL); no public source gives 2-min Ep for a syringe pump.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pump", action="append", choices=PUMPS, default=None,
                        help="only this pump (repeatable; default all)")
    parser.add_argument("--json", action="store_true", help="one JSON object per run")
    parser.add_argument("--plot", type=Path, default=None,
                        help="the first pump's curves at 1 mL/h, 50 mL, 0.01 mg, to this PNG")
    args = parser.parse_args(argv)
    wall = MonotonicClock()
    started_s = wall.now_s()
    pumps = tuple(args.pump) if args.pump else PUMPS
    runs = run_all(pumps)
    if args.plot is not None:
        from vasopilot.cli.accuracy import plot_accuracy

        first = next(result for run, result in runs if run.rate_ml_h == 1.0
                     and run.syringe == "bd-plastipak-50" and run.readability_mg == 0.01
                     and result is not None)
        plot_accuracy(first, args.plot, title=f"{pumps[0]} twin, 1 mL/h, BD Plastipak 50 mL, "
                      "0.01 mg balance (vasopilot accuracy, virtual time)")
    if args.json:
        for run, _ in runs:
            print(json.dumps(dataclasses.asdict(run)))
    else:
        print_table([run for run, _ in runs], wall.now_s() - started_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
