"""Physics twin of a lead-screw syringe pump and its infusion line.

The model (docs/pumps.md, "Stepper syringe pump mechanics"):

* The motor moves the plunger in microsteps of ``volume_per_microstep_ul``; a requested rate is
  run as an evenly spaced step train, so it is floored to the capability grid and then to a
  step period that a 1 µs step timer can time (never rounded up).
* Between motor and stopper sits a dead band of ``slack_ul`` (lead-screw backlash) plus the
  rod-and-stopper compression needed before the rubber stopper breaks loose
  (``takeup_mm`` of plunger travel). The band is crossed, with no fluid moving, after the first
  start and after every reversal; a stopped pump keeps it taken up. This, not the line's
  compliance, is what delays real flow by minutes at 1 mL/h with a 50 mL syringe.
* Syringe and line store volume as pressure: C·dP/dt = q_stopper − q_out with
  q_out = (P − P_down)/R while the line is open. An anti-reflux valve keeps q_out ≥ 0, so blood
  never flows back into the line. Downstream is the vein (fixed ``venous_pressure_mmhg``).
  After an infiltration the flow goes into tissue, which resists it more and more: R grows
  linearly in time, so the line pressure drifts up above its running baseline by an amount
  that scales with the flow (S9), and a pause lets it fall by Q·R over the longer R·C.
* Occluded, q_out = 0 and the pressure climbs by pushed volume / C until the motor stalls at
  ``stall_pressure_mmhg``.
* Patient-side disturbances (a cough, a Valsalva, the patient sitting up, the bed or the pump
  moved up or down, a carrier infusion joining at the cannula) add an offset to the pressure
  everywhere along the line that does not depend on the pump's flow (S8): the sensor reads
  P + offset, the flow is unchanged. The few µL that the compliance takes up or gives back as
  the offset moves (C·ΔP, within R·C ≈ 2 s) are neglected: they are what makes the model the
  one the detectors are specified against, P = P_patient + Q·R + hydrostatic offset.

Every piece between two events (take-up done, valve opens or closes, syringe empty, back-off
done, watchdog, stall) is solved in closed form (a growing resistance in pieces of at most
``RESISTANCE_PIECE_S``), so one jump of a virtual clock gives the same
state as many small ones, and a simulated day costs one short loop per call.

Fault levers are on :attr:`SimSyringePump.faults`, never on the :class:`~vasopilot.core.
interfaces.Pump` protocol; the line-signal twin is :class:`SimLineSignals`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum, auto

from vasopilot.core.clock import Clock
from vasopilot.core.config import MechanicsSettings, SyringeSpec
from vasopilot.core.errors import PumpConnectionError, PumpRefusedError, UncertainDeliveryError
from vasopilot.core.types import (
    HostLossBehaviour,
    LineSignals,
    PumpAlarm,
    PumpCapabilities,
    PumpState,
    PumpStatus,
)
from vasopilot.core.units import UL_PER_ML, bore_area_mm2, volume_per_microstep_ul

SECONDS_PER_HOUR = 3600.0
# Rates a host command carries; the step timer below is finer still at every usable rate.
RATE_RESOLUTION_ML_H = 0.001
STEP_TIMER_TICK_S = 1e-6
# The slowest step train that still looks continuous: one microstep every 10 s.
SLOWEST_STEP_PERIOD_S = 10.0
# Plunger speed a small stepper on an M5 or T8 lead screw sustains with a full 50 mL syringe.
MAX_PLUNGER_SPEED_MM_MIN = 3.0
PA_PER_MMHG = 133.322
# Below this the closed-form solution would divide by ~0; a line is never that stiff.
MIN_COMPLIANCE_UL_PER_MMHG = 1e-3
# A resistance that grows (infiltration) is held constant over pieces this long.
RESISTANCE_PIECE_S = 1.0


def _ul_s(rate_ml_h: float) -> float:
    return rate_ml_h * UL_PER_ML / SECONDS_PER_HOUR


def _ml_h(rate_ul_s: float) -> float:
    return rate_ul_s * SECONDS_PER_HOUR / UL_PER_ML


class _Event(Enum):
    NONE = auto()
    TAKEUP_DONE = auto()
    VALVE = auto()
    EMPTY = auto()
    BACKOFF_DONE = auto()
    WATCHDOG = auto()
    STALL = auto()


@dataclass(frozen=True)
class _Disturbance:
    """A flow-independent offset of the line pressure: a step held ``duration_s`` from
    ``start_s``, or a ramp to ``mmhg`` over ``duration_s`` that then stays."""

    start_s: float
    duration_s: float
    mmhg: float
    ramp: bool

    def offset_mmhg(self, t_s: float) -> float:
        elapsed_s = t_s - self.start_s
        if elapsed_s < 0:
            return 0.0
        if self.ramp:
            return self.mmhg * min(1.0, elapsed_s / self.duration_s)
        return self.mmhg if elapsed_s < self.duration_s else 0.0


class PumpFaults:
    """Fault levers of a :class:`SimSyringePump` (for tests and ``vasopilot sim`` fault plans)."""

    def __init__(self, pump: SimSyringePump) -> None:
        self._pump = pump

    def occlude(self) -> None:
        """Close the line downstream: nothing leaves it, pressure climbs with pushed volume."""
        self._pump.advance()
        self._pump._occluded = True

    def clear_occlusion(self) -> None:
        self._pump.advance()
        self._pump._occluded = False

    def infiltrate(self, rise_mmhg: float = 20.0, over_s: float = 600.0) -> None:
        """The cannula slips into tissue: flow no longer reaches the circulation, and the
        tissue resists it more and more. The resistance grows linearly, by as much as raises
        the pressure at the rate running now by ``rise_mmhg`` over ``over_s`` (and on after)."""
        if rise_mmhg <= 0 or over_s <= 0:
            raise ValueError("the infiltration's rise (mmHg) and time (s) must be positive")
        pump = self._pump
        pump.advance()
        rate_ul_s = max(pump._rate_ul_s, _ul_s(pump.capabilities.min_rate_ml_h))
        pump._infiltrated_at_s = pump._t_s
        pump._resistance_growth = rise_mmhg / rate_ul_s / over_s

    def resite(self) -> None:
        """A new cannula in a vein: flow reaches the circulation again."""
        pump = self._pump
        pump.advance()
        pump._infiltrated_at_s = None
        pump._resistance_growth = 0.0

    def shift_line(self, mmhg: float, duration_s: float) -> None:
        """From now, the pressure at the cannula is ``mmhg`` higher (or lower) for
        ``duration_s``: a cough, a Valsalva, a bed or pump moved, a carrier-flow change."""
        self._disturb(_Disturbance(self._pump._now(), duration_s, mmhg, ramp=False))

    def ramp_line(self, mmhg: float, duration_s: float) -> None:
        """From now, the pressure at the cannula moves linearly by ``mmhg`` over
        ``duration_s``, then stays there (the patient sits up slowly, a drifting height)."""
        self._disturb(_Disturbance(self._pump._now(), duration_s, mmhg, ramp=True))

    def _disturb(self, disturbance: _Disturbance) -> None:
        if disturbance.duration_s <= 0:
            raise ValueError("a line disturbance lasts a positive number of seconds")
        self._pump._disturbances.append(disturbance)

    def stall(self) -> None:
        """The motor stalls (mechanical jam): it stops stepping and raises alarm ``stall``."""
        self._pump.advance()
        self._pump._jammed = True
        self._pump._raise_alarm(PumpAlarm.STALL)

    def clear_stall(self) -> None:
        self._pump.advance()
        self._pump._jammed = False

    def drop_ack_next(self) -> None:
        """The next command acts, but its read-back is lost (UncertainDeliveryError)."""
        self._pump._drop_ack = True


class SimSyringePump:
    """A stepper syringe pump with its line, in simulated physics; satisfies ``Pump``.

    Pressures in mmHg (gauge), rates in mL/h, volumes in mL or µL as named. ``fill_ml`` is the
    volume drawn into the syringe (default: its nominal volume). With ``host_loss`` other than
    KEEPS_RATE the pump stops when no command or heartbeat came for ``watchdog_timeout_s``.
    """

    def __init__(
        self,
        clock: Clock,
        syringe: SyringeSpec,
        mechanics: MechanicsSettings,
        *,
        fill_ml: float | None = None,
        host_loss: HostLossBehaviour = HostLossBehaviour.KEEPS_RATE,
        venous_pressure_mmhg: float = 8.0,
        line_resistance_mmhg_per_ml_h: float = 0.5,
        watchdog_timeout_s: float = 10.0,
        takeup_mm: float = 0.1,
        stall_pressure_mmhg: float = 1500.0,
    ) -> None:
        fill = syringe.volume_ml if fill_ml is None else fill_ml
        if not 0 <= fill <= syringe.volume_ml:
            raise ValueError(f"fill {fill} mL outside 0..{syringe.volume_ml} mL")
        if line_resistance_mmhg_per_ml_h <= 0 or watchdog_timeout_s <= 0 or takeup_mm < 0:
            raise ValueError("line resistance and watchdog timeout must be positive, "
                             "take-up non-negative")
        self._clock = clock
        self.syringe = syringe
        self.mechanics = mechanics
        self.venous_pressure_mmhg = venous_pressure_mmhg
        self.stall_pressure_mmhg = stall_pressure_mmhg
        self.watchdog_timeout_s = watchdog_timeout_s
        self.microstep_ul = volume_per_microstep_ul(
            syringe.inner_diameter_mm, mechanics.lead_mm, mechanics.steps_per_rev,
            mechanics.microsteps)
        self.area_mm2 = bore_area_mm2(syringe.inner_diameter_mm)
        self.band_ul = mechanics.slack_ul + takeup_mm * self.area_mm2
        self._compliance = max(syringe.compliance_ul_per_mmhg, MIN_COMPLIANCE_UL_PER_MMHG)
        # mmHg per (µL/s): the resistance in the units the integrator works in.
        self._resistance0 = line_resistance_mmhg_per_ml_h * SECONDS_PER_HOUR / UL_PER_ML
        max_rate_ml_h = self.area_mm2 * MAX_PLUNGER_SPEED_MM_MIN * 60.0 / UL_PER_ML
        self._capabilities = PumpCapabilities(
            min_rate_ml_h=_ml_h(self.microstep_ul / SLOWEST_STEP_PERIOD_S),
            max_rate_ml_h=max_rate_ml_h,
            resolution_ml_h=RATE_RESOLUTION_ML_H,
            syringe_volume_ml=syringe.volume_ml,
            host_loss=host_loss,
            host_loss_after_s=(None if host_loss is HostLossBehaviour.KEEPS_RATE
                               else watchdog_timeout_s),
        )
        self.faults = PumpFaults(self)
        self._fill_ul = fill * UL_PER_ML
        self._t_s = clock.now_s()
        self._last_contact_s = self._t_s
        self._state = PumpState.STOPPED
        self._alarm: PumpAlarm | None = None
        self._rate_ul_s = 0.0
        self._backoff_left_ul = 0.0
        self._gap_ul = self.band_ul  # a freshly loaded syringe has the whole band to cross
        self._forward_ul = 0.0
        self._withdrawn_ul = 0.0
        self._stopper_ul = 0.0  # net fluid volume the stopper has displaced
        self._pressure_mmhg = venous_pressure_mmhg
        self._infiltrated_at_s: float | None = None
        # mmHg per (µL/s), per second since the infiltration
        self._resistance_growth = 0.0
        self._disturbances: list[_Disturbance] = []
        self._occluded = False
        self._jammed = False
        # A stall against line pressure blocks forward motion only: the motor can still back
        # off, which is exactly the supervisor's occlusion response (S8).
        self._overloaded = False
        self._drop_ack = False
        self._closed = False
        self._outflow_ul = 0.0
        self._tissue_ul = 0.0

    # -- Pump protocol -------------------------------------------------------------------------

    @property
    def capabilities(self) -> PumpCapabilities:
        return self._capabilities

    def set_rate(self, rate_ml_h: float) -> PumpStatus:
        """Infuse at ``rate_ml_h`` (0 stops). Outside the pump's range: PumpRefusedError."""
        self._command()
        if rate_ml_h == 0:
            return self._stop_and_ack()
        caps = self._capabilities
        if not caps.min_rate_ml_h <= rate_ml_h <= caps.max_rate_ml_h:
            raise PumpRefusedError(
                f"rate {rate_ml_h} mL/h outside {caps.min_rate_ml_h:.4f}–"
                f"{caps.max_rate_ml_h:.1f} mL/h for {self.syringe.name}")
        if self._alarm is not None:
            raise PumpRefusedError(f"alarm {self._alarm!r} blocks starting until stopped")
        if self.stalled or self._stopper_ul >= self._fill_ul:
            raise PumpRefusedError("the motor is stalled" if self.stalled else "syringe empty")
        self._rate_ul_s = self._step_train_ul_s(caps.deliverable_rate_ml_h(rate_ml_h))
        self._state = PumpState.INFUSING
        return self._ack()

    def stop(self) -> PumpStatus:
        """Stop the motor; also acknowledges an alarm whose cause has gone."""
        self._command()
        return self._stop_and_ack()

    def back_off(self, volume_ul: float) -> PumpStatus:
        """Withdraw ``volume_ul`` of fluid at the maximum rate (state BACKING_OFF until done).

        The motor travels the dead band on top, as a firmware compensating backlash does, so
        the stored volume really leaves the line.
        """
        self._command()
        if volume_ul < 0:
            raise ValueError(f"back-off volume must be non-negative, got {volume_ul} µL")
        if self._jammed:
            raise PumpRefusedError("the motor is jammed")
        self._overloaded = False
        self._backoff_left_ul = volume_ul + (self.band_ul - self._gap_ul)
        self._rate_ul_s = 0.0
        self._state = PumpState.BACKING_OFF if self._backoff_left_ul > 0 else PumpState.STOPPED
        return self._ack()

    def status(self) -> PumpStatus:
        self._command()
        return self._status()

    def heartbeat(self) -> None:
        self._command()

    def close(self) -> None:
        self._closed = True

    # -- the simulation's own view -------------------------------------------------------------

    @property
    def readings(self) -> SimPumpReadings:
        """A read-only view of the physics for the patient and line sensors."""
        return SimPumpReadings(self)

    def advance(self) -> None:
        """Integrate the physics up to the clock's present (no contact with the host)."""
        self._advance_to(self._clock.now_s())

    @property
    def outflow_ml_h(self) -> float:
        """Flow leaving the line into the circulation now (0 when occluded or infiltrated)."""
        self.advance()
        if self._occluded or self._infiltrated_at_s is not None:
            return 0.0
        return _ml_h(max(0.0, self._pressure_mmhg - self.venous_pressure_mmhg)
                     / self._resistance(self._t_s))

    @property
    def outflow_volume_ml(self) -> float:
        """Cumulative volume that reached the circulation."""
        self.advance()
        return self._outflow_ul / UL_PER_ML

    @property
    def tissue_volume_ml(self) -> float:
        """Cumulative volume infused into tissue after an infiltration."""
        self.advance()
        return self._tissue_ul / UL_PER_ML

    @property
    def line_pressure_mmhg(self) -> float:
        """What the line's pressure sensor reads: the line's own pressure plus the patient-side
        and hydrostatic offset."""
        self.advance()
        return self._pressure_mmhg + self._offset_mmhg()

    @property
    def stalled(self) -> bool:
        return self._jammed or self._overloaded

    # -- internals -----------------------------------------------------------------------------

    def _now(self) -> float:
        self.advance()
        return self._t_s

    def _resistance(self, t_s: float) -> float:
        """The resistance at ``t_s``: after an infiltration it grows, held constant over cells
        of ``RESISTANCE_PIECE_S`` counted from the infiltration (at each cell's middle), so
        that any split of time into pieces gives the same state."""
        if self._infiltrated_at_s is None:
            return self._resistance0
        middle_s = (self._resistance_cell(t_s) + 0.5) * RESISTANCE_PIECE_S
        return self._resistance0 + self._resistance_growth * middle_s

    def _resistance_cell(self, t_s: float) -> int:
        since = self._infiltrated_at_s or 0.0
        # A time a rounding error short of a cell's end belongs to the next cell.
        return math.floor(max(0.0, t_s - since) / RESISTANCE_PIECE_S + 1e-9)

    def _resistance_cell_end_s(self) -> float:
        since = self._infiltrated_at_s or 0.0
        return since + (self._resistance_cell(self._t_s) + 1) * RESISTANCE_PIECE_S

    def _offset_mmhg(self) -> float:
        if not self._disturbances:  # the usual line: read two or three times a loop step
            return 0.0
        return sum(d.offset_mmhg(self._t_s) for d in self._disturbances)

    def _command(self) -> None:
        if self._closed:
            raise PumpConnectionError("the simulated pump was closed")
        self._advance_to(self._clock.now_s())
        self._last_contact_s = self._t_s

    def _stop_and_ack(self) -> PumpStatus:
        self._rate_ul_s = 0.0
        self._backoff_left_ul = 0.0
        if not self.stalled:
            self._alarm = None
        self._state = PumpState.ALARM if self._alarm is not None else PumpState.STOPPED
        return self._ack()

    def _ack(self) -> PumpStatus:
        if self._drop_ack:
            self._drop_ack = False
            raise UncertainDeliveryError("the simulated pump acted but its reply was lost")
        return self._status()

    def _step_train_ul_s(self, rate_ml_h: float) -> float:
        """The rate an evenly spaced step train runs at: period rounded up to a timer tick."""
        period_s = self.microstep_ul / _ul_s(rate_ml_h)
        ticks = math.ceil(period_s / STEP_TIMER_TICK_S - 1e-6)
        return self.microstep_ul / (ticks * STEP_TIMER_TICK_S)

    def _raise_alarm(self, alarm: PumpAlarm) -> None:
        self._alarm = alarm
        self._state = PumpState.ALARM
        self._rate_ul_s = 0.0
        self._backoff_left_ul = 0.0

    def _status(self) -> PumpStatus:
        running = self._state is PumpState.INFUSING
        offset_mmhg = self._offset_mmhg()
        return PumpStatus(
            t_s=self._t_s,
            state=self._state,
            rate_ml_h=_ml_h(self._rate_ul_s) if running else 0.0,
            delivered_ml=math.floor(self._forward_ul / self.microstep_ul + 1e-9)
            * self.microstep_ul / UL_PER_ML,
            syringe_remaining_ml=max(0.0, self._fill_ul - self._stopper_ul) / UL_PER_ML,
            line_pressure_mmhg=self._pressure_mmhg + offset_mmhg,
            plunger_force_n=(self._pressure_mmhg + offset_mmhg) * PA_PER_MMHG * self.area_mm2
            * 1e-6,
            stalled=self.stalled,
            end_of_travel=self._stopper_ul >= self._fill_ul,
            alarm=self._alarm,
        )

    def _motor_ul_s(self) -> float:
        if self._jammed:
            return 0.0
        if self._state is PumpState.INFUSING:
            if self._overloaded:
                return 0.0
            return self._rate_ul_s
        if self._state is PumpState.BACKING_OFF:
            return -_ul_s(self._capabilities.max_rate_ml_h)
        return 0.0

    def _advance_to(self, t_end_s: float) -> None:
        while self._t_s < t_end_s:
            self._piece(t_end_s - self._t_s)

    def _piece(self, h_max: float) -> None:
        """Integrate one piece of constant motor speed and regime, up to the next event."""
        motor = self._motor_ul_s()
        h, event = h_max, _Event.NONE

        def soonest(t: float, e: _Event) -> None:
            nonlocal h, event
            if 0 <= t < h:
                h, event = t, e

        in_band = (motor > 0 and self._gap_ul > 0) or (motor < 0 and self._gap_ul < self.band_ul)
        q = 0.0 if in_band else motor  # fluid volume rate the stopper displaces
        if in_band:
            soonest((self._gap_ul if motor > 0 else self.band_ul - self._gap_ul) / abs(motor),
                    _Event.TAKEUP_DONE)
        if motor < 0:
            soonest(self._backoff_left_ul / -motor, _Event.BACKOFF_DONE)
        if q > 0:
            soonest((self._fill_ul - self._stopper_ul) / q, _Event.EMPTY)
        if motor != 0 and self._capabilities.host_loss is not HostLossBehaviour.KEEPS_RATE:
            soonest(self._last_contact_s + self.watchdog_timeout_s - self._t_s, _Event.WATCHDOG)

        c = self._compliance
        down = self.venous_pressure_mmhg
        d0 = self._pressure_mmhg - down
        open_line = not self._occluded and (d0 > 0 or (d0 == 0 and q > 0))
        if open_line:
            resistance = self._resistance(self._t_s)
            if self._resistance_growth > 0:
                soonest(self._resistance_cell_end_s() - self._t_s, _Event.NONE)
            # D = P − P_down relaxes to D_inf = q·R with tau = R·C.
            tau = resistance * c
            d_inf = q * resistance
            if q < 0:
                soonest(tau * math.log((d0 - d_inf) / -d_inf), _Event.VALVE)
            if q > 0:
                d_stall = self.stall_pressure_mmhg - down
                if d0 < d_stall < d_inf:
                    soonest(tau * math.log((d_inf - d0) / (d_inf - d_stall)), _Event.STALL)
            d1 = 0.0 if event is _Event.VALVE else d_inf + (d0 - d_inf) * math.exp(-h / tau)
            out = q * h - c * (d1 - d0)
            if self._infiltrated_at_s is None:
                self._outflow_ul += out
            else:
                self._tissue_ul += out
            self._pressure_mmhg = down + d1
        else:
            if q > 0 and not self._occluded and d0 < 0:
                soonest(-d0 * c / q, _Event.VALVE)
            if q > 0:
                soonest((self.stall_pressure_mmhg - self._pressure_mmhg) * c / q, _Event.STALL)
            self._pressure_mmhg = (down if event is _Event.VALVE
                                   else self._pressure_mmhg + q * h / c)

        moved = motor * h
        if motor > 0:
            self._forward_ul += moved
        else:
            self._withdrawn_ul -= moved
        if in_band:
            self._gap_ul = min(self.band_ul, max(0.0, self._gap_ul - moved))
        self._stopper_ul += q * h
        if motor < 0:
            self._backoff_left_ul = max(0.0, self._backoff_left_ul + moved)
        self._t_s += h
        self._apply(event)

    def _apply(self, event: _Event) -> None:
        if event is _Event.TAKEUP_DONE:
            self._gap_ul = 0.0 if self._state is PumpState.INFUSING else self.band_ul
        elif event is _Event.EMPTY:
            self._stopper_ul = self._fill_ul
            self._raise_alarm(PumpAlarm.EMPTY)
        elif event is _Event.BACKOFF_DONE:
            self._backoff_left_ul = 0.0
            self._state = PumpState.STOPPED
        elif event is _Event.WATCHDOG:
            if self._capabilities.host_loss is HostLossBehaviour.STOPS_AND_ALARMS:
                self._raise_alarm(PumpAlarm.HOST_TIMEOUT)
            else:
                self._rate_ul_s = 0.0
                self._backoff_left_ul = 0.0
                self._state = PumpState.STOPPED
        elif event is _Event.STALL:
            self._overloaded = True
            self._raise_alarm(PumpAlarm.STALL)


