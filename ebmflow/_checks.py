"""Argument checks shared by the public functions: fail early, name the argument and what is accepted."""

import jax
import numpy as np


def positive_int(name: str, value) -> int:
    """``value`` as an int, or a ValueError naming ``name`` if it is not a positive integer."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int; got {value!r}")
    return int(value)


def is_concrete(x) -> bool:
    """True for an array with values now (not a tracer inside jit/vmap/grad): values can be checked."""
    return not isinstance(x, jax.core.Tracer)


def is_real_number(x) -> bool:
    """A real number (Python, NumPy, or a 0-d array), not a bool."""
    if isinstance(x, bool):
        return False
    return isinstance(x, (int, float, np.integer, np.floating)) or (
        hasattr(x, "dtype") and np.ndim(x) == 0 and np.issubdtype(x.dtype, np.number) and np.isrealobj(x))


def is_finite_number(value, *, positive: bool = False) -> bool:
    """A real number (see `is_real_number`), finite and ``>= 0`` (``> 0`` if ``positive``)."""
    return is_real_number(value) and bool(np.isfinite(value)) and (value > 0 if positive else value >= 0)


def finite_number(name: str, value, *, positive: bool = False):
    """``value``, or a ValueError naming ``name`` unless it is a finite number ``>= 0`` (``> 0``).

    A traced value (inside the user's ``jax.jit`` or ``jax.vmap``) passes unchecked.
    """
    if not is_concrete(value):
        return value
    if not is_finite_number(value, positive=positive):
        raise ValueError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}; got {value!r}")
    return value


def prng_key(key, name: str = "key"):
    """``key``, or a ValueError naming ``name`` unless it is one JAX random key.

    Accepted: a typed key (``jax.random.key(0)``) or a legacy ``uint32`` key of shape
    ``(2,)`` (``jax.random.PRNGKey(0)``). A traced key (under the user's ``jax.vmap``) passes.
    """
    if not is_concrete(key):
        return key
    dtype = getattr(key, "dtype", None)
    if dtype is not None and (
            (jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key) and np.ndim(key) == 0)
            or (dtype == np.uint32 and np.shape(key) == (2,))):
        return key
    raise ValueError(f"{name} must be one JAX random key, such as jax.random.key(0) (or jax.random.PRNGKey(0)); "
                     f"got {key!r}")
