"""Syringe-pump drivers: every one satisfies ``vasopilot.core.interfaces.Pump``.

Drivers are imported on demand, so importing this package stays light. Their emulators (and
:func:`drivers.sim.emulated.start_emulated_pump`, a driver talking to one over a pty) live in
:mod:`drivers.sim`, which the production drivers never import.
"""
