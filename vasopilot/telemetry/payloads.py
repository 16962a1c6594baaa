"""What vasopilot says on MQTT: one pydantic model per topic, each with a schema version.

Topics live under ``vasopilot/<rig_id>/``: ``status`` (retained ``online``; ``offline`` is the
last will), ``state`` (retained :class:`StatePayload`), ``alarms`` (retained
:class:`AlarmsPayload`), ``events`` (:class:`EventPayload`, QoS 1, in journal order), ``beats``
(:class:`BeatPayload`, optional), ``cmd`` (:class:`Command`, only if remote commands are on) and
``cmd/reply`` (:class:`CommandReply`). ``vasopilot schema`` prints their JSON Schemas.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from vasopilot.core.events import Event
from vasopilot.core.types import Priority

PAYLOAD_SCHEMA_VERSION = 1
TOPIC_ROOT = "vasopilot"
ONLINE = "online"
OFFLINE = "offline"
# A command is a few hundred bytes; anything much larger is an attack or a mistake.
MAX_COMMAND_BYTES = 2048


class Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = PAYLOAD_SCHEMA_VERSION


class Vitals(BaseModel):
    """The last arterial-pressure reading: pressures in mmHg, heart rate per minute."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    t_s: float
    map_mmhg: float | None
    sbp_mmhg: float | None = None
    dbp_mmhg: float | None = None
    hr_bpm: float | None = None
    quality: str


class AlarmState(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str
    priority: Priority
    message: str
    acknowledged: bool = False
    silenced: bool = False


class StatePayload(Payload):
    """The rig at one instant (retained). ``t_s`` is the rig clock, ``wall`` a label only."""

    rig_id: str
    t_s: float
    wall: str
    mode: str
    running: bool
    weaning: bool
    stop_reason: str | None
    dose_mcg_min: float
    dose_mcg_kg_min: float | None
    rate_ml_h: float
    volume_infused_ml: float | None
    syringe_remaining_ml: float | None
    time_left_min: float | None
    map_trusted: bool
    vitals: Vitals | None
    target_map_mmhg: float
    lower_limit_mmhg: float
    alarms: tuple[AlarmState, ...]
    remote_commands: bool
    last_seq: int

    def changed_from(self, other: StatePayload | None) -> bool:
        """Whether anything an observer acts on differs (time and the vitals aside)."""
        if other is None:
            return True
        ignore = {"t_s", "wall", "vitals", "time_left_min", "volume_infused_ml",
                  "syringe_remaining_ml", "last_seq"}
        return self.model_dump(exclude=ignore) != other.model_dump(exclude=ignore)


class AlarmsPayload(Payload):
    rig_id: str
    t_s: float
    alarms: tuple[AlarmState, ...]


class EventPayload(Payload):
    """One journal event; ``seq`` is its journal sequence number (dedupe and order by it)."""

    rig_id: str
    seq: int
    event: Event


class BeatPayload(Payload):
    rig_id: str
    t_s: float
    map_mmhg: float
    sbp_mmhg: float
    dbp_mmhg: float
    hr_bpm: float
    quality: str


class _CommandBase(BaseModel):
    """Fields of every remote command: a request id never seen before, and who sends it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = 1
    request_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")
    sender: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._@:-]+$")


class SetDose(_CommandBase):
    """A new dose in mcg/min; the supervisor applies its limits and slew as for any request."""

    command: Literal["set_dose"]
    dose_mcg_min: float = Field(ge=0, le=1000)
    confirm_soft_limit: bool = False

    @field_validator("dose_mcg_min")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("dose must be a finite number")
        return value


class SetTarget(_CommandBase):
    command: Literal["set_target"]
    target_map_mmhg: float = Field(ge=60, le=85)


class StartWeaning(_CommandBase):
    command: Literal["start_weaning"]


class AcknowledgeAlarm(_CommandBase):
    command: Literal["acknowledge"]
    code: str = Field(min_length=1, max_length=64)


class Stop(_CommandBase):
    command: Literal["stop"]
    reason: str = Field(default="", max_length=200)


Command = Annotated[
    SetDose | SetTarget | StartWeaning | AcknowledgeAlarm | Stop,
    Field(discriminator="command"),
]
COMMAND_ADAPTER: TypeAdapter[Command] = TypeAdapter(Command)


class CommandReply(Payload):
    """The answer to one command: accepted, or the reason it was refused (S15)."""

    rig_id: str
    request_id: str | None
    command: str | None
    accepted: bool
    reason: str
    code: str | None = None
    dose_mcg_min: float | None = None


def topic(rig_id: str, leaf: str) -> str:
    return f"{TOPIC_ROOT}/{rig_id}/{leaf}"


def schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema of every payload, by topic leaf."""
    return {
        "state": StatePayload.model_json_schema(),
        "alarms": AlarmsPayload.model_json_schema(),
        "events": EventPayload.model_json_schema(),
        "beats": BeatPayload.model_json_schema(),
        "cmd": COMMAND_ADAPTER.json_schema(),
        "cmd/reply": CommandReply.model_json_schema(),
    }
