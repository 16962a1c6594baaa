"""The bridge firmware's logic, the same on the Pico and in the host emulator.

Common subset of CPython and MicroPython (it imports only ``struct`` and its siblings
``protocol`` and ``step_pio``; ``tests/test_bridge_protocol.py`` checks it). Everything the chip
does goes through a :class:`Hal`: ``hal_rp2.Rp2Hal`` on the Pico,
``firmware_bridge.emulator.SimHal`` on the host. The main loop calls :meth:`Firmware.service`
over and over.

Steps: the PIO program (:mod:`firmware_bridge.firmware.step_pio`) pulls one period per step
from its FIFO and raises STEP at the end of it. The logic plans every step edge from the
integral of the commanded rate, in exact integers: with ``q`` the rate in Q16.16 steps/s and
``F`` the step clock, one step is ``N = 65536 * F`` units of "rate times cycles", and edge ``k``
of a run falls on the first whole cycle where the integral reaches ``k * N``. So the steps
never run ahead of the integral and lag it by less than one cycle's worth; periods are the
differences between edges (the remainder accumulator), and a rate change carries the fraction
of a step already owed. When the FIFO runs dry (the loop was late) the PIO repeats the last
period; the logic notices and re-plans from the integral, so lateness costs timing, not volume.

Watchdog: fed only here, only after checking that the hardware step count kept up with the
edges planned. Its scratch registers 0-3 hold a CRC-checked copy of the running infusion, so a
watchdog reset resumes it; after power-on the scratch is not trusted and the motor is stopped.

Host loss: no valid frame for the policy's timeout latches the alarm output and, by policy,
keeps the rate (the default: a vasopressor must not stop because a computer died) or stops.
The bridge counts as unattended until a host commands again (reads do not take charge).
Local stops stay armed: stall, end of travel, a missing plunger, the cap on unattended steps.
"""

import struct

from firmware_bridge import protocol as p
from firmware_bridge.firmware import step_pio

FIRMWARE_VERSION = (1, 0, 0)
STEP_CLOCK_HZ = 1_000_000
# Cycles per step period that the delay loop does not count, and where STEP rises in it.
OVERHEAD_CYCLES = step_pio.OVERHEAD_CYCLES
EDGE_BEFORE_END = step_pio.EDGE_BEFORE_END
# One step per 10 s to 2000 steps/s: the exact range, refused outside, never clamped.
MIN_RATE_Q16 = p.Q16 // 10
MAX_RATE_Q16 = 2000 * p.Q16
FIFO_DEPTH = 8
# The PIO repeats a period when its FIFO is empty; this one holds it off for over an hour
# after the last step of a counted move, so a late loop cannot add a step.
FENCE_Y = 0xFFFFFFFF
WATCHDOG_TIMEOUT_MS = 2000
# The loop runs at least this often (the emulator's wake-up bound; the chip's loop is faster).
MAX_SLEEP_US = 100_000
# A step edge is owed to the hardware count once it is this far in the past.
STEP_GRACE_US = 5_000
DEFAULT_HOST_LOSS_MS = 2000
MIN_HOST_LOSS_MS = 100
MAX_HOST_LOSS_MS = 60_000
SCRATCH_MAGIC = 0x56500000
CAPABILITIES = (p.CAP_BACK_OFF | p.CAP_SCRATCH_RESUME | p.CAP_ALARM_OUTPUT | p.CAP_STALL_INPUT
                | p.CAP_END_OF_TRAVEL_INPUT | p.CAP_PLUNGER_INPUT)


