"""The exact Hessian of the likelihood objective, assembled from per-state gradients.

For ``L(θ) = ln Z(θ) - Σ_v w(v) (-E_θ(v))`` with ``d(v) = ∇_θ(-E_θ(v))``,

    ∇²L = Σ_v p_θ(v) d(v) d(v)ᵀ - d̄ d̄ᵀ + Σ_v (p_θ(v) - w(v)) ∇²_θ(-E_θ(v)),   d̄ = Σ_v p_θ(v) d(v):

the covariance of the per-state gradients under the model (the Fisher information)
plus a curvature term that vanishes for models linear in θ and that an RBM has in
closed form (`AbstractEnergy.curvature`). One pass over the states costs about
``q**n P²`` multiply-adds, several times less than differentiating the gradient ``P`` times
(the flow's stiff solver needs the Hessian at every step; benchmarks/flow.py).
"""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._budget import check_memory
from .._tree import flatten, model_dtype
from ..energies._base import AbstractEnergy, join_states
from ._engine import sum_chunks
from ._sums import streamed_log_partition


def check_hessian_fits(model: AbstractEnergy, what: str) -> None:
    """Refuse, before allocating, a Hessian whose matrices or per-chunk gradients exceed the memory budget."""
    size = flatten(model)[0].shape[0]
    itemsize = jnp.dtype(model_dtype(model)).itemsize
    # Accumulators and result (4 P × P), one chunk's gradients with their weighted copy (2 chunk × P).
    check_memory(f"{what} for {size} parameters", (4 * size * size + 2 * model.space.chunk_states * size) * itemsize)


def nll_hessian(model: AbstractEnergy, weights: Float[Array, " states"]) -> Float[Array, "P P"]:
    """``∇²_θ [ln Z - Σ_v w(v) (-E_θ(v))]`` over the flat parameters (`flatten` order), streamed over chunks.

    Two passes: ``ln Z`` first, so that each chunk's ``p_θ`` is exact; then the
    second moments of ``d`` and the curvature, summed chunk by chunk.
    """
    theta, unflatten = flatten(model)
    space, dtype = model.space, model_dtype(model)
    log_z = streamed_log_partition(model)[0]
    lo = space.lo_states(dtype)
    value_and_grad = jax.vmap(jax.value_and_grad(lambda t, s: -unflatten(t).energy(s)), in_axes=(None, 0))

    def term(index, w_chunk):
        s = join_states(lo, space.hi_state(index, dtype))
        x, d = value_and_grad(theta, s)
        p = jnp.exp(x - log_z)
        moments = ((d * p[:, None]).T @ d, p @ d)
        return moments if model.linear_in_parameters else (*moments, model.curvature(p - w_chunk, s))

    second, first, *curvature = sum_chunks(space, term, weights, dtype=dtype)
    return second - jnp.outer(first, first) + sum(curvature)
