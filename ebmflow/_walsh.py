"""Walsh–Hadamard transform and coupling bookkeeping (THEORY §1–2).

Couplings ``J`` of ``n`` spins are arrays of shape ``(..., 2**n)`` indexed by
subset bitmask ``S`` (site ``i`` is bit ``i``); ``J[..., 0]`` is ``J_∅``.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float


def log2_size(size: int, what: str = "x") -> int:
    """``n`` such that ``size == 2**n``, or a ValueError."""
    if size < 1 or size & (size - 1):
        raise ValueError(f"{what} must have a last axis of length 2**n; got length {size}")
    return int(math.log2(size))


_RADIX_BITS = 4  # bits per pass: a (16, 16) matrix product moves the data n/4 times instead of n


def _butterfly(x, m):
    """Apply the same 2×2 matrix ``m`` to every bit of the last axis (O(n 2^n)).

    A pass multiplies the low ``k`` bits by ``m``'s ``k``-fold Kronecker power and
    rotates them to the top: ``n / k`` identical passes (one traced loop body, so the
    compiled program stays small) transform every bit and restore the order.
    """
    x = jnp.asarray(x)
    x = x.astype(jnp.result_type(x, *m[0], *m[1]))  # e.g. the 1/2 of the {0,1} maps makes integers floats
    n = log2_size(x.shape[-1])

    def rotate(x, k):
        kron = np.ones((1, 1))
        for _ in range(k):
            kron = np.kron(kron, np.asarray(m, dtype=float))
        y = x.reshape((*x.shape[:-1], 2 ** (n - k), 2 ** k))
        y = jnp.matmul(y, jnp.asarray(kron.T, x.dtype), precision=jax.lax.Precision.HIGHEST)  # no TF32
        return jnp.swapaxes(y, -1, -2).reshape(x.shape)

    passes, rest = divmod(n, _RADIX_BITS)
    if passes:
        x = jax.lax.fori_loop(0, passes, lambda _, x: rotate(x, _RADIX_BITS), x)
    return rotate(x, rest) if rest else x


def fwht(x: Float[Array, "... 2**n"]) -> Float[Array, "... 2**n"]:
    """Unnormalised Walsh–Hadamard transform along the last axis, Sylvester order.

    ``fwht(x)[S] = Σ_b (-1)^popcount(S & b) x[b]``; ``fwht(fwht(x)) = 2**n x``.
    """
    return _butterfly(x, ((1, 1), (1, -1)))


_SPIN_MAPS = {
    # a + b s_i in terms of v_i, and back; rows give the (without i, with i) coefficients.
    "2v-1": (((1, -1), (0, 2)), ((1, 0.5), (0, 0.5))),
    "1-2v": (((1, 1), (0, -2)), ((1, 0.5), (0, -0.5))),
}


def _spin_map(spin_map: str):
    if spin_map not in _SPIN_MAPS:
        raise ValueError(f"spin_map must be '2v-1' or '1-2v'; got {spin_map!r}")
    return _SPIN_MAPS[spin_map]


def to_binary_basis(couplings: Float[Array, "... 2**n"], spin_map: str = "2v-1") -> Float[Array, "... 2**n"]:
    """Spin-basis couplings ``J`` -> {0,1}-basis coefficients ``K``.

    ``Σ_S J_S Π_{i∈S} s_i = Σ_T K_T Π_{i∈T} v_i`` for ``s = 2v - 1`` (or ``1 - 2v``).
    """
    return _butterfly(couplings, _spin_map(spin_map)[0])


def from_binary_basis(coefficients: Float[Array, "... 2**n"], spin_map: str = "2v-1") -> Float[Array, "... 2**n"]:
    """Inverse of `to_binary_basis`."""
    return _butterfly(coefficients, _spin_map(spin_map)[1])


def orders(n: int) -> np.ndarray:
    """``popcount(S)`` for every subset ``S < 2**n``: shape ``(2**n,)``, NumPy ``uint8`` (static).

    Built by doubling (the subsets with top bit ``i`` have one more element), in O(2**n) memory.
    """
    counts = np.zeros(2**n, np.uint8)
    for i in range(n):
        counts[2**i : 2 ** (i + 1)] = counts[: 2**i] + 1
    return counts


def subsets_of_order(n: int, k: int) -> np.ndarray:
    """Bitmasks of the ``C(n, k)`` subsets of order ``k``, increasing."""
    return np.flatnonzero(orders(n) == k)


def couplings_of_order(couplings: Float[Array, "... 2**n"], k: int) -> Float[Array, "... c"]:
    """The order-``k`` entries of ``couplings``, in the order of `subsets_of_order`."""
    n = log2_size(couplings.shape[-1], "couplings")
    return couplings[..., subsets_of_order(n, k)]


def order_norms(couplings: Float[Array, "... 2**n"]) -> Float[Array, "... n+1"]:
    """Euclidean norm of each order ``k = 0..n``: ``||J_k||``."""
    n = log2_size(couplings.shape[-1], "couplings")
    squares = jnp.moveaxis(jnp.asarray(couplings) ** 2, -1, 0)
    return jnp.sqrt(jnp.moveaxis(jax.ops.segment_sum(squares, jnp.asarray(orders(n)), n + 1), 0, -1))


def sites(subset: int) -> tuple[int, ...]:
    """The sites of a subset bitmask: ``sites(0b1011) == (0, 1, 3)``."""
    if int(subset) < 0:
        raise ValueError(f"a subset is a non-negative bitmask; got {subset}")
    return tuple(i for i in range(int(subset).bit_length()) if subset >> i & 1)


def subset(*site_list: int) -> int:
    """The bitmask of a set of sites: ``subset(0, 1, 3) == 0b1011``."""
    if len(set(site_list)) != len(site_list) or any(i < 0 for i in site_list):
        raise ValueError(f"sites must be distinct non-negative ints; got {site_list}")
    return sum(1 << i for i in site_list)