class Hal:
    """What the firmware needs of the chip. Every method is overridden by a real HAL."""

    def now_us(self) -> int:
        """Microseconds since boot, 64 bits (never wraps in practice)."""
        raise NotImplementedError

    def reset_cause(self) -> int:
        """``protocol.RESET_*`` of the reset that started this boot."""
        raise NotImplementedError

    def random_u32(self) -> int:
        raise NotImplementedError

    def read(self) -> bytes:
        """Bytes from the host that have arrived (never waits)."""
        raise NotImplementedError

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def pio_stop(self) -> None:
        """Stop the step state machine, empty its FIFO, STEP low, driver disabled."""
        raise NotImplementedError

    def pio_start(self, direction: int, rate_q16: int) -> None:
        """Set DIR, enable the driver and start the state machine on what its FIFO holds.
        ``rate_q16`` is for a simulated drive; the chip needs only the periods."""
        raise NotImplementedError

    def pio_push(self, y: int) -> None:
        """Queue one period (its delay count, period minus OVERHEAD_CYCLES)."""
        raise NotImplementedError

    def pio_level(self) -> int:
        """Periods waiting in the FIFO."""
        raise NotImplementedError

    def step_count(self) -> int:
        """STEP rising edges since boot, counted in hardware."""
        raise NotImplementedError

    def inputs(self) -> int:
        """``protocol.INPUT_*`` bits as the pins read now."""
        raise NotImplementedError

    def set_alarm(self, on: bool) -> None:
        raise NotImplementedError

    def watchdog_feed(self) -> None:
        raise NotImplementedError

    def scratch_read(self) -> "list[int]":
        """Watchdog scratch registers 0-3 (the pico-sdk keeps 4-7)."""
        raise NotImplementedError

    def scratch_write(self, words: "list[int]") -> None:
        raise NotImplementedError


def scratch_words(direction: int, rate_q16: int, generation: int, stop_policy: bool) -> "list[int]":
    """A CRC-checked copy of a running infusion for the scratch registers."""
    head = SCRATCH_MAGIC | (direction & 1) | (2 if stop_policy else 0) | 4
    words = [head, rate_q16 & 0xFFFFFFFF, generation & 0xFFFFFFFF]
    words.append(p.crc32(struct.pack("<III", words[0], words[1], words[2])))
    return words


def scratch_run(words: "list[int]") -> "tuple[int, int, bool] | None":
    """The (rate, generation, stop policy) of a valid infusion record, or None."""
    if len(words) != 4 or words[0] & 0xFFFF0000 != SCRATCH_MAGIC or not words[0] & 4:
        return None
    if p.crc32(struct.pack("<III", words[0], words[1], words[2])) != words[3]:
        return None
    if words[0] & 1 != p.INFUSE or not MIN_RATE_Q16 <= words[1] <= MAX_RATE_Q16:
        return None
    return words[1], words[2], bool(words[0] & 2)


class Run:
    """One stretch of motion in one direction at one rate, planned edge by edge."""

    def __init__(self, direction: int, rate_q16: int, t_us: int, owed: int, *, steps_done: int,
                 budget: int) -> None:
        self.direction = direction
        self.rate_q16 = rate_q16
        # The integral of the rate is ``owed`` (units: rate_q16 * cycles) at ``t_us``.
        self.t_us = t_us
        self.owed = owed
        self.steps_done = steps_done  # steps of this run's direction so far
        self.budget = budget  # steps still allowed (a back-off), or -1 for no limit
        self.edges = []  # type: list[int]  # planned edges not yet stepped, µs
        self.planned = steps_done  # steps done plus edges queued
        self.fenced = False

    def owed_at(self, t_us: int) -> int:
        return self.owed + self.rate_q16 * (t_us - self.t_us)

    def edge_of(self, k: int) -> int:
        """When the integral reaches step ``k`` (rounded up to a whole cycle), µs."""
        need = k * p.Q16 * STEP_CLOCK_HZ - self.owed
        if need <= 0:
            return self.t_us
        # One step-clock cycle is one microsecond (STEP_CLOCK_HZ).
        return self.t_us + (need + self.rate_q16 - 1) // self.rate_q16


