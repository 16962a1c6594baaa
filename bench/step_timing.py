"""Real-time step timing of GpioStepperPump's step thread on this machine.

For each rate the pump runs on the monotonic clock for a while and every step is logged with
when it was due and when its STEP pulse went out. Printed per rate:

- step interval jitter: issued interval minus the ideal 1/f, |µs| (median, p99, max);
- lateness: issued minus due, µs (median, p99, max);
- volume error over sliding windows: steps issued in the window times the volume of a
  microstep, minus rate × window length, worst case in µL and in microsteps.

Pins are gpiozero ``MockFactory`` pins unless ``--lgpio`` is given (on a Pi), so off a Pi this
measures the thread's scheduling in Python, not the electrical edges.

The same figures follow for the firmware bridge: the Pico's firmware logic in its emulator on a
virtual clock, the PIO's period arithmetic executed exactly (proved cycle by cycle against
rp2040-pio-emulator in tests/test_bridge_pio.py), so they are what the chip does by design, not a
measurement of electrical edges either; they take seconds.

    python bench/step_timing.py            # 2-minute windows, about 10 minutes
    python bench/step_timing.py --quick    # 10-second windows, about 1.5 minutes
    python bench/step_timing.py --gil-load # with a busy pure-Python thread in the process
    python bench/step_timing.py --bridge-only [--json]

``--gil-load`` stands in for the rest of the runtime (asyncio loop, beat detection) sharing the
interpreter: the step thread then waits for the GIL as well as for the kernel.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import threading
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from gpiozero.pins.mock import MockFactory

from drivers.pump.gpio_stepper import GpioStepperPump, StepRecord, real_pin_factory
from drivers.sim.syringe_pump import SimSyringePump
from firmware_bridge import protocol as bp
from firmware_bridge.emulator import BridgeEmulator
from vasopilot.core.clock import MonotonicClock, VirtualClock
from vasopilot.core.config import MechanicsSettings, SyringeSpec
from vasopilot.core.units import UL_PER_ML, volume_per_microstep_ul

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


# The emulator's boot ids come from this seed; nothing measured depends on it.
BRIDGE_SEED = 20261201


@dataclass(frozen=True)
class BridgeResult:
    rate_ml_h: float
    steps: int
    rate_error_ppm: float
    jitter_us: tuple[float, float, float]
    mean_period_error_ns: float
    worst_window_ul: float
    worst_window_steps: float
    windows: int


def measure_bridge(rate_ml_h: float, window_s: float, offsets: int) -> BridgeResult:
    """The emulated bridge at ``rate_ml_h``: every step edge over the same windows as GPIO's."""
    clock = VirtualClock()
    mechanics = MechanicsSettings()
    physics = SimSyringePump(clock, SYRINGE, mechanics)
    emulator = BridgeEmulator(clock, physics, microstep_ul=physics.microstep_ul,
                              seed=BRIDGE_SEED)
    link = bp.HostLink(1)
    for message in (bp.Hello(), bp.SetPolicy(60_000, bp.POLICY_KEEP_RATE, 0)):
        link.feed(emulator.on_bytes(link.send(message)))
    ul_per_step = volume_per_microstep_ul(SYRINGE.inner_diameter_mm, mechanics.lead_mm,
                                          mechanics.steps_per_rev, mechanics.microsteps)
    wanted_hz = rate_ml_h * UL_PER_ML / SECONDS_PER_HOUR / ul_per_step
    rate_q16 = bp.q16_from_hz(wanted_hz)
    edges_us = emulator.record_edges()
    reply = link.feed(emulator.on_bytes(link.send(bp.SetRate(1, bp.INFUSE, rate_q16))))
    assert isinstance(reply, bp.Status) and reply.rate_q16 == rate_q16, reply
    start_s = clock.now_s()
    clock.advance(window_s + offsets + 0.5)
    emulator.steps_now()
    issued_s = np.array(edges_us, dtype=np.float64) / 1e6 + emulator.mcu_origin_s
    ideal_s = 1.0 / bp.hz_from_q16(rate_q16)
    intervals_s = np.diff(issued_s)
    errors_ul = []
    for k in range(offsets):
        a = start_s + k
        n = int(np.count_nonzero((issued_s >= a) & (issued_s < a + window_s)))
        errors_ul.append(n * ul_per_step - rate_ml_h * UL_PER_ML / SECONDS_PER_HOUR * window_s)
    worst_ul = max(errors_ul, key=abs)
    return BridgeResult(
        rate_ml_h=rate_ml_h,
        steps=len(edges_us),
        rate_error_ppm=(bp.hz_from_q16(rate_q16) - wanted_hz) / wanted_hz * 1e6,
        jitter_us=_median_p99_max(np.abs(intervals_s - ideal_s) * 1e6),
        mean_period_error_ns=float(np.mean(intervals_s) - ideal_s) * 1e9,
        worst_window_ul=worst_ul,
        worst_window_steps=worst_ul / ul_per_step,
        windows=len(errors_ul),
    )


