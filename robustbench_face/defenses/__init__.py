"""Built-in defenses; one module per plugin.

The public API for writing a defense (built-in or third-party, see ``docs/write_a_defense.md``):
subclass :class:`Transform`, declare ``differentiable`` / ``randomized``, implement
``transform``; calling the instance on a victim gives a :class:`DefendedVictim`.
"""

from ._base import DefendedVictim, Transform, check_known, check_param, gradient_mode

__all__ = ["DefendedVictim", "Transform", "check_known", "check_param", "gradient_mode"]
