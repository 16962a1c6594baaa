"""Run reports: one PNG that shows a run at a glance, redrawn from its events.

Three panels share a time axis in hours from the run's start: MAP (the monitor's good beats as
a line with dots, untrusted ones as crosses, a virtual patient's true MAP as a thin line, and
the band of :class:`~vasopilot.metrics.MapBand`: floor, set-point, band, with the lower limit),
the dose as a step plot in mcg/min with mL/h (and mcg/kg/min for a weight-based entry) on the
right and refused requests marked, and alarms as bars per code, coloured by priority, from
raised to cleared. Restarts of the process are marked on every panel, with the time no process
ran, and so are the spells the supervisor kept the pump stopped, with their reason.
matplotlib is imported only when drawing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vasopilot.core.config import DEFAULT_FLOOR_MMHG, LOWER_LIMIT_BELOW_FLOOR_MMHG
from vasopilot.core.events import (
    AlarmCleared,
    AlarmRaised,
    BeatSummary,
    DoseApplied,
    DoseRefused,
    Event,
    OperatorAction,
    RunStarted,
    StopReason,
)
from vasopilot.core.types import GOOD, Priority, VolumeAnswer
from vasopilot.core.units import (
    DoseUnit,
    dose_from_rate_ml_h,
    mcg_kg_min_from_mcg_min,
    mcg_min_from_mcg_kg_min,
    rate_ml_h_from_dose,
)
from vasopilot.metrics import MapBand

S_PER_H = 3600.0

PRIORITY_COLOURS = {Priority.HIGH: "#d62728", Priority.MEDIUM: "#ff9f1c", Priority.LOW: "#17becf"}


@dataclass(frozen=True)
class AlarmBar:
    """One stretch of an alarm at one priority, in hours; ``open`` if it had not cleared."""

    code: str
    priority: Priority
    start_h: float
    end_h: float
    open: bool


@dataclass(frozen=True)
class StoppedSpell:
    """A stretch, in hours, the supervisor kept the pump stopped, and why (its stop reason)."""

    start_h: float
    end_h: float
    reason: StopReason


@dataclass
class RunSeries:
    """A run's events turned into the series the report draws (times in hours from ``t0_s``)."""

    t0_s: float
    end_h: float = 0.0
    run: RunStarted | None = None
    map_good: list[tuple[float, float]] = field(default_factory=list)
    map_untrusted: list[tuple[float, float]] = field(default_factory=list)
    dose_steps: list[tuple[float, float]] = field(default_factory=list)
    refused: list[tuple[float, float]] = field(default_factory=list)
    alarms: list[AlarmBar] = field(default_factory=list)
    true_map: list[tuple[float, float]] = field(default_factory=list)
    # restarts of the process (hours), each with the last event before it: no process ran
    restarts: list[tuple[float, float]] = field(default_factory=list)
    stopped: list[StoppedSpell] = field(default_factory=list)
    # the operator's answers to the volume check (issue 19), at the dose then running
    volume_answers: list[tuple[float, VolumeAnswer]] = field(default_factory=list)

    @classmethod
    def from_events(
        cls, events: Iterable[Event], true_map: Sequence[tuple[float, float]] = ()
    ) -> RunSeries:
        """Collect the series; the clock origin is the first ``RunStarted`` (else first event).

        ``true_map`` is (t_s, mmHg) on the same clock, e.g. a virtual patient's true MAP.
        """
        ordered = list(events)
        starts = [e for e in ordered if isinstance(e, RunStarted)]
        t0_s = starts[0].t_s if starts else (ordered[0].t_s if ordered else 0.0)
        series = cls(t0_s=t0_s, run=starts[-1] if starts else None)
        series.true_map = [(series._h(t_s), mmhg) for t_s, mmhg in true_map]
        opened: dict[str, tuple[Priority, float]] = {}
        stop: tuple[float, StopReason] | None = None
        for event in ordered:
            t_h = series._h(event.t_s)
            last_h = series.end_h
            series.end_h = max(series.end_h, t_h)
            if isinstance(event, DoseApplied):
                reason = event.stop_reason
                if stop is not None and event.dose_mcg_min > 0:
                    series.stopped.append(StoppedSpell(stop[0], t_h, stop[1]))
                    stop = None
                elif stop is None and reason is not None:
                    stop = (t_h, reason)
            match event:
                case RunStarted(restarted=True):
                    series.restarts.append((last_h, t_h))
                case BeatSummary(map_mmhg=float() as map_mmhg):
                    target = series.map_good if event.quality == GOOD else series.map_untrusted
                    target.append((t_h, map_mmhg))
                case DoseApplied():
                    series.dose_steps.append((t_h, event.dose_mcg_min))
                case DoseRefused():
                    series.refused.append((t_h, event.requested_dose_mcg_min))
                case AlarmRaised():
                    # A re-raise escalates: close the lower-priority stretch, open the new one.
                    if event.code in opened:
                        priority, start_h = opened[event.code]
                        series.alarms.append(AlarmBar(event.code, priority, start_h, t_h, False))
                    opened[event.code] = (event.priority, t_h)
                case OperatorAction(volume_answer=VolumeAnswer() as answer):
                    series.volume_answers.append((t_h, answer))
                case AlarmCleared() if event.code in opened:
                    priority, start_h = opened.pop(event.code)
                    series.alarms.append(AlarmBar(event.code, priority, start_h, t_h, False))
        if series.true_map:
            series.end_h = max(series.end_h, series.true_map[-1][0])
        if stop is not None:
            series.stopped.append(StoppedSpell(stop[0], series.end_h, stop[1]))
        for code, (priority, start_h) in opened.items():
            series.alarms.append(AlarmBar(code, priority, start_h, series.end_h, True))
        return series

    def _h(self, t_s: float) -> float:
        return (t_s - self.t0_s) / S_PER_H

    def dose_line(self) -> tuple[list[float], list[float]]:
        """The dose as post-steps from 0 at the start to the run's end."""
        times = [0.0] + [t for t, _ in self.dose_steps] + [self.end_h]
        doses = [0.0] + [d for _, d in self.dose_steps]
        return times, [*doses, doses[-1]]


