"""The journal: every event, in order, in one SQLite file (docs/architecture.md invariant 7; S13,
S14).

Layout (``PRAGMA user_version`` = :data:`JOURNAL_VERSION`)::

    events(seq INTEGER PRIMARY KEY AUTOINCREMENT, t_s REAL, wall TEXT, kind TEXT, payload TEXT)
    index events_kind(kind, seq)

``payload`` is the event's pydantic JSON without ``seq``; the row's ``seq`` is the one truth and
is put back when a row is read.

Durability. The file runs in WAL mode with ``synchronous=FULL``, so a commit is on disk when it
returns. Durable events (``event.durable``: dose changes, alarms, operator actions, faults) are
committed before :meth:`Journal.append` returns (S14). Non-durable ones (beat summaries, pump
status) are inserted into the open transaction at once, so they take their ``seq`` in append
order, and are committed with the next durable event, on :meth:`Journal.flush`, or once the
oldest of them is ``flush_interval_s`` old. A crash can therefore lose only a tail of
non-durable events that no durable event follows; their ``seq`` numbers may then be reused.

Recovery. There is no second state table to keep consistent: :meth:`JournalReader.recovery`
derives the state from the rows with the ``(kind, seq)`` index (last dose applied, last mode,
last run start, last pump status) and replays only the alarm events of the current run. A run
begins at the last ``RunStarted`` that is not a restart, so a journal reused for several
simulated runs does not carry one run's alarms into the next, while a restart keeps them.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from pydantic import BaseModel, ConfigDict

from vasopilot.core.clock import Clock
from vasopilot.core.errors import JournalError, JournalUnavailable
from vasopilot.core.events import (
    EVENT_ADAPTER,
    AlarmAcknowledged,
    AlarmCleared,
    AlarmRaised,
    AlarmSilenced,
    BeatSummary,
    DoseApplied,
    DoseRefused,
    DoseRequested,
    Event,
    Fault,
    FlowProbe,
    JournalGap,
    ModeChanged,
    OperatorAction,
    PumpContract,
    PumpStatusEvent,
    RemoteCommand,
    RemoteRefused,
    RunEnded,
    RunStarted,
)
from vasopilot.core.types import Priority, host_loss_text

JOURNAL_VERSION = 1
_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    t_s REAL NOT NULL,
    wall TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_kind ON events(kind, seq);
"""

_ALARM_KINDS = ("alarm.raised", "alarm.acked", "alarm.cleared")


