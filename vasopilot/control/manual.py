"""Manual mode: the operator sets the dose; the controller proposes nothing by itself."""

from __future__ import annotations

from safety.view import SupervisorView
from vasopilot.core.types import Beat, DoseRequest, Requester


class ManualMode:
    """Holds the operator's latest wish until the supervisor has seen it once."""

    mode = "manual"

    def __init__(self) -> None:
        self._pending: DoseRequest | None = None

    def set_dose(
        self, dose_mcg_min: float, *, by: str = "operator", confirmed: bool = False
    ) -> None:
        self._pending = DoseRequest(dose_mcg_min, Requester.OPERATOR, "operator set dose",
                                    confirmed, by)

    def on_beat(self, beat: Beat) -> None:
        """Manual mode does not titrate on beats."""

    def propose(self, view: SupervisorView) -> DoseRequest | None:
        request, self._pending = self._pending, None
        return request
