"""The runtime: one rig's loop, fed by a clock.

:class:`RigLoop` is the synchronous heart shared by ``vasopilot sim`` (virtual clock, as fast as
the CPU allows) and ``vasopilot run`` (real time, under asyncio): read beats and line signals,
let the supervisor tick, let the control mode propose at its cadence, journal summaries.

A journal that cannot write (disk full, I/O error) stops nothing here: the sink keeps the
events pending and raises ``JournalUnavailable``; the loop says so once on its console, goes
on stepping (the pump keeps its rate, no dose changes on an unjournaled event), asks the sink
to catch up at every step and says when it has.
"""

from __future__ import annotations

import asyncio
import queue
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

from safety.supervisor import EventSink, Supervisor
from safety.view import SupervisorView
from vasopilot.control.base import Controller, LooksAgain
from vasopilot.control.reach import ReachAware, Unreachable
from vasopilot.control.wean import WeanController
from vasopilot.core.clock import Clock
from vasopilot.core.errors import JournalUnavailable
from vasopilot.core.events import BeatSummary, Event, PumpStatusEvent
from vasopilot.core.interfaces import BeatSource, LineSignalSource
from vasopilot.core.types import GOOD, Beat


class MemorySink:
    """An in-memory event sink for cohort runs and tests; numbers events like the journal."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def append(self, event: Event) -> Event:
        stamped = event.model_copy(update={"seq": len(self.events) + 1})
        self.events.append(stamped)
        return stamped

    def flush_pending(self) -> bool:
        return True


@dataclass
class LoopTimings:
    """Cadences in seconds: control proposals, beat summaries and pump-status records."""

    control_period_s: float = 5.0
    beat_summary_period_s: float = 15.0
    pump_status_period_s: float = 60.0


@dataclass
class _BeatWindow:
    beats: list[Beat] = field(default_factory=list)

    def summary(self, t_s: float) -> BeatSummary | None:
        if not self.beats:
            return None
        good = [b for b in self.beats if b.is_good]
        chosen = good or self.beats
        n = len(chosen)
        bad = [b.quality for b in self.beats if not b.is_good]
        # a tie goes to the kind seen first: a set's order follows the process's hash seed, and
        # the same seed must give the same journal on every run
        quality = GOOD if not bad else Counter(bad).most_common(1)[0][0]
        summary = BeatSummary(
            t_s=t_s,
            map_mmhg=sum(b.map_mmhg for b in chosen) / n,
            sbp_mmhg=sum(b.sbp_mmhg for b in chosen) / n,
            dbp_mmhg=sum(b.dbp_mmhg for b in chosen) / n,
            hr_bpm=sum(b.hr_bpm for b in chosen) / n,
            quality=quality if not good else GOOD,
            beats=len(self.beats),
        )
        self.beats.clear()
        return summary


class _JournalGuard:
    """:meth:`RigLoop.journal_guard`: a plain context manager, one per loop (a generator-based
    one cost a loop step more than its supervisor's alarm checks)."""

    def __init__(self, loop: RigLoop) -> None:
        self._loop = loop

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        if not isinstance(exc, JournalUnavailable):
            return False
        self._loop._journal_down(exc)
        return True


class RigLoop:
    """One rig's supervision and control loop; call :meth:`step` with the clock's time."""

    def __init__(
        self,
        supervisor: Supervisor,
        beats: BeatSource,
        controller: Controller,
        sink: EventSink,
        *,
        line: LineSignalSource | None = None,
        timings: LoopTimings | None = None,
        on_beat: Callable[[Beat], None] | None = None,
        console: Callable[[str], None] | None = None,
    ) -> None:
        self.supervisor = supervisor
        self._unreachable: Unreachable | None = None
        self.set_controller(controller)
        self._beats = beats
        self._line = line
        self._sink = sink
        self._timings = timings or LoopTimings()
        self._on_beat = on_beat
        self._console = console
        self.journal_fault: JournalUnavailable | None = None
        self._guard = _JournalGuard(self)
        self._window = _BeatWindow()
        self._inbox: queue.SimpleQueue[Callable[[float], object]] = queue.SimpleQueue()
        self._next_control_s: float | None = None
        self._next_summary_s: float | None = None
        self._next_status_s: float | None = None

    def set_controller(self, controller: Controller) -> None:
        """Switch the control mode. An out-of-reach alarm the mode going away raised loses its
        cause at the next step (on the loop's thread, at its time), unless the new mode has
        evidence of its own: nothing else would ever clear it but an acknowledgement."""
        self.controller = controller
        # asked once here, not at every control step: a runtime Protocol check walks the
        # protocol's members on every call
        self._reach = controller if isinstance(controller, ReachAware) else None
        self._looks_again = controller if isinstance(controller, LooksAgain) else None
        self._mode_switched = True

    def submit(self, action: Callable[[float], object]) -> None:
        """Run ``action(now_s)`` at the start of the next step, on the loop's thread.

        This is how operator and remote commands reach the supervisor from other threads
        (a terminal, MQTT) without racing the loop.
        """
        self._inbox.put(action)

    def step(self, now_s: float) -> SupervisorView:
        if self._next_control_s is None:
            self._next_control_s = now_s
            self._next_summary_s = now_s + self._timings.beat_summary_period_s
            self._next_status_s = now_s
        while not self._inbox.empty():
            action = self._inbox.get_nowait()
            with self.journal_guard():
                action(now_s)
        if self._mode_switched:
            self._mode_switched = False
            if self._unreachable is not None:
                with self.journal_guard():
                    self._report_reach(now_s)
        for beat in self._beats.read_beats():
            with self.journal_guard():
                self.supervisor.on_beat(beat, now_s)
            self.controller.on_beat(beat)
            self._window.beats.append(beat)
            if self._on_beat is not None:
                self._on_beat(beat)
        if self._line is not None:
            signals = self._line.read()
            with self.journal_guard():
                self.supervisor.on_line_signals(signals, now_s)
        with self.journal_guard():
            self.supervisor.tick(now_s)
        view = self.supervisor.view(now_s)
        if now_s >= self._next_control_s:
            self._next_control_s = now_s + self._timings.control_period_s
            with self.journal_guard():
                view = self._control(view, now_s)
            again_s = None if self._looks_again is None else self._looks_again.look_again_s
            if again_s is not None:
                # a mode that held for want of a fresh beat is asked again right after the
                # next one, not a cadence later (the step at or after it, on this clock)
                self._next_control_s = min(self._next_control_s, now_s + max(0.0, again_s))
        assert self._next_summary_s is not None and self._next_status_s is not None
        if now_s >= self._next_summary_s:
            self._next_summary_s = now_s + self._timings.beat_summary_period_s
            summary = self._window.summary(now_s)
            if summary is not None:
                with self.journal_guard():
                    self._sink.append(summary)
        if now_s >= self._next_status_s and view.pump is not None:
            self._next_status_s = now_s + self._timings.pump_status_period_s
            pump = view.pump
            with self.journal_guard():
                self._sink.append(PumpStatusEvent(
                    t_s=now_s, state=pump.state, rate_ml_h=pump.rate_ml_h,
                    delivered_ml=pump.delivered_ml,
                    syringe_remaining_ml=pump.syringe_remaining_ml,
                    line_pressure_mmhg=pump.line_pressure_mmhg,
                    delivery_uncertain=pump.delivery_uncertain,
                ))
        if self.journal_fault is not None and self._sink.flush_pending():
            self.journal_fault = None
            self._say("journal caught up: every pending event is written")
        return view

    def journal_guard(self) -> _JournalGuard:
        """What could not be journaled was not done, and is pending in the sink: say so once
        and go on (the loop's own writes and the runtime's periodic commit run inside it)."""
        return self._guard

    def _journal_down(self, exc: JournalUnavailable) -> None:
        if self.journal_fault is None:
            self._say(f"JOURNAL FAULT, events kept pending, the infusion goes on "
                      f"unchanged: {exc}")
        self.journal_fault = exc

    def _say(self, line: str) -> None:
        if self._console is not None:
            self._console(line)

    def _control(self, view: SupervisorView, now_s: float) -> SupervisorView:
        """Let the mode propose; a wean mode's hand-over to the S7 guard (and its taking the
        infusion back to descend faster) happens here, on every rig (simulated or real), not
        in a harness. Returns the view after any change."""
        controller = self.controller
        if isinstance(controller, WeanController):
            if controller.hands_over(view):
                self.supervisor.start_weaning(now_s, by=f"{controller.mode} mode")
                return self.supervisor.view(now_s)
            if controller.takes_back(view):
                self.supervisor.stop_weaning(now_s, by=f"{controller.mode} mode")
                view = self.supervisor.view(now_s)
        request = controller.propose(view)
        if request is not None:
            self.supervisor.request(request, now_s)
        if self._reach is not None:
            self._report_reach(now_s)
        return view if request is None else self.supervisor.view(now_s)

    def _report_reach(self, now_s: float) -> None:
        """The mode's out-of-reach evidence as the supervisor's alarm: raised when new
        evidence speaks, its cause gone when the evidence is (a mode that cannot tell has
        none)."""
        reach = self._reach
        evidence = reach.unreachable if reach is not None else None
        if reach is not None and evidence is not None and evidence is not self._unreachable:
            self.supervisor.report_unreachable(evidence.message(), now_s,
                                               by=f"{reach.mode} mode")
        elif evidence is None and self._unreachable is not None:
            self.supervisor.reachable_again(now_s)
        self._unreachable = evidence


async def run_realtime(
    loop: RigLoop,
    clock: Clock,
    *,
    tick_s: float = 0.2,
    until: Callable[[SupervisorView], bool] | None = None,
) -> SupervisorView:
    """Drive ``loop`` in real time until ``until`` says so (or the task is cancelled).

    Steps run in a worker thread because real drivers block on serial or I2C I/O; the tick is
    scheduled on the monotonic clock so a slow step does not accumulate drift.
    """
    next_s = clock.now_s()
    while True:
        view = await asyncio.to_thread(loop.step, clock.now_s())
        if until is not None and until(view):
            return view
        next_s += tick_s
        await clock.sleep_async(next_s - clock.now_s())
