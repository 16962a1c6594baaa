"""Guided weaning (mode ``wean``): follow the patient's recovery down, never ahead of it.

The operator asks for weaning by choosing this mode. The closed-loop law then holds MAP a
margin *above* target, so the dose falls exactly as fast as the patient's own pressure recovers
and no faster; when MAP sags (the rebound of suppressed vascular tone) the same law gives the
dose back before MAP reaches target. Every decrement is at most one supervisor step.

Automatic requests may not stop an infusion, so once the dose is down to the last weaning step
and MAP has held the margin for ``settle_s``, :meth:`WeanController.hands_over` says so: the
rig then calls ``Supervisor.start_weaning``, whose S7 guard takes the final step to zero after
its own interval of MAP at or above target.
"""

from __future__ import annotations

from safety.supervisor import SupervisorView
from vasopilot.control.closed_loop import ClosedLoopController, MapEstimate, Tuning
from vasopilot.core.config import NOREPINEPHRINE
from vasopilot.core.types import DoseRequest

WEAN_MARGIN_MMHG = 6.0
# while weaning, drug is given back only once MAP comes this close to target
RESCUE_MMHG = 2.0


class WeanController(ClosedLoopController):
    """Weans to ``final_dose_mcg_min`` (the drug's weaning step) and hands over the last step.

    ``margin_mmhg``: the set-point above target while weaning (it absorbs the unknown
    transducer offset and MAP's wander, so a decrement is not followed by MAP < target).
    """

    mode = "wean"

    def __init__(
        self,
        tuning: Tuning | None = None,
        *,
        margin_mmhg: float = WEAN_MARGIN_MMHG,
        final_dose_mcg_min: float = NOREPINEPHRINE.wean_step,
        settle_s: float = 600.0,
    ) -> None:
        super().__init__(tuning, aim_mmhg=margin_mmhg, min_dose_mcg_min=final_dose_mcg_min)
        self._margin_mmhg = margin_mmhg
        self._final_dose = final_dose_mcg_min
        self._settle_s = settle_s
        self._held_since_s: float | None = None

    def propose(self, view: SupervisorView) -> DoseRequest | None:
        if view.weaning:
            return None  # the supervisor's guard owns the dose now
        return super().propose(view)

    def _may_increase(self, view: SupervisorView, est: MapEstimate) -> bool:
        return est.map_mmhg < view.target_map_mmhg + RESCUE_MMHG

    def hands_over(self, view: SupervisorView) -> bool:
        """True once the dose is at the final step and MAP has held the margin long enough."""
        at_final_step = (view.running and not view.weaning and view.map_trusted
                         and view.dose_mcg_min <= self._final_dose + 1e-9)
        est = self.estimator.estimate(view.t_s) if at_final_step else None
        holding = est is not None and (
            est.map_mmhg >= view.target_map_mmhg + self._margin_mmhg / 2.0)
        if not holding:
            self._held_since_s = None
            return False
        if self._held_since_s is None:
            self._held_since_s = view.t_s
        return view.t_s - self._held_since_s >= self._settle_s
