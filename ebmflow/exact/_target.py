"""Targets: strictly positive distributions over the states of a space."""

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._checks import is_concrete
from ..space import AbstractStateSpace, space_of
from ..space._transform import digits_of_size
from ._samples import Encoding, empirical
from ._sums import log_probs


class Target(eqx.Module):
    """A strictly positive distribution ``p_D`` over the states of ``space``, index order.

    ``probs`` has shape ``(q**n,)``; ``space`` defaults to spins, ``Spins(n)`` for
    ``2**n`` probabilities; ``description`` says where it came from. Build one with
    `Target.from_probs`, `Target.from_samples` or `Target.from_model`.
    """

    probs: Float[Array, " states"]
    space: AbstractStateSpace
    description: str = eqx.field(static=True)

    def __init__(self, probs, description: str = "probability vector", *, space: AbstractStateSpace | None = None):
        if space is not None and not isinstance(space, AbstractStateSpace):
            raise TypeError(f"space must be a state space such as ebmflow.Spins(n) or ebmflow.Potts(n, q), or None "
                            f"(spins, n from the length of probs); got {space!r}")
        probs = jnp.asarray(_real_numbers(probs))
        if probs.ndim != 1:
            size = "2**n" if space is None else space.size
            raise ValueError(f"target probs must have shape ({size},); got {probs.shape}")
        if space is None:
            if digits_of_size(probs.shape[0], 2, "target probs") == 0:
                raise ValueError("target probs must have shape (2**n,) with n >= 1; got shape (1,)")
            space = space_of(None, probs.shape[0])
        elif probs.shape[0] != space.size:
            raise ValueError(f"target probs over {space} must have shape ({space.size},); got {probs.shape}")
        if is_concrete(probs):
            _check_probs(np.asarray(probs))
        self.probs = probs
        self.space = space
        self.description = description

    @property
    def n(self) -> int:
        return self.space.n

    @classmethod
    def from_probs(cls, probs, normalize: bool = False, *, space: AbstractStateSpace | None = None) -> "Target":
        """From a probability vector of shape ``(q**n,)`` (index order); ``normalize`` rescales it."""
        probs = jnp.asarray(_real_numbers(probs))
        if not jnp.issubdtype(probs.dtype, jnp.floating):
            probs = probs.astype(jnp.result_type(float))
        if normalize:
            total = probs.sum()
            if is_concrete(total) and not (np.isfinite(total) and total > 0):
                raise ValueError(f"cannot normalise target probs that sum to {float(total)!r}; the entries must be "
                                 "finite and non-negative with a positive sum")
            probs = probs / total
        return cls(probs, space=space)

    @classmethod
    def from_samples(
        cls, samples, *, q: int | None = None, encoding: Encoding = "auto", pseudocount: float = 0.0,
        spin_map: str = "2v-1", weights=None, dtype=None,
    ) -> "Target":
        """The (weighted) empirical distribution ``p(v) = (Σ_m w_m [v_m = v] + α) / (Σ_m w_m + α q**n)``.

        ``samples``: an array ``(M, n)`` or a path to a ``.npy``/``.csv``/``.txt`` file.

        - Binary data (the default): entries {0,1} or ±1 (``encoding``: ``"01"``, ``"pm1"`` or
          ``"auto"``, detected); {0,1} map to spins by ``spin_map`` (``"2v-1"``, matching
          `RBM.from_bernoulli`, or ``"1-2v"``). The target is over ``Spins(n)``.
        - Colours: integers ``0..q-1``, with ``q`` given, or ``encoding="colours"`` to infer ``q``
          as the largest colour + 1. The target is over ``Potts(n, q)``. A colour ``>= q`` or a
          non-integer is an error naming its row and column.

        ``weights``: one non-negative weight per sample (e.g. alignment reweighting; default 1).
        With ``pseudocount α = 0`` every state must be observed (a target must be strictly
        positive). The description reports the encoding and whether it was detected.
        """
        probs, space, note = empirical(samples, q=q, encoding=encoding, pseudocount=pseudocount, spin_map=spin_map,
                                       weights=weights, dtype=dtype)
        return cls(probs, note, space=space)

    @classmethod
    def from_model(cls, model) -> "Target":
        """The distribution ``p_θ`` of an energy model (a teacher), over the model's space."""
        log_p = log_probs(model)
        p = jnp.exp(log_p)
        if is_concrete(p) and not bool(jnp.all(p > 0)):
            raise ValueError(
                f"the distribution of {type(model).__name__} underflows: {int((p <= 0).sum())} of {p.size} states have "
                f"p = 0 in {p.dtype} (smallest ln p = {float(log_p.min()):.4g}); a target must be strictly positive: "
                "use a weaker teacher (smaller couplings, higher temperature)"
            )
        return cls(p, f"model {type(model).__name__}", space=model.space)

    def astype(self, dtype) -> "Target":
        """The same target with ``probs`` in ``dtype``, renormalised there (itself if they already are in ``dtype``).

        Rounding to float32 leaves ``Σ p - 1 ~ 1e-7``, which in float64 is a moment no model can
        match (a stationary point moves away by as much): the cast probabilities are divided by their sum.
        """
        if self.probs.dtype == dtype:
            return self
        probs = self.probs.astype(dtype)
        return eqx.tree_at(lambda t: t.probs, self, probs / probs.sum(-1, keepdims=True))

    @property
    def log_probs(self) -> Float[Array, " states"]:
        return jnp.log(self.probs)

    @property
    def entropy(self) -> Float[Array, ""]:
        """``-Σ p log p`` in nats."""
        return -(self.probs * jnp.log(self.probs)).sum()


def _real_numbers(probs):
    """``probs`` if an array of real numbers (a sequence becomes a NumPy array); else a TypeError saying what it is."""
    array = probs
    if not hasattr(probs, "dtype"):
        try:
            array = np.asarray(probs)
        except (TypeError, ValueError):
            array = None
    dtype = getattr(array, "dtype", None)
    if dtype is None or not any(jnp.issubdtype(dtype, kind) for kind in (jnp.integer, jnp.floating, jnp.bool_)):
        raise TypeError(f"target probs must be real numbers; got {type(probs).__name__} of "
                        f"{dtype if dtype is not None else 'mixed or unknown type'}")
    return array


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

