"""A stepper syringe drive timed by the bridge microcontroller, as a :class:`Pump`.

The Pico (``firmware_bridge/firmware``) makes the steps; this driver talks to it over USB-CDC
with :mod:`firmware_bridge.protocol`: rates in Q16.16 steps/s from the syringe and mechanics,
each setting numbered (``generation``) and verified from the reply's read-back.

- A lost reply is retransmitted with the same sequence number; the device answers a repeat
  from its cache, so a rate is never applied twice. When the attempts run out the command
  raises :class:`UncertainDeliveryError` (or, for a query, :class:`PumpConnectionError`).
- A broken port is re-opened on the next command with a new link (hello): an unplugged and
  replugged cable is found again and the running rate is left alone.
- Every hello reports the device's boot id. A new one means the microcontroller was reset:
  its step counts start again (the driver carries the old ones), and if it came back stopped
  (power-on) while the supervisor's last command was a rate, that rate is sent again, so the
  supervisor reads back the dose it set rather than a pump that stopped by itself.
- Host loss (S12): the firmware keeps the last rate and latches its alarm output when no
  frame came for ``host_loss_timeout_s`` (``host_loss="stop"`` makes it stop instead, for
  bench tests that want the NE-1000's behaviour), and stops by itself after
  ``unattended_cap_ml`` delivered unattended (default: what the syringe holds).
  :meth:`heartbeat` pings once half the timeout passed without an exchange.
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass
from typing import Literal

from drivers.pump.serial_link import ChangeGuard, SerialLink
from firmware_bridge import protocol as p
from vasopilot.core.clock import Clock
from vasopilot.core.config import MechanicsSettings, SyringeSpec
from vasopilot.core.errors import (
    PumpCommunicationError,
    PumpConnectionError,
    PumpRefusedError,
    UncertainDeliveryError,
)
from vasopilot.core.types import (
    HostLossBehaviour,
    PumpAlarm,
    PumpCapabilities,
    PumpState,
    PumpStatus,
)
from vasopilot.core.units import UL_PER_ML, volume_per_microstep_ul

SECONDS_PER_HOUR = 3600.0
FIRMWARE_MAJOR = 1
RESOLUTION_ML_H = 0.001
BACK_OFF_RATE_ML_H = 60.0
DEFAULT_TIMEOUT_S = 0.05
# Bytes read while waiting for one reply beyond which the line is babbling.
MAX_REPLY_BYTES = 4096
CONNECT_ATTEMPTS = 3
HostLossAction = Literal["keep-rate", "stop"]

_STOP_ALARMS = {
    p.STOP_STALL: PumpAlarm.STALL,
    p.STOP_END_OF_TRAVEL: PumpAlarm.END_OF_TRAVEL,
    p.STOP_NO_PLUNGER: PumpAlarm.NO_PLUNGER,
    p.STOP_UNATTENDED_CAP: PumpAlarm.UNATTENDED_CAP,
    p.STOP_HOST_LOST: PumpAlarm.HOST_TIMEOUT,
}
_ERRORS = {
    p.ERR_OUT_OF_RANGE: "out of range",
    p.ERR_INPUT_BLOCKS: "blocked by the stall, end-of-travel or plunger input",
    p.ERR_BAD_DIRECTION: "bad direction",
    p.ERR_UNKNOWN_TYPE: "unknown message",
    p.ERR_BAD_LENGTH: "bad message length",
}
RESET_CAUSES = {p.RESET_POWER_ON: "power-on", p.RESET_WATCHDOG: "watchdog",
                p.RESET_OTHER: "other"}


class BridgeRefusedError(PumpRefusedError):
    """The firmware answered with an error: nothing was applied."""

    def __init__(self, what: str, error: p.Error) -> None:
        self.code = error.code
        self.detail = error.detail
        reason = _ERRORS.get(error.code, f"error {error.code}")
        super().__init__(f"the bridge refused {what}: {reason} ({error.detail})")


@dataclass(frozen=True, slots=True)
class BridgeState:
    """What the bridge says beyond a :class:`PumpStatus`: for ``vasopilot pump status``."""

    boot_id: int
    reset_cause: str
    resets_seen: int
    host_lost: bool
    alarm_latched: bool
    resumed_after_watchdog: bool
    mcu_time_us: int
    generation: int


class BridgePump:
    """A syringe drive on the bridge at ``port_url``; satisfies ``Pump``.

    ``fill_ml``: volume in the syringe at start (default: its nominal volume). ``link_seed``
    fixes the random link ids (tests); by default they come from the OS. The constructor
    connects (hello, policy) and never changes a running pump's rate; with
    ``configure=False`` it only reads (no policy is written: ``vasopilot pump status``).
    """

    def __init__(
        self,
        port_url: str,
        *,
        clock: Clock,
        syringe: SyringeSpec,
        mechanics: MechanicsSettings,
        baud: int = 115200,
        host_loss_timeout_s: float = 2.0,
        host_loss: HostLossAction = "keep-rate",
        unattended_cap_ml: float | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_attempts: int = 5,
        fill_ml: float | None = None,
        link_seed: int | None = None,
        configure: bool = True,
    ) -> None:
        if not 0.1 <= host_loss_timeout_s <= 60:
            raise ValueError(f"host-loss timeout must be 0.1-60 s, got {host_loss_timeout_s}")
        self._clock = clock
        self.syringe = syringe
        self.ul_per_step = volume_per_microstep_ul(
            syringe.inner_diameter_mm, mechanics.lead_mm, mechanics.steps_per_rev,
            mechanics.microsteps)
        self._fill_ml = syringe.volume_ml if fill_ml is None else fill_ml
        cap_ml = self._fill_ml if unattended_cap_ml is None else unattended_cap_ml
        self._cap_steps = max(0, math.floor(cap_ml * UL_PER_ML / self.ul_per_step))
        self._timeout_ms = round(host_loss_timeout_s * 1000)
        self.host_loss = host_loss
        self._serial = SerialLink(port_url, baud=baud, timeout_s=timeout_s)
        self._read_timeout_s = timeout_s
        self._max_attempts = max_attempts
        self._rng = random.Random(link_seed) if link_seed is not None else random.SystemRandom()
        self._lock = threading.RLock()
        self._guard = ChangeGuard()
        self._link: p.HostLink | None = None
        self._hello: p.HelloReply | None = None
        self._last: p.Status | None = None
        self._last_exchange_s = clock.now_s()
        # Steps counted by earlier boots of the microcontroller (it counts from 0 at boot).
        self._carried_infused = 0
        self._carried_withdrawn = 0
        self._resets_seen = 0
        self.retransmissions = 0
        # The supervisor's last wish, re-applied after a reset that lost it.
        self._wanted_q16 = 0
        self._commanding = False
        self._reapply_pending = False
        self._generation = 0
        self._backoff_id = self._rng.getrandbits(31) | 1
        self._configure = configure
        with self._lock:
            self._connect()

    # -- Pump protocol ---------------------------------------------------------------------------

    @property
    def capabilities(self) -> PumpCapabilities:
        hello = self._hello
        assert hello is not None
        return PumpCapabilities(
            min_rate_ml_h=math.ceil(self._ml_h(hello.min_rate_q16) / RESOLUTION_ML_H)
            * RESOLUTION_ML_H,
            max_rate_ml_h=math.floor(self._ml_h(hello.max_rate_q16) / RESOLUTION_ML_H)
            * RESOLUTION_ML_H,
            resolution_ml_h=RESOLUTION_ML_H,
            syringe_volume_ml=self.syringe.volume_ml,
            host_loss=HostLossBehaviour.KEEPS_RATE if self.host_loss == "keep-rate"
            else HostLossBehaviour.STOPS_AND_ALARMS,
            can_back_off=bool(hello.capabilities & p.CAP_BACK_OFF),
            host_loss_after_s=None if self.host_loss == "keep-rate" else self._timeout_ms / 1000,
        )

    def set_rate(self, rate_ml_h: float) -> PumpStatus:
        """Infuse at ``rate_ml_h`` (rounded down to Q16.16 steps/s); outside the bridge's
        exact range it is refused, never clamped."""
        if rate_ml_h <= 0:
            return self.stop()
        caps = self.capabilities
        if not caps.min_rate_ml_h <= rate_ml_h <= caps.max_rate_ml_h:
            raise PumpRefusedError(f"rate {rate_ml_h} mL/h outside the bridge's "
                                   f"{caps.min_rate_ml_h}-{caps.max_rate_ml_h} mL/h")
        return self._set(self._q16(rate_ml_h), f"set rate {rate_ml_h} mL/h")

    def stop(self) -> PumpStatus:
        return self._set(0, "stop")

    def back_off(self, volume_ul: float) -> PumpStatus:
        """Withdraw ``volume_ul`` (whole microsteps, rounded down) at 60 mL/h, then stop."""
        if volume_ul < 0:
            raise ValueError(f"back-off volume must be non-negative, got {volume_ul} µL")
        steps = math.floor(volume_ul / self.ul_per_step + 1e-9)
        if steps == 0:
            return self.status()
        with self._lock, self._guard.changing(f"back off {volume_ul} µL"):
            self._wanted_q16 = 0
            self._commanding = True
            try:
                return self._back_off(steps)
            finally:
                self._commanding = False

    def _back_off(self, steps: int) -> PumpStatus:
        self._backoff_id = (self._backoff_id + 1) & 0xFFFFFFFF or 1
        rate_q16 = min(self._q16(BACK_OFF_RATE_ML_H), self._require_hello().max_rate_q16)
        reply = self._command(p.BackOff(self._backoff_id, steps, rate_q16), "back off")
        if reply.backoff_id != self._backoff_id:
            raise UncertainDeliveryError(
                f"the bridge reads back back-off {reply.backoff_id} after "
                f"{self._backoff_id} was sent")
        return self._pump_status(reply)

    def status(self) -> PumpStatus:
        """The read-back; a bridge that says it was left unattended is taken charge of again
        (its policy re-sent), its latched alarm left for a person to acknowledge."""
        with self._lock:
            status = self._read(p.GetStatus())
            if status.flags & p.FLAG_HOST_LOST and self._configure:
                status = self._send_policy()
            if self._reapply_pending:
                self._reapply(status)
                status = self._read(p.GetStatus())
            return self._pump_status(status)

    def heartbeat(self) -> None:
        """A ping once half the host-loss timeout passed without an exchange."""
        if self._clock.now_s() - self._last_exchange_s >= self._timeout_ms / 2000:
            with self._lock:
                self._query(p.Ping(self._rng.getrandbits(32)))

    def close(self) -> None:
        self._serial.close()

    # -- beyond the Pump protocol ----------------------------------------------------------------

    def acknowledge_alarm(self) -> PumpStatus:
        """Clear the bridge's latched alarm output (the operator saw it)."""
        with self._lock:
            return self._pump_status(self._read(p.AckAlarm()))

    def bridge_state(self) -> BridgeState:
        """Boot id, host-loss and alarm flags as last read (reads the device first)."""
        with self._lock:
            status = self._read(p.GetStatus())
        return BridgeState(
            boot_id=status.boot_id,
            reset_cause=RESET_CAUSES.get(status.reset_cause, "unknown"),
            resets_seen=self._resets_seen,
            host_lost=bool(status.flags & p.FLAG_HOST_LOST),
            alarm_latched=bool(status.flags & p.FLAG_ALARM),
            resumed_after_watchdog=bool(status.flags & p.FLAG_RESUMED),
            mcu_time_us=status.mcu_time_us,
            generation=status.generation,
        )

    @property
    def resets_seen(self) -> int:
        """Microcontroller resets this driver noticed (a new boot id)."""
        return self._resets_seen

    # -- the link --------------------------------------------------------------------------------

    def _set(self, rate_q16: int, what: str) -> PumpStatus:
        with self._lock, self._guard.changing(what):
            before, self._wanted_q16 = self._wanted_q16, rate_q16
            self._commanding = True
            try:
                reply = self._apply_wanted(what)
            except BridgeRefusedError:
                self._wanted_q16 = before  # refused: nothing changed on the device
                raise
            finally:
                self._commanding = False
            self._reapply_pending = False
            return self._pump_status(reply)

    def _apply_wanted(self, what: str) -> p.Status:
        self._generation = (self._generation + 1) & 0xFFFFFFFF
        reply = self._command(p.SetRate(self._generation, p.INFUSE, self._wanted_q16), what)
        if reply.generation != self._generation or reply.rate_q16 != self._wanted_q16:
            raise UncertainDeliveryError(
                f"the bridge reads back {self._ml_h(reply.rate_q16):.4f} mL/h (setting "
                f"{reply.generation}) after {what} (setting {self._generation})")
        return reply

    def _command(self, message: p.Message, what: str) -> p.Status:
        """A state-changing request: its status reply, or the error it met."""
        self._guard.sent()
        reply = self._exchange(message)
        if isinstance(reply, p.Error):
            raise BridgeRefusedError(what, reply)
        if not isinstance(reply, p.Status):
            raise PumpCommunicationError(f"the bridge answered {what} with {reply!r}")
        return reply

    def _read(self, message: p.Message) -> p.Status:
        reply = self._query(message)
        if not isinstance(reply, p.Status):
            raise PumpCommunicationError(f"the bridge answered {message!r} with {reply!r}")
        return reply

    def _query(self, message: p.Message) -> p.Status | p.Pong:
        reply = self._exchange(message)
        if isinstance(reply, p.Error):
            raise PumpCommunicationError(f"the bridge refused {message!r}: error {reply.code}")
        if not isinstance(reply, p.Status | p.Pong):
            raise PumpCommunicationError(f"the bridge answered {message!r} with {reply!r}")
        return reply

    def _exchange(self, message: p.Message) -> p.Message:
        """One request and its reply over the current link, (re)connecting first if needed.
        A device that no longer knows our link (it was reset) is greeted again and the request
        sent anew: it was not executed."""
        if self._link is None:
            self._connect()
        reply = self._round_trip(message)
        if isinstance(reply, p.Error) and reply.code in (p.ERR_NOT_LINKED, p.ERR_BAD_SEQ):
            self._connect()
            reply = self._round_trip(message)
        return reply

    def _round_trip(self, message: p.Message) -> p.Message:
        link = self._link
        assert link is not None
        try:
            self._serial.write(link.send(message))
            silent_s = 0.0
            received = 0
            while True:
                chunk = self._serial.read_some()
                if chunk:
                    received += len(chunk)
                    if received > MAX_REPLY_BYTES:
                        raise PumpCommunicationError(
                            f"more than {MAX_REPLY_BYTES} bytes without a reply to {message!r}")
                    reply = link.feed(chunk)
                    if reply is not None:
                        self._last_exchange_s = self._clock.now_s()
                        if isinstance(reply, p.Status):
                            self._check_status(reply, message)
                        return reply
                    continue
                silent_s += self._read_timeout_s
                if silent_s + 1e-9 < link.timeout_s:
                    continue
                again = link.on_timeout()
                if again is None:
                    raise PumpConnectionError(
                        f"no reply from the bridge on {self._serial.url} to {message!r} "
                        f"after {link.max_attempts} attempts")
                self._serial.write(again)
                self.retransmissions += 1
                silent_s = 0.0
        except (PumpConnectionError, PumpCommunicationError):
            # A new link after any failure: the old one may have a request in flight.
            self._link = None
            raise

    def _check_status(self, status: p.Status, message: p.Message) -> None:
        """A status is adopted only if it can be true: from the boot this link greeted, in a
        known direction, withdrawing only in a back-off, and, within one boot, with step
        counts that never go back (they count every step since boot)."""
        hello = self._hello
        last = self._last
        why = None
        if hello is not None and status.boot_id != hello.boot_id:
            why = f"boot {status.boot_id}, but the link greeted boot {hello.boot_id}"
        elif status.direction not in (p.INFUSE, p.WITHDRAW):
            why = f"direction {status.direction}"
        elif (status.rate_q16 > 0 and status.direction == p.WITHDRAW
              and not status.flags & p.FLAG_BACKING_OFF):
            why = "withdrawing outside a back-off"
        elif last is not None and last.boot_id == status.boot_id and (
                status.infused_steps < last.infused_steps
                or status.withdrawn_steps < last.withdrawn_steps):
            why = (f"step counts {status.infused_steps}/{status.withdrawn_steps} below the "
                   f"{last.infused_steps}/{last.withdrawn_steps} read before in this boot")
        if why is not None:
            raise PumpCommunicationError(
                f"the bridge answered {message!r} with an impossible status: {why}")

    def _connect(self) -> None:
        for _ in range(CONNECT_ATTEMPTS):
            self._link = p.HostLink(self._rng.getrandbits(16), first_seq=1,
                                    first_timeout_s=self._read_timeout_s,
                                    max_timeout_s=8 * self._read_timeout_s,
                                    max_attempts=self._max_attempts)
            hello = self._round_trip(p.Hello())
            # A link id the device used before is refused: draw another.
            if not isinstance(hello, p.Error):
                break
        if not isinstance(hello, p.HelloReply):
            self._link = None
            raise PumpCommunicationError(f"the bridge answered hello with {hello!r}")
        if hello.fw_major != FIRMWARE_MAJOR:
            self._link = None
            raise PumpCommunicationError(
                f"bridge firmware {hello.fw_major}.{hello.fw_minor}.{hello.fw_patch} speaks "
                f"another protocol than this driver ({FIRMWARE_MAJOR}.x)")
        previous = self._hello
        self._hello = hello
        if previous is not None and previous.boot_id != hello.boot_id:
            self._count_reset()
        if not self._configure:
            self._last = self._read(p.GetStatus())
            return
        self._last = self._send_policy()
        # Inside a command, the command itself is about to set the state.
        if self._reapply_pending and not self._commanding:
            self._reapply(self._last)

    def _send_policy(self) -> p.Status:
        policy = p.SetPolicy(self._timeout_ms,
                             p.POLICY_KEEP_RATE if self.host_loss == "keep-rate"
                             else p.POLICY_STOP, self._cap_steps)
        reply = self._round_trip(policy)
        if not isinstance(reply, p.Status):
            raise PumpCommunicationError(f"the bridge refused its host-loss policy: {reply!r}")
        return reply

    def _count_reset(self) -> None:
        """The microcontroller restarted: carry the counts of its last life (as last read)."""
        self._resets_seen += 1
        last = self._last
        if last is not None:
            self._carried_infused += last.infused_steps
            self._carried_withdrawn += last.withdrawn_steps
        self._last = None
        self._reapply_pending = True

    def _reapply(self, status: p.Status) -> None:
        """Send the supervisor's rate again if the reset lost it; kept pending until it went
        through, so a link that fails half-way tries again at the next exchange."""
        if self._wanted_q16 and status.rate_q16 != self._wanted_q16:
            try:
                self._last = self._apply_wanted("re-apply the rate after a bridge reset")
            except BridgeRefusedError:
                # An input blocks the start: the pump reads back stopped with the reason, and
                # the supervisor decides; sending it again would be refused again.
                self._last = self._read(p.GetStatus())
        self._reapply_pending = False

    def _require_hello(self) -> p.HelloReply:
        if self._hello is None:
            self._connect()
        assert self._hello is not None
        return self._hello

    # -- units -----------------------------------------------------------------------------------

    def _q16(self, rate_ml_h: float) -> int:
        steps_s = rate_ml_h * UL_PER_ML / SECONDS_PER_HOUR / self.ul_per_step
        return p.q16_from_hz(steps_s + 1e-12)

    def _ml_h(self, rate_q16: int) -> float:
        return p.hz_from_q16(rate_q16) * self.ul_per_step * SECONDS_PER_HOUR / UL_PER_ML

    def _grid_ml_h(self, rate_q16: int) -> float:
        """The rate on the capability grid: Q16.16 steps/s fall short of a grid rate by a few
        millionths of it, far below the grid's step, and the supervisor reads doses back from
        this value (a resume after a restart must find the dose it journaled)."""
        return round(self._ml_h(rate_q16) / RESOLUTION_ML_H) * RESOLUTION_ML_H

    def _pump_status(self, status: p.Status) -> PumpStatus:
        self._last = status
        infused = self._carried_infused + status.infused_steps
        withdrawn = self._carried_withdrawn + status.withdrawn_steps
        delivered_ml = (infused - withdrawn) * self.ul_per_step / UL_PER_ML
        running = status.rate_q16 > 0
        backing_off = bool(status.flags & p.FLAG_BACKING_OFF)
        alarm_latched = bool(status.flags & p.FLAG_ALARM)
        if backing_off:
            state = PumpState.BACKING_OFF
        elif running and status.direction == p.INFUSE:
            state = PumpState.INFUSING
        elif alarm_latched and status.stop_cause != p.STOP_NONE:
            state = PumpState.ALARM
        else:
            state = PumpState.STOPPED
        alarm = None
        if alarm_latched:
            alarm = _STOP_ALARMS.get(status.stop_cause) or (
                PumpAlarm.HOST_LOST if status.flags & p.FLAG_HOST_LOST
                else PumpAlarm.HOST_WAS_LOST)
        stalled = bool(status.inputs & p.INPUT_STALL) or status.stop_cause == p.STOP_STALL
        end_of_travel = (bool(status.inputs & p.INPUT_END_OF_TRAVEL)
                         or status.stop_cause == p.STOP_END_OF_TRAVEL)
        return PumpStatus(
            t_s=self._clock.now_s(),
            state=state,
            rate_ml_h=self._grid_ml_h(status.rate_q16) if state is PumpState.INFUSING else 0.0,
            delivered_ml=delivered_ml,
            syringe_remaining_ml=max(0.0, self._fill_ml - delivered_ml),
            stalled=stalled and not end_of_travel,
            end_of_travel=end_of_travel,
            alarm=alarm,
        )
