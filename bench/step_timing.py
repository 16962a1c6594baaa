"""Real-time step timing of GpioStepperPump's step thread on this machine.

For each rate the pump runs on the monotonic clock for a while and every step is logged with
when it was due and when its STEP pulse went out. Printed per rate:

- step interval jitter: issued interval minus the ideal 1/f, |µs| (median, p99, max);
- lateness: issued minus due, µs (median, p99, max);
- volume error over sliding windows: steps issued in the window times the volume of a
  microstep, minus rate × window length, worst case in µL and in microsteps.

Pins are gpiozero ``MockFactory`` pins unless ``--lgpio`` is given (on a Pi), so off a Pi this
measures the thread's scheduling in Python, not the electrical edges.

    python bench/step_timing.py            # 2-minute windows, about 10 minutes
    python bench/step_timing.py --quick    # 10-second windows, about 1.5 minutes
    python bench/step_timing.py --gil-load # with a busy pure-Python thread in the process

``--gil-load`` stands in for the rest of the runtime (asyncio loop, beat detection) sharing the
interpreter: the step thread then waits for the GIL as well as for the kernel.
"""

from __future__ import annotations

import argparse
import platform
import sys
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
from gpiozero.pins.mock import MockFactory

from drivers.pump.gpio_stepper import GpioStepperPump, StepRecord, real_pin_factory
from vasopilot.core.clock import MonotonicClock
from vasopilot.core.config import MechanicsSettings, SyringeSpec
from vasopilot.core.units import UL_PER_ML

RATES_ML_H = (1.0, 5.0, 20.0, 60.0)
SYRINGE = SyringeSpec(
    name="bd-plastipak-50", volume_ml=50, inner_diameter_mm=26.7, compliance_ul_per_mmhg=1.0
)
SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True)
class RateResult:
    rate_ml_h: float
    steps: int
    jitter_us: tuple[float, float, float]
    late_us: tuple[float, float, float]
    worst_window_ul: float
    worst_window_steps: float
    windows: int


def _median_p99_max(values: np.ndarray[Any, np.dtype[np.float64]]) -> tuple[float, float, float]:
    return (
        float(np.median(values)),
        float(np.percentile(values, 99)),
        float(np.max(values)),
    )


def measure(rate_ml_h: float, window_s: float, offsets: int, pin_factory: Any) -> RateResult:
    """Run one rate long enough for ``offsets`` windows of ``window_s`` started 1 s apart."""
    clock = MonotonicClock()
    records: list[StepRecord] = []
    with GpioStepperPump(
        clock, SYRINGE, MechanicsSettings(), step_pin=17, dir_pin=27, enable_pin=22,
        pin_factory=pin_factory, on_step=records.append,
    ) as pump:
        start_s = pump.set_rate(rate_ml_h).t_s
        run_s = window_s + offsets
        clock.sleep(run_s + 0.5)
        pump.stop()
        ul_per_step = pump.ul_per_step
    issued = np.array([r.issued_s for r in records])
    due = np.array([r.due_s for r in records])
    ideal_interval_s = ul_per_step * SECONDS_PER_HOUR / (rate_ml_h * UL_PER_ML)
    jitter_s = np.abs(np.diff(issued) - ideal_interval_s)
    late_s = issued - due

    window_ul = rate_ml_h * UL_PER_ML / SECONDS_PER_HOUR * window_s
    errors_ul = []
    for k in range(offsets):
        a = start_s + k
        n = int(np.count_nonzero((issued >= a) & (issued < a + window_s)))
        errors_ul.append(n * ul_per_step - window_ul)
    worst_ul = max(errors_ul, key=abs)
    return RateResult(
        rate_ml_h=rate_ml_h,
        steps=len(records),
        jitter_us=_median_p99_max(jitter_s * 1e6),
        late_us=_median_p99_max(late_s * 1e6),
        worst_window_ul=worst_ul,
        worst_window_steps=worst_ul / ul_per_step,
        windows=len(errors_ul),
    )


def _burn_gil(stop: threading.Event) -> None:
    """Pure-Python work that holds the GIL until the interpreter's switch interval forces it off."""
    while not stop.is_set():
        sum(i * i for i in range(10_000))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 s windows instead of 2 min")
    parser.add_argument("--lgpio", action="store_true", help="real pins (on a Pi)")
    parser.add_argument("--gil-load", action="store_true", help="a busy Python thread alongside")
    parser.add_argument("--switch-interval-ms", type=float, default=None,
                        help="interpreter thread switch interval (default 5 ms)")
    args = parser.parse_args()
    if args.switch_interval_ms is not None:
        sys.setswitchinterval(args.switch_interval_ms / 1000.0)
    stop_load = threading.Event()
    if args.gil_load:
        threading.Thread(target=_burn_gil, args=(stop_load,), daemon=True).start()
    window_s, offsets = (10.0, 10) if args.quick else (120.0, 30)

    print(f"# step timing on {platform.node()} ({platform.machine()}, Python "
          f"{platform.python_version()}), pins: {'real' if args.lgpio else 'MockFactory'}"
          f"{', busy Python thread alongside' if args.gil_load else ''}"
          f", switch interval {sys.getswitchinterval() * 1e3:g} ms")
    print(f"# {window_s:.0f} s windows, {offsets} window starts 1 s apart per rate")
    print("| mL/h | steps | interval jitter µs (median/p99/max) | late µs (median/p99/max) "
          "| worst window error µL (microsteps) |")
    print("|---|---|---|---|---|")
    for rate_ml_h in RATES_ML_H:
        factory = real_pin_factory() if args.lgpio else MockFactory()
        r = measure(rate_ml_h, window_s, offsets, factory)
        jitter = "/".join(f"{v:.0f}" for v in r.jitter_us)
        late = "/".join(f"{v:.0f}" for v in r.late_us)
        print(f"| {r.rate_ml_h:g} | {r.steps} | {jitter} | {late} | "
              f"{r.worst_window_ul:+.3f} ({r.worst_window_steps:+.2f}) over {r.windows} |")
        factory.close()
    stop_load.set()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
