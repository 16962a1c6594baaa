"""Gravimetric flow accuracy: the IEC 60601-2-24 style start-up and trumpet curves (pure).

docs/bench-method.md has the method. From balance samples (time in s, mass in g), taken every
Δt = 30 s for two hours:

* flow per interval from the actual sample times: Q_i = 3600·(W_i − W_{i−1}) / ((t_i −
  t_{i−1})·d) in mL/h, d the fluid density in g/mL; a sample more than 1 s later than Δt
  after its predecessor is flagged late;
* the start-up curve is Q_i over the whole run, and the start-up time the end of the first
  interval whose flow reaches 90 % of the set rate r;
* over the analysis hour (the second hour), A = 100·(Q̄ − r)/r with Q̄ from the hour's first
  and last weights, and for each observation window P (2, 5, 11, 19, 31 min, m = P/Δt
  intervals) the window errors E_j(P) = (100/m)·Σ_{i=j}^{j+m−1} (Q_i − r)/r, whose maximum and
  minimum are the trumpet points Ep(max), Ep(min).

Nothing here reads a clock or a file; :mod:`vasopilot.gravimetric` takes the samples.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from vasopilot.core.errors import VasopilotError

SAMPLE_INTERVAL_S = 30.0
LATE_AFTER_S = 1.0
WINDOWS_MIN = (2, 5, 11, 19, 31)
ANALYSIS_START_S = 3600.0
ANALYSIS_LENGTH_S = 3600.0
STARTUP_FRACTION = 0.9
WATER_DENSITY_G_ML = 0.998
SECONDS_PER_HOUR = 3600.0


class AccuracyError(VasopilotError, ValueError):
    """The samples cannot give the curves (too short, out of order, unreadable)."""


@dataclass(frozen=True)
class MassSample:
    """One balance reading: ``t_s`` on the run's clock, ``mass_g`` as read."""

    t_s: float
    mass_g: float


@dataclass(frozen=True)
class IntervalFlow:
    """The flow over one sampling interval, ending at ``t_end_s`` (s from the first sample)."""

    t_start_s: float
    t_end_s: float
    flow_ml_h: float
    late: bool


@dataclass(frozen=True)
class TrumpetPoint:
    window_min: int
    windows: int
    ep_max_pct: float
    ep_min_pct: float


@dataclass(frozen=True)
class AccuracyResult:
    rate_ml_h: float
    flows: tuple[IntervalFlow, ...]
    startup_90_s: float | None
    mean_error_pct: float
    trumpet: tuple[TrumpetPoint, ...]
    late_samples: int
    interval_s: float


def interval_flows(samples: Sequence[MassSample], density_g_ml: float,
                   interval_s: float = SAMPLE_INTERVAL_S,
                   late_after_s: float = LATE_AFTER_S) -> list[IntervalFlow]:
    """Q_i for each pair of neighbouring samples, times from the first sample."""
    if len(samples) < 2:
        raise AccuracyError("at least two samples are needed for a flow")
    t0 = samples[0].t_s
    flows = []
    for before, after in itertools.pairwise(samples):
        dt_s = after.t_s - before.t_s
        if dt_s <= 0:
            raise AccuracyError(f"sample times must increase (t = {after.t_s} s after "
                                f"{before.t_s} s)")
        flow = SECONDS_PER_HOUR * (after.mass_g - before.mass_g) / (dt_s * density_g_ml)
        flows.append(IntervalFlow(before.t_s - t0, after.t_s - t0, flow,
                                  dt_s > interval_s + late_after_s))
    return flows


def startup_time_s(flows: Iterable[IntervalFlow], rate_ml_h: float,
                   fraction: float = STARTUP_FRACTION) -> float | None:
    """The end of the first interval whose flow reaches ``fraction`` of the set rate."""
    for flow in flows:
        if flow.flow_ml_h >= fraction * rate_ml_h:
            return flow.t_end_s
    return None


def analysis_samples(samples: Sequence[MassSample], interval_s: float = SAMPLE_INTERVAL_S,
                     start_s: float = ANALYSIS_START_S,
                     length_s: float = ANALYSIS_LENGTH_S) -> list[MassSample]:
    """The samples of the analysis period (the second hour by default), by their times: from
    the sample nearest ``start_s`` to the one nearest ``start_s + length_s``."""
    t0 = samples[0].t_s
    half = interval_s / 2.0
    chosen = [s for s in samples if start_s - half <= s.t_s - t0 < start_s + length_s + half]
    if not chosen or samples[-1].t_s - t0 < start_s + length_s - half:
        hours = (start_s + length_s) / SECONDS_PER_HOUR
        raise AccuracyError(
            f"the samples cover {(samples[-1].t_s - t0) / 60:.1f} min; the trumpet curve needs "
            f"{hours:g} h")
    return chosen


