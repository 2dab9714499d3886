"""Exact gradient flow ``dθ/dt = -∇_θ L(θ)`` integrated with diffrax (THEORY §3)."""

import dataclasses

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp

from .._objective import Objective
from .._threads import one_blas_thread
from .._tree import model_dtype, take
from ..effective._couplings import values_couplings
from ..exact._divergence import check_pair
from ..exact._sums import check_sum
from ..space._abstract import check_mesh
from ._batch import batch_size, batched_target_axis, run_batch
from ._options import FlowOptions
from ._rosenbrock import Rodas4
from ._solution import RESULTS, FlowSolution, raise_if_failed


def _evaluation_counts(solver) -> tuple[int, int] | None:
    """(vector-field evaluations, Jacobians) per attempted step, where known."""
    if hasattr(solver, "evaluations_per_step"):
        return solver.evaluations_per_step, solver.jacobians_per_step
    tableau = getattr(solver, "tableau", None)
    if isinstance(tableau, dfx.ButcherTableau):
        return len(tableau.c) + 1 - int(tableau.fsal), 0
    return None


def _solve(model, target, ts, t1, penalty, options: FlowOptions):
    """The flow of one model; pure JAX, vmappable over models and targets (``options`` static)."""
    objective = Objective(model)
    theta0 = objective.theta0

    def vector_field(t, theta, args):
        probs, penalty = args
        return -objective.gradient(theta, probs, penalty)

    solver = options.solver
    if solver is None:
        solver = Rodas4(jacobian=lambda t, theta, args: -objective.hessian(theta, *args))

    def stop(t, theta, args, **kwargs):
        bad = ~jnp.all(jnp.isfinite(theta))
        if options.steady_tol is None:
            return bad
        return bad | (jnp.linalg.norm(vector_field(t, theta, args)) <= options.steady_tol)

    sol = dfx.diffeqsolve(
        dfx.ODETerm(vector_field),
        solver,
        0.0,
        t1,
        None,
        theta0,
        args=(target.probs, penalty),
        saveat=dfx.SaveAt(subs=[dfx.SubSaveAt(ts=ts), dfx.SubSaveAt(t1=True)]),
        stepsize_controller=dfx.PIDController(rtol=options.rtol, atol=options.atol, step_ts=ts),
        event=dfx.Event(stop),
        max_steps=options.max_steps,
        throw=False,
        progress_meter=dfx.TqdmProgressMeter() if options.progress else dfx.NoProgressMeter(),
    )
    t_end, theta_end = sol.ts[1][-1], sol.ys[1][-1]
    # The event stops at a steady state, or at non-finite parameters (which the last line names).
    code = RESULTS.promote(sol.result)
    code = RESULTS.where(code == RESULTS.event_occurred, RESULTS.steady_state, code)
    code = RESULTS.where(jnp.all(jnp.isfinite(theta_end)), code, RESULTS.nonfinite)
    # A flow that runs into parameters where the gradient is not finite has every later step rejected, and would
    # report max_steps: look one small step ahead along the flow from where it stopped (two gradients, not counted
    # in the stats, like the observables').
    blocked = jax.lax.cond(code == RESULTS.max_steps_reached,
                           lambda: _blocked(vector_field, t_end, theta_end, (target.probs, penalty)),
                           lambda: jnp.asarray(False))
    code = RESULTS.where(blocked, RESULTS.nonfinite, code)
    # Save times not reached: the final state after a steady-state stop, NaN after a failure.
    fill = jnp.where(code == RESULTS.steady_state, theta_end, jnp.nan)
    thetas = jnp.where((ts <= t_end)[:, None] & jnp.isfinite(sol.ys[0]), sol.ys[0], fill)
    counts = _evaluation_counts(solver)
    steps = sol.stats["num_steps"]
    event_evaluations = 0 if options.steady_tol is None else steps + 1  # diffrax checks the event at t0 and every step
    stats = dict(
        num_steps=steps,
        num_accepted_steps=sol.stats["num_accepted_steps"],
        num_rejected_steps=sol.stats["num_rejected_steps"],
        gradient_evaluations=-1 if counts is None else 1 + counts[0] * steps + event_evaluations,
        hessian_evaluations=-1 if counts is None else counts[1] * steps,
    )
    return solution(objective, thetas, ts, target, penalty, t_end, code, stats)


