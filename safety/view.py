"""What a supervisor shows to the rest of the rig: a frozen, read-only picture.

Controllers, telemetry and the CLI import this module, never :mod:`safety.supervisor` (an
import contract in ``pyproject.toml``): they read the supervisor and send it requests, and
cannot reach the pump it holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from safety.limits import DoseLimits
from vasopilot.core.events import AlarmCode, StopReason
from vasopilot.core.types import BeatQuality, Priority, PumpStatus


@dataclass(frozen=True)
class AlarmSnapshot:
    code: AlarmCode
    priority: Priority
    message: str
    acknowledged: bool
    silenced: bool


@dataclass(frozen=True)
class SupervisorView:
    """A read-only picture of the supervisor, for controllers, telemetry and the CLI.

    ``journal_ok`` is false while events wait to be made durable (no dose changes then).
    S6's numbers: ``floor_mmhg`` F, ``target_map_mmhg`` the set-point F + 5 (what a controller
    aims at), ``lower_limit_mmhg`` F - 5.
    """

    t_s: float
    running: bool
    dose_mcg_min: float
    rate_ml_h: float
    map_trusted: bool
    last_good_map_mmhg: float | None
    last_good_beat_t_s: float | None
    last_beat_quality: BeatQuality | None
    target_map_mmhg: float
    lower_limit_mmhg: float
    pump: PumpStatus | None
    alarms: tuple[AlarmSnapshot, ...]
    stop_reason: StopReason | None
    needs_operator: bool
    time_left_min: float | None
    limits: DoseLimits
    floor_mmhg: float
    weaning: bool = False
    journal_ok: bool = True
    # issue 19: a volume check waits for an operator's answer; the line the drug runs in
    volume_check_open: bool = False
    line: Literal["central", "peripheral"] = "central"
