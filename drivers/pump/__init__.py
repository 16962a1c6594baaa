"""Syringe-pump drivers: every one satisfies ``vasopilot.core.interfaces.Pump``."""