def _blocked(vector_field, t, theta, args):
    """True if the gradient is not finite at ``theta``, or a step of relative size √ε along the flow from it."""
    g = vector_field(t, theta, args)
    norm = jnp.linalg.norm(g)
    step = jnp.sqrt(jnp.finfo(theta.dtype).eps) * (1 + jnp.linalg.norm(theta)) * jnp.where(norm > 0, g / norm, 0)
    return ~jnp.all(jnp.isfinite(g)) | ~jnp.all(jnp.isfinite(vector_field(t, theta + step, args)))


def solution(objective, thetas, ts, target, penalty, t_final, code, stats) -> FlowSolution:
    """Assemble a solution: observables at the initial and saved parameters (shared with `train`)."""
    # One call (one traced copy of the observables) for the initial point and the saves.
    obs = objective.observe(jnp.concatenate([objective.theta0[None], thetas]), target, penalty)
    initial = obs["moment_mismatch"][0]
    obs = {name: values[1:] for name, values in obs.items()}
    j_target = values_couplings(objective.space, target.log_probs).at[0].set(0)
    return FlowSolution(
        ts=ts,
        models=jax.vmap(objective.unflatten)(thetas),
        initial_mismatch=initial,
        target_coupling_norms=objective.space.order_norms(j_target),
        t_final=t_final,
        result=code,
        stats=stats,
        **obs,
    )


_solve_jit = eqx.filter_jit(_solve)


def _prepare(function: str, model, target, t1, options: dict):
    """Validate once, at the boundary: ``(target in the model's dtype, ts, t1, penalty, static options)``."""
    opts = FlowOptions.from_keywords(function, options).check()
    target = check_pair(model, target)
    check_sum(model, 2, "the flow")
    dtype = target.probs.dtype
    ts = jnp.asarray(opts.save_times_for(t1), dtype)
    static = dataclasses.replace(opts, ts=None, penalty=0.0)  # the arrays and the penalty are traced
    return target, ts, jnp.asarray(t1, dtype), jnp.asarray(opts.penalty, dtype), static


@one_blas_thread
def flow(model, target, t1: float, *, throw: bool = True, **options) -> FlowSolution:
    """Integrate the exact gradient flow ``dθ/dt = -∇_θ [KL(p_D || p_θ) + (penalty/2)||θ||²]``.

    **Arguments:**

    - `model`: an energy model (its inexact arrays are the parameters θ); `target`: a `Target`.
    - `t1`: final time.
    - `throw`: raise on failure; with ``throw=False`` the result code says what happened.
    - `**options`: the fields of `FlowOptions` (``ts``, ``num_saves``, ``solver``, ``rtol``,
      ``atol``, ``penalty``, ``max_steps``, ``steady_tol``, ``progress``), with its defaults.
      The default solver is `Rodas4`, a Rosenbrock method with the exact Hessian (see
      `ebmflow.Rodas4` for why); with ``steady_tol`` the flow stops once ``||∇L|| <= steady_tol``
      (a diffrax event; later save times repeat the final state).

    **Returns:** a `FlowSolution` with the trajectory, KL, gradient norm, per-order
    observables (THEORY §6) and solver statistics. Everything runs in the model's dtype
    (a float32 model makes a float32 flow; the target is cast to it).
    """
    target, ts, t1, penalty, static = _prepare("flow", model, target, t1, options)
    return raise_if_failed(_solve_jit(model, target, ts, t1, penalty, static), throw)


@one_blas_thread
def flow_batch(models, target, t1: float, *, mesh=None, **options) -> FlowSolution:
    """`flow` for a batch of models (and optionally of targets), vmapped, one compilation.

    `models` has a leading batch axis on every parameter, e.g. initialisations over keys
    and scales: ``eqx.filter_vmap(lambda k, s: RBM.init(k, 8, 16, scale=s))(keys, scales)``.
    `target` is one `Target`, or a batch of targets (``probs`` of shape ``(batch, q**n)``).
    `mesh`: a one-axis `jax.sharding.Mesh` to split the members over its devices (each member
    on one device, each device with its own solver loops; `ebmflow.space.default_mesh()` uses
    every device). Options as for `flow` (`FlowOptions`). Never raises for a failed member:
    each has its own ``result`` (see `summarize`).
    """
    size = batch_size(models, "flow_batch")
    axis = batched_target_axis(target, size, "flow_batch")
    first = take(models, 0)
    _, ts, t1, penalty, static = _prepare("flow_batch", first, target if axis is None else take(target, 0), t1,
                                          options)
    target = target.astype(model_dtype(first))
    return run_batch(_solve, models, target, (ts, t1, penalty), static, axis,
                     check_mesh(mesh), size)
