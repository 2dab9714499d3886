"""Ising models: pairwise (fully visible Boltzmann machine) and higher order."""

import itertools
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._checks import prng_key
from .._tree import as_parameter
from ..space import Spins
from ._base import AbstractEnergy


def _pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(n, 1)


class Ising(AbstractEnergy):
    """Pairwise Ising model: ``-E(s) = Σ_i h_i s_i + Σ_{i<j} J_ij s_i s_j``.

    ``fields`` has shape ``(n,)``; ``couplings`` has shape ``(n(n-1)/2,)`` in the
    order of ``numpy.triu_indices(n, 1)`` (so every parameter is free; use
    `Ising.from_matrix` for a symmetric matrix).
    """

    linear_in_parameters: ClassVar[bool] = True
    space: Spins
    fields: Float[Array, " n"]
    couplings: Float[Array, " pairs"]

    def __init__(self, fields, couplings):
        fields, couplings = as_parameter(fields), as_parameter(couplings)
        n = fields.shape[0] if fields.ndim == 1 else 0
        if fields.ndim != 1 or couplings.shape != (n * (n - 1) // 2,):
            raise ValueError(
                f"Ising needs fields of shape (n,) and couplings of shape (n(n-1)/2,); got "
                f"{fields.shape} and {couplings.shape}"
            )
        self.space = Spins(n)
        self.fields, self.couplings = fields, couplings

    @classmethod
    def from_matrix(cls, fields, matrix) -> "Ising":
        """From fields ``(n,)`` and a symmetric ``(n, n)`` coupling matrix (diagonal ignored)."""
        matrix = np.asarray(matrix)
        if not (np.issubdtype(matrix.dtype, np.number) or matrix.dtype == bool):
            raise ValueError(f"the coupling matrix must hold real numbers; got an array of dtype {matrix.dtype}")
        if np.iscomplexobj(matrix):
            raise ValueError("the coupling matrix must be real; got complex entries")
        if matrix.ndim == 2 and not np.all(np.isfinite(matrix)):
            raise ValueError("the coupling matrix has NaN or infinite entries; couplings must be finite")
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or not np.allclose(matrix, matrix.T):
            raise ValueError(f"the coupling matrix must be square and symmetric; got shape {matrix.shape}")
        return cls(fields, jnp.asarray(matrix)[_pairs(matrix.shape[0])])

    @classmethod
    def init(cls, key, n: int, scale: float = 0.01, dtype=None) -> "Ising":
        """Fields and couplings i.i.d. ``N(0, scale²)``."""
        k1, k2 = jax.random.split(prng_key(key))
        dtype = dtype or jnp.result_type(float)
        pairs = n * (n - 1) // 2
        return cls(scale * jax.random.normal(k1, (n,), dtype), scale * jax.random.normal(k2, (pairs,), dtype))

    @property
    def matrix(self) -> Float[Array, "n n"]:
        """Symmetric coupling matrix with zero diagonal."""
        i, j = _pairs(self.n)
        m = jnp.zeros((self.n, self.n), self.couplings.dtype).at[i, j].set(self.couplings)
        return m + m.T

    def energy(self, s):
        return -(self.fields @ s + 0.5 * s @ self.matrix @ s)

    def lo_features(self, s_lo):
        k = s_lo.shape[1]
        m, h = self.matrix, self.fields
        lo = s_lo @ h[:k] + 0.5 * jnp.einsum("li,ij,lj->l", s_lo, m[:k, :k], s_lo)
        return lo, m[k:, :k] @ s_lo.T  # (l,) and the fields the low bits put on the high bits, (n-k, l)

    def neg_energy_chunk(self, features, s_hi):
        lo, cross = features
        k = self.n - s_hi.shape[0]
        m, h = self.matrix, self.fields
        return lo + s_hi @ cross + s_hi @ h[k:] + 0.5 * s_hi @ m[k:, k:] @ s_hi


def _parity(s, masks):
    """``χ_S(s) = Π_{i∈S} s_i`` for boolean masks ``(K, n)``: shape ``(..., K)``."""
    return jnp.prod(jnp.where(masks, s[..., None, :], 1), axis=-1)


def _masks(subsets: tuple[int, ...], n: int) -> np.ndarray:
    return (np.asarray(subsets, dtype=np.int64)[:, None] >> np.arange(n)) & 1 == 1


class HigherOrderIsing(AbstractEnergy):
    """Generalised Ising model ``-E(s) = Σ_S J_S χ_S(s)`` on a list of subsets.

    ``subsets`` are bitmasks (site ``i`` is bit ``i``), static; ``couplings`` has
    shape ``(len(subsets),)``.
    """

    linear_in_parameters: ClassVar[bool] = True
    space: Spins
    subsets: tuple[int, ...] = eqx.field(static=True)
    couplings: Float[Array, " k"]

    def __init__(self, n: int, subsets, couplings):
        self.space = Spins(n)
        self.subsets = tuple(int(x) for x in subsets)
        self.couplings = as_parameter(couplings)
        if not self.subsets:
            raise ValueError("HigherOrderIsing needs at least one subset (max_order >= 1); got none")
        bad = [x for x in self.subsets if not 0 < x < 2**n]
        if bad:
            raise ValueError(f"subsets must be nonzero bitmasks below 2**n = {2**n}; got {bad[:5]}")
        if len(set(self.subsets)) != len(self.subsets):
            raise ValueError("subsets must not repeat")
        if self.couplings.shape != (len(self.subsets),):
            raise ValueError(
                f"couplings must have shape ({len(self.subsets)},), one per subset; got {self.couplings.shape}"
            )

    @staticmethod
    def subsets_up_to(n: int, max_order: int) -> tuple[int, ...]:
        """All subsets of order 1..max_order, by order then lexicographically."""
        return tuple(
            sum(1 << i for i in c) for k in range(1, max_order + 1) for c in itertools.combinations(range(n), k)
        )

    @classmethod
    def init(cls, key, n: int, max_order: int = 2, scale: float = 0.01, subsets=None, dtype=None):
        """Couplings i.i.d. ``N(0, scale²)`` on ``subsets`` (default: all of order ≤ max_order)."""
        subsets = cls.subsets_up_to(n, max_order) if subsets is None else tuple(subsets)
        dtype = dtype or jnp.result_type(float)
        return cls(n, subsets, scale * jax.random.normal(prng_key(key), (len(subsets),), dtype))

    @property
    def width(self) -> int:
        return len(self.subsets)

    def energy(self, s):
        return -(_parity(s, _masks(self.subsets, self.n)) @ self.couplings)

    def lo_features(self, s_lo):
        # J_S χ_{S_lo}(s_lo), (K, l): each chunk is then one vector-matrix product with χ_{S_hi}(s_hi).
        k = s_lo.shape[1]
        return self.couplings[:, None] * _parity(s_lo, _masks(self.subsets, self.n)[:, :k]).T

    def neg_energy_chunk(self, features, s_hi):
        k = self.n - s_hi.shape[0]
        return _parity(s_hi, _masks(self.subsets, self.n)[:, k:]) @ features
