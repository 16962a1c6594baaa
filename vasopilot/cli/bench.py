"""``vasopilot bench closed-loop``: the seeded cohort benchmark, closed loop against protocol."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from vasopilot.cli._args import (
    make_folder,
    nonnegative_float,
    nonnegative_int,
    positive_float,
    positive_int,
)

if TYPE_CHECKING:
    from vasopilot.cohort import (
        BenchOptions,
        CohortSummary,
        ControllerName,
        PatientOutcome,
        StratumName,
    )

# table rows: (summary key, label); the closed loop's out-of-reach figures come after them
ROWS = (
    ("tib_pct", "tib_pct (in band)"), ("tib_p25_pct", "tib_p25_pct"),
    ("below_floor_pct", "below_floor_pct"), ("below_floor5_pct", "below_floor5_pct"),
    ("above_pct", "above_pct"), ("mdpe_pct", "mdpe_pct"), ("mdape_pct", "mdape_pct"),
    ("wobble_pct", "wobble_pct"), ("divergence_pct_per_h", "divergence_pct_per_h"),
    ("time_to_floor_min", "time_to_floor_min"), ("time_to_floor_ratio", "time_to_floor_ratio"),
    ("dose_changes_per_h", "dose_changes_per_h"),
    ("total_drug_mcg_per_kg", "total_drug_mcg_per_kg"), ("true_tib_pct", "true_tib_pct"),
    ("true_below_floor_pct", "true_below_floor_pct"),
    ("artefact_increases", "artefact_increases (total)"), ("diverged", "diverged (total)"),
    ("tib_ratio_to_clairvoyant", "tib_ratio_to_clairvoyant"),
    ("avoidable_deficit_mmhg_min", "avoidable_deficit_mmhg_min"),
    ("event_recovery_min", "event_recovery_min"), ("weanable", "weanable (total)"),
    ("wean_excess_h", "wean_excess_h"), ("not_weaned_pct", "not_weaned_pct"),
    ("weaned_unweanable", "weaned_unweanable (total)"),
    ("excess_rebound_low5", "excess_rebound_low5"),
    ("excess_rebound_low5_p90", "excess_rebound_low5_p90"),
    ("excess_rebound_floor", "excess_rebound_floor"),
    ("wean_ratio_to_protocol", "wean_ratio_to_protocol"),
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("bench", help="benchmarks that print tables")
    kinds = parser.add_subparsers(dest="bench", required=True)
    cohort = kinds.add_parser(
        "closed-loop",
        help="a seeded virtual cohort under the closed loop and the nurse protocol",
        description="Run every patient of a seeded cohort (0.1x-10x sensitivity) under the "
        "closed-loop controller (the wean mode in the wean scenario) and the nurse protocol; "
        "print median [IQR] of every metric of docs/virtual-patient.md.",
    )
    cohort.add_argument("--cohort", type=positive_int, default=100, help="patients (default 100)")
    cohort.add_argument("--seed", type=nonnegative_int, default=1)
    cohort.add_argument("--scenario", choices=["resuscitate", "disturbance", "wean"],
                        default="resuscitate")
    cohort.add_argument("--hours", type=positive_float, default=None,
                        help="simulated hours per patient (default 4; 10 for wean)")
    cohort.add_argument("--artefacts-per-h", type=nonnegative_float, default=4.0,
                        help="seeded random line artefacts per hour (default 4)")
    cohort.add_argument("--dt", type=positive_float, default=2.0,
                        help="rig loop step in s (default 2)")
    cohort.add_argument("--calibration-error", action="store_true",
                        help="robustness run: give 30%% of patients the virtual patient's "
                        "optional +-10%% transducer calibration error (off by default)")
    cohort.add_argument("--bound", action="store_true",
                        help="also run the full-state and clairvoyant references (they read the "
                        "virtual patient) and the floor proof (the hard maximum from t = 0)")
    cohort.add_argument("--carrier", type=nonnegative_float, default=0.0, metavar="ML_H",
                        help="carrier flow on the line in mL/h (default 0)")
    cohort.add_argument("--unprimed", action="store_true",
                        help="start with a drug-free dead volume (default: primed)")
    cohort.add_argument("--workers", type=positive_int, default=2, help="processes (default 2)")
    cohort.add_argument("--json", action="store_true",
                        help="one JSON object per (controller, stratum) instead of the tables")
    cohort.add_argument("--plot", type=Path, default=None,
                        help="write a PNG of every patient's monitor MAP per controller")
    cohort.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vasopilot.cohort import BenchOptions, run_cohort, summaries
    from vasopilot.core.clock import MonotonicClock

    hours = args.hours if args.hours is not None else (10.0 if args.scenario == "wean" else 4.0)
    options = BenchOptions(scenario=args.scenario, patients=args.cohort, seed=args.seed,
                           hours=hours, dt_s=args.dt, artefacts_per_h=args.artefacts_per_h,
                           workers=args.workers, calibration_error=args.calibration_error,
                           bound=args.bound, carrier_ml_h=args.carrier,
                           primed_line=not args.unprimed)
    if args.plot is not None:
        make_folder(args.plot.parent, "--plot")
    clock = MonotonicClock()
    started_s = clock.now_s()
    outcomes = run_cohort(options)
    elapsed_s = clock.now_s() - started_s
    if args.plot is not None:
        plot(outcomes, args.plot, args.scenario)
    lines = summaries(outcomes, options)
    if args.json:
        for line in lines:
            print(line.model_dump_json())
        return 0
    calibration = ", calibration error on" if args.calibration_error else ""
    line_text = f"carrier {args.carrier:g} mL/h, {'unprimed' if args.unprimed else 'primed'}"
    print_tables(outcomes, lines, options,
                 f"{args.cohort} patients, seed {args.seed}, {hours:g} h, {line_text}"
                 f"{calibration}, {elapsed_s:.0f} s on {args.workers} workers")
    return 0


def _cell(value: float | int | None) -> str:
    if value is None:
        return "-"
    return str(value) if isinstance(value, int) else f"{value:.2f}"


def print_tables(outcomes: list[PatientOutcome], lines: list[CohortSummary],
                 options: BenchOptions, caption: str) -> None:
    from rich.console import Console
    from rich.table import Table

    from vasopilot.cohort import STRATA

    console = Console()
    controllers = options.controllers
    for stratum in STRATA:
        mine = {line.controller: line for line in lines if line.stratum == stratum}
        n = next(iter(mine.values())).patients if mine else 0
        if n == 0:
            continue
        table = Table(title=f"{options.scenario}: {stratum}, n={n} ({caption})")
        table.add_column("metric (median unless total)", no_wrap=True,
                         min_width=max(len(label) for _, label in ROWS))
        for controller in controllers:
            table.add_column(controller, justify="right")
        for key, label in ROWS:
            cells = [_cell(getattr(mine[c], key)) for c in controllers]
            if any(cell != "-" for cell in cells):
                table.add_row(label, *cells)
        for label, cells in _extra_rows(outcomes, stratum, controllers):
            table.add_row(label, *cells)
        console.print(table)


def _extra_rows(outcomes: list[PatientOutcome], stratum: StratumName,
                controllers: tuple[ControllerName, ...]) -> list[tuple[str, list[str]]]:
    """The floor proof and the out-of-reach patients' figures: medians (and the worst) over the
    patients of the stratum that are out of reach and have the figure, with how many do."""
    import statistics

    def med(values: list[float]) -> str:
        return f"{statistics.median(values):.2f} (n={len(values)})" if values else "-"

    mine = [o for o in outcomes if o.in_stratum(stratum)]
    rows: list[tuple[str, list[str]]] = []
    floors = [o.floor for o in mine if o.floor is not None]
    if floors:
        at = controllers.index("full-state")
        for label, values in (
            ("floor proof: below_floor_pct", [f.below_floor_pct for f in floors]),
            ("floor proof: time_to_floor_min",
             [f.time_to_floor_min for f in floors if f.time_to_floor_min is not None]),
        ):
            cells = ["-"] * len(controllers)
            cells[at] = med(values)
            rows.append((label, cells))
    def med_worst(values: list[float], of: int) -> str:
        if not values:
            return "-"
        return (f"{statistics.median(values):.2f}, worst {max(values):.2f} "
                f"({len(values)} of {of})")

    out = [o for o in mine if o.out_of_reach]
    # the stratum, then split: out of reach with the patient's own tone intact, and only once
    # the rebound knob has suppressed it (PatientOutcome.out_of_reach_without_rebound)
    for part, patients in (
        ("", out),
        ("[tone intact] ", [o for o in out if o.out_of_reach_without_rebound]),
        ("[by rebound only] ", [o for o in out if not o.out_of_reach_without_rebound]),
    ):
        for label, field in (
            ("hard max reached, min after S3 pace", "hard_max_lag_min"),
            ("  ... after S3 pace from the last MAP at set-point", "hard_max_fall_lag_min"),
            ("'target unreachable' alarm at min", "unreachable_min"),
            ("S6's own delay of the S3 pace, min (bound)", "s6_pace_delay_min"),
        ):
            if part and field == "s6_pace_delay_min":
                continue
            cells = []
            for controller in controllers:
                ours = [o for o in patients if o.controller == controller]
                values = [v for o in ours if (v := getattr(o, field)) is not None]
                cells.append(med_worst(values, len(ours)))
            if any(c != "-" for c in cells):
                rows.append((part + label, cells))
    # an alarm on a patient the stratum calls reachable, and whether the floor proof shows the
    # set-point out of any dosing's reach at that moment (a wander trough: the alarm was true)
    reachable = [o for o in mine if o.reachable]
    if any(o.unreachable_min is not None for o in reachable):
        rows.append(("'target unreachable' on reachable (true then)", [
            f"{sum(o.unreachable_min is not None for o in ours)} of {len(ours)} "
            f"({sum(bool(o.unreachable_proven) for o in ours)})"
            for ours in ([o for o in reachable if o.controller == c] for c in controllers)]))
    return rows


def plot(outcomes: list[PatientOutcome], path: Path, scenario: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vasopilot.cohort import TRACE_EVERY_S

    controllers = list(dict.fromkeys(o.controller for o in outcomes))
    fig, axes = plt.subplots(1, len(controllers), figsize=(6 * len(controllers), 4.5),
                             sharey=True, squeeze=False)
    for ax, controller in zip(axes[0], controllers, strict=True):
        for o in outcomes:
            if o.controller == controller:
                minutes = [i * TRACE_EVERY_S / 60.0 for i in range(len(o.trace_mmhg))]
                ax.plot(minutes, o.trace_mmhg, lw=0.6, alpha=0.35,
                        color="tab:red" if o.out_of_reach else "tab:blue")
        ax.axhspan(65.0, 75.0, color="tab:green", alpha=0.12)
        ax.axhline(65.0, color="k", lw=0.8, ls="--")
        ax.set_title(f"{controller} ({scenario}); red: out of reach", fontsize=9)
        ax.set_xlabel("time (min)")
        ax.set_ylim(30, 110)
    axes[0][0].set_ylabel("monitor MAP (mmHg); band [F, F + 10] for F = 65")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
