"""Exact quantities of an energy model: sums over all 2**n states, streamed in chunks.

All functions are differentiable (`equinox.filter_grad`) and jit-able. Memory is
O(chunk_size · width) for reductions and O(2**n) for full-space vectors.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._memory import check_fits
from ._space import Chunking, chunking
from ._walsh import fwht
from .energies._base import AbstractEnergy, model_dtype, parameters
from .targets._target import Target, is_concrete


def check_model(model: AbstractEnergy) -> None:
    """Type check and, for concrete parameters, refuse NaN or infinite values."""
    if not isinstance(model, AbstractEnergy):
        raise TypeError(f"expected an energy model (a subclass of ebmflow.AbstractEnergy); got {type(model).__name__}")
    for path, leaf in jax.tree_util.tree_leaves_with_path(parameters(model)):
        if is_concrete(leaf) and not bool(jnp.all(jnp.isfinite(leaf))):
            raise ValueError(
                f"model parameter {type(model).__name__}{jax.tree_util.keystr(path)} has NaN or infinite entries; "
                "parameters must be finite"
            )


def check_pair(model: AbstractEnergy, target: Target) -> Target:
    """Check a model and a target together; returns the target in the model's dtype.

    Flows and analyses run in the model's dtype (float32 is a speed option), whatever the target's.
    """
    check_model(model)
    if not isinstance(target, Target):
        raise TypeError(f"expected an ebmflow.Target; got {type(target).__name__}")
    if target.n != model.n:
        raise ValueError(f"model has n={model.n} spins but the target has n={target.n}")
    return target.astype(model_dtype(model))


def _plan(model: AbstractEnergy, chunk_size: int | None, full_vectors: int, what: str) -> Chunking:
    """Chunk plan, after checking that ``full_vectors`` arrays of 2**n and the working set fit the budget."""
    plan = chunking(model.n, chunk_size)
    itemsize = jnp.dtype(model_dtype(model)).itemsize
    # The low-bit features (about n + width numbers per low-bit state) with their two gradient accumulators,
    # and one chunk's per-state work (width numbers) with its autodiff residuals and cotangents: ~8 copies.
    chunk_bytes = 8 * plan.chunk_states * (model.n + model.width) * itemsize
    check_fits(f"{what} for n={model.n} (width {model.width})", full_vectors * 2**model.n * itemsize + chunk_bytes)
    return plan


def _lo_features(model: AbstractEnergy, plan: Chunking):
    return model.lo_features(plan.lo_states(model_dtype(model)))


def _chunk(model: AbstractEnergy, features, plan: Chunking, index) -> Float[Array, " 2**n_lo"]:
    return model.neg_energy_chunk(features, plan.hi_state(index, model_dtype(model)))


def _neg_energies(model: AbstractEnergy, plan: Chunking) -> Float[Array, " 2**n"]:
    features = _lo_features(model, plan)
    return jax.lax.map(lambda index: _chunk(model, features, plan, index), jnp.arange(plan.n_chunks)).reshape(-1)


def _kahan_add(acc, x):
    """Compensated (Kahan) summation, ``acc = (sum, lost low-order part)``.

    A float32 running sum over thousands of chunks would lose ~1e-4 of a KL; this keeps it to a few ulp.
    """
    total, lost = acc
    y = x - lost
    new = total + y
    return new, (new - total) - y


def _streamed_sums(model: AbstractEnergy, plan: Chunking, weights=None):
    """``(log Σ_s e^{-E(s)}, Σ_s w(s) (-E(s)))`` in one pass over the chunks, differentiable in any mode and order.

    The log-sum-exp runs online (a running maximum); each chunk is rematerialised
    in the backward pass, so reverse mode also needs O(chunk) memory.
    """
    features = _lo_features(model, plan)
    dtype = model_dtype(model)
    # The sum runs in the model's dtype (a float64 target with a float32 model must not change the carry type).
    w = None if weights is None else weights.astype(dtype).reshape(plan.n_chunks, -1)

    def body(carry, xs):
        top, total, dot = carry
        index, w_chunk = xs
        x = _chunk(model, features, plan, index)
        new_top = jnp.maximum(top, jax.lax.stop_gradient(x.max()))
        scale = jnp.exp(top - new_top)
        total = _kahan_add((total[0] * scale, total[1] * scale), jnp.exp(x - new_top).sum())
        if w_chunk is not None:
            dot = _kahan_add(dot, w_chunk @ x)
        return (new_top, total, dot), None

    if plan.n_chunks == 1:  # one chunk: no loop to carry, and cheaper higher derivatives
        x = _chunk(model, features, plan, 0)
        return jax.nn.logsumexp(x), (0 if w is None else w[0] @ x)
    zero = jnp.array(0, dtype)
    init = (jnp.array(-jnp.inf, dtype), (zero, zero), (zero, zero))
    (top, total, dot), _ = jax.lax.scan(
        jax.checkpoint(body, prevent_cse=False), init, (jnp.arange(plan.n_chunks), w)
    )
    return top + jnp.log(total[0]), dot[0]


def _nll_and_grad(model: AbstractEnergy, plan: Chunking, weights):
    """``(ln Z - Σ_s w(s) (-E(s)), its gradient)`` in one pass over the chunks, without autodiff through the loop.

    Per chunk, one `jax.vjp` of the chunk's ``-E`` with respect to the parameters and
    the low-bit features pulls back two cotangents: ``exp(-E - running max)`` (the
    model expectation ``<∂(-E)>_θ``, rescaled online with the maximum) and ``w``
    (``<∂(-E)>_w``). The features' share is pulled back to the parameters once, at
    the end. No remat and no backward loop; forward mode through it works (`jax.jacfwd`).
    """
    dtype = model_dtype(model)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    features, features_vjp = jax.vjp(lambda p: _lo_features(eqx.combine(p, static), plan), params)
    w = weights.astype(dtype).reshape(plan.n_chunks, -1)

    def body(carry, xs):
        top, total, dot, g_model, g_data = carry
        index, w_chunk = xs
        x, vjp = jax.vjp(lambda p, f: _chunk(eqx.combine(p, static), f, plan, index), params, features)
        new_top = jnp.maximum(top, jax.lax.stop_gradient(x.max()))
        scale = jnp.exp(top - new_top)
        e = jnp.exp(x - new_top)
        total = _kahan_add((total[0] * scale, total[1] * scale), e.sum())
        dot = _kahan_add(dot, w_chunk @ x)
        g_model = jax.tree.map(lambda g, d: g * scale + d, g_model, vjp(e))
        g_data = jax.tree.map(jnp.add, g_data, vjp(w_chunk))
        return (new_top, total, dot, g_model, g_data), None

    zero = jnp.array(0, dtype)
    zeros = jax.tree.map(jnp.zeros_like, (params, features))
    init = (jnp.array(-jnp.inf, dtype), (zero, zero), (zero, zero), zeros, zeros)
    (top, total, dot, g_model, g_data), _ = jax.lax.scan(body, init, (jnp.arange(plan.n_chunks), w))
    g_params, g_features = jax.tree.map(lambda m, d: m / total[0] - d, g_model, g_data)
    (g_through_features,) = features_vjp(g_features)
    return top + jnp.log(total[0]) - dot[0], jax.tree.map(jnp.add, g_params, g_through_features)


def neg_energies(model: AbstractEnergy, *, chunk_size: int | None = None) -> Float[Array, " 2**n"]:
    """``-E_θ(s)`` for all ``2**n`` states, index order."""
    check_model(model)
    return _neg_energies(model, _plan(model, chunk_size, 1, "neg_energies"))


def log_partition(model: AbstractEnergy, *, chunk_size: int | None = None) -> Float[Array, ""]:
    """``ln Z(θ) = ln Σ_s exp(-E_θ(s))``, streamed over chunks of states."""
    check_model(model)
    return _streamed_sums(model, _plan(model, chunk_size, 0, "log_partition"))[0]


def log_probs(model: AbstractEnergy, *, chunk_size: int | None = None) -> Float[Array, " 2**n"]:
    """``ln p_θ(s)`` for all ``2**n`` states, index order."""
    check_model(model)
    x = _neg_energies(model, _plan(model, chunk_size, 2, "log_probs"))
    return x - jax.nn.logsumexp(x)


def probs(model: AbstractEnergy, *, chunk_size: int | None = None) -> Float[Array, " 2**n"]:
    """``p_θ(s)`` for all ``2**n`` states, index order."""
    return jnp.exp(log_probs(model, chunk_size=chunk_size))


def nll(model: AbstractEnergy, target: Target, *, chunk_size: int | None = None) -> Float[Array, ""]:
    """Cross-entropy ``-Σ_s p_D(s) ln p_θ(s)`` in nats (the NLL per sample of an infinite data set)."""
    check_pair(model, target)
    log_z, data = _streamed_sums(model, _plan(model, chunk_size, 1, "nll"), target.probs)
    return log_z - data


def kl(model: AbstractEnergy, target: Target, *, chunk_size: int | None = None) -> Float[Array, ""]:
    """``KL(p_D || p_θ)`` in nats."""
    return nll(model, target, chunk_size=chunk_size) - target.entropy


def kl_and_grad(model: AbstractEnergy, target: Target, *, chunk_size: int | None = None):
    """``(KL, ∇_θ KL)``; the gradient is a model-shaped pytree (non-parameters None).

    ``∇_θ KL = <∂_θ E>_D - <∂_θ E>_θ = Gᵀ (m^θ - m^D)`` (THEORY §3), both
    expectations accumulated in the same single pass over the states as the value.
    The same numbers as ``equinox.filter_value_and_grad(kl)``, without its remat and backward loop.
    """
    check_pair(model, target)
    value, grad = _nll_and_grad(model, _plan(model, chunk_size, 1, "kl_and_grad"), target.probs)
    return value - target.entropy, grad


def moments(model_or_target: AbstractEnergy | Target) -> Float[Array, " 2**n"]:
    """All Walsh moments ``m_S = <χ_S>`` in bitmask order (``m_∅ = 1``): ``fwht(p)``."""
    if isinstance(model_or_target, Target):
        return fwht(model_or_target.probs)
    return fwht(probs(model_or_target))
