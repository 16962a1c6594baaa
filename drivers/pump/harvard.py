"""The Harvard Apparatus Pump 11 Elite (Quick Start command set) as a :class:`Pump`.

Every reply ends in a prompt that says what the pump is doing (``:`` idle, ``>`` infusing,
``<`` withdrawing, ``*`` stalled, ``T*`` target reached), so each exchange also refreshes the
state. A stall persists until it is cleared at the pump: until then the driver reports
``stalled`` and starts are refused. The pump has no communication watchdog: if the host dies it
keeps its last rate (S12: ``KEEPS_RATE``), so :meth:`HarvardPump.heartbeat` has nothing to feed.

Errors as for :mod:`drivers.pump.new_era`: no port or no reply -> PumpConnectionError;
garbage, half a reply, another address, text that is not printable ASCII or text where the
command has none -> FrameError (a PumpCommunicationError with its FrameFault); error text ->
HarvardRefusedError; a lost reply after a state-changing command -> UncertainDeliveryError.

The protocol has no checksum: a digit or a prompt changed by line noise into another valid one
cannot be told from the truth. The rate read back after every change and the status polls are
the only defence; the NE-1000 in safe mode is the pump to use where the line is noisy.
"""

from __future__ import annotations

from drivers.pump.frames import FrameError, FrameFault
from drivers.pump.harvard_codec import (
    HarvardError,
    HarvardPrompt,
    HarvardRateUnit,
    HarvardReply,
    ReplyDecoder,
    best_rate_unit,
    encode_request,
    format_rate,
    harvard_rate_limits_ml_h,
    parse_rate,
    parse_volume_ml,
)
from drivers.pump.new_era_codec import CodecError, format_number
from drivers.pump.serial_link import ChangeGuard, SerialLink
from drivers.pump.serial_pump import (
    DEFAULT_TIMEOUT_S,
    back_off_amount,
    back_off_rate_ml_h,
    capabilities,
    counter_status,
    read_reply,
    verify_read_back,
)
from vasopilot.core.clock import Clock
from vasopilot.core.config import SyringeSpec
from vasopilot.core.errors import PumpCommunicationError, PumpRefusedError
from vasopilot.core.types import (
    HostLossBehaviour,
    PumpAlarm,
    PumpCapabilities,
    PumpState,
    PumpStatus,
)


class HarvardRefusedError(PumpRefusedError):
    """The pump answered with error text, or refused to move while stalled."""

    def __init__(self, command: str, error: HarvardError | str) -> None:
        self.command = command
        self.error = error
        text = error.value if isinstance(error, HarvardError) else error
        super().__init__(f"pump refused {command!r}: {text}")


