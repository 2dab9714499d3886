"""The pairwise Potts model (the DCA model) over q colours (THEORY §9)."""

from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._checks import prng_key
from .._tree import as_parameter
from ..space import Potts
from ._base import AbstractEnergy


def _pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(n, 1)


class PottsPairwise(AbstractEnergy):
    """``-E(v) = Σ_i h_i(v_i) + Σ_{i<j} J_ij(v_i, v_j)``: fields ``(n, q)`` and one ``q × q`` block per pair.

    ``couplings`` is given either as the symmetric tensor ``(n, n, q, q)`` with
    ``J_ij(μ, ν) = J_ji(ν, μ)`` (diagonal blocks ignored) or as the blocks of the pairs
    ``i < j`` in ``numpy.triu_indices(n, 1)`` order, ``(n(n-1)/2, q, q)``; the model stores
    the blocks (every parameter free) and `tensor` gives the full symmetric form.
    """

    linear_in_parameters: ClassVar[bool] = True
    parameter_ranks: ClassVar[dict[str, int]] = {"fields": 2, "couplings": 3}
    space: Potts
    fields: Float[Array, "n q"]
    couplings: Float[Array, "pairs q q"]

    def __init__(self, fields, couplings):
        fields, couplings = as_parameter(fields), as_parameter(couplings)
        if fields.ndim != 2:
            raise ValueError(f"PottsPairwise fields must have shape (n, q); got {fields.shape}")
        n, q = fields.shape
        pairs = n * (n - 1) // 2
        if couplings.shape == (n, n, q, q):
            full = np.asarray(couplings) if not isinstance(couplings, jax.core.Tracer) else None
            if full is not None and not np.allclose(full, np.transpose(full, (1, 0, 3, 2))):
                raise ValueError("the coupling tensor must be symmetric, J[i, j, μ, ν] = J[j, i, ν, μ]")
            couplings = couplings[_pairs(n)]
        elif couplings.shape != (pairs, q, q):
            raise ValueError(f"with fields of shape ({n}, {q}), couplings must have shape ({n}, {n}, {q}, {q}) or "
                             f"({pairs}, {q}, {q}); got {couplings.shape}")
        self.space = Potts(n, q)
        self.fields, self.couplings = fields, couplings

    @classmethod
    def init(cls, key, n: int, q: int, scale: float = 0.01, dtype=None) -> "PottsPairwise":
        """Fields and coupling blocks i.i.d. ``N(0, scale²)``."""
        space = Potts(n, q)
        k1, k2 = jax.random.split(prng_key(key))
        dtype = dtype or jnp.result_type(float)
        pairs = space.n * (space.n - 1) // 2
        return cls(scale * jax.random.normal(k1, (space.n, space.q), dtype),
                   scale * jax.random.normal(k2, (pairs, space.q, space.q), dtype))

    @property
    def tensor(self) -> Float[Array, "n n q q"]:
        """The symmetric coupling tensor ``J[i, j, μ, ν]`` with zero diagonal blocks."""
        n, q = self.space.n, self.space.q
        i, j = _pairs(n)
        full = jnp.zeros((n, n, q, q), self.couplings.dtype).at[i, j].set(self.couplings)
        return full + jnp.transpose(full, (1, 0, 3, 2))

    def zero_sum_gauge(self) -> "PottsPairwise":
        """The same distribution with every block and field summing to zero along each colour axis.

        Row and column means of each block move into the fields, and the fields are centred
        (the constant is absorbed by ``Z``).
        """
        j = self.couplings
        row, col, mean = j.mean(2), j.mean(1), j.mean((1, 2))  # (pairs, q) over ν, over μ; (pairs,)
        gauged = j - row[:, :, None] - col[:, None, :] + mean[:, None, None]
        i, k = _pairs(self.space.n)
        h = self.fields.at[i].add(row - mean[:, None]).at[k].add(col - mean[:, None])
        return PottsPairwise(h - h.mean(1, keepdims=True), gauged)

    def energy(self, v):
        n = self.space.n
        i, j = _pairs(n)
        return -(self.fields[jnp.arange(n), v].sum() + self.couplings[jnp.arange(i.size), v[i], v[j]].sum())

    def lo_features(self, v_lo):
        # Everything within the low sites, per low state (l,), and the field the low sites put on each
        # colour of each high site, (l, n-k, q): a chunk then adds one gather.
        k, q = v_lo.shape[1], self.space.q
        full = self.tensor
        one_hot = jax.nn.one_hot(v_lo, q, dtype=full.dtype)  # (l, k, q)
        lo = jnp.einsum("liu,iu->l", one_hot, self.fields[:k])
        lo = lo + 0.5 * jnp.einsum("liu,ijuv,ljv->l", one_hot, full[:k, :k], one_hot)
        return lo, jnp.einsum("jiuv,liv->lju", full[k:, :k], one_hot)

    def neg_energy_chunk(self, features, v_hi):
        lo, cross = features
        n = self.space.n
        hi = jnp.arange(n - v_hi.shape[0], n)
        within = self.fields[hi, v_hi].sum() + 0.5 * self.tensor[hi[:, None], hi[None, :], v_hi[:, None], v_hi].sum()
        return lo + within + cross[:, jnp.arange(hi.size), v_hi].sum(-1)
