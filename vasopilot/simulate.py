"""``vasopilot sim``: a whole rig on simulated hardware and a virtual patient, on a virtual clock.

The same supervisor, control modes and rig loop as a real rig; only the pump (a physics twin or
an emulator speaking a real pump's bytes) and the pressure source (the virtual patient) differ.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel

from safety.supervisor import EventSink, StopReason
from safety.view import SupervisorView
from vasopilot.control.base import Controller
from vasopilot.control.closed_loop import ClosedLoopController
from vasopilot.control.manual import ManualMode
from vasopilot.control.mpc import LineModel, MpcController
from vasopilot.control.protocol import NurseProtocol
from vasopilot.control.wean import WeanController
from vasopilot.core.clock import MonotonicClock, VirtualClock
from vasopilot.core.events import (
    AlarmCode,
    AlarmRaised,
    BeatSummary,
    DoseApplied,
    DoseChange,
    DoseRefused,
    Event,
    RunStarted,
)
from vasopilot.core.types import GOOD, DoseRequest, Requester, VolumeAnswer
from vasopilot.metrics import BandMetrics, MapBand, band_metrics
from vasopilot.rig import Rig, build_rig
from vasopilot.rig.faults import SimFault
from vasopilot.rig.sim import SimPumpKind, SimSetup, SimWorld
from vasopilot.runtime import MemorySink, RigLoop
from vasopilot.settings import RigConfig

if TYPE_CHECKING:
    from drivers.sim.artefacts import Artefact
    from drivers.sim.patient import PatientParams, VirtualPatient

Scenario = Literal["resuscitate", "wean", "disturbance"]
Mode = Literal["protocol", "manual", "closed-loop"]
PumpKind = SimPumpKind

MODES: dict[str, Callable[[], Controller]] = {
    "protocol": NurseProtocol,
    "manual": ManualMode,
    "closed-loop": MpcController,  # on a rig: the line of LineModel's defaults
    "pi": ClosedLoopController,
    "wean": WeanController,
}


def make_controller(mode: str, line: LineModel) -> Controller:
    """The mode's controller; the model-predictive ones (closed loop, wean) dose through
    ``line``, known exactly."""
    if mode == "closed-loop":
        return MpcController(line)
    if mode == "wean":
        return WeanController(line)
    return MODES[mode]()


@dataclass(frozen=True)
class SimOptions:
    scenario: Scenario = "resuscitate"
    hours: float = 2.0
    seed: int = 1
    mode: str = "protocol"
    pump: PumpKind = "sim"
    waveform: bool = False
    dt_s: float = 0.5
    start_dose_mcg_min: float = 10.0
    # seeded random line artefacts (flush, sampling, zeroing, ...) per hour; 0: a clean line
    artefacts_per_h: float = 0.0
    # a simulated bedside nurse confirms a dose above the soft maximum that the supervisor
    # refused, when the trusted MAP is below target (or the request lowers the dose), and
    # answers the volume check after a few minutes
    nurse_confirms_soft_max: bool = False
    # a second twin pump with a fresh syringe, loaded at the start as the supervisor's standby
    # (S10 changeover): a refractory patient empties a 50 mL syringe within a 4 h run
    spare_syringe: bool = False
    faults: tuple[SimFault, ...] = ()
    # the line is a scenario setting (docs/virtual-patient.md): carrier flow in mL/h, and whether
    # the dead volume starts filled with the infusion, as clinical practice primes it
    carrier_ml_h: float = 0.0
    primed_line: bool = True


class SimStop(BaseModel):
    """One stop the supervisor made: why (never ``weaned``: the last weaning step is no
    stop), and when (s from the start)."""

    reason: StopReason
    t_s: float


class SimSummary(BaseModel):
    """The ``vasopilot sim --json`` contract: exactly these keys.

    ``time_in_target_pct`` and ``map_below_65_pct`` are about the model's true MAP and the
    run's :class:`~vasopilot.metrics.MapBand`: in the band [F, F + 10] after the first 10
    minutes, and below the floor F (65 mmHg unless the profile's target says otherwise).
    """

    scenario: str
    hours: float
    seed: int
    time_in_target_pct: float
    map_below_65_pct: float
    total_drug_mcg: float
    alarms: int
    dose_changes: int
    stops: list[SimStop]


@dataclass(frozen=True)
class SensorErrors:
    """How the simulated monitor misreads the patient: monitor MAP = gain × true MAP + offset
    (a transducer calibration error and a levelling error of the transducer's height)."""

    gain: float
    offset_mmhg: float

    def label(self) -> str:
        return (f"monitor MAP = {self.gain:.3f} × true MAP {self.offset_mmhg:+.1f} mmHg "
                "(transducer gain, levelling offset)")


@dataclass
class SimResult:
    options: SimOptions
    summary: SimSummary
    target_map_mmhg: float  # the set-point the supervisor holds, floor + 5
    floor_mmhg: float
    true_map: list[tuple[float, float]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    # the injected artefacts: ground truth for "dose increases while an artefact was present"
    artefacts: tuple[Artefact, ...] = ()
    sensor: SensorErrors = SensorErrors(1.0, 0.0)

    @property
    def band(self) -> MapBand:
        return MapBand(self.floor_mmhg)

    @property
    def monitor_map(self) -> list[tuple[float, float]]:
        """The MAP the rig read: its trusted beat summaries, (t_s, mmHg)."""
        return [(e.t_s, e.map_mmhg) for e in self.events
                if isinstance(e, BeatSummary) and e.quality == GOOD and e.map_mmhg is not None]

    def band_metrics(self, which: Literal["true", "monitor"]) -> BandMetrics:
        series = self.true_map if which == "true" else self.monitor_map
        return band_metrics([t for t, _ in series], [m for _, m in series], self.band)


def run_sim(
    config: RigConfig,
    options: SimOptions,
    *,
    clock: VirtualClock | None = None,
    sink: EventSink | None = None,
    progress: Callable[[float], None] | None = None,
    realtime: bool = False,
    params: PatientParams | None = None,
    on_loop: Callable[[RigLoop], None] | None = None,
    controller_for: Callable[[VirtualPatient], Controller] | None = None,
    console: Callable[[str], None] | None = None,
) -> SimResult:
    """Run one scenario; ``sink`` (default: in memory) records every event, in order.

    ``realtime`` paces the virtual clock against the monotonic clock, so telemetry and a
    terminal monitor can be watched as on a real rig. ``params`` replaces the patient that
    ``options.seed`` draws (cohort runs draw their own). ``on_loop`` receives the rig loop once
    it is built, before the first step (telemetry binds to it to take views and commands).
    ``controller_for`` builds the controller from the virtual patient instead of
    ``options.mode`` (the benchmark's perfect-information bound, which reads the model).
    ``console`` receives the loop's lines for people (a journal fault and its end).
    """
    clock = clock or VirtualClock()
    setup = SimSetup(scenario=options.scenario, seed=options.seed, params=params,
                     pump=options.pump, waveform=options.waveform,
                     artefacts_per_h=options.artefacts_per_h, hours=options.hours,
                     spare_syringe=options.spare_syringe, faults=options.faults,
                     carrier_ml_h=options.carrier_ml_h, primed_line=options.primed_line)
    params = setup.patient_params()
    # the supervisor is given the patient's floor F: set-point F + 5, lower limit F - 5 (S6)
    patient_settings = config.profile.patient.with_floor(params.floor_mmhg)
    target = patient_settings.setpoint_mmhg
    config = dataclasses.replace(
        config, profile=config.profile.model_copy(update={"patient": patient_settings}))
    recorder = _Recorder(sink if sink is not None else MemorySink())
    # An oracle needs the patient that the rig builder makes: manual mode holds its place
    # until then (no step runs in between).
    line = LineModel(dead_volume_ml=params.dead_volume_ml, carrier_ml_h=params.carrier_ml_h,
                     conc_mcg_ml=config.drug.conc_mcg_ml,
                     primed=options.primed_line or bool(params.initial_dose_mcg_min))
    first = (ManualMode() if controller_for is not None
             else make_controller(options.mode, line))
    rig = build_rig(config, clock=clock, sink=recorder, controller=first, sim=setup,
                    console=console)
    try:
        world = rig.sim
        assert world is not None
        if controller_for is not None:
            rig.loop.set_controller(controller_for(world.patient))
        controller = rig.loop.controller
        if options.nurse_confirms_soft_max:
            recorder.nurse = SoftMaxNurse(rig.loop, world.patient)
        if on_loop is not None:
            on_loop(rig.loop)
        drug = config.drug
        recorder.append(RunStarted(
            t_s=0.0, wall=clock.wall_label(), rig_id=config.profile.rig_id, mode=options.mode,
            scenario=options.scenario, seed=options.seed, target_map_mmhg=target,
            lower_limit_mmhg=patient_settings.lower_limit_mmhg, conc_mcg_ml=drug.conc_mcg_ml,
            weight_kg=patient_settings.weight_kg, dose_unit=drug.dose_unit,
        ))
        start_dose = params.initial_dose_mcg_min or options.start_dose_mcg_min
        if params.initial_dose_mcg_min and isinstance(controller, NurseProtocol):
            # the wean scenario takes over an infusion already running at steady state
            controller.weaning = True
        if world.spares is not None:
            world.spares.load(0.0)
        rig.supervisor.start(start_dose, 0.0, soft_limit_confirmed=True)
        true_map = _run_loop(clock, options, rig=rig, world=world, progress=progress,
                             pace=MonotonicClock() if realtime else None, nurse=recorder.nurse)
        delivered_mcg = world.lines.outflow_volume_ml * drug.conc_mcg_ml
    finally:
        rig.close()
    events = recorder.events
    truth = band_metrics([t for t, _ in true_map], [m for _, m in true_map],
                         MapBand(params.floor_mmhg))
    summary = SimSummary(
        scenario=options.scenario,
        hours=options.hours,
        seed=options.seed,
        time_in_target_pct=round(truth.in_band_pct, 2),
        map_below_65_pct=round(truth.below_floor_pct, 2),
        total_drug_mcg=round(delivered_mcg, 1),
        alarms=sum(isinstance(e, AlarmRaised) for e in events),
        dose_changes=sum(isinstance(e, DoseApplied) for e in events),
        stops=_stops(events),
    )
    sensor = SensorErrors(params.calibration_gain, params.transducer_offset_mmhg)
    return SimResult(options, summary, target, params.floor_mmhg, true_map, events,
                     world.artefacts, sensor)


class _Recorder:
    """The sink of a simulated run: every event goes to ``sink`` first, then into the run's
    list, and a refusal to the simulated nurse (if there is one)."""

    def __init__(self, sink: EventSink) -> None:
        self._sink = sink
        self.events: list[Event] = []
        self.nurse: SoftMaxNurse | None = None

    def append(self, event: Event) -> Event:
        stamped = self._sink.append(event)
        self.events.append(stamped)
        if self.nurse is not None:
            self.nurse.on_event(stamped)
        return stamped

    def flush_pending(self) -> bool:
        return self._sink.flush_pending()


def _stops(events: list[Event]) -> list[SimStop]:
    stops = []
    for event in events:
        if isinstance(event, DoseApplied) and event.change is DoseChange.STOP \
                and event.stop_reason not in (None, StopReason.WEANED):
            stops.append(SimStop(reason=event.stop_reason, t_s=event.t_s))
    return stops


def _run_loop(
    clock: VirtualClock,
    options: SimOptions,
    *,
    rig: Rig,
    world: SimWorld,
    progress: Callable[[float], None] | None,
    pace: MonotonicClock | None,
    nurse: SoftMaxNurse | None = None,
) -> list[tuple[float, float]]:
    end_s = options.hours * 3600.0
    steps = round(end_s / options.dt_s)
    samples_every = max(1, round(1.0 / options.dt_s))
    report_every = max(1, steps // 200)
    patient = world.patient
    true_map = [(0.0, patient.true_map_mmhg)]
    wall_start_s = pace.now_s() if pace else 0.0
    for i in range(1, steps + 1):
        now_s = clock.advance_to(i * options.dt_s)
        if pace is not None:
            pace.sleep(wall_start_s + now_s - pace.now_s())
        world.before_step(now_s)
        if nurse is not None:
            nurse.step(now_s)
        view = rig.loop.step(now_s)
        if nurse is not None:
            view = nurse.after_step(now_s) or view
        world.after_step(view, now_s)
        if i % samples_every == 0:
            true_map.append((now_s, patient.true_map_mmhg))
        if progress is not None and i % report_every == 0:
            progress(now_s / end_s)
    return true_map


class SoftMaxNurse:
    """The bedside nurse of a cohort run, the same for every controller: refractory patients
    need more than the soft maximum, which S2 refuses to automatic requests. When such a
    refusal comes and the trusted MAP is below target, or the request lowers a dose already
    above the soft maximum, the nurse sends the same dose as an operator with the soft limit
    confirmed (journaled as such, sender ``bench nurse``), at once: in the same loop step, so
    on the beats the controller decided on (a confirmation one step later would raise on 2 s
    of beats nobody has seen, where an artefact can have begun). The hard maximum and the slew
    limits still apply.

    The nurse answers a volume check (GR1) :data:`VOLUME_ANSWER_DELAY_S` after it is raised:
    "fluid given" while the trusted MAP is under the floor and fewer than
    :data:`MAX_BOLUSES` boluses were given (the patient's MAP0 then responds as the patient
    does, see ``VirtualPatient.give_fluid``), "assessed" otherwise.
    """

    SENDER = "bench nurse"
    VOLUME_ANSWER_DELAY_S = 300.0
    MAX_BOLUSES = 2

    def __init__(self, loop: RigLoop, patient: VirtualPatient) -> None:
        self._loop = loop
        self._patient = patient
        self._answer_due_s: float | None = None
        self._pending: list[float] = []

    def on_event(self, event: Event) -> None:
        if isinstance(event, DoseRefused):
            self.on_refusal(event)
        elif isinstance(event, AlarmRaised) and event.code is AlarmCode.VOLUME_CHECK \
                and self._answer_due_s is None:
            self._answer_due_s = event.t_s + self.VOLUME_ANSWER_DELAY_S

    def step(self, now_s: float) -> None:
        if self._answer_due_s is not None and now_s >= self._answer_due_s:
            self._answer_due_s = None
            self._loop.submit(self._answer)

    def on_refusal(self, refused: DoseRefused) -> None:
        if refused.code != "SOFT_MAX" or refused.requester is Requester.OPERATOR:
            return
        self._pending.append(refused.requested_dose_mcg_min)

    def after_step(self, now_s: float) -> SupervisorView | None:
        """Confirm the refusals of this step (the view after, if there were any)."""
        if not self._pending:
            return None
        doses, self._pending = self._pending, []
        with self._loop.journal_guard():
            for dose in doses:
                self._confirm(dose, now_s)
        return self._loop.supervisor.view(now_s)

    def _answer(self, now_s: float) -> None:
        view = self._loop.supervisor.view(now_s)
        if not view.volume_check_open:
            return
        if _map_below_target(view) and self._patient.boluses < self.MAX_BOLUSES:
            self._patient.give_fluid(now_s)
            answer = VolumeAnswer.FLUID_GIVEN
        else:
            answer = VolumeAnswer.ASSESSED
        self._loop.supervisor.answer_volume_check(answer, now_s, by=self.SENDER)

    def _confirm(self, dose_mcg_min: float, now_s: float) -> None:
        view = self._loop.supervisor.view(now_s)
        lowers = dose_mcg_min < view.dose_mcg_min
        if view.running and (lowers or _map_below_target(view)):
            self._loop.supervisor.request(DoseRequest(
                dose_mcg_min, Requester.OPERATOR,
                f"nurse confirms {dose_mcg_min:.2f} mcg/min above the soft maximum",
                soft_limit_confirmed=True, sender=self.SENDER), now_s)


def _map_below_target(view: SupervisorView) -> bool:
    return (view.map_trusted and view.last_good_map_mmhg is not None
            and view.last_good_map_mmhg < view.target_map_mmhg)
