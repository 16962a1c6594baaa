"""What vasopilot says on MQTT: one pydantic model per topic, each with a schema version.

Topics live under ``vasopilot/v1/<rig_id>/``: ``status`` (retained ``online``; ``offline`` is
the last will), ``state`` (retained :class:`StatePayload`), ``alarms`` (retained
:class:`AlarmsPayload`), ``events`` (:class:`EventPayload`, QoS 1, in journal order), ``beats``
(:class:`BeatPayload`, optional), ``cmd/<username>`` (:class:`Command`, only if remote commands
are on) and ``reply/<username>`` (:class:`CommandReply`). The username level of a command topic
is the sender: the broker's ACL lets each account write only under its own name (S15).
``vasopilot schema`` prints the JSON Schemas.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from vasopilot.core.events import Event
from vasopilot.core.types import Priority, VolumeAnswer

PAYLOAD_SCHEMA_VERSION = 1
TOPIC_ROOT = "vasopilot/v1"
# Rig ids, client ids and the username level of command topics: never "/", "+" or "#" (a
# Mosquitto ACL denies such client ids since CVE-2017-7650, and a topic level must stay one).
NAME_PATTERN = r"^[a-z0-9-]{1,32}$"
NAME_RE = re.compile(NAME_PATTERN)
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
    # issue 19: a volume check waits for an operator's answer; the line the drug runs in
    volume_check_open: bool = False
    line: Literal["central", "peripheral"] = "central"

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
    """Fields of every remote command: a request id never used before, and when it was issued.

    Strict: a string is not a number and "yes" is not true. There is no sender field: the
    sender is the command topic's last level, which the broker authenticated.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    schema_version: Literal[1] = 1
    request_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")
    issued_at: AwareDatetime

    @field_validator("issued_at")
    @classmethod
    def _utc(cls, value: AwareDatetime) -> AwareDatetime:
        if value.utcoffset() != timedelta(0):
            raise ValueError("issued_at must be UTC (end in Z or +00:00)")
        return value


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
    # the set-point (S6): the floor is 5 mmHg below it, within 60-85
    target_map_mmhg: float = Field(ge=65, le=90)
    # a floor more than 40 mmHg (in systolic terms) below the patient's usual SBP
    confirm_below_usual: bool = False


class StartWeaning(_CommandBase):
    command: Literal["start_weaning"]


class StopWeaning(_CommandBase):
    command: Literal["stop_weaning"]


class AcknowledgeAlarm(_CommandBase):
    command: Literal["acknowledge"]
    code: str = Field(min_length=1, max_length=64)


class SilenceAlarm(_CommandBase):
    command: Literal["silence"]
    code: str = Field(min_length=1, max_length=64)


class VolumeAssessed(_CommandBase):
    """The answer to the volume check: what was done about volume status (issue 19)."""

    command: Literal["volume_assessed"]
    answer: VolumeAnswer


class Stop(_CommandBase):
    command: Literal["stop"]
    reason: str = Field(default="", max_length=200)


Command = Annotated[
    SetDose | SetTarget | StartWeaning | StopWeaning | AcknowledgeAlarm | SilenceAlarm | Stop
    | VolumeAssessed,
    Field(discriminator="command"),
]
COMMAND_ADAPTER: TypeAdapter[Command] = TypeAdapter(Command)


class CommandReply(Payload):
    """The answer to one command: accepted, or the reason it was refused (S15).

    ``code`` is a :class:`~vasopilot.core.types.CommandRefusal` for refusals made by the
    command gate, or the supervisor's own code (``HARD_MAX``, ``SOFT_LIMIT``…) when it decided.
    """

    rig_id: str
    request_id: str | None
    command: str | None
    accepted: bool
    reason: str
    code: str | None = None
    dose_mcg_min: float | None = None


def topic(rig_id: str, leaf: str) -> str:
    """``vasopilot/v1/<rig_id>/<leaf>``; ``leaf`` may have levels (``cmd/alice``)."""
    return f"{TOPIC_ROOT}/{rig_id}/{leaf}"


def schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema of every payload, by topic leaf."""
    return {
        "state": StatePayload.model_json_schema(),
        "alarms": AlarmsPayload.model_json_schema(),
        "events": EventPayload.model_json_schema(),
        "beats": BeatPayload.model_json_schema(),
        "cmd": COMMAND_ADAPTER.json_schema(),
        "reply": CommandReply.model_json_schema(),
    }
