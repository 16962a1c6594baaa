"""The controller interface and the trusted-MAP average that modes share."""

from __future__ import annotations

from collections import deque
from typing import Protocol, runtime_checkable

from safety.view import SupervisorView
from vasopilot.core.types import Beat, DoseRequest


class Controller(Protocol):
    """A control mode: pure and synchronous; time comes in ``view.t_s``."""

    @property
    def mode(self) -> str: ...

    def on_beat(self, beat: Beat) -> None: ...

    def propose(self, view: SupervisorView) -> DoseRequest | None: ...


@runtime_checkable
class LooksAgain(Protocol):
    """A control mode that may want to be asked again sooner than the loop's control cadence
    (the runtime calls ``propose`` at the first step at or after it): ``look_again_s`` after its
    last ``propose``, in seconds, or ``None`` for the normal cadence."""

    @property
    def look_again_s(self) -> float | None: ...


class TrustedMapAverage:
    """Mean MAP of the good beats of the last ``window_s`` seconds (what a nurse reads)."""

    def __init__(self, window_s: float = 60.0) -> None:
        self._window_s = window_s
        self._beats: deque[tuple[float, float]] = deque()

    def add(self, beat: Beat) -> None:
        if beat.is_good:
            self._beats.append((beat.t_s, beat.map_mmhg))

    def mean_mmhg(self, now_s: float) -> float | None:
        while self._beats and self._beats[0][0] < now_s - self._window_s:
            self._beats.popleft()
        if not self._beats:
            return None
        return sum(m for _, m in self._beats) / len(self._beats)
