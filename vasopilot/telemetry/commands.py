"""Remote commands (S15): check on the MQTT thread, act on the rig loop's thread.

:class:`CommandGate` turns one delivered message into a :class:`Checked` command or a
:class:`Refused` one without touching anything. The sender is the command topic's last level
(``vasopilot/v1/<rig>/cmd/<username>``), which the broker's ACL lets only that authenticated
user write; the payload has no say in it. Refused here: a sender that is the rig's own account,
more than ``rate_per_s`` commands per second from one sender, oversize payloads, retained
messages (the rig subscribes with *retain as published*, so the flag survives however the
message is delivered), MQTT v5 messages whose expiry ran out, duplicate JSON keys, malformed or
ill-typed JSON (strict: ``"12"`` is not a number, ``"yes"`` is not true), and commands issued
more than :data:`MAX_AGE_S` ago or more than :data:`MAX_AHEAD_S` ahead by the rig's wall clock.

:func:`act` then runs on the rig loop's thread: it refuses a command whose deadline passed while
it queued or whose request id the journal already holds (the memory of ids is the journal, so
it survives restarts and has no size limit), journals a :class:`RemoteCommand` with the sender
before acting, and hands the command to the supervisor, which validates and journals it like a
local one.

:class:`RefusalLog` journals refusals once each, and a burst of one kind from one sender as one
row with a count.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic import ValidationError

from safety.supervisor import Supervisor
from vasopilot.core.clock import Clock
from vasopilot.core.errors import JournalError
from vasopilot.core.events import AlarmCode, Event, RemoteCommand, RemoteRefused
from vasopilot.core.types import CommandRefusal, DoseRequest, Requester
from vasopilot.telemetry.payloads import (
    COMMAND_ADAPTER,
    MAX_COMMAND_BYTES,
    TOPIC_ROOT,
    AcknowledgeAlarm,
    Command,
    CommandReply,
    SetDose,
    SetTarget,
    SilenceAlarm,
    StartWeaning,
    Stop,
    StopWeaning,
    VolumeAssessed,
)

REMOTE_PREFIX = "remote:"
MAX_AGE_S = 10.0
MAX_AHEAD_S = 2.0
# Mosquitto refuses ACL substitution for usernames with "/", "+" or "#"; we also keep them short.
_SENDER_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
_MAX_SENDER = 64
UNKNOWN_SENDER = "?"


def utc_now() -> datetime:
    """The wall clock, read only here on the command path, and injectable everywhere."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Incoming:
    """One command message as the broker delivered it.

    ``expiry_s`` is the MQTT v5 Message Expiry Interval left (None: none was set);
    ``correlation`` the v5 Correlation Data, echoed in the reply.
    """

    topic: str
    payload: bytes
    retained: bool = False
    expiry_s: float | None = None
    correlation: bytes | None = None


@dataclass(frozen=True)
class Checked:
    """A command that passed the gate; ``deadline_s`` (gate clock) is when it goes stale."""

    command: Command
    sender: str
    deadline_s: float
    correlation: bytes | None


@dataclass(frozen=True)
class Refused:
    """A refusal: ``reply`` goes back to ``sender`` (unless unknown), ``code`` to the journal."""

    sender: str
    code: CommandRefusal
    reply: CommandReply
    correlation: bytes | None


@dataclass
class _Bucket:
    tokens: float
    at_s: float


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    seen: dict[str, object] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKeyError(key)
        seen[key] = value
    return seen


class _DuplicateKeyError(ValueError):
    pass


def sender_of(topic_name: str, rig_id: str) -> str | None:
    """The username level of ``vasopilot/v1/<rig_id>/cmd/<username>``, or None if it has none."""
    prefix = f"{TOPIC_ROOT}/{rig_id}/cmd/"
    if not topic_name.startswith(prefix):
        return None
    sender = topic_name[len(prefix):]
    if not 0 < len(sender) <= _MAX_SENDER or not set(sender) <= _SENDER_CHARS:
        return None
    return sender


