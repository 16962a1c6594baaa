"""Shared by the bridge tests: the emulator on a virtual clock, a host link to it without a
port, and the integral of the commanded rate over the time the microcontroller was alive."""

from __future__ import annotations

from drivers.sim.syringe_pump import SimSyringePump
from firmware_bridge import protocol as p
from firmware_bridge.emulator import Boot, BridgeEmulator
from vasopilot.core.clock import VirtualClock
from vasopilot.core.config import MechanicsSettings, SyringeCatalogue, SyringeSpec

SYRINGE: SyringeSpec = SyringeCatalogue().syringes["bd-plastipak-50"]
MECHANICS = MechanicsSettings()


class Bench:
    """The emulator and a host link speaking to it directly (bytes in, bytes out)."""

    def __init__(self, *, seed: int = 0) -> None:
        self.clock = VirtualClock()
        self.physics = SimSyringePump(self.clock, SYRINGE, MECHANICS)
        self.emu = BridgeEmulator(self.clock, self.physics,
                                  microstep_ul=self.physics.microstep_ul, seed=seed)
        self._link_id = 100
        self.host = self._hello()

    def _hello(self) -> p.HostLink:
        self._link_id += 1
        self.host = p.HostLink(self._link_id)
        reply = self.ask(p.Hello())
        assert isinstance(reply, p.HelloReply)
        return self.host

    def ask(self, message: p.Message) -> p.Message:
        reply = self.host.feed(self.emu.on_bytes(self.host.send(message)))
        assert reply is not None, f"no reply to {message!r}"
        if isinstance(reply, p.Error) and reply.code == p.ERR_NOT_LINKED:
            self._hello()
            return self.ask(message)
        return reply

    def status(self) -> p.Status:
        reply = self.ask(p.GetStatus())
        assert isinstance(reply, p.Status)
        return reply

    def set_rate(self, generation: int, rate_q16: int) -> p.Message:
        return self.ask(p.SetRate(generation, p.INFUSE, rate_q16))


def infusion_integral_steps(boot: Boot, until_s: float) -> float:
    """Steps the commanded infusion rate integrates to over the boot's alive time."""
    end_s = boot.down_s if boot.down_s is not None else until_s
    total = 0.0
    for seg in boot.segments:
        if seg.direction != p.INFUSE:
            continue
        t1 = seg.t1_s if seg.t1_s is not None else end_s
        total += seg.rate_q16 / p.Q16 * (min(t1, end_s) - seg.t0_s)
    return total


def boot_steps(emu: BridgeEmulator, boot: Boot) -> int:
    return boot.steps if boot.down_s is not None else emu.steps_now()


def assert_within_one_step(emu: BridgeEmulator, until_s: float) -> None:
    """Each boot's steps within one step of its integral (and never more than a cycle's
    worth ahead of it: no bolus)."""
    for i, boot in enumerate(emu.boots):
        integral = infusion_integral_steps(boot, until_s)
        steps = boot_steps(emu, boot)
        assert integral - 1.0 <= steps <= integral + 0.01, (i, steps, integral)
