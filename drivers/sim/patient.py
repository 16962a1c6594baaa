"""The virtual patient of docs/virtual-patient.md: line, PK, effect site, PD, disease course, beats.

The pump's own start-up lag is not modelled here: :class:`~drivers.sim.syringe_pump.
SimSyringePump` already produces it from slack and compliance, and the patient consumes the
flow that really leaves the line, so counting it twice would double the delay.

Integration is RK4 on a fixed 0.5 s grid anchored at ``start_t_s``. :meth:`VirtualPatient.step`
accumulates the drug delivered between grid points and integrates whole grid steps with the
interval's mean flow, so the trajectory does not depend on how the caller chunks time. All
state is plain floats: a 4 h patient costs a fraction of a second.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from drivers.sim.artefacts import (
    CALIBRATION_HIGH_MMHG,
    CALIBRATION_LOW_MMHG,
    FLUSH_MMHG,
    Artefact,
    ArtefactKind,
    ArtefactSchedule,
)
from vasopilot.core.types import GOOD, Beat, BeatQuality
from vasopilot.core.units import MINUTES_PER_HOUR, SECONDS_PER_MIN

Scenario = Literal["resuscitate", "disturbance", "wean"]
Stratum = Literal["responsive", "typical", "refractory", "hypertensive", "stable"]

STEP_S = 0.5
_STEP_MIN = STEP_S / SECONDS_PER_MIN  # the ODEs are per minute
# a grid point is due once this much has accumulated (float slack of the chunks)
_GRID_DUE_S = STEP_S - 1e-9
# docs/virtual-patient.md: the set-point sits this far above the floor, the band is [F, F + 10]
SETPOINT_ABOVE_FLOOR_MMHG = 5.0
MMHG_PER_CM = 0.74  # transducer level error: hydrostatic column of blood per cm
# Drug rate at which the rebound knob's suppression of own vascular tone is half developed.
REBOUND_HALF_MCG_MIN = 5.0
_NOISE_BLOCK = 4096
# Share of patients whose MAP0 responds to a fluid bolus, and how long the rise lasts (s).
FLUID_RESPONDERS = 0.5
FLUID_EFFECT_S = 90 * 60.0

# line drug mass (mcg), plasma and effect-site level (ng/mL), own-tone suppression (0..1)
_DrugState = tuple[float, float, float, float]
# where a forecast reads a delayed rate: (the recorded rate, index -1), or between two of the
# forecast's own rates (their indices and weights)
_DelayedRead = tuple[float, int, int, float, float]


@dataclass(frozen=True, slots=True)
class PatientParams:
    """One patient. Units in names; C in ng/mL (= µg/L), doses in µg/min (= mcg/min).

    ``floor_mmhg`` is the clinical floor F; the set-point is F + 5 (:attr:`setpoint_mmhg`).
    ``ec50_factor`` is the potency stress factor on EC50 (10 = ten times less potent).
    ``initial_dose_mcg_min`` is the dose the patient is in steady state on at the start (wean).
    ``rebound_mmhg`` is the rebound knob: the patient's own tone, suppressed by a long infusion,
    lowers MAP0 by up to this much and recovers with ``rebound_tau_min``. It acts on MAP0, not
    on q_endo as docs/virtual-patient.md sketches, because endogenous noradrenaline is worth only
    Emax·H(C_base) ≈ 1–3 mmHg at EC50 ≈ 5 ng/mL, too little for any rebound to show.
    """

    stratum: Stratum
    floor_mmhg: float
    weight_kg: float
    dead_volume_ml: float
    carrier_ml_h: float
    input_lag_s: float
    cl_l_min: float
    v_l: float
    q_endo_mcg_min: float
    ke0_per_min: float
    emax_mmhg: float
    ec50_ng_ml: float
    ec50_factor: float
    gamma: float
    map0_mmhg: float
    ou_tau_min: float
    ou_sigma_mmhg: float
    recovery_mmhg: float
    recovery_h: float
    rebound_mmhg: float
    rebound_tau_min: float
    hr_bpm: float
    hr_variability: float
    pulse_pressure_mmhg: float
    resp_rate_per_min: float
    resp_variation_mmhg: float
    noise_sd_mmhg: float
    transducer_height_cm: float
    calibration_gain: float
    initial_dose_mcg_min: float = 0.0

    @property
    def setpoint_mmhg(self) -> float:
        return self.floor_mmhg + SETPOINT_ABOVE_FLOOR_MMHG

    def monitor_map_mmhg(self, true_map_mmhg: float) -> float:
        """What the monitor shows for ``true_map_mmhg``: calibration gain and levelling offset
        included, beat noise and respiration left out (docs/virtual-patient.md, Metrics)."""
        return self.calibration_gain * true_map_mmhg + self.transducer_offset_mmhg

    @property
    def ec50_effective_ng_ml(self) -> float:
        return self.ec50_ng_ml * self.ec50_factor

    @property
    def c_base_ng_ml(self) -> float:
        """Plasma level from endogenous production alone."""
        return self.q_endo_mcg_min / self.cl_l_min

    @property
    def half_life_min(self) -> float:
        return math.log(2.0) * self.v_l / self.cl_l_min

    @property
    def transducer_offset_mmhg(self) -> float:
        return MMHG_PER_CM * self.transducer_height_cm

    def occupancy(self, c_ng_ml: float) -> float:
        """H(C) = C^γ / (C^γ + EC50^γ)."""
        if c_ng_ml <= 0:
            return 0.0
        x = float((c_ng_ml / self.ec50_effective_ng_ml) ** self.gamma)
        return x / (1.0 + x)

    def rebound_suppression(self, rate_mcg_min: float) -> float:
        """Steady-state share (0..1) of ``rebound_mmhg`` developed on ``rate_mcg_min``."""
        return rate_mcg_min / (rate_mcg_min + REBOUND_HALF_MCG_MIN) if rate_mcg_min > 0 else 0.0

    def need_mcg_min(self, map0_mmhg: float | None = None,
                     target_mmhg: float | None = None) -> float:
        """Steady-state dose that holds ``target_mmhg`` (default: the set-point) at
        ``map0_mmhg`` (inf: unreachable)."""
        map0 = self.map0_mmhg if map0_mmhg is None else map0_mmhg
        target = self.setpoint_mmhg if target_mmhg is None else target_mmhg
        h = self.occupancy(self.c_base_ng_ml) + (target - map0) / self.emax_mmhg
        if h >= 1.0:
            return math.inf
        if h <= 0.0:
            return 0.0
        ce = self.ec50_effective_ng_ml * float((h / (1.0 - h)) ** (1.0 / self.gamma))
        return max(0.0, self.cl_l_min * ce - self.q_endo_mcg_min)

    def steady_need_mcg_min(self, map0_mmhg: float | None = None,
                            target_mmhg: float | None = None) -> float:
        """:meth:`need_mcg_min` with the rebound knob's suppression at that very dose (found by
        fixed-point iteration; it saturates, so it settles): the dose that holds the target
        for good, as the cohort's reachable / out-of-reach strata count it."""
        map0 = self.map0_mmhg if map0_mmhg is None else map0_mmhg
        need = self.need_mcg_min(map0, target_mmhg)
        for _ in range(30):
            if math.isinf(need):
                break
            need = self.need_mcg_min(map0 - self.rebound_mmhg * self.rebound_suppression(need),
                                     target_mmhg)
        return need

    def is_refractory(self, map0_mmhg: float | None = None) -> bool:
        """Needs more than 0.5 mcg/kg/min, or cannot reach the target at all."""
        return self.need_mcg_min(map0_mmhg) > 0.5 * self.weight_kg


