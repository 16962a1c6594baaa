"""The test suite's own rules: a ``test_*.py`` file holds tests (helpers are named otherwise),
and no test leaves a thread or an asyncio task running (conftest.py's autouse fixture, with
the check of leak_guard.py)."""

from __future__ import annotations

import ast
import asyncio
import threading
from pathlib import Path

import pytest
from leak_guard import leftovers

ROOT = Path(__file__).resolve().parents[1]
TEST_FILES = sorted([*ROOT.glob("tests/test_*.py"), *ROOT.glob("hil_tests/test_*.py")])


def defines_tests(path: Path) -> bool:
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and \
                node.name.startswith("test_"):
            return True
        if isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            return True
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id.startswith("Test") for t in node.targets):
            return True  # a hypothesis state machine's TestCase
    return False


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_every_test_module_holds_tests(path: Path) -> None:
    assert defines_tests(path), f"{path.name} holds no test: name a helper module otherwise"


def test_a_thread_left_running_is_found() -> None:
    before = set(threading.enumerate())
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, name="left-behind")
    thread.start()
    try:
        assert [t.name for t in leftovers(before, set())[0]] == ["left-behind"]
    finally:
        stop.set()
        thread.join()
    assert leftovers(before, set()) == ([], [])


def test_an_asyncio_task_left_pending_is_found() -> None:
    loop = asyncio.new_event_loop()
    try:
        task = loop.create_task(asyncio.sleep(3600), name="forgotten")
        loop.run_until_complete(asyncio.sleep(0))
        assert [t.get_name() for t in leftovers(set(), set())[1]] == ["forgotten"]
        task.cancel()
        loop.run_until_complete(asyncio.gather(task, return_exceptions=True))
        assert leftovers(set(), set())[1] == []
    finally:
        loop.close()
