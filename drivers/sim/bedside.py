"""The simulated bedside: a virtual patient connected to a pump twin's line, read like a monitor.

The line may be a pump twin's (its read-only readings) or a real bench pump's read-back
delivered volume: then a real pump drives a virtual patient (hardware in the loop).
:class:`SimBedside` satisfies :class:`~vasopilot.core.interfaces.BeatSource`: each read moves the
patient to the clock's time, fed with exactly the volume that left the pump's line since the
previous read, and returns the beats the monitor measured meanwhile. The same object serves a
virtual-clock simulation and a real-time simulated rig.
"""

from __future__ import annotations

from typing import Protocol

from drivers.sim.patient import VirtualPatient
from vasopilot.core.clock import Clock
from vasopilot.core.types import Beat
from vasopilot.core.units import MINUTES_PER_HOUR, SECONDS_PER_MIN


class Outflow(Protocol):
    """Cumulative volume that has left the line into the patient, in mL."""

    @property
    def outflow_volume_ml(self) -> float: ...


class SimBedside:
    def __init__(
        self, patient: VirtualPatient, pump: Outflow, clock: Clock, conc_mcg_ml: float
    ) -> None:
        self.patient = patient
        self._pump = pump
        self._clock = clock
        self._conc_mcg_ml = conc_mcg_ml
        self._t_s = clock.now_s()
        self._outflow_ml = pump.outflow_volume_ml

    def advance(self) -> None:
        """Bring the patient up to the clock's time."""
        now_s = self._clock.now_s()
        if now_s <= self._t_s:
            return
        outflow_ml = self._pump.outflow_volume_ml
        seconds_per_hour = SECONDS_PER_MIN * MINUTES_PER_HOUR
        mean_ml_h = (outflow_ml - self._outflow_ml) * seconds_per_hour / (now_s - self._t_s)
        self.patient.step(now_s, mean_ml_h, self._conc_mcg_ml)
        self._t_s, self._outflow_ml = now_s, outflow_ml

    def read_beats(self) -> list[Beat]:
        self.advance()
        return self.patient.read_beats()
