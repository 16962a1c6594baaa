"""Home Assistant MQTT discovery: read-only sensors for one rig, zero configuration.

One retained device-discovery message (``homeassistant/device/<rig_id>/config``) declares
sensors that read the retained ``state`` topic: dose (mcg/min), rate (mL/h), MAP (mmHg) and the
number of active alarms. Availability follows the retained ``status`` topic (``offline`` is the
rig's last will), and each sensor expires when ``state`` stops arriving. Nothing is writable.
"""

from __future__ import annotations

import json
import math

from vasopilot.telemetry.payloads import OFFLINE, ONLINE, topic

DISCOVERY_PREFIX = "homeassistant"
# (key, name, unit, value template over the state payload)
SENSORS: tuple[tuple[str, str, str | None, str], ...] = (
    ("dose", "Dose", "mcg/min", "{{ value_json.dose_mcg_min }}"),
    ("rate", "Rate", "mL/h", "{{ value_json.rate_ml_h }}"),
    ("map", "MAP", "mmHg",
     "{{ value_json.vitals.map_mmhg if value_json.vitals is not none else none }}"),
    ("alarms", "Active alarms", None, "{{ value_json.alarms | length }}"),
)


def discovery(rig_id: str, state_interval_s: float) -> str:
    """The discovery payload; sensors go unknown after three missed ``state`` messages."""
    expire_after_s = max(5, math.ceil(3 * state_interval_s))
    components = {}
    for key, name, unit, template in SENSORS:
        component: dict[str, object] = {
            "p": "sensor", "name": name, "unique_id": f"vasopilot-{rig_id}-{key}",
            "state_topic": topic(rig_id, "state"), "value_template": template,
            "expire_after": expire_after_s, "state_class": "measurement",
        }
        if unit is not None:
            component["unit_of_measurement"] = unit
        components[key] = component
    return json.dumps({
        "dev": {"ids": [f"vasopilot-{rig_id}"], "name": f"vasopilot {rig_id}",
                "mf": "vasopilot", "mdl": "norepinephrine syringe pump (read-only)"},
        "o": {"name": "vasopilot"},
        "availability": [{"topic": topic(rig_id, "status"), "payload_available": ONLINE,
                          "payload_not_available": OFFLINE}],
        "cmps": components,
    })
