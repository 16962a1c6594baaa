"""Arterial-line transducer read through a TI ADS1115 16-bit ADC over I2C (smbus2).

Register map and bit fields: ADS1115 datasheet (SBAS444), section 9.6 "Register Map":
conversion (0x00), config (0x01: OS, MUX, PGA, MODE, DR, COMP_*), Lo_thresh (0x02) and
Hi_thresh (0x03). Hi_thresh MSB 1 and Lo_thresh MSB 0 turn ALERT/RDY into a conversion-ready
pin (9.3.8). Words travel MSB first. The driver runs the chip in continuous mode and reads the
conversion register once per conversion period on the clock; conversions it was too late for
are reported as missing samples (NaN), never invented.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from vasopilot.core.clock import Clock
from vasopilot.core.errors import SensorError
from vasopilot.core.types import PressureChunk

REG_CONVERSION = 0x00
REG_CONFIG = 0x01
REG_LO_THRESH = 0x02
REG_HI_THRESH = 0x03

OS_BIT = 1 << 15
MODE_SINGLE_SHOT = 1 << 8
COMP_QUE_DISABLE = 0b11
MUX_AIN0_AIN1 = 0b000
FULL_SCALE_CODE = 0x7FFF
DATA_RATE_CODES: dict[int, int] = {8: 0, 16: 1, 32: 2, 64: 3, 128: 4, 250: 5, 475: 6, 860: 7}
PGA_CODES: dict[float, int] = {6.144: 0, 4.096: 1, 2.048: 2, 1.024: 3, 0.512: 4, 0.256: 5}

SATURATION = "saturation"
DISCONNECTION = "disconnection"


def config_word(*, mux: int, pga_v: float, data_rate_sps: int, single_shot: bool) -> int:
    """The config register (0x01) for continuous or single-shot conversions."""
    word = (mux & 0b111) << 12 | PGA_CODES[pga_v] << 9 | DATA_RATE_CODES[data_rate_sps] << 5
    if single_shot:
        word |= MODE_SINGLE_SHOT | OS_BIT
    # COMP_QUE = 00: ALERT/RDY asserts after each conversion (with the threshold MSBs set).
    return word


class I2CBus(Protocol):
    """The part of :class:`smbus2.SMBus` the driver uses."""

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]: ...

    def write_i2c_block_data(self, i2c_addr: int, register: int, data: Sequence[int]) -> None: ...


class TransducerCalibration(BaseModel):
    """A disposable bridge transducer behind an instrumentation amplifier.

    Standard sensitivity is 5 µV per volt of excitation per mmHg; with 5 V excitation and a gain
    of 100 one mmHg is 2.5 mV at the ADC (400 mmHg per volt). ``offset_v`` is the stored zero.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    sensitivity_uv_per_v_mmhg: float = Field(default=5.0, gt=0)
    excitation_v: float = Field(default=5.0, gt=0)
    amplifier_gain: float = Field(default=100.0, gt=0)
    offset_v: float = 0.0
    # A zero further than this from the nominal offset means a faulty transducer or a line
    # still open to the patient (docs/pressure.md).
    max_zero_offset_mmhg: float = Field(default=30.0, gt=0)
    max_zero_noise_mmhg: float = Field(default=2.0, gt=0)

    @property
    def mmhg_per_v(self) -> float:
        return 1e6 / (self.sensitivity_uv_per_v_mmhg * self.excitation_v * self.amplifier_gain)


class ZeroRefusedError(SensorError, ValueError):
    """A zero was refused: implausible offset, pulsatile signal or a transducer fault."""


