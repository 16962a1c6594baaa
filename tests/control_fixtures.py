"""What the control modes see: a supervisor view of a running norepinephrine infusion, and
a steady stream of beats."""

from dataclasses import replace

from safety.limits import DoseLimits
from safety.view import SupervisorView
from vasopilot.control.base import Controller
from vasopilot.core.config import NOREPINEPHRINE
from vasopilot.core.types import Beat, DoseRequest

# 10 mcg/min at 65 mmHg on the set-point (floor 60), trusted data, a 70 kg patient's limits
RUNNING_VIEW = SupervisorView(
    t_s=0.0, running=True, dose_mcg_min=10.0, rate_ml_h=7.5, map_trusted=True,
    last_good_map_mmhg=65.0, last_good_beat_t_s=0.0, last_beat_quality="good",
    target_map_mmhg=65.0, lower_limit_mmhg=55.0, floor_mmhg=60.0, pump=None, alarms=(),
    stop_reason=None,
    needs_operator=False, time_left_min=None,
    limits=DoseLimits.from_entry(NOREPINEPHRINE, 70.0),
)


def feed_beats(controller: Controller, map_mmhg: float, until_s: float, *,
               view: SupervisorView = RUNNING_VIEW, quality: str = "good", from_s: float = 0.0,
               look_every_s: int = 5) -> list[DoseRequest]:
    """A beat per second at ``map_mmhg``; the requests proposed every ``look_every_s``. The
    supervisor is played as refusing everything (the dose in ``view`` never changes)."""
    requests = []
    t = from_s
    while t <= until_s:
        controller.on_beat(Beat(t, map_mmhg + 20, map_mmhg - 10, map_mmhg, 80.0, quality))
        if t % look_every_s == 0:
            request = controller.propose(replace(view, t_s=t))
            if request is not None:
                requests.append(request)
        t += 1.0
    return requests
