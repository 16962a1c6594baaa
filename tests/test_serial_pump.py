"""What the serial pump drivers share: status from counters, back-off amount, read-back check,
and reading the one reply addressed to us."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from drivers.pump.frames import FrameError, FrameFault
from drivers.pump.harvard_codec import HarvardRateUnit
from drivers.pump.new_era_codec import (
    Framing,
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
from vasopilot.core.errors import PumpRefusedError, UncertainDeliveryError
from vasopilot.core.types import HostLossBehaviour, PumpAlarm, PumpState


def _status(infused_ml: float, stall: bool) -> tuple[bool, bool, float]:
    status = counter_status(t_s=0.0, state=PumpState.ALARM, rate_ml_h=0.0, infused_ml=infused_ml,
                            withdrawn_ml=0.5, fill_ml=50.0, stall=stall, alarm=PumpAlarm.STALL)
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
    ours = NewEraReply(3, NewEraStatus.STOPPED, "7.500MH", safe=True)
    taken: list[NewEraReply] = []

    def unsolicited(reply: NewEraReply) -> bool:
        taken.append(reply)
        return True

    loop.write(alarm.encode() + ours.encode())
    assert read_reply(loop, _safe(), 3, "RAT", unsolicited=unsolicited) == ours
    assert taken == [alarm]
    loop.write(alarm.encode() + ours.encode())
    with pytest.raises(FrameError) as raised:
        read_reply(loop, _safe(), 3, "RAT")
    assert raised.value.fault is FrameFault.OTHER_ADDRESS


def _safe() -> ReplyDecoder:
    return ReplyDecoder(framing=Framing.SAFE)


def test_garbage_before_the_reply_is_an_error(loop: SerialLink) -> None:
    loop.write(b"noise" + NewEraReply(3, NewEraStatus.STOPPED, safe=True).encode())
    with pytest.raises(FrameError) as raised:
        read_reply(loop, _safe(), 3, "DIS")
    assert raised.value.fault is FrameFault.OUTSIDE_FRAME


def test_a_forged_basic_frame_on_a_safe_link_is_a_link_error_not_a_status(
    loop: SerialLink,
) -> None:
    """The forged stall alarm that made the supervisor stop the pump (issue 11, case 5): on a
    safe-mode link it is garbage, and with no real reply after it a link error naming it."""
    loop.write(b"\x0200A?S\x03")
    with pytest.raises(FrameError) as raised:
        read_reply(loop, _safe(), 0, "DIS")
    assert raised.value.fault is FrameFault.UNCHECKED_FRAME
    loop.write(b"\x0200A?S\x03" + NewEraReply(0, NewEraStatus.INFUSING, safe=True).encode())
    with pytest.raises(FrameError) as raised:
        read_reply(loop, _safe(), 0, "DIS")
    assert raised.value.fault is FrameFault.UNCHECKED_FRAME