class Firmware:
    """The bridge: link, motion, host-loss policy, local stops and the watchdog."""

    def __init__(self, hal: Hal) -> None:
        self.hal = hal
        self.link = p.DeviceLink()
        self.boot_id = hal.random_u32() & 0xFFFFFFFF
        self.reset_cause = hal.reset_cause()
        self.host_loss_timeout_us = DEFAULT_HOST_LOSS_MS * 1000
        self.stop_on_host_loss = False
        self.unattended_cap_steps = 0
        self.generation = 0
        self.infused_steps = 0
        self.withdrawn_steps = 0
        self.flags = 0
        self.stop_cause = p.STOP_NONE
        self.backoff_id = 0
        self.run = None  # type: Run | None
        self.host_lost = False
        self.alarm = False
        self.lost_at_steps = 0
        # A fraction of a step owed to infusion survives a stop (not a reversal or a reboot).
        self._infuse_owed = 0
        self._infuse_done = 0
        now = hal.now_us()
        self._last_rx_us = now
        self._hw_last = hal.step_count()
        hal.pio_stop()
        hal.set_alarm(False)
        resumed = scratch_run(hal.scratch_read()) if self.reset_cause == p.RESET_WATCHDOG \
            else None
        if resumed is None:
            hal.scratch_write([0, 0, 0, 0])
        else:
            rate_q16, self.generation, self.stop_on_host_loss = resumed
            self.flags |= p.FLAG_RESUMED
            self._start(p.INFUSE, rate_q16, now, -1)
        hal.watchdog_feed()

    # -- the main loop ---------------------------------------------------------------------------

    def service(self) -> None:
        """One pass of the main loop: answer the host, keep the steps coming, watch."""
        hal = self.hal
        data = hal.read()
        if data:
            before = self.link.decoder.accepted
            out = self.link.feed(data, self._execute)
            if out:
                hal.write(out)
            if self.link.decoder.accepted != before:
                self._last_rx_us = hal.now_us()
        now = hal.now_us()
        self._count_steps()
        self._check_inputs(now)
        self._top_up(now)
        self._watch_host(now)
        if self._steps_kept_up(now):
            hal.watchdog_feed()

    def wake_us(self) -> int:
        """The latest time the next pass may come (the emulator sleeps until then)."""
        now = self.hal.now_us()
        times = [now + MAX_SLEEP_US]
        if not self.host_lost:
            times.append(self._last_rx_us + self.host_loss_timeout_us)
        run = self.run
        if run is not None and run.edges:
            # Before the FIFO runs low, and at a counted move's last step.
            times.append(run.edges[max(0, len(run.edges) - 3)])
            if run.fenced:
                times.append(run.edges[-1])
        # Edges a stuck PIO left in the past are the watchdog's business, not a reason to spin.
        return min(t for t in times if t > now)

    # -- commands --------------------------------------------------------------------------------

    def _execute(self, frame: p.Frame) -> p.Message:
        try:
            msg = frame.message()
        except ValueError:
            known = frame.msg_type in p.MESSAGES
            return p.Error(p.ERR_BAD_LENGTH if known else p.ERR_UNKNOWN_TYPE, frame.msg_type)
        now = self.hal.now_us()
        self._last_rx_us = now
        if isinstance(msg, (p.SetRate, p.BackOff, p.SetPolicy, p.AckAlarm)):
            # A host that commands has taken charge again; one that only reads (a person's
            # ``vasopilot pump status`` after a crash) leaves the bridge unattended.
            self.host_lost = False
        self._count_steps()
        if isinstance(msg, p.Hello):
            fw = FIRMWARE_VERSION
            return p.HelloReply(fw[0], fw[1], fw[2], self.boot_id, self.reset_cause,
                                CAPABILITIES, MIN_RATE_Q16, MAX_RATE_Q16, STEP_CLOCK_HZ)
        if isinstance(msg, p.SetRate):
            refusal = self._set_rate(msg, now)
            if refusal is not None:
                return refusal
        elif isinstance(msg, p.BackOff):
            refusal = self._back_off(msg, now)
            if refusal is not None:
                return refusal
        elif isinstance(msg, p.SetPolicy):
            if (not MIN_HOST_LOSS_MS <= msg.host_loss_timeout_ms <= MAX_HOST_LOSS_MS
                    or msg.action not in (p.POLICY_KEEP_RATE, p.POLICY_STOP)):
                return p.Error(p.ERR_OUT_OF_RANGE, msg.host_loss_timeout_ms)
            self.host_loss_timeout_us = msg.host_loss_timeout_ms * 1000
            self.stop_on_host_loss = msg.action == p.POLICY_STOP
            self.unattended_cap_steps = msg.unattended_cap_steps
            self._save()
        elif isinstance(msg, p.AckAlarm):
            self.alarm = False
            self.hal.set_alarm(False)
            self.stop_cause = p.STOP_NONE
        elif isinstance(msg, p.Ping):
            return p.Pong(msg.token, now)
        elif not isinstance(msg, p.GetStatus):
            return p.Error(p.ERR_UNKNOWN_TYPE, frame.msg_type)
        self._check_inputs(now)
        return self.status()

    def _set_rate(self, msg: p.SetRate, now: int) -> "p.Error | None":
        if msg.direction not in (p.INFUSE, p.WITHDRAW):
            return p.Error(p.ERR_BAD_DIRECTION, msg.direction)
        if msg.rate_q16 != 0 and msg.rate_q16 < MIN_RATE_Q16:
            return p.Error(p.ERR_OUT_OF_RANGE, MIN_RATE_Q16)
        if msg.rate_q16 > MAX_RATE_Q16:
            return p.Error(p.ERR_OUT_OF_RANGE, MAX_RATE_Q16)
        if msg.rate_q16 and self._blocked(msg.direction):
            return p.Error(p.ERR_INPUT_BLOCKS, self.hal.inputs())
        self.generation = msg.generation
        self.stop_cause = p.STOP_NONE
        if msg.rate_q16 == 0:
            self._stop(now)
        else:
            self._start(msg.direction, msg.rate_q16, now, -1)
        return None

    def _back_off(self, msg: p.BackOff, now: int) -> "p.Error | None":
        if msg.backoff_id == self.backoff_id and msg.backoff_id != 0:
            return None  # this withdrawal already ran (or runs): never twice
        if not MIN_RATE_Q16 <= msg.rate_q16 <= MAX_RATE_Q16:
            return p.Error(p.ERR_OUT_OF_RANGE, msg.rate_q16)
        if self._blocked(p.WITHDRAW):
            return p.Error(p.ERR_INPUT_BLOCKS, self.hal.inputs())
        self.backoff_id = msg.backoff_id
        self.stop_cause = p.STOP_NONE
        if msg.steps == 0:
            self._stop(now)
        else:
            self._start(p.WITHDRAW, msg.rate_q16, now, msg.steps)
        return None

    def status(self) -> p.Status:
        run = self.run
        flags = self.flags
        if self.host_lost:
            flags |= p.FLAG_HOST_LOST
        if self.alarm:
            flags |= p.FLAG_ALARM
        if run is not None and run.budget >= 0:
            flags |= p.FLAG_BACKING_OFF
        return p.Status(
            self.boot_id, self.hal.now_us(), self.infused_steps & 0xFFFFFFFF,
            self.withdrawn_steps & 0xFFFFFFFF, 0 if run is None else run.rate_q16,
            p.INFUSE if run is None else run.direction, self.generation & 0xFFFFFFFF,
            self.hal.inputs(), flags, self.reset_cause, self.stop_cause,
            self.backoff_id & 0xFFFFFFFF,
            p.POLICY_STOP if self.stop_on_host_loss else p.POLICY_KEEP_RATE)

    # -- motion ----------------------------------------------------------------------------------

    def _blocked(self, direction: int) -> bool:
        """Inputs that forbid a run: without a plunger nothing moves; a stall (against line
        pressure) and the end of travel forbid infusing, not backing off."""
        inputs = self.hal.inputs()
        if not inputs & p.INPUT_PLUNGER:
            return True
        return direction == p.INFUSE and bool(inputs & (p.INPUT_STALL | p.INPUT_END_OF_TRAVEL))

    def _start(self, direction: int, rate_q16: int, now: int, budget: int) -> None:
        """(Re)plan a run from ``now``; the fraction owed carries over within infusion."""
        self._count_steps()
        old = self.run
        if old is not None and old.direction == direction and old.budget < 0 and budget < 0:
            owed, done = old.owed_at(now), old.steps_done
        elif direction == p.INFUSE and budget < 0 and old is None:
            owed, done = self._infuse_owed, self._infuse_done
        else:
            owed, done = 0, 0
        self.hal.pio_stop()
        if old is not None:
            self._count_steps()
        # Never more than one step owed: a run that fell behind catches up one step, not many.
        owed = min(owed, (done + 1) * p.Q16 * STEP_CLOCK_HZ)
        if budget >= 0:
            owed = 0
            done = 0
        self.run = Run(direction, rate_q16, now, owed, steps_done=done, budget=budget)
        self._hw_last = self.hal.step_count()
        self._fill(self.run, now)
        self.hal.pio_start(direction, rate_q16)
        self._save()

    def _stop(self, now: int) -> None:
        run = self.run
        if run is None:
            return
        self.hal.pio_stop()
        self._count_steps()
        if run.direction == p.INFUSE and run.budget < 0:
            # Keep the fraction of the step in progress, not any backlog.
            self._infuse_owed = min(run.owed_at(now), (run.steps_done + 1) * p.Q16
                                    * STEP_CLOCK_HZ)
            self._infuse_done = run.steps_done
        else:
            self._infuse_owed = self._infuse_done = 0
        self.run = None
        self._save()

    def _halt(self, now: int, cause: int) -> None:
        """A local stop: the motor stops, the alarm latches, the host is told why."""
        self._stop(now)
        self.stop_cause = cause
        self.alarm = True
        self.hal.set_alarm(True)

    def _fill(self, run: Run, now: int) -> None:
        """Queue periods until the FIFO is full (or a counted move is all queued)."""
        hal = self.hal
        last = now if not run.edges else run.edges[-1]
        space = FIFO_DEPTH - hal.pio_level()
        while space > 0 and not run.fenced:
            if run.budget >= 0 and run.planned >= run.budget:
                hal.pio_push(FENCE_Y)
                run.fenced = True
                break
            edge = max(run.edge_of(run.planned + 1), last + EDGE_BEFORE_END if not run.edges
                       else last + OVERHEAD_CYCLES)
            if not run.edges:
                y = edge + EDGE_BEFORE_END - now - OVERHEAD_CYCLES
            else:
                y = edge - last - OVERHEAD_CYCLES
            hal.pio_push(y)
            run.edges.append(edge)
            run.planned += 1
            last = edge
            space -= 1

    def _count_steps(self) -> None:
        hw = self.hal.step_count()
        delta = hw - self._hw_last
        self._hw_last = hw
        run = self.run
        if delta <= 0:
            return
        if run is None or run.direction == p.INFUSE:
            self.infused_steps += delta
        else:
            self.withdrawn_steps += delta
        if self.host_lost:
            self.lost_at_steps += delta
        if run is not None:
            run.steps_done += delta
            del run.edges[:delta]

    def _top_up(self, now: int) -> None:
        run = self.run
        if run is None:
            return
        if run.budget >= 0 and run.steps_done >= run.budget:
            self._stop(now)
            return
        if run.planned <= run.steps_done and not run.fenced:
            # The FIFO ran dry and the PIO repeated its last period: plan again from the
            # integral rather than trust the repeats.
            self._start(run.direction, run.rate_q16, now,
                        run.budget - run.steps_done if run.budget >= 0 else -1)
            return
        self._fill(run, now)

    def _check_inputs(self, now: int) -> None:
        run = self.run
        if run is None:
            return
        inputs = self.hal.inputs()
        if not inputs & p.INPUT_PLUNGER:
            self._halt(now, p.STOP_NO_PLUNGER)
        elif run.direction != p.INFUSE:
            return
        elif inputs & p.INPUT_STALL:
            self._halt(now, p.STOP_STALL)
        elif inputs & p.INPUT_END_OF_TRAVEL:
            self._halt(now, p.STOP_END_OF_TRAVEL)

    def _watch_host(self, now: int) -> None:
        if not self.host_lost and now - self._last_rx_us >= self.host_loss_timeout_us:
            self.host_lost = True
            self.lost_at_steps = 0
            self.alarm = True
            self.hal.set_alarm(True)
            if self.stop_on_host_loss and self.run is not None:
                self._halt(now, p.STOP_HOST_LOST)
        if (self.host_lost and self.unattended_cap_steps
                and self.lost_at_steps >= self.unattended_cap_steps and self.run is not None):
            self._halt(now, p.STOP_UNATTENDED_CAP)

    def _steps_kept_up(self, now: int) -> bool:
        """True unless the hardware count fell behind the edges planned (a stuck PIO)."""
        run = self.run
        if run is None or not run.edges:
            return True
        return run.edges[0] > now - STEP_GRACE_US

    def _save(self) -> None:
        run = self.run
        if run is None or run.direction != p.INFUSE or run.budget >= 0:
            self.hal.scratch_write([0, 0, 0, 0])
        else:
            self.hal.scratch_write(scratch_words(run.direction, run.rate_q16, self.generation,
                                                 self.stop_on_host_loss))
