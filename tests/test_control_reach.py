"""The closed loop's out-of-reach evidence (vasopilot.control.reach) and its alarm."""

from __future__ import annotations

from dataclasses import dataclass, replace

from control_fixtures import RUNNING_VIEW, feed_beats
from hypothesis import given, settings
from hypothesis import strategies as st
from safety_fixtures import make_supervisor

from safety.alarms import Alarm
from safety.supervisor import Supervisor
from safety.view import SupervisorView
from vasopilot.control.manual import ManualMode
from vasopilot.control.mpc import LookReason, MpcController
from vasopilot.control.reach import ReachTuning, ReachWatch, Unreachable, UnreachableReason
from vasopilot.core.events import AlarmCleared, AlarmCode, AlarmRaised
from vasopilot.core.types import Beat, DoseRequest
from vasopilot.runtime import RigLoop

TARGET = 70.0
HARD_MAX = 60.0
STEP = 2.0
NO_VERDICT = (80.0, 30.0)  # the bank's forecast on the hard maximum: wide, above the target


def climb(watch: ReachWatch, response: object, *, x0: float, x1: float, minutes: float = 20.0,
          noise: list[float] | None = None) -> Unreachable | None:
    """A climb of the effect from ``x0`` to ``x1`` over ``minutes`` (a filter update every
    10 s, a look every 30 s) with MAP = ``response(x)`` (+ ``noise``); the last look's verdict."""
    assert callable(response)
    verdict = None
    n = int(minutes * 6)
    for i in range(n + 1):
        t_s = i * 10.0
        x = x0 + (x1 - x0) * i / n
        y = float(response(x)) + (noise[i % len(noise)] if noise else 0.0)
        watch.observe(t_s, y, (x,))
        if i % 3 == 0:
            verdict = watch.look(t_s, map_mmhg=y, dose_mcg_min=x, hard_max_mcg_min=HARD_MAX,
                                 up_step_mcg_min=STEP, target_mmhg=TARGET, models=(0,),
                                 effect_at_max=HARD_MAX, steady_at_max=NO_VERDICT)
    return verdict


def test_a_climb_that_moves_nothing_is_evidence_with_its_reason_and_figures() -> None:
    verdict = climb(ReachWatch(), lambda x: 55.0 + 0.02 * x, x0=20.0, x1=40.0)
    assert verdict is not None and verdict.reason is UnreachableReason.NOT_FOLLOWING
    assert verdict.expected_at_max_mmhg is not None and verdict.expected_at_max_mmhg < TARGET
    assert "did not follow" in verdict.message() and "mcg/min" in verdict.message()


def saturating(base_mmhg: float) -> object:
    """An Emax response, half of it at 15 mcg/min: a climb to 30 shows its bend."""
    return lambda x: base_mmhg + 30.0 * x / (x + 15.0)


def test_a_climb_from_low_doses_that_bends_is_saturating_where_the_chord_cannot_tell() -> None:
    # 64 mmHg on the hard maximum for good: out of reach. The last 20 min's chord still
    # rises enough to leave the target possible; the curve since the start does not
    verdict = climb(ReachWatch(), saturating(40.0), x0=0.0, x1=30.0, minutes=40.0)
    assert verdict is not None and verdict.reason is UnreachableReason.SATURATING
    assert verdict.expected_at_max_mmhg is not None and verdict.expected_at_max_mmhg < TARGET
    assert "saturates" in verdict.message()
    without_fit = ReachWatch(ReachTuning(half_effect_shares=()))
    assert climb(without_fit, saturating(40.0), x0=0.0, x1=30.0, minutes=40.0) is None


def test_the_same_bend_on_a_patient_the_hard_maximum_holds_is_no_evidence() -> None:
    # 70 and 72 mmHg on the hard maximum: reachable, however the climb bends
    for base in (46.0, 48.0):
        assert climb(ReachWatch(), saturating(base), x0=0.0, x1=30.0, minutes=40.0) is None


def test_the_first_minutes_of_a_climb_are_no_evidence_of_saturation() -> None:
    # the effect's lag is not learnt yet: a flat start is not a saturated patient
    verdict = climb(ReachWatch(), lambda x: 55.0 + 0.02 * x, x0=0.0, x1=10.0, minutes=14.0)
    assert verdict is None


def test_a_patient_that_follows_the_climb_is_not_out_of_reach() -> None:
    # 0.55 mmHg per mcg/min: 62 on 40 mcg/min, 73 on the hard maximum: reachable, and the
    # evidence must not speak
    assert climb(ReachWatch(), lambda x: 40.0 + 0.55 * x, x0=20.0, x1=40.0) is None


