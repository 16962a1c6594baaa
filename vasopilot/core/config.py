"""Configuration models (pydantic v2): drug library, syringes, patient, pump, MQTT, rig profile.

They live in ``core`` because the supervisor needs the drug library and patient limits and may
import value types only. Loading files and reporting errors is :mod:`vasopilot.settings`.
Every default here is the embedded default that ``vasopilot sim`` runs with.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from vasopilot.core.units import DoseUnit, from_mcg_min, to_mcg_min


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DrugEntry(Model):
    """One drug-library entry (S1). Doses are in ``dose_unit``; intervals in seconds."""

    name: str
    conc_mcg_ml: float = Field(gt=0, le=10_000)
    dose_unit: DoseUnit = DoseUnit.MCG_MIN
    soft_min: float = Field(ge=0)
    soft_max: float = Field(gt=0)
    hard_max: float = Field(gt=0)
    start_min: float = Field(ge=0)
    start_max: float = Field(gt=0)
    max_up_step: float = Field(gt=0)
    min_up_interval_s: float = Field(ge=0)
    max_down_step: float = Field(gt=0)
    wean_step: float = Field(gt=0)
    wean_interval_s: float = Field(gt=0)

    @model_validator(mode="after")
    def _limits_are_ordered(self) -> Self:
        if not self.soft_min <= self.soft_max <= self.hard_max:
            raise ValueError(
                f"limits must satisfy soft_min <= soft_max <= hard_max "
                f"(got {self.soft_min}, {self.soft_max}, {self.hard_max})"
            )
        if not self.start_min <= self.start_max <= self.soft_max:
            raise ValueError(
                f"start range must satisfy start_min <= start_max <= soft_max "
                f"(got {self.start_min}, {self.start_max}, soft_max {self.soft_max})"
            )
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


class DrugLibrary(Model):
    care_area: str = "icu-post-cardiac-arrest"
    drugs: dict[str, DrugEntry] = Field(default_factory=lambda: {"norepinephrine": NOREPINEPHRINE})


class SyringeSpec(Model):
    """A syringe model. Compliance in µL per mmHg of line pressure (syringe plus line)."""

    name: str
    volume_ml: float = Field(gt=0, le=100)
    inner_diameter_mm: float = Field(gt=1, le=40)
    compliance_ul_per_mmhg: float = Field(ge=0, le=5)


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
    syringes: dict[str, SyringeSpec] = Field(default_factory=_default_syringes)


class PatientSettings(Model):
    """Weight in kg (30–250, needed for mcg/kg/min); MAP target and lower limit in mmHg."""

    weight_kg: float | None = Field(default=70.0, ge=30, le=250)
    target_map_mmhg: float = Field(default=65.0, ge=60, le=85)
    lower_limit_mmhg: float = Field(default=60.0, ge=40, le=80)

    @model_validator(mode="after")
    def _lower_limit_below_target(self) -> Self:
        if self.lower_limit_mmhg > self.target_map_mmhg:
            raise ValueError(
                f"lower_limit_mmhg ({self.lower_limit_mmhg}) must not exceed "
                f"target_map_mmhg ({self.target_map_mmhg})"
            )
        return self


class MechanicsSettings(Model):
    """Lead-screw drive: lead in mm per revolution, full steps per revolution, microstepping."""

    lead_mm: float = Field(default=0.8, gt=0, le=10)
    steps_per_rev: int = Field(default=200, gt=0)
    microsteps: int = Field(default=16, ge=1, le=256)
    slack_ul: float = Field(default=2.0, ge=0)


class GpioSettings(Model):
    """Stepper wiring (BCM pin numbers or gpiozero pin names) and driver-chip conventions."""

    step_pin: int | str = 17
    dir_pin: int | str = 27
    enable_pin: int | str = 22
    ms_pins: tuple[int | str, ...] = ()
    end_of_travel_pin: int | str | None = None
    plunger_pin: int | str | None = None
    stall_pin: int | str | None = None
    driver_chip: Literal["a4988", "drv8825", "tmc2209"] = "a4988"
    enable_active_low: bool = True
    infuse_dir_high: bool = True
    pin_factory: Literal["auto", "lgpio", "rpigpio", "mock"] = "auto"


class PumpSettings(Model):
    driver: Literal["sim", "new-era", "harvard", "gpio-stepper", "bridge"] = "sim"
    port: str | None = None
    address: int = Field(default=0, ge=0, le=99)
    baud: int = 19200
    syringe: str = "bd-plastipak-50"
    mechanics: MechanicsSettings = Field(default_factory=MechanicsSettings)
    safe_mode_timeout_s: int = Field(default=10, ge=0, le=255)
    gpio: GpioSettings = Field(default_factory=GpioSettings)

    @model_validator(mode="after")
    def _hardware_needs_a_port(self) -> Self:
        if self.driver in ("new-era", "harvard", "bridge") and not self.port:
            raise ValueError(f"pump driver {self.driver!r} needs a port (a serial URL)")
        return self


class PressureSettings(Model):
    source: Literal["sim", "ads1115", "replay"] = "sim"
    mode: Literal["beat", "waveform"] = "beat"
    fs_hz: float = Field(default=125.0, gt=0, le=1000)
    record: str | None = None
    channel: str = "ABP"
    i2c_bus: int = 1
    i2c_address: int = Field(default=0x48, ge=0x48, le=0x4B)
    adc_full_scale_v: float = 1.024
    sensitivity_uv_per_v_mmhg: float = Field(default=5.0, gt=0)
    excitation_v: float = Field(default=5.0, gt=0)
    amplifier_gain: float = Field(default=100.0, gt=0)

    @model_validator(mode="after")
    def _source_fits(self) -> Self:
        if self.source == "replay" and not self.record:
            raise ValueError("a replay pressure source needs a record (a WFDB path, no extension)")
        if self.source == "ads1115" and self.fs_hz not in (250.0, 475.0):
            raise ValueError("the ADS1115 runs at fs_hz = 250 or 475 samples/s")
        return self


class SafetySettings(Model):
    """Supervisor settings (S5, S8, S10, S11): seconds, mmHg, minutes."""

    stale_after_s: float = Field(default=10.0, gt=0, le=60)
    stale_high_after_s: float = Field(default=60.0, gt=0, le=600)
    occlusion_level: Literal["low", "medium", "high"] = "low"
    occlusion_thresholds_mmhg: dict[str, float] = Field(
        default_factory=lambda: {"low": 300.0, "medium": 500.0, "high": 750.0}
    )
    near_empty_min: float = Field(default=15.0, gt=0, le=120)
    silence_max_s: float = Field(default=120.0, gt=0, le=120)
    map_high_margin_mmhg: float = Field(default=10.0, ge=0, le=40)


class MqttSettings(Model):
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=1883, gt=0, lt=65536)
    # Topic levels and client ids: [a-z0-9-], at most 32 (no "/", "+" or "#"; CVE-2017-7650).
    rig_id: str | None = Field(default=None, pattern=r"^[a-z0-9-]{1,32}$")
    client_id: str | None = Field(default=None, pattern=r"^[a-z0-9-]{1,32}$")
    username: str | None = None
    password: str | None = None
    # Where the broker password is read from (a file of mode 0600/0640), so it never sits in a
    # command line; relative to the profile's folder.
    password_file: str | None = None
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False
    remote_commands: bool = False
    # Commands per second per sender; the excess is refused (S15). A person types a few a minute.
    command_rate_per_s: float = Field(default=5.0, gt=0, le=50)
    state_interval_s: float = Field(default=1.0, gt=0)
    publish_beats: bool = False
    # Home Assistant MQTT discovery of read-only sensors (dose, rate, MAP, active alarms).
    home_assistant: bool = False

    @model_validator(mode="after")
    def _plain_tcp_is_explicit(self) -> Self:
        if self.enabled and not self.tls and not self.insecure:
            raise ValueError("MQTT without TLS needs an explicit insecure = true")
        if self.remote_commands and not self.tls:
            raise ValueError("remote commands need TLS (S15)")
        return self


# Baud rates an MT-SICS balance menu offers.
BALANCE_BAUDS = (600, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)


class BalanceEmulatorSettings(Model):
    """The emulated balance of a simulated rig (``vasopilot emulate balance``, ``config/sim.toml``).

    Readability and noise (one standard deviation) in mg, evaporation from the beaker in mg per
    minute, settling time constant of the weighing cell in s, beaker (tare) and capacity in g.
    """

    readability_mg: float = Field(default=0.01, ge=0.001, le=1.0)
    noise_mg: float = Field(default=0.02, ge=0, le=10)
    evaporation_mg_min: float = Field(default=0.02, ge=0, le=10)
    settling_s: float = Field(default=1.5, ge=0, le=30)
    beaker_g: float = Field(default=60.0, ge=0, le=1000)
    capacity_g: float = Field(default=220.0, gt=0, le=10_000)
    seed: int = Field(default=1, ge=0)

    @model_validator(mode="after")
    def _beaker_fits(self) -> Self:
        if self.beaker_g >= self.capacity_g:
            raise ValueError(f"beaker_g ({self.beaker_g}) must be below capacity_g "
                             f"({self.capacity_g})")
        return self


class BalanceSettings(Model):
    """A gravimetric bench balance speaking MT-SICS, or its emulator.

    The serial settings must match the balance's menu (MT-SICS default 9600 8N1, no handshake);
    ``timeout_s`` is the longest wait for one reply; ``density_g_ml`` is the test fluid's
    (water at 20 °C: 0.998).
    """

    driver: Literal["mt-sics", "emulated"] = "mt-sics"
    port: str | None = None
    baud: int = 9600
    bytesize: Literal[7, 8] = 8
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    handshake: Literal["none", "xonxoff", "rtscts"] = "none"
    timeout_s: float = Field(default=2.0, gt=0, le=30)
    density_g_ml: float = Field(default=0.998, ge=0.5, le=2.0)
    emulator: BalanceEmulatorSettings = Field(default_factory=BalanceEmulatorSettings)

    @model_validator(mode="after")
    def _port_and_baud(self) -> Self:
        if self.driver == "mt-sics" and not self.port:
            raise ValueError("an MT-SICS balance needs a port (a serial URL)")
        if self.baud not in BALANCE_BAUDS:
            raise ValueError(f"baud {self.baud} is not one an MT-SICS balance offers "
                             f"({', '.join(map(str, BALANCE_BAUDS))})")
        return self


class RigProfile(Model):
    """Everything one rig needs. Paths are relative to the profile file's folder."""

    rig_id: str = "sim-rig"
    drug: str = "norepinephrine"
    drug_library: str | None = None
    syringe_catalogue: str | None = None
    journal: str = "vasopilot-journal.sqlite"
    pump: PumpSettings = Field(default_factory=PumpSettings)
    pressure: PressureSettings = Field(default_factory=PressureSettings)
    patient: PatientSettings = Field(default_factory=PatientSettings)
    safety: SafetySettings = Field(default_factory=SafetySettings)
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    balance: BalanceSettings | None = None

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
