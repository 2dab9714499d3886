"""The exact Hessian of the likelihood objective, assembled from per-state gradients.

For ``L(θ) = ln Z(θ) - Σ_s w(s) (-E_θ(s))`` with ``d(s) = ∇_θ(-E_θ(s))``,

    ∇²L = Σ_s p_θ(s) d(s) d(s)ᵀ - d̄ d̄ᵀ + Σ_s (p_θ(s) - w(s)) ∇²_θ(-E_θ(s)),   d̄ = Σ_s p_θ(s) d(s):

the covariance of the per-state gradients under the model (the Fisher information)
plus a curvature term that vanishes for models linear in θ and that an RBM has in
closed form (`AbstractEnergy.curvature`). One pass over the states costs about
``2**n P²`` multiply-adds, several times less than differentiating the gradient ``P`` times
(the flow's stiff solver needs the Hessian at every step; benchmarks/flow.py).
"""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._exact import _streamed_sums
from ._memory import check_fits
from ._space import Chunking, join_states
from .energies._base import AbstractEnergy, flatten, model_dtype


def check_hessian_fits(model: AbstractEnergy, plan: Chunking, what: str) -> None:
    """Refuse, before allocating, a Hessian whose matrices or per-chunk gradients exceed the memory budget."""
    size = flatten(model)[0].shape[0]
    itemsize = jnp.dtype(model_dtype(model)).itemsize
    # Accumulators and result (4 P × P), one chunk's gradients with their weighted copy (2 chunk × P).
    check_fits(f"{what} for {size} parameters", (4 * size * size + 2 * plan.chunk_states * size) * itemsize)


def _nll_hessian(model: AbstractEnergy, plan: Chunking, weights: Float[Array, " 2**n"]) -> Float[Array, "P P"]:
    """``∇²_θ [ln Z - Σ_s w(s) (-E_θ(s))]`` over the flat parameters (`flatten` order), streamed over chunks.

    Two passes: ``ln Z`` first, so that each chunk's ``p_θ`` is exact; then the
    second moments of ``d`` and the curvature, accumulated chunk by chunk.
    """
    theta, unflatten = flatten(model)
    dtype = model_dtype(model)
    log_z = _streamed_sums(model, plan)[0]
    lo = plan.lo_states(dtype)
    value_and_grad = jax.vmap(jax.value_and_grad(lambda t, s: -unflatten(t).energy(s)), in_axes=(None, 0))

    def body(carry, xs):
        second, first, curvature = carry
        index, w_chunk = xs
        s = join_states(lo, plan.hi_state(index, dtype))
        x, d = value_and_grad(theta, s)
        p = jnp.exp(x - log_z)
        second = second + (d * p[:, None]).T @ d
        first = first + p @ d
        if not model.linear_in_parameters:
            curvature = curvature + model.curvature(p - w_chunk, s)
        return (second, first, curvature), None

    zeros = jnp.zeros((theta.shape[0],) * 2, dtype)
    init = (zeros, jnp.zeros_like(theta), zeros)
    xs = (jnp.arange(plan.n_chunks), weights.astype(dtype).reshape(plan.n_chunks, -1))
    (second, first, curvature), _ = jax.lax.scan(body, init, xs)
    return second - jnp.outer(first, first) + curvature
