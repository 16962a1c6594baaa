"""A 15 s beat summary with no good beat names the commonest untrusted kind; a tie goes to the
kind seen first, whatever the process's hash seed (the same seed must give the same journal on
every run)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from vasopilot.core.types import Beat, BeatQuality
from vasopilot.runtime import _BeatWindow

_SCRIPT = """
from vasopilot.core.types import Beat, BeatQuality
from vasopilot.runtime import _BeatWindow
kinds = [BeatQuality.SAMPLING, BeatQuality.DISCONNECTION, BeatQuality.NOISE]
beats = [Beat(float(i), 120.0, 60.0, 80.0, 80.0, kinds[i % 3]) for i in range(6)]
summary = _BeatWindow(beats).summary(6.0)
print(summary.quality.value)
"""


def _beat(t_s: float, quality: BeatQuality) -> Beat:
    return Beat(t_s, 120.0, 60.0, 80.0, 80.0, quality)


@pytest.mark.parametrize("first, second", [
    (BeatQuality.SAMPLING, BeatQuality.DISCONNECTION),
    (BeatQuality.DISCONNECTION, BeatQuality.SAMPLING),
])
def test_a_tie_goes_to_the_kind_seen_first(first: BeatQuality, second: BeatQuality) -> None:
    window = _BeatWindow([_beat(0.0, first), _beat(1.0, second)])
    summary = window.summary(3.0)
    assert summary is not None
    assert summary.quality is first


def test_the_commonest_kind_wins_over_the_first() -> None:
    window = _BeatWindow([_beat(0.0, BeatQuality.NOISE), _beat(1.0, BeatQuality.SAMPLING),
                          _beat(2.0, BeatQuality.SAMPLING)])
    summary = window.summary(3.0)
    assert summary is not None
    assert summary.quality is BeatQuality.SAMPLING


def test_the_label_does_not_follow_the_hash_seed() -> None:
    labels = set()
    for hash_seed in ("0", "1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, check=True,
                             capture_output=True, text=True, timeout=60)
        labels.add(out.stdout.strip())
    assert labels == {BeatQuality.SAMPLING.value}
