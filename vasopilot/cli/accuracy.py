"""``vasopilot accuracy``: the gravimetric start-up and trumpet curves of a pump.

``--rig FILE --rate R --hours H`` runs the profile's pump at R mL/h through the supervisor and
samples its balance every 30 s (on a simulated rig, with the emulated balance, in virtual
time); ``--from-csv FILE --rate R`` judges a balance log from any instrument the same way.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vasopilot.accuracy import AccuracyError, AccuracyResult, MassSample
from vasopilot.cli._args import positive_float


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "accuracy",
        help="gravimetric flow accuracy: start-up and trumpet curves (IEC 60601-2-24 style)",
        description="Weigh what the pump delivers every 30 s (or read a balance log) and "
        "compute the start-up curve with the time to 90 %% of the set rate, and the trumpet "
        "curve over the second hour (windows 2, 5, 11, 19, 31 min).",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--rig", type=Path, help="rig profile with a pump and a [balance]")
    source.add_argument("--from-csv", type=Path, metavar="FILE",
                        help="a balance log: header line naming t_s and mass_g, then samples")
    parser.add_argument("--rate", type=positive_float, required=True, metavar="R",
                        help="set rate in mL/h")
    parser.add_argument("--hours", type=positive_float, default=2.0,
                        help="length of the run (default 2; the trumpet needs 2)")
    parser.add_argument("--take-up", action="store_true",
                        help="take up the pump's slack before the timed run")
    parser.add_argument("--pump", choices=["new-era", "harvard"], default=None,
                        help="on a simulated rig: that pump's emulator behind its production "
                        "driver instead of the profile's pump")
    parser.add_argument("--density", type=positive_float, default=None,
                        help="fluid density in g/mL (default: the profile's, or 0.998)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object (rate_ml_h, mean_error_pct, startup_90_s, "
                        "late_samples, trumpet)")
    parser.add_argument("--csv", type=Path, default=None, metavar="OUT",
                        help="write the raw samples (t_s, mass_g, stable)")
    parser.add_argument("--plot", type=Path, default=None, metavar="OUT.png",
                        help="draw the start-up and trumpet curves")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vasopilot.accuracy import WATER_DENSITY_G_ML, analyse, read_csv, summary

    if not args.hours >= 2:
        raise AccuracyError(f"--hours must be at least 2 (the trumpet uses the second hour), "
                            f"got {args.hours}")
    if args.density is not None and not 0.5 <= args.density <= 2.0:
        raise AccuracyError(f"--density must be 0.5-2.0 g/mL, got {args.density}")
    if args.from_csv is not None:
        try:
            text = args.from_csv.read_text()
        except OSError as exc:
            raise AccuracyError(f"{args.from_csv}: cannot read ({exc.strerror})") from None
        samples = read_csv(text, str(args.from_csv))
        density = args.density or WATER_DENSITY_G_ML
        stable: list[bool] | None = None
    else:
        samples, stable, density = _measure(args)
    if args.csv is not None:
        _write_csv(args.csv, samples, stable)
    result = analyse(samples, args.rate, density_g_ml=density)
    if args.plot is not None:
        plot_accuracy(result, args.plot, title=_title(args))
    if args.json:
        print(summary(result).model_dump_json())
    else:
        _print_table(result, args)
    return 0


def _measure(args: argparse.Namespace) -> tuple[list[MassSample], list[bool], float]:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from vasopilot.core.clock import Clock, MonotonicClock, VirtualClock
    from vasopilot.gravimetric import RunOptions, mass_samples, run_test
    from vasopilot.rig.bench import build_bench
    from vasopilot.runtime import MemorySink
    from vasopilot.settings import load_rig

    config = load_rig(args.rig)
    profile = config.profile
    if profile.balance is None:
        raise AccuracyError(f"{args.rig}: the profile has no [balance] table")
    simulated = profile.pump.driver == "sim" and profile.balance.driver == "emulated"
    if args.pump is not None and not simulated:
        raise AccuracyError("--pump needs a simulated rig (sim pump, emulated balance)")
    clock: Clock = VirtualClock() if simulated else MonotonicClock()
    options = RunOptions(rate_ml_h=args.rate, hours=args.hours, take_up=args.take_up)
    bench = build_bench(config, clock=clock, sink=MemorySink(), emulated_pump=args.pump)
    err = Console(stderr=True)
    try:
        with Progress(TextColumn("[bold]weighing[/] {task.description}"), BarColumn(),
                      TextColumn("{task.percentage:>3.0f}%"), TimeRemainingColumn(),
                      console=err, transient=True, disable=not err.is_terminal) as bar:
            task = bar.add_task(f"{args.rate:g} mL/h, {args.hours:g} h", total=1.0)
            weighings = run_test(bench, options,
                                 progress=lambda done: bar.update(task, completed=done))
    finally:
        bench.close()
    t0 = weighings[0].t_s
    samples = [MassSample(s.t_s - t0, s.mass_g) for s in mass_samples(weighings)]
    return samples, [w.stable for w in weighings], args.density or profile.balance.density_g_ml


def _write_csv(path: Path, samples: list[MassSample], stable: list[bool] | None) -> None:
    rows = ["t_s,mass_g" + (",stable" if stable is not None else "")]
    for i, s in enumerate(samples):
        extra = f",{int(stable[i])}" if stable is not None else ""
        rows.append(f"{s.t_s:.3f},{s.mass_g:.6f}{extra}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(rows) + "\n")
    except OSError as exc:
        raise AccuracyError(f"{path}: cannot write ({exc.strerror})") from None


def _title(args: argparse.Namespace) -> str:
    source = args.from_csv if args.from_csv is not None else args.rig
    return f"vasopilot accuracy: {Path(source).name}, {args.rate:g} mL/h"


def plot_accuracy(result: AccuracyResult, path: Path, *, title: str) -> Path:
    """The start-up curve (flow per interval over the run) and the trumpet curve."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.5), dpi=110, layout="constrained")
    ax_start, ax_trumpet = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    fig.suptitle(title)
    r = result.rate_ml_h
    minutes = [q.t_end_s / 60.0 for q in result.flows]
    ax_start.step(minutes, [q.flow_ml_h for q in result.flows], where="pre", lw=0.9,
                  label="flow per 30 s interval")
    ax_start.axhline(r, color="k", lw=0.8, ls="--", label=f"set rate {r:g} mL/h")
    ax_start.axhline(0.9 * r, color="grey", lw=0.6, ls=":", label="90 % of set rate")
    if result.startup_90_s is not None:
        ax_start.axvline(result.startup_90_s / 60.0, color="tab:red", lw=0.8,
                         label=f"90 % at {result.startup_90_s / 60.0:.1f} min")
    ax_start.set(xlabel="time, min", ylabel="flow, mL/h", title="start-up curve")
    ax_start.legend(loc="lower right", fontsize=8)
    windows = [p.window_min for p in result.trumpet]
    ax_trumpet.plot(windows, [p.ep_max_pct for p in result.trumpet], "o-", label="Ep(max)")
    ax_trumpet.plot(windows, [p.ep_min_pct for p in result.trumpet], "o-", label="Ep(min)")
    ax_trumpet.axhline(result.mean_error_pct, color="tab:green", lw=0.9,
                       label=f"A = {result.mean_error_pct:+.2f} %")
    ax_trumpet.axhline(0.0, color="k", lw=0.6)
    ax_trumpet.set(xlabel="observation window P, min", ylabel="error, %",
                   title="trumpet curve (second hour)", xticks=windows)
    ax_trumpet.legend(fontsize=8)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    except OSError as exc:
        raise AccuracyError(f"{path}: cannot write the plot ({exc.strerror})") from None
    return path


def _print_table(result: AccuracyResult, args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=_title(args))
    table.add_column("window, min", justify="right")
    table.add_column("windows", justify="right")
    table.add_column("Ep(max) %", justify="right")
    table.add_column("Ep(min) %", justify="right")
    for p in result.trumpet:
        table.add_row(str(p.window_min), str(p.windows), f"{p.ep_max_pct:+.2f}",
                      f"{p.ep_min_pct:+.2f}")
    console = Console()
    console.print(table)
    startup = "never" if result.startup_90_s is None else f"{result.startup_90_s:.0f} s"
    console.print(f"mean error A (second hour): {result.mean_error_pct:+.2f} %")
    console.print(f"start-up to 90 % of set rate: {startup}")
    console.print(f"late samples (> 1 s): {result.late_samples}")

