"""Occlusion alarm time and post-occlusion bolus (IEC 60601-2-24 style), in virtual time.

For each rate and syringe the supervisor runs a simulated pump (``SimSyringePump``) at a steady
rate for 10 minutes, then the line is closed downstream. Measured from the pump twin:

- ``time_to_alarm_s``: from closing the line to the occlusion alarm, with the absolute
  threshold alone (``threshold``) and with the rise-rate detector added (``rise-rate``);
- ``bolus_ul``: the volume that reaches the patient in the 10 minutes after the line is
  opened again (60 s after the alarm), with and without backing the plunger off.

    python bench/occlusion.py           # a table
    python bench/occlusion.py --json    # one JSON object per line
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass

from drivers.sim.syringe_pump import SimLineSignals, SimSyringePump
from safety.supervisor import Supervisor
from vasopilot.core.clock import VirtualClock
from vasopilot.core.config import (
    NOREPINEPHRINE,
    MechanicsSettings,
    PatientSettings,
    SafetySettings,
    SyringeCatalogue,
    SyringeSpec,
)
from vasopilot.core.events import Event
from vasopilot.core.interfaces import Pump
from vasopilot.core.types import Beat, PumpCapabilities, PumpStatus
from vasopilot.core.units import UL_PER_ML, dose_from_rate_ml_h

RATES_ML_H = (1.0, 5.0, 20.0)
SYRINGES = ("bd-plastipak-50", "bd-plastipak-10")
SETTLE_S = 600.0
TICK_S = 0.5
GIVE_UP_S = 3600.0
CLEAR_AFTER_S = 60.0
BOLUS_WINDOW_S = 600.0


@dataclass(frozen=True)
class OcclusionTrial:
    rate_ml_h: float
    syringe_ml: float
    detector: str
    back_off: bool
    time_to_alarm_s: float | None
    bolus_ul: float | None


class _Discard:
    def append(self, event: Event) -> Event:
        return event

    def flush_pending(self) -> bool:
        return True


class _WithoutBackOff:
    """The same pump, declaring that it cannot back off (the 'no back-off' arm)."""

    def __init__(self, pump: SimSyringePump) -> None:
        self._pump = pump

    @property
    def capabilities(self) -> PumpCapabilities:
        return dataclasses.replace(self._pump.capabilities, can_back_off=False)

    def set_rate(self, rate_ml_h: float) -> PumpStatus:
        return self._pump.set_rate(rate_ml_h)

    def stop(self) -> PumpStatus:
        return self._pump.stop()

    def back_off(self, volume_ul: float) -> PumpStatus:
        raise AssertionError("the supervisor backed off a pump that cannot")

    def status(self) -> PumpStatus:
        return self._pump.status()

    def heartbeat(self) -> None:
        self._pump.heartbeat()

    def close(self) -> None:
        self._pump.close()


def measure(
    rate_ml_h: float, syringe: SyringeSpec, *, rise_rate: bool, back_off: bool
) -> OcclusionTrial:
    clock = VirtualClock()
    sim = SimSyringePump(clock, syringe, MechanicsSettings())
    line = SimLineSignals(sim)
    pump: Pump = sim if back_off else _WithoutBackOff(sim)
    supervisor = Supervisor(
        pump, drug=NOREPINEPHRINE, patient=PatientSettings(), safety=SafetySettings(),
        syringe=syringe, sink=_Discard(), occlusion_rise_rate=rise_rate,
    )

    def step() -> float:
        t_s = clock.advance(TICK_S)
        supervisor.on_beat(Beat(t_s, 110.0, 55.0, 72.0, 80.0), t_s)
        supervisor.on_line_signals(line.read(), t_s)
        supervisor.tick(t_s)
        return t_s

    dose = dose_from_rate_ml_h(rate_ml_h, NOREPINEPHRINE.conc_mcg_ml)
    supervisor.start(dose, clock.now_s(), soft_limit_confirmed=True)
    while clock.now_s() < SETTLE_S:
        step()
    sim.faults.occlude()
    occluded_at_s = clock.now_s()
    alarm_s: float | None = None
    while clock.now_s() < occluded_at_s + GIVE_UP_S:
        t_s = step()
        if not supervisor.view(t_s).running:
            alarm_s = t_s - occluded_at_s
            break
    detector = "rise-rate" if rise_rate else "threshold"
    if alarm_s is None:
        return OcclusionTrial(rate_ml_h, syringe.volume_ml, detector, back_off, None, None)
    clock.advance(CLEAR_AFTER_S)
    before_ml = sim.outflow_volume_ml
    sim.faults.clear_occlusion()
    clock.advance(BOLUS_WINDOW_S)
    bolus_ul = (sim.outflow_volume_ml - before_ml) * UL_PER_ML
    return OcclusionTrial(rate_ml_h, syringe.volume_ml, detector, back_off, alarm_s, bolus_ul)


def trials() -> list[OcclusionTrial]:
    catalogue = SyringeCatalogue().syringes
    return [
        measure(rate, catalogue[name], rise_rate=rise_rate, back_off=back_off)
        for name in SYRINGES
        for rate in RATES_ML_H
        for rise_rate in (False, True)
        for back_off in (False, True)
    ]


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args()
    results = trials()
    if args.json:
        for trial in results:
            print(json.dumps(dataclasses.asdict(trial)))
        return 0
    print(f"{'rate mL/h':>9} {'syringe mL':>10} {'detector':>9} {'back-off':>8} "
          f"{'alarm s':>8} {'bolus µL':>9}")
    for t in results:
        print(f"{t.rate_ml_h:>9.1f} {t.syringe_ml:>10.0f} {t.detector:>9} "
              f"{'yes' if t.back_off else 'no':>8} {_fmt(t.time_to_alarm_s, '8.1f'):>8} "
              f"{_fmt(t.bolus_ul, '9.1f'):>9}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