@dataclass(frozen=True, slots=True)
class Haemodynamics:
    """The model's true state for a waveform renderer: pressures in mmHg, phase in radians."""

    t_s: float
    map_mmhg: float
    pulse_pressure_mmhg: float
    hr_bpm: float
    resp_phase: float
    resp_variation_mmhg: float


@dataclass(frozen=True, slots=True)
class DisturbanceEvent:
    """A MAP0 shift of ``amplitude_mmhg`` from ``start_t_s`` for ``duration_s``, reached over a
    2 min onset and gone over a 10 min offset (drugs wear off slower than they act)."""

    start_t_s: float
    amplitude_mmhg: float
    duration_s: float

    def shift_mmhg(self, t_s: float) -> float:
        dt = t_s - self.start_t_s
        if dt <= 0 or dt >= self.duration_s + 600.0:
            return 0.0
        if dt < 120.0:
            return self.amplitude_mmhg * dt / 120.0
        if dt < self.duration_s:
            return self.amplitude_mmhg
        return self.amplitude_mmhg * (1.0 - (dt - self.duration_s) / 600.0)


class _Normals:
    """Standard normals from a PCG64 stream, drawn in blocks so a step costs no numpy call.
    :meth:`peek` shows the coming ones without taking them (the clairvoyant reference): the
    stream is the same whether or not anyone peeks."""

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._buf: list[float] = []
        self._i = 0

    def __call__(self) -> float:
        i = self._i
        try:
            value = self._buf[i]
        except IndexError:  # once a block: a try costs nothing when it does not raise
            self._refill(1)
            i, value = 0, self._buf[0]
        self._i = i + 1
        return value

    def peek(self, n: int) -> list[float]:
        if len(self._buf) - self._i < n:
            self._refill(n)
        return self._buf[self._i:self._i + n]

    def _refill(self, n: int) -> None:
        buf = self._buf[self._i:]
        while len(buf) < n:
            buf.extend(self._rng.standard_normal(_NOISE_BLOCK).tolist())
        self._buf, self._i = buf, 0


def disturbance_events(rng: np.random.Generator, start_t_s: float) -> list[DisturbanceEvent]:
    """Two hypotensive events (sedation, −10 to −20 mmHg) and one hypertensive step (+5 to
    +15 mmHg) at seeded times within the first three hours."""
    minute = SECONDS_PER_MIN
    return sorted([
        DisturbanceEvent(start_t_s + rng.uniform(20, 60) * minute, -rng.uniform(10, 20),
                         rng.uniform(20, 60) * minute),
        DisturbanceEvent(start_t_s + rng.uniform(70, 110) * minute, rng.uniform(5, 15),
                         rng.uniform(20, 40) * minute),
        DisturbanceEvent(start_t_s + rng.uniform(130, 170) * minute, -rng.uniform(10, 20),
                         rng.uniform(20, 60) * minute),
    ], key=lambda e: e.start_t_s)


