"""Per-axis transforms of vectors over a state space: the fast Walsh–Hadamard transform and its radix-q kin.

A vector over ``q**n`` states (index ``b = Σ_i v_i q**i``, THEORY §1 and §9) is an
``n``-axis tensor. Applying the same ``q × q`` matrix ``m`` along every axis,
``x ↦ m^{⊗n} x``, costs O(n q^{n+1}) instead of O(q^{2n}). The fast
Walsh–Hadamard transform is the case ``q = 2``, ``m = [[1, 1], [1, -1]]``.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

_RADIX_SIZE = 16  # digits per pass: a (16, 16) Kronecker block moves the data n/4 times instead of n (q = 2)


def digits_of_size(size: int, q: int, what: str = "x") -> int:
    """``n`` such that ``size == q**n``, or a ValueError naming ``what``."""
    n = round(math.log(size, q)) if size >= 1 else -1
    if n < 0 or q**n != size:
        raise ValueError(f"{what} must have a last axis of length {q}**n; got length {size}")
    return n


def per_axis(x: Float[Array, "... q**n"], m, q: int | None = None) -> Float[Array, "... q**n"]:
    """``m^{⊗n} x`` along the last axis: ``out[k] = Σ_b Π_i m[k_i, b_i] x[b]`` (digits ``k_i``, ``b_i`` of base ``q``).

    ``m`` is a ``q × q`` matrix (NumPy or nested sequences; static). A pass multiplies
    the lowest ``r`` digits by ``m``'s ``r``-fold Kronecker power and rotates them to the
    top; ``n / r`` identical passes (one traced loop body, so the compiled program stays
    small) transform every digit and restore the order.
    """
    m = np.asarray(m, dtype=float)
    q = m.shape[0] if q is None else q
    x = jnp.asarray(x)
    if x.ndim == 0:
        raise ValueError(f"x must have a last axis of length {q}**n; got a scalar")
    x = x.astype(jnp.result_type(x, float if np.any(m != np.round(m)) else x.dtype))  # e.g. 1/2 makes ints floats
    n = digits_of_size(x.shape[-1], q)

    def rotate(x, r):
        kron = np.ones((1, 1))
        for _ in range(r):
            kron = np.kron(kron, m)
        y = x.reshape((*x.shape[:-1], q ** (n - r), q**r))
        # one product that writes the rotated layout (no separate transpose pass); HIGHEST: no TF32
        y = jnp.einsum("kb,...ab->...ka", jnp.asarray(kron, x.dtype), y, precision=jax.lax.Precision.HIGHEST)
        return y.reshape(x.shape)

    radix = max(1, int(math.log(_RADIX_SIZE, q) + 1e-9))
    passes, rest = divmod(n, radix)
    if passes:
        x = jax.lax.fori_loop(0, passes, lambda _, x: rotate(x, radix), x)
    return rotate(x, rest) if rest else x


_HADAMARD = np.array([[1, 1], [1, -1]])


@jax.jit
def fwht(x: Float[Array, "... 2**n"]) -> Float[Array, "... 2**n"]:
    """Unnormalised Walsh–Hadamard transform along the last axis, Sylvester order.

    ``fwht(x)[S] = Σ_b (-1)^popcount(S & b) x[b]``; ``fwht(fwht(x)) = 2**n x``.
    """
    return per_axis(x, _HADAMARD)
