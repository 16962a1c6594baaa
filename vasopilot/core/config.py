"""Configuration models (pydantic v2): drug library, syringes, patient, pump, MQTT, rig profile.

They live in ``core`` because the supervisor needs the drug library and patient limits and may
import value types only. Loading files, checks that need the filesystem and rules that span
files are :mod:`vasopilot.settings`. Every default here is the embedded default that
``vasopilot sim`` runs with.

Every field carries its physical bound (:class:`Bound`, :class:`Matches`) or says why it needs
none (:class:`NoBound`); ``tests/test_config_bounds.py`` walks the models and holds every field
to that. Values cross a boundary here (TOML files), so the models are strict (a string is not a
number, "yes" is not true) and refuse inf and nan. A refusal raised by a cross-field check names
the key it is about (:func:`refuse`), so the file's refusal points at the key to edit.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from vasopilot.core.units import DoseUnit, from_mcg_min, to_mcg_min


@dataclass(frozen=True)
class Bound:
    """A physical range for a number, with the reason it holds; ``None`` is an open side.

    ``lo_open`` refuses ``lo`` itself (a quantity that must be positive).
    """

    lo: float | None
    hi: float | None
    unit: str
    why: str
    lo_open: bool = False

    def describe(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        if self.lo is not None and self.hi is not None and not self.lo_open:
            return f"{self.lo:g}–{self.hi:g}{unit}"
        parts = []
        if self.lo is not None:
            parts.append(f"{'>' if self.lo_open else '≥'} {self.lo:g}")
        if self.hi is not None:
            parts.append(f"≤ {self.hi:g}")
        return " and ".join(parts) + unit

    def __call__(self, value: Any) -> Any:
        if value is None:
            return value
        low = self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo)
        if low or (self.hi is not None and value > self.hi):
            raise refuse(None, f"must be {self.describe()}: {self.why}")
        return value


@dataclass(frozen=True)
class Matches:
    """A text setting must match ``pattern`` (a regular expression), for the reason ``why``."""

    pattern: str
    why: str

    def __call__(self, value: Any) -> Any:
        if value is not None and not re.fullmatch(self.pattern, value):
            raise refuse(None, f"must match {self.pattern}: {self.why}")
        return value


@dataclass(frozen=True)
class NoBound:
    """A field with no range of its own, and why (a label, or checked where it is used)."""

    why: str


def refuse(key: str | None, reason: str) -> PydanticCustomError:
    """A refusal of ``key`` (a field of the model being validated; ``None``: the field itself).

    :mod:`vasopilot.settings` appends ``key`` to the error's location, so a cross-field check
    points at the key to edit instead of at the whole table.
    """
    return PydanticCustomError("bound", "{reason}", {"reason": reason, "key": key})


def _bounded(lo: float | None, hi: float | None, unit: str, why: str, *,
             lo_open: bool = False) -> AfterValidator:
    return AfterValidator(Bound(lo, hi, unit, why, lo_open))


def _matches(pattern: str, why: str) -> AfterValidator:
    return AfterValidator(Matches(pattern, why))


# Topic levels and client ids (no "/", "+" or "#": CVE-2017-7650).
_TOPIC_SAFE = r"[a-z0-9-]{1,32}"
_TOPIC_WHY = "a topic level and client id: a-z, 0-9 and -, at most 32 (no / + #)"
_ANY_DOSE = "any finite dose; ordered against the other limits of the entry"


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


@dataclass(frozen=True)
class DrugCeiling:
    """What is physically sane for one drug, whatever a library says (S1 sits well inside it)."""

    conc_mcg_ml: tuple[float, float]
    hard_max_mcg_min: float
    hard_max_mcg_kg_min: float
    why_conc: str
    why_dose: str


DRUG_CEILINGS: dict[str, DrugCeiling] = {
    "norepinephrine": DrugCeiling(
        conc_mcg_ml=(4.0, 1000.0),
        hard_max_mcg_min=200.0,
        hard_max_mcg_kg_min=3.0,
        why_conc="4 mg in 1 L is the most dilute norepinephrine infusion in use, 1 mg/mL the "
                 "undiluted ampoule",
        why_dose="about 3 mcg/kg/min (200 mcg/min) is beyond the highest norepinephrine doses "
                 "reported even in refractory shock; S1's hard max is 1.0 mcg/kg/min "
                 "(60 mcg/min)",
    ),
}

# One step (up or down) may move the dose by at most this share of the hard maximum (S3).
MAX_STEP_SHARE_OF_HARD_MAX = 0.2


class DrugEntry(Model):
    """One drug-library entry (S1). Doses are in ``dose_unit``; intervals in seconds."""

    name: Annotated[str, NoBound("a drug whose physical ceilings vasopilot knows "
                                 "(norepinephrine)")] = Field(
        description="the drug; its physical ceilings come from vasopilot's table")
    conc_mcg_ml: Annotated[float, _bounded(0, None, "mcg/mL", "within the drug's range "
                                           "(norepinephrine: 4–1000 mcg/mL)",
                                           lo_open=True)] = Field(
        description="concentration in the syringe, mcg/mL")
    dose_unit: DoseUnit = Field(default=DoseUnit.MCG_MIN, strict=False,
                                description="unit of every dose of this entry: mcg/min or "
                                            "mcg/kg/min (needs [patient] weight_kg)")
    soft_min: Annotated[float, _bounded(0, None, "", _ANY_DOSE)] = Field(
        description="soft minimum dose")
    soft_max: Annotated[float, _bounded(0, None, "", _ANY_DOSE, lo_open=True)] = Field(
        description="soft maximum dose: above it needs an operator's confirmation (S2)")
    hard_max: Annotated[float, _bounded(0, None, "", "at most the drug's ceiling "
                                        "(norepinephrine: 200 mcg/min, 3 mcg/kg/min)",
                                        lo_open=True)] = Field(
        description="hard maximum dose: never exceeded (S2)")
    start_min: Annotated[float, _bounded(0, None, "", _ANY_DOSE)] = Field(
        description="lowest start dose without a confirmation")
    start_max: Annotated[float, _bounded(0, None, "", _ANY_DOSE, lo_open=True)] = Field(
        description="highest start dose without a confirmation")
    max_up_step: Annotated[float, _bounded(0, None, "", "S3 slew limit; at most a fifth of "
                                           "hard_max", lo_open=True)] = Field(
        description="largest up-titration step (S3)")
    min_up_interval_s: Annotated[float, _bounded(
        60, 3600, "s", "norepinephrine takes 1–2 min to act (S3 default 120 s): faster steps "
        "stack before the last one shows; over an hour up-titration is stalled")] = Field(
        description="shortest time between two up-titrations, s (S3)")
    max_up_step_pct: Annotated[float, _bounded(
        0, 50, "%", "S3's relative part (default 20 %): weight-based orders climb "
        "0.02-0.05 mcg/kg/min a step; half the running dose a step is no slew limit")] = Field(
        default=20.0, description="an up-titration step may also be this share of the running "
                                  "dose, %: the step is +max(max_up_step, this share) (S3; 0: "
                                  "the absolute part alone)")
    max_down_step: Annotated[float, _bounded(0, None, "", "S3 slew limit; at most a fifth "
                                             "of hard_max",
                                             lo_open=True)] = Field(
        description="largest down-titration step outside S8-S10 stops (S3)")
    max_down_step_pct: Annotated[float, _bounded(
        0, 50, "%", "S3's relative part (default 20 %); half the running dose a step is no "
        "slew limit")] = Field(
        default=20.0, description="a down-titration step may also be this share of the running "
                                  "dose, %: the step is -max(max_down_step, this share) (S3; "
                                  "0: the absolute part alone)")
    wean_step: Annotated[float, _bounded(0, None, "", "at most max_down_step",
                                         lo_open=True)] = Field(
        description="weaning step (S7)")
    wean_interval_s: Annotated[float, _bounded(
        60, 21600, "s", "S7 judges the floor on ~60 s MAP medians over the whole interval; "
        "beyond 6 h nothing weans")] = Field(description="time between weaning steps, s (S7)")
    peripheral_max_conc_mcg_ml: Annotated[float | None, _bounded(
        4, 64, "mcg/mL", "published peripheral norepinephrine protocols run 4–64 mcg/mL "
        "(16 mcg/mL, 4 mg in 250 mL, is common)")] = Field(
        default=16.0, description="highest concentration this entry allows on a peripheral "
                                  "line, mcg/mL (unset: central line only)")
    peripheral_max_dose_mcg_min: Annotated[float, _bounded(
        0, 60, "mcg/min", "peripheral protocols stop at about 0.2–0.3 mcg/kg/min "
        "(15–25 mcg/min); S1's hard max is 60", lo_open=True)] = Field(
        default=20.0, description="highest dose this entry allows on a peripheral line, "
                                  "mcg/min: its hard_max must not exceed it there")
    peripheral_max_hours: Annotated[float, _bounded(
        0, 72, "h", "peripheral vasopressor protocols allow 2–72 h (most 24–48) before a "
        "central line", lo_open=True)] = Field(
        default=24.0, description="longest infusion on a peripheral line, h: then a medium "
                                  "alarm asks for a central line")
    volume_check_ratio: Annotated[float, _bounded(
        1.2, 10, "", "the seed's 'substantially escalating': a doubling by default")] = Field(
        default=2.0, description="the dose reaching this multiple of its lowest value within "
                                 "volume_check_window_s prompts a volume check")
    volume_check_rise_mcg_min: Annotated[float, _bounded(
        0, 60, "mcg/min", "a rise within S1's hard max (default +10 mcg/min)",
        lo_open=True)] = Field(
        default=10.0, description="the dose rising by more than this within "
                                  "volume_check_window_s prompts a volume check, mcg/min")
    volume_check_window_s: Annotated[float, _bounded(
        300, 7200, "s", "S3 allows +2 mcg/min per 2 min: shorter than 5 min no rise counts, "
        "longer than 2 h is not an escalation")] = Field(
        default=1800.0, description="the window the volume check's rise and doubling are "
                                    "measured over, s")

    @model_validator(mode="after")
    def _limits_are_ordered(self) -> Self:
        if not self.soft_min <= self.soft_max:
            raise refuse("soft_min", f"must not exceed soft_max ({self.soft_max:g})")
        if not self.soft_max <= self.hard_max:
            raise refuse("soft_max", f"must not exceed hard_max ({self.hard_max:g}): "
                         "limits must satisfy soft_min <= soft_max <= hard_max")
        if not self.soft_min <= self.start_min <= self.start_max:
            raise refuse("start_min", f"start range must satisfy soft_min ({self.soft_min:g}) "
                         f"<= start_min <= start_max ({self.start_max:g})")
        if not self.start_max <= self.soft_max:
            raise refuse("start_max", f"start range must lie within the soft limits: "
                         f"start_max <= soft_max ({self.soft_max:g})")
        return self

    @model_validator(mode="after")
    def _steps_fit_the_limits(self) -> Self:
        step_cap = MAX_STEP_SHARE_OF_HARD_MAX * self.hard_max
        for key in ("max_up_step", "max_down_step"):
            if getattr(self, key) > step_cap:
                raise refuse(key, f"must be at most {MAX_STEP_SHARE_OF_HARD_MAX:g} × hard_max "
                             f"= {step_cap:g}: S3 slew-limits titration (defaults 2 of 60 "
                             "mcg/min, 0.03 of 1.0 mcg/kg/min)")
        if self.wean_step > self.max_down_step:
            raise refuse("wean_step", f"must not exceed max_down_step ({self.max_down_step:g}): "
                         "a weaning step the down-slew limit refuses never happens")
        return self

    @model_validator(mode="after")
    def _within_the_drugs_ceiling(self) -> Self:
        ceiling = DRUG_CEILINGS.get(self.name)
        if ceiling is None:
            raise refuse("name", f"no physical ceiling is known for this drug (known: "
                         f"{', '.join(sorted(DRUG_CEILINGS))}): vasopilot doses those only")
        lo, hi = ceiling.conc_mcg_ml
        if not lo <= self.conc_mcg_ml <= hi:
            raise refuse("conc_mcg_ml", f"must be {lo:g}–{hi:g} mcg/mL for {self.name}: "
                         f"{ceiling.why_conc}")
        cap = (ceiling.hard_max_mcg_kg_min if self.dose_unit is DoseUnit.MCG_KG_MIN
               else ceiling.hard_max_mcg_min)
        if self.hard_max > cap:
            raise refuse("hard_max", f"must be at most {cap:g} {self.dose_unit.value} for "
                         f"{self.name}: {ceiling.why_dose}")
        return self

    def mcg_min(self, value: float, weight_kg: float | None) -> float:
        """A dose of this entry's unit, in mcg/min."""
        return to_mcg_min(value, self.dose_unit, weight_kg)

    def in_unit(self, dose_mcg_min: float, weight_kg: float | None) -> float:
        return from_mcg_min(dose_mcg_min, self.dose_unit, weight_kg)


