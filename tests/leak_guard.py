"""What a test leaves running behind it: threads and asyncio tasks (see conftest.py)."""

from __future__ import annotations

import asyncio
import gc
import threading
from typing import Any


def all_tasks() -> set[asyncio.Task[Any]]:
    """Every asyncio task of every loop, running or not (CPython keeps a weak registry)."""
    registry = getattr(asyncio.tasks, "_scheduled_tasks", None)
    if registry is None:
        registry = getattr(asyncio.tasks, "_all_tasks", None)
    if registry is None:
        return {o for o in gc.get_objects() if isinstance(o, asyncio.Task)}
    return set(registry)


def leftovers(threads_before: set[threading.Thread], tasks_before: set[asyncio.Task[Any]],
              ) -> tuple[list[threading.Thread], list[asyncio.Task[Any]]]:
    """Threads alive and tasks not done now that were not there before.

    A task counts when its loop no longer runs: abandoned, it never finishes. A loop still
    running belongs to a thread, which is either new (and counted) or a longer-lived
    fixture's service going on with its own work.
    """
    threads = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
    tasks = [t for t in all_tasks() if t not in tasks_before and not t.done()
             and not t.get_loop().is_running()]
    return threads, tasks
