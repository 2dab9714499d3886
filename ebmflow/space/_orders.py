"""Coupling vectors by order and by subset: bookkeeping on top of a space's basis (THEORY §1–2, §9).

Couplings and moments are arrays of shape ``(..., q**n)`` indexed like the states
(for spins: by subset bitmask ``S``, site ``i`` is bit ``i``; ``J[..., 0]`` is the
gauge ``J_∅``). Functions here take the space from a model, a target or a space, or
infer spins from a last axis of length ``2**n``.
"""

import numpy as np
from jaxtyping import Array, Float

from ._abstract import AbstractStateSpace
from ._spins import Spins
from ._transform import digits_of_size


def space_of(obj, size: int | None = None, what: str = "couplings") -> AbstractStateSpace:
    """The state space of ``obj`` (a space, or anything with ``.space``: a model, a target).

    ``obj = None`` with a vector length ``size`` means spins, ``size = 2**n``; an int means ``Spins(obj)``.
    """
    if isinstance(obj, AbstractStateSpace):
        return obj
    if obj is None:
        return Spins(digits_of_size(size, 2, what))
    if isinstance(obj, (int, np.integer)) and not isinstance(obj, bool):
        return Spins(obj)
    space = getattr(obj, "space", None)
    if not isinstance(space, AbstractStateSpace):
        raise TypeError(
            f"expected a state space, a number of spins, or a model or target (with a .space); got {type(obj).__name__}"
        )
    return space


def _space_of_couplings(couplings, space) -> AbstractStateSpace:
    """The space of a coupling vector (given, or spins inferred from its length), its last axis checked against it."""
    if not np.ndim(couplings):
        raise ValueError("couplings must be an array with a last axis of length q**n (2**n for spins); got a scalar")
    space = space_of(space, np.shape(couplings)[-1])
    space.check_length(couplings, "couplings")
    return space


def orders(n_or_space) -> np.ndarray:
    """The order of every coupling index, ``(q**n,)`` NumPy uint8 (for spins: ``popcount(S)``)."""
    return space_of(n_or_space).orders()


def subsets_of_order(n_or_space, k: int) -> np.ndarray:
    """Indices of the couplings of order ``k``, increasing (for spins: the ``C(n, k)`` bitmasks)."""
    space = space_of(n_or_space)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= space.n:
        raise ValueError(f"the order k must be an int in [0, n={space.n}]; got {k!r}")
    return np.flatnonzero(space.orders() == k)


def couplings_of_order(couplings: Float[Array, "... q**n"], k: int, space=None) -> Float[Array, "... c"]:
    """The order-``k`` entries of ``couplings``, in the order of `subsets_of_order`."""
    return couplings[..., subsets_of_order(_space_of_couplings(couplings, space), k)]


def order_norms(couplings: Float[Array, "... q**n"], space=None) -> Float[Array, "... n+1"]:
    """Euclidean norm of each order ``k = 0..n``: ``||J_k||`` (THEORY §2, §9; basis-independent)."""
    return _space_of_couplings(couplings, space).order_norms(couplings)


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


def all_states(n_or_space, dtype=None):
    """All states of a space (or of ``Spins(n)`` for an int, or of a model's or target's space), index order.

    For spins a ``(2**n, n)`` array of ±1 (``s_i = 1 - 2*bit_i(b)``). This materialises
    every state; exact sums never need it (they stream chunks).
    """
    return space_of(n_or_space).all_states(dtype)


def states_from_indices(index, n: int, dtype=None):
    """Spins of the states with the given indices: ``s_i = 1 - 2*bit_i(index)``."""
    return Spins(n).states_from_indices(index, dtype)