NOREPINEPHRINE = DrugEntry(
    name="norepinephrine",
    conc_mcg_ml=80.0,
    dose_unit=DoseUnit.MCG_MIN,
    soft_min=0.0,
    soft_max=30.0,
    hard_max=60.0,
    start_min=8.0,
    start_max=12.0,
    max_up_step=2.0,
    min_up_interval_s=120.0,
    max_down_step=2.0,
    wean_step=1.0,
    wean_interval_s=900.0,
)

# S1's weight-based twin: 0.4 and 1.0 mcg/kg/min are the soft and hard maxima at 75 and 60 kg.
NOREPINEPHRINE_WEIGHT_BASED = DrugEntry.model_validate(NOREPINEPHRINE.model_dump() | {
    "dose_unit": DoseUnit.MCG_KG_MIN, "soft_max": 0.4, "hard_max": 1.0, "start_min": 0.05,
    "start_max": 0.1, "max_up_step": 0.03, "max_down_step": 0.03, "wean_step": 0.01})


# A peripheral line (patient.line = "peripheral"): the dilute solution, its doses within the
# entry's peripheral maximum (a central line takes the 80 mcg/mL entry).
NOREPINEPHRINE_PERIPHERAL = DrugEntry.model_validate(NOREPINEPHRINE.model_dump() | {
    "conc_mcg_ml": 16.0, "soft_max": 15.0, "hard_max": 20.0})


