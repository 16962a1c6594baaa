"""The start-up and trumpet calculator against hand-computed values (docs/bench-method.md)."""

from __future__ import annotations

import pytest

from vasopilot.accuracy import (
    AccuracyError,
    MassSample,
    analyse,
    interval_flows,
    read_csv,
    startup_time_s,
)

DT_S = 30.0
DENSITY = 0.998


def samples_for(flows_ml_h: list[float], *, dt_s: float = DT_S,
                times_s: list[float] | None = None) -> list[MassSample]:
    """Weights of a run whose i-th interval flows at ``flows_ml_h[i]`` (mL/h)."""
    times = times_s or [i * dt_s for i in range(len(flows_ml_h) + 1)]
    mass = 50.0
    out = [MassSample(times[0], mass)]
    for i, flow in enumerate(flows_ml_h):
        mass += flow * (times[i + 1] - times[i]) / 3600.0 * DENSITY
        out.append(MassSample(times[i + 1], mass))
    return out


TWO_HOURS = 240  # intervals of 30 s


def test_constant_flow_gives_zero_everywhere() -> None:
    result = analyse(samples_for([1.0] * TWO_HOURS), 1.0, density_g_ml=DENSITY)
    assert result.mean_error_pct == pytest.approx(0.0, abs=1e-9)
    for point in result.trumpet:
        assert point.ep_max_pct == pytest.approx(0.0, abs=1e-9)
        assert point.ep_min_pct == pytest.approx(0.0, abs=1e-9)
    assert result.startup_90_s == 30.0
    assert result.late_samples == 0


def test_window_counts_of_a_60_minute_analysis_period() -> None:
    result = analyse(samples_for([5.0] * TWO_HOURS), 5.0, density_g_ml=DENSITY)
    assert [(p.window_min, p.windows) for p in result.trumpet] == \
        [(2, 117), (5, 111), (11, 99), (19, 83), (31, 59)]


def test_a_one_percent_offset_is_plus_one_percent_everywhere() -> None:
    result = analyse(samples_for([1.01] * TWO_HOURS), 1.0, density_g_ml=DENSITY)
    assert result.mean_error_pct == pytest.approx(1.0, abs=1e-9)
    for point in result.trumpet:
        assert point.ep_max_pct == pytest.approx(1.0, abs=1e-9)
        assert point.ep_min_pct == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("amplitude", [0.05, 0.2])
def test_a_square_wave_gives_the_analytic_window_error(amplitude: float) -> None:
    # Flow r(1+a) for 3 intervals, r(1-a) for 3 (a 3-min period). A window of m intervals holds
    # whole periods (summing to 0) plus m mod 6 intervals; for m = 4, 10, 22 (mod 6 = 4) the
    # best such remainder holds 3 high and 1 low, for m = 38, 62 (mod 6 = 2) 2 high: both a
    # net 2 intervals of +a, so Ep = ±100·2a/m. The hour holds 20 whole periods: A = 0.
    r = 2.0
    wave = [r * (1 + amplitude if (i // 3) % 2 == 0 else 1 - amplitude)
            for i in range(TWO_HOURS)]
    result = analyse(samples_for(wave), r, density_g_ml=DENSITY)
    assert result.mean_error_pct == pytest.approx(0.0, abs=1e-9)
    for point, m in zip(result.trumpet, (4, 10, 22, 38, 62), strict=True):
        assert point.ep_max_pct == pytest.approx(100 * 2 * amplitude / m, abs=1e-9)
        assert point.ep_min_pct == pytest.approx(-100 * 2 * amplitude / m, abs=1e-9)


def test_the_trumpet_uses_the_second_hour_only() -> None:
    # nothing flows for the first 50 minutes; the second hour is exact
    flows = [0.0] * 100 + [1.0] * (TWO_HOURS - 100)
    result = analyse(samples_for(flows), 1.0, density_g_ml=DENSITY)
    assert result.mean_error_pct == pytest.approx(0.0, abs=1e-9)
    assert result.startup_90_s == 101 * DT_S


def test_startup_is_the_first_interval_at_ninety_percent() -> None:
    flows = interval_flows(samples_for([0.0, 0.2, 0.89, 0.91, 1.0]), DENSITY)
    assert startup_time_s(flows, 1.0) == 4 * DT_S
    assert startup_time_s(flows[:3], 1.0) is None


def test_flow_comes_from_the_actual_sample_times_and_late_samples_are_flagged() -> None:
    times = [i * DT_S for i in range(TWO_HOURS + 1)]
    times[10] += 1.5   # 1.5 s late: flagged
    times[20] += 0.9   # within a second: not late
    result = analyse(samples_for([1.0] * TWO_HOURS, times_s=times), 1.0, density_g_ml=DENSITY)
    assert result.late_samples == 1
    assert [q.late for q in result.flows].index(True) == 9
    # the mass at a late sample is heavier by its lateness, so the flow stays exact
    assert all(q.flow_ml_h == pytest.approx(1.0, abs=1e-9) for q in result.flows)


def test_two_hours_are_needed_for_the_trumpet() -> None:
    with pytest.raises(AccuracyError, match="needs 2 h"):
        analyse(samples_for([1.0] * 200), 1.0)


def test_sample_times_must_increase() -> None:
    samples = samples_for([1.0] * TWO_HOURS)
    samples[5] = MassSample(samples[4].t_s, samples[5].mass_g)
    with pytest.raises(AccuracyError, match="must increase"):
        analyse(samples, 1.0)


def test_a_balance_log_is_read_by_its_header() -> None:
    text = "mass_g,t_s,comment\n50.0,0,start\n50.1,30.2,\n"
    assert read_csv(text, "log.csv") == [MassSample(0.0, 50.0), MassSample(30.2, 50.1)]


@pytest.mark.parametrize(("text", "message"), [
    ("time,mass\n0,1\n", "must name t_s and mass_g"),
    ("t_s,mass_g\n0,heavy\n", "line 2: t_s and mass_g must be numbers"),
    ("", "must name t_s and mass_g"),
])
def test_a_bad_balance_log_is_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(AccuracyError, match=message):
        read_csv(text, "log.csv")
