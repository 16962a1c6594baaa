"""``vasopilot run``: one rig in real time under asyncio, resuming from its journal (S13).

Tasks: the rig loop (supervisor tick, beats, control), the acquisition threads of polled
sensors, the journal's flush of batched events, and systemd's watchdog, which is pinged only
while the loop steps. The clock is a parameter, so the whole runtime runs on a virtual clock in
tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from safety.resume import ResumeState
from safety.view import SupervisorView
from vasopilot.control.base import Controller
from vasopilot.core.clock import Clock
from vasopilot.core.events import RunStarted
from vasopilot.journal import Journal
from vasopilot.local_control import control_socket
from vasopilot.rig import Rig, build_rig
from vasopilot.runtime import run_realtime
from vasopilot.service import LoopWatchdog, SystemdNotifier
from vasopilot.settings import RigConfig


@dataclass(frozen=True)
class ServeOptions:
    mode: str
    start_dose_mcg_min: float | None = None
    soft_limit_confirmed: bool = False
    minutes: float | None = None
    tick_s: float = 0.2
    patient_seed: int = 1
    # where a person at the bench reaches the running rig (vasopilot.local_control)
    control_socket: Path | None = None


def open_rig(
    config: RigConfig, journal: Journal, clock: Clock, controller: Controller,
    options: ServeOptions, *, console: Callable[[str], None] | None = None,
) -> Rig:
    """Build the rig and either resume the journal's run or open a new one; ``console``
    receives the loop's lines for people (a journal fault and its end)."""
    rig = build_rig(config, clock=clock, sink=journal, controller=controller,
                    patient_seed=options.patient_seed, console=console)
    previous = journal.recovery()
    resuming = previous is not None and previous.run is not None and \
        previous.run.rig_id == config.profile.rig_id
    now_s = clock.now_s()
    target_map_mmhg = config.profile.patient.setpoint_mmhg
    if resuming and previous is not None and previous.target_map_mmhg is not None:
        target_map_mmhg = previous.target_map_mmhg
    journal.append(RunStarted(
        t_s=now_s, rig_id=config.profile.rig_id, mode=controller.mode,
        target_map_mmhg=target_map_mmhg,
        lower_limit_mmhg=config.profile.patient.lower_limit_mmhg,
        conc_mcg_ml=config.drug.conc_mcg_ml, weight_kg=config.profile.patient.weight_kg,
        restarted=resuming, dose_unit=config.drug.dose_unit,
    ))
    if resuming:
        events = journal.iter_events(after_seq=journal.current_run_seq() - 1)
        state = ResumeState.from_events(events)
        rig.supervisor.resume(state, now_s)
        restored = state.target_map_mmhg
        if restored is not None and rig.supervisor.view(now_s).target_map_mmhg != restored:
            # the operator's target outlives the process, as the dose does (S13)
            rig.supervisor.set_target(restored, now_s, by="restart: the operator's target")
    return rig


async def serve(rig: Rig, clock: Clock, journal: Journal, options: ServeOptions,
                notifier: SystemdNotifier | None = None) -> SupervisorView:
    """Run until ``options.minutes`` have passed (or forever, until cancelled)."""
    loop = rig.loop
    if options.start_dose_mcg_min is not None:
        dose = options.start_dose_mcg_min
        loop.submit(lambda now_s: rig.supervisor.start(
            dose, now_s, by="operator", soft_limit_confirmed=options.soft_limit_confirmed))
    notifier = notifier or SystemdNotifier()
    stop = threading.Event()
    threads = [threading.Thread(target=_poll_forever, args=(poll, period_s, clock, stop),
                                name="acquisition", daemon=True)
               for poll, period_s in rig.pollers]
    for thread in threads:
        thread.start()
    end_s = None if options.minutes is None else clock.now_s() + options.minutes * 60.0
    ready = False

    def until(view: SupervisorView) -> bool:
        nonlocal ready
        if not ready:
            notifier.notify("READY=1")
            ready = True
        with loop.journal_guard():
            journal.flush_if_due()
        return end_s is not None and view.t_s >= end_s

    helpers: list[asyncio.Task[None]] = []
    if notifier.enabled and notifier.watchdog_s:
        watchdog = LoopWatchdog(loop, notifier, clock, max_age_s=notifier.watchdog_s / 2)
        helpers.append(asyncio.create_task(watchdog.run(notifier.watchdog_s / 4)))
    control = (contextlib.nullcontext() if options.control_socket is None
               else control_socket(options.control_socket, loop, journal.append))
    try:
        async with control:
            return await run_realtime(loop, clock, tick_s=options.tick_s, until=until)
    finally:
        for task in helpers:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        stop.set()
        for thread in threads:
            thread.join(timeout=2.0)
        journal.flush()
        notifier.notify("STOPPING=1")


def _poll_forever(poll: Callable[[], object], period_s: float, clock: Clock,
                  stop: threading.Event) -> None:
    next_s = clock.now_s()
    while not stop.is_set():
        poll()
        next_s += period_s
        clock.sleep(max(0.0, next_s - clock.now_s()))
