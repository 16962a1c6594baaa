"""A small simulated rig for telemetry tests: physics pump, steady beats, manual mode."""

from __future__ import annotations

from pathlib import Path

from drivers.sim.syringe_pump import SimLineSignals, SimSyringePump
from safety.supervisor import Supervisor
from vasopilot.control.manual import ManualMode
from vasopilot.core.clock import VirtualClock
from vasopilot.core.types import Beat
from vasopilot.journal import Journal
from vasopilot.runtime import RigLoop
from vasopilot.settings import load_rig


class SteadyBeats:
    """One good beat per read at MAP 70 mmHg: telemetry tests need data, not physiology."""

    def __init__(self, clock: VirtualClock) -> None:
        self._clock = clock

    def read_beats(self) -> list[Beat]:
        return [Beat(t_s=self._clock.now_s(), sbp_mmhg=100.0, dbp_mmhg=55.0, map_mmhg=70.0,
                     hr_bpm=80.0)]


class TestRig:
    """A simulated rig (physics pump, virtual patient, manual mode) journaling to ``path``."""

    __test__ = False

    def __init__(self, path: Path) -> None:
        self.clock = VirtualClock()
        config = load_rig(None)
        self.journal = Journal(path, self.clock, flush_interval_s=1.0)
        self.pump = SimSyringePump(self.clock, config.syringe, config.profile.pump.mechanics)
        self.beats = SteadyBeats(self.clock)
        self.supervisor = Supervisor(
            self.pump, drug=config.drug, patient=config.profile.patient,
            safety=config.profile.safety, syringe=config.syringe, sink=self.journal)
        self.loop = RigLoop(self.supervisor, self.beats, ManualMode(), self.journal,
                            line=SimLineSignals(self.pump))
        self.supervisor.start(10.0, 0.0, soft_limit_confirmed=True)

    def step(self, dt_s: float = 0.5) -> None:
        now_s = self.clock.advance(dt_s)
        self.pump.advance()
        self.loop.step(now_s)

    def close(self) -> None:
        self.journal.close()