def trumpet(flows: Sequence[float], rate_ml_h: float, interval_s: float = SAMPLE_INTERVAL_S,
            windows_min: Sequence[int] = WINDOWS_MIN) -> list[TrumpetPoint]:
    """Ep(max) and Ep(min) per observation window over the analysis period's flows."""
    errors = [(q - rate_ml_h) / rate_ml_h for q in flows]
    points = []
    for window_min in windows_min:
        m = round(window_min * 60.0 / interval_s)
        if m > len(errors):
            raise AccuracyError(f"a {window_min}-min window needs {m} intervals; the analysis "
                                f"period has {len(errors)}")
        sums = [sum(errors[j:j + m]) for j in range(len(errors) - m + 1)]
        points.append(TrumpetPoint(window_min, len(sums), 100.0 * max(sums) / m,
                                   100.0 * min(sums) / m))
    return points


def analyse(samples: Sequence[MassSample], rate_ml_h: float, *,
            density_g_ml: float = WATER_DENSITY_G_ML, interval_s: float = SAMPLE_INTERVAL_S,
            analysis_start_s: float = ANALYSIS_START_S) -> AccuracyResult:
    """Start-up and trumpet curves of a run at the set rate ``rate_ml_h``."""
    if rate_ml_h <= 0:
        raise AccuracyError(f"the set rate must be positive, got {rate_ml_h} mL/h")
    if density_g_ml <= 0:
        raise AccuracyError(f"the density must be positive, got {density_g_ml} g/mL")
    flows = interval_flows(samples, density_g_ml, interval_s)
    hour = analysis_samples(samples, interval_s, analysis_start_s)
    hour_flows = [q.flow_ml_h for q in interval_flows(hour, density_g_ml, interval_s)]
    elapsed_s = hour[-1].t_s - hour[0].t_s
    mean_flow = SECONDS_PER_HOUR * (hour[-1].mass_g - hour[0].mass_g) / (elapsed_s * density_g_ml)
    return AccuracyResult(
        rate_ml_h=rate_ml_h,
        flows=tuple(flows),
        startup_90_s=startup_time_s(flows, rate_ml_h),
        mean_error_pct=100.0 * (mean_flow - rate_ml_h) / rate_ml_h,
        trumpet=tuple(trumpet(hour_flows, rate_ml_h, interval_s)),
        late_samples=sum(q.late for q in flows),
        interval_s=interval_s,
    )


class TrumpetJson(BaseModel):
    model_config = ConfigDict(extra="forbid")

    window_min: int
    ep_max_pct: float
    ep_min_pct: float


class AccuracySummary(BaseModel):
    """The ``vasopilot accuracy --json`` contract: exactly these keys."""

    model_config = ConfigDict(extra="forbid")

    rate_ml_h: float
    mean_error_pct: float
    startup_90_s: float | None
    late_samples: int
    trumpet: list[TrumpetJson]


def summary(result: AccuracyResult) -> AccuracySummary:
    return AccuracySummary(
        rate_ml_h=result.rate_ml_h,
        mean_error_pct=round(result.mean_error_pct, 4),
        startup_90_s=result.startup_90_s,
        late_samples=result.late_samples,
        trumpet=[TrumpetJson(window_min=p.window_min, ep_max_pct=round(p.ep_max_pct, 4),
                             ep_min_pct=round(p.ep_min_pct, 4)) for p in result.trumpet],
    )


CSV_HEADER = ("t_s", "mass_g")


def read_csv(text: str, source: str) -> list[MassSample]:
    """Samples from a balance log: a header line naming ``t_s`` and ``mass_g`` (other columns
    are ignored), then one sample per line."""
    reader = csv.DictReader(io.StringIO(text))
    fields = reader.fieldnames or []
    missing = [c for c in CSV_HEADER if c not in fields]
    if missing:
        raise AccuracyError(f"{source}: the header line must name t_s and mass_g "
                            f"(found {', '.join(fields) or 'nothing'})")
    samples = []
    for row in reader:
        try:
            samples.append(MassSample(float(row["t_s"]), float(row["mass_g"])))
        except (TypeError, ValueError):
            raise AccuracyError(f"{source}: line {reader.line_num}: t_s and mass_g must be "
                                f"numbers (got {row['t_s']!r}, {row['mass_g']!r})") from None
    return samples
