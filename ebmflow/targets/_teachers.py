"""Synthetic teachers: energy models whose distribution serves as a target.

Each returns a model; ``Target.from_model(teacher)`` gives the target. Sites of
a ``rows × cols`` grid are numbered ``i = r * cols + c``.
"""

import itertools
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from .._checks import prng_key
from ..energies._ising import HigherOrderIsing, Ising
from ..space import Spins


def _sites(n) -> int:
    return Spins(n).n


def random_ising(
    key, n: int, stds: Mapping[int, float], density: Mapping[int, float] | float = 1.0, dtype=None
) -> HigherOrderIsing:
    """Random generalised Ising teacher: couplings of order ``k`` i.i.d. ``N(0, stds[k]²)``.

    ``density`` (per order, or one number) is the fraction of the ``C(n, k)``
    subsets of order ``k`` that carry a coupling, chosen uniformly at random.
    Example (problem F1): ``stds={1: 0.2, 2: 0.3/√n, 3: 0.5/n}``.
    """
    n = _sites(n)
    dtype = dtype or jnp.result_type(float)
    if not stds or any(not 1 <= k <= n for k in stds):
        raise ValueError(f"stds must map orders 1..{n} to standard deviations; got {dict(stds)}")
    subsets, values = [], []
    key = prng_key(key)
    for k, std in sorted(stds.items()):
        key, k_pick, k_val = jax.random.split(key, 3)
        frac = density.get(k, 1.0) if isinstance(density, Mapping) else density
        if not 0 < frac <= 1:
            raise ValueError(f"density of order {k} must be in (0, 1]; got {frac}")
        all_k = [sum(1 << i for i in c) for c in itertools.combinations(range(n), k)]
        count = max(1, round(frac * len(all_k)))
        chosen = np.asarray(all_k)[np.sort(np.asarray(jax.random.permutation(k_pick, len(all_k))[:count]))]
        subsets.extend(int(x) for x in chosen)
        values.append(std * jax.random.normal(k_val, (count,), dtype))
    return HigherOrderIsing(n, subsets, jnp.concatenate(values))


def _grid_bonds(rows: int, cols: int, periodic: bool) -> list[tuple[int, int]]:
    """Nearest-neighbour bonds; a periodic side of length 2 gives the pair two bonds (coupling doubled)."""
    bonds = []
    for r, c in itertools.product(range(rows), range(cols)):
        for dr, dc in ((0, 1), (1, 0)):
            r2, c2 = r + dr, c + dc
            if periodic:
                r2, c2 = r2 % rows, c2 % cols
            if r2 < rows and c2 < cols and (r2, c2) != (r, c):
                bonds.append((r * cols + c, r2 * cols + c2))
    return bonds


def _ising_on_bonds(n: int, bonds, values, field: float, dtype) -> Ising:
    dtype = dtype or jnp.result_type(float)
    matrix = np.zeros((n, n))
    for (i, j), v in zip(bonds, values):
        matrix[i, j] += v
        matrix[j, i] += v
    return Ising.from_matrix(jnp.full((n,), field, dtype), jnp.asarray(matrix, dtype))


def ising_chain(
    n: int, beta: float, coupling: float = 1.0, field: float = 0.0, periodic: bool = True, dtype=None
) -> Ising:
    """1D ferromagnet at inverse temperature β: ``-E = β (J Σ s_i s_{i+1} + h Σ s_i)``."""
    bonds = _grid_bonds(1, _sites(n), periodic)
    return _ising_on_bonds(n, bonds, [beta * coupling] * len(bonds), beta * field, dtype)


def ising_grid(
    rows: int, cols: int, beta: float, coupling: float = 1.0, field: float = 0.0, periodic: bool = True, dtype=None
) -> Ising:
    """2D nearest-neighbour ferromagnet on a ``rows × cols`` grid at inverse temperature β."""
    n = _sites(rows * cols)
    bonds = _grid_bonds(rows, cols, periodic)
    return _ising_on_bonds(n, bonds, [beta * coupling] * len(bonds), beta * field, dtype)


def edwards_anderson(key, rows: int, cols: int, beta: float, periodic: bool = True, dtype=None) -> Ising:
    """±J Edwards–Anderson spin glass on a 2D grid: bond signs uniform, ``-E = β Σ J_ij s_i s_j``."""
    n = _sites(rows * cols)
    bonds = _grid_bonds(rows, cols, periodic)
    signs = 2 * np.asarray(jax.random.bernoulli(prng_key(key), 0.5, (len(bonds),))) - 1
    return _ising_on_bonds(n, bonds, beta * signs, 0.0, dtype)


def sparse_parity(n: int, sites, beta: float, dtype=None) -> HigherOrderIsing:
    """Sparse parity: ``p(s) ∝ exp(β Π_{i∈sites} s_i)``, a single coupling of order ``len(sites)``."""
    n = _sites(n)
    sites = tuple(int(i) for i in sites)
    if not sites or len(set(sites)) != len(sites) or not all(0 <= i < n for i in sites):
        raise ValueError(f"sites must be distinct indices in [0, {n}); got {sites}")
    return HigherOrderIsing(n, [sum(1 << i for i in sites)], jnp.asarray([beta], dtype or jnp.result_type(float)))
