"""``rbf interpret``: activation clustering, channel ranking, spatial maps and a causal check
over the adversarial inputs ``rbf run`` crafts (``docs/interpret.md``)."""

from .api import InterpretConfig, InterpretResult, interpret, interpret_many, run_interpret

__all__ = ["InterpretConfig", "InterpretResult", "interpret", "interpret_many", "run_interpret"]
