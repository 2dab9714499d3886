"""Exact sums of an energy model alone: ``-E`` of every state, ``ln Z``, ``ln p``, ``p`` (streamed over chunks).

Each public function validates its input once (outside any trace; concrete parameters
must be finite) and calls one compiled function, so repeated eager calls with the
same shapes compile nothing, and all of them work inside the user's ``jax.jit``.
Memory is O(chunk_size · width) for reductions and O(q**n) for full-length vectors.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._budget import check_memory, check_states
from .._tree import model_dtype
from ..energies._base import AbstractEnergy, check_energy
from ._engine import map_chunks, reduce


def check_sum(model: AbstractEnergy, full_vectors: int, what: str) -> None:
    """Refuse, before any work, a sum whose vectors or working set exceed the memory budget, or too many states.

    Both budgets count per device when the space is sharded.
    """
    space = model.space
    itemsize = jnp.dtype(model_dtype(model)).itemsize
    # The low-digit features (about n + width numbers per low-digit state) with their two gradient accumulators,
    # and one chunk's per-state work (width numbers) with its autodiff residuals and cotangents: ~8 copies.
    chunk_bytes = 8 * space.chunk_states * (model.n + model.width) * itemsize
    label = f"n={model.n}" if space.q == 2 else f"n={model.n}, q={space.q}"
    per_device = -(-space.size // space.devices)
    where = "" if space.devices == 1 else f" per device ({space.devices} devices)"
    check_memory(f"{what} for {label} (width {model.width}){where}",
                 full_vectors * per_device * itemsize + chunk_bytes)
    check_states(f"{what} for {label}{where}", per_device, model.width)


@jax.jit
def _all_finite(tree) -> Array:
    return jnp.all(jnp.asarray([jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)]))


def finite(result, model: AbstractEnergy, what: str):
    """``result``, or an error if any of it is NaN or infinite (inside jit: `eqx.error_if` on the result).

    A finite model can still have a non-finite energy (an overflow, a log of a negative number in a
    user's energy); its sums must not come back as plain numbers.
    """
    message = (f"{what} of {type(model).__name__} is NaN or infinite: its energy is not finite at some state "
               "(check the energy for overflows or invalid operations)")
    ok = _all_finite(result)
    if isinstance(ok, jax.core.Tracer):
        return eqx.error_if(result, ~ok, message)
    if not bool(ok):
        raise ValueError(message)
    return result


def chunk_values(model: AbstractEnergy):
    """``chunk(index) -> -E`` of that chunk's states, with the low-digit features computed once (THEORY §8)."""
    space, dtype = model.space, model_dtype(model)
    features = model.lo_features(space.lo_states(dtype))
    return lambda index: model.neg_energy_chunk(features, space.hi_state(index, dtype))


def all_neg_energies(model: AbstractEnergy) -> Float[Array, " states"]:
    """``-E`` of every state, index order (no checks; the compiled clients call this)."""
    return map_chunks(model.space, chunk_values(model))


def streamed_log_partition(model: AbstractEnergy, weights=None):
    """``(ln Z, Σ_s w(s)(-E(s)))`` in one pass, differentiable in any mode and order (no checks)."""
    chunk = chunk_values(model)
    r = reduce(model.space, lambda i: (chunk(i), None), weights, dtype=model_dtype(model), remat=True)
    return r.log_z, r.dot


@eqx.filter_jit
def _log_partition(model):
    return streamed_log_partition(model)[0]


@eqx.filter_jit
def _log_probs(model):
    x = all_neg_energies(model)
    return x - jax.nn.logsumexp(x)


def neg_energies(model: AbstractEnergy) -> Float[Array, " states"]:
    """``-E_θ(v)`` for all states of ``model.space``, index order."""
    check_sum(check_energy(model), 1, "neg_energies")
    return finite(_neg_energies(model), model, "neg_energies")


_neg_energies = eqx.filter_jit(all_neg_energies)


def log_partition(model: AbstractEnergy) -> Float[Array, ""]:
    """``ln Z(θ) = ln Σ_v exp(-E_θ(v))``, streamed over chunks of states."""
    check_sum(check_energy(model), 0, "log_partition")
    return finite(_log_partition(model), model, "log_partition")


def log_probs(model: AbstractEnergy) -> Float[Array, " states"]:
    """``ln p_θ(v)`` for all states, index order."""
    check_sum(check_energy(model), 2, "log_probs")
    return finite(_log_probs(model), model, "log_probs")


def probs(model: AbstractEnergy) -> Float[Array, " states"]:
    """``p_θ(v)`` for all states, index order."""
    check_sum(check_energy(model), 2, "probs")
    return finite(_probs(model), model, "probs")


_probs = eqx.filter_jit(lambda model: jnp.exp(_log_probs(model)))
