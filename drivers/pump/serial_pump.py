"""What the serial syringe-pump drivers (NE-1000, Pump 11 Elite) share beyond the port.

Both pumps write numbers in the NE-1000's 4-digit format, count infused and withdrawn volume,
answer each request with one addressed reply, and are verified by reading the rate back; the
decisions around those facts live here once, the command sets stay in each driver.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from drivers.pump.frames import FrameError, FrameFault, Garbage
from drivers.pump.new_era_codec import (
    CodecError,
    format_number,
    parse_number,
    resolution_in_unit,
)
from drivers.pump.serial_link import FrameDecoder, SerialLink
from vasopilot.core.errors import (
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

DEFAULT_TIMEOUT_S = 0.5
# Back-off withdraws this fast (capped by the pump's limit): a stored bolus of a few hundred
# µL leaves the line in seconds without a suction spike.
BACK_OFF_RATE_ML_H = 60.0
# A stall with less than this left in the syringe is the plunger at the end of its travel.
END_OF_TRAVEL_MARGIN_ML = 0.1
# The resolution a pump reports before any rate is set: the finest step of the number format.
UNSET_RESOLUTION_ML_H = 0.001


class RateUnit(Protocol):
    @property
    def ml_h(self) -> float: ...


class AddressedReply(Protocol):
    @property
    def address(self) -> int: ...


R = TypeVar("R", bound=AddressedReply)


def capabilities(
    rate_value: float,
    unit: RateUnit,
    limits_ml_h: tuple[float, float],
    syringe_volume_ml: float,
    host_loss: HostLossBehaviour,
    *,
    host_loss_after_s: float | None = None,
) -> PumpCapabilities:
    """Limits from the plunger speeds and the bore; resolution of the number format at the rate
    now set (``rate_value`` in ``unit``)."""
    resolution_ml_h = (resolution_in_unit(rate_value) * unit.ml_h if rate_value > 0
                       else UNSET_RESOLUTION_ML_H)
    return PumpCapabilities(
        min_rate_ml_h=limits_ml_h[0],
        max_rate_ml_h=limits_ml_h[1],
        resolution_ml_h=resolution_ml_h,
        syringe_volume_ml=syringe_volume_ml,
        host_loss=host_loss,
        host_loss_after_s=host_loss_after_s,
    )


def counter_status(
    *,
    t_s: float,
    state: PumpState,
    rate_ml_h: float,
    infused_ml: float,
    withdrawn_ml: float,
    fill_ml: float,
    stall: bool,
    alarm: PumpAlarm | None,
) -> PumpStatus:
    """A status from the pump's volume counters; a stall with the syringe (nearly) empty is the
    end of travel, not a blocked line."""
    delivered_ml = infused_ml - withdrawn_ml
    remaining_ml = max(0.0, fill_ml - delivered_ml)
    end_of_travel = stall and remaining_ml <= END_OF_TRAVEL_MARGIN_ML
    return PumpStatus(
        t_s=t_s,
        state=state,
        rate_ml_h=rate_ml_h,
        delivered_ml=delivered_ml,
        syringe_remaining_ml=remaining_ml,
        stalled=stall and not end_of_travel,
        end_of_travel=end_of_travel,
        alarm=alarm,
    )


def back_off_rate_ml_h(max_rate_ml_h: float) -> float:
    return min(BACK_OFF_RATE_ML_H, max_rate_ml_h)


def back_off_amount(volume_ul: float, scale: float,
                    refused: Callable[[], PumpRefusedError]) -> str | None:
    """``volume_ul`` times ``scale`` (µL into the pump's volume unit) in the number format, or
    None when it rounds to nothing: a target volume of 0 would mean "no limit", a withdrawal to
    the end of the barrel. A volume the format cannot hold raises ``refused()``."""
    if volume_ul < 0:
        raise ValueError(f"back-off volume must be non-negative, got {volume_ul} µL")
    try:
        text = format_number(volume_ul * scale)
    except CodecError:
        raise refused() from None
    return text if parse_number(text) > 0 else None


def verify_read_back(address: int, wanted: tuple[float, RateUnit], read: tuple[float, RateUnit],
                     wanted_text: str, read_text: str) -> None:
    """The rate the pump reads back must be the one just set: anything else means we do not
    know what it delivers."""
    if read != wanted:
        raise UncertainDeliveryError(
            f"pump {address} reads back rate {read_text!r} after {wanted_text!r} was set")


def _never(_reply: object) -> bool:
    return False


def read_reply(
    link: SerialLink,
    decoder: FrameDecoder[R | Garbage],
    address: int,
    command: str,
    *,
    unsolicited: Callable[[R], bool] = _never,
) -> R:
    """The reply to ``command`` from the pump at ``address``. A reply from another address
    is an error unless ``unsolicited`` takes it (another pump's alarm raised on its own);
    garbage before the reply, or garbage and then silence, is a :class:`FrameError` naming
    the first fault: bytes that failed the checks are a link error, never a reply."""
    garbage: list[Garbage] = []
    try:
        for item in link.items(decoder, f"{command!r} to pump {address}"):
            if isinstance(item, Garbage):
                garbage.append(item)
            elif item.address != address:
                if unsolicited(item):
                    continue
                raise FrameError(FrameFault.OTHER_ADDRESS,
                                 f"reply to {command!r} came from address {item.address:02d}, "
                                 f"expected {address:02d}")
            elif garbage:
                raise _garbage_error("before the reply", command, garbage[0])
            else:
                return item
    except PumpConnectionError:
        if garbage:
            raise _garbage_error("and no reply", command, garbage[0]) from None
        raise
    raise AssertionError("SerialLink.items ends only by raising")


def _garbage_error(where: str, command: str, first: Garbage) -> FrameError:
    detail = f", {first.detail}" if first.detail else ""
    return FrameError(first.fault,
                      f"garbage {where} to {command!r}: {first.raw!r}{detail}")