class CommandGate:
    """Validates command messages for one rig.

    ``own_username`` is the rig's broker account: its password sits in the rig profile, so a
    command under that name is refused even if a broker ACL would let it through. ``clock``
    times the rate limit and deadlines; ``wall`` is the wall clock that ``issued_at`` is
    compared with.
    """

    def __init__(
        self,
        rig_id: str,
        *,
        own_username: str | None,
        clock: Clock,
        wall: Callable[[], datetime] = utc_now,
        rate_per_s: float = 5.0,
    ) -> None:
        self._rig_id = rig_id
        self._own = own_username
        self._clock = clock
        self._wall = wall
        self._rate_per_s = rate_per_s
        self._buckets: dict[str, _Bucket] = {}

    def _refuse(self, msg: Incoming, sender: str, code: CommandRefusal, reason: str,
                command: Command | None = None) -> Refused:
        return Refused(sender, code, CommandReply(
            rig_id=self._rig_id, request_id=command.request_id if command else None,
            command=command.command if command else None, accepted=False, reason=reason,
            code=code), msg.correlation)

    def _within_rate(self, sender: str) -> bool:
        """A token bucket per sender: ``rate_per_s`` a second, bursts of as many."""
        now_s = self._clock.now_s()
        bucket = self._buckets.setdefault(sender, _Bucket(self._rate_per_s, now_s))
        bucket.tokens = min(self._rate_per_s,
                            bucket.tokens + (now_s - bucket.at_s) * self._rate_per_s)
        bucket.at_s = now_s
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True

    def check(self, msg: Incoming) -> Checked | Refused:
        """The command in ``msg``, or its refusal."""
        sender = sender_of(msg.topic, self._rig_id)
        if sender is None:
            return self._refuse(msg, UNKNOWN_SENDER, CommandRefusal.BAD_SENDER,
                                f"topic {msg.topic[:120]!r} names no valid sender")
        if sender == self._own:
            return self._refuse(msg, sender, CommandRefusal.SELF,
                                "the rig's own account may not command it")
        if not self._within_rate(sender):
            return self._refuse(msg, sender, CommandRefusal.RATE_LIMITED,
                                f"more than {self._rate_per_s:g} commands per second")
        if len(msg.payload) > MAX_COMMAND_BYTES:
            return self._refuse(msg, sender, CommandRefusal.OVERSIZE,
                                f"payload of {len(msg.payload)} bytes is over the "
                                f"{MAX_COMMAND_BYTES}-byte limit")
        if msg.retained:
            return self._refuse(msg, sender, CommandRefusal.RETAINED,
                                "a retained command is stale: publish commands without retain")
        if msg.expiry_s is not None and msg.expiry_s <= 0:
            return self._refuse(msg, sender, CommandRefusal.EXPIRED, "the message expiry ran out")
        try:
            json.loads(msg.payload, object_pairs_hook=_no_duplicate_keys)
        except _DuplicateKeyError as exc:
            return self._refuse(msg, sender, CommandRefusal.DUPLICATE_KEY,
                                f"key {exc} appears twice")
        except ValueError as exc:
            return self._refuse(msg, sender, CommandRefusal.MALFORMED, f"not JSON: {exc}")
        try:
            command = COMMAND_ADAPTER.validate_json(msg.payload)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "payload"
            return self._refuse(msg, sender, CommandRefusal.INVALID, f"{where}: {first['msg']}")
        age_s = (self._wall() - command.issued_at).total_seconds()
        if age_s > MAX_AGE_S:
            return self._refuse(msg, sender, CommandRefusal.STALE,
                                f"issued {age_s:.1f} s ago, more than {MAX_AGE_S:g} s: "
                                "a command never acts late", command)
        if age_s < -MAX_AHEAD_S:
            return self._refuse(msg, sender, CommandRefusal.FUTURE,
                                f"issued {-age_s:.1f} s in the future (more than "
                                f"{MAX_AHEAD_S:g} s): check the sender's clock", command)
        life_s = MAX_AGE_S - age_s
        if msg.expiry_s is not None:
            life_s = min(life_s, msg.expiry_s)
        return Checked(command, sender, self._clock.now_s() + life_s, msg.correlation)


