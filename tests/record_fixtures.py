"""Where the record tests find the real arterial-pressure records (vasopilot.records).

Missing records skip the modules that need them, with a message that says how to get them;
under ``CI=true`` they fail the run instead, so a CI machine never passes without them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pytest

from vasopilot.records import find_records, search_path


def records_dir(env: Mapping[str, str] = os.environ) -> Path:
    """The records folder, or a skip (a failure under ``CI=true``) of the calling module."""
    found = find_records(env)
    if found is not None:
        return found
    places = ", ".join(str(p) for p in search_path(env))
    message = (f"REAL ABP RECORDS MISSING: none of {places} holds them; "
               "`make records` (vasopilot data fetch) downloads them into the cache")
    if env.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message, allow_module_level=True)
