"""An NE-1000 as seen from its RS-232 port, driven by a syringe-physics twin.

The emulator answers exactly as the pump does (basic and safe framing, status characters,
alarms, ``?`` errors, the ``A?R`` on the first command after power-up) so a program written for
the real pump runs against it unchanged. Rate, direction and dispensed volume go to and come
from a physics object satisfying :class:`vasopilot.core.interfaces.Pump` (normally
``SimSyringePump``): its stall and end of travel become alarm ``S``, its delivered volume the
``DIS`` counters. Time, including the safe-mode timeout, comes from a :class:`Clock`.

Several pumps may share one line: pass one physics object per address.
Fault levers for tests live on :attr:`NewEraEmulator.faults`, never on the protocol itself.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from drivers.pump.new_era_codec import (
    BadPacket,
    CodecError,
    NewEraAlarm,
    NewEraError,
    NewEraReply,
    NewEraRequest,
    NewEraStatus,
    RateUnit,
    RequestDecoder,
    VolumeUnit,
    format_number,
    parse_number,
    rate_limits_ml_h,
    volume_unit_for,
)
from drivers.sim.pty_port import WireFaults
from vasopilot.core.clock import Clock
from vasopilot.core.errors import PumpError
from vasopilot.core.interfaces import Pump
from vasopilot.core.types import PumpState
from vasopilot.core.units import UL_PER_ML

FIRMWARE = "NE1000V3.928"
MIN_DIAMETER_MM = 0.1
MAX_DIAMETER_MM = 50.0
MAX_SAFE_TIMEOUT_S = 255


def _effective_limits_ml_h(diameter_mm: float, physics: Pump) -> tuple[float, float]:
    """The pump's limits, narrowed to what the physics twin's motor can really do."""
    low_ml_h, high_ml_h = rate_limits_ml_h(diameter_mm)
    caps = physics.capabilities
    return max(low_ml_h, caps.min_rate_ml_h), min(high_ml_h, caps.max_rate_ml_h)


class DispenseCounter:
    """A pump's own volume counters (infused, withdrawn, this phase), kept from a physics twin.

    The twin counts forward plunger travel, as a pump's counter does; it withdraws at its top
    speed without counting, so withdrawn volume is the time spent withdrawing at that speed,
    capped at the volume asked for.
    """

    def __init__(self, physics: Pump) -> None:
        self._physics = physics
        self.infused_ml = 0.0
        self.withdrawn_ml = 0.0
        self.phase_ml = 0.0
        self._last_delivered_ml = physics.status().delivered_ml
        self._withdraw_ml = 0.0
        self._withdraw_started_t_s = 0.0

    def update(self) -> None:
        delivered_ml = self._physics.status().delivered_ml
        delta_ml = max(0.0, delivered_ml - self._last_delivered_ml)
        self._last_delivered_ml = delivered_ml
        self.infused_ml += delta_ml
        self.phase_ml += delta_ml

    def start_withdrawal(self, volume_ml: float, t_s: float) -> None:
        """Withdraw ``volume_ml`` through the twin (raises its PumpError if it cannot)."""
        self._withdraw_ml = max(0.0, volume_ml)
        self._withdraw_started_t_s = t_s
        self._physics.back_off(self._withdraw_ml * UL_PER_ML)

    def end_withdrawal(self, t_s: float) -> None:
        speed_ml_s = self._physics.capabilities.max_rate_ml_h / 3600.0
        elapsed_s = t_s - self._withdraw_started_t_s
        self.withdrawn_ml += min(self._withdraw_ml, elapsed_s * speed_ml_s)
        self._withdraw_ml = 0.0


@dataclass
class _Unit:
    """One pump on the line: what it stores and what it is doing."""

    address: int
    physics: Pump
    diameter_mm: float
    rate_value: float = 0.0
    rate_unit: RateUnit = RateUnit.ML_H
    volume_target: float = 0.0
    volume_unit: VolumeUnit = VolumeUnit.ML
    direction: str = "INF"
    motion: NewEraStatus = NewEraStatus.STOPPED
    alarm: NewEraAlarm | None = NewEraAlarm.RESET
    alarm_announced: bool = True  # an unsolicited packet already went out for ``alarm``
    safe_timeout_s: int = 0
    last_valid_t_s: float | None = None
    counter: DispenseCounter = field(init=False)

    def __post_init__(self) -> None:
        self.counter = DispenseCounter(self.physics)

    @property
    def safe(self) -> bool:
        return self.safe_timeout_s > 0

    @property
    def rate_ml_h(self) -> float:
        return self.rate_value * self.rate_unit.ml_h

    @property
    def running(self) -> bool:
        return self.motion in (NewEraStatus.INFUSING, NewEraStatus.WITHDRAWING,
                               NewEraStatus.PURGING)


class NewEraEmulator:
    """Speaks the NE-1000 protocol for one or more addresses.

    ``pumps`` maps each address to its physics; ``diameter_mm`` is the stored diameter at
    power-up (the pump keeps it in non-volatile memory).
    """

    def __init__(self, clock: Clock, pumps: Mapping[int, Pump], *, diameter_mm: float = 26.7,
                 safe_mode_timeout_s: int = 0) -> None:
        if not pumps or any(not 0 <= a <= 99 for a in pumps):
            raise ValueError(f"addresses must be 0-99, got {sorted(pumps)}")
        self._clock = clock
        self._units = {
            address: _Unit(address, physics, diameter_mm, volume_unit=volume_unit_for(diameter_mm),
                           safe_timeout_s=safe_mode_timeout_s)
            for address, physics in pumps.items()
        }
        self._decoder = RequestDecoder()
        self._lock = threading.Lock()
        self.faults = WireFaults()
        self.received: list[NewEraRequest | BadPacket] = []

    # -- ByteDevice -----------------------------------------------------------------------------

    def on_bytes(self, data: bytes) -> bytes:
        with self._lock:
            now_s = self._clock.now_s()
            out = bytearray()
            for item in self._decoder.feed(data, now_s):
                self.received.append(item)
                self._advance(now_s)
                out += self._shape(self._handle(item, now_s))
            return bytes(out)

    def poll(self) -> bytes:
        with self._lock:
            self._advance(self._clock.now_s())
            return self._announcements()

    # -- levers and inspection ------------------------------------------------------------------

    def power_cycle(self, address: int = 0) -> None:
        """Power lost and back: the pump stops, keeps its stored settings and raises ``A?R``."""
        with self._lock:
            unit = self._units[address]
            self._halt(unit)
            unit.alarm, unit.alarm_announced = NewEraAlarm.RESET, True
            unit.last_valid_t_s = None

    def keypad(self, rate_ml_h: float, address: int = 0) -> None:
        """Someone at the pump's own keys sets ``rate_ml_h`` and presses run (0: stop there).

        Nothing goes out on the line: a host learns of it only by asking.
        """
        with self._lock:
            self._advance(self._clock.now_s())
            unit = self._units[address]
            if rate_ml_h <= 0:
                self._halt(unit)
                return
            unit.rate_value, unit.rate_unit = rate_ml_h / unit.rate_unit.ml_h, unit.rate_unit
            if unit.motion is not NewEraStatus.INFUSING:
                self._halt(unit)
                unit.direction = "INF"
                unit.counter.phase_ml = 0.0
            unit.physics.set_rate(rate_ml_h)
            unit.motion = NewEraStatus.INFUSING

    def state(self, address: int = 0) -> tuple[NewEraStatus, float, NewEraAlarm | None]:
        """(motion, rate in mL/h, pending alarm) of one pump, for tests."""
        with self._lock:
            self._advance(self._clock.now_s())
            unit = self._units[address]
            return unit.motion, unit.rate_ml_h, unit.alarm

    # -- time -----------------------------------------------------------------------------------

    def _advance(self, now_s: float) -> None:
        """Bring counters, stalls, volume targets and safe-mode timers up to ``now_s``."""
        for unit in self._units.values():
            unit.counter.update()
            status = unit.physics.status()
            if unit.running and (status.stalled or status.end_of_travel):
                self._halt(unit)
                self._raise(unit, NewEraAlarm.STALL)
            elif self._phase_done(unit, status.state):
                self._halt(unit)
            if (unit.safe and unit.last_valid_t_s is not None
                    and now_s - unit.last_valid_t_s > unit.safe_timeout_s
                    and unit.alarm is not NewEraAlarm.SAFE_MODE_TIMEOUT):
                self._halt(unit)
                self._raise(unit, NewEraAlarm.SAFE_MODE_TIMEOUT)
                unit.last_valid_t_s = None

    def _announcements(self) -> bytes:
        """In safe mode a pump sends each new alarm on its own, once."""
        out = bytearray()
        for unit in self._units.values():
            if unit.safe and unit.alarm is not None and not unit.alarm_announced:
                unit.alarm_announced = True
                out += NewEraReply(unit.address, NewEraStatus.ALARM, alarm=unit.alarm,
                                   safe=True).encode()
        return bytes(out)


    def _phase_done(self, unit: _Unit, physics_state: PumpState) -> bool:
        """A set volume was dispensed, or the twin finished the withdrawal it was given."""
        if unit.motion is NewEraStatus.WITHDRAWING:
            return physics_state is not PumpState.BACKING_OFF
        return unit.running and 0 < self._target_ml(unit) <= unit.counter.phase_ml

    def _target_ml(self, unit: _Unit) -> float:
        scale = 1.0 if unit.volume_unit is VolumeUnit.ML else 1.0 / UL_PER_ML
        return unit.volume_target * scale

    def _raise(self, unit: _Unit, alarm: NewEraAlarm) -> None:
        unit.alarm, unit.alarm_announced = alarm, False

    def _halt(self, unit: _Unit) -> None:
        if unit.motion is NewEraStatus.WITHDRAWING:
            unit.counter.end_withdrawal(self._clock.now_s())
        if unit.running or unit.motion is NewEraStatus.PAUSED:
            # The pump's own stop: a physics twin that refuses is already standing still.
            with contextlib.suppress(PumpError):
                unit.physics.stop()
        unit.motion = NewEraStatus.STOPPED
        unit.counter.update()

    # -- requests -------------------------------------------------------------------------------

    def _handle(self, item: NewEraRequest | BadPacket, now_s: float) -> NewEraReply | None:
        if isinstance(item, BadPacket):
            # Without a valid packet the address is unknown: the first pump on the line answers.
            first = next(iter(self._units.values()))
            return NewEraReply(first.address, first.motion,
                               error=NewEraError.COMMUNICATION, safe=True)
        if item.system:
            # System commands reach every pump and none answers, or they would talk at once.
            if item.command == "RESET":
                for each in self._units.values():
                    self._halt(each)
                    each.safe_timeout_s = 0
            return None
        address = 0 if item.address is None else item.address
        unit = self._units.get(address)
        if unit is None:
            return None
        if unit.safe and not item.safe:
            # In safe mode only framed packets count; a bare command is an invalid packet.
            return NewEraReply(address, unit.motion, error=NewEraError.COMMUNICATION,
                               safe=True)
        if unit.safe or item.command == "SAF":
            unit.last_valid_t_s = now_s
        if unit.alarm is not None:
            # Answering the alarm acknowledges it; the command itself is not carried out.
            alarm, unit.alarm = unit.alarm, None
            return NewEraReply(address, NewEraStatus.ALARM, alarm=alarm, safe=unit.safe)
        return self._command(unit, item, now_s)

    def _ok(self, unit: _Unit, data: str = "") -> NewEraReply:
        return NewEraReply(unit.address, unit.motion, data=data, safe=unit.safe)

    def _err(self, unit: _Unit, error: NewEraError) -> NewEraReply:
        return NewEraReply(unit.address, unit.motion, error=error, safe=unit.safe)

    def _command(self, unit: _Unit, req: NewEraRequest, now_s: float) -> NewEraReply:
        handler = {
            "": self._cmd_status, "VER": self._cmd_ver, "DIA": self._cmd_dia,
            "RAT": self._cmd_rat, "VOL": self._cmd_vol, "DIR": self._cmd_dir,
            "RUN": self._cmd_run, "STP": self._cmd_stp, "PUR": self._cmd_pur,
            "DIS": self._cmd_dis, "CLD": self._cmd_cld, "SAF": self._cmd_saf,
        }.get(req.command)
        if handler is None:
            return self._err(unit, NewEraError.UNKNOWN_COMMAND)
        try:
            return handler(unit, req.params)
        except CodecError:
            return self._err(unit, NewEraError.OUT_OF_RANGE)

    def _cmd_status(self, unit: _Unit, params: str) -> NewEraReply:
        return self._ok(unit) if not params else self._err(unit, NewEraError.UNKNOWN_COMMAND)

    def _cmd_ver(self, unit: _Unit, params: str) -> NewEraReply:
        return self._ok(unit, FIRMWARE)

    def _cmd_dia(self, unit: _Unit, params: str) -> NewEraReply:
        if not params:
            return self._ok(unit, format_number(unit.diameter_mm))
        if unit.running:
            return self._err(unit, NewEraError.NOT_APPLICABLE)
        diameter_mm = parse_number(params)
        if not MIN_DIAMETER_MM <= diameter_mm <= MAX_DIAMETER_MM:
            return self._err(unit, NewEraError.OUT_OF_RANGE)
        unit.diameter_mm = diameter_mm
        unit.volume_unit = volume_unit_for(diameter_mm)
        return self._ok(unit)

    def _cmd_rat(self, unit: _Unit, params: str) -> NewEraReply:
        if not params:
            return self._ok(unit, format_number(unit.rate_value) + unit.rate_unit.value)
        number, suffix = params, ""
        if params[-2:] in {u.value for u in RateUnit}:
            number, suffix = params[:-2], params[-2:]
        rate_unit = RateUnit(suffix) if suffix else unit.rate_unit
        if not number:
            if unit.running and rate_unit is not unit.rate_unit:
                return self._err(unit, NewEraError.NOT_APPLICABLE)
            unit.rate_unit = rate_unit
            return self._ok(unit)
        value = parse_number(number)
        if unit.running and rate_unit is not unit.rate_unit:
            return self._err(unit, NewEraError.NOT_APPLICABLE)
        low_ml_h, high_ml_h = _effective_limits_ml_h(unit.diameter_mm, unit.physics)
        rate_ml_h = value * rate_unit.ml_h
        if not low_ml_h <= rate_ml_h <= high_ml_h:
            return self._err(unit, NewEraError.OUT_OF_RANGE)
        if unit.motion is NewEraStatus.INFUSING:
            try:
                unit.physics.set_rate(rate_ml_h)
            except PumpError:
                return self._err(unit, NewEraError.OUT_OF_RANGE)
        unit.rate_value, unit.rate_unit = value, rate_unit
        return self._ok(unit)

    def _cmd_vol(self, unit: _Unit, params: str) -> NewEraReply:
        if not params:
            return self._ok(unit, format_number(unit.volume_target) + unit.volume_unit.value)
        if params in {u.value for u in VolumeUnit}:
            unit.volume_unit = VolumeUnit(params)
            return self._ok(unit)
        if unit.running:
            return self._err(unit, NewEraError.NOT_APPLICABLE)
        unit.volume_target = parse_number(params)
        return self._ok(unit)

    def _cmd_dir(self, unit: _Unit, params: str) -> NewEraReply:
        if not params:
            return self._ok(unit, unit.direction)
        if params not in ("INF", "WDR", "REV"):
            return self._err(unit, NewEraError.OUT_OF_RANGE if params != "STK"
                             else NewEraError.NOT_APPLICABLE)
        new = params if params != "REV" else ("WDR" if unit.direction == "INF" else "INF")
        if unit.running and new != unit.direction:
            # Reversing a running pump is allowed only without a volume target; the physics twin
            # cannot withdraw without a target, so reversal waits for a stop.
            return self._err(unit, NewEraError.NOT_APPLICABLE)
        unit.direction = new
        return self._ok(unit)

    def _cmd_run(self, unit: _Unit, params: str) -> NewEraReply:
        if params:
            return self._err(unit, NewEraError.UNKNOWN_COMMAND)
        if unit.running:
            return self._ok(unit)
        if unit.rate_value <= 0:
            return self._err(unit, NewEraError.NOT_APPLICABLE)
        if unit.motion is not NewEraStatus.PAUSED:
            unit.counter.phase_ml = 0.0
        try:
            if unit.direction == "INF":
                unit.physics.set_rate(unit.rate_ml_h)
                unit.motion = NewEraStatus.INFUSING
            else:
                # Without a volume target the plunger may come back all the way it went.
                withdraw_ml = self._target_ml(unit) - unit.counter.phase_ml \
                    if unit.volume_target else unit.counter.infused_ml
                unit.counter.start_withdrawal(withdraw_ml, self._clock.now_s())
                unit.motion = NewEraStatus.WITHDRAWING
        except PumpError:
            # A jammed or empty mechanism will not move.
            return self._err(unit, NewEraError.NOT_APPLICABLE)
        return self._ok(unit)

    def _cmd_stp(self, unit: _Unit, params: str) -> NewEraReply:
        if params:
            return self._err(unit, NewEraError.UNKNOWN_COMMAND)
        if unit.running:
            self._halt(unit)
            unit.motion = NewEraStatus.PAUSED
        elif unit.motion is NewEraStatus.PAUSED:
            unit.motion = NewEraStatus.STOPPED
        return self._ok(unit)

    def _cmd_pur(self, unit: _Unit, params: str) -> NewEraReply:
        if unit.running:
            return self._err(unit, NewEraError.NOT_APPLICABLE)
        try:
            unit.physics.set_rate(_effective_limits_ml_h(unit.diameter_mm, unit.physics)[1])
        except PumpError:
            return self._err(unit, NewEraError.NOT_APPLICABLE)
        unit.motion = NewEraStatus.PURGING
        return self._ok(unit)

    def _cmd_dis(self, unit: _Unit, params: str) -> NewEraReply:
        scale = 1.0 if unit.volume_unit is VolumeUnit.ML else UL_PER_ML
        infused = format_number(min(unit.counter.infused_ml * scale, 9999.0))
        withdrawn = format_number(min(unit.counter.withdrawn_ml * scale, 9999.0))
        return self._ok(unit, f"I{infused}W{withdrawn}{unit.volume_unit.value}")

    def _cmd_cld(self, unit: _Unit, params: str) -> NewEraReply:
        if params == "INF":
            unit.counter.infused_ml = 0.0
        elif params == "WDR":
            unit.counter.withdrawn_ml = 0.0
        else:
            return self._err(unit, NewEraError.OUT_OF_RANGE)
        return self._ok(unit)

    def _cmd_saf(self, unit: _Unit, params: str) -> NewEraReply:
        if not params:
            return self._ok(unit, str(unit.safe_timeout_s))
        if not params.isdigit() or int(params) > MAX_SAFE_TIMEOUT_S:
            return self._err(unit, NewEraError.OUT_OF_RANGE)
        unit.safe_timeout_s = int(params)
        unit.last_valid_t_s = self._clock.now_s() if unit.safe else None
        return self._ok(unit)

    # -- wire faults ----------------------------------------------------------------------------

    def _shape(self, reply: NewEraReply | None) -> bytes:
        if reply is None:
            return b""
        other = NewEraReply((reply.address + 1) % 100, reply.status, reply.data, reply.alarm,
                            reply.error, reply.safe)
        return self.faults.shape(reply.encode(), other.encode())
