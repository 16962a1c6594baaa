"""Shared value types: units, clock, events, driver interfaces, configuration models.

This subpackage imports nothing else of ours, so ``drivers/`` and ``safety/`` may depend on it
without depending on the application.
"""
