"""What every pump must do on the bench, emulated in CI or real with ``--rig``."""

from __future__ import annotations

import pytest

from safety.supervisor import Supervisor
from vasopilot.core.clock import MonotonicClock
from vasopilot.core.events import DoseApplied, OperatorAction
from vasopilot.core.interfaces import Pump
from vasopilot.core.types import HostLossBehaviour, PumpState
from vasopilot.core.units import rate_ml_h_from_dose
from vasopilot.runtime import MemorySink
from vasopilot.settings import RigConfig

CLOCK = MonotonicClock()


def test_pump_says_what_it_does_when_the_host_dies(hil_pump: Pump) -> None:
    # S12: the driver must say which; the supervisor journals it
    assert isinstance(hil_pump.capabilities.host_loss, HostLossBehaviour)


@pytest.mark.parametrize("rate_ml_h", [1.5, 7.5, 22.5])
def test_read_back_rate_is_the_deliverable_rate(hil_pump: Pump, rate_ml_h: float) -> None:
    status = hil_pump.set_rate(rate_ml_h)
    assert status.state is PumpState.INFUSING
    expected = hil_pump.capabilities.deliverable_rate_ml_h(rate_ml_h)
    assert status.rate_ml_h == pytest.approx(expected, rel=0.01)
    assert status.rate_ml_h <= rate_ml_h + 1e-9
    assert hil_pump.stop().state is not PumpState.INFUSING


def test_delivers_the_volume_of_its_rate(hil_pump: Pump) -> None:
    rate_ml_h = 36.0
    before = hil_pump.status().delivered_ml
    start_s = CLOCK.now_s()
    hil_pump.set_rate(rate_ml_h)
    CLOCK.sleep(3.0)
    delivered_ml = hil_pump.status().delivered_ml - before
    elapsed_h = (CLOCK.now_s() - start_s) / 3600.0
    hil_pump.stop()
    # a 0.001 mL counter and the command round trips bound what 3 s can show
    assert delivered_ml == pytest.approx(rate_ml_h * elapsed_h, rel=0.15, abs=0.003)


def test_supervisor_starts_and_stops_the_real_driver(hil_pump: Pump,
                                                     hil_config: RigConfig) -> None:
    sink = MemorySink()
    supervisor = Supervisor(hil_pump, drug=hil_config.drug, patient=hil_config.profile.patient,
                            safety=hil_config.profile.safety, syringe=hil_config.syringe,
                            sink=sink)
    now_s = CLOCK.now_s()
    decision = supervisor.start(10.0, now_s)
    assert decision.applied
    expected = hil_pump.capabilities.deliverable_rate_ml_h(rate_ml_h_from_dose(10.0, 80.0))
    assert hil_pump.status().rate_ml_h == pytest.approx(expected, rel=0.01)
    supervisor.operator_stop(CLOCK.now_s(), reason="HIL test")
    assert hil_pump.status().state is not PumpState.INFUSING
    kinds = [type(e) for e in sink.events]
    assert OperatorAction in kinds and DoseApplied in kinds
    assert [e.dose_mcg_min for e in sink.events if isinstance(e, DoseApplied)][-1] == 0.0