def _default_drugs() -> dict[str, DrugEntry]:
    return {"norepinephrine": NOREPINEPHRINE,
            "norepinephrine-weight": NOREPINEPHRINE_WEIGHT_BASED,
            "norepinephrine-peripheral": NOREPINEPHRINE_PERIPHERAL}


class DrugLibrary(Model):
    care_area: Annotated[str, NoBound("a label the journal carries")] = Field(
        default="icu-post-cardiac-arrest", description="care area these limits are for")
    drugs: Annotated[dict[str, DrugEntry], NoBound("each entry carries its own bounds")] = Field(
        default_factory=_default_drugs, min_length=1,
        description="entries by the name a profile's drug key uses")


class SyringeSpec(Model):
    """A syringe model. Compliance in µL per mmHg of line pressure (syringe plus line)."""

    name: Annotated[str, NoBound("a label; a profile names the catalogue key")] = Field(
        description="syringe model")
    volume_ml: Annotated[float, _bounded(0.5, 60, "mL", "the syringe pumps vasopilot drives "
                                         "take 0.5–60 mL syringes")] = Field(
        description="nominal volume, mL")
    inner_diameter_mm: Annotated[float, _bounded(1, 40, "mm", "syringes of 0.5–60 mL have "
                                                 "bores of about 3–30 mm")] = Field(
        description="barrel inner diameter from the maker's data sheet, mm")
    compliance_ul_per_mmhg: Annotated[float, _bounded(
        0, 5, "µL/mmHg", "plastic syringes and lines store about 0.2–2 µL per mmHg")] = Field(
        description="compliance of syringe plus line, µL per mmHg")

    @model_validator(mode="after")
    def _barrel_length_is_physical(self) -> Self:
        length_mm = self.volume_ml * 1000.0 / (math.pi * self.inner_diameter_mm ** 2 / 4.0)
        if not 20.0 <= length_mm <= 150.0:
            raise refuse("inner_diameter_mm", f"with volume_ml = {self.volume_ml:g} the barrel "
                         f"would be {length_mm:.0f} mm long (syringes are 20–150 mm): a "
                         "radius for a diameter, or µL for mL?")
        return self


def _default_syringes() -> dict[str, SyringeSpec]:
    specs = [
        SyringeSpec(name="bd-plastipak-50", volume_ml=50, inner_diameter_mm=26.7,
                    compliance_ul_per_mmhg=1.0),
        SyringeSpec(name="bd-plastipak-20", volume_ml=20, inner_diameter_mm=19.1,
                    compliance_ul_per_mmhg=0.5),
        SyringeSpec(name="bd-plastipak-10", volume_ml=10, inner_diameter_mm=14.5,
                    compliance_ul_per_mmhg=0.3),
        SyringeSpec(name="bd-plastipak-5", volume_ml=5, inner_diameter_mm=12.0,
                    compliance_ul_per_mmhg=0.2),
        SyringeSpec(name="terumo-50", volume_ml=50, inner_diameter_mm=29.1,
                    compliance_ul_per_mmhg=1.2),
    ]
    return {s.name: s for s in specs}


class SyringeCatalogue(Model):
    syringes: Annotated[dict[str, SyringeSpec], NoBound("each spec carries its own bounds")] = \
        Field(default_factory=_default_syringes, min_length=1,
              description="syringe models by the name a profile's pump.syringe uses")


# S6: the operator sets a floor F; the set-point is F + 5 and the lower limit F - 5.
DEFAULT_FLOOR_MMHG = 65.0
SET_POINT_ABOVE_FLOOR_MMHG = 5.0
LOWER_LIMIT_BELOW_FLOOR_MMHG = 5.0


