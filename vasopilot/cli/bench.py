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
    from vasopilot.cohort import BenchOptions, PatientOutcome

COLUMN_NAMES = {"oracle": "perfect information"}


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
                        help="also run the perfect-information controller (reads the virtual "
                        "patient) and the hard-maximum bound: what no controller can beat; "
                        "table only, --json keeps its two lines")
    cohort.add_argument("--workers", type=positive_int, default=2, help="processes (default 2)")
    cohort.add_argument("--json", action="store_true",
                        help="one JSON object per controller instead of the table")
    cohort.add_argument("--plot", type=Path, default=None,
                        help="write a PNG of every patient's true MAP, both controllers")
    cohort.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vasopilot.cohort import CONTROLLERS, BenchOptions, run_cohort, summarize
    from vasopilot.core.clock import MonotonicClock

    hours = args.hours if args.hours is not None else (10.0 if args.scenario == "wean" else 4.0)
    options = BenchOptions(scenario=args.scenario, patients=args.cohort, seed=args.seed,
                           hours=hours, dt_s=args.dt, artefacts_per_h=args.artefacts_per_h,
                           workers=args.workers, calibration_error=args.calibration_error,
                           bound=args.bound)
    if args.plot is not None:
        make_folder(args.plot.parent, "--plot")
    clock = MonotonicClock()
    started_s = clock.now_s()
    outcomes = run_cohort(options)
    elapsed_s = clock.now_s() - started_s
    if args.plot is not None:
        plot(outcomes, args.plot, args.scenario)
    if args.json:
        for controller in CONTROLLERS:
            print(summarize(outcomes, controller, args.scenario).model_dump_json())
        return 0
    calibration = ", calibration error on" if args.calibration_error else ""
    print_tables(outcomes, options, f"{args.cohort} patients, seed {args.seed}, "
                 f"{hours:g} h{calibration}, {elapsed_s:.0f} s on {args.workers} workers")
    return 0


def print_tables(outcomes: list[PatientOutcome], options: BenchOptions, caption: str) -> None:
    from rich.console import Console
    from rich.table import Table

    from vasopilot.cohort import table_rows

    console = Console()
    for title, select in (
        ("whole cohort", lambda o: True),
        ("refractory stratum", lambda o: o.stratum == "refractory"),
        ("other strata", lambda o: o.stratum != "refractory"),
        ("out of reach (need > hard max or never)", lambda o: o.out_of_reach),
    ):
        controllers = options.controllers
        rows = table_rows(outcomes, select, controllers)
        n = sum(select(o) for o in outcomes) // len(controllers)
        if n == 0:
            continue
        table = Table(title=f"{options.scenario}: {title}, n={n} ({caption})")
        table.add_column("metric", no_wrap=True, min_width=max(len(row[0]) for row in rows))
        for controller in controllers:
            table.add_column(f"{COLUMN_NAMES.get(controller, controller)} median [IQR]")
        for row in rows:
            table.add_row(*row)
        console.print(table)


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
        ax.axhspan(60.0, 70.0, color="tab:green", alpha=0.12)
        ax.axhline(65.0, color="k", lw=0.8, ls="--")
        name = COLUMN_NAMES.get(controller, controller)
        ax.set_title(f"{name} ({scenario}); red: need above the hard max")
        ax.set_xlabel("time (min)")
        ax.set_ylim(30, 110)
    axes[0][0].set_ylabel("true MAP (mmHg)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
