"""What the serial pump drivers share: status from counters, back-off amount, read-back check,
and reading the one reply addressed to us."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from drivers.pump.harvard_codec import HarvardRateUnit
from drivers.pump.new_era_codec import (
    NewEraAlarm,
    NewEraReply,
    NewEraStatus,
    RateUnit,
    ReplyDecoder,
)
from drivers.pump.serial_link import SerialLink
from drivers.pump.serial_pump import (
    END_OF_TRAVEL_MARGIN_ML,
    back_off_amount,
    capabilities,
    counter_status,
    read_reply,
    verify_read_back,
)
from vasopilot.core.errors import PumpCommunicationError, PumpRefusedError, UncertainDeliveryError
from vasopilot.core.types import HostLossBehaviour, PumpState


def _status(infused_ml: float, stall: bool) -> tuple[bool, bool, float]:
    status = counter_status(t_s=0.0, state=PumpState.ALARM, rate_ml_h=0.0, infused_ml=infused_ml,
                            withdrawn_ml=0.5, fill_ml=50.0, stall=stall, alarm="stall")
    return status.stalled, status.end_of_travel, status.syringe_remaining_ml


def test_a_stall_with_the_syringe_empty_is_end_of_travel_not_a_blocked_line() -> None:
    assert _status(20.5, stall=True) == (True, False, 30.0)
    assert _status(50.5 - END_OF_TRAVEL_MARGIN_ML / 2, stall=True)[:2] == (False, True)
    assert _status(60.0, stall=False) == (False, False, 0.0)


def test_back_off_that_rounds_to_nothing_sends_nothing() -> None:
    def refused() -> PumpRefusedError:
        return PumpRefusedError("too much")

    assert back_off_amount(250.0, 1.0, refused) == "250.0"
    assert back_off_amount(250.0, 0.001, refused) == "0.250"
    assert back_off_amount(0.0004, 1.0, refused) is None
    with pytest.raises(PumpRefusedError, match="too much"):
        back_off_amount(1e6, 1.0, refused)
    with pytest.raises(ValueError, match="non-negative"):
        back_off_amount(-1.0, 1.0, refused)


def test_resolution_is_the_number_formats_step_at_the_rate_set() -> None:
    caps = capabilities(8.333, HarvardRateUnit.UL_MIN, (0.01, 100.0), 50.0,
                        HostLossBehaviour.KEEPS_RATE)
    assert caps.resolution_ml_h == pytest.approx(0.001 * 0.06)
    assert capabilities(0.0, RateUnit.ML_H, (0.01, 100.0), 50.0,
                        HostLossBehaviour.KEEPS_RATE).resolution_ml_h == 0.001


def test_a_rate_read_back_in_another_unit_makes_delivery_uncertain() -> None:
    verify_read_back(0, (7.5, RateUnit.ML_H), (7.5, RateUnit.ML_H), "7.500MH", "7.500MH")
    with pytest.raises(UncertainDeliveryError, match=r"reads back rate '7\.500UH'"):
        verify_read_back(0, (7.5, RateUnit.ML_H), (7.5, RateUnit.UL_H), "7.500MH", "7.500UH")


@pytest.fixture
def loop() -> Iterator[SerialLink]:
    link = SerialLink("loop://", baud=19200, timeout_s=0.05)
    yield link
    link.close()


def test_another_pumps_reply_is_an_error_unless_taken_as_unsolicited(loop: SerialLink) -> None:
    alarm = NewEraReply(7, NewEraStatus.ALARM, alarm=NewEraAlarm.STALL, safe=True)
    ours = NewEraReply(3, NewEraStatus.STOPPED, "7.500MH")
    taken: list[NewEraReply] = []

    def unsolicited(reply: NewEraReply) -> bool:
        taken.append(reply)
        return True

    loop.write(alarm.encode() + ours.encode())
    assert read_reply(loop, ReplyDecoder(), 3, "RAT", unsolicited=unsolicited) == ours
    assert taken == [alarm]
    loop.write(alarm.encode() + ours.encode())
    with pytest.raises(PumpCommunicationError, match="from address 07, expected 03"):
        read_reply(loop, ReplyDecoder(), 3, "RAT")


def test_garbage_before_the_reply_is_an_error(loop: SerialLink) -> None:
    loop.write(b"noise" + NewEraReply(3, NewEraStatus.STOPPED).encode())
    with pytest.raises(PumpCommunicationError, match="garbage before the reply"):
        read_reply(loop, ReplyDecoder(), 3, "DIS")
