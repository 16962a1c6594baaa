"""What the control modes see: a supervisor view of a running norepinephrine infusion."""

from safety.limits import DoseLimits
from safety.view import SupervisorView
from vasopilot.core.config import NOREPINEPHRINE

# 10 mcg/min at 65 mmHg on target, trusted data, a 70 kg patient's limits
RUNNING_VIEW = SupervisorView(
    t_s=0.0, running=True, dose_mcg_min=10.0, rate_ml_h=7.5, map_trusted=True,
    last_good_map_mmhg=65.0, last_good_beat_t_s=0.0, last_beat_quality="good",
    target_map_mmhg=65.0, lower_limit_mmhg=60.0, pump=None, alarms=(), stop_reason=None,
    needs_operator=False, time_left_min=None,
    limits=DoseLimits.from_entry(NOREPINEPHRINE, 70.0),
)
