"""Models parametrised by all couplings: the full generalised Ising (Walsh) and Potts models (THEORY §2–3, §9)."""

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._budget import check_memory
from .._checks import prng_key
from .._tree import as_parameter
from ..space import AbstractStateSpace, Spins
from ..space._transform import digits_of_size
from ._base import AbstractEnergy


class AbstractCouplingModel(AbstractEnergy):
    """``-E(v) = Σ_{k≠0} J_k φ_k(v)`` over every basis function of the space, ``couplings[k-1] = J_k``.

    Its coupling Jacobian is the identity, so its flow is gradient descent on a strictly
    convex function and converges to the target's couplings (THEORY §3).
    """

    linear_in_parameters: ClassVar[bool] = True
    space: eqx.AbstractVar[AbstractStateSpace]
    couplings: eqx.AbstractVar[Float[Array, " states-1"]]

    @property
    def width(self) -> int:
        return self.space.q ** ((self.n + 1) // 2)

    def _full(self):
        return jnp.concatenate([jnp.zeros(1, self.couplings.dtype), self.couplings])

    def energy(self, s):
        return -(self.space.basis_functions(s, self.couplings.dtype) @ self._full())

    def lo_features(self, s_lo):
        # φ_k(v) = φ_{k_hi}(v_hi) φ_{k_lo}(v_lo), k = k_hi q**m + k_lo: sum over k_lo once, (q**(n-m), l).
        q, m = self.space.q, s_lo.shape[1]
        lo = self.space.basis_functions(s_lo, self.couplings.dtype)
        return self._full().reshape(q ** (self.n - m), q**m) @ lo.T

    def neg_energy_chunk(self, features, s_hi):
        return self.space.basis_functions(s_hi, self.couplings.dtype) @ features


class WalshModel(AbstractCouplingModel):
    """The full generalised Ising model over spins, parametrised by all ``2**n - 1`` Walsh couplings.

    ``-E(s) = Σ_{S≠∅} J_S χ_S(s)`` with ``couplings[S-1] = J_S`` (``S`` a bitmask).
    """

    space: Spins
    couplings: Float[Array, " 2**n-1"]

    def __init__(self, couplings):
        self.couplings = as_parameter(couplings)
        size = self.couplings.shape[0] + 1 if self.couplings.ndim == 1 else 0
        if size < 2 or size & (size - 1):
            raise ValueError(f"WalshModel needs 2**n - 1 couplings for some n >= 1; got shape {self.couplings.shape}")
        self.space = Spins(digits_of_size(size, 2))

    @classmethod
    def init(cls, key, n: int, scale: float = 0.01, dtype=None) -> "WalshModel":
        """Couplings i.i.d. ``N(0, scale²)``."""
        dtype = dtype or jnp.result_type(float)
        check_memory(f"WalshModel couplings for n={Spins(n).n} (2**n - 1 parameters)", 2**n * jnp.dtype(dtype).itemsize)
        return cls(scale * jax.random.normal(prng_key(key), (2**n - 1,), dtype))


class CouplingModel(AbstractCouplingModel):
    """The full model over any space, parametrised by all ``q**n - 1`` couplings in the space's basis.

    Over ``Potts(n, q)`` this is the full generalised Potts model, ``-E(v) = Σ_{S≠∅} F_S(v_S)``
    with every zero-sum tensor free (the convex reference); over ``Spins(n)`` it equals `WalshModel`.
    """

    space: AbstractStateSpace
    couplings: Float[Array, " states-1"]

    def __init__(self, space: AbstractStateSpace, couplings):
        if not isinstance(space, AbstractStateSpace):
            raise TypeError(f"space must be a state space such as ebmflow.Potts(n, q); got {type(space).__name__}")
        self.space = space
        self.couplings = as_parameter(couplings)
        if self.couplings.shape != (space.size - 1,):
            raise ValueError(f"CouplingModel over {space.label} needs {space.size - 1} couplings (q**n - 1); got "
                             f"shape {self.couplings.shape}")

    @classmethod
    def init(cls, key, space: AbstractStateSpace, scale: float = 0.01, dtype=None) -> "CouplingModel":
        """Couplings i.i.d. ``N(0, scale²)``."""
        dtype = dtype or jnp.result_type(float)
        if not isinstance(space, AbstractStateSpace):
            raise TypeError(f"space must be a state space such as ebmflow.Potts(n, q); got {type(space).__name__}")
        check_memory(f"CouplingModel couplings for {space.label} (q**n - 1 parameters)",
                     space.size * jnp.dtype(dtype).itemsize)
        return cls(space, scale * jax.random.normal(prng_key(key), (space.size - 1,), dtype))

