"""The coupling Jacobian ``G = ∂J/∂θ`` and the tangent kernel ``K = G Gᵀ`` (THEORY §3)."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._budget import check_memory, format_count
from .._tree import flatten, model_dtype
from ..energies._base import AbstractEnergy, check_energy
from ..exact._sums import all_neg_energies, check_sum, finite
from ._couplings import values_couplings


def jacobian(model: AbstractEnergy) -> Float[Array, "states-1 P"]:
    """``G`` without checks (the compiled clients call this): rows ``k = 1..q**n-1``, ``J_0`` dropped."""
    theta, unflatten = flatten(model)
    per_state = jax.jacfwd(lambda t: all_neg_energies(unflatten(t)))(theta)  # (q**n, P)
    return values_couplings(model.space, per_state.T).T[1:]


_jacobian = eqx.filter_jit(jacobian)


def check_jacobian_fits(model: AbstractEnergy) -> None:
    """Refuse, before building it, a coupling Jacobian over the memory budget (and its sum over the budgets)."""
    size = flatten(model)[0].shape[0]
    itemsize = jnp.dtype(model_dtype(model)).itemsize
    # the per-state derivatives, their transform and its transpose: three (q**n, P) arrays
    check_memory(f"the coupling Jacobian G ({format_count(model.space.size)} × {size})",
                 3 * model.space.size * size * itemsize)
    check_sum(model, 1, "the coupling Jacobian")


def coupling_jacobian(model: AbstractEnergy) -> Float[Array, "states-1 P"]:
    """``G = ∂J/∂θ`` over the flattened parameters (rows ``k = 1..q**n-1``, the gauge ``J_0`` dropped).

    Columns follow `flatten`'s order. Computed as ``q**-n transform(∂(-E)/∂θ)``.
    """
    check_jacobian_fits(check_energy(model))
    return finite(_jacobian(model), model, "coupling_jacobian")


@eqx.filter_jit
def _tangent_kernel(model):
    g = jacobian(model)
    return g @ g.T


def tangent_kernel(model: AbstractEnergy) -> Float[Array, "states-1 states-1"]:
    """``K = G Gᵀ``: the kernel of the induced coupling flow ``dJ/dt = -K (m^θ - m^D)``."""
    size = check_energy(model).space.size
    rows = format_count(size - 1)
    check_memory(f"the tangent kernel K ({rows} × {rows})", size**2 * jnp.dtype(model_dtype(model)).itemsize)
    check_jacobian_fits(model)
    return finite(_tangent_kernel(model), model, "tangent_kernel")