class VirtualPatient:
    """One simulated patient; satisfies ``BeatSource``.

    Feed it with :meth:`step` (the flow leaving the pump's line and its concentration), read
    :attr:`true_map_mmhg` for metrics and :meth:`read_beats` for what a monitor shows.
    ``conc_mcg_ml`` is what fills the line at the start (only matters for a wean start).
    Without ``beats`` no monitor is attached (the model alone: :meth:`read_beats` stays empty).
    """

    def __init__(
        self,
        params: PatientParams,
        scenario: Scenario,
        seed: int,
        start_t_s: float = 0.0,
        *,
        conc_mcg_ml: float = 80.0,
        beats: bool = True,
    ) -> None:
        self.params = params
        self.scenario = scenario
        self._t0_s = start_t_s
        root = np.random.SeedSequence(seed)
        ou_seed, beat_seed, event_seed, artefact_seed, phase_seed, fluid_seed = root.spawn(6)
        self._ou_normal = _Normals(np.random.Generator(np.random.PCG64(ou_seed)))
        self._beat_normal = _Normals(np.random.Generator(np.random.PCG64(beat_seed)))
        self._beat_rng = np.random.Generator(np.random.PCG64(beat_seed.spawn(1)[0]))
        event_rng = np.random.Generator(np.random.PCG64(event_seed))
        self.events = (disturbance_events(event_rng, start_t_s)
                       if scenario == "disturbance" else [])
        self.artefacts = ArtefactSchedule(int(artefact_seed.generate_state(1)[0]))
        phase_rng = np.random.Generator(np.random.PCG64(phase_seed))
        self._resp_phase0 = float(phase_rng.uniform(0.0, 2.0 * math.pi))
        fluid_rng = np.random.Generator(np.random.PCG64(fluid_seed))
        # About half of shocked patients are fluid responders (their MAP0 rises with a bolus).
        self.fluid_response_mmhg = (float(fluid_rng.uniform(3.0, 8.0))
                                    if fluid_rng.uniform() < FLUID_RESPONDERS else 0.0)
        self.boluses = 0
        self.carrier_ml_h = params.carrier_ml_h

        p = params
        dose = p.initial_dose_mcg_min
        q_ml_min = dose / conc_mcg_ml
        flow_ml_min = q_ml_min + p.carrier_ml_h / MINUTES_PER_HOUR
        # a wean starts in steady state on ``dose``, own tone suppressed accordingly
        self._m_mcg = dose * p.dead_volume_ml / flow_ml_min if dose > 0 else 0.0
        self._s = p.rebound_suppression(dose)
        self._c = (dose + p.q_endo_mcg_min) / p.cl_l_min
        self._ce = self._c
        lag_steps = p.input_lag_s / STEP_S
        self._lag_steps = lag_steps
        self._history = [dose] * (int(lag_steps) + 3)
        self._k = 0  # grid steps done
        self._t_s = start_t_s
        self._acc_s = 0.0
        self._acc_ml = 0.0
        self._acc_mcg = 0.0
        self._ou = 0.0
        self._wander_cache: tuple[tuple[int, int, float], list[float]] | None = None
        self._ou_decay = math.exp(-STEP_S / (p.ou_tau_min * SECONDS_PER_MIN))
        self._ou_kick = p.ou_sigma_mmhg * math.sqrt(1.0 - self._ou_decay**2)
        self._h_base = p.occupancy(p.c_base_ng_ml)
        # per-patient constants the grid step would otherwise work out again at every point
        self._ec50_ng_ml = p.ec50_effective_ng_ml
        self._recovery_s = p.recovery_h * 3600.0
        self._mean_rr_s = 60.0 / p.hr_bpm
        self._offset_mmhg = p.transducer_offset_mmhg
        # the delivered rate read at the end of the last grid step, where the next one starts
        self._next_rate_in: float | None = None
        self._map = self._map_now()
        self._next_beat_s = start_t_s + 60.0 / p.hr_bpm * float(phase_rng.uniform())
        if not beats:
            # no monitor: the beats have their own random streams, so the MAP is the same
            self._next_beat_s = math.inf
        self._beats: list[Beat] = []

    # -- inputs --------------------------------------------------------------------------------

    def step(self, t_s: float, outflow_ml_h: float, conc_mcg_ml: float) -> None:
        """Integrate to ``t_s`` with ``outflow_ml_h`` of ``conc_mcg_ml`` entering the line's dead
        volume since the previous call."""
        dt = t_s - (self._t_s + self._acc_s)
        if dt < 0:
            raise ValueError(f"the patient cannot step backwards (to {t_s} s)")
        ml_s = outflow_ml_h / 3600.0
        mcg_s = ml_s * conc_mcg_ml
        while dt > 0:
            take = min(dt, STEP_S - self._acc_s)
            self._acc_s += take
            self._acc_ml += ml_s * take
            self._acc_mcg += mcg_s * take
            dt -= take
            if self._acc_s >= _GRID_DUE_S:
                self._grid_step()

    def prime_line(self, conc_mcg_ml: float) -> None:
        """Fill the line's dead volume with the syringe's solution (it starts drug-free unless
        the patient starts on a dose)."""
        self._m_mcg = conc_mcg_ml * self.params.dead_volume_ml

    def give_fluid(self, t_s: float) -> float:
        """A fluid bolus at ``t_s``: MAP0 rises by the patient's response (halved with every
        bolus before it) for :data:`FLUID_EFFECT_S`, then falls back as the fluid
        redistributes. Returns the rise in mmHg (0 for a non-responder)."""
        rise_mmhg = self.fluid_response_mmhg * 0.5 ** self.boluses
        self.boluses += 1
        if rise_mmhg > 0:
            self.events = sorted([*self.events, DisturbanceEvent(t_s, rise_mmhg, FLUID_EFFECT_S)],
                                 key=lambda e: e.start_t_s)
        return rise_mmhg

    def inject(self, kind: ArtefactKind | str, start_t_s: float, duration_s: float) -> Artefact:
        return self.artefacts.add(kind, start_t_s, duration_s)

    def random_artefacts(self, rate_per_h: float, seed: int,
                         until_t_s: float | None = None) -> list[Artefact]:
        """Seeded random artefacts from the start to ``until_t_s`` (default: 24 h)."""
        end = self._t0_s + 24 * 3600.0 if until_t_s is None else until_t_s
        return self.artefacts.add_random(rate_per_h, seed, self._t0_s, end)

    def artefact_active(self, t_s: float) -> str | None:
        artefact = self.artefacts.at(t_s)
        return None if artefact is None else artefact.kind.value

    # -- outputs -------------------------------------------------------------------------------

    @property
    def t_s(self) -> float:
        """Time of the last grid point integrated."""
        return self._t_s

    @property
    def true_map_mmhg(self) -> float:
        return self._map

    @property
    def map0_mmhg(self) -> float:
        return self._map0(self._t_s)

    @property
    def plasma_conc_ng_ml(self) -> float:
        return self._c

    @property
    def effect_conc_ng_ml(self) -> float:
        return self._ce

    @property
    def delivered_rate_mcg_min(self) -> float:
        """Drug rate leaving the dead volume into the vein now (before the input lag)."""
        return self._history[self._k % len(self._history)]

    def forecast_map(self, inflow_ml_h: float | Sequence[float], conc_mcg_ml: float,
                     horizon_s: float, step_s: float = 10.0, *,
                     clairvoyant: bool = False) -> list[float]:
        """True MAP every ``step_s`` over ``horizon_s`` if ``inflow_ml_h`` entered the line from
        now on (one rate, or one per step), without beat noise. Without ``clairvoyant`` the
        wander decays to its mean and the disturbance events keep their present shift: what a
        controller reading this patient's state could expect. With it, the wander follows the
        very path the patient will take and the events come as scheduled: the model's ceiling.
        The recovery trend goes on in both. The benchmark's references use it, never a rig.
        ``step_s`` must not exceed the input lag (10 s at least in any drawn patient)."""
        n = int(horizon_s / step_s)
        inflows = ([float(inflow_ml_h)] * n if isinstance(inflow_ml_h, int | float)
                   else list(inflow_ml_h))
        return self.forecast_maps([inflows], conc_mcg_ml, horizon_s, step_s,
                                  clairvoyant=clairvoyant)[0]

    def forecast_maps(self, plans: Sequence[Sequence[float]], conc_mcg_ml: float,
                      horizon_s: float, step_s: float = 10.0, *,
                      clairvoyant: bool = False) -> list[list[float]]:
        """:meth:`forecast_map` of each plan of inflows (mL/h, one per step). What does not
        depend on the plan (the trend, wander and events, the rates that left the line before
        now, where each delayed rate is read) is worked out once for all of them."""
        p = self.params
        n = int(horizon_s / step_s)
        if any(len(inflows) < n for inflows in plans):
            raise ValueError(f"{min(len(i) for i in plans)} inflows for {n} forecast steps")
        h = step_s / SECONDS_PER_MIN
        carrier_ml_min = self.carrier_ml_h / MINUTES_PER_HOUR

        # The rate entering the vein t_rel_s from now left the line input_lag_s earlier: before
        # now, the recorded history; after it, the forecast's own rates (``rates``, one more
        # per step: at step j it holds j + 1), read between two of them.
        def delayed_at(t_rel_s: float, known: int) -> _DelayedRead:
            at_s = t_rel_s - p.input_lag_s
            if at_s <= 0.0:
                return self._delayed_rate(t_rel_s / STEP_S), -1, 0, 0.0, 0.0
            j = min(at_s / step_s, known - 1.0)
            i = min(int(j), known - 2) if known > 1 else 0
            frac = j - i
            return math.nan, i, min(i + 1, known - 1), 1.0 - frac, frac

        reads = [tuple(delayed_at(t_rel, j + 1) for t_rel in
                       (j * step_s, j * step_s + 0.5 * step_s, j * step_s + step_s))
                 for j in range(n)]
        if clairvoyant:
            wander = self._future_wander(n, step_s)
        else:
            decay = math.exp(-step_s / (p.ou_tau_min * SECONDS_PER_MIN))
            wander = [self._ou * decay ** (j + 1) for j in range(n)]
        events_now = self._events_mmhg(self._t_s)
        map0 = []
        for j in range(n):
            at_s = self._t_s + j * step_s + step_s
            events = self._events_mmhg(at_s) if clairvoyant else events_now
            map0.append(p.map0_mmhg + self._trend_mmhg(at_s) + events + wander[j])
        start: _DrugState = (self._m_mcg, self._c, self._ce, self._s)
        return [self._forecast_plan(inflows, conc_mcg_ml=conc_mcg_ml, h=h,
                                    carrier_ml_min=carrier_ml_min, state=start, reads=reads,
                                    map0=map0)
                for inflows in plans]

    def _forecast_plan(self, inflows: Sequence[float], *, conc_mcg_ml: float, h: float,
                       carrier_ml_min: float, state: _DrugState,
                       reads: list[tuple[_DelayedRead, ...]],
                       map0: list[float]) -> list[float]:
        p = self.params
        first_q = inflows[0] / MINUTES_PER_HOUR if map0 else 0.0
        rates = [(first_q + carrier_ml_min) / p.dead_volume_ml * state[0]]

        def rate(read: _DelayedRead) -> float:
            history, i, i2, w_i, w_i2 = read
            return history if i < 0 else rates[i] * w_i + rates[i2] * w_i2

        rebound, dead_volume = p.rebound_mmhg, p.dead_volume_ml
        out = []
        for j, (r0, r_half, r1) in enumerate(reads):
            q_ml_min = inflows[j] / MINUTES_PER_HOUR
            washout = (q_ml_min + carrier_ml_min) / dead_volume
            state = self._rk4(state, h, washout=washout, mass_in=q_ml_min * conc_mcg_ml,
                              rates_in=(rate(r0), rate(r_half), rate(r1)))
            rates.append(washout * state[0])
            out.append(map0[j] - rebound * state[3] + self._effect_mmhg(state[2]))
        return out

    def _future_wander(self, n: int, step_s: float) -> list[float]:
        """The wander at the end of each of the next ``n`` forecast steps, from the very normals
        the patient will draw (cached per grid step: every plan of a decision shares it)."""
        if self._wander_cache is not None and self._wander_cache[0] == (self._k, n, step_s):
            return self._wander_cache[1]
        per = round(step_s / STEP_S)
        kicks = self._ou_normal.peek(n * per)
        ou, decay, kick = self._ou, self._ou_decay, self._ou_kick
        out = []
        for j in range(n):
            for x in kicks[j * per:(j + 1) * per]:
                ou = ou * decay + kick * x
            out.append(ou)
        self._wander_cache = ((self._k, n, step_s), out)
        return out

    def haemodynamics(self, t_s: float | None = None) -> Haemodynamics:
        """The state at the last grid point; the respiratory phase at ``t_s`` if given, so a
        waveform renderer sampling between grid points still breathes smoothly."""
        p = self.params
        at_s = self._t_s if t_s is None else t_s
        return Haemodynamics(
            t_s=at_s, map_mmhg=self._map, pulse_pressure_mmhg=p.pulse_pressure_mmhg,
            hr_bpm=p.hr_bpm, resp_phase=self._resp_phase(at_s),
            resp_variation_mmhg=p.resp_variation_mmhg)

    def read_beats(self) -> list[Beat]:
        beats, self._beats = self._beats, []
        return beats

    # -- model ---------------------------------------------------------------------------------

    def _map0(self, t_s: float) -> float:
        p = self.params
        return (p.map0_mmhg + self._trend_mmhg(t_s) + self._ou + self._events_mmhg(t_s)
                - p.rebound_mmhg * self._s)

    def _trend_mmhg(self, t_s: float) -> float:
        p = self.params
        x = (t_s - self._t0_s) / self._recovery_s
        # min(1, max(0, x)) as the builtins take it (ties and all), without their calls
        x = x if x > 0.0 else 0.0
        x = x if x < 1.0 else 1.0
        return p.recovery_mmhg * x * x * (3.0 - 2.0 * x)

    def _events_mmhg(self, t_s: float) -> float:
        return sum(e.shift_mmhg(t_s) for e in self.events) if self.events else 0.0

    def _effect_mmhg(self, ce_ng_ml: float) -> float:
        p = self.params
        x = (ce_ng_ml / self._ec50_ng_ml) ** p.gamma if ce_ng_ml > 0 else 0.0
        return p.emax_mmhg * (x / (1.0 + x) - self._h_base)

    def _map_now(self) -> float:
        """:meth:`_map0` now plus the effect, :meth:`_trend_mmhg`, :meth:`_events_mmhg` and
        :meth:`_effect_mmhg` written out (the same expressions in the same order): it runs at
        every grid point, where those calls were a twentieth of a patient's cost."""
        p = self.params
        t_s = self._t_s
        x = (t_s - self._t0_s) / self._recovery_s
        x = x if x > 0.0 else 0.0
        x = x if x < 1.0 else 1.0
        trend = p.recovery_mmhg * x * x * (3.0 - 2.0 * x)
        events = sum(e.shift_mmhg(t_s) for e in self.events) if self.events else 0.0
        ce = self._ce
        y = (ce / self._ec50_ng_ml) ** p.gamma if ce > 0 else 0.0
        return ((p.map0_mmhg + trend + self._ou + events - p.rebound_mmhg * self._s)
                + p.emax_mmhg * (y / (1.0 + y) - self._h_base))

    def _resp_phase(self, t_s: float) -> float:
        cycles = self.params.resp_rate_per_min * (t_s - self._t0_s) / SECONDS_PER_MIN
        return (self._resp_phase0 + 2.0 * math.pi * cycles) % (2.0 * math.pi)

    def _delayed_rate(self, stage: float) -> float:
        """Delivered rate at grid position k + stage − lag, interpolated linearly."""
        x = self._k + stage - self._lag_steps
        i = math.floor(x)
        frac = x - i
        hist = self._history
        n = len(hist)
        return hist[i % n] * (1.0 - frac) + hist[(i + 1) % n] * frac

    def _rk4(self, state: _DrugState, h_min: float, *, washout: float, mass_in: float,
             rates_in: tuple[float, float, float]) -> _DrugState:
        """One step of d/dt (per minute) of line mass, plasma and effect-site level and
        suppression; ``rates_in``: the drug rate entering the vein at the step's start, middle
        and end. The four stages are written out on plain floats: attribute reads, tuples
        and a slope function's calls were most of a patient's cost."""
        r0, r_half, r1 = rates_in
        p = self.params
        q_endo, cl, v, ke0 = p.q_endo_mcg_min, p.cl_l_min, p.v_l, p.ke0_per_min
        tau = p.rebound_tau_min
        rebound = p.rebound_mmhg > 0
        half = 0.5 * h_min
        m, c, ce, s = state
        # stage k: the slope at (m_k, c_k, ce_k, s_k) with the rate entering then
        rate = washout * m
        m1, c1, ce1 = mass_in - rate, (r0 + q_endo - cl * c) / v, ke0 * (c - ce)
        s1 = ((rate / (rate + REBOUND_HALF_MCG_MIN) - s) / tau) if rebound else 0.0
        m_k, c_k, ce_k, s_k = m + half * m1, c + half * c1, ce + half * ce1, s + half * s1
        rate = washout * m_k
        m2, c2, ce2 = mass_in - rate, (r_half + q_endo - cl * c_k) / v, ke0 * (c_k - ce_k)
        s2 = ((rate / (rate + REBOUND_HALF_MCG_MIN) - s_k) / tau) if rebound else 0.0
        m_k, c_k, ce_k, s_k = m + half * m2, c + half * c2, ce + half * ce2, s + half * s2
        rate = washout * m_k
        m3, c3, ce3 = mass_in - rate, (r_half + q_endo - cl * c_k) / v, ke0 * (c_k - ce_k)
        s3 = ((rate / (rate + REBOUND_HALF_MCG_MIN) - s_k) / tau) if rebound else 0.0
        m_k, c_k, ce_k, s_k = m + h_min * m3, c + h_min * c3, ce + h_min * ce3, s + h_min * s3
        rate = washout * m_k
        m4, c4, ce4 = mass_in - rate, (r1 + q_endo - cl * c_k) / v, ke0 * (c_k - ce_k)
        s4 = ((rate / (rate + REBOUND_HALF_MCG_MIN) - s_k) / tau) if rebound else 0.0
        w = h_min / 6.0
        return (m + w * (m1 + 2.0 * m2 + 2.0 * m3 + m4),
                c + w * (c1 + 2.0 * c2 + 2.0 * c3 + c4),
                ce + w * (ce1 + 2.0 * ce2 + 2.0 * ce3 + ce4),
                s + w * (s1 + 2.0 * s2 + 2.0 * s3 + s4))

    def _grid_step(self) -> None:
        h = _STEP_MIN
        q = self._acc_ml / h  # mean mL/min over the step
        mass_in = self._acc_mcg / h
        self._acc_s = self._acc_ml = self._acc_mcg = 0.0
        p = self.params
        washout = (q + self.carrier_ml_h / MINUTES_PER_HOUR) / p.dead_volume_ml  # 1/min
        start_rate = self._next_rate_in
        if start_rate is None:
            start_rate = self._delayed_rate(0.0)
        # _delayed_rate(0.5) and (1.0) written out, the same expressions in the same order:
        # two calls per grid point were a tenth of a patient's cost
        k, lag, history = self._k, self._lag_steps, self._history
        n = len(history)
        x = k + 0.5 - lag
        i = math.floor(x)
        frac = x - i
        mid_rate = history[i % n] * (1.0 - frac) + history[(i + 1) % n] * frac
        x = k + 1.0 - lag
        i = math.floor(x)
        frac = x - i
        end_rate = history[i % n] * (1.0 - frac) + history[(i + 1) % n] * frac
        # A step's start is the last one's end: the same grid position, read from the same
        # history unless the lag is so short that the read reaches the point this step writes.
        self._next_rate_in = end_rate if lag >= 2.0 else None
        m, self._c, self._ce, self._s = self._rk4(
            (self._m_mcg, self._c, self._ce, self._s), h, washout=washout, mass_in=mass_in,
            rates_in=(start_rate, mid_rate, end_rate))
        self._m_mcg = m
        k = self._k = k + 1
        history[k % n] = washout * m
        t_s = self._t_s = self._t0_s + k * STEP_S
        self._ou = self._ou * self._ou_decay + self._ou_kick * self._ou_normal()
        self._map = self._map_now()
        if self._next_beat_s > t_s:
            return
        variability = p.hr_variability
        while self._next_beat_s <= t_s:
            rr_s = max(0.25, self._mean_rr_s * (1.0 + variability * self._beat_normal()))
            self._emit_beat(self._next_beat_s, 60.0 / rr_s)
            self._next_beat_s += rr_s

    def _emit_beat(self, t_s: float, hr_bpm: float) -> None:
        artefact = self.artefacts.at(t_s)
        if artefact is not None and artefact.kind is ArtefactKind.SENSOR_LOSS:
            return
        p = self.params
        resp = p.resp_variation_mmhg * math.sin(self._resp_phase(t_s))
        pp = p.pulse_pressure_mmhg
        gain, offset = p.calibration_gain, self._offset_mmhg
        noise = p.noise_sd_mmhg * self._beat_normal()
        sbp = gain * (self._map + 2.0 * pp / 3.0 + resp) + offset + noise
        dbp = gain * (self._map - pp / 3.0 + 0.5 * resp) + offset + noise
        quality = GOOD
        if artefact is not None:
            sbp, dbp = self._corrupt(artefact, sbp, dbp)
            quality = BeatQuality(artefact.kind.value)
        # positional: a beat is made per heartbeat, and keywords cost a frozen class's init more
        self._beats.append(Beat(t_s, sbp, dbp, (sbp + 2.0 * dbp) / 3.0, hr_bpm, quality))

    def _corrupt(self, artefact: Artefact, sbp: float, dbp: float) -> tuple[float, float]:
        """What a monitor shows during an artefact (docs/virtual-patient.md, waveform mode)."""
        kind = artefact.kind
        jitter = self._beat_normal()
        mean = (sbp + 2.0 * dbp) / 3.0
        pp = sbp - dbp
        if kind in (ArtefactKind.FLUSH, ArtefactKind.SAMPLING):
            level = FLUSH_MMHG + 3.0 * jitter
            return level + 0.5, level - 0.25
        if kind is ArtefactKind.ZEROING:
            return 0.3 * jitter + 0.2, 0.3 * jitter - 0.1
        if kind is ArtefactKind.DAMPING:
            mean += artefact.shift_mmhg
            pp *= 0.2
        elif kind is ArtefactKind.KINK:
            mean *= 0.5
            pp *= 0.2
        elif kind is ArtefactKind.DISCONNECTION:
            mean = 2.0 + 2.0 * abs(jitter)
            pp = 1.0
        elif kind is ArtefactKind.MOTION:
            mean += float(self._beat_rng.uniform(-60.0, 60.0))
            pp *= float(self._beat_rng.uniform(0.5, 3.0))
        elif kind is ArtefactKind.CALIBRATION:
            return CALIBRATION_HIGH_MMHG, CALIBRATION_LOW_MMHG
        return mean + 2.0 * pp / 3.0, mean - pp / 3.0


