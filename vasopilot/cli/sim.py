"""``vasopilot sim``: run a scenario on simulated hardware, print a summary, draw a plot."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vasopilot.cli._args import (
    make_folder,
    mode_name,
    nonnegative_float,
    nonnegative_int,
    positive_float,
)

if TYPE_CHECKING:
    from vasopilot.simulate import SimResult


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "sim",
        help="run a scenario on simulated hardware and a virtual patient",
        description="Run the whole rig (supervisor, control mode, pump, pressure) against a "
        "virtual patient on a virtual clock, as fast as the CPU allows.",
    )
    parser.add_argument("--scenario", choices=["resuscitate", "wean", "disturbance"],
                        default="resuscitate")
    parser.add_argument("--hours", type=positive_float, default=2.0,
                        help="simulated hours (default 2)")
    parser.add_argument("--seed", type=nonnegative_int, default=1,
                        help="fixes the virtual patient")
    parser.add_argument("--mode", default="protocol", type=mode_name,
                        help="control mode: protocol (nurse protocol), manual, closed-loop, "
                        "wean")
    parser.add_argument("--pump", choices=["sim", "new-era", "harvard", "bridge"], default="sim",
                        help="sim: physics twin in process; new-era/harvard/bridge: the "
                        "production driver talking to the pump's emulator (for bridge: the "
                        "Pico firmware's logic) over a pseudo-terminal")
    parser.add_argument("--waveform", action="store_true",
                        help="simulate the arterial waveform and detect beats in it")
    parser.add_argument("--fault", action="append", default=[], metavar="KIND@S[+DUR][=MMHG]",
                        help="inject a fault at S seconds (repeatable): occlusion, infiltration, "
                        "stall, extravasation-sensor, a line artefact (flush, sampling, "
                        "zeroing, damping, kink, disconnection, motion, sensor_loss, "
                        "calibration) lasting DUR seconds, or a patient-side line disturbance "
                        "of MMHG: line-step (held DUR seconds) or line-ramp (reached over DUR "
                        "seconds, then held)")
    parser.add_argument("--artefacts-per-h", type=nonnegative_float, default=0.0,
                        help="seeded random line artefacts per hour (default 0: a clean line)")
    parser.add_argument("--nurse", action="store_true",
                        help="a simulated bedside nurse keeps a spare syringe pump loaded "
                        "(changeover, S10), confirms doses above the soft maximum while MAP "
                        "is below target (S2) and answers the volume check after 5 min, "
                        "giving fluid while MAP is low (GR1)")
    parser.add_argument("--rig", type=Path, default=None,
                        help="rig profile (default: the embedded simulation defaults)")
    parser.add_argument("--out", type=Path, default=Path("out"),
                        help="folder for the journal and the plot (default ./out)")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG plot")
    parser.add_argument("--realtime", action="store_true",
                        help="run at the speed of the wall clock (for watching telemetry)")
    parser.add_argument("--mqtt", metavar="URL",
                        help="publish telemetry to this broker, e.g. mqtts://user:pass@host:8883 "
                        "(overrides the profile's [mqtt]; mqtt:// is plain, loopback only unless "
                        "?insecure=true)")
    parser.add_argument("--rig-id", help="rig id for the MQTT topics (default: the profile's)")
    parser.add_argument("--json", action="store_true",
                        help="print the summary as one JSON object instead of a table")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from vasopilot.core.clock import VirtualClock
    from vasopilot.journal import Journal
    from vasopilot.rig.faults import parse_fault
    from vasopilot.settings import load_rig, notices
    from vasopilot.simulate import SimOptions, run_sim
    from vasopilot.telemetry import telemetry_for, with_rig_id
    from vasopilot.telemetry.commands import utc_now

    try:
        faults = tuple(parse_fault(spec) for spec in args.fault)
    except ValueError as exc:
        print(f"vasopilot sim: {exc}", file=sys.stderr)
        return 2
    config = with_rig_id(load_rig(args.rig), args.rig_id)
    for notice in notices(config):
        print(f"vasopilot sim: note: {notice}", file=sys.stderr)
    options = SimOptions(scenario=args.scenario, hours=args.hours, seed=args.seed,
                         mode=args.mode, pump=args.pump, waveform=args.waveform,
                         artefacts_per_h=args.artefacts_per_h, faults=faults,
                         spare_syringe=args.nurse, nurse_confirms_soft_max=args.nurse)
    make_folder(args.out, "--out")
    stem = f"sim-{options.scenario}-seed{options.seed}"
    journal_path = args.out / f"{stem}.sqlite"
    journal_path.unlink(missing_ok=True)
    err = Console(stderr=True)
    # Published events carry wall-clock labels: anchor the simulated time line at now.
    clock = VirtualClock(epoch=utc_now() if args.mqtt or config.profile.mqtt.enabled else None)
    with Journal(journal_path, clock) as journal, \
            telemetry_for(config, journal, url=args.mqtt, rig_id=args.rig_id,
                          after_seq=0) as telemetry, \
            Progress(
        TextColumn("[bold]simulating[/] {task.description}"), BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"), TimeRemainingColumn(),
        console=err, transient=True, disable=args.json or not err.is_terminal,
    ) as bar:
        task = bar.add_task(f"{options.scenario}, {options.hours:g} h", total=1.0)
        result = run_sim(config, options, clock=clock, sink=journal,
                         progress=lambda fraction: bar.update(task, completed=fraction),
                         realtime=args.realtime,
                         console=lambda line: err.print(f"vasopilot sim: {line}", markup=False,
                                                        highlight=False),
                         on_loop=telemetry.bind_loop if telemetry is not None else None)
    plot_path = None if args.no_plot else _plot(result, args.out / f"{stem}.png")
    if args.json:
        print(result.summary.model_dump_json())
        return 0
    _print_table(result, journal_path, plot_path)
    return 0


def _plot(result: SimResult, path: Path) -> Path:
    from vasopilot.report import plot_run

    o = result.options
    title = f"vasopilot sim: {o.scenario}, {o.mode}, seed {o.seed}, {o.hours:g} h"
    return plot_run(result.events, path, title, true_map=result.true_map,
                    note=f"simulated {result.sensor.label()}")


def _print_table(result: SimResult, journal: Path, plot: Path | None) -> None:
    from rich.console import Console
    from rich.table import Table

    s = result.summary
    band = result.band
    monitor = result.band_metrics("monitor")
    table = Table(title=f"vasopilot sim — {s.scenario}, seed {s.seed}, {s.hours:g} h (floor "
                  f"{band.floor_mmhg:.0f}, set-point {band.set_point_mmhg:.0f}, "
                  f"{band.label()})",
                  caption=f"simulated {result.sensor.label()}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows: list[tuple[str, Any]] = [
        (f"time in {band.label()}, true MAP (after 10 min)", f"{s.time_in_target_pct:.1f} %"),
        (f"time in {band.label()}, monitor MAP (after 10 min)",
         f"{monitor.in_band_pct:.1f} %"),
        (f"time with true MAP < {band.floor_mmhg:.0f} mmHg (hypotension)",
         f"{s.map_below_65_pct:.1f} %"),
        (f"time with monitor MAP < {band.floor_mmhg:.0f} mmHg",
         f"{monitor.below_floor_pct:.1f} %"),
        ("total norepinephrine", f"{s.total_drug_mcg:.0f} mcg"),
        ("alarms raised", s.alarms),
        ("dose changes", s.dose_changes),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    console = Console()
    console.print(table)
    console.print(f"journal: {journal}")
    if plot is not None:
        console.print(f"plot:    {plot}")
