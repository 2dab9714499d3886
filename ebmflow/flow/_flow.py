"""Exact gradient flow ``dθ/dt = -∇_θ L(θ)`` integrated with diffrax (THEORY §3)."""

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import positive_int
from .._exact import check_pair
from .._walsh import fwht, order_norms
from ..energies._base import model_dtype, take
from ._objective import Objective
from ._rosenbrock import Rodas4
from ._solution import RESULTS, FlowSolution


def save_times(t1: float, num: int = 61, t_min: float | None = None) -> np.ndarray:
    """Default save times: ``t = 0`` and ``num`` log-spaced times from ``t_min`` to ``t1``.

    ``t_min`` defaults to ``min(t1 / 1e6, 0.1)``: six decades, and never later than
    ``t = 0.1`` so that the early learning of low orders is resolved.
    """
    t_min = min(t1 / 1e6, 0.1) if t_min is None else t_min
    ts = np.logspace(np.log10(t_min), np.log10(t1), num)
    ts[-1] = t1  # 10**log10(t1) can exceed t1 by an ulp, which `flow` would reject
    return np.concatenate([[0.0], ts])


def _evaluation_counts(solver) -> tuple[int, int] | None:
    """(vector-field evaluations, Jacobians) per attempted step, where known."""
    if hasattr(solver, "evaluations_per_step"):
        return solver.evaluations_per_step, solver.jacobians_per_step
    tableau = getattr(solver, "tableau", None)
    if isinstance(tableau, dfx.ButcherTableau):
        return len(tableau.c) + 1 - int(tableau.fsal), 0
    return None


def _solve(model, target, ts, t1, penalty, *, solver, rtol, atol, max_steps, steady_tol, progress, chunk_size):
    """The flow of one model; pure JAX, vmappable over models and targets."""
    objective = Objective(model, chunk_size)
    theta0 = objective.theta0

    def vector_field(t, theta, args):
        probs, penalty = args
        return -objective.gradient(theta, probs, penalty)

    if solver is None:
        solver = Rodas4(jacobian=lambda t, theta, args: -objective.hessian(theta, *args))

    def stop(t, theta, args, **kwargs):
        bad = ~jnp.all(jnp.isfinite(theta))
        if steady_tol is None:
            return bad
        return bad | (jnp.linalg.norm(vector_field(t, theta, args)) <= steady_tol)

    sol = dfx.diffeqsolve(
        dfx.ODETerm(vector_field),
        solver,
        0.0,
        t1,
        None,
        theta0,
        args=(target.probs, penalty),
        saveat=dfx.SaveAt(subs=[dfx.SubSaveAt(ts=ts), dfx.SubSaveAt(t1=True)]),
        stepsize_controller=dfx.PIDController(rtol=rtol, atol=atol, step_ts=ts),
        event=dfx.Event(stop),
        max_steps=max_steps,
        throw=False,
        progress_meter=dfx.TqdmProgressMeter() if progress else dfx.NoProgressMeter(),
    )
    t_end, theta_end = sol.ts[1][-1], sol.ys[1][-1]
    finite = jnp.all(jnp.isfinite(theta_end))
    code = RESULTS.where(
        sol.result == dfx.RESULTS.successful,
        RESULTS.successful,
        RESULTS.where(
            sol.result == dfx.RESULTS.event_occurred,
            RESULTS.steady_state,
            RESULTS.where(
                sol.result == dfx.RESULTS.max_steps_reached, RESULTS.max_steps_reached, RESULTS.solver_failed
            ),
        ),
    )
    code = RESULTS.where(finite, code, RESULTS.nonfinite)
    # Save times not reached: the final state after a steady-state stop, NaN after a failure.
    fill = jnp.where(code == RESULTS.steady_state, theta_end, jnp.nan)
    thetas = jnp.where((ts <= t_end)[:, None] & jnp.isfinite(sol.ys[0]), sol.ys[0], fill)
    counts = _evaluation_counts(solver)
    steps = sol.stats["num_steps"]
    event_evaluations = 0 if steady_tol is None else steps + 1  # diffrax checks the event at t0 and every step
    stats = dict(
        num_steps=steps,
        num_accepted_steps=sol.stats["num_accepted_steps"],
        num_rejected_steps=sol.stats["num_rejected_steps"],
        gradient_evaluations=-1 if counts is None else 1 + counts[0] * steps + event_evaluations,
        hessian_evaluations=-1 if counts is None else counts[1] * steps,
    )
    return _solution(objective, thetas, theta0, ts, target, penalty, t_end, code, stats)


def _solution(objective, thetas, theta0, ts, target, penalty, t_final, code, stats) -> FlowSolution:
    """Assemble a solution: observables at the saved parameters (shared with `train`)."""
    # One call (one traced copy of the observables) for the initial point and the saves.
    obs = objective.observe(jnp.concatenate([theta0[None], thetas]), target, penalty)
    initial = obs["moment_mismatch"][0]
    obs = {name: values[1:] for name, values in obs.items()}
    j_target = fwht(target.log_probs).at[0].set(0) / target.probs.shape[0]
    return FlowSolution(
        ts=ts,
        models=jax.vmap(objective.unflatten)(thetas),
        initial_mismatch=initial,
        target_coupling_norms=order_norms(j_target),
        t_final=t_final,
        result=code,
        stats=stats,
        **obs,
    )


_solve_jit = eqx.filter_jit(_solve)


@eqx.filter_jit
def _solve_batch(models, target, ts, t1, penalty, target_axis, **config):
    return eqx.filter_vmap(
        lambda m, t: _solve(m, t, ts, t1, penalty, **config), in_axes=(eqx.if_array(0), target_axis)
    )(models, target)