# -- cohorts (docs/virtual-patient.md, "Cohort") ----------------------------------------
#
# Ranges are docs/virtual-patient.md's. The strata shape potency so that over MAP0 40–62 and
# target 65 the cohort reproduces its statement (need about 6 mcg/min median, 10th–90th percentile
# 1.4–28 over the patients who can reach the target, about 14% refractory). Drawing Emax
# log-uniform 12–100 for everyone made 28% refractory, most of them because Emax was smaller
# than the gap to target, so every stratum draws Emax from 20 mmHg up (not 12) and the typical
# stratum's tops out at 60. Every value comes from one PCG64 stream in a fixed order, so
# a seed gives the same cohort on every machine.

# stratum: (EC50 factor low, high, Emax low, high), both log-uniform
_STRATA: dict[Stratum, tuple[float, float, float, float]] = {
    "responsive": (0.3, 1.0, 20.0, 100.0),
    "typical": (1.0, 2.0, 20.0, 60.0),
    "refractory": (1.5, 10.0, 20.0, 100.0),
    "hypertensive": (1.0, 2.0, 20.0, 60.0),
    # the surgical-like patients of the published anchors: potency 0.5-2x, and an Emax that
    # covers the 8-15 mmHg from their MAP0 to the set-point with the rebound knob on
    "stable": (0.5, 2.0, 40.0, 100.0),
}
HYPERTENSIVE_SHARE = 0.1
STABLE_SHARE = 0.2
_REST = 1.0 - HYPERTENSIVE_SHARE - STABLE_SHARE
_MIX: dict[Stratum, float] = {
    "responsive": 0.4 * _REST,
    "typical": 0.4 * _REST,
    "refractory": 0.2 * _REST,
    "hypertensive": HYPERTENSIVE_SHARE,
    "stable": STABLE_SHARE,
}
DEFAULT_FLOOR_MMHG = 65.0
HYPERTENSIVE_FLOOR_MMHG = 75.0
WEAN_DOSE_RANGE_MCG_MIN = (10.0, 20.0)
_MAX_WEAN_DRAWS = 10_000


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def _draw(rng: np.random.Generator, stratum: Stratum, scenario: Scenario) -> PatientParams:
    ec50_lo, ec50_hi, emax_lo, emax_hi = _STRATA[stratum]
    weight = float(rng.uniform(50.0, 110.0))
    cl = float(np.clip(2.0 * (weight / 70.0) ** 0.75 * math.exp(rng.normal(0.0, 0.45)),
                       0.8, 4.5))
    v = 0.12 * weight * math.exp(rng.normal(0.0, 0.35))
    compressed = scenario == "wean"  # recovery squeezed so weaning fits a simulated session
    stable = stratum == "stable"
    # the line's carrier flow is a scenario option (SimOptions), not a draw
    return PatientParams(
        stratum=stratum,
        floor_mmhg=HYPERTENSIVE_FLOOR_MMHG if stratum == "hypertensive" else DEFAULT_FLOOR_MMHG,
        weight_kg=weight,
        dead_volume_ml=float(rng.uniform(0.3, 3.0)),
        carrier_ml_h=0.0,
        input_lag_s=float(rng.uniform(10.0, 30.0)),
        cl_l_min=cl,
        v_l=v,
        q_endo_mcg_min=float(rng.uniform(0.5, 1.5)),
        ke0_per_min=float(rng.uniform(0.2, 1.0)),
        emax_mmhg=_log_uniform(rng, emax_lo, emax_hi),
        ec50_ng_ml=5.0 * math.exp(rng.normal(0.0, 0.6)),
        ec50_factor=_log_uniform(rng, ec50_lo, ec50_hi),
        gamma=float(rng.uniform(1.0, 1.8)),
        map0_mmhg=float(rng.uniform(55.0, 62.0) if stable else rng.uniform(45.0, 55.0)),
        ou_tau_min=float(rng.uniform(10.0, 40.0) if stable else rng.uniform(5.0, 30.0)),
        ou_sigma_mmhg=float(rng.uniform(2.0, 3.5) if stable else rng.uniform(3.0, 6.0)),
        recovery_mmhg=float(rng.uniform(10.0, 30.0)),
        recovery_h=float(rng.uniform(2.0, 6.0) if compressed else rng.uniform(6.0, 48.0)),
        rebound_mmhg=float(rng.uniform(0.0, 10.0)),
        rebound_tau_min=float(rng.uniform(10.0, 60.0)),
        hr_bpm=float(rng.uniform(60.0, 120.0)),
        hr_variability=float(rng.uniform(0.01, 0.04)),
        pulse_pressure_mmhg=float(rng.uniform(30.0, 60.0)),
        resp_rate_per_min=float(rng.uniform(12.0, 20.0)),
        resp_variation_mmhg=float(rng.uniform(2.0, 5.0)),
        noise_sd_mmhg=float(rng.uniform(1.0, 2.0)),
        transducer_height_cm=float(np.clip(rng.normal(0.0, 3.0), -10.0, 10.0)),
        calibration_gain=float(rng.uniform(0.9, 1.1)) if rng.uniform() < 0.3 else 1.0,
    )


