"""Targets: strictly positive distributions over the 2**n states."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._memory import check_fits
from .._walsh import log2_size


def is_concrete(x) -> bool:
    """True for an array with values now (not a tracer inside jit/vmap/grad)."""
    return not isinstance(x, jax.core.Tracer)


class Target(eqx.Module):
    """A strictly positive distribution ``p_D`` over the ``2**n`` states, index order.

    ``probs`` has shape ``(2**n,)``; ``description`` says where it came from.
    Build one with `Target.from_probs`, `Target.from_samples` or `Target.from_model`.
    """

    probs: Float[Array, " 2**n"]
    n: int = eqx.field(static=True)
    description: str = eqx.field(static=True, default="probability vector")

    def __init__(self, probs, description: str = "probability vector"):
        probs = jnp.asarray(probs)
        if probs.ndim != 1:
            raise ValueError(f"target probs must have shape (2**n,); got {probs.shape}")
        self.n = log2_size(probs.shape[0], "target probs")
        if self.n == 0:
            raise ValueError("target probs must have shape (2**n,) with n >= 1; got shape (1,)")
        if is_concrete(probs):
            _check_probs(np.asarray(probs))
        self.probs = probs
        self.description = description

    @classmethod
    def from_probs(cls, probs, normalize: bool = False) -> "Target":
        """From a probability vector of shape ``(2**n,)`` (index order); ``normalize`` rescales it."""
        probs = jnp.asarray(probs)
        if not jnp.issubdtype(probs.dtype, jnp.floating):
            probs = probs.astype(jnp.result_type(float))
        return cls(probs / probs.sum() if normalize else probs)

    @classmethod
    def from_samples(cls, samples, **kwargs) -> "Target":
        """Empirical target of binary samples (array or file); see `ebmflow.targets.from_samples`."""
        from ._samples import from_samples

        return from_samples(samples, **kwargs)

    @classmethod
    def from_model(cls, model) -> "Target":
        """The distribution ``p_θ`` of an energy model (a teacher)."""
        from .._exact import log_probs

        log_p = log_probs(model)
        p = jnp.exp(log_p)
        if is_concrete(p) and not bool(jnp.all(p > 0)):
            raise ValueError(
                f"the distribution of {type(model).__name__} underflows: {int((p <= 0).sum())} of {p.size} states have "
                f"p = 0 in {p.dtype} (smallest ln p = {float(log_p.min()):.4g}); a target must be strictly positive: "
                "use a weaker teacher (smaller couplings, higher temperature)"
            )
        return cls(p, f"model {type(model).__name__}")

    def astype(self, dtype) -> "Target":
        """The same target with ``probs`` in ``dtype`` (itself if they already are)."""
        if self.probs.dtype == dtype:
            return self
        return eqx.tree_at(lambda t: t.probs, self, self.probs.astype(dtype))

    @property
    def log_probs(self) -> Float[Array, " 2**n"]:
        return jnp.log(self.probs)

    @property
    def entropy(self) -> Float[Array, ""]:
        """``-Σ p log p`` in nats."""
        return -(self.probs * jnp.log(self.probs)).sum()


def _check_probs(p: np.ndarray) -> None:
    if not np.all(np.isfinite(p)):
        bad = np.flatnonzero(~np.isfinite(p))
        raise ValueError(f"target probs must be finite; state {bad[0]} has {p[bad[0]]} ({bad.size} states non-finite)")
    if np.any(p <= 0):
        bad = np.flatnonzero(p <= 0)
        raise ValueError(
            f"target probs must be strictly positive (KL is infinite otherwise); {bad.size} of {p.size} states "
            f"have p <= 0, first state {bad[0]} with p = {p[bad[0]]}. From samples, pass a pseudocount > 0."
        )
    total = p.sum(dtype=np.float64)
    tol = 1e-6 if p.dtype.itemsize >= 8 else 1e-4  # float32 rounding over up to ~2**26 states
    if abs(total - 1) > tol:
        raise ValueError(
            f"target probs must sum to 1; they sum to {total:.8g} (use Target.from_probs(p, normalize=True))"
        )


def check_target_size(n: int, dtype) -> None:
    check_fits(f"a target over n={n} spins (2**{n} probabilities)", 2 * 2**n * jnp.dtype(dtype).itemsize)
