"""The state space {-1,+1}^n: state indices, spins, and the chunking of exact sums.

Convention (THEORY §1): state index ``b`` in ``[0, 2**n)`` has spins
``s_i = 1 - 2*bit_i(b)``, bit 0 is site 0, so ``b = 0`` is the all-(+1) state.

Exact sums stream over chunks. The index is split into high and low bits,
``b = hi * 2**n_lo + lo``, i.e. ``s = (s_lo, s_hi)`` with sites ``0..n_lo-1`` in
``s_lo``. One chunk is one value of ``hi`` with all ``2**n_lo`` values of ``lo``.
Energies compute what depends on the low bits alone once per sum and then
evaluate each chunk from it and one high-bit state, which lets linear terms
separate over the split (THEORY §8). Chunks are independent, so the chunk axis
is the one to shard over devices.
"""

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from ._memory import check_fits

DEFAULT_CHUNK_SIZE = 2**10
MAX_SPINS = 48  # index arithmetic stays exact in int64 far beyond any size that fits in memory


def check_n(n: int) -> int:
    """Validate a number of spins."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"the number of spins n must be a positive int; got {n!r}")
    if n > MAX_SPINS:
        raise ValueError(f"n={n} spins is beyond exact enumeration (2**n states); ebmflow accepts n <= {MAX_SPINS}")
    return int(n)


def states_from_indices(index: Int[Array, "*batch"], n: int, dtype=None) -> Float[Array, "*batch n"]:
    """Spins of the states with the given indices: ``s_i = 1 - 2*bit_i(index)``."""
    index = jnp.asarray(index)
    bits = (index[..., None] >> jnp.arange(n, dtype=index.dtype)) & 1
    return (1 - 2 * bits).astype(dtype or jnp.result_type(float))


def all_states(n: int, dtype=None) -> Float[Array, "2**n n"]:
    """All ``2**n`` states as a ``(2**n, n)`` array of ±1 in index order.

    This materialises ``2**n * n`` numbers; exact sums never need it (they stream chunks).
    """
    n = check_n(n)
    dtype = jnp.dtype(dtype or jnp.result_type(float))
    check_fits(f"all_states({n})", 2**n * n * dtype.itemsize)
    return states_from_indices(jnp.arange(2**n), n, dtype)


def state_index(s) -> Int[Array, "*batch"]:
    """Inverse of `states_from_indices`: the index of ±1 states of shape ``(..., n)``."""
    s = jnp.asarray(s)
    bits = (s < 0).astype(jnp.int64 if s.shape[-1] > 30 else jnp.int32)
    return (bits << jnp.arange(s.shape[-1], dtype=bits.dtype)).sum(-1)


class Chunking(NamedTuple):
    """Static plan of a streamed state sum (see the module docstring): ``2**n_hi`` chunks of ``2**n_lo`` states."""

    n: int
    n_lo: int  # low bits, enumerated in full inside every chunk

    @property
    def n_hi(self) -> int:
        return self.n - self.n_lo

    @property
    def n_chunks(self) -> int:
        return 2**self.n_hi

    @property
    def chunk_states(self) -> int:
        return 2**self.n_lo

    def lo_states(self, dtype) -> Float[Array, "2**n_lo n_lo"]:
        return states_from_indices(jnp.arange(2**self.n_lo), self.n_lo, dtype)

    def hi_state(self, chunk: Int[Array, ""], dtype) -> Float[Array, " n_hi"]:
        return states_from_indices(chunk, self.n_hi, dtype)


def join_states(s_lo: Float[Array, "l k"], s_hi: Float[Array, " n-k"]) -> Float[Array, "l n"]:
    """The ``l`` states ``(s_lo[j], s_hi)``: every low-bit state with one high-bit state, index order."""
    return jnp.concatenate([s_lo, jnp.broadcast_to(s_hi, (s_lo.shape[0], s_hi.shape[0]))], axis=-1)


def chunking(n: int, chunk_size: int | None = None) -> Chunking:
    """Plan chunks of ``chunk_size`` states rounded down to a power of two (default 2**10), at most ``2**n``.

    Per-chunk work that does not separate over the split is done once per chunk,
    so chunks of ~1000 states keep it small while the hoisted low-bit work still fits in cache.
    """
    n = check_n(n)
    chunk_size = DEFAULT_CHUNK_SIZE if chunk_size is None else chunk_size
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int (a number of states); got {chunk_size!r}")
    return Chunking(n=n, n_lo=min(n, int(chunk_size).bit_length() - 1))
