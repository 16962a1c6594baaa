"""A typed fault plan for ``vasopilot sim``: what goes wrong on the simulated rig, and when.

Pump and line faults pull the pump twin's levers at their time; line artefacts go into the
virtual patient's artefact schedule, which is also the ground truth the metrics use.
Written on the command line as ``KIND@SECONDS`` or ``KIND@SECONDS+DURATION``; the patient-side
line disturbances carry their size too: ``line-step@T+DUR=MMHG`` (the pressure at the cannula
shifts by MMHG, either sign, from T for DUR seconds) and ``line-ramp@T+DUR=MMHG`` (it moves
linearly by MMHG over DUR seconds, then stays). They act in the pump twin, so they reach the
serial pumps' emulators too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from drivers.sim.artefacts import ArtefactKind
from drivers.sim.patient import VirtualPatient
from drivers.sim.syringe_pump import PumpFaults, SimLineSignals

LINE_DISTURBANCES = ("line-step", "line-ramp")
LINE_FAULTS = ("occlusion", "infiltration", "stall", "extravasation-sensor", *LINE_DISTURBANCES)
FAULT_KINDS = LINE_FAULTS + tuple(kind.value for kind in ArtefactKind)


class SimFault(BaseModel):
    """``kind`` at ``at_s`` seconds from the start; ``duration_s`` for artefacts and line
    disturbances, ``mmhg`` (required) for line disturbances only."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    kind: str
    at_s: float = Field(ge=0)
    duration_s: float = Field(default=60.0, gt=0)
    mmhg: float | None = None

    @field_validator("kind")
    @classmethod
    def _known(cls, kind: str) -> str:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; known: {', '.join(FAULT_KINDS)}")
        return kind

    @model_validator(mode="after")
    def _size_for_disturbances_only(self) -> Self:
        if (self.mmhg is not None) != (self.kind in LINE_DISTURBANCES):
            raise ValueError(f"{', '.join(LINE_DISTURBANCES)} need =MMHG, other faults take none")
        if self.mmhg is not None and not math.isfinite(self.mmhg):
            raise ValueError("the size of a line disturbance is a finite number of mmHg")
        return self


def parse_fault(spec: str) -> SimFault:
    """``occlusion@1800``, ``flush@600+2`` or ``line-step@600+120=-15`` (kind @ seconds
    [+ seconds of duration] [= mmHg])."""
    kind, _, when = spec.partition("@")
    when, _, size = when.partition("=")
    at, _, duration = when.partition("+")
    try:
        fields: dict[str, object] = {"kind": kind.strip(), "at_s": float(at)}
        if duration:
            fields["duration_s"] = float(duration)
        if size:
            fields["mmhg"] = float(size)
        return SimFault.model_validate(fields)
    except ValidationError as exc:
        reason = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
    except ValueError:
        reason = "the time and duration are seconds, the size mmHg"
    raise ValueError(f"bad fault {spec!r} (write KIND@SECONDS[+DURATION][=MMHG]): {reason}")


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
            fault = self._due.pop(0)
            kind = fault.kind
            if fault.mmhg is not None:
                shift = self._pump.ramp_line if kind == "line-ramp" else self._pump.shift_line
                shift(fault.mmhg, fault.duration_s)
            elif kind == "occlusion":
                self._pump.occlude()
            elif kind == "infiltration":
                self._pump.infiltrate()
            elif kind == "stall":
                self._pump.stall()
            else:
                self._line.trip_extravasation_sensor()