class ADS1115Transducer:
    """A :class:`~vasopilot.core.interfaces.PressureSource`: arterial pressure in mmHg.

    ``bus`` is an :class:`smbus2.SMBus` (or a twin of it), ``address`` 0x48-0x4B,
    ``data_rate_sps`` 250 or 475, ``pga_v`` the ADC full-scale range in volts. ``fault`` is
    ``"saturation"`` while the ADC sits at full scale and ``"disconnection"`` once it has sat
    there for ``disconnect_after_s`` (an open bridge pulls the amplifier to a rail); samples of
    a disconnected transducer are NaN.
    """

    def __init__(
        self,
        bus: I2CBus,
        clock: Clock,
        *,
        address: int = 0x48,
        data_rate_sps: Literal[250, 475] = 250,
        pga_v: float = 1.024,
        calibration: TransducerCalibration | None = None,
        disconnect_after_s: float = 0.5,
    ) -> None:
        if data_rate_sps not in (250, 475):
            raise ValueError(f"data rate must be 250 or 475 samples/s, not {data_rate_sps}")
        if pga_v not in PGA_CODES:
            raise ValueError(f"no ADS1115 full-scale range of {pga_v} V")
        self._bus = bus
        self._clock = clock
        self._address = address
        self._fs = float(data_rate_sps)
        self._pga_v = pga_v
        self.calibration = calibration or TransducerCalibration()
        self._disconnect_after = max(1, round(disconnect_after_s * self._fs))
        self._config = config_word(
            mux=MUX_AIN0_AIN1, pga_v=pga_v, data_rate_sps=data_rate_sps, single_shot=False
        )
        self._t_start = 0.0
        self._next = 1  # index of the next conversion to read (conversion k ends at k / fs)
        self._buf: list[float] = []
        self._buf_first = 1
        self._clipped_run = 0
        self.fault: str | None = None
        self._start()

    @property
    def fs_hz(self) -> float:
        return self._fs

    def _write(self, register: int, word: int) -> None:
        try:
            self._bus.write_i2c_block_data(self._address, register, [word >> 8, word & 0xFF])
        except OSError as exc:
            raise SensorError(f"ADS1115 at 0x{self._address:02x}: write failed: {exc}") from exc

    def _read(self, register: int) -> int:
        try:
            hi, lo = self._bus.read_i2c_block_data(self._address, register, 2)
        except OSError as exc:
            raise SensorError(f"ADS1115 at 0x{self._address:02x}: read failed: {exc}") from exc
        return (hi << 8) | lo

    def _start(self) -> None:
        self._write(REG_LO_THRESH, 0x0000)
        self._write(REG_HI_THRESH, 0x8000)
        self._write(REG_CONFIG, self._config)
        back = self._read(REG_CONFIG) & ~OS_BIT
        if back != self._config:
            raise SensorError(
                f"ADS1115 at 0x{self._address:02x} did not take config 0x{self._config:04x} "
                f"(reads 0x{back:04x})"
            )
        self._t_start = self._clock.now_s()

    def _sample_mmhg(self, code: int) -> float:
        signed = code - 0x10000 if code & 0x8000 else code
        if signed in (FULL_SCALE_CODE, -FULL_SCALE_CODE - 1):
            self._clipped_run += 1
            pinned = self._clipped_run >= self._disconnect_after
            self.fault = DISCONNECTION if pinned else SATURATION
        else:
            self._clipped_run = 0
            self.fault = None
        if self.fault == DISCONNECTION:
            return math.nan
        volts = signed / 32768.0 * self._pga_v
        return (volts - self.calibration.offset_v) * self.calibration.mmhg_per_v

    def poll(self) -> None:
        """Read the latest conversion if one completed since the last poll (non-blocking)."""
        latest = math.floor((self._clock.now_s() - self._t_start) * self._fs + 1e-9)
        if latest < self._next:
            return
        if not self._buf:
            self._buf_first = self._next
        self._buf.extend([math.nan] * (latest - self._next))
        self._buf.append(self._sample_mmhg(self._read(REG_CONVERSION)))
        self._next = latest + 1

    def read(self) -> PressureChunk:
        """Samples acquired since the previous call (polling once more first)."""
        self.poll()
        first = self._buf_first if self._buf else self._next
        chunk = PressureChunk(self._t_start + first / self._fs, self._fs, tuple(self._buf))
        self._buf = []
        return chunk

    def acquire(self, duration_s: float) -> PressureChunk:
        """Poll once per conversion for ``duration_s`` on the clock; return what was read."""
        end = self._clock.now_s() + duration_s
        while True:
            self.poll()
            now = self._clock.now_s()
            if now >= end:
                return self.read()
            due = self._t_start + self._next / self._fs
            self._clock.sleep(min(due, end) - now)

    def zero(self, duration_s: float = 2.0) -> TransducerCalibration:
        """Store the offset of a transducer open to air; refuse an implausible zero.

        Raises :class:`ZeroRefusedError` when the signal is missing or clipped, still
        pulsatile, or the offset is more than ``max_zero_offset_mmhg`` from nominal.
        """
        samples = np.array(self.acquire(duration_s).samples_mmhg)
        cal = self.calibration
        if samples.size == 0 or np.isnan(samples).any() or self.fault is not None:
            raise ZeroRefusedError(f"zero refused: transducer fault ({self.fault or 'missing'})")
        noise = float(samples.std())
        if noise > cal.max_zero_noise_mmhg:
            raise ZeroRefusedError(
                f"zero refused: signal varies by {noise:.1f} mmHg SD (line open to the patient?)"
            )
        offset_v = cal.offset_v + float(np.median(samples)) / cal.mmhg_per_v
        offset_mmhg = offset_v * cal.mmhg_per_v
        if abs(offset_mmhg) > cal.max_zero_offset_mmhg:
            raise ZeroRefusedError(
                f"zero refused: offset {offset_mmhg:.1f} mmHg exceeds "
                f"±{cal.max_zero_offset_mmhg:g} mmHg (faulty transducer or not open to air)"
            )
        self.calibration = cal.model_copy(update={"offset_v": offset_v})
        return self.calibration

    def close(self) -> None:
        # Back to single-shot: the chip powers down between conversions (datasheet 9.4.2).
        self._write(REG_CONFIG, self._config | MODE_SINGLE_SHOT)