class SimPumpReadings:
    """What the rest of a simulation may read of a pump twin's physics, and nothing it could
    command: the supervisor stays the only holder of the pump (docs/architecture.md, 1)."""

    def __init__(self, pump: SimSyringePump) -> None:
        self.__pump = pump

    @property
    def t_s(self) -> float:
        self.__pump.advance()
        return self.__pump._t_s

    @property
    def outflow_volume_ml(self) -> float:
        return self.__pump.outflow_volume_ml

    @property
    def tissue_volume_ml(self) -> float:
        return self.__pump.tissue_volume_ml

    @property
    def line_pressure_mmhg(self) -> float:
        return self.__pump.line_pressure_mmhg

    @property
    def stalled(self) -> bool:
        return self.__pump.stalled


class SimLineSignals:
    """Line inputs of a :class:`SimSyringePump`'s line; satisfies ``LineSignalSource``.

    The extravasation sensor is a lever (:meth:`trip_extravasation_sensor`); with
    ``sensor_threshold_ml`` set it also trips by itself once that much went into tissue.
    """

    def __init__(
        self,
        pump: SimSyringePump | SimPumpReadings,
        *,
        sensor_threshold_ml: float | None = None,
    ) -> None:
        self._pump = pump.readings if isinstance(pump, SimSyringePump) else pump
        self._sensor_threshold_ml = sensor_threshold_ml
        self._sensor_tripped = False

    def trip_extravasation_sensor(self) -> None:
        self._sensor_tripped = True

    def clear_extravasation_sensor(self) -> None:
        self._sensor_tripped = False

    def read(self) -> LineSignals:
        pump = self._pump
        t_s = pump.t_s
        threshold = self._sensor_threshold_ml
        if threshold is not None and pump.tissue_volume_ml >= threshold:
            self._sensor_tripped = True
        return LineSignals(
            t_s=t_s,
            line_pressure_mmhg=pump.line_pressure_mmhg,
            stall=pump.stalled,
            extravasation_sensor=self._sensor_tripped,
        )
