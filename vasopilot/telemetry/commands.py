"""Remote commands (S15): check on the MQTT thread, act on the rig loop's thread.

:class:`CommandGate` turns a raw ``cmd`` message into a :data:`Command` or a refusal without
touching anything: oversize, retained (a stale command the broker kept), malformed JSON, an
unknown command, a value out of range and a request id seen before are all refused here.
:func:`execute` then runs an accepted command against the supervisor, which validates it like a
local command and journals it with the sender.
"""

from __future__ import annotations

from collections import OrderedDict

from pydantic import ValidationError

from safety.supervisor import Supervisor
from vasopilot.core.types import DoseRequest, Requester
from vasopilot.telemetry.payloads import (
    COMMAND_ADAPTER,
    MAX_COMMAND_BYTES,
    AcknowledgeAlarm,
    Command,
    CommandReply,
    SetDose,
    SetTarget,
    StartWeaning,
    Stop,
)

REMOTE_PREFIX = "remote:"


class CommandGate:
    """Validates raw command payloads for one rig; remembers the last ``memory`` request ids."""

    def __init__(self, rig_id: str, *, memory: int = 4096) -> None:
        self._rig_id = rig_id
        self._memory = memory
        self._seen: OrderedDict[str, None] = OrderedDict()

    def _refuse(self, reason: str, code: str, command: Command | None = None) -> CommandReply:
        return CommandReply(
            rig_id=self._rig_id,
            request_id=command.request_id if command else None,
            command=command.command if command else None,
            accepted=False, reason=reason, code=code)

    def check(self, payload: bytes, *, retained: bool = False) -> Command | CommandReply:
        """The command in ``payload``, or the reply refusing it."""
        if len(payload) > MAX_COMMAND_BYTES:
            return self._refuse(f"payload of {len(payload)} bytes is over the "
                                f"{MAX_COMMAND_BYTES}-byte limit", "OVERSIZE")
        if retained:
            return self._refuse("a retained command is stale: publish commands without retain",
                                "RETAINED")
        try:
            command = COMMAND_ADAPTER.validate_json(payload)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "payload"
            code = "MALFORMED" if first["type"].startswith("json") else "INVALID"
            return self._refuse(f"{where}: {first['msg']}", code)
        if command.request_id in self._seen:
            return self._refuse(f"request id {command.request_id!r} was already used: "
                                "a replay changes nothing", "REPLAY", command)
        self._seen[command.request_id] = None
        if len(self._seen) > self._memory:
            self._seen.popitem(last=False)
        return command


def execute(command: Command, supervisor: Supervisor, now_s: float, rig_id: str) -> CommandReply:
    """Run ``command`` through the supervisor at ``now_s`` (call on the rig loop's thread)."""
    by = REMOTE_PREFIX + command.sender

    def reply(accepted: bool, reason: str, code: str | None = None,
              dose_mcg_min: float | None = None) -> CommandReply:
        return CommandReply(rig_id=rig_id, request_id=command.request_id,
                            command=command.command, accepted=accepted, reason=reason,
                            code=code, dose_mcg_min=dose_mcg_min)

    match command:
        case SetDose():
            # Even a dose over the hard maximum goes to the supervisor: S2 wants its refusal
            # journaled with the reason, like a local one.
            decision = supervisor.request(DoseRequest(
                command.dose_mcg_min, Requester.REMOTE, f"remote command {command.request_id}",
                command.confirm_soft_limit, by), now_s)
            return reply(decision.applied, decision.reason, decision.code,
                         decision.dose_mcg_min)
        case SetTarget():
            decision = supervisor.set_target(command.target_map_mmhg, now_s, by=by)
            return reply(decision.applied, decision.reason, decision.code,
                         decision.dose_mcg_min)
        case StartWeaning():
            decision = supervisor.start_weaning(now_s, by=by)
            return reply(decision.applied, decision.reason, decision.code,
                         decision.dose_mcg_min)
        case AcknowledgeAlarm():
            if command.code not in {a.code for a in supervisor.view(now_s).alarms}:
                return reply(False, f"no active alarm {command.code!r}", "NO_SUCH_ALARM")
            supervisor.acknowledge(command.code, now_s, by=by)
            return reply(True, f"alarm {command.code} acknowledged")
        case Stop():
            supervisor.operator_stop(now_s, by=by, reason=command.reason or "remote stop")
            return reply(True, "infusion stopped", dose_mcg_min=0.0)
