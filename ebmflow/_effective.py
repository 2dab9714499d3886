"""The effective model: Walsh couplings of an energy, and their Jacobian (THEORY §2–3)."""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._exact import check_model, neg_energies
from ._memory import check_fits
from ._walsh import fwht
from .energies._base import AbstractEnergy, flatten, model_dtype
from .targets._target import Target


def couplings(model_or_target: AbstractEnergy | Target) -> Float[Array, " 2**n"]:
    """Walsh couplings ``J_S`` of every order, indexed by subset bitmask.

    For a model ``J = 2**-n fwht(-E_θ)``; for a target ``J* = 2**-n fwht(ln p_D)``.
    ``J[0] = J_∅`` is a gauge (absorbed by ``ln Z``) and is never compared.
    """
    if isinstance(model_or_target, Target):
        x = model_or_target.log_probs
    else:
        x = neg_energies(model_or_target)
    return fwht(x) / x.shape[-1]


def coupling_jacobian(model: AbstractEnergy) -> Float[Array, "2**n-1 P"]:
    """``G = ∂J/∂θ`` over the flattened parameters (rows ``S = 1..2**n-1``, ``J_∅`` dropped).

    Columns follow `flatten`'s order. Computed as ``2**-n H ∂(-E)/∂θ``.
    """
    check_model(model)
    theta, unflatten = flatten(model)
    # the per-state derivatives, their transform and its transpose: three (2**n, P) arrays
    check_fits(f"the coupling Jacobian G ({2**model.n} × {theta.shape[0]})", 3 * 2**model.n * theta.nbytes)
    per_state = jax.jacfwd(lambda t: neg_energies(unflatten(t)))(theta)  # (2**n, P)
    return (fwht(per_state.T) / per_state.shape[0]).T[1:]


def tangent_kernel(model: AbstractEnergy) -> Float[Array, "2**n-1 2**n-1"]:
    """``K = G Gᵀ``: the kernel of the induced coupling flow ``dJ/dt = -K (m^θ - m^D)``."""
    check_model(model)
    check_fits(f"the tangent kernel K ({2**model.n - 1} × {2**model.n - 1})",
               4**model.n * jnp.dtype(model_dtype(model)).itemsize)
    g = coupling_jacobian(model)
    return g @ g.T
