"""One root error; leaves also inherit the builtin they resemble (as gpiozero does)."""


class VasopilotError(Exception):
    """Root of every error vasopilot raises on purpose."""


class ConfigError(VasopilotError, ValueError):
    """A configuration file is refused: it names the file, the key, the value and the reason."""


class PumpError(VasopilotError):
    """A pump could not do what it was asked."""


class PumpConnectionError(PumpError, ConnectionError):
    """The link to the pump is down (port missing, unplugged, no reply)."""


class PumpCommunicationError(PumpError):
    """The pump answered, but not with a valid reply (garbage, half frame, bad CRC)."""


class PumpRefusedError(PumpError):
    """The pump understood the command and refused it (out of range, not applicable now)."""


class UncertainDeliveryError(PumpError):
    """A command was sent but its acknowledgement was lost: the pump may or may not have acted."""


class SensorError(VasopilotError):
    """A pressure or line sensor failed (disconnected, saturated, implausible zero)."""


class JournalError(VasopilotError):
    """The journal could not durably record an event."""


class JournalUnavailable(JournalError):  # noqa: N818 (a state the caller reacts to, like TimeoutError)
    """An event could not be made durable now (disk full, I/O error).

    The sink that raises it has kept the event, in order, in its bounded pending buffer and
    writes it when space returns (``flush_pending``); the caller must not act on that event.
    """


class BalanceError(VasopilotError):
    """A bench balance could not give a weight."""


class BalanceConnectionError(BalanceError, ConnectionError):
    """The link to the balance is down (port missing, unplugged, no reply in time)."""


class BalanceCommunicationError(BalanceError):
    """The balance answered, but not with a reply to the command that was sent."""


class BalanceSyntaxError(BalanceCommunicationError):
    """MT-SICS ``ES``: the balance did not recognise the command."""


class BalanceTransmissionError(BalanceCommunicationError):
    """MT-SICS ``ET``: the balance received the command corrupted (parity, framing, break)."""


class BalanceLogicalError(BalanceError):
    """MT-SICS ``EL`` or status ``L``: the command is understood but cannot be carried out."""


class BalanceBusyError(BalanceError):
    """MT-SICS status ``I`` (``S I``): busy, or no stable weight within the balance's timeout."""


class BalanceRangeError(BalanceError):
    """MT-SICS ``+``/``-``: the load is over the balance's capacity or under its zero range."""


class BalanceWeightError(BalanceError):
    """MT-SICS ``S S Error <code>``: the weighing cell reports a fault."""