class PatientSettings(Model):
    """Weight in kg (30–250, needed for mcg/kg/min; no default); the MAP floor in mmHg (S6).

    The operator sets the floor F; the set-point is F + 5 and the lower limit F − 5 (S6). A
    profile written with the older ``target_map_mmhg`` is read as its set-point (F = it − 5):
    :attr:`read_from_target` says so, and loading the profile tells the operator.
    """

    weight_kg: Annotated[float | None, _bounded(
        30, 250, "kg", "S1's weight range for weight-based dosing")] = Field(
        default=None, description="patient's weight, kg; required by mcg/kg/min entries, never "
                                  "assumed")
    floor_mmhg: Annotated[float, _bounded(60, 85, "mmHg", "S6's floor range")] = Field(
        default=DEFAULT_FLOOR_MMHG, description="MAP floor F, mmHg (S6): the set-point is "
                                                "F + 5, the lower limit F - 5")
    target_map_mmhg: Annotated[float | None, _bounded(
        60 + SET_POINT_ABOVE_FLOOR_MMHG, 85 + SET_POINT_ABOVE_FLOOR_MMHG, "mmHg",
        "the set-point of S6's floor range")] = Field(
        default=None, description="the older key: read as the set-point, so the floor is 5 "
                                  "mmHg below it (said when the profile is loaded); set "
                                  "floor_mmhg instead")
    line: Literal["central", "peripheral"] = Field(
        default="central", description="the line the drug runs in: central, or peripheral "
                                       "(the drug entry must allow it)")
    usual_sbp_mmhg: Annotated[float | None, _bounded(
        70, 250, "mmHg", "a person's usual systolic pressure")] = Field(
        default=None, description="the patient's usual systolic pressure, mmHg (a previously "
                                  "hypertensive patient): SBP alarms under max(90, usual - 40)")
    floor_below_usual_confirmed: bool = Field(
        default=False, description="a clinician confirms a MAP floor more than 40 mmHg (in "
                                   "systolic terms) below the usual SBP")

    @model_validator(mode="before")
    @classmethod
    def _older_target_is_the_set_point(cls, data: Any) -> Any:
        """``target_map_mmhg`` alone gives the floor (it − 5); given with the floor, the two
        must agree (checked once both are validated). The older ``lower_limit_mmhg`` is
        refused: S6 puts the lower limit at F − 5."""
        if isinstance(data, dict) and "lower_limit_mmhg" in data:
            raise refuse("lower_limit_mmhg", "S6 puts the lower limit at floor_mmhg - 5: leave "
                         "the older key out")
        if isinstance(data, dict) and "floor_mmhg" not in data:
            target = data.get("target_map_mmhg")
            if isinstance(target, int | float) and not isinstance(target, bool):
                return {**data, "floor_mmhg": target - SET_POINT_ABOVE_FLOOR_MMHG}
        return data

    @model_validator(mode="after")
    def _older_target_agrees(self) -> Self:
        target = self.target_map_mmhg
        if target is not None and target != self.setpoint_mmhg:
            raise refuse("target_map_mmhg", f"the older key is the set-point, floor_mmhg + 5 "
                         f"= {self.setpoint_mmhg:g}: leave it out and set the floor alone")
        return self

    @property
    def setpoint_mmhg(self) -> float:
        """S6: the set-point, F + 5 (what a controller aims at)."""
        return self.floor_mmhg + SET_POINT_ABOVE_FLOOR_MMHG

    @property
    def lower_limit_mmhg(self) -> float:
        """S6: the lower limit, F − 5 (never weaned or titrated down below it)."""
        return self.floor_mmhg - LOWER_LIMIT_BELOW_FLOOR_MMHG

    @property
    def read_from_target(self) -> bool:
        """The profile set the older ``target_map_mmhg`` (read as the set-point)."""
        return self.target_map_mmhg is not None

    def with_floor(self, floor_mmhg: float) -> PatientSettings:
        """The same patient with a new floor (an operator's, or one restored on resume)."""
        return self.model_copy(update={"floor_mmhg": floor_mmhg, "target_map_mmhg": None})

    @model_validator(mode="after")
    def _floor_near_the_usual_pressure(self) -> Self:
        reason = floor_below_usual(self.floor_mmhg, self.usual_sbp_mmhg)
        if reason is not None and not self.floor_below_usual_confirmed:
            raise refuse("floor_mmhg", f"{reason}: raise it, or confirm it with "
                         "floor_below_usual_confirmed = true")
        return self

    def sbp_alarm_mmhg(self, sbp_low_mmhg: float) -> float:
        """The trusted SBP under which an alarm comes, mmHg: ``sbp_low_mmhg`` (the older
        SBP > 90 rule), or the usual SBP - 40 when that is higher."""
        if self.usual_sbp_mmhg is None:
            return sbp_low_mmhg
        return max(sbp_low_mmhg, self.usual_sbp_mmhg - USUAL_SBP_MARGIN_MMHG)


# A previously hypertensive patient's pressure is kept no more than 40 mmHg below the usual SBP.
USUAL_SBP_MARGIN_MMHG = 40.0
# The floor is a MAP, the usual pressure an SBP: SBP ≈ MAP + 2/3 of the pulse pressure, about
# +30 mmHg at a typical ICU pulse pressure of 45 mmHg, so the floor is compared in systolic terms.
SBP_ABOVE_MAP_MMHG = 30.0


def floor_below_usual(floor_mmhg: float, usual_sbp_mmhg: float | None) -> str | None:
    """Why a MAP floor (mmHg) is too far below the usual SBP to set unconfirmed, or None."""
    if usual_sbp_mmhg is None:
        return None
    lowest = usual_sbp_mmhg - USUAL_SBP_MARGIN_MMHG - SBP_ABOVE_MAP_MMHG
    if floor_mmhg >= lowest:
        return None
    return (f"a MAP floor of {floor_mmhg:g} mmHg (systolic about "
            f"{floor_mmhg + SBP_ABOVE_MAP_MMHG:g}) is more than {USUAL_SBP_MARGIN_MMHG:g} mmHg "
            f"below the usual SBP of {usual_sbp_mmhg:g} mmHg (lowest floor without a "
            f"confirmation: {lowest:g})")


class MechanicsSettings(Model):
    """Lead-screw drive: lead in mm per revolution, full steps per revolution, microstepping."""

    lead_mm: Annotated[float, _bounded(0, 10, "mm", "syringe-pump lead screws advance "
                                       "0.5–8 mm per turn", lo_open=True)] = Field(
        default=0.8, description="lead screw advance per revolution, mm")
    steps_per_rev: Annotated[int, _bounded(20, 1000, "", "hybrid steppers have 200 or 400 "
                                           "full steps; fewer cannot meet S4's ±1 %")] = Field(
        default=200, description="motor full steps per revolution")
    microsteps: Annotated[int, _bounded(1, 256, "", "A4988 ≤ 16, DRV8825 ≤ 32, "
                                        "TMC2209 ≤ 256")] = Field(
        default=16, description="microsteps per full step (a power of two)")
    slack_ul: Annotated[float, _bounded(0, 100, "µL", "more backlash than 100 µL is a "
                                        "broken drive")] = Field(
        default=2.0, description="drive backlash taken up before flow starts, µL")

    @model_validator(mode="after")
    def _microsteps_power_of_two(self) -> Self:
        if self.microsteps & (self.microsteps - 1):
            raise refuse("microsteps", f"{self.microsteps} is not a power of two: step "
                         "drivers microstep by 1, 2, 4 … 256")
        return self


_BCM = "BCM numbers of the Pi's 40-pin header"
_PIN_OR_NAME = "a BCM number 0–27 or a gpiozero pin name; the pins must all differ"


def _pin_bound(value: int | str) -> int | str:
    if isinstance(value, int):
        return Bound(0, 27, "", _BCM)(value)  # type: ignore[no-any-return]
    if not value.strip():
        raise refuse(None, "a pin name may not be empty")
    return value


PinSetting = Annotated[int | str, AfterValidator(_pin_bound)]


