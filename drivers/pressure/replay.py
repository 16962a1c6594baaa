"""Replay of recorded arterial pressure (WFDB records) as a live pressure source.

Records may be multi-segment and multi-rate (ECG at 500 Hz beside ABP at 125 Hz): each channel
is read at its own rate (``smooth_frames=False``), so the pressure keeps its true sample times.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from vasopilot.core.clock import Clock
from vasopilot.core.errors import SensorError
from vasopilot.core.types import PressureChunk


@dataclass(frozen=True, slots=True)
class RecordChannel:
    """One channel of a record: samples in its physical unit (NaN = missing) at ``fs_hz``."""

    record: str
    channel: str
    fs_hz: float
    samples: npt.NDArray[np.float64]

    @property
    def duration_s(self) -> float:
        return self.samples.size / self.fs_hz


def load_channel(record: str | Path, channel: str = "ABP") -> RecordChannel:
    """Read ``channel`` of the WFDB record at ``record`` (path without extension).

    Raises :class:`SensorError` when there is no such record or it has no such channel.
    """
    import wfdb

    path = str(record)
    try:
        rec = wfdb.rdrecord(path, smooth_frames=False)
    except FileNotFoundError:
        raise SensorError(f"record {path}: no WFDB record there ({path}.hea not found; "
                          "name the record without its extension)") from None
    if channel not in rec.sig_name:
        raise SensorError(f"record {path} has no channel {channel!r} (it has {rec.sig_name})")
    i = rec.sig_name.index(channel)
    samples = np.asarray(rec.e_p_signal[i], dtype=np.float64)
    return RecordChannel(path, channel, float(rec.fs) * int(rec.samps_per_frame[i]), samples)


class WfdbReplaySource:
    """A :class:`~vasopilot.core.interfaces.PressureSource` replaying a recorded channel.

    Sample ``k`` falls due at ``start_s + k / fs_hz`` on ``clock`` (``start_s`` defaults to the
    clock's time at construction), so a :class:`~vasopilot.core.clock.MonotonicClock` replays
    in real time and a :class:`~vasopilot.core.clock.VirtualClock` as fast as it is advanced.
    After the last sample, ``read`` returns empty chunks and ``finished`` is true.
    """

    def __init__(
        self,
        record: str | Path | RecordChannel,
        clock: Clock,
        *,
        channel: str = "ABP",
        start_s: float | None = None,
    ) -> None:
        self._data = record if isinstance(record, RecordChannel) else load_channel(record, channel)
        self._clock = clock
        self._start_s = clock.now_s() if start_s is None else start_s
        self._next = 0
        self._closed = False

    @property
    def fs_hz(self) -> float:
        return self._data.fs_hz

    @property
    def finished(self) -> bool:
        return self._next >= self._data.samples.size

    def read(self) -> PressureChunk:
        """Samples that fell due since the previous call, in mmHg."""
        if self._closed:
            raise SensorError("replay source is closed")
        elapsed_s = self._clock.now_s() - self._start_s
        due = min(self._data.samples.size, int(np.floor(elapsed_s * self.fs_hz + 1e-9)) + 1)
        first = self._next
        self._next = max(first, due)
        chunk = self._data.samples[first : self._next]
        return PressureChunk(
            self._start_s + first / self.fs_hz, self.fs_hz, tuple(chunk.tolist())
        )

    def close(self) -> None:
        self._closed = True
