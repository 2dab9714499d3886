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


def check_pair(model: AbstractEnergy, target: Target) -> None:
    check_model(model)
    if not isinstance(target, Target):
        raise TypeError(f"expected an ebmflow.Target; got {type(target).__name__}")
    if target.n != model.n:
        raise ValueError(f"model has n={model.n} spins but the target has n={target.n}")


def _plan(model: AbstractEnergy, chunk_size: int | None, full_vectors: int, what: str) -> Chunking:
    """Chunk plan, after checking that ``full_vectors`` arrays of 2**n and one chunk fit the budget."""
    plan = chunking(model.n, chunk_size)
    itemsize = jnp.dtype(model_dtype(model)).itemsize
    # A chunk holds the states, the per-state work (width numbers) and autodiff residuals: ~4 copies.
    chunk_bytes = 4 * plan.chunk_states * (model.n + model.width) * itemsize
    check_fits(f"{what} for n={model.n} (width {model.width})", full_vectors * 2**model.n * itemsize + chunk_bytes)
    return plan


def _blocks(model: AbstractEnergy, plan: Chunking):
    dtype = model_dtype(model)
    s_lo = plan.lo_states(dtype)
    return lambda chunk: model.neg_energy_block(plan.hi_states(chunk, dtype), s_lo)


def _neg_energies(model: AbstractEnergy, plan: Chunking) -> Float[Array, " 2**n"]:
    return jax.lax.map(_blocks(model, plan), jnp.arange(plan.n_chunks)).reshape(-1)


def _streamed_sums(model: AbstractEnergy, plan: Chunking, weights=None):
    """``(log Σ_s e^{-E(s)}, Σ_s w(s) (-E(s)))`` in one pass over the chunks.

    The log-sum-exp runs online (a running maximum); each chunk is rematerialised
    in the backward pass, so reverse mode also needs O(chunk) memory.
    """
    block = _blocks(model, plan)
    dtype = model_dtype(model)
    # The sum runs in the model's dtype (a float64 target with a float32 model must not change the carry type).
    w = None if weights is None else weights.astype(dtype).reshape(plan.n_chunks, plan.chunk_hi, -1)

    def body(carry, xs):
        top, total, dot = carry
        chunk, w_chunk = xs
        x = block(chunk)
        new_top = jnp.maximum(top, jax.lax.stop_gradient(x.max()))
        total = total * jnp.exp(top - new_top) + jnp.exp(x - new_top).sum()
        if w_chunk is not None:
            dot = dot + (w_chunk * x).sum()
        return (new_top, total, dot), None

    if plan.n_chunks == 1:  # one block: no loop to carry, and cheaper higher derivatives
        x = block(0).reshape(-1)
        return jax.nn.logsumexp(x), (0 if w is None else w.reshape(-1) @ x)
    init = (jnp.array(-jnp.inf, dtype), jnp.array(0, dtype), jnp.array(0, dtype))
    (top, total, dot), _ = jax.lax.scan(
        jax.checkpoint(body, prevent_cse=False), init, (jnp.arange(plan.n_chunks), w)
    )
    return top + jnp.log(total), dot


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

    ``∇_θ KL = <∂_θ E>_D - <∂_θ E>_θ = Gᵀ (m^θ - m^D)`` (THEORY §3).
    """
    return eqx.filter_value_and_grad(lambda m: kl(m, target, chunk_size=chunk_size))(model)


def moments(model_or_target: AbstractEnergy | Target) -> Float[Array, " 2**n"]:
    """All Walsh moments ``m_S = <χ_S>`` in bitmask order (``m_∅ = 1``): ``fwht(p)``."""
    if isinstance(model_or_target, Target):
        return fwht(model_or_target.probs)
    return fwht(probs(model_or_target))
