"""Zero-sum coupling tensors ``F_S(v_S)`` of chosen site subsets (THEORY §9), from the couplings in the basis."""

import itertools

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ..energies._base import AbstractEnergy, check_energy
from ..exact._target import Target
from ._couplings import couplings


def check_site_tuples(space, sites) -> np.ndarray:
    """``sites`` as an int array ``(T, k)`` of distinct in-range sites per row (a single tuple gives ``T = 1``)."""
    try:
        arr = np.asarray(sites)
    except ValueError:  # ragged
        arr = np.asarray(None)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.integer) or arr.ndim not in (1, 2) or arr.size == 0:
        raise ValueError(f"sites must be a tuple of site indices, or a list of tuples of one length; got {sites!r}")
    rows = arr.reshape(-1, arr.shape[-1])
    bad = [tuple(r) for r in rows if len(set(r.tolist())) != len(r) or r.min() < 0 or r.max() >= space.n]
    if bad:
        raise ValueError(f"sites must be distinct indices in [0, {space.n}); got {bad[0]}")
    return rows


def tensors_from_couplings(space, j: Float[Array, "*batch states"], sites) -> Float[Array, "..."]:
    """``F_S(v_S) = Σ_{supp k = S} J_k Π_{i∈S} u[v_i, k_i]`` for each row ``S`` of ``sites``.

    ``j`` are couplings in the basis of ``space`` (`ebmflow.couplings`); the result has a
    colour axis per site, in the order the sites are given, and sums to zero along each.
    """
    rows = check_site_tuples(space, sites)
    k, q = rows.shape[1], space.q
    nonzero = np.asarray(list(itertools.product(range(1, q), repeat=k)))  # ((q-1)**k, k) basis digits
    index = (nonzero[None, :, :] * (q ** rows)[:, None, :]).sum(-1)  # (T, (q-1)**k)
    c = jnp.asarray(j)[..., index].reshape(*jnp.shape(j)[:-1], len(rows), *(q - 1,) * k)
    u = jnp.asarray(space.basis[:, 1:], c.dtype)  # (q, q-1): the non-constant basis columns
    for axis in range(k):
        axis = c.ndim - k + axis
        c = jnp.moveaxis(jnp.tensordot(c, u, axes=([axis], [1])), -1, axis)
    return c


def coupling_tensor(model_or_target: AbstractEnergy | Target, sites) -> Float[Array, "..."]:
    """The zero-sum coupling tensor ``F_S(v_S)`` of the effective model on the sites ``S`` (THEORY §9).

    ``sites``: one tuple of distinct sites (result ``(q,) * len(sites)``: fields ``(q,)``, pairs
    ``(q, q)``, triplets ``(q, q, q)``, axes in the order given), or a list of tuples of one
    length (result ``(T, q, ..., q)``). Every tensor sums to zero along every colour axis. For
    spins (``q = 2``, colour ``v = (1 - s)/2``) it is ``J_S Π_{i∈S} s_i``. Computed from all
    couplings (`ebmflow.couplings`), so the space must be enumerable.
    """
    space = (model_or_target if isinstance(model_or_target, Target) else check_energy(model_or_target)).space
    rows = check_site_tuples(space, sites)
    tensors = tensors_from_couplings(space, couplings(model_or_target), rows)
    return tensors if np.ndim(sites) == 2 else tensors[0]