def test_no_climb_no_evidence() -> None:
    # a flat MAP on a flat dose says nothing about the response
    assert climb(ReachWatch(), lambda x: 55.0, x0=30.0, x1=31.0) is None


@settings(max_examples=200, deadline=None)
@given(emax=st.floats(12.0, 100.0), k=st.floats(2.0, 200.0), x0=st.floats(2.0, 30.0),
       rise=st.floats(4.0, 30.0), margin=st.floats(0.0, 20.0),
       noise=st.lists(st.floats(-3.0, 3.0), min_size=5, max_size=30))
def test_it_never_speaks_on_a_reachable_concave_patient(
        emax: float, k: float, x0: float, *, rise: float, margin: float,
        noise: list[float]) -> None:
    """A patient whose response saturates (Emax, concave: every cohort patient past the Hill
    curve's inflection) and whom the hard maximum holds at the target: no climb, whatever its
    shape and the beat noise, makes the evidence speak."""
    def effect(x: float) -> float:
        return emax * x / (x + k)

    base = TARGET + margin - effect(HARD_MAX)
    x1 = min(HARD_MAX - 1.0, x0 + rise)
    watch = ReachWatch()
    verdict = climb(watch, lambda x: base + effect(x), x0=x0, x1=x1, noise=noise)
    if verdict is not None:
        assert verdict.reason not in (UnreachableReason.NOT_FOLLOWING,
                                      UnreachableReason.SATURATING)


def test_evidence_holds_through_a_passing_high_and_goes_when_map_holds_the_target() -> None:
    watch = ReachWatch()
    assert climb(watch, lambda x: 55.0, x0=20.0, x1=40.0) is not None
    last_s = 120 * 10.0

    def look(t_s: float, y: float) -> Unreachable | None:
        watch.observe(t_s, y, (40.0,))
        return watch.look(t_s, map_mmhg=y, dose_mcg_min=40.0, hard_max_mcg_min=HARD_MAX,
                          up_step_mcg_min=STEP, target_mmhg=TARGET, models=(0,),
                          effect_at_max=HARD_MAX, steady_at_max=NO_VERDICT)

    # one minute over the target: a passing high of the wander
    assert all(look(last_s + 10.0 * i, 72.0) is not None for i in range(1, 7))
    # then the target holds on average over 5 min: the evidence is gone
    verdicts = [look(last_s + 60.0 + 10.0 * i, 72.0) for i in range(1, 40)]
    assert verdicts[-1] is None


def test_on_the_hard_max_ten_minutes_under_the_target_is_evidence() -> None:
    watch = ReachWatch()
    verdict = None
    for i in range(0, 62):
        t_s = i * 10.0
        watch.observe(t_s, 62.0, (HARD_MAX,))
        verdict = watch.look(t_s, map_mmhg=62.0, dose_mcg_min=HARD_MAX, hard_max_mcg_min=HARD_MAX,
                             up_step_mcg_min=STEP, target_mmhg=TARGET, models=(0,),
                             effect_at_max=HARD_MAX, steady_at_max=NO_VERDICT)
    assert verdict is not None and verdict.reason is UnreachableReason.AT_MAX
    assert verdict.since_s == 600.0


class _Convinced(ReachWatch):
    """Evidence from the first look on: to see what the controller does with it."""

    def look(self, t_s: float, **_: object) -> Unreachable | None:
        if self.evidence is None:
            self.evidence = Unreachable(t_s, UnreachableReason.PREDICTED, 30.0, 55.0, 60.0)
            self.first_s = t_s
        return self.evidence


def _convinced() -> MpcController:
    controller = MpcController()
    controller.reach = _Convinced()
    return controller


VIEW = replace(RUNNING_VIEW, target_map_mmhg=TARGET, lower_limit_mmhg=60.0, dose_mcg_min=30.0,
               floor_mmhg=65.0)


def test_out_of_reach_it_climbs_by_s3s_whole_step_and_says_why() -> None:
    requests = feed_beats(_convinced(), 55.0, 120.0, view=VIEW, look_every_s=2)
    assert requests
    # S3 at 30 mcg/min: +max(2, 20 %) = +6
    assert requests[0].dose_mcg_min == 36.0
    assert "target unreachable" in requests[0].reason


def test_out_of_reach_it_still_never_raises_around_an_artefact() -> None:
    controller = _convinced()
    # the supervisor is played as refusing: every look wants the S3 step
    assert feed_beats(controller, 55.0, 60.0, view=VIEW, look_every_s=2)
    held = feed_beats(controller, 55.0, 75.0, view=VIEW, quality="flush", from_s=61.0,
                      look_every_s=2)
    # good beats again, within 30 s of the flush: the look at 90 s holds
    held += feed_beats(controller, 55.0, 104.0, view=VIEW, from_s=76.0, look_every_s=2)
    assert held == []
    assert [look.reason for look in controller.looks if look.t_s == 90.0] == [
        LookReason.ARTEFACT]
    assert feed_beats(controller, 55.0, 150.0, view=VIEW, from_s=105.0, look_every_s=2)


