"""The simulated parts of a rig: virtual patient, pump twins or emulators, line, spare syringes.

:func:`vasopilot.rig.build_rig` puts them together with the same supervisor, loop and control
mode as a real rig; nothing here holds a pump that the supervisor holds. The patient and the
line sensors keep only a pump twin's read-only readings, the spare syringes hand each spare
pump to the supervisor at once, and the fault plan pulls the twin's physical fault levers
(occlusion, infiltration, stall), which carry no rate command.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from drivers.sim.artefacts import Artefact
from drivers.sim.bedside import Outflow, SimBedside
from drivers.sim.patient import PatientParams, Scenario, VirtualPatient, draw_cohort, draw_patient
from drivers.sim.pty_port import ByteDevice, PtyPort
from drivers.sim.syringe_pump import SimLineSignals, SimSyringePump
from safety.alarms import AlarmCode
from safety.supervisor import Supervisor
from safety.view import SupervisorView
from vasopilot.core.clock import Clock
from vasopilot.core.config import MechanicsSettings, SyringeSpec
from vasopilot.core.interfaces import BeatSource, Pump
from vasopilot.rig.faults import FaultPlan, SimFault
from vasopilot.settings import RigConfig

SimPumpKind = Literal["sim", "new-era", "harvard", "bridge"]


@dataclass(frozen=True)
class SimSetup:
    """What a simulated rig simulates.

    ``params`` replaces the patient that ``seed`` draws for ``scenario``; ``pump`` replaces the
    profile's pump (``sim``: the physics twin; ``new-era``/``harvard``/``bridge``: the production
    driver on a pty to that pump's emulator). ``waveform`` detects beats in a simulated
    arterial waveform instead of taking the patient's beats. ``artefacts_per_h`` seeded random
    line artefacts until ``hours``; ``spare_syringe`` keeps a second twin loaded as the
    supervisor's standby.
    """

    scenario: Scenario = "resuscitate"
    seed: int = 1
    params: PatientParams | None = None
    pump: SimPumpKind | None = None
    waveform: bool = False
    artefacts_per_h: float = 0.0
    hours: float | None = None
    spare_syringe: bool = False
    faults: tuple[SimFault, ...] = ()
    # the line, a scenario option (docs/virtual-patient.md): carrier flow and a primed dead volume
    carrier_ml_h: float = 0.0
    primed_line: bool = True

    def patient_params(self) -> PatientParams:
        params = self.params or draw_patient(self.seed, self.scenario)
        return dataclasses.replace(params, carrier_ml_h=self.carrier_ml_h)


@dataclass
class SimWorld:
    """The simulated world of a rig, as the simulation harness steps it."""

    patient: VirtualPatient
    bedside: SimBedside
    beats: BeatSource
    line: SimLineSignals | None
    lines: JoinedLines
    plan: FaultPlan | None
    spares: SpareSyringes | None = None

    @property
    def artefacts(self) -> tuple[Artefact, ...]:
        """The line artefacts injected so far: ground truth for the metrics."""
        return self.patient.artefacts.items

    def before_step(self, now_s: float) -> None:
        """Due faults happen, and the patient is brought to ``now_s`` (also when the beats come
        from the waveform source)."""
        if self.plan is not None:
            self.plan.apply_due(now_s)
        self.bedside.advance()

    def after_step(self, view: SupervisorView, now_s: float) -> None:
        if self.spares is not None:
            self.spares.tick(view, now_s)


def open_sim_pump(
    kind: SimPumpKind, clock: Clock, config: RigConfig
) -> tuple[Pump, SimSyringePump, Callable[[], None]]:
    """The pump the supervisor will hold, the physics twin whose outflow reaches the patient,
    and what closes the emulator's pty (the supervisor closes the pump)."""
    mechanics = config.profile.pump.mechanics
    if kind == "sim":
        twin = SimSyringePump(clock, config.syringe, mechanics)
        return twin, twin, lambda: None
    from drivers.sim.emulated import start_emulated_pump

    emulated = start_emulated_pump(kind, clock, config.syringe, mechanics)
    return emulated.pump, emulated.physics, emulated.port.close


def build_world(
    setup: SimSetup, config: RigConfig, clock: Clock, supervisor: Supervisor,
    delivered: Outflow | SimSyringePump,
) -> SimWorld:
    """The virtual patient on the line of ``delivered`` (the pump twin, whose read-only
    readings are all that is kept, or the volume a real pump reports)."""
    params = setup.patient_params()
    drug = config.drug
    patient = VirtualPatient(params, setup.scenario, setup.seed, start_t_s=clock.now_s(),
                             conc_mcg_ml=drug.conc_mcg_ml)
    if setup.primed_line and not params.initial_dose_mcg_min:
        patient.prime_line(drug.conc_mcg_ml)
    if setup.artefacts_per_h > 0:
        until_t_s = None if setup.hours is None else clock.now_s() + setup.hours * 3600.0
        patient.random_artefacts(setup.artefacts_per_h, setup.seed, until_t_s=until_t_s)
    twin = delivered if isinstance(delivered, SimSyringePump) else None
    lines = JoinedLines(twin.readings if twin is not None else delivered)
    bedside = SimBedside(patient, lines, clock, drug.conc_mcg_ml)
    beats: BeatSource = bedside
    if setup.waveform:
        from drivers.pressure.beats import BeatDetector, DetectedBeatSource
        from drivers.sim.waveform import SimWaveformSource

        # the waveform renders the patient's own artefact schedule: one ground truth
        fs_hz = config.profile.pressure.fs_hz
        source = SimWaveformSource(patient.haemodynamics, fs_hz=fs_hz, seed=setup.seed,
                                   clock=clock, artefacts=patient.artefacts)
        beats = DetectedBeatSource(source, BeatDetector(fs_hz))
    line = SimLineSignals(twin.readings) if twin is not None else None
    plan = None
    if twin is not None and line is not None:
        plan = FaultPlan(setup.faults, pump=twin.faults, line=line, patient=patient)
    spares = SpareSyringes(clock, config.syringe, config.profile.pump.mechanics, lines,
                           supervisor) if setup.spare_syringe else None
    return SimWorld(patient, bedside, beats, line, lines, plan, spares)


