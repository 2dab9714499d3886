"""Discrete training with optax on the same exact gradient, for comparison with the flow."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .._checks import finite_number, positive_int
from .._objective import Objective
from .._tree import model_dtype, take
from ..exact._divergence import check_pair
from ..exact._sums import check_sum
from ..space._abstract import check_mesh
from ._batch import batch_size, batched_target_axis, run_batch
from ._flow import solution
from ._solution import RESULTS, FlowSolution, raise_if_failed


def save_steps(steps: int, num: int = 61) -> np.ndarray:
    """Default save steps: 0 and about ``num`` log-spaced step numbers up to ``steps``."""
    return np.unique(np.concatenate([[0], np.round(np.logspace(0, np.log10(steps), num)).astype(int)]))


def _train_one(model, target, lengths, penalty, time_per_step, ts_steps, optimizer):
    """One training run; pure JAX, vmappable over models and targets (``optimizer`` static)."""
    objective = Objective(model)

    def step(_, carry):
        theta, state = carry
        grad = objective.gradient(theta, target.probs, penalty)
        updates, state = optimizer.update(grad, state, theta)
        return optax.apply_updates(theta, updates), state

    def segment(carry, length):
        carry = jax.lax.fori_loop(0, length, step, carry)
        return carry, carry[0]

    theta0 = objective.theta0
    _, thetas = jax.lax.scan(segment, (theta0, optimizer.init(theta0)), lengths)
    finite = jnp.all(jnp.isfinite(thetas), axis=1)
    ts = ts_steps * time_per_step
    ok = jnp.all(finite)
    code = RESULTS.where(ok, RESULTS.successful, RESULTS.nonfinite)
    t_final = jnp.where(ok, ts[-1], ts[jnp.argmin(finite)])
    thetas = jnp.where(jnp.cumprod(finite)[:, None] > 0, thetas, jnp.nan)
    steps = ts_steps[-1].astype(int)
    stats = dict(num_steps=steps, num_accepted_steps=steps, num_rejected_steps=jnp.zeros_like(steps),
                 gradient_evaluations=steps, hessian_evaluations=jnp.zeros_like(steps))
    return solution(objective, thetas, ts, target, penalty, t_final, code, stats)


_train = eqx.filter_jit(_train_one)


def _prepare(model, target, optimizer, steps, save_at, num_saves, penalty, time_per_step):
    """Validate once: ``(target in the model's dtype, (lengths, penalty, time_per_step, save steps))``."""
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(f"optimizer must be an optax optimiser such as optax.adam(1e-2) or optax.sgd(0.1); got "
                        f"{optimizer!r}")
    finite_number("penalty", penalty)
    finite_number("time_per_step", time_per_step, positive=True)
    target = check_pair(model, target)
    check_sum(model, 2, "training")
    steps = positive_int("steps", steps)
    at = save_steps(steps, positive_int("num_saves", num_saves)) if save_at is None else np.asarray(save_at)
    if at.ndim != 1 or at.size == 0 or np.any(np.diff(at) <= 0) or at[0] < 0 or at[-1] > steps:
        raise ValueError(f"save_at must be increasing step numbers in [0, steps={steps}]; got {at}")
    dtype = target.probs.dtype
    lengths = jnp.asarray(np.diff(np.concatenate([[0], at])), jnp.int32)
    return target, (lengths, jnp.asarray(penalty, dtype), jnp.asarray(time_per_step, dtype), jnp.asarray(at, dtype))


def train(
    model, target, optimizer: optax.GradientTransformation, steps: int, *, save_at=None, num_saves: int = 61,
    penalty: float = 0.0, time_per_step: float = 1.0, throw: bool = True,
) -> FlowSolution:
    """Train with an optax optimiser on the exact gradient of ``KL + (penalty/2)||θ||²``.

    `save_at`: step numbers to record (default: 0 and `num_saves` log-spaced steps).
    The solution's ``ts`` are step numbers times `time_per_step`: with plain SGD at
    learning rate η, pass ``time_per_step=η`` to compare with `flow` (SGD is the
    explicit Euler scheme of the flow). Observables are those of `flow`.
    """
    target, args = _prepare(model, target, optimizer, steps, save_at, num_saves, penalty, time_per_step)
    return raise_if_failed(_train(model, target, *args, optimizer), throw)


def train_batch(
    models, target, optimizer: optax.GradientTransformation, steps: int, *, save_at=None, num_saves: int = 61,
    penalty: float = 0.0, time_per_step: float = 1.0, mesh=None,
) -> FlowSolution:
    """`train` for a batch of models (and optionally of targets), vmapped, one compilation.

    As `flow_batch`: `models` with a leading batch axis, `target` one `Target` or a batch,
    `mesh` to split the members over devices. Never raises: each member has its ``result``.
    """
    size = batch_size(models, "train_batch")
    axis = batched_target_axis(target, size, "train_batch")
    first = take(models, 0)
    _, args = _prepare(first, target if axis is None else take(target, 0), optimizer, steps, save_at, num_saves,
                       penalty, time_per_step)
    target = target.astype(model_dtype(first))
    return run_batch(_train_one, models, target, args, optimizer, axis, check_mesh(mesh),
                     size)
