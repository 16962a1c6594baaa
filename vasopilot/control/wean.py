"""Guided weaning (mode ``wean``): the S7 guard paces every decrement, no controller hurries it.

The operator asks for weaning by choosing this mode. As soon as the trusted MAP stands at or
above target the mode hands the infusion to the supervisor's weaning policy (S7:
:meth:`WeanController.hands_over`, acted on by :class:`~vasopilot.runtime.RigLoop` on every
rig): from then on the supervisor alone steps the dose down, one wean step per wean interval of
MAP held at or above target, pausing when MAP sags and going back to the last dose that held
the target when MAP falls below the lower limit. Automatic requests are refused while it runs,
so this mode proposes nothing after the hand-over; it cannot make weaning faster than S7 allows.

A patient still below target on entry is first brought back to target by the closed-loop law
(weaning a patient who does not hold the target would only pause S7 at once).
"""

from __future__ import annotations

from safety.supervisor import SupervisorView
from vasopilot.control.closed_loop import ClosedLoopController, Tuning
from vasopilot.core.types import DoseRequest


class WeanController(ClosedLoopController):
    """Hands over to S7 once, the first time the trusted MAP is at or above target."""

    mode = "wean"

    def __init__(self, tuning: Tuning | None = None) -> None:
        super().__init__(tuning)
        self._handed_over = False

    def propose(self, view: SupervisorView) -> DoseRequest | None:
        if self._handed_over:
            # the guard owns the dose; after it (or an operator stopping it) the operator leads
            return None
        return super().propose(view)

    def hands_over(self, view: SupervisorView) -> bool:
        """True once: the infusion runs on trusted data and MAP holds the target."""
        if self._handed_over or not view.running or view.weaning or not view.map_trusted:
            return False
        est = self.estimator.estimate(view.t_s)
        if est is None or est.disturbed or est.map_mmhg < view.target_map_mmhg:
            return False
        self._handed_over = True
        return True
