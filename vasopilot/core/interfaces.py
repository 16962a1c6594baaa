"""The driver interfaces: every pump, pressure source and line-signal source satisfies one.

Each has twins with fixed names: ``Mock*`` records calls, ``Sim*`` models physics and
``*Emulator`` speaks the device's bytes or pins.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from vasopilot.core.types import Beat, LineSignals, PressureChunk, PumpCapabilities, PumpStatus


@runtime_checkable
class Pump(Protocol):
    """A syringe pump. Only ``safety.Supervisor`` holds one; everyone else reads its status.

    Methods return what the pump read back, never the wish. A lost acknowledgement raises
    :class:`~vasopilot.core.errors.UncertainDeliveryError` or returns a status with
    ``delivery_uncertain`` set.
    """

    @property
    def capabilities(self) -> PumpCapabilities: ...

    def set_rate(self, rate_ml_h: float) -> PumpStatus:
        """Infuse at ``rate_ml_h`` (starting if stopped); returns the read-back status."""
        ...

    def stop(self) -> PumpStatus: ...

    def back_off(self, volume_ul: float) -> PumpStatus:
        """Withdraw the plunger by ``volume_ul`` to release a stored bolus after an occlusion."""
        ...

    def status(self) -> PumpStatus: ...

    def heartbeat(self) -> None:
        """Keep the hardware watchdog fed (S12); a no-op where the pump has none."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class PressureSource(Protocol):
    """Arterial-pressure samples (transducer, monitor, virtual patient, WFDB replay)."""

    @property
    def fs_hz(self) -> float: ...

    def read(self) -> PressureChunk:
        """Samples acquired since the previous call."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class BeatSource(Protocol):
    """Beats already measured: a beat-mode virtual patient, or a waveform source + detector."""

    def read_beats(self) -> list[Beat]:
        """Beats completed since the previous call, oldest first."""
        ...


@runtime_checkable
class LineSignalSource(Protocol):
    def read(self) -> LineSignals: ...
