"""``vasopilot run --rig PROFILE``: run a rig in real time, resuming from its journal."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from vasopilot.cli._args import mode_name, nonnegative_float, nonnegative_int, positive_float


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a rig in real time from its profile (resumes from its journal)",
        description="Assemble the rig of a profile, resume supervision from its journal if it "
        "ran before (S13), and run the supervisor and the control mode in real time. "
        "Stop with Ctrl-C (journaled as run.ended with the dose at the end). What the pump "
        "does then is its driver's host-loss contract, printed at start: an NE-1000 in safe "
        "mode stops and alarms safe_mode_timeout_s after the host goes quiet, a Pump 11 "
        "Elite and the firmware bridge keep their last rate (the bridge with host_loss = "
        "\"stop\" stops after its host_loss_timeout_s), a GPIO stepper stops at once. "
        "`vasopilot run` again resumes from the journal.",
    )
    parser.add_argument("--rig", type=Path, required=True, help="rig profile (config/*.toml)")
    parser.add_argument("--mode", default="protocol", type=mode_name,
                        help="control mode: protocol, manual, closed-loop, wean")
    parser.add_argument("--start-dose", type=nonnegative_float, metavar="MCG_MIN",
                        help="start the infusion at this dose (an operator's act)")
    parser.add_argument("--confirm", action="store_true",
                        help="confirm a start dose above the drug's start range")
    parser.add_argument("--minutes", type=positive_float, help="stop after this many minutes")
    parser.add_argument("--patient-seed", type=nonnegative_int, default=1,
                        help="the virtual patient of a sim pressure source")
    parser.add_argument("--mqtt", metavar="URL",
                        help="publish telemetry to this broker (overrides the profile's [mqtt])")
    parser.add_argument("--rig-id", help="rig id for the MQTT topics (default: the profile's)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vasopilot.core.clock import MonotonicClock
    from vasopilot.core.events import RunEnded
    from vasopilot.core.types import RunEndReason, host_loss_text
    from vasopilot.journal import Journal
    from vasopilot.local_control import clear_stale, socket_path
    from vasopilot.serve import ServeOptions, open_rig, serve
    from vasopilot.settings import load_rig, notices
    from vasopilot.simulate import MODES
    from vasopilot.telemetry import telemetry_for, with_rig_id

    config = with_rig_id(load_rig(args.rig, hardware=True), args.rig_id)
    for notice in notices(config):
        print(f"vasopilot run: note: {notice}", file=sys.stderr)
    if config.profile.pump.driver == "gpio-stepper":
        # The step thread shares the interpreter lock with the rest of the runtime; a short
        # switch interval keeps its p99 lateness near 6-13 ms instead of 20-35 ms
        # (bench/step_timing.py --gil-load), within one microstep per 2-minute window.
        sys.setswitchinterval(0.0005)
    clock = MonotonicClock()
    control = socket_path(config.journal_path)
    # before the journal opens: a second rig on it must not journal a start
    clear_stale(control)
    options = ServeOptions(mode=args.mode, start_dose_mcg_min=args.start_dose,
                           soft_limit_confirmed=args.confirm, minutes=args.minutes,
                           patient_seed=args.patient_seed, control_socket=control)
    with Journal(config.journal_path, clock) as journal, \
            telemetry_for(config, journal, url=args.mqtt, rig_id=args.rig_id) as telemetry:
        rig = open_rig(config, journal, clock, MODES[args.mode](), options, console=_say)
        try:
            contract = host_loss_text(rig.host_loss, rig.host_loss_after_s)
            _say(f"if this process stops, {contract}")
            if telemetry is not None:
                telemetry.bind_loop(rig.loop)
            reason = RunEndReason.TIMED
            try:
                asyncio.run(serve(rig, clock, journal, options))
            except KeyboardInterrupt:
                reason = RunEndReason.OPERATOR
            view = rig.supervisor.view(clock.now_s())
            with rig.loop.journal_guard():
                journal.append(RunEnded(
                    t_s=view.t_s, reason=reason, dose_mcg_min=view.dose_mcg_min,
                    rate_ml_h=view.rate_ml_h, running=view.running, host_loss=rig.host_loss,
                    host_loss_after_s=rig.host_loss_after_s))
        finally:
            rig.close()
    ended = "stopped by the operator" if reason is RunEndReason.OPERATOR else "time is up"
    print(f"vasopilot run: {ended} at {view.dose_mcg_min:.2f} mcg/min, "
          f"{len(view.alarms)} active alarm(s); now {contract}; `vasopilot run` again "
          f"resumes; journal {config.journal_path}")
    return 0


def _say(line: str) -> None:
    print(f"vasopilot run: {line}", file=sys.stderr, flush=True)