def _print_bridge(results: list[BridgeResult], window_s: float, offsets: int) -> None:
    print(f"# firmware bridge, emulated PIO at 1 MHz (seed {BRIDGE_SEED}); {window_s:.0f} s "
          f"windows, {offsets} window starts 1 s apart per rate")
    print("| mL/h | steps | Q16.16 rate error ppm | interval jitter µs (median/p99/max) "
          "| mean period error ns | worst window error µL (microsteps) |")
    print("|---|---|---|---|---|---|")
    for r in results:
        jitter = "/".join(f"{v:.2f}" for v in r.jitter_us)
        print(f"| {r.rate_ml_h:g} | {r.steps} | {r.rate_error_ppm:+.2f} | {jitter} | "
              f"{r.mean_period_error_ns:+.1f} | {r.worst_window_ul:+.3f} "
              f"({r.worst_window_steps:+.2f}) over {r.windows} |")


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
    parser.add_argument("--bridge-only", action="store_true",
                        help="only the emulated firmware bridge (seconds, no real-time runs)")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per rate and driver instead of the tables")
    args = parser.parse_args()
    window_s, offsets = (10.0, 10) if args.quick else (120.0, 30)
    bridge = [measure_bridge(rate, window_s, offsets) for rate in RATES_ML_H]
    if args.bridge_only:
        if args.json:
            for b in bridge:
                print(json.dumps({"driver": "bridge", **asdict(b)}))
        else:
            _print_bridge(bridge, window_s, offsets)
        return 0
    if args.switch_interval_ms is not None:
        sys.setswitchinterval(args.switch_interval_ms / 1000.0)
    stop_load = threading.Event()
    if args.gil_load:
        threading.Thread(target=_burn_gil, args=(stop_load,), daemon=True).start()
    gpio: list[RateResult] = []
    for rate_ml_h in RATES_ML_H:
        factory = real_pin_factory() if args.lgpio else MockFactory()
        gpio.append(measure(rate_ml_h, window_s, offsets, factory))
        factory.close()
    stop_load.set()
    if args.json:
        for g in gpio:
            print(json.dumps({"driver": "gpio", **asdict(g)}))
        for b in bridge:
            print(json.dumps({"driver": "bridge", **asdict(b)}))
        return 0

    print(f"# step timing on {platform.node()} ({platform.machine()}, Python "
          f"{platform.python_version()}), pins: {'real' if args.lgpio else 'MockFactory'}"
          f"{', busy Python thread alongside' if args.gil_load else ''}"
          f", switch interval {sys.getswitchinterval() * 1e3:g} ms")
    print(f"# {window_s:.0f} s windows, {offsets} window starts 1 s apart per rate")
    print("| mL/h | steps | interval jitter µs (median/p99/max) | late µs (median/p99/max) "
          "| worst window error µL (microsteps) |")
    print("|---|---|---|---|---|")
    for r in gpio:
        jitter = "/".join(f"{v:.0f}" for v in r.jitter_us)
        late = "/".join(f"{v:.0f}" for v in r.late_us)
        print(f"| {r.rate_ml_h:g} | {r.steps} | {jitter} | {late} | "
              f"{r.worst_window_ul:+.3f} ({r.worst_window_steps:+.2f}) over {r.windows} |")
    print()
    _print_bridge(bridge, window_s, offsets)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
