"""The import contracts of pyproject.toml name every module they must.

Their forbidden and source lists spell out the application's modules (import-linter cannot say
"all of vasopilot but core"), so a new module would slip past them unlisted: this test fails
first. ``make test`` runs the contracts themselves (``lint-imports``).
"""

from __future__ import annotations

import pkgutil
import tomllib
from pathlib import Path
from typing import Any

import drivers
import vasopilot

ROOT = Path(__file__).resolve().parents[1]


def contracts() -> dict[str, dict[str, Any]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {c["name"]: c for c in config["contracts"]}


def children(package: Any) -> set[str]:
    return {f"{package.__name__}.{m.name}" for m in pkgutil.iter_modules(package.__path__)}


APPLICATION = children(vasopilot) - {"vasopilot.core"}


def test_the_contracts_are_the_four_of_the_design() -> None:
    assert sorted(contracts()) == [
        "control modes never import the Supervisor (they read a SupervisorView)",
        "drivers and safety import only vasopilot.core from the application",
        "only the rig assembly (vasopilot.rig) imports drivers.sim",
        "vasopilot.core imports nothing of ours",
    ]


def test_drivers_safety_and_core_are_kept_from_every_module_of_the_application() -> None:
    found = contracts()
    lower = found["drivers and safety import only vasopilot.core from the application"]
    core = found["vasopilot.core imports nothing of ours"]
    assert set(lower["forbidden_modules"]) == APPLICATION
    assert set(core["forbidden_modules"]) == APPLICATION | {"drivers", "safety",
                                                           "firmware_bridge"}


def test_every_module_but_the_rig_assembly_is_kept_from_drivers_sim() -> None:
    rule = contracts()["only the rig assembly (vasopilot.rig) imports drivers.sim"]
    assert set(rule["source_modules"]) == (
        (APPLICATION - {"vasopilot.rig"}) | {"vasopilot.core", "safety", "firmware_bridge"}
        | (children(drivers) - {"drivers.sim"}))
    assert rule["forbidden_modules"] == ["drivers.sim"]
