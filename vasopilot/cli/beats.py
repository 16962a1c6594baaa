"""``vasopilot beats RECORD``: run the beat detector over a WFDB record and print the beats."""

from __future__ import annotations

import argparse
import math
from collections import Counter

from pydantic import BaseModel


class BeatLine(BaseModel):
    """One beat as printed with ``--json``: onset from the record's start (s), mmHg, bpm."""

    t_s: float
    sbp: float | None
    dbp: float | None
    map: float | None
    hr: float
    quality: str


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "beats",
        help="detect arterial beats in a WFDB record",
        description="Detect arterial beats in a WFDB record (path without extension; "
        "multi-segment and multi-rate records are read channel by channel).",
    )
    parser.add_argument("record", metavar="RECORD", help="WFDB record path without extension")
    parser.add_argument("--channel", default="ABP", help="signal name (default: ABP)")
    parser.add_argument("--json", action="store_true", help="one JSON object per beat and line")
    parser.set_defaults(func=run)


def _value(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 2)


def run(args: argparse.Namespace) -> int:
    from drivers.pressure.beats import BeatDetector
    from drivers.pressure.replay import load_channel

    channel = load_channel(args.record, args.channel)
    beats = BeatDetector(channel.fs_hz).feed(0.0, channel.samples)
    lines = [
        BeatLine(
            t_s=round(b.t_s, 3),
            sbp=_value(b.sbp_mmhg),
            dbp=_value(b.dbp_mmhg),
            map=_value(b.map_mmhg),
            hr=round(b.hr_bpm, 1),
            quality=b.quality,
        )
        for b in beats
    ]
    if args.json:
        for line in lines:
            print(line.model_dump_json())
        return 0
    print(f"{'t_s':>9} {'sbp':>6} {'dbp':>6} {'map':>6} {'hr':>6}  quality")
    for line in lines:
        cells = [line.sbp, line.dbp, line.map]
        text = " ".join(f"{c:6.1f}" if c is not None else f"{'-':>6}" for c in cells)
        print(f"{line.t_s:9.3f} {text} {line.hr:6.1f}  {line.quality}")
    counts = Counter(line.quality for line in lines)
    good = counts.pop("good", 0)
    flagged = ", ".join(f"{k} {v}" for k, v in counts.most_common())
    print(
        f"{len(lines)} beats in {channel.duration_s:.1f} s of {channel.channel} "
        f"at {channel.fs_hz:g} Hz: {good} good" + (f"; {flagged}" if flagged else "")
    )
    return 0
