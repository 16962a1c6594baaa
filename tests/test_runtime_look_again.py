"""The rig loop asks a mode again when it wants to be (vasopilot.control.base.LooksAgain): at the
first step at or after ``look_again_s``, never later than its control cadence."""

from __future__ import annotations

from dataclasses import dataclass, field

from safety_fixtures import make_supervisor

from safety.view import SupervisorView
from vasopilot.control.base import LooksAgain
from vasopilot.control.mpc import MpcController
from vasopilot.control.wean import WeanController
from vasopilot.core.types import Beat, DoseRequest
from vasopilot.runtime import LoopTimings, RigLoop


@dataclass
class _Mode:
    """A mode that asks to be looked at again ``again_s`` after each of its first ``times``
    looks; it records when it was asked and never asks for a dose."""

    again_s: float | None
    times: int = 1
    mode: str = "closed-loop"
    asked_s: list[float] = field(default_factory=list)

    @property
    def look_again_s(self) -> float | None:
        return self.again_s if len(self.asked_s) <= self.times else None

    def on_beat(self, beat: Beat) -> None:
        """No beats needed."""

    def propose(self, view: SupervisorView) -> DoseRequest | None:
        self.asked_s.append(view.t_s)
        return None


@dataclass
class _PlainMode:
    """A mode without the wish (no ``look_again_s``)."""

    mode: str = "closed-loop"
    asked_s: list[float] = field(default_factory=list)

    def on_beat(self, beat: Beat) -> None:
        """No beats needed."""

    def propose(self, view: SupervisorView) -> DoseRequest | None:
        self.asked_s.append(view.t_s)
        return None


class _NoBeats:
    def read_beats(self) -> list[Beat]:
        return []


def _asked(mode: _Mode | _PlainMode, step_s: float = 2.0, until_s: float = 20.0) -> list[float]:
    supervisor, _, sink = make_supervisor()
    loop = RigLoop(supervisor, _NoBeats(), mode, sink, timings=LoopTimings(control_period_s=5.0))
    for i in range(round(until_s / step_s) + 1):
        loop.step(i * step_s)
    return mode.asked_s


def test_a_mode_asking_to_be_looked_at_again_is_asked_at_the_first_step_after_it() -> None:
    # steps every 2 s, the cadence 5 s: 0.7 s after the look at 0 is the step at 2; twice
    assert _asked(_Mode(0.7, times=2)) == [0.0, 2.0, 4.0, 10.0, 16.0]
    # a wish for now is the next step
    assert _asked(_Mode(0.0)) == [0.0, 2.0, 8.0, 14.0, 20.0]


def test_without_a_wish_or_with_one_past_the_cadence_the_cadence_holds() -> None:
    cadence = [0.0, 6.0, 12.0, 18.0]
    assert _asked(_PlainMode()) == cadence
    assert _asked(_Mode(None)) == cadence
    # later than the cadence: the mode is still asked at its cadence, not later
    assert _asked(_Mode(30.0, times=100)) == cadence


def test_the_closed_loop_and_the_wean_modes_say_when_to_look_again() -> None:
    assert isinstance(MpcController(), LooksAgain)
    assert isinstance(WeanController(), LooksAgain)
    assert not isinstance(_PlainMode(), LooksAgain)
