"""A simulated rig for the safety tests: pump twins, line, virtual patient and supervisor.

Everything runs on one ``VirtualClock``; :meth:`SimRig.step` is one supervision tick (beats,
line signals, pump status), as the runtime does it.
"""

from __future__ import annotations

from collections.abc import Callable

from safety_fixtures import JournalInvariants, ListSink

from drivers.sim.bedside import SimBedside
from drivers.sim.patient import VirtualPatient, draw_patient
from drivers.sim.syringe_pump import SimLineSignals, SimSyringePump
from safety.supervisor import EventSink, Supervisor
from vasopilot.core.clock import VirtualClock
from vasopilot.core.config import (
    NOREPINEPHRINE,
    MechanicsSettings,
    PatientSettings,
    SafetySettings,
    SyringeCatalogue,
)
from vasopilot.core.types import Beat, HostLossBehaviour

CATALOGUE = SyringeCatalogue().syringes


class PumpOutflows:
    """The outflow of every pump that has fed the line, summed (pumps change at changeover)."""

    def __init__(self, *pumps: SimSyringePump) -> None:
        self.pumps = list(pumps)

    @property
    def outflow_volume_ml(self) -> float:
        return sum(p.outflow_volume_ml for p in self.pumps)


class SimRig:
    def __init__(
        self,
        *,
        seed: int = 1,
        syringe: str = "bd-plastipak-50",
        fill_ml: float | None = None,
        host_loss: HostLossBehaviour = HostLossBehaviour.KEEPS_RATE,
        spare: bool = False,
        sink: EventSink | None = None,
        tick_s: float = 1.0,
        clock: VirtualClock | None = None,
        pump: SimSyringePump | None = None,
        patient: VirtualPatient | None = None,
    ) -> None:
        self.clock = clock or VirtualClock()
        self.syringe = CATALOGUE[syringe]
        self.pump = pump or self.new_pump(fill_ml=fill_ml, host_loss=host_loss)
        self.spare = self.new_pump(fill_ml=fill_ml, host_loss=host_loss) if spare else None
        self.outflows = PumpOutflows(*(p for p in (self.pump, self.spare) if p is not None))
        self.line = SimLineSignals(self.pump)
        self.patient = patient or VirtualPatient(draw_patient(seed), "resuscitate", seed)
        self.bedside = SimBedside(self.patient, self.outflows, self.clock,
                                  NOREPINEPHRINE.conc_mcg_ml)
        self.list_sink = sink if isinstance(sink, ListSink) else ListSink()
        self.settings = PatientSettings()
        self.supervisor = Supervisor(
            self.pump, drug=NOREPINEPHRINE, patient=self.settings, safety=SafetySettings(),
            syringe=self.syringe, sink=sink or self.list_sink, standby=self.spare,
        )
        self.promises = JournalInvariants(self.supervisor.limits,
                                          self.settings.setpoint_mmhg + 10.0)
        self.tick_s = tick_s
        self.beat_filter: Callable[[Beat], Beat | None] = lambda b: b

    def new_pump(
        self, *, fill_ml: float | None = None,
        host_loss: HostLossBehaviour = HostLossBehaviour.KEEPS_RATE,
    ) -> SimSyringePump:
        return SimSyringePump(self.clock, self.syringe, MechanicsSettings(), fill_ml=fill_ml,
                              host_loss=host_loss)

    def change_over_done(self, new_spare: SimSyringePump) -> None:
        """After a changeover the spare runs the line; ``new_spare`` is the next spare."""
        assert self.spare is not None
        self.pump, self.spare = self.spare, new_spare
        self.line = SimLineSignals(self.pump)
        self.outflows.pumps.append(new_spare)

    @property
    def t_s(self) -> float:
        return self.clock.now_s()

    def step(self) -> float:
        t_s = self.clock.advance(self.tick_s)
        for beat in self.bedside.read_beats():
            shown = self.beat_filter(beat)
            if shown is not None:
                self.promises.on_beat(shown)
                self.supervisor.on_beat(shown, t_s)
        self.supervisor.on_line_signals(self.line.read(), t_s)
        self.supervisor.tick(t_s)
        return t_s

    def run(self, seconds: float, until: Callable[[], bool] | None = None) -> float:
        end_s = self.t_s + seconds
        while self.t_s < end_s - 1e-9:
            self.step()
            if until is not None and until():
                break
        return self.t_s

    def check_promises(self) -> None:
        self.promises.check(self.list_sink.events, {a.code for a in self.supervisor.alarms})