def _config(t1, ts, num_saves, solver, rtol, atol, max_steps, steady_tol, progress, chunk_size, dtype):
    if isinstance(t1, (str, bytes)) or np.ndim(t1) != 0 or not (np.isfinite(t1) and t1 > 0):
        raise ValueError(f"t1 must be a positive finite time (a number); got {t1!r}")
    ts = save_times(t1, positive_int("num_saves", num_saves)) if ts is None else np.asarray(ts, dtype=float)
    if ts.ndim != 1 or ts.size == 0 or np.any(np.diff(ts) <= 0) or ts[0] < 0 or ts[-1] > t1:
        raise ValueError(f"ts must be increasing save times in [0, t1={t1}]; got {ts}")
    if not (rtol > 0 and atol > 0):
        raise ValueError(f"rtol and atol must be positive; got rtol={rtol}, atol={atol}")
    if steady_tol is not None and not steady_tol > 0:
        raise ValueError(f"steady_tol must be positive or None; got {steady_tol!r}")
    config = dict(
        solver=solver, rtol=rtol, atol=atol, max_steps=int(max_steps),
        steady_tol=steady_tol, progress=progress, chunk_size=chunk_size,
    )
    return jnp.asarray(ts, dtype), config


def _raise_on_failure(sol: FlowSolution, throw: bool) -> FlowSolution:
    if not throw:
        return sol
    if isinstance(sol.result._value, jax.core.Tracer):
        return eqx.error_if(sol, ~sol.ok, "ebmflow flow failed; pass throw=False to inspect the result code")
    failed = ~np.asarray(sol.ok)
    if failed.any():
        messages = np.atleast_1d(sol.message)
        raise RuntimeError(f"ebmflow: {messages[failed][0]} (pass throw=False to keep partial results)")
    return sol


def flow(
    model, target, t1: float, *, ts=None, num_saves: int = 61, solver=None, rtol: float = 1e-6,
    atol: float = 1e-9, penalty: float = 0.0, max_steps: int = 100_000, steady_tol: float | None = None,
    progress: bool = False, throw: bool = True, chunk_size: int | None = None,
) -> FlowSolution:
    """Integrate the exact gradient flow ``dθ/dt = -∇_θ [KL(p_D || p_θ) + (penalty/2)||θ||²]``.

    **Arguments:**

    - `model`: an energy model (its inexact arrays are the parameters θ); `target`: a `Target`.
    - `t1`: final time. `ts`: save times in ``[0, t1]`` (default: `save_times(t1, num_saves)`,
      0 and log-spaced times up to `t1`); steps land on them exactly.
    - `solver`: a diffrax solver (default `Rodas4`, a Rosenbrock method with the exact
      Hessian; see `ebmflow.Rodas4` for why). `rtol`, `atol`: error control.
    - `penalty`: L2 penalty strength. `max_steps`: solver step budget.
    - `steady_tol`: stop once ``||∇L|| <= steady_tol`` (a diffrax event; later save
      times repeat the final state). `progress`: a tqdm progress bar.
    - `throw`: raise on failure; with ``throw=False`` the result code says what happened.

    **Returns:** a `FlowSolution` with the trajectory, KL, gradient norm, per-order
    observables (THEORY §6) and solver statistics. Everything runs in the model's dtype
    (a float32 model makes a float32 flow; the target is cast to it).
    """
    target = check_pair(model, target)
    ts, config = _config(t1, ts, num_saves, solver, rtol, atol, max_steps, steady_tol, progress, chunk_size,
                         target.probs.dtype)
    sol = _solve_jit(model, target, ts, jnp.asarray(t1, ts.dtype), jnp.asarray(penalty, ts.dtype), **config)
    return _raise_on_failure(sol, throw)


def flow_batch(
    models, target, t1: float, *, ts=None, num_saves: int = 61, solver=None, rtol: float = 1e-6,
    atol: float = 1e-9, penalty: float = 0.0, max_steps: int = 100_000, steady_tol: float | None = None,
    progress: bool = False, chunk_size: int | None = None,
) -> FlowSolution:
    """`flow` for a batch of models (and optionally of targets), vmapped, one compilation.

    `models` has a leading batch axis on every parameter, e.g. initialisations over keys
    and scales: ``eqx.filter_vmap(lambda k, s: RBM.init(k, 8, 16, scale=s))(keys, scales)``.
    `target` is one `Target`, or a batch of targets (``probs`` of shape ``(batch, 2**n)``).
    Never raises for a failed member: each has its own ``result`` (see `summarize`).
    """
    sizes = {x.shape[0] if x.ndim else 0 for x in jax.tree_util.tree_leaves(eqx.filter(models, eqx.is_array))}
    if len(sizes) != 1 or 0 in sizes:
        raise ValueError(
            "flow_batch needs models with one leading batch axis on every parameter, e.g. "
            f"eqx.filter_vmap(lambda k: RBM.init(k, 8, 16))(keys); got leading sizes {sorted(sizes)} "
            "(for a single model, use ebmflow.flow)"
        )
    batched_target = target.probs.ndim == 2
    first = take(models, 0)
    first_target = take(target, 0) if batched_target else target
    check_pair(first, first_target)
    target = target.astype(model_dtype(first))
    ts, config = _config(t1, ts, num_saves, solver, rtol, atol, max_steps, steady_tol, progress, chunk_size,
                         target.probs.dtype)
    return _solve_batch(models, target, ts, jnp.asarray(t1, ts.dtype), jnp.asarray(penalty, ts.dtype),
                        0 if batched_target else None, **config)
