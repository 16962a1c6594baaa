"""The New Era NE-1000 family (also WPI Aladdin, Landgraf LA) as a :class:`Pump`.

A :class:`NewEraLine` is one RS-232 line with up to 100 pumps on it; it carries one request
and its reply at a time and keeps unsolicited safe-mode alarm packets for the pump they name.
A :class:`NewEraPump` is one address on a line: it sets the diameter and the rate (in the unit
with the best resolution), starts, changes rate while infusing, stops, backs off, reads the
dispensed volume, and verifies every rate change by reading it back.

Safe mode (``safe_mode_timeout_s`` > 0): every packet is CRC-framed and the pump stops with
alarm ``T`` when the host is silent for the timeout, so :meth:`NewEraPump.heartbeat` sends a
status query once half the timeout has passed without an exchange (S12: host loss stops the
pump and alarms). In basic mode the pump keeps its last rate if the host dies.

Errors: a port that cannot be opened or a pump that does not answer raises
:class:`PumpConnectionError`; garbage, a half reply, a reply from the wrong address, a frame
that fails its mode's checks (in safe mode: any frame without a valid CRC) or a reply carrying
data its command does not produce raises :class:`FrameError` (a
:class:`PumpCommunicationError` with its :class:`FrameFault`), never a status; ``?``-errors
raise :class:`NewEraRefusedError` and alarm replies :class:`NewEraAlarmError` (both
:class:`PumpRefusedError`). When a command that changes the pump's state was sent but its
reply was lost, :class:`UncertainDeliveryError` is raised.
"""

from __future__ import annotations

import re

from drivers.pump.frames import FrameError, FrameFault
from drivers.pump.new_era_codec import (
    CodecError,
    Framing,
    NewEraAlarm,
    NewEraError,
    NewEraReply,
    NewEraStatus,
    RateUnit,
    ReplyDecoder,
    VolumeUnit,
    best_rate_unit,
    encode_request,
    format_number,
    parse_number,
    rate_in_unit,
    rate_limits_ml_h,
    volume_unit_for,
)
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
from vasopilot.core.units import UL_PER_ML

_RUNNING = (NewEraStatus.INFUSING, NewEraStatus.PURGING)
_RAT = re.compile(r"^([\d.]+)(UM|MM|UH|MH)$")
_DIS = re.compile(r"^I([\d.]+)W([\d.]+)(UL|ML)$")
_ALARM_NAMES = {
    NewEraAlarm.RESET: PumpAlarm.POWER_LOSS,
    NewEraAlarm.STALL: PumpAlarm.STALL,
    NewEraAlarm.SAFE_MODE_TIMEOUT: PumpAlarm.HOST_TIMEOUT,
    NewEraAlarm.PROGRAM_ERROR: PumpAlarm.PROGRAM_ERROR,
    NewEraAlarm.PHASE_OUT_OF_RANGE: PumpAlarm.PHASE_OUT_OF_RANGE,
}


class NewEraRefusedError(PumpRefusedError):
    """The pump answered a command with an error (``?``, ``?NA``, ``?OOR``, ``?COM``, ``?IGN``)."""

    def __init__(self, command: str, error: NewEraError) -> None:
        self.command = command
        self.error = error
        super().__init__(f"pump refused {command!r}: ?{error.value} ({error.name.lower()})")


class NewEraAlarmError(PumpRefusedError):
    """A command met an alarm (``A?R``, ``A?S``, ``A?T``...): the reply acknowledged the alarm
    and the command was not carried out."""

    def __init__(self, command: str, alarm: NewEraAlarm) -> None:
        self.command = command
        self.alarm = alarm
        super().__init__(f"pump answered {command!r} with alarm A?{alarm.value} "
                         f"({_ALARM_NAMES[alarm]}); the command was not carried out")


