"""The binary state space {-1, +1}^n (THEORY §1)."""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from ._abstract import AbstractStateSpace, check_chunk_size, check_mesh, check_sites
from ._transform import fwht, per_axis


class Spins(AbstractStateSpace):
    """``n`` spins ``s_i ∈ {-1, +1}``: state index ``b`` has ``s_i = 1 - 2*bit_i(b)``, so ``b = 0`` is all +1.

    Energies see a state as a float vector of ±1 (in the model's dtype). The basis
    of the effective model is the Walsh basis ``χ_S(s) = Π_{i∈S} s_i``, indexed by the
    bitmask ``S`` (site ``i`` is bit ``i``), and the transform is `fwht`.
    ``chunk_size``: states per chunk of an exact sum, rounded down to a power of two
    (default 2**10; see `ebmflow.with_chunk_size`); ``mesh``: devices the chunks are split
    over (`ebmflow.sharded`).
    """

    n: int = eqx.field(static=True)
    chunk_size: int = eqx.field(static=True)
    mesh: jax.sharding.Mesh | None = eqx.field(static=True)

    def __init__(self, n: int, chunk_size: int | None = None, mesh=None):
        self.n = check_sites(n, "the number of spins n")
        self.chunk_size = check_chunk_size(chunk_size)
        self.mesh = check_mesh(mesh)

    @property
    def q(self) -> int:
        return 2

    @property
    def label(self) -> str:
        return str(self.n)

    @property
    def basis(self) -> np.ndarray:
        return np.array([[1, 1], [1, -1]])  # u[v, k]: column 1 is the spin 1 - 2v

    def states_from_indices(self, index: Int[Array, "*batch"], dtype=None) -> Float[Array, "*batch n"]:
        """Spins ``s_i = 1 - 2*bit_i(index)`` in ``dtype`` (default float)."""
        index = jnp.asarray(index)
        bits = (index[..., None] >> jnp.arange(self.n, dtype=index.dtype)) & 1
        return (1 - 2 * bits).astype(dtype or jnp.result_type(float))

    def state_index(self, states) -> Int[Array, "*batch"]:
        """The index of ±1 states of shape ``(..., n)``."""
        return state_index(states)

    def state_dtype(self, dtype):
        return jnp.dtype(dtype)

    def to_digits(self, states) -> Int[Array, "*batch n"]:
        return (jnp.asarray(states) < 0).astype(jnp.int32)

    @property
    def site_width(self) -> int:
        return 1

    def encode(self, states, dtype=None) -> Float[Array, "*batch n"]:
        states = jnp.asarray(states)
        return states if dtype is None else states.astype(dtype)

    def transform(self, x: Float[Array, "... 2**n"]) -> Float[Array, "... 2**n"]:
        return fwht(self.check_length(x))


def state_index(s) -> Int[Array, "*batch"]:
    """The index of ±1 states of shape ``(..., n)``: ``Σ_i [s_i < 0] 2**i``."""
    s = jnp.asarray(s)
    bits = (s < 0).astype(jnp.int64 if s.shape[-1] > 30 else jnp.int32)
    return (bits << jnp.arange(s.shape[-1], dtype=bits.dtype)).sum(-1)


_SPIN_MAPS = {
    # a + b s_i in terms of v_i, and back; rows give the (without i, with i) coefficients.
    "2v-1": (((1, -1), (0, 2)), ((1, 0.5), (0, 0.5))),
    "1-2v": (((1, 1), (0, -2)), ((1, 0.5), (0, -0.5))),
}


def _spin_map(spin_map: str):
    if spin_map not in _SPIN_MAPS:
        raise ValueError(f"spin_map must be '2v-1' or '1-2v'; got {spin_map!r}")
    return _SPIN_MAPS[spin_map]


@functools.partial(jax.jit, static_argnames="spin_map")
def to_binary_basis(couplings: Float[Array, "... 2**n"], spin_map: str = "2v-1") -> Float[Array, "... 2**n"]:
    """Spin-basis couplings ``J`` -> {0,1}-basis coefficients ``K``.

    ``Σ_S J_S Π_{i∈S} s_i = Σ_T K_T Π_{i∈T} v_i`` for ``s = 2v - 1`` (or ``1 - 2v``).
    """
    return per_axis(couplings, _spin_map(spin_map)[0], 2)


@functools.partial(jax.jit, static_argnames="spin_map")
def from_binary_basis(coefficients: Float[Array, "... 2**n"], spin_map: str = "2v-1") -> Float[Array, "... 2**n"]:
    """Inverse of `to_binary_basis`."""
    return per_axis(coefficients, _spin_map(spin_map)[1], 2)
