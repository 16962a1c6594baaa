"""S14: an event acknowledged by ``append`` survives the process being killed mid-write."""

import os
import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from vasopilot.journal import JournalReader

# The child journals a durable dose change after every two non-durable events and prints each
# durable seq only after append returned, which is the moment the supervisor would act on it.
CHILD = """
import sys
from vasopilot.core.clock import VirtualClock
from vasopilot.core.events import BeatSummary, DoseApplied
from vasopilot.journal import Journal

clock = VirtualClock()
journal = Journal(sys.argv[1], clock, flush_interval_s=3600.0)
i = 0
while True:
    clock.advance(1.0)
    for _ in range(2):
        journal.append(BeatSummary(t_s=clock.now_s(), map_mmhg=65.0, sbp_mmhg=None,
                                   dbp_mmhg=None, hr_bpm=None, quality="good"))
    done = journal.append(DoseApplied(t_s=clock.now_s(), requester="controller",
                                      dose_mcg_min=i % 20, previous_dose_mcg_min=0.0,
                                      rate_ml_h=0.0, reason="crash test"))
    print(done.seq, flush=True)
    i += 1
"""


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_acknowledged_durable_events_survive_sigkill(tmp_path: Path, seed: int) -> None:
    path = tmp_path / "journal.sqlite"
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    kill_after = random.Random(seed).randint(20, 400)
    rounds = []
    for _ in range(2):
        # The second round writes on top of the first crash's leftovers (WAL, no checkpoint).
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)],
                                 stdout=subprocess.PIPE, env=env, text=True)
        assert child.stdout is not None
        acknowledged = [int(child.stdout.readline()) for _ in range(kill_after)]
        child.send_signal(signal.SIGKILL)
        acknowledged += [int(line) for line in child.stdout.read().split()]
        child.wait()
        child.stdout.close()
        rounds.append(acknowledged)

    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    with JournalReader(path) as reader:
        stored = {e.seq or 0: e for e in reader.iter_events()}
    acknowledged = [seq for r in rounds for seq in r]
    assert set(acknowledged) <= set(stored)
    assert all(stored[seq].kind == "dose.applied" for seq in acknowledged)
    # Every durable event carries the non-durable ones appended before it.
    last = max(acknowledged)
    assert sorted(s for s in stored if s <= last) == list(range(1, last + 1))
