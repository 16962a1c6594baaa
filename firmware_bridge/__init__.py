"""The link to a step-timing microcontroller (RP2040 Pico): not part of this version.

DESIGN.md reserves this package for the framing, messages and heartbeat of a bridge that
times steps on a microcontroller, with its MicroPython firmware and a host emulator. Profiles
with ``pump.driver = "bridge"`` are refused at start-up with that reason. The bench figures of
``bench/step_timing.py`` say when a rig needs it: Python step timing on the Pi stays within one
microstep per 2-minute window at norepinephrine rates when the interpreter is not loaded.
"""
