"""A typed fault plan for ``vasopilot sim``: what goes wrong on the simulated rig, and when.

Pump and line faults pull the pump twin's levers at their time; line artefacts go into the
virtual patient's artefact schedule, which is also the ground truth the metrics use.
Written on the command line as ``KIND@SECONDS`` or ``KIND@SECONDS+DURATION``.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from drivers.sim.artefacts import ArtefactKind
from drivers.sim.patient import VirtualPatient
from drivers.sim.syringe_pump import PumpFaults, SimLineSignals

LINE_FAULTS = ("occlusion", "infiltration", "stall", "extravasation-sensor")
FAULT_KINDS = LINE_FAULTS + tuple(kind.value for kind in ArtefactKind)


class SimFault(BaseModel):
    """``kind`` at ``at_s`` seconds from the start; ``duration_s`` for artefacts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str
    at_s: float = Field(ge=0)
    duration_s: float = Field(default=60.0, gt=0)

    @field_validator("kind")
    @classmethod
    def _known(cls, kind: str) -> str:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; known: {', '.join(FAULT_KINDS)}")
        return kind


def parse_fault(spec: str) -> SimFault:
    """``occlusion@1800`` or ``flush@600+2`` (kind @ seconds [+ seconds of duration])."""
    kind, _, when = spec.partition("@")
    at, _, duration = when.partition("+")
    try:
        fields: dict[str, object] = {"kind": kind.strip(), "at_s": float(at)}
        if duration:
            fields["duration_s"] = float(duration)
        return SimFault.model_validate(fields)
    except ValidationError as exc:
        reason = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
    except ValueError:
        reason = "the time and duration are seconds"
    raise ValueError(f"bad fault {spec!r} (write KIND@SECONDS[+DURATION]): {reason}")


class FaultPlan:
    def __init__(
        self,
        faults: Sequence[SimFault],
        *,
        pump: PumpFaults,
        line: SimLineSignals,
        patient: VirtualPatient,
    ) -> None:
        self._pump = pump
        self._line = line
        for fault in faults:
            if fault.kind not in LINE_FAULTS:
                patient.inject(fault.kind, fault.at_s, fault.duration_s)
        self._due = sorted((f for f in faults if f.kind in LINE_FAULTS), key=lambda f: f.at_s)

    def apply_due(self, now_s: float) -> None:
        while self._due and self._due[0].at_s <= now_s:
            kind = self._due.pop(0).kind
            if kind == "occlusion":
                self._pump.occlude()
            elif kind == "infiltration":
                self._pump.infiltrate()
            elif kind == "stall":
                self._pump.stall()
            else:
                self._line.trip_extravasation_sensor()
