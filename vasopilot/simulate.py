"""``vasopilot sim``: a whole rig on simulated hardware and a virtual patient, on a virtual clock.

The same supervisor, control modes and rig loop as a real rig; only the pump (a physics twin or
an emulator speaking a real pump's bytes) and the pressure source (the virtual patient) differ.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel

from drivers.sim.artefacts import Artefact
from drivers.sim.bedside import Outflow, SimBedside
from drivers.sim.patient import PatientParams, VirtualPatient, draw_patient
from drivers.sim.syringe_pump import SimLineSignals, SimSyringePump
from safety.alarms import AlarmCode
from safety.supervisor import Supervisor, SupervisorView
from vasopilot.control.base import Controller
from vasopilot.control.closed_loop import ClosedLoopController
from vasopilot.control.manual import ManualMode
from vasopilot.control.protocol import NurseProtocol
from vasopilot.control.wean import WeanController
from vasopilot.core.clock import MonotonicClock, VirtualClock
from vasopilot.core.events import AlarmRaised, DoseApplied, DoseRefused, Event, RunStarted
from vasopilot.core.interfaces import BeatSource, Pump
from vasopilot.core.types import DoseRequest, Requester
from vasopilot.faults import FaultPlan, SimFault
from vasopilot.metrics import map_metrics
from vasopilot.runtime import LoopTimings, RigLoop
from vasopilot.settings import RigConfig

Scenario = Literal["resuscitate", "wean", "disturbance"]
Mode = Literal["protocol", "manual", "closed-loop"]
PumpKind = Literal["sim", "new-era", "harvard"]

MODES: dict[str, Callable[[], Controller]] = {
    "protocol": NurseProtocol,
    "manual": ManualMode,
    "closed-loop": ClosedLoopController,
    "wean": WeanController,
}


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
    # refused, when the trusted MAP is below target (or the request lowers the dose)
    nurse_confirms_soft_max: bool = False
    # a second twin pump with a fresh syringe, loaded at the start as the supervisor's standby
    # (S10 changeover): a refractory patient empties a 50 mL syringe within a 4 h run
    spare_syringe: bool = False
    faults: tuple[SimFault, ...] = ()


class SimSummary(BaseModel):
    """The ``vasopilot sim --json`` contract: exactly these keys."""

    scenario: str
    hours: float
    seed: int
    time_in_target_pct: float
    map_below_65_pct: float
    total_drug_mcg: float
    alarms: int
    dose_changes: int


@dataclass
class SimResult:
    options: SimOptions
    summary: SimSummary
    target_map_mmhg: float
    true_map: list[tuple[float, float]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    # the injected artefacts: ground truth for "dose increases while an artefact was present"
    artefacts: tuple[Artefact, ...] = ()


@contextmanager
def _open_pump(
    kind: PumpKind, clock: VirtualClock, config: RigConfig
) -> Iterator[tuple[Pump, SimSyringePump]]:
    """The pump the supervisor holds, and the physics twin whose outflow reaches the patient."""
    mechanics = config.profile.pump.mechanics
    if kind == "sim":
        twin = SimSyringePump(clock, config.syringe, mechanics)
        yield twin, twin
        return
    from drivers.pump import start_emulated_pump

    emulated = start_emulated_pump(kind, clock, config.syringe, mechanics)
    try:
        yield emulated.pump, emulated.physics
    finally:
        emulated.close()


def run_sim(
    config: RigConfig,
    options: SimOptions,
    *,
    clock: VirtualClock | None = None,
    sink: Callable[[Event], Event] | None = None,
    progress: Callable[[float], None] | None = None,
    realtime: bool = False,
    params: PatientParams | None = None,
    on_loop: Callable[[RigLoop], None] | None = None,
    controller_for: Callable[[VirtualPatient], Controller] | None = None,
) -> SimResult:
    """Run one scenario; ``sink`` (default: none) also receives every event, in order.

    ``realtime`` paces the virtual clock against the monotonic clock, so telemetry and a
    terminal monitor can be watched as on a real rig. ``params`` replaces the patient that
    ``options.seed`` draws (cohort runs draw their own). ``on_loop`` receives the rig loop once
    it is built, before the first step (telemetry binds to it to take views and commands).
    ``controller_for`` builds the controller from the virtual patient instead of
    ``options.mode`` (the benchmark's perfect-information bound, which reads the model).
    """
    clock = clock or VirtualClock()
    events: list[Event] = []

    nurse: SoftMaxNurse | None = None

    def record(event: Event) -> Event:
        stamped = sink(event) if sink is not None else event
        events.append(stamped)
        if nurse is not None and isinstance(stamped, DoseRefused):
            nurse.on_refusal(stamped)
        return stamped

    params = params or draw_patient(options.seed, options.scenario)
    patient = VirtualPatient(params, options.scenario, options.seed,
                             conc_mcg_ml=config.drug.conc_mcg_ml)
    if options.artefacts_per_h > 0:
        patient.random_artefacts(options.artefacts_per_h, options.seed,
                                 until_t_s=options.hours * 3600.0)
    drug = config.drug
    target = params.target_map_mmhg
    patient_settings = config.profile.patient.model_copy(update={"target_map_mmhg": target})
    with ExitStack() as stack:
        pump, twin = stack.enter_context(_open_pump(options.pump, clock, config))
        supervisor = Supervisor(
            pump, drug=drug, patient=patient_settings, safety=config.profile.safety,
            syringe=config.syringe, sink=_SinkAdapter(record),
        )
        controller = (controller_for(patient) if controller_for is not None
                      else MODES[options.mode]())
        lines = _JoinedLines(twin.readings)
        spares = _SpareSyringes(clock, config, lines, supervisor) if options.spare_syringe \
            else None
        bedside = SimBedside(patient, lines, clock, drug.conc_mcg_ml)
        beats: BeatSource = bedside
        if options.waveform:
            from drivers.pressure.beats import BeatDetector, DetectedBeatSource
            from drivers.sim.waveform import SimWaveformSource

            # the waveform renders the patient's own artefact schedule: one ground truth
            source = SimWaveformSource(patient.haemodynamics, fs_hz=config.profile.pressure.fs_hz,
                                       seed=options.seed, clock=clock,
                                       artefacts=patient.artefacts)
            beats = DetectedBeatSource(source, BeatDetector(config.profile.pressure.fs_hz))
        line = SimLineSignals(twin.readings)
        loop = RigLoop(supervisor, beats, controller, record, line=line, timings=LoopTimings())
        plan = FaultPlan(options.faults, pump=twin.faults, line=line, patient=patient)
        if options.nurse_confirms_soft_max:
            nurse = SoftMaxNurse(loop)
        if on_loop is not None:
            on_loop(loop)
        record(RunStarted(
            t_s=0.0, wall=clock.wall_label(), rig_id=config.profile.rig_id, mode=options.mode,
            scenario=options.scenario, seed=options.seed, target_map_mmhg=target,
            lower_limit_mmhg=patient_settings.lower_limit_mmhg, conc_mcg_ml=drug.conc_mcg_ml,
            weight_kg=patient_settings.weight_kg,
        ))
        start_dose = params.initial_dose_mcg_min or options.start_dose_mcg_min
        if params.initial_dose_mcg_min and isinstance(controller, NurseProtocol):
            # the wean scenario takes over an infusion already running at steady state
            controller.weaning = True
        if spares is not None:
            spares.load(0.0)
        supervisor.start(start_dose, 0.0, soft_limit_confirmed=True)
        true_map = _run_loop(clock, options, bedside=bedside, loop=loop, plan=plan,
                             spares=spares, progress=progress,
                             pace=MonotonicClock() if realtime else None)
        delivered_mcg = lines.outflow_volume_ml * drug.conc_mcg_ml
    metrics = map_metrics([t for t, _ in true_map], [m for _, m in true_map], target)
    summary = SimSummary(
        scenario=options.scenario,
        hours=options.hours,
        seed=options.seed,
        time_in_target_pct=round(metrics.time_in_target_pct, 2),
        map_below_65_pct=round(metrics.map_below_65_pct, 2),
        total_drug_mcg=round(delivered_mcg, 1),
        alarms=sum(isinstance(e, AlarmRaised) for e in events),
        dose_changes=sum(isinstance(e, DoseApplied) for e in events),
    )
    return SimResult(options, summary, target, true_map, events, patient.artefacts.items)


def _run_loop(
    clock: VirtualClock,
    options: SimOptions,
    *,
    bedside: SimBedside,
    loop: RigLoop,
    plan: FaultPlan,
    spares: _SpareSyringes | None,
    progress: Callable[[float], None] | None,
    pace: MonotonicClock | None,
) -> list[tuple[float, float]]:
    end_s = options.hours * 3600.0
    steps = round(end_s / options.dt_s)
    samples_every = max(1, round(1.0 / options.dt_s))
    report_every = max(1, steps // 200)
    patient = bedside.patient
    true_map = [(0.0, patient.true_map_mmhg)]
    wall_start_s = pace.now_s() if pace else 0.0
    for i in range(1, steps + 1):
        now_s = clock.advance_to(i * options.dt_s)
        if pace is not None:
            pace.sleep(wall_start_s + now_s - pace.now_s())
        plan.apply_due(now_s)
        # the patient must be current even when the beats come from the waveform source
        bedside.advance()
        view = loop.step(now_s)
        if spares is not None:
            spares.tick(view, now_s)
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
    confirmed (journaled as such, sender ``bench nurse``), at the loop's next step. The hard
    maximum and the slew limits still apply.
    """

    SENDER = "bench nurse"

    def __init__(self, loop: RigLoop) -> None:
        self._loop = loop

    def on_refusal(self, refused: DoseRefused) -> None:
        if refused.code != "SOFT_MAX" or refused.requester is Requester.OPERATOR:
            return
        self._loop.submit(lambda now_s: self._confirm(refused.requested_dose_mcg_min, now_s))

    def _confirm(self, dose_mcg_min: float, now_s: float) -> None:
        view = self._loop.supervisor.view(now_s)
        lowers = dose_mcg_min < view.dose_mcg_min
        low_map = (view.map_trusted and view.last_good_map_mmhg is not None
                   and view.last_good_map_mmhg < view.target_map_mmhg)
        if view.running and (lowers or low_map):
            self._loop.supervisor.request(DoseRequest(
                dose_mcg_min, Requester.OPERATOR,
                f"nurse confirms {dose_mcg_min:.2f} mcg/min above the soft maximum",
                soft_limit_confirmed=True, sender=self.SENDER), now_s)


class _SpareSyringes:
    """The nurse's syringe round: a spare pump is loaded as the supervisor's standby; after each
    changeover she acknowledges its alarm and, ``reload_delay_s`` later, loads a fresh spare.
    She keeps only each pump's read-only readings; the pump itself goes to the supervisor."""

    def __init__(self, clock: VirtualClock, config: RigConfig, lines: _JoinedLines,
                 supervisor: Supervisor, *, reload_delay_s: float = 300.0) -> None:
        self._clock = clock
        self._config = config
        self._lines = lines
        self._supervisor = supervisor
        self._reload_delay_s = reload_delay_s
        self._reload_at_s: float | None = None

    def load(self, now_s: float) -> None:
        spare = SimSyringePump(self._clock, self._config.syringe,
                               self._config.profile.pump.mechanics)
        self._lines.outflows.append(spare.readings)
        self._supervisor.set_standby(spare, now_s, by="sim: spare syringe")

    def tick(self, view: SupervisorView, now_s: float) -> None:
        if self._reload_at_s is None:
            if any(a.code == AlarmCode.CHANGEOVER for a in view.alarms):
                self._supervisor.acknowledge(AlarmCode.CHANGEOVER, now_s, by="sim: nurse")
                self._reload_at_s = now_s + self._reload_delay_s
        elif now_s >= self._reload_at_s:
            self._reload_at_s = None
            self.load(now_s)


class _JoinedLines:
    """The lines of the running and the standby pump, joined at the cannula (in mL)."""

    def __init__(self, first: Outflow) -> None:
        self.outflows = [first]

    @property
    def outflow_volume_ml(self) -> float:
        return sum(o.outflow_volume_ml for o in self.outflows)


class _SinkAdapter:
    """Lets a plain callable serve as the supervisor's event sink."""

    def __init__(self, record: Callable[[Event], Event]) -> None:
        self._record = record

    def append(self, event: Event) -> Event:
        return self._record(event)