def _broken_at_gaps(
    points: Sequence[tuple[float, float]], max_gap_h: float
) -> tuple[list[float], list[float]]:
    times: list[float] = []
    values: list[float] = []
    for t_h, value in points:
        if times and t_h - times[-1] > max_gap_h:
            times.append(t_h)
            values.append(math.nan)
        times.append(t_h)
        values.append(value)
    return times, values


def run_title(run: RunStarted | None, fallback: str) -> str:
    """A report title naming the rig, mode, scenario and seed of ``run``."""
    if run is None:
        return fallback
    parts = [run.rig_id, run.mode]
    if run.scenario:
        parts.append(f"scenario {run.scenario}")
    if run.seed is not None:
        parts.append(f"seed {run.seed}")
    started = f", started {run.wall[:16].replace('T', ' ')} UTC" if run.wall else ""
    return " · ".join(parts) + started


def plot_run(
    events: Iterable[Event],
    out_png: Path,
    title: str,
    *,
    true_map: Sequence[tuple[float, float]] = (),
    note: str | None = None,
    max_gap_s: float = 120.0,
) -> Path:
    """Draw the run in ``events`` to ``out_png`` and return its path.

    ``true_map``: optional (t_s, mmHg) series of a virtual patient's true MAP, drawn as a thin
    line beside the monitor's. The band is the run's :class:`~vasopilot.metrics.MapBand` (its
    floor is the journaled lower limit + 5, S6). ``note`` goes under the title (a simulated
    monitor's sensor errors). The monitor MAP line is broken where good beats are more than
    ``max_gap_s`` apart, so a spell without trusted data shows as a gap rather than as a
    straight line across it.
    """
    max_gap_h = max_gap_s / S_PER_H
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    series = RunSeries.from_events(events, true_map)
    run = series.run
    # S6: the lower limit is F - 5 (the target is the set-point in a sim, the floor in an
    # older profile; the lower limit means the same in both)
    band = MapBand(run.lower_limit_mmhg + LOWER_LIMIT_BELOW_FLOOR_MMHG if run
                   else DEFAULT_FLOOR_MMHG)
    codes = sorted({bar.code for bar in series.alarms})

    fig = Figure(figsize=(12, 8.5), dpi=110, layout="constrained")
    axes = fig.subplots(3, 1, sharex=True,
                        gridspec_kw={"height_ratios": [3, 2, max(1.0, 0.45 * len(codes) + 0.6)]})
    ax_map, ax_dose, ax_alarm = axes
    fig.suptitle(title if note is None else f"{title}\n{note}", fontsize=12)

    ax_map.axhspan(band.floor_mmhg, band.high_mmhg, color="#2ca02c", alpha=0.12,
                   label=band.label())
    ax_map.axhline(band.floor_mmhg, color="#2ca02c", linestyle="--", linewidth=1.2,
                   label=f"floor {band.floor_mmhg:.0f} (below: hypotension)")
    ax_map.axhline(band.set_point_mmhg, color="#2ca02c", linestyle=":", linewidth=1.0,
                   label=f"set-point {band.set_point_mmhg:.0f}")
    if run is not None:
        ax_map.axhline(run.lower_limit_mmhg, color="#d62728", linestyle=":", linewidth=1.5,
                       label=f"lower limit {run.lower_limit_mmhg:.0f}")
    if series.true_map:
        ax_map.plot(*zip(*series.true_map, strict=True), color="black", linewidth=0.8,
                    alpha=0.7, label="true MAP (model)")
    if series.map_good:
        ax_map.plot(*_broken_at_gaps(series.map_good, max_gap_h), color="#1f77b4",
                    linewidth=1.0, marker="o", markersize=2.5, label="monitor MAP (good beats)")
    if series.map_untrusted:
        ax_map.plot(*zip(*series.map_untrusted, strict=True), linestyle="none", marker="x",
                    markersize=6, markeredgewidth=1.5, color="#7f7f7f", label="untrusted beats")
    ax_map.set_ylabel("MAP (mmHg)")
    ax_map.grid(alpha=0.3)

    ax_dose.step(*series.dose_line(), where="post", color="#9467bd", linewidth=1.8,
                 label="dose applied")
    if series.refused:
        ax_dose.plot(*zip(*series.refused, strict=True), linestyle="none", marker="x",
                     markersize=7, markeredgewidth=2, color="#d62728", label="refused request")
    for t_h, answer in series.volume_answers:
        ax_dose.axvline(t_h, color="#2ca02c", linewidth=1.0, linestyle="--", alpha=0.8)
        ax_dose.annotate(f"volume: {answer}", (t_h, 0.97), xycoords=("data", "axes fraction"),
                         rotation=90, va="top", ha="right", fontsize=7, color="#2ca02c")
    ax_dose.set_ylabel("norepinephrine\n(mcg/min)")
    ax_dose.set_ylim(bottom=0)
    ax_dose.grid(alpha=0.3)
    if run is not None:
        _dose_axes(ax_dose, run)

    _mark_restarts_and_stops(series, (ax_map, ax_dose, ax_alarm))
    ax_map.legend(loc="upper right", fontsize=8, ncols=3)
    ax_dose.legend(loc="upper left", fontsize=8, ncols=2)

    for bar in series.alarms:
        row = codes.index(bar.code)
        ax_alarm.broken_barh([(bar.start_h, max(bar.end_h - bar.start_h, 1e-4))],
                             (row - 0.35, 0.7), facecolors=PRIORITY_COLOURS[bar.priority],
                             edgecolor="black" if bar.open else "none", linewidth=0.8)
    ax_alarm.set_yticks(range(len(codes)), codes, fontsize=8)
    ax_alarm.set_ylim(-0.6, max(len(codes), 1) - 0.4)
    ax_alarm.invert_yaxis()
    handles = [Patch(color=c, label=p.value) for p, c in PRIORITY_COLOURS.items()]
    handles.append(Patch(facecolor="none", edgecolor="black", label="not cleared at end"))
    ax_alarm.legend(handles=handles, loc="upper right", fontsize=8, ncols=4,
                    title="alarm priority", title_fontsize=8)
    if not codes:
        ax_alarm.text(0.5, 0.5, "no alarms", transform=ax_alarm.transAxes, ha="center",
                      va="center", color="#7f7f7f")
    ax_alarm.set_xlabel("time from run start (h)")
    ax_alarm.set_xlim(0, max(series.end_h, 1 / 60))
    ax_alarm.grid(axis="x", alpha=0.3)

    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png)
    return out_png