class GpioSettings(Model):
    """Stepper wiring (BCM pin numbers or gpiozero pin names) and driver-chip conventions."""

    step_pin: Annotated[PinSetting, NoBound(_PIN_OR_NAME)] = Field(
        default=17, description="STEP input of the driver chip")
    dir_pin: Annotated[PinSetting, NoBound(_PIN_OR_NAME)] = Field(
        default=27, description="DIR input of the driver chip")
    enable_pin: Annotated[PinSetting, NoBound(_PIN_OR_NAME)] = Field(
        default=22, description="ENABLE input (pull it to disabled in hardware)")
    ms_pins: Annotated[tuple[PinSetting, ...], NoBound(_PIN_OR_NAME)] = Field(
        default=(), strict=False, max_length=3,
        description="microstep-select pins MS1..MS3 (empty: strapped in hardware)")
    end_of_travel_pin: Annotated[PinSetting | None, NoBound(_PIN_OR_NAME)] = Field(
        default=None, description="end-of-travel switch input")
    plunger_pin: Annotated[PinSetting | None, NoBound(_PIN_OR_NAME)] = Field(
        default=None, description="plunger-present switch input")
    stall_pin: Annotated[PinSetting | None, NoBound(_PIN_OR_NAME)] = Field(
        default=None, description="stall (DIAG) output of a TMC2209")
    driver_chip: Literal["a4988", "drv8825", "tmc2209"] = Field(
        default="a4988", description="step driver chip")
    enable_active_low: bool = Field(default=True, description="ENABLE is active low")
    infuse_dir_high: bool = Field(default=True, description="DIR high pushes the plunger")
    pin_factory: Literal["auto", "lgpio", "rpigpio", "mock"] = Field(
        default="auto", description="gpiozero pin factory (Pi 5: lgpio)")

    @model_validator(mode="after")
    def _pins_differ(self) -> Self:
        seen: dict[int | str, str] = {}
        named = [("step_pin", self.step_pin), ("dir_pin", self.dir_pin),
                 ("enable_pin", self.enable_pin),
                 *(("ms_pins", pin) for pin in self.ms_pins),
                 ("end_of_travel_pin", self.end_of_travel_pin),
                 ("plunger_pin", self.plunger_pin), ("stall_pin", self.stall_pin)]
        for key, pin in named:
            if pin is None:
                continue
            if pin in seen:
                raise refuse(key, f"pin {pin!r} is already {seen[pin]}: one wire, one job")
            seen[pin] = key
        return self


# Baud rates each serial pump accepts (docs/pumps.md); the bridge's USB-CDC link takes any.
PUMP_BAUDS: dict[str, tuple[int, ...]] = {
    "new-era": (300, 1200, 2400, 9600, 19200),
    "harvard": (9600, 19200, 38400, 57600, 115200),
    "bridge": (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600),
}
SERIAL_DRIVERS = tuple(PUMP_BAUDS)


class BridgeSettings(Model):
    """The firmware bridge's host-loss policy (S12) and its link's retransmission."""

    host_loss_timeout_s: Annotated[float, _bounded(1, 60, "s", "the host talks every tick "
                                                   "(0.2 s in vasopilot run): under 1 s one "
                                                   "late tick latches the alarm, over a minute "
                                                   "an unwatched pump goes unalarmed")] = Field(
        default=2.0, description="host silence after which the Pico latches its alarm (S12)")
    host_loss: Literal["keep-rate", "stop"] = Field(
        default="keep-rate", description="what the Pico does on host loss: keep-rate (a "
        "vasopressor), stop (bench tests of the NE-1000's safe-mode behaviour)")
    unattended_cap_ml: Annotated[float | None, _bounded(0, 100, "mL", "no syringe holds more "
                                                        "than 100 mL; None: what the syringe "
                                                        "holds", lo_open=True)] = Field(
        default=None, description="the Pico stops after this much delivered unattended")
    reply_timeout_s: Annotated[float, _bounded(0.01, 1.0, "s", "USB-CDC answers within a "
                                               "millisecond; a second per attempt would hold "
                                               "the loop")] = Field(
        default=0.05, description="wait for a reply before the first retransmission")
    max_attempts: Annotated[int, _bounded(1, 10, "", "sends of one request before it counts "
                                          "as uncertain (the timeout doubles up to 8×)")] = Field(
        default=5, description="sends of one request before its delivery is uncertain")


class PumpSettings(Model):
    driver: Literal["sim", "new-era", "harvard", "gpio-stepper", "bridge"] = Field(
        default="sim", description="pump driver: sim, new-era, harvard, gpio-stepper, bridge")
    port: Annotated[str | None, NoBound("a pyserial URL or device path: its scheme and, with "
                                        "vasopilot check, the device are checked when the "
                                        "profile is resolved")] = Field(
        default=None, description="serial port: a device, a pty, socket://host:port, rfc2217://")
    address: Annotated[int, _bounded(0, 99, "", "pump addresses on a shared RS-232 line are "
                                     "0–99 (NE-1000 and Pump 11 Elite manuals)")] = Field(
        default=0, description="pump address on the line")
    baud: Annotated[int, NoBound("one of the rates the driver's pump accepts, PUMP_BAUDS")] = \
        Field(default=19200, description="serial baud rate (NE-1000: 300-19200, factory 19200; "
                                         "Pump 11 Elite: 9600-115200)")
    syringe: Annotated[str, NoBound("must name a syringe of the catalogue (checked when the "
                                    "profile is resolved)")] = Field(
        default="bd-plastipak-50", description="syringe model, a key of the syringe catalogue")
    mechanics: MechanicsSettings = Field(default_factory=MechanicsSettings,
                                         description="lead-screw drive (gpio-stepper, sim)")
    safe_mode_timeout_s: Annotated[int, _bounded(0, 255, "s", "NE-1000 SAF 1–255 s; 0 is "
                                                 "basic mode")] = Field(
        default=10, description="NE-1000 safe mode: the pump stops and alarms after this "
                                "many seconds of host silence (S12); 0 = basic mode")
    gpio: GpioSettings = Field(default_factory=GpioSettings,
                               description="stepper wiring (gpio-stepper)")
    bridge: BridgeSettings = Field(default_factory=BridgeSettings,
                                   description="the firmware bridge's host-loss policy (bridge)")

    @model_validator(mode="after")
    def _hardware_needs_a_port(self) -> Self:
        if self.driver in SERIAL_DRIVERS and not self.port:
            raise refuse("port", f"pump driver {self.driver!r} needs a port (a serial URL)")
        return self

    @model_validator(mode="after")
    def _baud_fits_the_pump(self) -> Self:
        bauds = PUMP_BAUDS.get(self.driver)
        if bauds is not None and self.baud not in bauds:
            raise refuse("baud", f"{self.baud} is not a rate the {self.driver} pump speaks "
                         f"(one of {', '.join(map(str, bauds))})")
        return self

    @model_validator(mode="after")
    def _safe_mode_outlasts_a_late_tick(self) -> Self:
        if 0 < self.safe_mode_timeout_s < 4:
            raise refuse("safe_mode_timeout_s", "must be 0 (basic mode) or 4–255 s: the "
                         "heartbeat goes every timeout/2, and one late tick of a shorter "
                         "timeout would stop the vasopressor")
        return self


