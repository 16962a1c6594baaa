"""The firmware bridge: a Pico that times the steps and keeps the rate if the host dies.

``protocol`` (framing, messages, link state machines) and ``firmware/`` (the MicroPython
firmware: ``logic``, ``step_pio``, the chip's ``hal_rp2`` and ``main``) run unchanged on the
Pico; ``emulator`` runs the same logic on the host behind a simulated HAL. The host driver is
``drivers.pump.bridge.BridgePump``. This file is copied to the board too: it stays empty of code.
"""