def _dose_axes(ax_dose: Any, run: RunStarted) -> None:
    """The dose in mL/h on the right (at the run's concentration) and, for a weight-based
    entry with a weight, in mcg/kg/min further right."""
    conc = run.conc_mcg_ml
    ml_h = ax_dose.secondary_yaxis(
        "right", functions=(lambda d: rate_ml_h_from_dose(d, conc),
                            lambda r: dose_from_rate_ml_h(r, conc)))
    ml_h.set_ylabel(f"mL/h at {conc:g} mcg/mL")
    weight = run.weight_kg
    if run.dose_unit is DoseUnit.MCG_KG_MIN and weight:
        per_kg = ax_dose.secondary_yaxis(
            1.09, functions=(lambda d: mcg_kg_min_from_mcg_min(d, weight),
                             lambda k: mcg_min_from_mcg_kg_min(k, weight)))
        per_kg.set_ylabel(f"mcg/kg/min ({weight:g} kg)")


def _mark_restarts_and_stops(series: RunSeries, axes: Sequence[Any]) -> None:
    for i, ax in enumerate(axes):
        first = i == 0
        for spell in series.stopped:
            ax.axvspan(spell.start_h, spell.end_h, color="#d62728", alpha=0.08,
                       label="pump stopped" if first and spell is series.stopped[0] else None)
        for k, (down_h, restart_h) in enumerate(series.restarts):
            ax.axvspan(down_h, restart_h, color="#7f7f7f", alpha=0.25,
                       label="no process" if first and k == 0 else None)
            ax.axvline(restart_h, color="#7f7f7f", linestyle="-.", linewidth=1.2,
                       label="restart" if first and k == 0 else None)
    ax_map = axes[0]
    for spell in series.stopped:
        ax_map.annotate(f"stopped: {spell.reason}", xy=(spell.start_h, 1.0),
                        xycoords=("data", "axes fraction"), xytext=(2, -10),
                        textcoords="offset points", fontsize=7, color="#d62728")
