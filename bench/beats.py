"""Beat detector benchmark: throughput on one core and detection delay; prints a table.

Run: ``.venv/bin/python bench/beats.py [--hours 1] [--artefacts-per-h 4]``. Throughput is
measured on the virtual patient's 250 Hz waveform with seeded random artefacts, fed in 1 s
chunks and sample by sample, and on the real record 03700181 when the shared data folder is
present.
Delay is signal time from a beat's onset (and from its end) to the sample that produced it.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from drivers.pressure.beats import BeatDetector
from drivers.sim.artefacts import ArtefactSchedule
from drivers.sim.waveform import SimWaveformSource
from vasopilot.core.clock import MonotonicClock, VirtualClock

RECORD = (
    Path(__file__).resolve().parents[1].parent
    / "shared" / "data" / "abp" / "wfdb-python_mimicdb_03700181" / "03700181"
)


@dataclass(frozen=True)
class _Haemo:
    map_mmhg: float = 70.0
    pulse_pressure_mmhg: float = 45.0
    hr_bpm: float = 85.0


def _synthetic(fs_hz: float, seconds: float, seed: int, artefacts_per_h: float) -> np.ndarray:
    clock = VirtualClock()
    artefacts = ArtefactSchedule(seed)
    artefacts.add_random(artefacts_per_h, seed, 0.0, seconds)
    src = SimWaveformSource(lambda _t: _Haemo(), fs_hz, seed, clock, artefacts=artefacts)
    clock.advance(seconds)
    return np.array(src.read().samples_mmhg)


def _throughput(x: np.ndarray, fs_hz: float, chunk: int) -> tuple[float, int]:
    wall = MonotonicClock()
    det = BeatDetector(fs_hz)
    beats = 0
    t0 = wall.now_s()
    for i in range(0, x.size, chunk):
        beats += len(det.feed(i / fs_hz, x[i : i + chunk]))
    return x.size / (wall.now_s() - t0), beats


def _delays_ms(x: np.ndarray, fs_hz: float) -> tuple[np.ndarray, np.ndarray]:
    det = BeatDetector(fs_hz)
    from_onset, from_end = [], []
    for i, v in enumerate(x):
        t_s = i / fs_hz
        for b in det.feed(t_s, [float(v)]):
            if b.hr_bpm > 0:
                from_onset.append(1000.0 * (t_s - b.t_s))
                from_end.append(1000.0 * (t_s - b.t_s - 60.0 / b.hr_bpm))
    return np.array(from_onset), np.array(from_end)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--artefacts-per-h", type=float, default=4.0,
                        help="seeded random line artefacts per hour (default 4, as the cohort)")
    args = parser.parse_args()
    rows: list[tuple[str, str, float, float, int]] = []
    x250 = _synthetic(250.0, args.hours * 3600.0, args.seed, args.artefacts_per_h)
    for label, chunk in (("1 s chunks", 250), ("sample by sample", 1)):
        data = x250 if chunk > 1 else x250[: 250 * 300]
        sps, beats = _throughput(data, 250.0, chunk)
        rows.append(("virtual patient 250 Hz", label, sps, sps / 250.0, beats))
    if RECORD.with_suffix(".hea").exists():
        from drivers.pressure.replay import load_channel

        real = load_channel(RECORD)
        sps, beats = _throughput(real.samples, real.fs_hz, round(real.fs_hz))
        rows.append(("03700181 (125 Hz)", "1 s chunks", sps, sps / real.fs_hz, beats))
    print(f"{'signal':<24} {'feeding':<18} {'samples/s':>12} {'x real time':>12} {'beats':>7}")
    for name, label, sps, rt, beats in rows:
        print(f"{name:<24} {label:<18} {sps:>12,.0f} {rt:>12,.0f} {beats:>7}")
    onset, end = _delays_ms(x250[: 250 * 120], 250.0)
    print()
    print(f"{'detection delay (ms, signal time)':<40} {'median':>8} {'p95':>8} {'max':>8}")
    for name, d in (("beat onset -> verdict", onset), ("beat end -> verdict", end)):
        print(f"{name:<40} {np.median(d):>8.0f} {np.percentile(d, 95):>8.0f} {d.max():>8.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
