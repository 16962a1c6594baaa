"""Shared fixtures for the safety tests: a recording ``MockPump`` and a supervisor factory.

``MockPump`` records every command with its argument and answers like an ideal pump; its fault
levers (pressure, stall, empty, lost acknowledgement, host timeout) are plain attributes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from safety.supervisor import Supervisor
from vasopilot.core.config import (
    NOREPINEPHRINE,
    DrugEntry,
    PatientSettings,
    SafetySettings,
    SyringeCatalogue,
    SyringeSpec,
)
from vasopilot.core.errors import PumpConnectionError, UncertainDeliveryError
from vasopilot.core.events import Event
from vasopilot.core.types import (
    Beat,
    HostLossBehaviour,
    PumpCapabilities,
    PumpState,
    PumpStatus,
)

SYRINGE_50: SyringeSpec = SyringeCatalogue().syringes["bd-plastipak-50"]


@dataclass
class MockPump:
    """An ideal pump that records calls: ``calls`` holds (name, argument) in order."""

    remaining_ml: float = 50.0
    line_pressure_mmhg: float | None = 10.0
    stalled: bool = False
    alarm: str | None = None
    drop_ack_next: bool = False
    disconnected: bool = False
    uncertain: bool = False
    calls: list[tuple[str, float | None]] = field(default_factory=list)
    rate_ml_h: float = 0.0
    state: PumpState = PumpState.STOPPED
    t_s: float = 0.0

    @property
    def capabilities(self) -> PumpCapabilities:
        return PumpCapabilities(
            min_rate_ml_h=0.01, max_rate_ml_h=150.0, resolution_ml_h=0.001,
            syringe_volume_ml=50.0, host_loss=HostLossBehaviour.KEEPS_RATE,
        )

    def _answer(self) -> PumpStatus:
        if self.drop_ack_next:
            self.drop_ack_next = False
            raise UncertainDeliveryError("reply lost")
        return self.status()

    def _link(self) -> None:
        if self.disconnected:
            raise PumpConnectionError("no reply")

    def set_rate(self, rate_ml_h: float) -> PumpStatus:
        self.calls.append(("set_rate", rate_ml_h))
        self._link()
        self.rate_ml_h = rate_ml_h
        self.state = PumpState.INFUSING if rate_ml_h > 0 else PumpState.STOPPED
        return self._answer()

    def stop(self) -> PumpStatus:
        self.calls.append(("stop", None))
        self._link()
        self.rate_ml_h = 0.0
        self.state = PumpState.STOPPED
        self.alarm = None
        return self._answer()

    def back_off(self, volume_ul: float) -> PumpStatus:
        self.calls.append(("back_off", volume_ul))
        self._link()
        return self.status()

    def status(self) -> PumpStatus:
        self._link()
        return PumpStatus(
            t_s=self.t_s, state=self.state, rate_ml_h=self.rate_ml_h, delivered_ml=0.0,
            syringe_remaining_ml=self.remaining_ml, line_pressure_mmhg=self.line_pressure_mmhg,
            stalled=self.stalled, end_of_travel=self.remaining_ml <= 0, alarm=self.alarm,
            delivery_uncertain=self.uncertain,
        )

    def heartbeat(self) -> None:
        self.calls.append(("heartbeat", None))
        self._link()

    def close(self) -> None:
        self.calls.append(("close", None))

    def commands(self) -> list[tuple[str, float | None]]:
        """Calls that change delivery (heartbeats left out)."""
        return [c for c in self.calls if c[0] in ("set_rate", "stop", "back_off")]


class ListSink:
    """A recording event sink; ``kinds()`` lists what was journaled.

    With a ``pump`` it also notes how many delivery commands that pump had received when each
    event arrived, so tests can prove an event was journaled before the pump acted (S14).
    """

    def __init__(self, pump: MockPump | None = None) -> None:
        self.events: list[Event] = []
        self.calls_when_appended: list[int] = []
        self._pump = pump

    def append(self, event: Event) -> Event:
        self.events.append(event)
        self.calls_when_appended.append(len(self._pump.commands()) if self._pump else 0)
        return event

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]


def make_supervisor(
    pump: MockPump | None = None,
    *,
    drug: DrugEntry = NOREPINEPHRINE,
    patient: PatientSettings | None = None,
    safety: SafetySettings | None = None,
    standby: MockPump | None = None,
) -> tuple[Supervisor, MockPump, ListSink]:
    pump = pump or MockPump()
    sink = ListSink(pump)
    supervisor = Supervisor(
        pump, drug=drug, patient=patient or PatientSettings(), safety=safety or SafetySettings(),
        syringe=SYRINGE_50, sink=sink, standby=standby,
    )
    return supervisor, pump, sink


def beat(t_s: float, map_mmhg: float = 70.0, quality: str = "good") -> Beat:
    return Beat(t_s=t_s, sbp_mmhg=map_mmhg + 40, dbp_mmhg=map_mmhg - 15, map_mmhg=map_mmhg,
                hr_bpm=80.0, quality=quality)


def feed(supervisor: Supervisor, t0_s: float, t1_s: float, *, map_mmhg: float = 70.0,
         quality: str = "good", pump: MockPump | None = None) -> float:
    """One beat and one tick per second from ``t0_s`` (exclusive) to ``t1_s``; returns t1_s."""
    t_s = t0_s
    while t_s < t1_s:
        t_s += 1.0
        if pump is not None:
            pump.t_s = t_s
        supervisor.on_beat(beat(t_s, map_mmhg, quality), t_s)
        supervisor.tick(t_s)
    return t_s
