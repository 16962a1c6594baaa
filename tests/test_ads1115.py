"""ADS1115 transducer driver against the register-level emulator (not a mock of the driver)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from drivers.pressure.ads1115 import (
    ADS1115Transducer,
    TransducerCalibration,
    ZeroRefusedError,
    config_word,
)
from drivers.pressure.beats import BeatDetector, DetectedBeatSource
from drivers.sim.ads1115_emulator import ADS1115Emulator
from vasopilot.core.clock import VirtualClock
from vasopilot.core.errors import SensorError
from vasopilot.core.interfaces import PressureSource


def _pulse(t_s: float) -> float:
    return 80.0 + 25.0 * math.sin(2 * math.pi * 0.625 * t_s) ** 8  # 75 bpm


def _rig(
    pressure: object = _pulse, rate: int = 250, **emu: float
) -> tuple[VirtualClock, ADS1115Emulator, ADS1115Transducer]:
    clock = VirtualClock()
    chip = ADS1115Emulator(pressure, clock, **emu)  # type: ignore[arg-type]
    return clock, chip, ADS1115Transducer(chip, clock, data_rate_sps=rate)  # type: ignore[arg-type]


def test_configures_continuous_mode_rate_gain_and_conversion_ready() -> None:
    _, chip, adc = _rig(rate=475)
    assert isinstance(adc, PressureSource) and adc.fs_hz == 475.0
    assert chip.continuous and chip.data_rate_sps == 475
    assert (chip.registers[0x01] >> 9) & 0b111 == 0b011  # PGA ±1.024 V
    assert (chip.registers[0x01] >> 12) & 0b111 == 0b000  # AIN0-AIN1 differential
    assert chip.registers[0x03] & 0x8000 and not chip.registers[0x02] & 0x8000


def test_reads_one_sample_per_conversion_in_mmhg() -> None:
    _, chip, adc = _rig()
    chunk = adc.acquire(2.0)
    assert len(chunk.samples_mmhg) == 500
    t = chunk.t0_s + np.arange(500) / 250.0
    expected = np.array([_pulse(x) for x in t])
    # One ADC code at ±1.024 V is 31 µV: 0.0125 mmHg at 400 mmHg/V.
    assert np.max(np.abs(np.array(chunk.samples_mmhg) - expected)) < 0.02
    assert chip.reads == 500


def test_conversion_ready_follows_conversions_and_reads() -> None:
    clock, chip, adc = _rig()
    clock.advance(1 / 250)
    assert chip.conversion_ready()
    adc.poll()
    assert not chip.conversion_ready()


def test_late_poll_reports_missed_conversions_as_missing() -> None:
    clock, _, adc = _rig()
    clock.advance(0.1)
    chunk = adc.read()
    assert len(chunk.samples_mmhg) == 25
    assert all(math.isnan(v) for v in chunk.samples_mmhg[:-1])
    assert not math.isnan(chunk.samples_mmhg[-1])


def test_zero_stores_the_offset_of_a_transducer_open_to_air() -> None:
    _, chip, adc = _rig(lambda _t: 0.0, offset_v=0.02, noise_sd_v=0.0005)  # 8 mmHg offset
    cal = adc.zero(2.0)
    assert cal.offset_v == pytest.approx(0.02, abs=1e-4)
    chip.pressure_mmhg = lambda _t: 100.0
    assert np.median(adc.acquire(0.5).samples_mmhg) == pytest.approx(100.0, abs=0.5)


def test_refuses_an_implausible_zero_offset() -> None:
    _, _, adc = _rig(lambda _t: 0.0, offset_v=0.2)  # 80 mmHg: faulty transducer
    with pytest.raises(ZeroRefusedError, match="offset"):
        adc.zero()
    assert adc.calibration.offset_v == 0.0


def test_refuses_to_zero_a_line_still_open_to_the_patient() -> None:
    _, _, adc = _rig(lambda t: _pulse(t) - 80.0)
    with pytest.raises(ZeroRefusedError, match="patient"):
        adc.zero()


def test_clipping_is_saturation_then_a_pinned_rail_is_disconnection() -> None:
    clock, chip, adc = _rig(lambda _t: 500.0)  # beyond the ±409 mmHg range
    clock.advance(0.1)
    adc.acquire(0.1)
    assert adc.fault == "saturation"
    chip.disconnect()
    chunk = adc.acquire(1.0)
    assert adc.fault == "disconnection"
    assert math.isnan(chunk.samples_mmhg[-1])
    with pytest.raises(ZeroRefusedError, match="fault"):
        adc.zero(0.5)
    chip.pressure_mmhg = _pulse
    chip.reconnect()
    adc.acquire(0.1)
    assert adc.fault is None


def test_missing_chip_is_a_sensor_error() -> None:
    clock = VirtualClock()
    chip = ADS1115Emulator(_pulse, clock, address=0x49)
    with pytest.raises(SensorError, match="0x48"):
        ADS1115Transducer(chip, clock)


def test_refuses_unsupported_rates() -> None:
    clock = VirtualClock()
    with pytest.raises(ValueError, match="250 or 475"):
        ADS1115Transducer(ADS1115Emulator(_pulse, clock), clock, data_rate_sps=128)  # type: ignore[arg-type]


def test_single_shot_config_word_sets_os_and_mode() -> None:
    word = config_word(mux=0b100, pga_v=2.048, data_rate_sps=128, single_shot=True)
    # Datasheet default 0x8583 with AIN0-GND selected and COMP_QUE 00 (ALERT/RDY enabled).
    assert word == 0xC580


def test_transducer_scale_is_five_microvolts_per_volt_per_mmhg() -> None:
    assert TransducerCalibration().mmhg_per_v == pytest.approx(400.0)


def test_beats_come_through_the_adc() -> None:
    # Transducer noise of 0.2 mmHg: a noise-free flat diastole would read as a clipped plateau.
    clock, _, adc = _rig(noise_sd_v=0.0005)
    source = DetectedBeatSource(adc, BeatDetector(adc.fs_hz))
    beats = []
    # The acquisition task polls once per conversion; the beat task reads every 0.2 s.
    for k in range(1, 250 * 15):
        clock.advance(1 / 250)
        adc.poll()
        if k % 50 == 0:
            beats += source.read_beats()
    good = [b for b in beats if b.is_good]
    assert len(good) >= 15
    assert abs(float(np.median([b.hr_bpm for b in good])) - 75.0) < 0.5
    # The mean of 80 + 25 sin^8 over a beat is 80 + 25 * 35/128.
    assert all(abs(b.map_mmhg - (80.0 + 25.0 * 35.0 / 128.0)) < 0.5 for b in good)