# The ADS1115's programmable-gain full-scale ranges, V (datasheet table 3).
ADS1115_FULL_SCALES_V = (0.256, 0.512, 1.024, 2.048, 4.096, 6.144)
# An arterial-line transducer must read at least this far without clipping, mmHg.
PRESSURE_SPAN_MMHG = 300.0


class PressureSettings(Model):
    source: Literal["sim", "ads1115", "replay"] = Field(
        default="sim", description="pressure source: sim (virtual patient), ads1115 "
                                   "(transducer on I2C), replay (a WFDB record); no "
                                   "transducer yet: sim or replay (docs/pressure.md)")
    mode: Literal["beat", "waveform"] = Field(
        default="beat", description="sim source: beats, or a waveform through the detector")
    fs_hz: Annotated[float, _bounded(50, 1000, "samples/s", "the beat detector needs ≥ 50 "
                                     "samples/s to time an upstroke at 200 bpm")] = Field(
        default=125.0, description="sample rate, samples/s (ADS1115: 250 or 475)")
    record: Annotated[str | None, NoBound("a WFDB record path, relative to the profile; its "
                                          ".hea must exist (checked when resolved)")] = Field(
        default=None, description="replay source: WFDB record path without extension")
    channel: Annotated[str, NoBound("a signal name of the record, read when it opens")] = Field(
        default="ABP", description="replay source: signal name in the record")
    i2c_bus: Annotated[int, _bounded(0, 255, "", "Linux numbers I2C buses /dev/i2c-0…")] = Field(
        default=1, description="ADS1115: I2C bus number (the Pi's header is bus 1)")
    i2c_address: Annotated[int, _bounded(0x48, 0x4B, "", "the ADS1115's ADDR pin selects "
                                         "0x48–0x4B")] = Field(
        default=0x48, description="ADS1115: I2C address")
    adc_full_scale_v: Annotated[float, NoBound("one of the ADS1115 PGA ranges, "
                                               "0.256–6.144 V")] = Field(
        default=1.024, description="ADS1115: PGA full-scale range, V")
    sensitivity_uv_per_v_mmhg: Annotated[float, _bounded(
        0, 50, "µV/V/mmHg", "disposable transducers are 5 µV/V/mmHg (AAMI BP22)",
        lo_open=True)] = Field(default=5.0, description="transducer sensitivity, µV/V/mmHg")
    excitation_v: Annotated[float, _bounded(0, 10, "V", "transducers are rated for ≤ 10 V "
                                            "excitation", lo_open=True)] = Field(
        default=5.0, description="transducer excitation, V")
    amplifier_gain: Annotated[float, _bounded(0, 10_000, "", "instrumentation amplifiers give "
                                              "1–10000", lo_open=True)] = Field(
        default=100.0, description="bridge amplifier gain, V/V")

    @model_validator(mode="after")
    def _source_fits(self) -> Self:
        if self.source == "replay" and not self.record:
            raise refuse("record", "a replay pressure source needs a record (a WFDB path, "
                         "no extension)")
        if self.source == "ads1115" and self.fs_hz not in (250.0, 475.0):
            raise refuse("fs_hz", "the ADS1115 runs at fs_hz = 250 or 475 samples/s")
        return self

    @model_validator(mode="after")
    def _transducer_chain_reads_arterial_pressure(self) -> Self:
        if self.adc_full_scale_v not in ADS1115_FULL_SCALES_V:
            raise refuse("adc_full_scale_v", "must be one of the ADS1115 ranges "
                         f"{', '.join(f'{v:g}' for v in ADS1115_FULL_SCALES_V)} V")
        v_per_mmhg = (self.sensitivity_uv_per_v_mmhg * 1e-6 * self.excitation_v
                      * self.amplifier_gain)
        span_mmhg = self.adc_full_scale_v / v_per_mmhg
        if span_mmhg < PRESSURE_SPAN_MMHG:
            raise refuse("amplifier_gain", f"the ADC would clip at {span_mmhg:.0f} mmHg "
                         f"(needs ≥ {PRESSURE_SPAN_MMHG:g}): lower the gain or raise "
                         "adc_full_scale_v")
        lsb_mmhg = self.adc_full_scale_v / 32768 / v_per_mmhg
        if lsb_mmhg > 1.0:
            raise refuse("amplifier_gain", f"one ADC step would be {lsb_mmhg:.1f} mmHg "
                         "(needs ≤ 1): raise the gain or lower adc_full_scale_v")
        return self


OcclusionLevel = Literal["low", "medium", "high"]


def _default_thresholds() -> dict[OcclusionLevel, float]:
    return {"low": 300.0, "medium": 500.0, "high": 750.0}