class HarvardPump:
    """One Pump 11 Elite at ``address`` (0-99). Rates in mL/h, volumes in µL or mL as named.

    ``fill_ml`` is the volume drawn into the syringe (default: its nominal volume). The
    constructor reads the firmware version and sets the diameter if the pump is idle; it never
    changes a running pump's rate.
    """

    def __init__(
        self,
        port_url: str,
        *,
        clock: Clock,
        syringe: SyringeSpec,
        address: int = 0,
        baud: int = 115200,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        fill_ml: float | None = None,
    ) -> None:
        if not 0 <= address <= 99:
            raise ValueError(f"Pump 11 Elite address must be 0-99, got {address}")
        self._link = SerialLink(port_url, baud=baud, timeout_s=timeout_s)
        self._decoder = ReplyDecoder()
        self._guard = ChangeGuard()
        self._clock = clock
        self.syringe = syringe
        self.address = address
        self._fill_ml = syringe.volume_ml if fill_ml is None else fill_ml
        self._limits_ml_h = harvard_rate_limits_ml_h(syringe.inner_diameter_mm)
        self._min_ml_h, self._max_ml_h = self._limits_ml_h
        self._prompt = HarvardPrompt.IDLE
        self._rate: tuple[float, HarvardRateUnit] = (0.0, HarvardRateUnit.ML_H)
        self._restore_infuse = False
        self.firmware = " ".join(self._ask("ver", lines=None).lines)
        self._set_diameter()

    # -- Pump protocol ---------------------------------------------------------------------------

    @property
    def capabilities(self) -> PumpCapabilities:
        value, unit = self._rate
        return capabilities(value, unit, self._limits_ml_h, self.syringe.volume_ml,
                            HostLossBehaviour.KEEPS_RATE)

    def set_rate(self, rate_ml_h: float) -> PumpStatus:
        """Infuse at ``rate_ml_h`` (rounded down to 4 significant digits), starting if idle."""
        if rate_ml_h <= 0:
            return self.stop()
        if not self._min_ml_h <= rate_ml_h <= self._max_ml_h:
            raise HarvardRefusedError(f"irate {rate_ml_h} ml/hr", HarvardError.OUT_OF_RANGE)
        with self._guard.changing(f"set rate {rate_ml_h} mL/h"):
            self._ask("")
            if self._prompt is HarvardPrompt.STALLED:
                raise HarvardRefusedError("irun", "stalled: clear the stall at the pump first")
            unit = best_rate_unit(rate_ml_h)
            text = format_rate(rate_ml_h, unit)
            if self._restore_infuse and self._prompt is not HarvardPrompt.INFUSING:
                self._ask("stp", changes=True)
                self._ask("ctvolume", changes=True)
                self._restore_infuse = False
            self._ask(f"irate {text}", changes=True)
            if self._prompt is not HarvardPrompt.INFUSING:
                self._ask("irun", changes=True)
            self._verify_rate(text)
        return self.status()

    def stop(self) -> PumpStatus:
        with self._guard.changing("stop"):
            self._ask("stp", changes=True)
        return self.status()

    def back_off(self, volume_ul: float) -> PumpStatus:
        """Withdraw ``volume_ul`` (wrate, tvolume, wrun); the target is cleared once the
        withdrawal is over, on the next status read or start."""
        volume_text = back_off_amount(
            volume_ul, 1.0,
            lambda: HarvardRefusedError(f"tvolume {volume_ul} ul", HarvardError.OUT_OF_RANGE))
        if volume_text is None:
            return self.status()
        rate_ml_h = back_off_rate_ml_h(self._max_ml_h)
        with self._guard.changing(f"back off {volume_ul} µL"):
            self._ask("stp", changes=True)
            self._restore_infuse = True
            self._ask(f"wrate {format_rate(rate_ml_h, best_rate_unit(rate_ml_h))}", changes=True)
            self._ask(f"tvolume {volume_text} ul", changes=True)
            self._ask("wrun", changes=True)
        return self.status()

    def status(self) -> PumpStatus:
        infused_ml = self._volume("ivolume")
        withdrawn_ml = self._volume("wvolume")
        try:
            self._rate = parse_rate(self._ask("irate", lines=1).lines[0])
        except CodecError:
            raise PumpCommunicationError("unreadable rate reply to 'irate'") from None
        if self._restore_infuse and self._prompt not in (HarvardPrompt.WITHDRAWING,
                                                          HarvardPrompt.INFUSING):
            with self._guard.changing("clear the back-off target"):
                self._ask("ctvolume", changes=True)
            self._restore_infuse = False
        stall = self._prompt is HarvardPrompt.STALLED
        infusing = self._prompt is HarvardPrompt.INFUSING
        return counter_status(
            t_s=self._clock.now_s(),
            state=_STATES[self._prompt],
            rate_ml_h=self._rate[0] * self._rate[1].ml_h if infusing else 0.0,
            infused_ml=infused_ml,
            withdrawn_ml=withdrawn_ml,
            fill_ml=self._fill_ml,
            stall=stall,
            alarm=PumpAlarm.STALL if stall else None,
        )

    def heartbeat(self) -> None:
        """Nothing to feed: the Pump 11 Elite has no communication watchdog."""

    def close(self) -> None:
        self._link.close()

    # -- what it takes ---------------------------------------------------------------------------

    def _set_diameter(self) -> None:
        reply = self._ask("diameter", lines=1)
        wanted = format_number(self.syringe.inner_diameter_mm)
        if reply.lines[0] == f"{wanted} mm":
            return
        if self._prompt in (HarvardPrompt.INFUSING, HarvardPrompt.WITHDRAWING):
            raise PumpRefusedError(
                f"pump {self.address} is running with another diameter ({reply.lines}); "
                f"{self.syringe.name} needs {wanted} mm: stop it at the pump first")
        self._ask(f"diameter {wanted}")

    def _volume(self, command: str) -> float:
        reply = self._ask(command, lines=1)
        try:
            return parse_volume_ml(reply.lines[0])
        except CodecError:
            raise PumpCommunicationError(f"unreadable volume reply to {command!r}: "
                                         f"{reply.lines}") from None

    def _verify_rate(self, text: str) -> None:
        read = self._ask("irate", lines=1)
        try:
            self._rate = parse_rate(read.lines[0])
        except CodecError:
            raise PumpCommunicationError(f"unreadable rate reply {read.lines}") from None
        verify_read_back(self.address, parse_rate(text), self._rate, text, read.lines[0])

    def _ask(self, command: str, *, changes: bool = False,
             lines: int | None = 0) -> HarvardReply:
        """One exchange; refreshes the prompt; raises on error text. ``lines``: how many text
        lines the command's reply carries (None: one or more). Without a checksum, text
        where none belongs (an error line bent by noise, say) is all that tells a damaged
        reply from a good one, so it is a link error, not a success."""
        if changes:
            self._guard.sent()
        with self._link.lock:
            # This pump never speaks unasked: whatever waits is the tail of a broken reply.
            self._decoder.feed(self._link.read_waiting())
            self._decoder.clear()
            self._link.write(encode_request(self.address, command))
            reply = read_reply(self._link, self._decoder, self.address, command)
        self._prompt = reply.prompt
        if reply.error is not None:
            raise HarvardRefusedError(command, reply.error)
        expected = len(reply.lines) == lines if lines is not None else bool(reply.lines)
        if not expected:
            raise FrameError(FrameFault.UNEXPECTED_TEXT,
                             f"pump {self.address} answered {command!r} with {reply.lines}")
        return reply


_STATES = {
    HarvardPrompt.IDLE: PumpState.STOPPED,
    HarvardPrompt.TARGET_REACHED: PumpState.STOPPED,
    HarvardPrompt.INFUSING: PumpState.INFUSING,
    HarvardPrompt.WITHDRAWING: PumpState.BACKING_OFF,
    HarvardPrompt.STALLED: PumpState.ALARM,
}
