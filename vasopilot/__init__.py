"""vasopilot: norepinephrine syringe-pump control for bench and research rigs.

Not a certified medical device. The import is kept light on purpose: ``drivers`` and
``safety`` import :mod:`vasopilot.core` (shared value types) and must not drag the
application (journal, telemetry, CLI) in with it.
"""

__version__ = "0.1.0"