class SafetySettings(Model):
    """Supervisor settings (S5, S8, S10, S11): seconds, mmHg, minutes."""

    stale_after_s: Annotated[float, _bounded(
        2, 60, "s", "S5 holds at 10 s; under 2 s one missed beat at 40 bpm is 'stale'")] = Field(
        default=10.0, description="no trusted MAP this long: hold and a medium alarm (S5)")
    stale_high_after_s: Annotated[float, _bounded(
        2, 600, "s", "S5 escalates at 60 s; must exceed stale_after_s")] = Field(
        default=60.0, description="no trusted MAP this long: a high alarm (S5)")
    occlusion_level: OcclusionLevel = Field(
        default="low", description="selected occlusion threshold (S8)")
    occlusion_thresholds_mmhg: Annotated[
        dict[OcclusionLevel, Annotated[float, _bounded(
            100, 1000, "mmHg", "S8: below 100 mmHg a cough (+80 mmHg) would stop the "
            "vasopressor; syringe pumps allow about 1000 mmHg at most")]],
        NoBound("each threshold is bounded; they must rise low < medium < high")] = Field(
        default_factory=_default_thresholds,
        description="line-pressure occlusion thresholds by level, mmHg (S8)")
    near_empty_min: Annotated[float, _bounded(
        1, 120, "min", "S10's default is 15 min; beyond 2 h most of a syringe alarms")] = Field(
        default=15.0, description="medium alarm when this many minutes of infusion are left")
    silence_max_s: Annotated[float, _bounded(
        0, 120, "s", "S11: an alarm is silenced for at most 2 minutes", lo_open=True)] = Field(
        default=120.0, description="longest alarm silence, s (S11)")
    map_high_margin_mmhg: Annotated[float, _bounded(
        0, 40, "mmHg", "S6 never increases a dose 15 mmHg above the floor")] = Field(
        default=10.0, description="trusted MAP this much above the set-point (F + 5) or "
                                  "more: no increase (S6), mmHg")
    tachycardia_bpm: Annotated[float, _bounded(
        100, 200, "bpm", "norepinephrine's tachycardia; the beat detector reads up to 200")] = \
        Field(default=130.0, description="trusted heart rate above this for "
                                         "heart_rate_sustain_s: a medium alarm, and no "
                                         "up-titration above the soft max until acknowledged")
    bradycardia_bpm: Annotated[float, _bounded(
        25, 60, "bpm", "a reflex bradycardia; the beat detector reads down to 20")] = Field(
        default=40.0, description="trusted heart rate below this for heart_rate_sustain_s: a "
                                  "medium alarm")
    heart_rate_sustain_s: Annotated[float, _bounded(
        10, 600, "s", "sustained, not a run of ectopic beats (default 60 s)")] = Field(
        default=60.0, description="how long the heart rate (10 s median) must stay beyond a "
                                  "limit, s")
    rhythm_irregularity: Annotated[float, _bounded(
        0.02, 0.5, "", "median successive beat-interval change over the median interval: "
        "sinus rhythm stays under about 0.05, atrial fibrillation well over 0.1")] = Field(
        default=0.1, description="beat-interval irregularity over a minute above which a low "
                                 "advisory asks for the ECG")
    sbp_low_mmhg: Annotated[float, _bounded(
        70, 120, "mmHg", "the older guideline keeps SBP > 90")] = Field(
        default=90.0, description="trusted SBP (10 s median) below this for sbp_sustain_s: a "
                                  "medium alarm (usual SBP - 40 when that is higher)")
    sbp_sustain_s: Annotated[float, _bounded(
        10, 600, "s", "sustained, not a respiratory dip (default 60 s)")] = Field(
        default=60.0, description="how long SBP must stay low, s")
    cannula_check_min: Annotated[float, _bounded(
        15, 240, "min", "peripheral vasopressor protocols inspect the site every 1–2 h")] = \
        Field(default=60.0, description="on a peripheral line, a low prompt to inspect the "
                                        "cannula site this often, min")
    high_dose_window_h: Annotated[float, _bounded(
        1, 24, "h", "ischaemia follows hours of vasoconstriction (default 6 h)")] = Field(
        default=6.0, description="window over which time above the soft max is added up, h")
    high_dose_limit_h: Annotated[float, _bounded(
        0.25, 24, "h", "at most the window")] = Field(
        default=2.0, description="time above the soft max within high_dose_window_h beyond "
                                 "which a low advisory asks to check the extremities, h")

    @model_validator(mode="after")
    def _escalation_comes_later(self) -> Self:
        if self.stale_high_after_s <= self.stale_after_s:
            raise refuse("stale_high_after_s", f"must be greater than stale_after_s "
                         f"({self.stale_after_s:g}): S5 escalates a stale MAP from medium "
                         "to high, not the other way")
        return self

    @model_validator(mode="after")
    def _high_dose_limit_fits_its_window(self) -> Self:
        if self.high_dose_limit_h > self.high_dose_window_h:
            raise refuse("high_dose_limit_h", f"must not exceed high_dose_window_h "
                         f"({self.high_dose_window_h:g}): the time is counted within it")
        return self

    @model_validator(mode="after")
    def _thresholds_hold_the_level_in_order(self) -> Self:
        table = self.occlusion_thresholds_mmhg
        if self.occlusion_level not in table:
            raise refuse("occlusion_level", f"{self.occlusion_level!r} is not in "
                         f"occlusion_thresholds_mmhg (has {', '.join(table) or 'nothing'})")
        levels = [level for level in ("low", "medium", "high") if level in table]
        for below, above in itertools.pairwise(levels):
            if table[below] >= table[above]:
                raise refuse(f"occlusion_thresholds_mmhg.{below}",
                             f"{below} ({table[below]:g}) must be below {above} "
                             f"({table[above]:g}): levels rise low < medium < high")
        return self


_FILE = "a path relative to the profile; it must exist (checked when the profile is resolved)"


class MqttSettings(Model):
    enabled: bool = Field(default=False, description="publish telemetry to a broker")
    host: Annotated[str, _matches(r"\S{1,253}", "a host name or address")] = Field(
        default="127.0.0.1", description="broker host")
    port: Annotated[int, _bounded(1, 65535, "", "a TCP port")] = Field(
        default=1883, description="broker port (8883 for TLS)")
    rig_id: Annotated[str | None, _matches(_TOPIC_SAFE, _TOPIC_WHY)] = Field(
        default=None, description="rig id in the topics (default: the profile's rig_id)")
    client_id: Annotated[str | None, _matches(_TOPIC_SAFE, _TOPIC_WHY)] = Field(
        default=None, description="MQTT client id (default: vasopilot-<rig_id>)")
    username: Annotated[str | None, NoBound("the broker judges credentials")] = Field(
        default=None, description="broker user")
    password: Annotated[str | None, NoBound("the broker judges credentials")] = Field(
        default=None, description="broker password (prefer password_file)")
    password_file: Annotated[str | None, NoBound(_FILE)] = Field(
        default=None, description="file the broker password is read from (mode 0600/0640), "
                                  "so it never sits in a command line")
    tls: bool = Field(default=False, description="speak TLS (needed for remote commands)")
    ca_file: Annotated[str | None, NoBound(_FILE)] = Field(
        default=None, description="CA certificate file (default: the system's CAs)")
    cert_file: Annotated[str | None, NoBound(_FILE)] = Field(
        default=None, description="client certificate file")
    key_file: Annotated[str | None, NoBound(_FILE)] = Field(
        default=None, description="client key file (needs cert_file)")
    insecure: bool = Field(default=False, description="allow plain TCP (no TLS)")
    remote_commands: bool = Field(default=False,
                                  description="accept remote commands (S15; needs TLS)")
    command_rate_per_s: Annotated[float, _bounded(
        0, 50, "commands/s", "S15: a person types a few commands a minute; the excess is refused",
        lo_open=True)] = Field(default=5.0, description="commands per second per sender")
    state_interval_s: Annotated[float, _bounded(0.1, 60, "s", "a state more often than "
                                                "10/s floods the broker; rarer than a minute "
                                                "is not monitoring")] = Field(
        default=1.0, description="shortest time between two state messages, s")
    publish_beats: bool = Field(default=False, description="publish every beat")
    home_assistant: bool = Field(default=False, description="Home Assistant MQTT discovery of "
                                 "read-only sensors (dose, rate, MAP, active alarms)")

    @model_validator(mode="after")
    def _plain_tcp_is_explicit(self) -> Self:
        if self.enabled and not self.tls and not self.insecure:
            raise refuse("insecure", "MQTT without TLS (enabled = true, tls = false) needs an "
                         "explicit insecure = true")
        if self.remote_commands and not self.tls:
            raise refuse("remote_commands", "remote commands need TLS (S15)")
        if self.key_file and not self.cert_file:
            raise refuse("key_file", "a client key needs its certificate (cert_file)")
        return self


