"""The nurse protocol of docs/virtual-patient.md: the baseline every controller is measured against.

Every 5 minutes: MAP < F → +2 mcg/min; MAP > F + 15 → -1 mcg/min (F: the supervisor's floor).
Weaning: -1 mcg/min every 30 minutes while MAP ≥ F.
"""

from __future__ import annotations

from safety.view import SupervisorView
from vasopilot.control.base import TrustedMapAverage
from vasopilot.core.types import Beat, DoseRequest, Requester

HIGH_ABOVE_FLOOR_MMHG = 15.0


class NurseProtocol:
    mode = "protocol"

    def __init__(
        self,
        *,
        period_s: float = 300.0,
        up_step_mcg_min: float = 2.0,
        down_step_mcg_min: float = 1.0,
        wean_period_s: float = 1800.0,
        wean_step_mcg_min: float = 1.0,
        weaning: bool = False,
    ) -> None:
        self._period_s = period_s
        self._up_step = up_step_mcg_min
        self._down_step = down_step_mcg_min
        self._wean_period_s = wean_period_s
        self._wean_step = wean_step_mcg_min
        self.weaning = weaning
        self._map = TrustedMapAverage()
        self._next_look_s: float | None = None

    def on_beat(self, beat: Beat) -> None:
        self._map.add(beat)

    def propose(self, view: SupervisorView) -> DoseRequest | None:
        now_s = view.t_s
        period_s = self._wean_period_s if self.weaning else self._period_s
        if self._next_look_s is None:
            self._next_look_s = now_s + period_s
            return None
        if now_s < self._next_look_s or not view.running:
            return None
        self._next_look_s = now_s + period_s
        map_mmhg = self._map.mean_mmhg(now_s)
        if map_mmhg is None or not view.map_trusted:
            return None
        floor = view.floor_mmhg
        if self.weaning:
            if map_mmhg >= floor:
                return self._request(view.dose_mcg_min - self._wean_step,
                                     f"weaning: MAP {map_mmhg:.0f} >= floor {floor:.0f}")
            return None
        if map_mmhg < floor:
            return self._request(view.dose_mcg_min + self._up_step,
                                 f"MAP {map_mmhg:.0f} < floor {floor:.0f}")
        if map_mmhg > floor + HIGH_ABOVE_FLOOR_MMHG:
            return self._request(view.dose_mcg_min - self._down_step,
                                 f"MAP {map_mmhg:.0f} > {floor + HIGH_ABOVE_FLOOR_MMHG:.0f}")
        return None

    @staticmethod
    def _request(dose_mcg_min: float, reason: str) -> DoseRequest:
        return DoseRequest(max(0.0, dose_mcg_min), Requester.PROTOCOL, reason)
