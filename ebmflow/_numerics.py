"""Stable elementwise functions (THEORY §8): never form exp of a large argument."""

import jax.numpy as jnp


def log_2cosh(x):
    """``ln(2 cosh x) = |x| + log1p(exp(-2|x|))``, exact for all finite x."""
    a = jnp.abs(x)
    return a + jnp.log1p(jnp.exp(-2 * a))


def sigmoids(x):
    """``(σ(x), σ(-x)) = (1/(1 + e^{-x}), 1/(1 + e^x))``, each to full relative accuracy, from one exponential."""
    t = jnp.exp(-jnp.abs(x))
    large, small = 1 / (1 + t), t / (1 + t)
    return jnp.where(x >= 0, large, small), jnp.where(x >= 0, small, large)


def softplus(x):
    """``ln(1 + e^x) = max(x, 0) + log1p(exp(-|x|))``."""
    return jnp.maximum(x, 0) + jnp.log1p(jnp.exp(-jnp.abs(x)))
