"""The nurse protocol of docs/virtual-patient.md, as clinical rules."""

from dataclasses import replace

import pytest
from control_fixtures import RUNNING_VIEW as BASE

from safety.view import SupervisorView
from vasopilot.control.manual import ManualMode
from vasopilot.control.protocol import NurseProtocol
from vasopilot.core.types import Beat, Requester


def run_protocol(protocol: NurseProtocol, map_mmhg: float, until_s: float,
                 view: SupervisorView = BASE, quality: str = "good") -> list[float]:
    """Feed a beat per second at ``map_mmhg``; return the doses it proposed."""
    proposals = []
    for t in range(int(until_s) + 1):
        protocol.on_beat(Beat(float(t), map_mmhg + 20, map_mmhg - 10, map_mmhg, 80.0, quality))
        request = protocol.propose(replace(view, t_s=float(t)))
        if request is not None:
            assert request.requester is Requester.PROTOCOL
            proposals.append(request.dose_mcg_min)
    return proposals


# RUNNING_VIEW: floor 60, set-point 65

def test_increases_by_2_every_5_minutes_when_map_below_the_floor() -> None:
    assert run_protocol(NurseProtocol(), 55.0, 600) == [12.0, 12.0]


def test_decreases_by_1_when_map_above_the_floor_plus_15() -> None:
    assert run_protocol(NurseProtocol(), 80.0, 300) == [9.0]


@pytest.mark.parametrize("map_mmhg", [60.0, 65.0, 75.0])
def test_leaves_the_dose_alone_inside_the_band(map_mmhg: float) -> None:
    assert run_protocol(NurseProtocol(), map_mmhg, 900) == []


def test_weans_by_1_every_30_minutes_while_map_at_target() -> None:
    assert run_protocol(NurseProtocol(weaning=True), 66.0, 3600) == [9.0, 9.0]


def test_weans_on_the_floor_not_the_set_point() -> None:
    # patient.md: "decrease 1 mcg/min every 30 minutes while MAP >= F"
    assert run_protocol(NurseProtocol(weaning=True), 61.0, 3600) == [9.0, 9.0]


def test_weaning_pauses_while_map_below_the_floor() -> None:
    assert run_protocol(NurseProtocol(weaning=True), 59.0, 3600) == []


def test_proposes_nothing_on_untrusted_map() -> None:
    untrusted = replace(BASE, map_trusted=False)
    assert run_protocol(NurseProtocol(), 50.0, 900, view=untrusted) == []
    assert run_protocol(NurseProtocol(), 50.0, 900, quality="flush") == []


def test_manual_mode_passes_the_operators_dose_once() -> None:
    manual = ManualMode()
    assert manual.propose(BASE) is None
    manual.set_dose(6.0, by="nurse")
    request = manual.propose(BASE)
    assert request is not None
    assert (request.dose_mcg_min, request.requester, request.sender) == (6.0, Requester.OPERATOR,
                                                                         "nurse")
    assert manual.propose(BASE) is None