def act(
    checked: Checked,
    supervisor: Supervisor,
    now_s: float,
    *,
    rig_id: str,
    gate_clock: Clock,
    seen: Callable[[str], bool],
    sink: Callable[[Event], Event],
) -> CommandReply:
    """Run ``checked`` at ``now_s`` (call on the rig loop's thread, so commands are serial).

    ``seen`` says whether the journal already holds a request id; ``sink`` journals.
    """
    command = checked.command

    def reply(accepted: bool, reason: str, code: str | None = None,
              dose_mcg_min: float | None = None) -> CommandReply:
        return CommandReply(rig_id=rig_id, request_id=command.request_id,
                            command=command.command, accepted=accepted, reason=reason,
                            code=code, dose_mcg_min=dose_mcg_min)

    if gate_clock.now_s() > checked.deadline_s:
        return reply(False, "the command expired while waiting for the rig loop",
                     CommandRefusal.EXPIRED)
    if seen(command.request_id):
        return reply(False, f"request id {command.request_id!r} was already acted on: a "
                     "replay changes nothing", CommandRefusal.REPLAY)
    try:
        sink(RemoteCommand(t_s=now_s, request_id=command.request_id, sender=checked.sender,
                           command=command.command,
                           issued_at=command.issued_at.isoformat(timespec="milliseconds")))
    except JournalError as exc:
        return reply(False, f"not acted on: the journal cannot record it ({exc})",
                     CommandRefusal.JOURNAL)
    by = REMOTE_PREFIX + checked.sender
    alarms = {a.code for a in supervisor.view(now_s).alarms}
    match command:
        case SetDose():
            # Even a dose over the hard maximum goes to the supervisor: S2 wants its refusal
            # journaled with the reason, like a local one.
            decision = supervisor.request(DoseRequest(
                command.dose_mcg_min, Requester.REMOTE, f"remote command {command.request_id}",
                command.confirm_soft_limit, by), now_s)
        case SetTarget():
            decision = supervisor.set_target(command.target_map_mmhg, now_s, by=by,
                                             confirmed=command.confirm_below_usual)
        case StartWeaning():
            decision = supervisor.start_weaning(now_s, by=by)
        case StopWeaning():
            supervisor.stop_weaning(now_s, by=by)
            return reply(True, "weaning stopped")
        case AcknowledgeAlarm() | SilenceAlarm():
            if command.code not in alarms:
                return reply(False, f"no active alarm {command.code!r}",
                             CommandRefusal.NO_SUCH_ALARM)
            code = AlarmCode(command.code)
            if isinstance(command, AcknowledgeAlarm):
                supervisor.acknowledge(code, now_s, by=by)
                return reply(True, f"alarm {command.code} acknowledged")
            supervisor.silence(code, now_s, by=by)
            return reply(True, f"alarm {command.code} silenced")
        case VolumeAssessed():
            supervisor.answer_volume_check(command.answer, now_s, by=by)
            return reply(True, f"volume check answered: {command.answer}")
        case Stop():
            supervisor.operator_stop(now_s, by=by, reason=command.reason or "remote stop")
            return reply(True, "infusion stopped", dose_mcg_min=0.0)
    return reply(decision.applied, decision.reason, decision.code, decision.dose_mcg_min)


@dataclass
class Burst:
    """Refusals of one code from one sender, journaled as one row with their ``count``."""

    sender: str
    code: CommandRefusal
    reply: CommandReply
    count: int
    opened_s: float
    last_s: float

    def event(self, t_s: float) -> RemoteRefused:
        return RemoteRefused(t_s=t_s, sender=self.sender, code=self.code,
                             reason=self.reply.reason, command=self.reply.command,
                             request_id=self.reply.request_id, count=self.count)


@dataclass
class RefusalLog:
    """Collects refusals into journal rows: one per (sender, code) burst, with its count.

    A burst closes once its key has been quiet for ``quiet_s`` or open for ``window_s`` (clock
    seconds), so a lone refusal is journaled within ``quiet_s`` and a flood of any size costs
    one row per ``window_s``. Keys are bounded: senders are broker accounts, codes an enum.
    """

    quiet_s: float = 1.0
    window_s: float = 10.0
    _open: dict[tuple[str, CommandRefusal], Burst] = field(default_factory=dict)

    def add(self, refused: Refused, now_s: float) -> None:
        burst = self._open.get((refused.sender, refused.code))
        if burst is None:
            self._open[(refused.sender, refused.code)] = Burst(
                refused.sender, refused.code, refused.reply, 1, now_s, now_s)
        else:
            burst.count += 1
            burst.last_s = now_s

    def due(self, now_s: float, *, everything: bool = False) -> list[Burst]:
        """The bursts that closed by ``now_s`` (all of them if ``everything``)."""
        closed = [burst for burst in self._open.values()
                  if everything or now_s - burst.last_s >= self.quiet_s
                  or now_s - burst.opened_s >= self.window_s]
        for burst in closed:
            del self._open[(burst.sender, burst.code)]
        return closed
