"""Argument checks shared by the public functions: fail early, name the argument and what is accepted."""

import numpy as np


def positive_int(name: str, value) -> int:
    """``value`` as an int, or a ValueError naming ``name`` if it is not a positive integer."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int; got {value!r}")
    return int(value)
