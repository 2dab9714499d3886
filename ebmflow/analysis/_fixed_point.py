"""Refining near-stationary points of the flow."""

import equinox as eqx
import jax.numpy as jnp
import optimistix as optx
from jaxtyping import Array

from .._checks import finite_number, positive_int
from .._objective import Objective
from .._threads import one_blas_thread
from .._tree import cast_parameters
from ..dynamics._solution import RESULTS, describe, raise_if_failed
from ..exact._divergence import check_pair
from ..exact._sums import check_sum


class FixedPoint(eqx.Module):
    """A refined point: ``model``, its ``grad_norm`` ``||∇L||``, the ``steps`` taken and a ``result`` code.

    ``ok`` (``converged``) is true when ``||∇L|| <= tol``; ``message`` says what happened.
    """

    model: eqx.Module
    grad_norm: float
    steps: int
    result: RESULTS
    tol: float

    @property
    def ok(self) -> Array:
        return self.result == RESULTS.successful

    @property
    def converged(self) -> bool:
        return bool(self.ok)

    @property
    def message(self) -> str:
        norm, steps = self.grad_norm, self.steps
        if self.converged:
            return f"converged: ||∇L|| = {norm:.3g} <= tol = {self.tol:.3g} after {steps} Levenberg–Marquardt steps"
        why = describe(self.result)[0]
        return f"not converged: ||∇L|| = {norm:.3g} > tol = {self.tol:.3g} after {steps} steps: {why}"


@eqx.filter_jit
def _refine(model, probs, penalty, rtol, atol, max_steps, tol):
    objective = Objective(model)
    solver = optx.LevenbergMarquardt(rtol=rtol, atol=atol)
    sol = optx.least_squares(
        lambda theta, _: objective.gradient(theta, probs, penalty), solver, objective.theta0,
        max_steps=max_steps, throw=False,
    )
    norm = jnp.linalg.norm(objective.gradient(sol.value, probs, penalty))
    # Short of tol: the solver's own code, or `stalled` where its step criterion (rtol/atol) ended it.
    code = RESULTS.promote(sol.result)
    code = RESULTS.where(code == RESULTS.successful, RESULTS.stalled, code)
    code = RESULTS.where(norm <= tol, RESULTS.successful, code)
    return objective.unflatten(sol.value), norm, sol.stats["num_steps"], code


@one_blas_thread
def fixed_point(
    model, target, *, tol: float = 1e-10, penalty: float = 0.0, max_steps: int = 256, rtol: float = 1e-12,
    atol: float = 1e-14, throw: bool = False,
) -> FixedPoint:
    """Refine ``model`` to a stationary point of ``L = KL + (penalty/2)||θ||²``, ``||∇L|| <= tol``.

    Levenberg–Marquardt (optimistix) on the residual ``∇L(θ) = 0``: its damping
    keeps the steps finite where the Hessian is singular, as at every
    over-parametrised fixed point. Start near a stationary point (e.g. the end of
    a flow); failure comes back as ``converged=False`` with a message (or an error with
    ``throw=True``). It runs in float64, and a float32 model comes back as float64:
    float32 rounding alone leaves ``||∇L|| ~ 1e-7``.
    """
    finite_number("penalty", penalty)
    finite_number("tol", tol, positive=True)
    finite_number("rtol", rtol)  # optimistix's step criterion: 0 turns one side off
    finite_number("atol", atol)
    max_steps = positive_int("max_steps", max_steps)
    check_pair(model, target)
    check_sum(model, 1, "fixed_point")
    model, probs = cast_parameters(model, jnp.float64), target.astype(jnp.float64).probs
    refined, norm, steps, code = _refine(model, probs, jnp.asarray(penalty, jnp.float64), rtol, atol, max_steps,
                                         jnp.float64(tol))
    return raise_if_failed(FixedPoint(refined, float(norm), int(steps), code, float(tol)), throw)
