"""A fake I2C bus that behaves like a TI ADS1115 with a pressure transducer on AIN0-AIN1.

It speaks the register map of the datasheet (SBAS444, 9.6): config bits (OS, MUX, PGA, MODE,
DR, COMP_QUE), the conversion register updated at the data rate on the clock, threshold
registers and the ALERT/RDY conversion-ready behaviour. The production driver talks to it
through the same ``read_i2c_block_data`` / ``write_i2c_block_data`` calls as to ``smbus2``.
"""

from __future__ import annotations

import errno
import math
from collections.abc import Callable, Sequence

import numpy as np

from vasopilot.core.clock import Clock

_RATES_SPS = (8, 16, 32, 64, 128, 250, 475, 860)
_FULL_SCALE_V = (6.144, 4.096, 2.048, 1.024, 0.512, 0.256, 0.256, 0.256)
_DEFAULT_CONFIG = 0x8583
_RAIL_V = 10.0  # an open bridge pulls the amplifier past any full-scale range


class ADS1115Emulator:
    """The chip at ``address``, fed ``pressure_mmhg(t_s)`` through a transducer model.

    The transducer gives ``1 / mmhg_per_v`` volts per mmHg plus ``offset_v`` and Gaussian noise
    of ``noise_sd_v``; single-ended inputs read ``other_inputs_v``. ``disconnect()`` opens the
    bridge (testing lever, not part of the chip).
    """

    def __init__(
        self,
        pressure_mmhg: Callable[[float], float],
        clock: Clock,
        *,
        address: int = 0x48,
        mmhg_per_v: float = 400.0,
        offset_v: float = 0.0,
        noise_sd_v: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.pressure_mmhg = pressure_mmhg
        self._clock = clock
        self.address = address
        self.mmhg_per_v = mmhg_per_v
        self.offset_v = offset_v
        self._noise_sd_v = noise_sd_v
        self._rng = np.random.default_rng(seed)
        self.registers = {0x00: 0x0000, 0x01: _DEFAULT_CONFIG, 0x02: 0x8000, 0x03: 0x7FFF}
        self._t_config = clock.now_s()
        self._single_done_s: float | None = None
        self._latest_read = -1
        self.disconnected = False
        self.reads = 0

    # --- testing levers ---------------------------------------------------------------------

    def disconnect(self) -> None:
        self.disconnected = True

    def reconnect(self) -> None:
        self.disconnected = False

    # --- chip behaviour ---------------------------------------------------------------------

    def _field(self, shift: int, mask: int) -> int:
        return (self.registers[0x01] >> shift) & mask

    @property
    def data_rate_sps(self) -> int:
        return _RATES_SPS[self._field(5, 0b111)]

    @property
    def continuous(self) -> bool:
        return self._field(8, 1) == 0

    def _input_v(self, t_s: float) -> float:
        if self._field(12, 0b111) != 0:
            return 0.0  # only AIN0-AIN1 carries the bridge
        if self.disconnected:
            return _RAIL_V
        noise = self._noise_sd_v * float(self._rng.standard_normal()) if self._noise_sd_v else 0.0
        return self.pressure_mmhg(t_s) / self.mmhg_per_v + self.offset_v + noise

    def _code(self, t_s: float) -> int:
        fs_v = _FULL_SCALE_V[self._field(9, 0b111)]
        code = round(self._input_v(t_s) / fs_v * 32768.0)
        return max(-32768, min(32767, code)) & 0xFFFF

    def _conversion_index(self) -> int:
        """Index of the last conversion completed in continuous mode (0 = none yet)."""
        return math.floor((self._clock.now_s() - self._t_config) * self.data_rate_sps + 1e-9)

    def conversion_ready(self) -> bool:
        """The ALERT/RDY pin in conversion-ready mode: a conversion completed, not yet read."""
        if not (self.registers[0x03] & 0x8000 and not self.registers[0x02] & 0x8000):
            return False
        if self._field(0, 0b11) == 0b11:
            return False
        return self.continuous and self._conversion_index() > self._latest_read

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]:
        self._check(i2c_addr, register)
        if length != 2:
            raise OSError(errno.EIO, "ADS1115 registers are 16-bit words")
        now = self._clock.now_s()
        if register == 0x00:
            self.reads += 1
            if self.continuous:
                k = self._conversion_index()
                if k >= 1:
                    self.registers[0x00] = self._code(self._t_config + k / self.data_rate_sps)
                self._latest_read = k
            elif self._single_done_s is not None and now >= self._single_done_s:
                self.registers[0x00] = self._code(self._single_done_s)
        word = self.registers[register]
        if register == 0x01:
            converting = self.continuous or (
                self._single_done_s is not None and now < self._single_done_s
            )
            word = (word & 0x7FFF) | (0 if converting else 0x8000)
        return [word >> 8, word & 0xFF]

    def write_i2c_block_data(self, i2c_addr: int, register: int, data: Sequence[int]) -> None:
        self._check(i2c_addr, register)
        if register == 0x00:
            raise OSError(errno.EIO, "the conversion register is read-only")
        if len(data) != 2:
            raise OSError(errno.EIO, "ADS1115 registers are 16-bit words")
        word = (data[0] << 8) | data[1]
        self.registers[register] = word & (0xFFFF if register != 0x01 else 0x7FFF)
        if register == 0x01:
            now = self._clock.now_s()
            self._t_config = now
            self._latest_read = 0
            if not self.continuous and word & 0x8000:
                self._single_done_s = now + 1.0 / self.data_rate_sps

    def _check(self, i2c_addr: int, register: int) -> None:
        if i2c_addr != self.address:
            raise OSError(errno.EREMOTEIO, f"no device at 0x{i2c_addr:02x}")
        if register not in self.registers:
            raise OSError(errno.EIO, f"no register 0x{register:02x}")

    def close(self) -> None:
        """Nothing to release; present because :class:`smbus2.SMBus` has it."""