class SpareSyringes:
    """The nurse's syringe round: a spare pump is loaded as the supervisor's standby; after each
    changeover she acknowledges its alarm and, ``reload_delay_s`` later, loads a fresh spare.
    She keeps only each pump's read-only readings; the pump itself goes to the supervisor."""

    def __init__(self, clock: Clock, syringe: SyringeSpec, mechanics: MechanicsSettings,
                 lines: JoinedLines, supervisor: Supervisor, *,
                 reload_delay_s: float = 300.0) -> None:
        self._clock = clock
        self._syringe = syringe
        self._mechanics = mechanics
        self._lines = lines
        self._supervisor = supervisor
        self._reload_delay_s = reload_delay_s
        self._reload_at_s: float | None = None

    def load(self, now_s: float) -> None:
        spare = SimSyringePump(self._clock, self._syringe, self._mechanics)
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


class JoinedLines:
    """The lines of the running and the standby pump, joined at the cannula (in mL)."""

    def __init__(self, first: Outflow) -> None:
        self.outflows = [first]

    @property
    def outflow_volume_ml(self) -> float:
        return sum(o.outflow_volume_ml for o in self.outflows)


def emulator_port(kind: Literal["new-era", "harvard", "bridge"], clock: Clock,
                  syringe: SyringeSpec, address: int, link: Path | None) -> PtyPort:
    """A stand-alone pump emulator on a pseudo-terminal, for ``vasopilot emulate``."""
    from drivers.sim.harvard_emulator import HarvardEmulator
    from drivers.sim.new_era_emulator import NewEraEmulator

    physics = SimSyringePump(clock, syringe, MechanicsSettings())
    device: ByteDevice
    if kind == "bridge":
        from firmware_bridge.emulator import BridgeEmulator

        device = BridgeEmulator(clock, physics, microstep_ul=physics.microstep_ul)
    elif kind == "new-era":
        device = NewEraEmulator(clock, {address: physics}, diameter_mm=syringe.inner_diameter_mm)
    else:
        device = HarvardEmulator(clock, {address: physics}, diameter_mm=syringe.inner_diameter_mm)
    return PtyPort(device, link=link)



def draw_patients(n: int, seed: int, scenario: Scenario, *,
                  calibration_error: bool = True) -> list[PatientParams]:
    """The ``n`` virtual patients of a cohort run; without ``calibration_error`` the same
    draws (the same patients) with their transducer's gain error taken out."""
    patients = draw_cohort(n, seed, scenario)
    if calibration_error:
        return patients
    return [dataclasses.replace(p, calibration_gain=1.0) for p in patients]


def open_loop_map(params: PatientParams, scenario: Scenario, seed: int, *, hours: float,
                  inflow_ml_h: float, conc_mcg_ml: float, sample_s: float,
                  rebound: bool = True, primed: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The patient's true MAP (times and mmHg, every ``sample_s``) under a constant inflow
    from the first second, through a line primed with the syringe's solution (unless not
    ``primed``: a wean patient's line is in steady state on its dose anyway), with no pump and
    no supervisor: the model alone (``rebound=False`` leaves out the rebound of tone)."""
    if not rebound:
        params = dataclasses.replace(params, rebound_mmhg=0.0)
    patient = VirtualPatient(params, scenario, seed, conc_mcg_ml=conc_mcg_ml, beats=False)
    if primed:
        patient.prime_line(conc_mcg_ml)
    steps = round(hours * 3600.0 / sample_s)
    t = np.arange(steps + 1) * sample_s
    map_mmhg = np.empty(steps + 1)
    map_mmhg[0] = patient.true_map_mmhg
    for i in range(1, steps + 1):
        patient.step(float(t[i]), inflow_ml_h, conc_mcg_ml)
        map_mmhg[i] = patient.true_map_mmhg
    return t, map_mmhg


def open_loop_dosing(params: PatientParams, scenario: Scenario, seed: int, *, hours: float,
                     conc_mcg_ml: float, sample_s: float,
                     dose_for: Callable[[float, float], float | None]) -> None:
    """The patient alone (line primed, no pump, no supervisor) dosed every ``sample_s`` by
    ``dose_for(t s, true MAP mmHg)`` in mcg/min, until it returns None or ``hours`` pass."""
    patient = VirtualPatient(params, scenario, seed, conc_mcg_ml=conc_mcg_ml, beats=False)
    patient.prime_line(conc_mcg_ml)
    t_s = 0.0
    while t_s < hours * 3600.0:
        dose = dose_for(t_s, patient.true_map_mmhg)
        if dose is None:
            return
        t_s += sample_s
        patient.step(t_s, dose / conc_mcg_ml * 60.0, conc_mcg_ml)


def scenario_events(params: PatientParams, scenario: Scenario,
                    seed: int) -> list[tuple[float, float, float]]:
    """(onset s, end s, amplitude mmHg) of the disturbances the patient of ``seed`` meets."""
    patient = VirtualPatient(params, scenario, seed)
    return [(e.start_t_s, e.start_t_s + e.duration_s, e.amplitude_mmhg) for e in patient.events]

