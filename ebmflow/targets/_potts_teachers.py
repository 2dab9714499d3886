"""Synthetic teachers over q colours (THEORY §9): random Potts models and the Blume–Capel chain.

Both are `CouplingModel`s (every coupling given in the basis of the space), so their
effective couplings are exactly the ones set here; ``Target.from_model(teacher)`` gives the target.
"""

import itertools
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from .._budget import check_memory, check_states
from .._checks import prng_key
from ..energies._coupling_model import CouplingModel
from ..space import Potts

#: Blume–Capel spins of the colours 0, 1, 2.
BLUME_CAPEL_SPINS = np.array([1.0, -1.0, 0.0])


def random_potts(
    key, n: int, q: int, stds: Mapping[int, float], density: Mapping[int, float] | float = 1.0, dtype=None
) -> CouplingModel:
    """Random Potts teacher: the couplings ``J_k`` of order ``k`` (basis of ``Potts(n, q)``) i.i.d. ``N(0, stds[k]²)``.

    ``density`` (per order, or one number) is the fraction of the ``C(n, k)`` site subsets of
    order ``k`` that carry couplings, chosen uniformly at random; a chosen subset gets all its
    ``(q-1)**k`` couplings. The zero-sum tensor of a subset then has mean square
    ``q**-k Σ F_S² = (q-1)**k stds[k]²``.
    """
    space = Potts(n, q)
    dtype = dtype or jnp.result_type(float)
    if not stds or any(not 1 <= k <= space.n for k in stds):
        raise ValueError(f"stds must map orders 1..{space.n} to standard deviations; got {dict(stds)}")
    _check_size("random Potts", space)
    digits = np.asarray(space.digits(np.arange(space.size)))
    support = ((digits != 0) * (1 << np.arange(space.n))).sum(1)  # the site subset of each coefficient, as a bitmask
    orders = space.orders()
    j = np.zeros(space.size)
    key = prng_key(key)
    for k, std in sorted(stds.items()):
        key, k_pick, k_val = jax.random.split(key, 3)
        frac = density.get(k, 1.0) if isinstance(density, Mapping) else density
        if not 0 < frac <= 1:
            raise ValueError(f"density of order {k} must be in (0, 1]; got {frac}")
        subsets = np.asarray([sum(1 << i for i in c) for c in itertools.combinations(range(space.n), k)])
        count = max(1, round(frac * subsets.size))
        chosen = subsets[np.asarray(jax.random.permutation(k_pick, subsets.size))[:count]]
        mask = (orders == k) & np.isin(support, chosen)
        j[mask] = std * np.asarray(jax.random.normal(k_val, (int(mask.sum()),), jnp.float64))
    return CouplingModel(space, jnp.asarray(j[1:], dtype))


def blume_capel(
    n: int, beta: float, j2: float = 1.0, j3: float = 0.0, periodic: bool = True, dtype=None
) -> CouplingModel:
    """The Blume–Capel chain of THEORY §9 over ``Potts(n, 3)``: spins ``σ = (+1, -1, 0)`` on colours 0, 1, 2,

    ``-E = β Σ_i [J2 σ_i σ_{i+1} + J3 σ_i σ_{i+1} σ_{i+2}]`` (indices mod ``n`` when periodic).
    Since ``Σ_μ σ_μ = 0`` its zero-sum pair couplings are exactly ``β J2 σ_μ σ_ν`` on neighbours
    and zero elsewhere, and its triplets ``β J3 σ σ σ`` on consecutive sites. So that each bond
    and triplet is counted once, ``n >= 3`` on a ring (``n >= 4`` with ``J3 != 0``), ``n >= 2`` open.
    Both teachers refuse spaces over the state budget (`ebmflow.set_state_budget`).
    """
    space = Potts(n, 3)
    for name, value in dict(beta=beta, j2=j2, j3=j3).items():
        if not np.isfinite(value):
            raise ValueError(f"{name} must be a finite number; got {value!r}")
    smallest = (4 if j3 else 3) if periodic else 2
    if space.n < smallest:
        chain = f"a periodic chain{' with J3 != 0' if j3 else ''}" if periodic else "an open chain"
        raise ValueError(f"a Blume–Capel teacher on {chain} needs n >= {smallest}, so that each bond and triplet is "
                         f"counted once; got n={space.n}")
    _check_size("Blume–Capel", space)
    sigma = BLUME_CAPEL_SPINS[np.asarray(space.digits(np.arange(space.size)))]  # (3**n, n)
    last = space.n if periodic else space.n - 1
    neg_e = sum(j2 * sigma[:, i] * sigma[:, (i + 1) % space.n] for i in range(last))
    last = space.n if periodic else space.n - 2
    neg_e = neg_e + sum(j3 * sigma[:, i] * sigma[:, (i + 1) % space.n] * sigma[:, (i + 2) % space.n]
                        for i in range(max(last, 0)))
    j = np.asarray(space.transform(jnp.asarray(beta * neg_e, jnp.float64))) / space.size
    return CouplingModel(space, jnp.asarray(j[1:], dtype or jnp.result_type(float)))


def _check_size(name: str, space: Potts) -> None:
    """The state and memory budgets for a teacher built over all ``q**n`` states (digits, couplings, transform)."""
    check_states(f"the {name} teacher over {space.label}", space.size)
    check_memory(f"the {name} teacher over {space.label}", space.size * (space.n + 4) * 8)
