"""Every setting is bounded or says why not; no broken configuration ends in a traceback."""

from __future__ import annotations

import contextlib
import enum
import io
import json
import tempfile
import typing
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

from config_fixtures import FILES, bounds_rows, set_key, sim_set, write_set
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from vasopilot.cli import main
from vasopilot.core.config import (
    Bound,
    DrugEntry,
    DrugLibrary,
    Matches,
    NoBound,
    RigProfile,
    SyringeCatalogue,
    SyringeSpec,
)
from vasopilot.core.errors import ConfigError
from vasopilot.settings import load_rig


def _models(model: type[BaseModel], seen: set[type[BaseModel]]) -> set[type[BaseModel]]:
    seen.add(model)
    for info in model.model_fields.values():
        for arg in _leaves(info.annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel) and arg not in seen:
                _models(arg, seen)
    return seen


def _leaves(annotation: Any) -> list[Any]:
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Literal or not args:
        return [annotation]
    return [leaf for arg in args for leaf in _leaves(arg)]


def _closed(annotation: Any) -> bool:
    """A type whose every value is meaningful: bool, a Literal, an enum, a nested model."""
    leaves = [a for a in _leaves(annotation) if a is not type(None)]
    return bool(leaves) and all(
        a is bool or typing.get_origin(a) is typing.Literal
        or (isinstance(a, type) and issubclass(a, enum.Enum | BaseModel)) for a in leaves)


def _marked(metadata: list[Any]) -> bool:
    return any(isinstance(m, NoBound) or isinstance(getattr(m, "func", None), Bound | Matches)
               for m in metadata)


ALL_MODELS = sorted(_models(RigProfile, set()) | _models(DrugLibrary, set())
                    | _models(SyringeCatalogue, set()), key=lambda m: m.__name__)


def test_every_field_has_a_bound_or_says_why_it_needs_none() -> None:
    unmarked = [f"{model.__name__}.{name}" for model in ALL_MODELS
                for name, info in model.model_fields.items()
                if not (_closed(info.annotation) or _marked(info.metadata))]
    assert len(ALL_MODELS) == 15
    assert unmarked == []


def test_every_field_says_what_it_is() -> None:
    undescribed = [f"{model.__name__}.{name}" for model in ALL_MODELS
                   for name, info in model.model_fields.items() if not info.description]
    assert undescribed == []


def test_the_coverage_check_can_fail() -> None:
    class Loose(BaseModel):
        rate_ml_h: float = 1.0

    info = Loose.model_fields["rate_ml_h"]
    assert not (_closed(info.annotation) or _marked(info.metadata))


def _keys(data: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key, value in data.items():
        keys.append(prefix + key)
        if isinstance(value, dict):
            keys += _keys(value, f"{prefix}{key}.")
    return keys


SET = sim_set()
KEYS = [(file, key) for file, data in SET.items() for key in _keys(data)] + [
    ("rig", "pump.port"), ("rig", "pressure.record"), ("rig", "mqtt.ca_file"),
    ("rig", "patient.weight_kg"), ("rig", "unknown"), ("drugs", "drugs.other.name")]
scalars = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-(2**63), 2**63 - 1),
    st.booleans(), st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]),
                           max_size=12),
    st.sampled_from(["new-era", "bridge", "ads1115", "replay", "mcg/kg/min", "loop://",
                     "/dev/null", "norepinephrine-weight", "..", "/", "x\x00y"]),
)
values = st.one_of(scalars, st.lists(scalars, max_size=3),
                   st.dictionaries(st.sampled_from(["low", "medium", "high", "x"]), scalars,
                                   max_size=3))
edits = st.lists(st.tuples(st.sampled_from(KEYS), values), min_size=1, max_size=4)


def _write(folder: Path, changes: list[tuple[tuple[str, str], Any]]) -> Path:
    files = sim_set()
    for (file, key), value in changes:
        # an earlier change may have made a table a scalar: then this one has nowhere to go
        with contextlib.suppress(AttributeError, TypeError):
            set_key(files[file], key, value)
    return write_set(folder, files)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(changes=edits)
def test_no_broken_profile_ends_in_a_traceback(changes: list[tuple[tuple[str, str],
                                                                   Any]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = _write(Path(folder), changes)
        try:
            load_rig(path)
        except ConfigError as exc:
            message = str(exc)
            assert "\n" not in message
            assert message.startswith(tuple(str(Path(folder) / f) for f in FILES.values()))
            assert ": key " in message
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = main(["check", "--rig", str(path), "--json"])
        report = json.loads(out.getvalue(), parse_constant=_no_constants)
        assert code == (0 if report["ok"] else 2)
        assert "Traceback" not in err.getvalue()
        for refusal in report.get("refusals", []):
            assert set(refusal) == {"file", "key", "value", "reason"}


def _no_constants(name: str) -> None:
    raise AssertionError(f"{name} is not JSON")


def test_the_bounds_tables_in_the_docs_are_the_models() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text()
    for rows in (bounds_rows(RigProfile), bounds_rows(DrugEntry, "drugs.NAME"),
                 bounds_rows(SyringeSpec, "syringes.NAME")):
        assert "\n".join(rows) in doc
