"""The categorical (Potts) state space {0..q-1}^n (THEORY §9)."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from .._checks import is_concrete
from ._abstract import AbstractStateSpace, check_chunk_size, check_mesh, check_sites


def helmert(q: int) -> np.ndarray:
    """An orthonormal basis ``U`` of R^q (columns) whose column 0 is constant, ``1/√q``.

    Column ``k >= 1`` is ``(1, ..., 1, -k, 0, ..., 0) / √(k(k+1))`` with ``k`` ones (Helmert's
    basis): colour ``k`` against the mean of the colours before it. For ``q = 2`` column 1
    is ``(1, -1)/√2``, the spin ``s = 1 - 2v``.
    """
    u = np.zeros((q, q))
    u[:, 0] = 1 / math.sqrt(q)
    for k in range(1, q):
        u[:k, k] = 1
        u[k, k] = -k
        u[:, k] /= math.sqrt(k * (k + 1))
    return u


class Potts(AbstractStateSpace):
    """``n`` sites with ``q`` colours ``v_i ∈ {0..q-1}``; state index ``b = Σ_i v_i q**i`` (site 0 least significant).

    Energies see a state as an int32 vector of colours (`encode` gives the one-hot form,
    site-major: entry ``i*q + μ``). The basis of the effective model is
    ``φ_k(v) = Π_i u[v_i, k_i]`` with ``u = √q · helmert(q)`` (column 0 all ones): the
    zero-sum (ANOVA) decomposition of THEORY §9, computed for all subsets at once by the
    per-axis transform. For ``q = 2`` this is the spin space: ``v_i = bit_i(b)``, ``s_i = 1 - 2 v_i``.
    ``chunk_size``: states per chunk of an exact sum, rounded down to a power of ``q``; ``mesh``:
    devices the chunks are split over (`ebmflow.sharded`).
    """

    n: int = eqx.field(static=True)
    q: int = eqx.field(static=True)
    chunk_size: int = eqx.field(static=True)
    mesh: jax.sharding.Mesh | None = eqx.field(static=True)

    def __init__(self, n: int, q: int, chunk_size: int | None = None, mesh=None):
        n = check_sites(n)
        if isinstance(q, bool) or not isinstance(q, (int, np.integer)) or q < 2:
            raise ValueError(f"the number of colours q must be an int >= 2; got {q!r}")
        self.n, self.q = n, int(q)
        self.chunk_size = check_chunk_size(chunk_size)
        self.mesh = check_mesh(mesh)

    @property
    def label(self) -> str:
        return f"Potts({self.n}, q={self.q})"

    @property
    def basis(self) -> np.ndarray:
        return math.sqrt(self.q) * helmert(self.q)

    def states_from_indices(self, index: Int[Array, "*batch"], dtype=None) -> Int[Array, "*batch n"]:
        """The colours of the states with the given indices, int32 (``dtype`` is ignored: colours are ints)."""
        return self.digits(index).astype(jnp.int32)

    def state_index(self, states) -> Int[Array, "*batch"]:
        """``Σ_i v_i q**i`` of colour vectors ``(..., n)`` (checked when concrete: ints in ``0..q-1``)."""
        if is_concrete(states):
            v = np.asarray(states)
            if v.ndim == 0 or v.shape[-1] != self.n or not (np.issubdtype(v.dtype, np.integer) or v.dtype == bool) or \
                    (v.size and (v.min() < 0 or v.max() >= self.q)):
                raise ValueError(f"states of {self} must be integer colours in 0..{self.q - 1} with a last axis of "
                                 f"length {self.n}; got shape {v.shape}, dtype {v.dtype}"
                                 + (f", values {v.min()}..{v.max()}" if v.size and np.issubdtype(v.dtype, np.number)
                                    else ""))
        states = jnp.asarray(states)
        dtype = self.index_dtype
        powers = jnp.asarray([self.q**i for i in range(states.shape[-1])], dtype)
        return (states.astype(dtype) * powers).sum(-1)

    def state_dtype(self, dtype):
        return jnp.dtype(jnp.int32)

    def to_digits(self, states) -> Int[Array, "*batch n"]:
        return jnp.asarray(states).astype(jnp.int32)

    @property
    def site_width(self) -> int:
        return self.q

    def encode(self, states, dtype=None) -> Float[Array, "*batch n*q"]:
        states = jnp.asarray(states)
        one_hot = jax.nn.one_hot(states, self.q, dtype=dtype or jnp.result_type(float))
        return one_hot.reshape(*states.shape[:-1], states.shape[-1] * self.q)
