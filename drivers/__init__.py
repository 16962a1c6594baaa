"""Hardware abstraction: pumps, pressure, line signals, balance, and their simulated twins."""