class ActiveAlarm(BaseModel):
    """An alarm raised and not cleared when the journal ends."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str
    priority: Priority
    message: str
    raised_t_s: float
    acknowledged: bool = False

    @property
    def latched(self) -> bool:
        """High-priority alarms latch until acknowledged and their cause is gone (S11)."""
        return self.priority is Priority.HIGH


class RecoveryState(BaseModel):
    """What a restarted process needs to resume without a gap or a bolus (S13).

    ``dose_mcg_min`` and ``rate_ml_h`` are from the last ``DoseApplied`` of the current run (0 if
    none); ``mode`` the last ``ModeChanged`` or else the run's starting mode; ``t_s`` the clock
    time of the last event in the journal; ``target_map_mmhg`` the MAP target an operator last
    set in the current run (``None``: the profile's is in force).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    last_seq: int
    t_s: float
    wall: str
    dose_mcg_min: float
    rate_ml_h: float
    mode: str | None
    run: RunStarted | None
    last_dose: DoseApplied | None
    pump: PumpStatusEvent | None
    alarms: tuple[ActiveAlarm, ...]
    target_map_mmhg: float | None = None

    @property
    def latched_alarms(self) -> tuple[ActiveAlarm, ...]:
        return tuple(a for a in self.alarms if a.latched)


def _row_event(seq: int, payload: str) -> Event:
    data: dict[str, Any] = json.loads(payload)
    data["seq"] = seq
    return EVENT_ADAPTER.validate_python(data)


class JournalReader:
    """Read access to a journal; other processes (CLI, reports) open it read-only.

    Reads go through one connection guarded by a lock, so a reader may be shared by threads.
    ``busy_timeout_s`` is how long (seconds) to wait for another connection's lock.
    """

    def __init__(
        self, path: Path | str, *, busy_timeout_s: float = 5.0, _writable: bool = False
    ) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        if _writable:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise JournalError(f"{self.path}: cannot make the journal's folder "
                                   f"{self.path.parent}: {exc.strerror or exc}") from exc
        try:
            if _writable:
                conn = sqlite3.connect(self.path, timeout=busy_timeout_s, isolation_level=None,
                                       check_same_thread=False)
            else:
                if not self.path.is_file():
                    raise JournalError(f"{self.path}: no journal there")
                conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True,
                                       timeout=busy_timeout_s, isolation_level=None,
                                       check_same_thread=False)
            self._conn = conn
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        except sqlite3.Error as exc:
            raise JournalError(f"{self.path}: cannot open the journal: {exc}") from exc
        if version > JOURNAL_VERSION:
            conn.close()
            raise JournalError(f"{self.path}: journal layout {version} is newer than this "
                               f"vasopilot understands ({JOURNAL_VERSION})")

    def _query(self, sql: str, params: Iterable[object] = ()) -> list[Any]:
        with self._lock:
            try:
                return self._conn.execute(sql, tuple(params)).fetchall()
            except sqlite3.Error as exc:
                raise JournalError(f"{self.path}: {exc}") from exc

    def _events(self, sql: str, params: Iterable[object] = ()) -> list[Event]:
        return [_row_event(seq, payload) for seq, payload in self._query(sql, params)]

    def last_seq(self) -> int:
        """The highest sequence number written (0 for an empty journal)."""
        return int(self._query("SELECT COALESCE(MAX(seq), 0) FROM events")[0][0])

    def tail(self, n: int = 20, kinds: set[str] | None = None) -> list[Event]:
        """The last ``n`` events (of ``kinds`` if given), oldest first."""
        where, params = _kind_filter(kinds)
        rows = self._events(
            f"SELECT seq, payload FROM events {where} ORDER BY seq DESC LIMIT ?", [*params, n])
        rows.reverse()
        return rows

    def since(self, seq: int, limit: int | None = None) -> list[Event]:
        """Events after ``seq``, oldest first, at most ``limit`` of them (for replay)."""
        return self._events("SELECT seq, payload FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                            [seq, -1 if limit is None else limit])

    def iter_events(self, after_seq: int = 0, page: int = 1000) -> Iterator[Event]:
        """Every event after ``after_seq`` in order, read a page at a time."""
        while batch := self.since(after_seq, page):
            yield from batch
            seq = batch[-1].seq
            assert seq is not None
            after_seq = seq

    def has_request_id(self, request_id: str) -> bool:
        """Whether a remote command with ``request_id`` was ever acted on (S15 replay guard)."""
        rows = self._query(
            "SELECT 1 FROM events WHERE kind = 'remote.command' "
            "AND json_extract(payload, '$.request_id') = ? LIMIT 1", [request_id])
        return bool(rows)

    def current_run_seq(self) -> int:
        """The seq of the last ``RunStarted`` that is not a restart (0 if there is none)."""
        rows = self._query(
            "SELECT seq FROM events WHERE kind = 'run.started' "
            "AND NOT json_extract(payload, '$.restarted') ORDER BY seq DESC LIMIT 1")
        return int(rows[0][0]) if rows else 0

    def _last_of(self, kind: str, after_seq: int = 0) -> Event | None:
        found = self._events("SELECT seq, payload FROM events WHERE kind = ? AND seq >= ? "
                             "ORDER BY seq DESC LIMIT 1", [kind, after_seq])
        return found[0] if found else None

    def recovery(self) -> RecoveryState | None:
        """The state to resume from, or ``None`` for an empty journal (see the module notes)."""
        with self._lock:
            last = self.tail(1)
            if not last:
                return None
            run_seq = self.current_run_seq()
            run = self._last_of("run.started", run_seq)
            dose = self._last_of("dose.applied", run_seq)
            mode_event = self._last_of("mode.changed", run_seq)
            pump = self._last_of("pump.status", run_seq)
            targets = self._events(
                "SELECT seq, payload FROM events WHERE kind = 'operator.action' AND seq >= ? "
                "AND json_extract(payload, '$.target_map_mmhg') IS NOT NULL "
                "ORDER BY seq DESC LIMIT 1", [run_seq])
            alarm_events = self._events(
                "SELECT seq, payload FROM events WHERE kind IN (?, ?, ?) AND seq >= ? "
                "ORDER BY seq", [*_ALARM_KINDS, run_seq])
        assert run is None or isinstance(run, RunStarted)
        assert dose is None or isinstance(dose, DoseApplied)
        assert mode_event is None or isinstance(mode_event, ModeChanged)
        assert pump is None or isinstance(pump, PumpStatusEvent)
        target = targets[0] if targets else None
        assert target is None or isinstance(target, OperatorAction)
        # A run start names its mode too; whichever came last is the mode in force.
        mode_sources = [e for e in (run, mode_event) if e is not None]
        mode = max(mode_sources, key=lambda e: e.seq or 0).mode if mode_sources else None
        end = last[0]
        assert end.seq is not None and end.wall is not None
        return RecoveryState(
            last_seq=end.seq,
            t_s=end.t_s,
            wall=end.wall,
            dose_mcg_min=dose.dose_mcg_min if dose else 0.0,
            rate_ml_h=dose.rate_ml_h if dose else 0.0,
            mode=mode,
            run=run,
            last_dose=dose,
            pump=pump,
            alarms=_replay_alarms(alarm_events),
            target_map_mmhg=target.target_map_mmhg if target else None,
        )

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _kind_filter(kinds: set[str] | None) -> tuple[str, list[str]]:
    if not kinds:
        return "", []
    ordered = sorted(kinds)
    return f"WHERE kind IN ({', '.join('?' for _ in ordered)})", ordered


def _replay_alarms(events: Iterable[Event]) -> tuple[ActiveAlarm, ...]:
    """Alarm events folded the way the alarm manager folds them: raise, escalate, ack, clear."""
    active: dict[str, ActiveAlarm] = {}
    for event in events:
        if isinstance(event, AlarmRaised):
            earlier = active.get(event.code)
            active[event.code] = ActiveAlarm(
                code=event.code, priority=event.priority, message=event.message,
                raised_t_s=earlier.raised_t_s if earlier else event.t_s)
        elif isinstance(event, AlarmAcknowledged) and event.code in active:
            active[event.code] = active[event.code].model_copy(update={"acknowledged": True})
        elif isinstance(event, AlarmCleared):
            active.pop(event.code, None)
    return tuple(active.values())


# What may be shed from a full pending buffer, least important first; anything else (doses,
# requests, refusals, alarms, operator acts, faults) is never shed.
SHEDDABLE_KINDS = ("beat.summary", "pump.status")
DEFAULT_MAX_PENDING = 10_000


class Journal(JournalReader):
    """The writer: one per journal file, shared by the threads of one process.

    ``clock`` stamps the wall label of events that have none and times the batching of
    non-durable events (``flush_interval_s``, in clock seconds).

    A write that fails (disk full, I/O error) is not fatal: the event, and every event of the
    open transaction that the failure rolled back, waits in order in a pending buffer and
    :class:`JournalUnavailable` is raised; each later :meth:`append` or :meth:`flush_pending`
    first writes what is pending. The buffer holds ``max_pending`` events; past that the oldest
    beat summaries, then pump status readings are shed (never a dose, alarm or operator event)
    and, once the journal catches up, a :class:`JournalGap` records how many.
    """

    def __init__(
        self,
        path: Path | str,
        clock: Clock,
        *,
        flush_interval_s: float = 5.0,
        busy_timeout_s: float = 5.0,
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> None:
        super().__init__(path, busy_timeout_s=busy_timeout_s, _writable=True)
        self._clock = clock
        self._flush_interval_s = flush_interval_s
        self._max_pending = max_pending
        self._pending_since_s: float | None = None
        # Written into the open transaction, not yet committed: back to pending if it fails.
        self._uncommitted: list[Event] = []
        self._pending: deque[Event] = deque()
        self._shed: Counter[str] = Counter()
        self._shed_t_s: tuple[float, float] | None = None
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(_SCHEMA)
            self._conn.execute(f"PRAGMA user_version={JOURNAL_VERSION}")
        except sqlite3.Error as exc:
            self._conn.close()
            raise JournalError(f"{self.path}: cannot prepare the journal: {exc}") from exc

    @property
    def pending_count(self) -> int:
        """Events waiting to be written (the failed ones and any rolled back with them)."""
        with self._lock:
            return len(self._pending)

    @property
    def shed_count(self) -> int:
        """Events shed from a full pending buffer and not yet recorded by a gap event."""
        with self._lock:
            return sum(self._shed.values())

    def append(self, event: Event) -> Event:
        """Record ``event``; return it stamped with ``seq`` (and ``wall`` if it had none).

        A durable event is on disk when this returns. If it cannot be written now the event is
        kept pending and :class:`JournalUnavailable` is raised: the caller must not act on it.
        """
        if event.wall is None:
            event = event.model_copy(update={"wall": self._clock.wall_label()})
        with self._lock:
            # Catching up after a failure commits at once: what was kept waits no longer.
            commit = event.durable or bool(self._pending)
            self._pending.append(event)
            seq = self._write_pending(f"could not record {event.kind}", commit=commit)
        return event.model_copy(update={"seq": seq})

    def flush_pending(self) -> bool:
        """Write what is pending, if anything; ``True`` when nothing is pending any more."""
        with self._lock:
            if not self._pending:
                return True
            try:
                self._write_pending("could not catch up", commit=True)
            except JournalUnavailable:
                return False
            return True

    def flush(self) -> None:
        """Write anything pending and commit any batched non-durable events now."""
        with self._lock:
            if self._pending:
                self._write_pending("could not flush", commit=True)
            self._guarded(self._commit, "could not flush")

    def flush_if_due(self) -> None:
        """Commit batched events if the oldest is ``flush_interval_s`` old (call on a tick)."""
        with self._lock:
            self._guarded(self._flush_if_due, "could not flush")

    def _write_pending(self, what: str, *, commit: bool) -> int:
        """Insert every pending event in order (a gap record first if events were shed) and
        commit if asked; return the last one's seq."""
        def write() -> int:
            if not self._conn.in_transaction:
                self._conn.execute("BEGIN IMMEDIATE")
            if self._shed:
                self._insert(self._gap_event())
            seq = 0
            while self._pending:
                seq = self._insert(self._pending[0])
                self._pending.popleft()
            if commit or any(e.durable for e in self._uncommitted):
                self._commit()
            else:
                self._flush_if_due()
            return seq

        return self._guarded(write, what)

    def _gap_event(self) -> JournalGap:
        assert self._shed_t_s is not None
        from_t_s, to_t_s = self._shed_t_s
        gap = JournalGap(t_s=from_t_s, wall=self._clock.wall_label(), shed=dict(self._shed),
                         from_t_s=from_t_s, to_t_s=to_t_s)
        self._shed.clear()
        self._shed_t_s = None
        return gap

    def _insert(self, event: Event) -> int:
        payload = event.model_dump_json(exclude={"seq"})
        cursor = self._conn.execute(
            "INSERT INTO events (t_s, wall, kind, payload) VALUES (?, ?, ?, ?)",
            (event.t_s, event.wall, event.kind, payload))
        self._uncommitted.append(event)
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def _guarded(self, action: Callable[[], _T], what: str) -> _T:
        try:
            return action()
        except sqlite3.Error as exc:
            self._rollback()
            raise JournalUnavailable(
                f"{self.path}: {what}: {exc}; {len(self._pending)} event(s) kept pending"
            ) from exc

    def _flush_if_due(self) -> None:
        if not self._conn.in_transaction:
            return
        now_s = self._clock.now_s()
        if self._pending_since_s is None:
            self._pending_since_s = now_s
        if now_s - self._pending_since_s >= self._flush_interval_s:
            self._commit()

    def _commit(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("COMMIT")
        self._uncommitted.clear()
        self._pending_since_s = None

    def _rollback(self) -> None:
        self._pending_since_s = None
        # If even the rollback fails the connection is unusable; the next append says so.
        with contextlib.suppress(sqlite3.Error):
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        # What the rollback undid comes before what was still waiting.
        rolled_back = [e for e in self._uncommitted if not isinstance(e, JournalGap)]
        self._restore_shed(self._uncommitted)
        self._uncommitted.clear()
        self._pending.extendleft(reversed(rolled_back))
        self._shed_down()

    def _restore_shed(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, JournalGap):
                self._shed.update(event.shed)
                self._note_shed_range(event.from_t_s, event.to_t_s)

    def _note_shed_range(self, from_t_s: float, to_t_s: float) -> None:
        if self._shed_t_s is not None:
            from_t_s = min(from_t_s, self._shed_t_s[0])
            to_t_s = max(to_t_s, self._shed_t_s[1])
        self._shed_t_s = (from_t_s, to_t_s)

    def _shed_down(self) -> None:
        """Keep the buffer within ``max_pending`` by dropping the least important, oldest first.

        Durable events are never dropped: if only they remain the buffer may exceed the bound
        (they come at human pace: dose changes, alarms, operator acts).
        """
        excess = len(self._pending) - self._max_pending
        for kind in SHEDDABLE_KINDS:
            if excess <= 0:
                return
            kept: deque[Event] = deque()
            for event in self._pending:
                if excess > 0 and event.kind == kind:
                    self._shed[kind] += 1
                    self._note_shed_range(event.t_s, event.t_s)
                    excess -= 1
                else:
                    kept.append(event)
            self._pending = kept

    def close(self) -> None:
        """Write what is pending and close; events that still cannot be written are lost, and
        :class:`JournalUnavailable` says how many."""
        with self._lock:
            try:
                self.flush()
            except JournalUnavailable as exc:
                raise JournalUnavailable(
                    f"{self.path}: {len(self._pending)} event(s) could not be written and are "
                    f"lost: {exc.__cause__}") from exc
            finally:
                self._conn.close()


def summary_line(event: Event) -> str:
    """One human line saying what ``event`` is about (for ``vasopilot journal tail``)."""
    match event:
        case DoseRequested():
            return (f"{event.requester} asks {event.dose_mcg_min:.2f} mcg/min: {event.reason}"
                    + (" (soft limit confirmed)" if event.soft_limit_confirmed else ""))
        case DoseApplied():
            return (f"{event.previous_dose_mcg_min:.2f} -> {event.dose_mcg_min:.2f} mcg/min "
                    f"({event.rate_ml_h:.3f} mL/h) by {event.requester}: {event.reason}")
        case DoseRefused():
            return (f"refused {event.requested_dose_mcg_min:.2f} mcg/min from {event.requester} "
                    f"[{event.code}]: {event.reason}")
        case AlarmRaised():
            return f"{event.priority.upper()} {event.code}: {event.message}"
        case AlarmAcknowledged():
            return f"{event.code} acknowledged by {event.by}"
        case AlarmSilenced():
            return f"{event.code} silenced by {event.by} until t={event.until_t_s:.0f} s"
        case AlarmCleared():
            return f"{event.code} cleared"
        case BeatSummary():
            if event.map_mmhg is None:
                return f"no MAP ({event.quality}, {event.beats} beats)"
            hr = "" if event.hr_bpm is None else f", HR {event.hr_bpm:.0f}/min"
            return f"MAP {event.map_mmhg:.0f} mmHg{hr}, {event.quality}, {event.beats} beats"
        case PumpStatusEvent():
            line = "" if event.line_pressure_mmhg is None else \
                f", line {event.line_pressure_mmhg:.0f} mmHg"
            uncertain = ", DELIVERY UNCERTAIN" if event.delivery_uncertain else ""
            return (f"{event.state} {event.rate_ml_h:.3f} mL/h, {event.delivered_ml:.2f} mL "
                    f"given, {event.syringe_remaining_ml:.2f} mL left{line}{uncertain}")
        case OperatorAction():
            return f"{event.action} by {event.by}" + (f": {event.detail}" if event.detail else "")
        case PumpContract():
            return (f"{event.role} pump, if this process dies: "
                    f"{host_loss_text(event.host_loss, event.host_loss_after_s)}")
        case Fault():
            return f"{event.code}: {event.message}" + (f" ({event.detail})" if event.detail else "")
        case FlowProbe():
            return (f"line probe ({event.cause}) {event.phase}: {event.rate_ml_h:.3f} mL/h, "
                    f"{event.volume_ul:.1f} µL: {event.reason}")
        case ModeChanged():
            return f"mode {event.mode} (by {event.by})"
        case RemoteCommand():
            return f"remote {event.command} {event.request_id} from {event.sender}"
        case RemoteRefused():
            times = f" ({event.count} times)" if event.count > 1 else ""
            return (f"refused remote {event.command or 'command'} from {event.sender} "
                    f"[{event.code}]{times}: {event.reason}")
        case JournalGap():
            shed = ", ".join(f"{n} {kind}" for kind, n in sorted(event.shed.items()))
            return (f"{shed} not journaled (disk full or I/O error) between "
                    f"t={event.from_t_s:.0f} s and t={event.to_t_s:.0f} s")
        case RunEnded():
            state = "infusing" if event.running else "stopped"
            return (f"end ({event.reason}): {state} at {event.dose_mcg_min:.2f} mcg/min "
                    f"({event.rate_ml_h:.3f} mL/h); now "
                    f"{host_loss_text(event.host_loss, event.host_loss_after_s)}")
        case RunStarted():
            extra = "".join(
                f", {label} {value}" for label, value in
                (("scenario", event.scenario), ("seed", event.seed)) if value is not None)
            return (f"{'restart' if event.restarted else 'start'} of {event.rig_id} in "
                    f"{event.mode}, target {event.target_map_mmhg:.0f} mmHg, lower limit "
                    f"{event.lower_limit_mmhg:.0f} mmHg, {event.conc_mcg_ml:g} mcg/mL{extra}")