# Baud rates an MT-SICS balance menu offers.
BALANCE_BAUDS = (600, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)


class BalanceEmulatorSettings(Model):
    """The emulated balance of a simulated rig (`vasopilot emulate balance`, config/sim.toml)."""

    readability_mg: Annotated[float, _bounded(
        0.001, 1.0, "mg", "bench balances read 0.001–1 mg; 1 mL/h is 8.3 mg per 30 s")] = Field(
        default=0.01, description="smallest weight step the balance shows, mg")
    noise_mg: Annotated[float, _bounded(
        0, 10, "mg", "beyond 10 mg one 30-s sample at 1 mL/h is all noise")] = Field(
        default=0.02, description="weighing noise (one standard deviation), mg")
    evaporation_mg_min: Annotated[float, _bounded(
        0, 10, "mg/min", "an open beaker loses well under 10 mg/min")] = Field(
        default=0.02, description="water lost from the beaker, mg/min")
    settling_s: Annotated[float, _bounded(
        0, 30, "s", "a weighing cell settles in seconds; 30 s is one whole sample interval")] = \
        Field(default=1.5, description="settling time constant of the weighing cell, s")
    beaker_g: Annotated[float, _bounded(
        0, 1000, "g", "a beaker on an analytical balance")] = Field(
        default=60.0, description="beaker (tare) mass, g; must be below capacity_g")
    capacity_g: Annotated[float, _bounded(
        0, 10_000, "g", "analytical and precision balances", lo_open=True)] = Field(
        default=220.0, description="balance capacity, g (above it: overload)")
    seed: Annotated[int, _bounded(0, None, "", "a random seed")] = Field(
        default=1, description="noise seed")

    @model_validator(mode="after")
    def _beaker_fits(self) -> Self:
        if self.beaker_g >= self.capacity_g:
            raise refuse("beaker_g", f"must be below capacity_g ({self.capacity_g:g} g)")
        return self


class BalanceSettings(Model):
    """A gravimetric bench balance speaking MT-SICS, or its emulator.

    The serial settings must match the balance's menu (MT-SICS default 9600 8N1, no handshake).
    """

    driver: Annotated[Literal["mt-sics", "emulated"], NoBound("one of two names")] = Field(
        default="mt-sics", description="balance driver: mt-sics (a real balance) or emulated")
    port: Annotated[str | None, NoBound("a pyserial URL or device path, needed by mt-sics")] = \
        Field(default=None, description="serial port of the balance")
    baud: Annotated[int, NoBound("one of BALANCE_BAUDS, the rates MT-SICS balances offer")] = \
        Field(default=9600, description="serial baud rate (MT-SICS default 9600)")
    bytesize: Annotated[Literal[7, 8], NoBound("7 or 8")] = Field(
        default=8, description="data bits")
    parity: Annotated[Literal["N", "E", "O"], NoBound("N, E or O")] = Field(
        default="N", description="parity")
    stopbits: Annotated[Literal[1, 2], NoBound("1 or 2")] = Field(
        default=1, description="stop bits")
    handshake: Annotated[Literal["none", "xonxoff", "rtscts"], NoBound("one of three")] = Field(
        default="none", description="flow control")
    timeout_s: Annotated[float, _bounded(
        0, 30, "s", "one MT-SICS reply; longer than a 30-s sample interval is useless",
        lo_open=True)] = Field(default=2.0, description="longest wait for one reply, s")
    density_g_ml: Annotated[float, _bounded(
        0.5, 2.0, "g/mL", "aqueous test fluids; water at 20 °C is 0.998")] = Field(
        default=0.998, description="density of the test fluid, g/mL")
    emulator: BalanceEmulatorSettings = Field(
        default_factory=BalanceEmulatorSettings, description="the emulated balance")

    @model_validator(mode="after")
    def _port_and_baud(self) -> Self:
        if self.driver == "mt-sics" and not self.port:
            raise refuse("port", "an MT-SICS balance needs a port (a serial URL)")
        if self.baud not in BALANCE_BAUDS:
            raise refuse("baud", f"{self.baud} is not a rate an MT-SICS balance offers "
                         f"({', '.join(map(str, BALANCE_BAUDS))})")
        return self


class RigProfile(Model):
    """Everything one rig needs. Paths are relative to the profile file's folder."""

    rig_id: Annotated[str, _matches(_TOPIC_SAFE, _TOPIC_WHY)] = Field(
        default="sim-rig", description="this rig's name (MQTT topics, journal)")
    drug: Annotated[str, NoBound("must be a key of the drug library (checked when the "
                                 "profile is resolved)")] = Field(
        default="norepinephrine", description="drug-library entry to infuse")
    drug_library: Annotated[str | None, NoBound(_FILE)] = Field(
        default=None, description="drug library file (default: the embedded one)")
    syringe_catalogue: Annotated[str | None, NoBound(_FILE)] = Field(
        default=None, description="syringe catalogue file (default: the embedded one)")
    journal: Annotated[str, NoBound("a path relative to the profile; its folder must be "
                                    "creatable and writable (checked when resolved)")] = Field(
        default="vasopilot-journal.sqlite", description="the event journal (SQLite)")
    pump: PumpSettings = Field(default_factory=PumpSettings, description="the pump")
    pressure: PressureSettings = Field(default_factory=PressureSettings,
                                       description="the arterial pressure source")
    patient: PatientSettings = Field(default_factory=PatientSettings, description="the patient")
    safety: SafetySettings = Field(default_factory=SafetySettings,
                                   description="supervisor settings")
    mqtt: MqttSettings = Field(default_factory=MqttSettings, description="MQTT telemetry")
    balance: BalanceSettings | None = Field(
        default=None, description="the bench balance (a sim pump gets an emulated one)")

    @model_validator(mode="before")
    @classmethod
    def _simulated_pump_is_weighed_by_an_emulated_balance(cls, data: Any) -> Any:
        """Only an emulated balance can weigh a simulated pump's outflow, so a ``sim`` pump
        without a ``[balance]`` table gets one; a hardware rig has a balance only if it says."""
        if not isinstance(data, dict) or "balance" in data:
            return data
        pump = data.get("pump", {})
        driver = pump.get("driver", "sim") if isinstance(pump, dict) else \
            getattr(pump, "driver", "sim")
        return {**data, "balance": {"driver": "emulated"}} if driver == "sim" else data
