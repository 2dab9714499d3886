"""Exact divergences between a model and a target: cross-entropy, KL, and the KL's gradient in one pass.

``KL(p_D || p_θ) = ln Z(θ) - Σ_v p_D(v)(-E_θ(v)) - H(p_D)`` (THEORY §3).
"""

import equinox as eqx
import jax
from jaxtyping import Array, Float

from .._tree import model_dtype
from ..energies._base import AbstractEnergy, check_energy
from ._engine import reduce
from ._sums import check_sum, finite, streamed_log_partition
from ._target import Target


def check_pair(model: AbstractEnergy, target: Target) -> Target:
    """Check a model and a target together; returns the target in the model's dtype.

    Flows and exact quantities run in the model's dtype (float32 is a speed option), whatever the target's;
    `fixed_point` and `stability` cast both to float64.
    """
    check_energy(model)
    if not isinstance(target, Target):
        raise TypeError(f"expected an ebmflow.Target; got {type(target).__name__}")
    space, other = model.space, target.space
    if (space.n, space.q) != (other.n, other.q):
        if space.q == other.q == 2:
            raise ValueError(f"model has n={space.n} spins but the target has n={other.n}")
        raise ValueError(f"model is over {space.label} (q={space.q}) but the target over {other.label} (q={other.q})")
    return target.astype(model_dtype(model))


def nll_and_grad(model: AbstractEnergy, weights: Float[Array, " states"]):
    """``(ln Z - Σ_v w(v)(-E(v)), its gradient)`` in one pass over the chunks, without autodiff through the loop.

    Per chunk, one `jax.vjp` of the chunk's ``-E`` with respect to the parameters and
    the low-digit features pulls back two cotangents: the chunk's share of ``p_θ`` (the
    model expectation ``<∂(-E)>_θ``, accumulated with the online maximum) and ``w``
    (``<∂(-E)>_w``). The features' share is pulled back to the parameters once, at the
    end. No remat and no backward loop; forward mode through it works (`jax.jacfwd`).
    """
    space, dtype = model.space, model_dtype(model)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    lo = space.lo_states(dtype)
    # Only the floating features carry gradients (Potts energies may pass colours, ints, through).
    features, features_vjp, fixed = jax.vjp(
        lambda p: eqx.partition(eqx.combine(p, static).lo_features(lo), eqx.is_inexact_array), params, has_aux=True
    )

    def chunk(index):
        hi = space.hi_state(index, dtype)
        return jax.vjp(lambda p, f: eqx.combine(p, static).neg_energy_chunk(eqx.combine(f, fixed), hi), params,
                       features)

    pull = lambda vjp, cotangent: vjp(cotangent)  # noqa: E731
    r = reduce(space, chunk, weights, model_term=pull, data_term=pull, dtype=dtype)
    g_params, g_features = jax.tree.map(lambda m, d: m - d, r.expectation, r.data)
    (g_through_features,) = features_vjp(g_features)
    return r.log_z - r.dot, jax.tree.map(jax.numpy.add, g_params, g_through_features)


@eqx.filter_jit
def _nll(model, target):
    log_z, data = streamed_log_partition(model, target.probs)
    return log_z - data


@eqx.filter_jit
def _kl_and_grad(model, target):
    value, grad = nll_and_grad(model, target.probs)
    return value - target.entropy, grad


def nll(model: AbstractEnergy, target: Target) -> Float[Array, ""]:
    """Cross-entropy ``-Σ_v p_D(v) ln p_θ(v)`` in nats (the NLL per sample of an infinite data set)."""
    check_pair(model, target)
    check_sum(model, 1, "nll")
    return finite(_nll(model, target), model, "nll")


def kl(model: AbstractEnergy, target: Target) -> Float[Array, ""]:
    """``KL(p_D || p_θ)`` in nats."""
    check_pair(model, target)
    check_sum(model, 1, "kl")
    return finite(_kl(model, target), model, "kl")


_kl = eqx.filter_jit(lambda model, target: _nll(model, target) - target.entropy)


def kl_and_grad(model: AbstractEnergy, target: Target):
    """``(KL, ∇_θ KL)``; the gradient is a model-shaped pytree (non-parameters None).

    ``∇_θ KL = <∂_θ E>_D - <∂_θ E>_θ = Gᵀ (m^θ - m^D)`` (THEORY §3), both
    expectations accumulated in the same single pass over the states as the value.
    The same numbers as ``equinox.filter_value_and_grad(kl)``, without its remat and backward loop.
    """
    check_pair(model, target)  # the sums run in the model's dtype; the entropy stays in the target's
    check_sum(model, 1, "kl_and_grad")
    return finite(_kl_and_grad(model, target), model, "kl_and_grad")
