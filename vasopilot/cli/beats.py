"""``vasopilot beats RECORD``: run the beat detector over a WFDB record and print the beats."""

from __future__ import annotations

import argparse
import math
from collections import Counter
from typing import TYPE_CHECKING

from pydantic import BaseModel

from vasopilot.core.errors import SensorError, VasopilotError

if TYPE_CHECKING:
    from drivers.pressure.replay import RecordChannel
    from vasopilot.core.types import Beat


class BeatLine(BaseModel):
    """One beat as printed with ``--json``: onset from the record's start (s), mmHg, bpm.

    ``ectopic`` is printed (as true) only for a good beat that came early.
    """

    t_s: float
    sbp: float | None
    dbp: float | None
    map: float | None
    hr: float
    quality: str
    ectopic: bool = False

    def json_line(self) -> str:
        return self.model_dump_json(exclude=None if self.ectopic else {"ectopic"})


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
    parser.add_argument("--plot", metavar="OUT.png",
                        help="draw the waveform with each beat's onset coloured by its verdict")
    parser.add_argument("--start", type=float, default=0.0, metavar="S",
                        help="plot from this time (s, default 0)")
    parser.add_argument("--duration", type=float, default=None, metavar="S",
                        help="plot this many seconds (default: the whole record)")
    parser.set_defaults(func=run)


def _value(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 2)


def _load(record: str, channel: str) -> RecordChannel:
    """The channel, or a :class:`SensorError` naming what is wrong with the record."""
    from drivers.pressure.replay import load_channel

    try:
        return load_channel(record, channel)
    except VasopilotError:
        raise
    except FileNotFoundError as exc:
        raise SensorError(f"record {record} not found ({exc.filename})") from exc
    except Exception as exc:  # wfdb raises bare ValueError, IndexError, ... on bad files
        raise SensorError(f"record {record} is unreadable: {exc}") from exc


def run(args: argparse.Namespace) -> int:
    from drivers.pressure.beats import BeatDetector

    channel = _load(args.record, args.channel)
    if not 50.0 <= channel.fs_hz <= 1000.0:
        raise SensorError(f"{channel.channel} is sampled at {channel.fs_hz:g} Hz; "
                          "beat detection needs 50 to 1000 Hz")
    beats = BeatDetector(channel.fs_hz).feed(0.0, channel.samples)
    lines = [
        BeatLine(
            t_s=round(b.t_s, 3),
            sbp=_value(b.sbp_mmhg),
            dbp=_value(b.dbp_mmhg),
            map=_value(b.map_mmhg),
            hr=round(b.hr_bpm, 1),
            quality=b.quality,
            ectopic=b.ectopic,
        )
        for b in beats
    ]
    if args.plot:
        _plot(channel, beats, args.plot, args.start, args.duration)
    if args.json:
        for line in lines:
            print(line.json_line())
        return 0
    print(f"{'t_s':>9} {'sbp':>6} {'dbp':>6} {'map':>6} {'hr':>6}  quality")
    for line in lines:
        cells = [line.sbp, line.dbp, line.map]
        text = " ".join(f"{c:6.1f}" if c is not None else f"{'-':>6}" for c in cells)
        mark = " (ectopic)" if line.ectopic else ""
        print(f"{line.t_s:9.3f} {text} {line.hr:6.1f}  {line.quality}{mark}")
    counts = Counter(line.quality for line in lines)
    good = counts.pop("good", 0)
    ectopic = sum(line.ectopic for line in lines)
    flagged = ", ".join(f"{k} {v}" for k, v in counts.most_common())
    print(
        f"{len(lines)} beats in {channel.duration_s:.1f} s of {channel.channel} "
        f"at {channel.fs_hz:g} Hz: {good} good"
        + (f" ({ectopic} ectopic)" if ectopic else "")
        + (f"; {flagged}" if flagged else "")
    )
    return 0


# Refusals in colours that cannot be mistaken for the green of a good beat.
_REFUSED = ("tab:red", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:gray",
            "tab:olive", "tab:cyan", "tab:blue")


def _plot(channel: RecordChannel, beats: list[Beat], out: str, start_s: float,
          duration_s: float | None) -> None:
    """The trace in rows of at most 30 s, each onset a line coloured by its beat's verdict."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.lines import Line2D

    end_s = channel.duration_s if duration_s is None else min(channel.duration_s,
                                                             start_s + duration_s)
    if end_s <= start_s:
        raise VasopilotError(f"nothing to plot from {start_s:g} s: the record lasts "
                          f"{channel.duration_s:.1f} s")
    row_s = min(30.0, end_s - start_s)
    rows = math.ceil((end_s - start_s) / row_s - 1e-9)
    fig, axes = plt.subplots(rows, 1, figsize=(14, 2.6 * rows), squeeze=False)
    t = np.arange(channel.samples.size) / channel.fs_hz
    reasons = sorted({b.quality for b in beats} - {"good"})
    colour = {"good": "tab:green"} | {r: _REFUSED[i % len(_REFUSED)] for i, r in enumerate(reasons)}
    for k, ax in enumerate(axes[:, 0]):
        lo, hi = start_s + k * row_s, min(end_s, start_s + (k + 1) * row_s)
        m = (t >= lo) & (t < hi)
        ax.plot(t[m], channel.samples[m], color="0.2", lw=0.7)
        for b in beats:
            if lo <= b.t_s < hi:
                ax.axvline(b.t_s, color=colour[b.quality], lw=1.6 if b.is_good else 2.2,
                           ls=":" if b.ectopic else "-")
        ax.set_xlim(lo, lo + row_s)
        ax.set_ylabel("mmHg")
    handles = [Line2D([], [], color=colour[q], lw=2, label=q) for q in colour]
    handles.append(Line2D([], [], color="tab:green", ls=":", lw=2, label="good, ectopic"))
    axes[0, 0].legend(handles=handles, loc="upper right", ncol=min(6, len(handles)),
                      fontsize=8)
    axes[0, 0].set_title(f"{channel.record} {channel.channel} at {channel.fs_hz:g} Hz: "
                         "beat onsets coloured by verdict")
    axes[-1, 0].set_xlabel("s from the start of the record")
    fig.tight_layout()
    try:
        fig.savefig(out, dpi=80)
    except OSError as exc:
        raise VasopilotError(f"cannot write the plot to {out}: {exc}") from exc
    finally:
        plt.close(fig)
