"""A Harvard Apparatus Pump 11 Elite as seen from its serial port, driven by a physics twin.

Quick Start command set: ``diameter``, ``irate``/``wrate`` (value and unit, ``max``, ``min``,
``lim``), ``irun``, ``wrun``, ``stp``, ``ivolume``/``wvolume`` and their clears, ``tvolume``,
``ctvolume``, ``force``, ``ver``. Every reply ends in the prompt, which shows what the pump is
doing; a stall (the twin's stall or end of travel) shows ``*`` until it is cleared at the pump
(:meth:`HarvardEmulator.clear_stall_at_keypad`), and the pump refuses to run meanwhile.

The pump has no communication watchdog: a silent host leaves it running. Assumed limits
(assumed, not from the manual; docs/pumps.md): diameter 0.1-50 mm; plunger limits in the codec.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from drivers.pump.harvard_codec import (
    HarvardError,
    HarvardPrompt,
    HarvardRateUnit,
    HarvardReply,
    HarvardRequest,
    harvard_rate_limits_ml_h,
    parse_request,
)
from drivers.pump.new_era_codec import CodecError, format_number, parse_number
from drivers.sim.new_era_emulator import DispenseCounter
from drivers.sim.pty_port import WireFaults
from vasopilot.core.clock import Clock
from vasopilot.core.errors import PumpError
from vasopilot.core.interfaces import Pump
from vasopilot.core.types import PumpState
from vasopilot.core.units import UL_PER_ML

FIRMWARE = "ELITE I/W Single 3.0.6"
MIN_DIAMETER_MM = 0.1
MAX_DIAMETER_MM = 50.0
MAX_LINE_BYTES = 128


@dataclass
class _Unit:
    address: int
    physics: Pump
    diameter_mm: float
    irate: tuple[float, HarvardRateUnit] = (0.0, HarvardRateUnit.ML_H)
    wrate: tuple[float, HarvardRateUnit] = (0.0, HarvardRateUnit.ML_H)
    prompt: HarvardPrompt = HarvardPrompt.IDLE
    stalled: bool = False
    target_ml: float = 0.0
    force_pct: int = 50
    counter: DispenseCounter = field(init=False)

    def __post_init__(self) -> None:
        self.counter = DispenseCounter(self.physics)

    @property
    def running(self) -> bool:
        return self.prompt in (HarvardPrompt.INFUSING, HarvardPrompt.WITHDRAWING)


class HarvardEmulator:
    """Speaks the Pump 11 Elite command set for one or more addresses on one line."""

    def __init__(self, clock: Clock, pumps: Mapping[int, Pump], *,
                 diameter_mm: float = 26.7) -> None:
        if not pumps or any(not 0 <= a <= 99 for a in pumps):
            raise ValueError(f"addresses must be 0-99, got {sorted(pumps)}")
        self._clock = clock
        self._units = {a: _Unit(a, p, diameter_mm) for a, p in pumps.items()}
        self._buf = bytearray()
        self._lock = threading.Lock()
        self.faults = WireFaults()
        self.received: list[HarvardRequest] = []

    # -- ByteDevice -----------------------------------------------------------------------------

    def on_bytes(self, data: bytes) -> bytes:
        with self._lock:
            self._buf.extend(data)
            out = bytearray()
            while (end := self._buf.find(b"\r")) >= 0:
                line = bytes(self._buf[:end]).decode("latin-1").replace("\n", "")
                del self._buf[: end + 1]
                request = parse_request(line)
                self.received.append(request)
                self._advance()
                out += self._shape(self._handle(request))
            if len(self._buf) > MAX_LINE_BYTES:
                self._buf.clear()  # the pump's line buffer overflowed: the line is lost
            return bytes(out)

    def poll(self) -> bytes:
        with self._lock:
            self._advance()
            return b""

    # -- levers and inspection ------------------------------------------------------------------

    def clear_stall_at_keypad(self, address: int = 0) -> None:
        """What a person does at the pump after a stall; the physics jam must be cleared too."""
        with self._lock:
            unit = self._units[address]
            unit.stalled = False
            unit.prompt = HarvardPrompt.IDLE

    def state(self, address: int = 0) -> tuple[HarvardPrompt, float]:
        """(prompt, infusion rate in mL/h) of one pump, for tests."""
        with self._lock:
            self._advance()
            unit = self._units[address]
            return unit.prompt, unit.irate[0] * unit.irate[1].ml_h

    # -- time -----------------------------------------------------------------------------------

    def _advance(self) -> None:
        for unit in self._units.values():
            unit.counter.update()
            if not unit.running:
                continue
            status = unit.physics.status()
            if status.stalled or status.end_of_travel:
                self._halt(unit)
                unit.stalled = True
                unit.prompt = HarvardPrompt.STALLED
            elif unit.prompt is HarvardPrompt.WITHDRAWING:
                if status.state is not PumpState.BACKING_OFF:
                    self._halt(unit)
                    unit.prompt = HarvardPrompt.TARGET_REACHED
            elif 0 < unit.target_ml <= unit.counter.phase_ml:
                self._halt(unit)
                unit.prompt = HarvardPrompt.TARGET_REACHED

    def _halt(self, unit: _Unit) -> None:
        if unit.prompt is HarvardPrompt.WITHDRAWING:
            unit.counter.end_withdrawal(self._clock.now_s())
        with contextlib.suppress(PumpError):
            unit.physics.stop()
        unit.prompt = HarvardPrompt.IDLE
        unit.counter.update()

    # -- requests -------------------------------------------------------------------------------

    def _handle(self, req: HarvardRequest) -> HarvardReply | None:
        unit = self._units.get(req.address)
        if unit is None:
            return None
        if not req.command and not req.args:
            return self._reply(unit)
        if not req.known:
            return self._reply(unit, HarvardError.UNKNOWN_COMMAND.value)
        handler = getattr(self, f"_cmd_{req.command}", None)
        if handler is None:
            return self._reply(unit, HarvardError.UNKNOWN_COMMAND.value)
        try:
            reply: HarvardReply = handler(unit, req.args)
        except (CodecError, ValueError):
            return self._reply(unit, HarvardError.ARGUMENT_ERROR.value)
        return reply

    def _reply(self, unit: _Unit, *lines: str) -> HarvardReply:
        prompt = unit.prompt
        if prompt is HarvardPrompt.TARGET_REACHED:
            # "T*" is shown once, then the pump is simply idle.
            unit.prompt = HarvardPrompt.IDLE
        return HarvardReply(unit.address, prompt, lines)

    def _cmd_ver(self, unit: _Unit, args: tuple[str, ...]) -> HarvardReply:
        return self._reply(unit, FIRMWARE)

    def _cmd_force(self, unit: _Unit, args: tuple[str, ...]) -> HarvardReply:
        if not args:
            return self._reply(unit, f"{unit.force_pct}%")
        value = int(args[0].rstrip("%"))
        if not 1 <= value <= 100:
            return self._reply(unit, HarvardError.OUT_OF_RANGE.value)
        unit.force_pct = value
        return self._reply(unit)

    def _cmd_diameter(self, unit: _Unit, args: tuple[str, ...]) -> HarvardReply:
        if not args:
            return self._reply(unit, f"{format_number(unit.diameter_mm)} mm")
        if unit.running:
            return self._reply(unit, HarvardError.COMMAND_ERROR.value)
        diameter_mm = parse_number(args[0])
        if not MIN_DIAMETER_MM <= diameter_mm <= MAX_DIAMETER_MM:
            return self._reply(unit, HarvardError.OUT_OF_RANGE.value)
        unit.diameter_mm = diameter_mm
        return self._reply(unit)

    def _limits(self, unit: _Unit) -> tuple[float, float]:
        low, high = harvard_rate_limits_ml_h(unit.diameter_mm)
        caps = unit.physics.capabilities
        return max(low, caps.min_rate_ml_h), min(high, caps.max_rate_ml_h)

    def _rate(self, unit: _Unit, args: tuple[str, ...], infuse: bool) -> HarvardReply:
        current = unit.irate if infuse else unit.wrate
        low, high = self._limits(unit)
        if not args:
            value, rate_unit = current
            return self._reply(unit, f"{format_number(value)} {rate_unit.value}")
        if args[0] == "lim":
            return self._reply(unit, f"{format_number(low)} ml/hr to {format_number(high)} ml/hr")
        if args[0] in ("max", "min"):
            rate_ml_h = high if args[0] == "max" else low
            new = (float(format_number(rate_ml_h, round_down=True)), HarvardRateUnit.ML_H)
        else:
            if len(args) != 2:
                return self._reply(unit, HarvardError.ARGUMENT_ERROR.value)
            new = (parse_number(args[0]), HarvardRateUnit(args[1]))
        rate_ml_h = new[0] * new[1].ml_h
        if not low <= rate_ml_h <= high:
            return self._reply(unit, HarvardError.OUT_OF_RANGE.value)
        if infuse and unit.prompt is HarvardPrompt.INFUSING:
            try:
                unit.physics.set_rate(rate_ml_h)
            except PumpError:
                return self._reply(unit, HarvardError.OUT_OF_RANGE.value)
        if infuse:
            unit.irate = new
        else:
            unit.wrate = new
        return self._reply(unit)

    def _cmd_irate(self, unit: _Unit, args: tuple[str, ...]) -> HarvardReply:
        return self._rate(unit, args, infuse=True)

    def _cmd_wrate(self, unit: _Unit, args: tuple[str, ...]) -> HarvardReply:
        return self._rate(unit, args, infuse=False)

    def _run(self, unit: _Unit, infuse: bool) -> HarvardReply:
        if unit.stalled:
            return self._reply(unit, HarvardError.COMMAND_ERROR.value)
        value, rate_unit = unit.irate if infuse else unit.wrate
        if value <= 0:
            return self._reply(unit, HarvardError.COMMAND_ERROR.value)
        if unit.running:
            self._halt(unit)
        unit.counter.phase_ml = 0.0
        try:
            if infuse:
                unit.physics.set_rate(value * rate_unit.ml_h)
                unit.prompt = HarvardPrompt.INFUSING
            else:
                # Without a target the plunger may come back all the way it went.
                volume_ml = unit.target_ml or unit.counter.infused_ml
                unit.counter.start_withdrawal(volume_ml, self._clock.now_s())
                unit.prompt = HarvardPrompt.WITHDRAWING
        except PumpError:
            return self._reply(unit, HarvardError.COMMAND_ERROR.value)
        return self._reply(unit)

    def _cmd_irun(self, unit: _Unit, args: tuple[str, ...]) -> HarvardReply:
        return self._run(unit, infuse=True)

    def _cmd_wrun(self, unit: _Unit, args: tuple[str, ...]) -> HarvardReply:
        return self._run(unit, infuse=False)

    def _cmd_stp(self, unit: _Unit, args: tuple[str, ...]) -> HarvardReply:
        if unit.running:
            self._halt(unit)
        return self._reply(unit)

    def _volume(self, unit: _Unit, volume_ml: float) -> HarvardReply:
        if volume_ml < 1.0:
            return self._reply(unit, f"{format_number(min(volume_ml * UL_PER_ML, 9999))} ul")
        return self._reply(unit, f"{format_number(min(volume_ml, 9999))} ml")

    def _cmd_ivolume(self, unit: _Unit, args: tuple[str, ...]) -> HarvardReply:
        return self._volume(unit, unit.counter.infused_ml)

    def _cmd_wvolume(self, unit: _Unit, args: tuple[str, ...]) -> HarvardReply:
        return self._volume(unit, unit.counter.withdrawn_ml)

    def _cmd_civolume(self, unit: _Unit, args: tuple[str, ...]) -> HarvardReply:
        unit.counter.infused_ml = 0.0
        return self._reply(unit)

    def _cmd_cwvolume(self, unit: _Unit, args: tuple[str, ...]) -> HarvardReply:
        unit.counter.withdrawn_ml = 0.0
        return self._reply(unit)

    def _cmd_cvolume(self, unit: _Unit, args: tuple[str, ...]) -> HarvardReply:
        unit.counter.infused_ml = unit.counter.withdrawn_ml = 0.0
        return self._reply(unit)

    def _cmd_tvolume(self, unit: _Unit, args: tuple[str, ...]) -> HarvardReply:
        if not args:
            if not unit.target_ml:
                return self._reply(unit, "Target volume not set")
            return self._volume(unit, unit.target_ml)
        if len(args) != 2 or args[1] not in ("ml", "ul"):
            return self._reply(unit, HarvardError.ARGUMENT_ERROR.value)
        value = parse_number(args[0])
        unit.target_ml = value if args[1] == "ml" else value / UL_PER_ML
        return self._reply(unit)

    def _cmd_ctvolume(self, unit: _Unit, args: tuple[str, ...]) -> HarvardReply:
        unit.target_ml = 0.0
        return self._reply(unit)

    def _shape(self, reply: HarvardReply | None) -> bytes:
        if reply is None:
            return b""
        other = HarvardReply((reply.address + 1) % 100, reply.prompt, reply.lines)
        return self.faults.shape(reply.encode(), other.encode())