@dataclass
class _Mode:
    """A mode whose evidence the test sets; it never asks for a dose."""

    unreachable: Unreachable | None = None
    mode: str = "closed-loop"

    def on_beat(self, beat: Beat) -> None:
        """No beats needed."""

    def propose(self, view: SupervisorView) -> DoseRequest | None:
        return None


class _NoBeats:
    def read_beats(self) -> list[Beat]:
        return []


def test_the_runtime_raises_the_alarm_once_per_evidence_and_clears_it_when_gone() -> None:
    supervisor, _, sink = make_supervisor()
    mode = _Mode()
    loop = RigLoop(supervisor, _NoBeats(), mode, sink)
    loop.step(0.0)
    mode.unreachable = Unreachable(5.0, UnreachableReason.NOT_FOLLOWING, 40.0, 58.0, 63.5)
    for t_s in (5.0, 10.0, 15.0):
        loop.step(t_s)
    raised = [e for e in sink.events if isinstance(e, AlarmRaised)
              and e.code is AlarmCode.TARGET_UNREACHABLE]
    assert len(raised) == 1 and raised[0].t_s == 5.0
    assert "did not follow" in raised[0].message and "closed-loop mode" in raised[0].message
    mode.unreachable = None
    loop.step(20.0)
    assert any(isinstance(e, AlarmCleared) and e.code is AlarmCode.TARGET_UNREACHABLE
               for e in sink.events)
    assert not any(a.code is AlarmCode.TARGET_UNREACHABLE for a in supervisor.alarms)


def _unreachable_alarms(supervisor: Supervisor) -> list[Alarm]:
    return [a for a in supervisor.alarms if a.code is AlarmCode.TARGET_UNREACHABLE]


def test_switching_away_from_the_mode_that_raised_the_alarm_ends_its_cause() -> None:
    supervisor, _, sink = make_supervisor()
    mode = _Mode(Unreachable(5.0, UnreachableReason.NOT_FOLLOWING, 40.0, 58.0, 63.5))
    loop = RigLoop(supervisor, _NoBeats(), mode, sink)
    loop.step(5.0)
    assert _unreachable_alarms(supervisor)
    # a manual mode cannot tell: the evidence left with the mode that had it
    loop.set_controller(ManualMode())
    loop.step(5.2)
    assert not _unreachable_alarms(supervisor)
    cleared = [e for e in sink.events if isinstance(e, AlarmCleared)
               and e.code is AlarmCode.TARGET_UNREACHABLE]
    assert [e.t_s for e in cleared] == [5.2]


def test_a_mode_set_again_or_a_successor_with_evidence_keeps_the_alarm() -> None:
    supervisor, _, sink = make_supervisor()
    mode = _Mode(Unreachable(5.0, UnreachableReason.NOT_FOLLOWING, 40.0, 58.0, 63.5))
    loop = RigLoop(supervisor, _NoBeats(), mode, sink)
    loop.step(5.0)
    # the same mode set again keeps its evidence: no clear, no second alarm
    loop.set_controller(mode)
    loop.step(5.2)
    assert _unreachable_alarms(supervisor)
    successor = _Mode(Unreachable(5.2, UnreachableReason.AT_MAX, 60.0, 57.0, None))
    loop.set_controller(successor)
    loop.step(5.4)
    assert _unreachable_alarms(supervisor)
    assert not any(isinstance(e, AlarmCleared) and e.code is AlarmCode.TARGET_UNREACHABLE
                   for e in sink.events)
    # the alarm is now the successor's: its evidence going ends it
    successor.unreachable = None
    loop.step(10.0)
    assert not _unreachable_alarms(supervisor)


def test_on_the_hard_max_a_little_under_the_target_is_the_wander_not_evidence() -> None:
    watch = ReachWatch()
    for i in range(0, 200):
        t_s = i * 10.0
        watch.observe(t_s, 67.0, (HARD_MAX,))
        verdict = watch.look(t_s, map_mmhg=67.0, dose_mcg_min=HARD_MAX,
                             hard_max_mcg_min=HARD_MAX, up_step_mcg_min=STEP,
                             target_mmhg=TARGET, models=(0,), effect_at_max=HARD_MAX,
                             steady_at_max=NO_VERDICT)
        assert verdict is None