def _draw_wean(rng: np.random.Generator, stratum: Stratum) -> PatientParams:
    """A patient of ``stratum`` in steady state at its set-point on 10–20 mcg/min (dose rounded
    up to 0.5 mcg/min so MAP starts just above it), the rebound knob's suppression included."""
    low, high = WEAN_DOSE_RANGE_MCG_MIN
    for _ in range(_MAX_WEAN_DRAWS):
        params = _draw(rng, stratum, "wean")
        need = params.steady_need_mcg_min()
        if low <= need <= high:
            dose = math.ceil(need * 2.0) / 2.0
            return replace(params, initial_dose_mcg_min=dose)
    raise RuntimeError(f"no {stratum} patient needing {low}-{high} mcg/min in "
                       f"{_MAX_WEAN_DRAWS} draws")


def draw_cohort(n: int, seed: int, scenario: Scenario) -> list[PatientParams]:
    """``n`` patients of the stratum mix for ``scenario``; the same seed gives the same list."""
    rng = np.random.Generator(np.random.PCG64(seed))
    strata = list(_MIX)
    shares = np.array([_MIX[s] for s in strata])
    cohort: list[PatientParams] = []
    for _ in range(n):
        stratum = strata[int(rng.choice(len(strata), p=shares))]
        cohort.append(_draw_wean(rng, stratum) if scenario == "wean"
                      else _draw(rng, stratum, scenario))
    return cohort


def draw_patient(seed: int, scenario: Scenario = "resuscitate") -> PatientParams:
    return draw_cohort(1, seed, scenario)[0]


def draw_stratum(n: int, seed: int, stratum: Stratum,
                 scenario: Scenario = "resuscitate") -> list[PatientParams]:
    """``n`` patients all of ``stratum`` (a benchmark that needs many of one kind); the same
    seed gives the same list."""
    rng = np.random.Generator(np.random.PCG64(seed))
    return [_draw(rng, stratum, scenario) for _ in range(n)]
