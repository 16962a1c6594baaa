"""Fixtures shared across test modules: the MQTT brokers, the serial pumps' virtual clock, and
a guard that fails a test which leaves a thread or an asyncio task running behind it."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from leak_guard import all_tasks, leftovers
from mqtt_fixtures import broker, tls_broker
from pump_fixtures import clock

__all__ = ["broker", "clock", "tls_broker"]

# A thread told to stop may need a moment to return; a leaked one never does.
THREAD_EXIT_GRACE_S = 2.0


@pytest.fixture(autouse=True)
def _no_leftovers() -> Iterator[None]:
    threads_before = set(threading.enumerate())
    tasks_before = all_tasks()
    yield
    threads, tasks = leftovers(threads_before, tasks_before)
    for thread in threads:
        thread.join(THREAD_EXIT_GRACE_S)
    threads, tasks = leftovers(threads_before, tasks_before)
    if threads or tasks:
        names = [f"thread {t.name!r}" for t in threads] + [f"task {t.get_name()!r} "
                                                            f"({t.get_coro()!r})" for t in tasks]
        pytest.fail(f"the test left running: {', '.join(names)}", pytrace=False)