class NewEraLine:
    """One serial line to NE-1000 pumps: request/reply exchanges and unsolicited alarms."""

    def __init__(self, port_url: str, *, baud: int = 19200,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.link = SerialLink(port_url, baud=baud, timeout_s=timeout_s)
        self._decoder = ReplyDecoder(framing=Framing.SAFE)
        self._unsolicited: dict[int, list[NewEraAlarm]] = {}

    @property
    def url(self) -> str:
        return self.link.url

    def take_unsolicited(self, address: int) -> list[NewEraAlarm]:
        """Alarm packets the pump at ``address`` sent on its own since the last call."""
        return self._unsolicited.pop(address, [])

    def exchange(self, address: int, command: str, *, safe: bool,
                 reply_framing: Framing) -> NewEraReply:
        """Send ``command`` to ``address`` (CRC-framed if ``safe``) and return its reply (which
        may be an alarm); only a reply that passes ``reply_framing``'s checks counts."""
        with self.link.lock:
            self._drain()
            self.link.write(encode_request(address, command, safe=safe))
            self._decoder.framing = reply_framing
            return read_reply(self.link, self._decoder, address, command,
                              unsolicited=self._keep_unsolicited)

    def _drain(self) -> None:
        """Keep what arrived unasked (safe-mode alarm packets, which carry a CRC); drop half
        frames and noise."""
        self._decoder.framing = Framing.SAFE
        for item in self._decoder.feed(self.link.read_waiting()):
            if isinstance(item, NewEraReply) and item.alarm is not None:
                self._unsolicited.setdefault(item.address, []).append(item.alarm)
        self._decoder.clear()

    def _keep_unsolicited(self, reply: NewEraReply) -> bool:
        """Another pump on the line raising an alarm on its own: kept for that pump."""
        if reply.alarm is None or not reply.safe:
            return False
        self._unsolicited.setdefault(reply.address, []).append(reply.alarm)
        return True

    def close(self) -> None:
        self.link.close()


class NewEraPump:
    """One NE-1000 at ``address`` (0-99). Rates in mL/h, volumes in µL or mL as named.

    ``fill_ml`` is the volume drawn into the syringe (default: the syringe's nominal volume);
    it turns the dispensed counters into ``syringe_remaining_ml``. Pass ``line`` to share one
    port between several pumps. The constructor connects, acknowledges the power-up alarm,
    selects the mode (``SAF`` framed, as the pump accepts in either mode) and sets the diameter
    if the pump is stopped; it never changes a running pump's rate.
    """

    def __init__(
        self,
        port_url: str,
        *,
        clock: Clock,
        syringe: SyringeSpec,
        address: int = 0,
        baud: int = 19200,
        safe_mode_timeout_s: int = 0,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        fill_ml: float | None = None,
        line: NewEraLine | None = None,
    ) -> None:
        if not 0 <= address <= 99:
            raise ValueError(f"NE-1000 address must be 0-99, got {address}")
        if not 0 <= safe_mode_timeout_s <= 255:
            raise ValueError(f"safe-mode timeout must be 0-255 s, got {safe_mode_timeout_s}")
        if line is not None and line.url != port_url:
            raise ValueError(f"line {line.url} is not port {port_url}")
        self._line = line or NewEraLine(port_url, baud=baud, timeout_s=timeout_s)
        self._clock = clock
        self.syringe = syringe
        self.address = address
        self.safe_mode_timeout_s = safe_mode_timeout_s
        self._fill_ml = syringe.volume_ml if fill_ml is None else fill_ml
        self._limits_ml_h = rate_limits_ml_h(syringe.inner_diameter_mm)
        self._min_ml_h, self._max_ml_h = self._limits_ml_h
        self._last_exchange_t_s = clock.now_s()
        self._alarm: NewEraAlarm | None = None
        self._motion = NewEraStatus.STOPPED
        self._rate_value = 0.0
        self._rate_unit = RateUnit.ML_H
        self._restore_infuse = False
        self._guard = ChangeGuard()
        self._connect()

    # -- Pump protocol ---------------------------------------------------------------------------

    @property
    def capabilities(self) -> PumpCapabilities:
        """Limits from the plunger speeds and the bore; resolution of the number format at the
        rate now set (0.001 mL/h before any rate)."""
        return capabilities(
            self._rate_value, self._rate_unit, self._limits_ml_h, self.syringe.volume_ml,
            HostLossBehaviour.STOPS_AND_ALARMS if self.safe_mode_timeout_s
            else HostLossBehaviour.KEEPS_RATE,
            host_loss_after_s=self.safe_mode_timeout_s or None)

    def set_rate(self, rate_ml_h: float) -> PumpStatus:
        """Infuse at ``rate_ml_h`` (rounded down to the number format), starting if stopped.

        A pending alarm is acknowledged but the pump is not restarted behind the supervisor's
        back: :class:`NewEraAlarmError` tells it what the pump had to say.
        """
        if rate_ml_h <= 0:
            return self.stop()
        if not self._min_ml_h <= rate_ml_h <= self._max_ml_h:
            # What the pump would answer, said before anything is sent: a refused rate change
            # must not leave a running pump paused half-way through a unit change.
            raise NewEraRefusedError(f"RAT {rate_ml_h} mL/h", NewEraError.OUT_OF_RANGE)
        with self._guard.changing(f"set rate {rate_ml_h} mL/h"):
            self._ask("")
            if self._motion in _RUNNING:
                text, unit = self._running_rate(rate_ml_h)
            else:
                text, unit = self._start(rate_ml_h)
            self._verify_rate(text, unit)
            if self._motion not in _RUNNING:
                raise PumpRefusedError(f"pump {self.address} did not start (status "
                                       f"{self._motion.name.lower()})")
        self._alarm = None
        return self.status()

    def stop(self) -> PumpStatus:
        """Stop (``STP`` pauses, a second ``STP`` stops); an alarm met on the way is kept."""
        with self._guard.changing("stop"):
            self._stop_fully()
        return self.status()

    def back_off(self, volume_ul: float) -> PumpStatus:
        """Withdraw ``volume_ul`` (DIR WDR, VOL, RUN); infusion direction is restored once the
        withdrawal is over, on the next status read or start."""
        unit = volume_unit_for(self.syringe.inner_diameter_mm)
        volume_text = back_off_amount(
            volume_ul, 1.0 if unit is VolumeUnit.UL else 1.0 / UL_PER_ML,
            lambda: NewEraRefusedError(f"VOL {volume_ul} µL", NewEraError.OUT_OF_RANGE))
        if volume_text is None:
            return self.status()
        with self._guard.changing(f"back off {volume_ul} µL"):
            self._stop_fully()
            rate_ml_h = back_off_rate_ml_h(self._max_ml_h)
            rate_unit = best_rate_unit(rate_ml_h)
            self._restore_infuse = True
            self._ask("DIR WDR", changes=True)
            self._ask(f"VOL {unit.value}", changes=True)
            self._ask(f"VOL {volume_text}", changes=True)
            self._ask(f"RAT {rate_in_unit(rate_ml_h, rate_unit)} {rate_unit.value}", changes=True)
            self._ask("RUN", changes=True)
        return self.status()

    def status(self) -> PumpStatus:
        """The pump's state, rate and dispensed volume as it reports them now."""
        dis = self._query("DIS")
        rat = self._query("RAT")
        if self._restore_infuse and self._motion not in (*_RUNNING, NewEraStatus.WITHDRAWING):
            with self._guard.changing("restore infusion direction"):
                self._stop_fully()
                self._ask("DIR INF", changes=True)
                self._ask("VOL 0", changes=True)
            self._restore_infuse = False
        self._rate_value, self._rate_unit = _parse_rate(rat.data)
        infused_ml, withdrawn_ml = _parse_dis(dis.data)
        running = self._motion in _RUNNING
        return counter_status(
            t_s=self._clock.now_s(),
            state=self._state(),
            rate_ml_h=self._rate_value * self._rate_unit.ml_h if running else 0.0,
            infused_ml=infused_ml,
            withdrawn_ml=withdrawn_ml,
            fill_ml=self._fill_ml,
            stall=self._alarm is NewEraAlarm.STALL,
            alarm=None if self._alarm is None else _ALARM_NAMES[self._alarm],
        )

    def heartbeat(self) -> None:
        """In safe mode, a status query once half the timeout passed without an exchange."""
        if not self.safe_mode_timeout_s:
            return
        if self._clock.now_s() - self._last_exchange_t_s >= self.safe_mode_timeout_s / 2:
            self._query("")

    def close(self) -> None:
        self._line.close()

    # -- what it takes ---------------------------------------------------------------------------

    @property
    def alarm(self) -> NewEraAlarm | None:
        """The alarm the pump last reported, kept until the next successful start."""
        return self._alarm

    def _state(self) -> PumpState:
        if self._alarm is not None and self._motion not in _RUNNING:
            return PumpState.ALARM
        if self._motion in _RUNNING:
            return PumpState.INFUSING
        if self._motion is NewEraStatus.WITHDRAWING:
            return PumpState.BACKING_OFF
        return PumpState.STOPPED

    @property
    def _framing(self) -> Framing:
        return Framing.SAFE if self.safe_mode_timeout_s else Framing.BASIC

    def _connect(self) -> None:
        self._select_mode()
        diameter_mm = _number(self._query("DIA").data, "diameter")
        wanted = format_number(self.syringe.inner_diameter_mm)
        if parse_number(wanted) != diameter_mm:
            if self._motion in _RUNNING:
                raise PumpRefusedError(
                    f"pump {self.address} is running with a {diameter_mm} mm bore; "
                    f"{self.syringe.name} needs {wanted} mm: stop it at the pump first")
            self._ask(f"DIA {wanted}", changes=True)
        self._rate_value, self._rate_unit = _parse_rate(self._query("RAT").data)

    def _select_mode(self) -> None:
        """``SAF`` framed, as a pump in either mode accepts it. Its answer comes in the mode it
        selects, unless it met an alarm: then the command was not carried out and the alarm
        comes in the mode the pump was in, which a host that just connected cannot know."""
        command = f"SAF{self.safe_mode_timeout_s}"
        try:
            reply = self._ask(command, framed=True, reply_framing=Framing.EITHER)
        except NewEraAlarmError as exc:
            # The first command after power-up meets A?R; answering it acknowledged it, and
            # a pump just switched on is not an alarm to report. Any other alarm stays.
            if exc.alarm is NewEraAlarm.RESET:
                self._alarm = None
            reply = self._ask(command, framed=True)
        if reply.safe != bool(self.safe_mode_timeout_s):
            raise FrameError(FrameFault.WRONG_MODE,
                             f"pump {self.address} answered {command!r} "
                             f"{'CRC-framed' if reply.safe else 'unframed'}")

    def _ask(self, command: str, *, changes: bool = False, framed: bool = False,
             reply_framing: Framing | None = None, answers: bool = False) -> NewEraReply:
        """One exchange; raises on alarm and error replies. ``answers``: the command is a
        query whose reply carries data; any other successful reply is the status alone."""
        if changes:
            self._guard.sent()
        safe = framed or self.safe_mode_timeout_s > 0
        reply = self._line.exchange(self.address, command, safe=safe,
                                    reply_framing=reply_framing or self._framing)
        self._last_exchange_t_s = self._clock.now_s()
        for alarm in self._line.take_unsolicited(self.address):
            # Unsolicited packets do not acknowledge; the next reply will carry the alarm too.
            self._alarm = alarm
        if reply.alarm is not None:
            self._alarm = reply.alarm
            self._motion = NewEraStatus.STOPPED
            raise NewEraAlarmError(command, reply.alarm)
        self._motion = reply.status
        if reply.error is not None:
            raise NewEraRefusedError(command, reply.error)
        if reply.data and not answers:
            raise FrameError(FrameFault.UNEXPECTED_TEXT,
                             f"pump {self.address} answered {command!r} with {reply.data!r}")
        return reply

    def _query(self, command: str) -> NewEraReply:
        """A query (``""`` asks the status alone); an alarm reply is noted and the query asked
        again (the alarm is now acknowledged)."""
        try:
            return self._ask(command, answers=bool(command))
        except NewEraAlarmError:
            return self._ask(command, answers=bool(command))

    def _stop_fully(self) -> None:
        for _ in range(3):
            try:
                self._ask("STP", changes=True)
            except NewEraAlarmError:
                continue  # the alarm stopped the motor; the next STP gets a plain reply
            except NewEraRefusedError as exc:
                if exc.error is NewEraError.IGNORED:
                    continue  # a phase began at that instant: the stop did not happen, again
                raise
            if self._motion is NewEraStatus.STOPPED:
                return
        if self._motion is not NewEraStatus.STOPPED:
            raise PumpRefusedError(f"pump {self.address} did not stop "
                                   f"(status {self._motion.name.lower()})")

    def _start(self, rate_ml_h: float) -> tuple[str, RateUnit]:
        if self._motion is NewEraStatus.PAUSED or self._restore_infuse:
            self._stop_fully()
        if self._restore_infuse:
            self._ask("DIR INF", changes=True)
            self._ask("VOL 0", changes=True)
            self._restore_infuse = False
        unit = best_rate_unit(rate_ml_h)
        text = rate_in_unit(rate_ml_h, unit)
        self._ask(f"RAT {text} {unit.value}", changes=True)
        self._ask("RUN", changes=True)
        return text, unit

    def _running_rate(self, rate_ml_h: float) -> tuple[str, RateUnit]:
        """Change the rate of a running pump: the bare number when it fits the unit in use;
        otherwise pause, change the unit and run on (units cannot change while pumping)."""
        unit = self._rate_unit
        value = rate_ml_h / unit.ml_h
        if value < 10000 and parse_number(rate_in_unit(rate_ml_h, unit)) > 0:
            text = rate_in_unit(rate_ml_h, unit)
            self._ask(f"RAT {text}", changes=True)
            return text, unit
        unit = best_rate_unit(rate_ml_h)
        text = rate_in_unit(rate_ml_h, unit)
        self._ask("STP", changes=True)
        try:
            self._ask(f"RAT {text} {unit.value}", changes=True)
        except (NewEraRefusedError, NewEraAlarmError):
            # Refused: run on at the rate already set rather than leave the pump paused.
            self._ask("RUN", changes=True)
            raise
        self._ask("RUN", changes=True)
        return text, unit

    def _verify_rate(self, text: str, unit: RateUnit) -> None:
        rat = self._query("RAT")
        read = _parse_rate(rat.data)
        verify_read_back(self.address, (parse_number(text), unit), read, f"{text}{unit.value}",
                         rat.data)
        self._rate_value, self._rate_unit = read


def _number(text: str, what: str) -> float:
    try:
        return parse_number(text)
    except CodecError:
        raise PumpCommunicationError(f"unreadable {what} in reply: {text!r}") from None


def _parse_rate(data: str) -> tuple[float, RateUnit]:
    match = _RAT.match(data)
    if match is None:
        raise PumpCommunicationError(f"unreadable rate reply {data!r}")
    return _number(match.group(1), "rate"), RateUnit(match.group(2))


def _parse_dis(data: str) -> tuple[float, float]:
    """Infused and withdrawn volume in mL from a ``DIS`` reply."""
    match = _DIS.match(data)
    if match is None:
        raise PumpCommunicationError(f"unreadable dispensed-volume reply {data!r}")
    scale = 1.0 if match.group(3) == VolumeUnit.ML.value else 1.0 / UL_PER_ML
    return (_number(match.group(1), "infused volume") * scale,
            _number(match.group(2), "withdrawn volume") * scale)
