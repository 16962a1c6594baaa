"""Profile sets on disk for the settings tests: a valid set, edited one key at a time."""

from __future__ import annotations

import tomllib
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from vasopilot.cli.init_rig import CATALOGUE_FILE, LIBRARY_FILE, profile_set, toml_key, toml_value
from vasopilot.core.config import Bound, Matches, NoBound

PROFILE_FILE = "rig.toml"
# The three files of a set by the short names the tests use.
FILES = {"rig": PROFILE_FILE, "drugs": LIBRARY_FILE, "syringes": CATALOGUE_FILE}


def dump_toml(data: dict[str, Any], table: str = "") -> str:
    """``data`` as TOML: scalars first, then one ``[table]`` per nested dict."""
    lines = [f"{toml_key(k)} = {toml_value(v)}" for k, v in data.items()
             if not isinstance(v, dict)]
    for key, value in data.items():
        if isinstance(value, dict):
            path = f"{table}.{toml_key(key)}" if table else toml_key(key)
            lines += ["", f"[{path}]", dump_toml(value, path)]
    return "\n".join(lines)


def set_key(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set (or with ``value`` None, delete) a dotted key, creating tables on the way."""
    *tables, last = dotted.split(".")
    for name in tables:
        data = data.setdefault(name, {})
    if value is None:
        data.pop(last, None)
    else:
        data[last] = value


def sim_set() -> dict[str, dict[str, Any]]:
    """The ``sim`` kind's files as dicts, by short name, the journal beside the profile."""
    texts = profile_set("sim", journal="journal.sqlite")
    return {short: tomllib.loads(texts["sim.toml" if short == "rig" else name])
            for short, name in FILES.items()}


def edited(edits: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The ``sim`` set with ``{"file:dotted.key": value}`` edits (file: rig, drugs, syringes)."""
    files = sim_set()
    for file_key, value in edits.items():
        file, key = file_key.split(":")
        set_key(files[file], key, value)
    return files


def write_set(folder: Path, files: dict[str, dict[str, Any]]) -> Path:
    """Write a set into ``folder``; the profile's path."""
    folder.mkdir(parents=True, exist_ok=True)
    for short, data in files.items():
        (folder / FILES[short]).write_text(dump_toml(data) + "\n", encoding="utf-8")
    return folder / PROFILE_FILE


def bounds_rows(model: type[BaseModel], table: str = "") -> list[str]:
    """The rows of docs/configuration.md's bounds table for ``model``: key, range, reason."""
    rows = []
    for name, info in model.model_fields.items():
        nested = [a for a in typing.get_args(info.annotation) or (info.annotation,)
                  if isinstance(a, type) and issubclass(a, BaseModel)]
        if nested and not info.metadata:
            rows += bounds_rows(nested[0], f"{table}.{name}" if table else name)
            continue
        key = f"[{table}] {name}" if table else name
        checks = [m.func for m in info.metadata if isinstance(getattr(m, "func", None),
                                                              Bound | Matches)]
        notes = [m.why for m in info.metadata if isinstance(m, NoBound)]
        if checks and isinstance(checks[0], Bound):
            rows.append(f"| `{key}` | {checks[0].describe()} | {checks[0].why} |")
        elif checks:
            rows.append(f"| `{key}` | matches `{checks[0].pattern}` | {checks[0].why} |")
        else:
            rows.append(f"| `{key}` | {'—' if notes else 'a closed set'} | "
                        f"{notes[0] if notes else info.description} |")
    return rows
