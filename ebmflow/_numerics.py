"""Stable elementwise functions (THEORY §8): never form exp of a large argument."""

import jax.numpy as jnp


def log_2cosh(x):
    """``ln(2 cosh x) = |x| + log1p(exp(-2|x|))``, exact for all finite x."""
    a = jnp.abs(x)
    return a + jnp.log1p(jnp.exp(-2 * a))


def softplus(x):
    """``ln(1 + e^x) = max(x, 0) + log1p(exp(-|x|))``."""
    return jnp.maximum(x, 0) + jnp.log1p(jnp.exp(-jnp.abs(x)))
